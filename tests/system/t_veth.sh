#!/bin/bash
# Two hosts joined by a veth pair, each in its own network namespace: the
# data streams are not on loopback, so the sender hands blocks to the kernel
# with sendfile(2) (on loopback it copies; see sender.c, peer_is_local).
# A file and a tree cross, both ways, bit-identical.
. "$(dirname "$0")/lib.sh"

A=jbva$$ B=jbvb$$
if [ "$(id -u)" != 0 ] || ! ip netns add "$A" 2>/dev/null; then
	echo "ok 1 # SKIP needs root and ip netns"
	echo "1..1"
	exit 0
fi
ip netns add "$B"
trap 'ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; cleanup' EXIT
ip link add "va$$" netns "$A" type veth peer name "vb$$" netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev "va$$"
ip -n "$B" addr add 10.77.0.2/24 dev "vb$$"
for n in "$A" "$B"; do ip -n "$n" link set lo up; done
ip -n "$A" link set "va$$" up
ip -n "$B" link set "vb$$" up

site_new alpha; site_new beta
sed -i 's/^listen = .*/listen = 10.77.0.2:0/' "$T/beta/jumbo.conf"
trust beta alpha
d=$T/beta
ip netns exec "$B" "$JUMBOD" --config "$d/jumbo.conf" --ready-file "$d/ready" >> "$d/log" 2>&1 &
_pids+=($!)
for _ in $(seq 100); do [ -f "$d/ready" ] && break; sleep 0.05; done
[ -f "$d/ready" ] || { fail "jumbod starts in namespace B" "$(cat "$d/log")"; done_testing; }
printf '\n[peer beta]\nfingerprint = %s\naddress = 10.77.0.2:%s\n' "$(cat "$T/beta/fp")" "$(site_port beta)" \
	>> "$T/alpha/jumbo.conf"
jbA() { ip netns exec "$A" "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }

head -c 300M /dev/urandom > "$T/file.bin"
# (LeakSanitizer cannot run under ptrace: off for this one command in ASan builds)
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" ip netns exec "$A" strace -f -qq -e trace=sendfile,setsockopt -o "$T/strace" \
	"$JUMBO" --config "$T/alpha/jumbo.conf" send -P 4 --json "$T/file.bin" beta:/in/ > "$T/send.json"
ok $? "send 300 MiB from A to B over veth"
sent=$(awk '/sendfile/ && $(NF-1) == "=" && $NF ~ /^[0-9]+$/ {s += $NF} END {print s + 0}' "$T/strace")
is "$sent" 314572800 "the payload went out through sendfile(2), all of it"
is "$(grep -c 'TCP_NOTSENT_LOWAT, \[16777216\]' "$T/strace")" 4 "each of the 4 streams keeps at most 16 MiB unsent"
# a round trip of microseconds needs no more than any tcp_wmem allows (the
# lift for long paths is checked in t_wan)
is "$(grep -c 'SO_SNDBUFFORCE' "$T/strace")" 0 "on a sub-millisecond path send buffers are left to autotuning"
is "$(sha "$T/beta/root/in/file.bin")" "$(sha "$T/file.bin")" "arrives bit-identical (sha256)"
is "$(jsonget "$T/send.json" bytes_sent)" 314572800 "every byte sent once"
jbA get -P 2 --json beta:/in/file.bin "$T/back.bin" > "$T/get.json"
ok $? "get it back from B (B sends, over veth)"
is "$(sha "$T/back.bin")" "$(sha "$T/file.bin")" "comes back bit-identical"

mkdir -p "$T/tree/a/b"
for i in $(seq 200); do head -c $((i * 997)) /dev/urandom > "$T/tree/a/b/f$i"; done
jbA send -r -P 3 --json "$T/tree" beta:/trees/ > "$T/tree.json"
ok $? "send -r a 200-file tree over veth"
is "$( (cd "$T/beta/root/trees/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum)" \
	"$( (cd "$T/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum)" "tree arrives bit-identical"

# a corrupted block is caught and re-sent on the sendfile path too
if hooks; then
	JUMBO_TEST_CORRUPT_BLOCK=3 jbA send --block-size 1M --json "$T/file.bin" beta:/again/ > "$T/corrupt.json" 2> "$T/corrupt.err"
	ok $? "send with a block damaged in flight succeeds"
	is "$(sha "$T/beta/root/again/file.bin")" "$(sha "$T/file.bin")" "and the file is bit-identical"
	is "$(jsonget "$T/corrupt.json" blocks_resent)" 1 "exactly one block re-sent"
else
	skip 3 "a release build has no corruption hook (meson -Dtest_hooks=true)"
fi

done_testing
