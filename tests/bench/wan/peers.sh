# shellcheck shell=bash
# The peer tools of the WAN benchmark: GridFTP, XRootD, scp, rsync over ssh
# and iperf3, each as a server in one network namespace and a client in
# another, all from Debian's packages.  A bash library: source it, don't run
# it.  It changes no shell option and works under `set -eu`.
#
#   peers_install                              apt-get what is missing
#   peer_start_gridftp NS ADDR PORT ROOTDIR WORKDIR
#   peer_start_xrootd  NS ADDR PORT ROOTDIR WORKDIR
#   peer_start_sshd    NS ADDR PORT WORKDIR    (for scp and rsync)
#   peer_start_iperf3  NS ADDR PORT WORKDIR
#   peer_copy_{gridftp,xrootd,scp,rsync} NS SRCFILE ADDR PORT DESTPATH STREAMS [TCPBUF]
#   peer_copy_tree_{gridftp,xrootd,scp,rsync} NS SRCDIR ADDR PORT DESTDIR STREAMS [TCPBUF]
#   peer_run_iperf3    NS ADDR PORT STREAMS SECONDS [TCPBUF]
#   peers_stop WORKDIR                         stop every server started under WORKDIR
#
# Servers: started inside namespace NS (`ip netns exec`), in a session of
# their own, listening on ADDR:PORT; config, keys, logs and the pid record
# live in WORKDIR (created if needed).  A start prints nothing on success and
# returns once the server accepts connections; on failure it says why on
# stderr, with the end of the server's log, and returns non-zero.
#
# Clients: run inside namespace NS.  DESTPATH and DESTDIR are absolute paths
# on the server's host; for GridFTP and XRootD they must lie under the
# server's ROOTDIR.  peer_copy_* copies one local file to DESTPATH (replacing
# it); peer_copy_tree_* copies the directory SRCDIR into the existing server
# directory DESTDIR, as DESTDIR/$(basename SRCDIR).  On success they print
# the elapsed seconds (a decimal number, measured inside NS around the client
# alone) and nothing else; on failure the client's output goes to stderr and
# the status is non-zero.  STREAMS: parallel TCP streams for one file (GridFTP
# -p, xrdcp --streams) or files in flight for a tree (GridFTP -cc, xrdcp
# --parallel); ssh has one connection, so scp and rsync ignore it.  TCPBUF
# (bytes) is passed as GridFTP -tcp-bs and iperf3 -w; the other tools leave
# the socket buffers to the kernel's autotuning.  Paths may not contain white
# space (they end up in URLs and in remote shell commands).
#
# Integrity, with PEERS_VERIFY=1 (the default):
#   GridFTP  -verify-checksum: after each file the client computes the MD5 of
#            the local source and the server the MD5 of the written file (CKSM),
#            both re-read from storage; a mismatch fails the transfer.
#   XRootD   --cksum adler32: end to end, the client's adler32 of the source
#            against the server's of the written file (xrootd.chksum), which
#            is why the copy goes to a fresh name first (see peer_copy_xrootd).
#   rsync    always: the receiver's whole-file checksum (xxh128 between two
#            rsync 3.2+) of what it wrote against the sender's; on a mismatch
#            rsync resends once, then fails.  --checksum is not used: it only
#            chooses which files to send.  PEERS_VERIFY=0 cannot turn this off.
#   scp      none beyond the ssh transport's own MAC (AEAD): no end-to-end
#            check of the file.
#   PEERS_VERIFY=0 drops the GridFTP and XRootD checks.
#
# Environment:
#   PEERS_VERIFY       1 (default) or 0, see above
#   PEERS_SSH_CIPHER   cipher for scp and rsync (default aes128-gcm@openssh.com,
#                      what one picks for bulk data on a CPU with AES-NI; here
#                      it edged out chacha20-poly1305 and aes128-ctr, 256 MiB
#                      over veth, medians of 3: 2.08 s, 2.19 s, 2.39 s)
#   PEERS_SSH_KEY      the client's private key; peer_start_sshd sets and
#                      exports it (so clients started from the same shell or
#                      its children find it)
#   PEERS_GRIDFTP_PORT_RANGE  "LOW,HIGH": GridFTP data ports (-port-range), for
#                      a testbed that filters ports; unset: any free port
#   PEERS_START_TIMEOUT seconds a start waits for the server (default 15)
#   PEERS_RUN          root-owned scratch directory (default /run/jumbo-peers)
#
# Host name lookups: every server and client here runs with an
# /etc/nsswitch.conf that reads /etc/hosts only (bind-mounted in the private
# mount namespace `ip netns exec` makes).  GridFTP looks up the name of every
# address it uses and gives up when DNS is unreachable, as it is inside a
# namespace; and no lookup may leave the machine or wait for a time-out.

