# Shared helpers for system tests: TAP output and jumbo sites on loopback.
# Each test sources this, makes sites under $T and starts real daemons.
set -u
BUILD=${BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
JUMBO=$BUILD/cmd/jumbo
JUMBOD=$BUILD/cmd/jumbod
# tmpfs by default: tests measure behaviour, not disks
T=$(mktemp -d "${TMPDIR:-/dev/shm}/jumbo-test.XXXXXX")
chmod 711 "$T" # jobs' root (a user namespace's) passes through to STATE and the data root
export JUMBO_STATE_DIR=$T/clientstate
_n=0 _fail=0 _pids=()

cleanup() { # runs under set -e in some scripts: nothing here may stop it half way
	set +e
	exec 2>/dev/null # bash reports each daemon it reaps as "Killed"
	for p in "${_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for m in $(awk -v t="$T" '$2 ~ "^"t {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

ok()   { _n=$((_n+1)); if [ "$1" = 0 ]; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _fail=$((_fail+1)); fi; }
pass() { ok 0 "$1"; }
fail() { ok 1 "$1"; [ $# -gt 1 ] && diag "$2"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
is()   { if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "got:      '$1'" "expected: '$2'"; fi; }
# like PATTERN TEXT NAME
like() { if printf '%s' "$2" | grep -qE -- "$1"; then ok 0 "$3"; else ok 1 "$3"; diag "no match for /$1/ in:" "$2"; fi; }
done_testing() { echo "1..$_n"; [ "$_fail" = 0 ]; exit $?; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
jsonget() { /usr/bin/python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d=d[int(k)] if isinstance(d,list) else d[k]
print(d if not isinstance(d,bool) else str(d).lower())' "$@"; }

# site_new NAME: identity, data root, state, a config without peers
site_new() {
	local s=$1 d=$T/$1
	mkdir -p "$d/root" "$d/state"
	"$JUMBO" keygen --dir "$d/id" --name "$s" > "$d/fp"
	cat > "$d/jumbo.conf" <<EOC
[site]
name = $s
identity = $d/id
root = $d/root
listen = 127.0.0.1:0
api = 127.0.0.1:0
state = $d/state
EOC
}
# trust A B [LINE...]: A pins B (with B's address once B is running).  B may
# read and write all of A's data root ('read = .', 'write = .'; a peer
# section without them may do nothing), or what the LINEs given instead say
# ('write = incoming/beta'; '' for nothing)
trust() {
	local a=$1 b=$2 l
	shift 2
	[ $# -gt 0 ] || set -- 'read = .' 'write = .'
	printf '\n[peer %s]\nfingerprint = %s\n' "$b" "$(cat "$T/$b/fp")" >> "$T/$a/jumbo.conf"
	for l in "$@"; do [ -z "$l" ] || printf '%s\n' "$l" >> "$T/$a/jumbo.conf"; done
	if [ -f "$T/$b/ready" ]; then
		printf 'address = 127.0.0.1:%s\n' "$(jsonget "$T/$b/ready" listen)" >> "$T/$a/jumbo.conf"
	fi
}
# site_start NAME: start jumbod, wait until it listens
site_start() {
	local s=$1 d=$T/$1
	rm -f "$d/ready"
	"$JUMBOD" --config "$d/jumbo.conf" --ready-file "$d/ready" >> "$d/log" 2>&1 &
	local pid=$!
	_pids+=("$pid")
	echo "$pid" > "$d/pid"
	for _ in $(seq 1 100); do [ -f "$d/ready" ] && return 0; sleep 0.05; done
	echo "# jumbod $s did not start:"; sed 's/^/#   /' "$d/log"; return 1
}
site_port() { jsonget "$T/$1/ready" listen; }
# set_address A B: (re)write A's address for peer B after B (re)started
set_address() {
	local a=$1 b=$2 port
	port=$(site_port "$b")
	/usr/bin/python3 - "$T/$a/jumbo.conf" "$b" "$port" <<'EOP'
import sys, re
p, peer, port = sys.argv[1], sys.argv[2], sys.argv[3]
out, sec = [], None
for line in open(p).read().splitlines():
    m = re.match(r'\s*\[(.*)\]', line)
    if m: sec = m.group(1).strip()
    if sec == 'peer ' + peer and line.strip().startswith('address'): continue
    out.append(line)
    if m and sec == 'peer ' + peer: out.append('address = 127.0.0.1:%s' % port)
open(p, 'w').write('\n'.join(out) + '\n')
EOP
}
# two_sites: alpha (the client) and beta (a running daemon), pinned both ways
two_sites() {
	site_new alpha; site_new beta
	trust beta alpha
	site_start beta || exit 1
	trust alpha beta
}
jb() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
# for background runs, call "$JUMBO" --config "$JBCONF" directly so $! is jumbo itself
JBCONF=$T/alpha/jumbo.conf

# use_testbed PREFIX: $TB, the WAN testbed (tests/bench/wan/testbed), under
# namespaces of its own (PREFIX and this shell's pid), taken down on exit;
# without root, iptables or the delay line the test is skipped
use_testbed() {
	TB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../bench/wan" && pwd)/testbed
	export JBW_PREFIX=$1$$ BUILD
	if [ "$(id -u)" != 0 ] || ! command -v iptables > /dev/null || [ ! -x "$BUILD/tests/delayline" ]; then
		echo "ok 1 # SKIP needs root, iptables and the delay line (libnetfilter-queue-dev)"
		echo "1..1"
		exit 0
	fi
	trap '"$TB" down > /dev/null 2>&1; cleanup' EXIT
}

# image_store DIR [RECIPE]: an image store holding jumbo/RECIPE:latest
# (default minimal), built once (mmdebstrap: minimal about 30 s, notebook
# about 4 min) into a cache shared by the tests of a run and kept while
# images/RECIPE.conf stays the same; DIR gets a copy, or with DIR "-" the
# cache's store is used in place (its path in $IMAGE_STORE; for the
# notebook's 3 GiB, by a test that neither pulls nor prunes there).
image_store() {
	local dir=$1 recipe=${2:-minimal} src key cache=${JUMBO_TEST_CACHE:-/var/tmp/jumbo-test-cache} store keyf log
	src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	key=$(sha256sum "$src/images/$recipe.conf" | cut -c1-16)
	store=$cache/store keyf=$cache/minimal.key log=$cache/build.log
	[ "$recipe" = minimal ] || store=$cache/store-$recipe keyf=$cache/$recipe.key log=$cache/build-$recipe.log
	mkdir -p "$cache"
	(
		flock 9
		if [ "$(cat "$keyf" 2>/dev/null)" != "$key" ]; then
			rm -rf "$store" "$keyf"
			"$JUMBO" image --store "$store" build "$recipe" > "$log" 2>&1 &&
				"$JUMBO" image --store "$store" unpack "jumbo/$recipe" > /dev/null &&
				echo "$key" > "$keyf"
		fi
	) 9> "$cache/.lock-$recipe"
	[ -f "$keyf" ] || { sed 's/^/# /' "$log" | tail -20; return 1; }
	IMAGE_STORE=$store
	[ "$dir" = - ] || cp -a "$store" "$dir"
}

# stop_jobs: the supervisors of this test's jobs (they outlive jumbod by
# design) and their containers
stop_jobs() {
	local d s id
	for d in "$T"/*/state/jobs/*/; do
		[ -f "$d/supervisor.pid" ] && kill -9 "$(cat "$d/supervisor.pid")" 2>/dev/null
	done
	for s in "$T"/*/state/crun; do
		[ -d "$s" ] && for id in $(ls "$s" 2>/dev/null); do crun --root "$s" delete -f "$id" > /dev/null 2>&1; done
	done
}

# need CMD...: skip the whole test (TAP "1..0 # SKIP") unless every command is
# installed; need_root WHY: unless it runs as root
need() {
	local c
	for c in "$@"; do
		command -v "$c" > /dev/null && continue
		echo "1..0 # SKIP $c is not installed (build-aux/deps installs it)"
		exit 0
	done
}
# test_hooks: the binaries were built with meson -Dtest_hooks=true (the
# ASan build of make check; a release build has none); skip N WHY: N points
hooks() { grep -q JUMBO_TEST_CORRUPT_BLOCK "$JUMBOD" && grep -q JUMBO_TEST_CORRUPT_BLOCK "$JUMBO"; }
skip() { local i; for i in $(seq 1 "$1"); do _n=$((_n+1)); echo "ok $_n # SKIP $2"; done; }
need_root() { [ "$(id -u)" = 0 ] || { echo "1..0 # SKIP $1"; exit 0; }; }