# shellcheck disable=SC2034 # for the benchmark's loops
PEERS_TOOLS="gridftp xrootd scp rsync"
PEERS_PACKAGES="globus-gridftp-server-progs globus-gass-copy-progs xrootd-server xrootd-client
	openssh-server openssh-client rsync iperf3 jq util-linux iproute2"

# peers_install: install the packages that are missing (Debian).
peers_install() {
	local p missing=()
	for p in $PEERS_PACKAGES; do
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "peers_install: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
		{ echo "peers_install: apt-get update failed" >&2; return 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		{ echo "peers_install: apt-get install ${missing[*]} failed" >&2; return 1; }
}

# -- internals ------------------------------------------------------------------

peers__die() { echo "$1: $2" >&2; return 1; }

# peers__nsswitch: print the path of an nsswitch.conf that looks names up in
# local files only (made once, root-owned).
peers__nsswitch() {
	local d=${PEERS_RUN:-/run/jumbo-peers} f
	f=$d/nsswitch.conf
	if [ ! -s "$f" ]; then
		mkdir -p "$d" || return 1
		printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files' \
			'networks: files' 'protocols: files' 'services: files' > "$f.$$" && mv -f "$f.$$" "$f" || return 1
	fi
	echo "$f"
}

# peers__starttime PID: the process's start time (clock ticks since boot);
# fails if there is no such process or it is a zombie.
peers__starttime() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	[ "$1" != Z ] || return 1
	echo "${20}"
}

peers__alive() { [ "$(peers__starttime "$1" 2>/dev/null)" = "$2" ]; }

# peers__listening NS PORT: something in NS listens on TCP port PORT
peers__listening() { [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]; }

# peers__check_server FN NS ADDR PORT WORKDIR: the common argument checks
peers__check_server() {
	local fn=$1 ns=$2 addr=$3 port=$4 wd=$5
	[ "$(id -u)" = 0 ] || { peers__die "$fn" "needs root (network namespaces)"; return 1; }
	ip netns exec "$ns" true 2>/dev/null || { peers__die "$fn" "no network namespace '$ns'"; return 1; }
	[[ $port =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] ||
		{ peers__die "$fn" "bad port '$port'"; return 1; }
	[ -n "$(ip -n "$ns" -o addr show to "$addr" 2>/dev/null)" ] ||
		{ peers__die "$fn" "address $addr is not configured in namespace $ns"; return 1; }
	! peers__listening "$ns" "$port" ||
		{ peers__die "$fn" "port $port is already in use in namespace $ns"; return 1; }
	mkdir -p "$wd" || { peers__die "$fn" "cannot create $wd"; return 1; }
}

# peers__spawn WORKDIR NAME LOG NS CMD...: start CMD inside NS in a session of
# its own, output to LOG; the process records "NAME PID STARTTIME" in
# WORKDIR/peers.pids before it becomes CMD, so peers_stop can find its group.
peers__spawn() {
	local wd=$1 name=$2 log=$3 ns=$4 nsw
	shift 4
	nsw=$(peers__nsswitch) || return 1
	# shellcheck disable=SC2016
	setsid ip netns exec "$ns" /bin/bash -c '
		reg=$1 name=$2 nsw=$3; shift 3
		s=$(cat /proc/$$/stat); a=(${s##*) }); st=${a[19]}
		printf "%s %s %s\n" "$name" "$$" "$st" >> "$reg"
		mount --bind "$nsw" /etc/nsswitch.conf || exit 125
		exec "$@"' peers "$wd/peers.pids" "$name" "$nsw" "$@" < /dev/null >> "$log" 2>&1 &
	disown $! 2>/dev/null || true
}

# peers__wait_listen FN WORKDIR NAME NS PORT LOG...: wait until the server
# listens; on failure show the end of its logs and stop it.
peers__wait_listen() {
	local fn=$1 wd=$2 name=$3 ns=$4 port=$5 i pid='' st='' tries why='' log
	shift 5
	tries=$(( ${PEERS_START_TIMEOUT:-15} * 10 ))
	for ((i = 0; i < tries; i++)); do
		if [ -z "$pid" ] && [ -f "$wd/peers.pids" ]; then
			read -r _ pid st < <(awk -v n="$name" '$1 == n { l = $0 } END { print l }' "$wd/peers.pids")
		fi
		if [ -n "$pid" ] && ! peers__alive "$pid" "$st"; then
			why="exited while starting"
			break
		fi
		peers__listening "$ns" "$port" && [ -n "$pid" ] && return 0
		sleep 0.1
	done
	[ -n "$why" ] || why="did not listen on port $port within ${PEERS_START_TIMEOUT:-15} s"
	echo "$fn: $name $why" >&2
	for log in "$@"; do
		[ -s "$log" ] || continue
		echo "  end of $log:" >&2
		tail -n 12 "$log" | sed 's/^/    /' >&2
	done
	if [ -n "$pid" ] && peers__alive "$pid" "$st"; then kill -KILL -- "-$pid" 2> /dev/null; fi
	return 1
}

# peers__client WHAT NS CMD...: run CMD inside NS (lookups in local files);
# print the seconds it took, or its output on stderr if it failed.
peers__client() {
	local what=$1 ns=$2 nsw res rc=0
	shift 2
	nsw=$(peers__nsswitch) || return 1
	# shellcheck disable=SC2016
	res=$(ip netns exec "$ns" /bin/bash -c '
		mount --bind "$0" /etc/nsswitch.conf || exit 125
		t0=$EPOCHREALTIME
		out=$("$@" < /dev/null 2>&1 | tr -d "\\000"; exit "${PIPESTATUS[0]}"); rc=$?
		t1=$EPOCHREALTIME
		if [ $rc -ne 0 ]; then printf "%s\n" "$out"; exit $rc; fi
		echo "$t0 $t1"' "$nsw" "$@" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "$what: failed (exit $rc): $*" >&2
		[ -n "$res" ] && printf '%s\n' "$res" | tail -n 20 | sed 's/^/  /' >&2
		return "$rc"
	fi
	# (the last line: a warning could come before it)
	printf '%s\n' "$res" | awk 'END { printf "%.3f\n", $2 - $1 }'
}

# peers__check_client FN NS LOCAL DEST STREAMS [TCPBUF]
peers__check_client() {
	local fn=$1 ns=$2 src=$3 dest=$4 streams=$5 buf=${6:-}
	ip netns exec "$ns" true 2>/dev/null || { peers__die "$fn" "no network namespace '$ns'"; return 1; }
	[ -e "$src" ] || { peers__die "$fn" "no such file or directory: $src"; return 1; }
	[[ $dest == /* ]] || { peers__die "$fn" "the destination must be an absolute path, not '$dest'"; return 1; }
	[[ $src$dest =~ [[:space:]] ]] && { peers__die "$fn" "paths with white space are not supported"; return 1; }
	[[ $streams =~ ^[1-9][0-9]*$ ]] || { peers__die "$fn" "STREAMS must be a positive number, not '$streams'"; return 1; }
	[ -z "$buf" ] || [[ $buf =~ ^[1-9][0-9]*$ ]] || { peers__die "$fn" "TCPBUF must be bytes, not '$buf'"; return 1; }
	return 0
}

# peers__abs PATH: PATH made absolute (it need not exist)
peers__abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

# -- GridFTP ----------------------------------------------------------------------
# Server: globus-gridftp-server in its default daemon mode (a process per
# connection), clear-text anonymous login mapped to root (-aa
# -anonymous-user root -allow-root: this is a private namespace, and a
# benchmark wants no GSI certificates), access restricted to ROOTDIR (-rp).
# -c /dev/null keeps /etc/gridftp.conf out; -disable-usage-stats keeps it
# from sending UDP usage reports.  Data channels listen on ephemeral ports
# (passive mode E) unless PEERS_GRIDFTP_PORT_RANGE is set.

peer_start_gridftp() {
	local fn=peer_start_gridftp
	[ $# -eq 5 ] || { peers__die $fn "usage: $fn NS ADDR PORT ROOTDIR WORKDIR"; return 1; }
	local ns=$1 addr=$2 port=$3 root wd=$5/gridftp-$3 log range=()
	root=$(peers__abs "$4")
	[ -d "$root" ] || { peers__die $fn "ROOTDIR $root is not a directory"; return 1; }
	peers__check_server $fn "$ns" "$addr" "$port" "$5" || return 1
	mkdir -p "$wd" || return 1
	log=$wd/gridftp.log
	[ -n "${PEERS_GRIDFTP_PORT_RANGE:-}" ] && range=(-port-range "$PEERS_GRIDFTP_PORT_RANGE")
	peers__spawn "$5" "gridftp-$port" "$wd/stderr" "$ns" \
		env GLOBUS_USAGE_OPTOUT=1 globus-gridftp-server -c /dev/null \
		-p "$port" -control-interface "$addr" -data-interface "$addr" "${range[@]}" \
		-aa -anonymous-user root -allow-root -rp "$root" -home-dir "$root" \
		-disable-usage-stats -log-level ERROR,WARN,INFO -logfile "$log" || return 1
	peers__wait_listen $fn "$5" "gridftp-$port" "$ns" "$port" "$wd/stderr" "$log"
}

# Client: globus-url-copy -p STREAMS [-tcp-bs TCPBUF] [-verify-checksum]
# (-p above 1 switches to MODE E, extended block mode, by itself)
peer_copy_gridftp() {
	local fn=peer_copy_gridftp
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCFILE ADDR PORT DESTPATH STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=$5 streams=$6 buf=${7:-} opts=()
	src=$(peers__abs "$2")
	peers__check_client $fn "$ns" "$src" "$dest" "$streams" "$buf" || return 1
	[ -f "$src" ] || { peers__die $fn "$src is not a regular file"; return 1; }
	opts=(-p "$streams")
	[ -n "$buf" ] && opts+=(-tcp-bs "$buf")
	[ "${PEERS_VERIFY:-1}" = 1 ] && opts+=(-verify-checksum)
	peers__client $fn "$ns" env GLOBUS_USAGE_OPTOUT=1 globus-url-copy "${opts[@]}" \
		"file://$src" "ftp://$addr:$port$dest"
}

# A tree: -r -cd (recurse, create directories), -fast (MODE E, data channels
# reused between files), -pp (pipelined commands), -cc STREAMS (files in
# flight, each on its own control connection).
peer_copy_tree_gridftp() {
	local fn=peer_copy_tree_gridftp
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCDIR ADDR PORT DESTDIR STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=${5%/} streams=$6 buf=${7:-} opts=()
	src=$(peers__abs "${2%/}")
	peers__check_client $fn "$ns" "$src" "$dest/" "$streams" "$buf" || return 1
	[ -d "$src" ] || { peers__die $fn "$src is not a directory"; return 1; }
	opts=(-r -cd -fast -pp -cc "$streams")
	[ -n "$buf" ] && opts+=(-tcp-bs "$buf")
	[ "${PEERS_VERIFY:-1}" = 1 ] && opts+=(-verify-checksum)
	peers__client $fn "$ns" env GLOBUS_USAGE_OPTOUT=1 globus-url-copy "${opts[@]}" \
		"file://$src/" "ftp://$addr:$port$dest/$(basename "$src")/"
}

# -- XRootD ------------------------------------------------------------------------
# Server: xrootd with a config of its own (export ROOTDIR, no security
# library, so no authentication; adler32 checksums on request).  xrootd
# refuses to run as root, so it runs as the package's user xrootd with the
# one capability CAP_DAC_OVERRIDE (setpriv, ambient), which lets it write
# into a ROOTDIR that root owns; the files it creates belong to xrootd.  Its
# admin path (a unix socket and state) and pid path must be writable by that
# user: they are WORKDIR/xrootd-PORT/{admin,run}.  xrootd listens on every
# address of NS (it has no option to bind one address).

peer_start_xrootd() {
	local fn=peer_start_xrootd
	[ $# -eq 5 ] || { peers__die $fn "usage: $fn NS ADDR PORT ROOTDIR WORKDIR"; return 1; }
	local ns=$1 addr=$2 port=$3 root wd=$5/xrootd-$3
	root=$(peers__abs "${4%/}")
	[ -d "$root" ] || { peers__die $fn "ROOTDIR $root is not a directory"; return 1; }
	getent passwd xrootd > /dev/null || { peers__die $fn "no user xrootd (apt-get install xrootd-server)"; return 1; }
	peers__check_server $fn "$ns" "$addr" "$port" "$5" || return 1
	mkdir -p "$wd/admin" "$wd/run" && chown xrootd:xrootd "$wd/admin" "$wd/run" || return 1
	cat > "$wd/xrootd.cfg" <<-EOF || return 1
		# written by peers.sh (jumbo's WAN benchmark)
		all.role server
		all.export $root
		all.adminpath $wd/admin
		all.pidpath $wd/run
		xrd.port $port
		xrootd.chksum max 64 adler32
	EOF
	peers__spawn "$5" "xrootd-$port" "$wd/stderr" "$ns" \
		setpriv --reuid=xrootd --regid=xrootd --init-groups \
		--inh-caps=+dac_override --ambient-caps=+dac_override \
		xrootd -c "$wd/xrootd.cfg" -l "$wd/admin/xrootd.log" || return 1
	peers__wait_listen $fn "$5" "xrootd-$port" "$ns" "$port" "$wd/stderr" "$wd/admin/xrootd.log"
}

# Client: xrdcp -f (replace) -s (no progress bar), --streams STREAMS when
# above 1 (that many data connections beside the control one; 1 means the
# control connection alone carries the data), --cksum adler32.  With
# XRD_CONNECTIONRETRY=1 (unless set): by default xrdcp retries a refused
# connection for 8 minutes (5 tries in 120 s windows) before it fails.
#
# With --cksum the copy goes to a name never used before, then is renamed
# into place (xrdfs mv, not timed): xrootd 5.5 keeps the result of a
# checksum query per path for many minutes, and answers a later query on the
# same path with it, or with "Program failed" (seen here: a tree copied twice
# to the same paths fails; a different file copied to the same path fails
# with "CheckSum error"; the same file again "verifies" against the old
# answer).  A fresh path makes the server compute the checksum of what was
# written.

# peers__xrdfs NS ADDR PORT ARGS...: one xrdfs command, quiet unless it fails
peers__xrdfs() {
	local ns=$1 addr=$2 port=$3
	shift 3
	peers__client xrdfs "$ns" env XRD_CONNECTIONRETRY="${XRD_CONNECTIONRETRY:-1}" \
		xrdfs "root://$addr:$port" "$@" > /dev/null
}

peers__uniq() { echo "peers-tmp-${EPOCHREALTIME/./}-$$-$RANDOM"; }

peer_copy_xrootd() {
	local fn=peer_copy_xrootd
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCFILE ADDR PORT DESTPATH STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=$5 streams=$6 buf=${7:-} opts=() to secs
	src=$(peers__abs "$2")
	peers__check_client $fn "$ns" "$src" "$dest" "$streams" "$buf" || return 1
	[ -f "$src" ] || { peers__die $fn "$src is not a regular file"; return 1; }
	opts=(-f -s)
	[ "$streams" -gt 1 ] && opts+=(--streams "$streams")
	to=$dest
	if [ "${PEERS_VERIFY:-1}" = 1 ]; then
		opts+=(--cksum adler32)
		to=$dest.$(peers__uniq)
	fi
	secs=$(peers__client $fn "$ns" env XRD_CONNECTIONRETRY="${XRD_CONNECTIONRETRY:-1}" \
		xrdcp "${opts[@]}" "$src" "root://$addr:$port/$to") || return 1
	if [ "$to" != "$dest" ] && ! peers__xrdfs "$ns" "$addr" "$port" mv "$to" "$dest"; then
		echo "$fn: the copy arrived as $to but could not be renamed to $dest" >&2
		return 1
	fi
	echo "$secs"
}

# A tree: xrdcp -r (recursive) --parallel STREAMS (files in flight); xrdcp
# puts SRCDIR into an existing directory.  With --cksum, that directory is
# a new DESTDIR/peers-tmp-* (xrdfs mkdir -p), renamed to DESTDIR/NAME after
# (xrdfs mv, rmdir; not timed): so DESTDIR/NAME must not exist, or be empty.
peer_copy_tree_xrootd() {
	local fn=peer_copy_tree_xrootd
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCDIR ADDR PORT DESTDIR STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=${5%/} streams=$6 buf=${7:-} opts=() into name secs
	src=$(peers__abs "${2%/}")
	peers__check_client $fn "$ns" "$src" "$dest/" "$streams" "$buf" || return 1
	[ -d "$src" ] || { peers__die $fn "$src is not a directory"; return 1; }
	name=$(basename "$src")
	opts=(-r -f -s --parallel "$streams")
	into=$dest
	if [ "${PEERS_VERIFY:-1}" = 1 ]; then
		opts+=(--cksum adler32)
		into=$dest/$(peers__uniq)
		peers__xrdfs "$ns" "$addr" "$port" mkdir -p "$into" || return 1
	fi
	secs=$(peers__client $fn "$ns" env XRD_CONNECTIONRETRY="${XRD_CONNECTIONRETRY:-1}" \
		xrdcp "${opts[@]}" "$src" "root://$addr:$port/$into/") || return 1
	if [ "$into" != "$dest" ]; then
		if ! peers__xrdfs "$ns" "$addr" "$port" mv "$into/$name" "$dest/$name"; then
			echo "$fn: the tree arrived as $into/$name but could not be renamed to $dest/$name (not empty?)" >&2
			return 1
		fi
		peers__xrdfs "$ns" "$addr" "$port" rmdir "$into" || return 1
	fi
	echo "$secs"
}

# -- ssh: scp and rsync ------------------------------------------------------------
# Server: /usr/sbin/sshd -D (foreground, no daemon, no systemd) with a config
# in WORKDIR: its own ed25519 host key, root login by the client key only
# (generated once, WORKDIR/id_ed25519, unless PEERS_SSH_KEY names one), no
# PAM, StrictModes no, internal-sftp (scp speaks SFTP since OpenSSH 9.0),
# logs to WORKDIR/sshd.log (-E, no syslog).  SetEnv SHLVL=1: bash runs
# ~/.bashrc for a command that sshd starts unless SHLVL is set, and root's
# .bashrc can be slow (0.8 s here: pyenv), which would count in every rsync.
# sshd needs its privilege separation directory /run/sshd: made if missing.

peer_start_sshd() {
	local fn=peer_start_sshd
	[ $# -eq 4 ] || { peers__die $fn "usage: $fn NS ADDR PORT WORKDIR"; return 1; }
	local ns=$1 addr=$2 port=$3 wd=$4/sshd-$3 key
	[ -x /usr/sbin/sshd ] || { peers__die $fn "no /usr/sbin/sshd (apt-get install openssh-server)"; return 1; }
	peers__check_server $fn "$ns" "$addr" "$port" "$4" || return 1
	mkdir -p "$wd" || return 1
	[ -d /run/sshd ] || mkdir -m 0755 /run/sshd || { peers__die $fn "cannot create /run/sshd"; return 1; }
	if [ ! -f "$wd/ssh_host_ed25519_key" ]; then
		ssh-keygen -q -t ed25519 -N '' -C "jumbo-bench-host" -f "$wd/ssh_host_ed25519_key" < /dev/null ||
			{ peers__die $fn "ssh-keygen (host key) failed"; return 1; }
	fi
	key=${PEERS_SSH_KEY:-}
	if [ -z "$key" ] || [ ! -f "$key" ] || [ ! -f "$key.pub" ]; then
		key=$(cd "$4" && pwd)/id_ed25519
		if [ ! -f "$key" ]; then
			ssh-keygen -q -t ed25519 -N '' -C "jumbo-bench-client" -f "$key" < /dev/null ||
				{ peers__die $fn "ssh-keygen (client key) failed"; return 1; }
		fi
	fi
	cp "$key.pub" "$wd/authorized_keys" || return 1
	cat > "$wd/sshd_config" <<-EOF || return 1
		# written by peers.sh (jumbo's WAN benchmark)
		HostKey $wd/ssh_host_ed25519_key
		PidFile $wd/sshd.pid
		AuthorizedKeysFile $wd/authorized_keys
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		UseDNS no
		PrintMotd no
		PrintLastLog no
		PermitUserRC no
		X11Forwarding no
		MaxStartups 100:30:200
		SetEnv SHLVL=1
		Subsystem sftp internal-sftp
	EOF
	/usr/sbin/sshd -t -f "$wd/sshd_config" -p "$port" -o "ListenAddress=$addr" > "$wd/check" 2>&1 ||
		{ echo "$fn: sshd rejects its config:" >&2; sed 's/^/  /' "$wd/check" >&2; return 1; }
	peers__spawn "$4" "sshd-$port" "$wd/stderr" "$ns" \
		/usr/sbin/sshd -D -f "$wd/sshd_config" -p "$port" -o "ListenAddress=$addr" -E "$wd/sshd.log" || return 1
	peers__wait_listen $fn "$4" "sshd-$port" "$ns" "$port" "$wd/stderr" "$wd/sshd.log" || return 1
	export PEERS_SSH_KEY=$key
}

PEERS_SSH_CIPHER=${PEERS_SSH_CIPHER:-aes128-gcm@openssh.com}

# peers__ssh_opts FN: the ssh client options in the array peers__o
peers__ssh_opts() {
	[ -n "${PEERS_SSH_KEY:-}" ] && [ -f "$PEERS_SSH_KEY" ] ||
		{ peers__die "$1" "no client key: start the server with peer_start_sshd first, or set PEERS_SSH_KEY"; return 1; }
	[[ $PEERS_SSH_KEY =~ [[:space:]] ]] && { peers__die "$1" "PEERS_SSH_KEY may not contain white space"; return 1; }
	peers__o=(-F none -i "$PEERS_SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
		-c "$PEERS_SSH_CIPHER")
}

# Client: scp -q -i KEY -o ... -c CIPHER -P PORT SRC root@ADDR:DESTPATH
peer_copy_scp() {
	local fn=peer_copy_scp peers__o
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCFILE ADDR PORT DESTPATH STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=$5
	src=$(peers__abs "$2")
	peers__check_client $fn "$ns" "$src" "$dest" "$6" "${7:-}" || return 1
	[ -f "$src" ] || { peers__die $fn "$src is not a regular file"; return 1; }
	peers__ssh_opts $fn || return 1
	peers__client $fn "$ns" scp -q "${peers__o[@]}" -P "$port" "$src" "root@$addr:$dest"
}

peer_copy_tree_scp() {
	local fn=peer_copy_tree_scp peers__o
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCDIR ADDR PORT DESTDIR STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=${5%/}
	src=$(peers__abs "${2%/}")
	peers__check_client $fn "$ns" "$src" "$dest/" "$6" "${7:-}" || return 1
	[ -d "$src" ] || { peers__die $fn "$src is not a directory"; return 1; }
	peers__ssh_opts $fn || return 1
	peers__client $fn "$ns" scp -q -r "${peers__o[@]}" -P "$port" "$src" "root@$addr:$dest/"
}

# Client: rsync -W (whole files, no delta algorithm) -I (--ignore-times: send
# even when size and time match, so a rerun onto the same DESTPATH moves the
# data again) -e "ssh -i KEY ... -c CIPHER -p PORT" SRC root@ADDR:DESTPATH
peer_copy_rsync() {
	local fn=peer_copy_rsync peers__o
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCFILE ADDR PORT DESTPATH STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=$5
	src=$(peers__abs "$2")
	peers__check_client $fn "$ns" "$src" "$dest" "$6" "${7:-}" || return 1
	[ -f "$src" ] || { peers__die $fn "$src is not a regular file"; return 1; }
	peers__ssh_opts $fn || return 1
	peers__client $fn "$ns" rsync -W -I -e "ssh ${peers__o[*]} -p $port" "$src" "root@$addr:$dest"
}

# A tree: rsync -a -W -I SRCDIR root@ADDR:DESTDIR/ (no slash after SRCDIR:
# it lands as DESTDIR/$(basename SRCDIR))
peer_copy_tree_rsync() {
	local fn=peer_copy_tree_rsync peers__o
	[ $# -eq 6 ] || [ $# -eq 7 ] || { peers__die $fn "usage: $fn NS SRCDIR ADDR PORT DESTDIR STREAMS [TCPBUF]"; return 1; }
	local ns=$1 src addr=$3 port=$4 dest=${5%/}
	src=$(peers__abs "${2%/}")
	peers__check_client $fn "$ns" "$src" "$dest/" "$6" "${7:-}" || return 1
	[ -d "$src" ] || { peers__die $fn "$src is not a directory"; return 1; }
	peers__ssh_opts $fn || return 1
	peers__client $fn "$ns" rsync -a -W -I -e "ssh ${peers__o[*]} -p $port" "$src" "root@$addr:$dest/"
}

# -- iperf3 ------------------------------------------------------------------------
# Server: iperf3 -s -B ADDR -p PORT --logfile WORKDIR/iperf3-PORT/iperf3.log
# (one test at a time).  Client: iperf3 -c ADDR -p PORT -P STREAMS -t SECONDS
# -J [-w TCPBUF]; prints the receiver's sum in Gbit/s.

peer_start_iperf3() {
	local fn=peer_start_iperf3
	[ $# -eq 4 ] || { peers__die $fn "usage: $fn NS ADDR PORT WORKDIR"; return 1; }
	local ns=$1 addr=$2 port=$3 wd=$4/iperf3-$3
	peers__check_server $fn "$ns" "$addr" "$port" "$4" || return 1
	mkdir -p "$wd" || return 1
	peers__spawn "$4" "iperf3-$port" "$wd/stderr" "$ns" \
		iperf3 -s -B "$addr" -p "$port" --logfile "$wd/iperf3.log" || return 1
	peers__wait_listen $fn "$4" "iperf3-$port" "$ns" "$port" "$wd/stderr" "$wd/iperf3.log"
}

peer_run_iperf3() {
	local fn=peer_run_iperf3
	[ $# -eq 5 ] || [ $# -eq 6 ] || { peers__die $fn "usage: $fn NS ADDR PORT STREAMS SECONDS [TCPBUF]"; return 1; }
	local ns=$1 addr=$2 port=$3 streams=$4 secs=$5 buf=${6:-} opts=() nsw json rc=0 bps err
	[[ $streams =~ ^[1-9][0-9]*$ ]] || { peers__die $fn "STREAMS must be a positive number, not '$streams'"; return 1; }
	[[ $secs =~ ^[1-9][0-9]*$ ]] || { peers__die $fn "SECONDS must be a positive number, not '$secs'"; return 1; }
	[ -z "$buf" ] || [[ $buf =~ ^[1-9][0-9]*$ ]] || { peers__die $fn "TCPBUF must be bytes, not '$buf'"; return 1; }
	opts=(-c "$addr" -p "$port" -P "$streams" -t "$secs" -J --connect-timeout 5000)
	[ -n "$buf" ] && opts+=(-w "$buf")
	nsw=$(peers__nsswitch) || return 1
	# shellcheck disable=SC2016
	json=$(ip netns exec "$ns" /bin/bash -c 'mount --bind "$0" /etc/nsswitch.conf && exec "$@"' \
		"$nsw" iperf3 "${opts[@]}" < /dev/null 2>&1) || rc=$?
	bps=$(printf '%s' "$json" | jq -r '.end.sum_received.bits_per_second // empty' 2> /dev/null)
	if [ "$rc" -ne 0 ] || [ -z "$bps" ]; then
		err=$(printf '%s' "$json" | jq -r '.error // empty' 2> /dev/null) || err=
		[ -n "$err" ] || err=$(printf '%s\n' "$json" | head -n 5)
		echo "$fn: iperf3 ${opts[*]} failed: $err" >&2
		return 1
	fi
	awk -v b="$bps" 'BEGIN { printf "%.3f\n", b / 1e9 }'
}

# -- stop ----------------------------------------------------------------------------

# peers_stop WORKDIR: stop every server started with WORKDIR or a directory
# below it (SIGTERM to its process group, SIGKILL after 5 s); idempotent.
peers_stop() {
	[ $# -eq 1 ] || { peers__die peers_stop "usage: peers_stop WORKDIR"; return 1; }
	local wd=$1 reg name pid st i live regs=() procs=()
	[ -d "$wd" ] || return 0
	while IFS= read -r -d '' reg; do regs+=("$reg"); done < <(find "$wd" -name peers.pids -type f -print0)
	for reg in "${regs[@]}"; do
		while read -r name pid st; do
			[[ $pid =~ ^[0-9]+$ ]] || continue
			peers__alive "$pid" "$st" || continue
			procs+=("$pid $st")
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		done < "$reg"
	done
	for ((i = 0; i < 50; i++)); do
		live=0
		for pid in "${procs[@]}"; do
			# shellcheck disable=SC2086
			peers__alive $pid && live=1
		done
		[ "$live" = 0 ] && break
		sleep 0.1
	done
	if [ "$live" = 1 ]; then
		for pid in "${procs[@]}"; do
			# shellcheck disable=SC2086
			peers__alive $pid && { kill -KILL -- "-${pid%% *}" 2>/dev/null || kill -KILL "${pid%% *}" 2>/dev/null; }
		done
	fi
	for reg in "${regs[@]}"; do rm -f "$reg"; done
	return 0
}
