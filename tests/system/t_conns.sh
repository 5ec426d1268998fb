#!/bin/bash
# Connections: keepalive on every control and data socket at both ends, the
# gate of connections in their handshake (bounded in all and per address,
# the newest taking the oldest's place), and a daemon stopped by SIGTERM in
# the middle of transfers (it ends them cleanly, and the same command
# resumes afterwards).
. "$(dirname "$0")/lib.sh"
two_sites
head -c 64M /dev/urandom > "$T/e.bin"
port=$(site_port beta)

# established TCP connections of beta's port, seen from the daemon (sport) or
# from the client (dport), with their timers
conns() { ss -tnoH state established "( $1 = :$port )"; }
# keepalive_check SIDE WHAT: while a paced transfer runs, every connection on
# SIDE shows a keepalive timer that started at TCP_KEEPIDLE (30 s), not at the
# kernel's default of 2 hours
keepalive_check() {
	local side=$1 what=$2 list n=0 bad=0
	for _ in $(seq 1 50); do
		list=$(conns "$side")
		n=$(printf '%s\n' "$list" | grep -c 'timer:(keepalive,[0-9.]*sec')
		[ "$n" -ge 3 ] && break
		sleep 0.1
	done
	bad=$(printf '%s\n' "$list" | grep -vc 'timer:(keepalive,\(2[0-9]\|30\)[0-9.]*sec')
	is "$n:$bad" "3:0" "$what: control and 2 data connections all have a 30 s keepalive timer"
	[ "$bad" = 0 ] || diag "$list"
}
# 1. the daemon receives (push): its 3 sockets only read, so ss shows their keepalive timer
"$JUMBO" --config "$JBCONF" send -P 2 --rate 100M -q "$T/e.bin" beta:ka.bin 2> "$T/ka.err" &
cpid=$!
keepalive_check sport "jumbod (receiving a push)"
wait $cpid; ok $? "the paced push completes"
# 2. the client receives (get): now the client's sockets are the idle ones
"$JUMBO" --config "$JBCONF" get -P 2 --rate 100M -q beta:ka.bin "$T/ka-back.bin" 2> "$T/ka.err" &
cpid=$!
keepalive_check dport "jumbo get (receiving a pull)"
wait $cpid; ok $? "the paced get completes"
is "$(sha "$T/ka-back.bin")" "$(sha "$T/e.bin")" "bit-identical"

# --- connections in their handshake: a bounded gate ---
# Before its HELLO or JOIN a connection waits at the gate: at most
# max_handshakes at once (256 by default, fewer with few descriptors),
# handshakes_per_address (128) from one address.  The cap of 512 connection
# threads is then reached by pinned peers' sessions only (tests/system/
# t_trickle.sh has the deadlines and slow clients).
# hold SRC[,SRC...] N PORT SECONDS [EXPECT]: open N idle TCP connections from
# the addresses SRC in turn, print how many the daemon closed (once a second
# has passed without another, after EXPECT of them if given: the daemon may
# take a while to accept them all on a busy machine), hold the rest for
# SECONDS
hold() {
	exec /usr/bin/python3 - "$@" <<'EOP'
import select, socket, sys, time
srcs, n, port, secs = sys.argv[1].split(','), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
expect = int(sys.argv[5]) if len(sys.argv) > 5 else 0
socks = [socket.create_connection(('127.0.0.1', port), timeout=10, source_address=(srcs[i % len(srcs)], 0))
         for i in range(n)]
p = select.poll()
for s in socks:
    p.register(s, select.POLLIN)
closed, start = 0, time.monotonic()
last = start
while (closed < expect or time.monotonic() - last < 1) and time.monotonic() - start < 15:
    for fd, ev in p.poll(100):
        p.unregister(fd)
        s = socket.socket(fileno=fd)
        try:
            data = s.recv(1)
        except OSError:
            data = b''
        s.detach()
        if data == b'':
            closed += 1
            last = time.monotonic()
print(closed, flush=True)
time.sleep(secs)
EOP
}
gate=$(sed -n 's/.*site beta: at most \([0-9]*\) connections in their handshake at once, \([0-9]*\) from one address.*/\1 \2/p' "$T/beta/log" | tail -1)
max=${gate% *} per=${gate#* }
is "$gate" "256 128" "the gate: 256 connections in their handshake at once, 128 from one address (the defaults)"
echo hi > "$T/hi.txt"
(hold 127.0.0.1 50 "$port" 8 > "$T/hold50") &
hpid=$!
sleep 1.5
jb send -q "$T/hi.txt" beta:while-50-idle.txt; ok $? "a transfer succeeds while 50 idle connections are open"
is "$(cat "$T/beta/root/while-50-idle.txt")" hi "and arrives"
kill $hpid 2>/dev/null; wait $hpid 2>/dev/null
is "$(cat "$T/hold50")" 0 "none of the 50 was closed by the daemon"
is "$(hold 127.0.0.2 $((per + 12)) "$port" 0 12)" 12 "$((per + 12)) idle connections from one address: the 12 beyond its $per are closed at once"
like 'connection from 127.0.0.2 closed at once: 128 connections from it are in their handshake already' \
	"$(cat "$T/beta/log")" "the daemon logs it"
# from three addresses, none over its cap: the gate fills, and each newcomer
# takes the place of the one that has waited longest
(hold 127.0.0.3,127.0.0.4,127.0.0.5 300 "$port" 3 $((300 - max)) > "$T/gate300") &
hpid=$!
for _ in $(seq 160); do [ -s "$T/gate300" ] && break; sleep 0.1; done
jb send -q "$T/hi.txt" beta:while-full.txt; ok $? "a transfer succeeds while the gate is full of idle connections"
is "$(cat "$T/beta/root/while-full.txt")" hi "and arrives"
wait $hpid
is "$(cat "$T/gate300")" "$((300 - max))" \
	"300 idle connections from 3 addresses: the $((300 - max)) oldest were closed at once, making room for the newest"
like 'closed after [0-9.]+ s without HELLO or JOIN: 256 connections were in their handshake' "$(cat "$T/beta/log")" \
	"the daemon logs it"
sleep 1
is "$(hold 127.0.0.6 "$per" "$port" 0)" 0 "once they are gone, $per connections are held again: every thread gave its place back"
sleep 1
jb send -q "$T/hi.txt" beta:after-cap.txt; ok $? "and a transfer succeeds afterwards"
ok "$(kill -0 "$(cat "$T/beta/pid")"; echo $?)" "the daemon is still running"

# --- SIGTERM in the middle of transfers ---
# stop_beta: SIGTERM the daemon and wait for it; sets rc (its exit status)
# and ms (how long it took)
stop_beta() {
	local pid t0
	pid=$(cat "$T/beta/pid")
	t0=$(date +%s%N)
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
}
sanitizer_clean() { ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer' "$T/beta/log"; }
# wait_bytes FILE-PATTERN DIR BYTES: until a partial file has that many bytes allocated
wait_bytes() {
	for _ in $(seq 1 200); do
		f=$(find "$1" -name "$2" 2>/dev/null | head -1)
		[ -n "$f" ] && [ $(( $(stat -c %b "$f") * 512 )) -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}
# 1. a push (the daemon receives)
"$JUMBO" --config "$JBCONF" send -P 2 --rate 100M -q "$T/e.bin" beta:stop/ 2> "$T/stop1.err" &
cpid=$!
wait_bytes "$T/beta/root/stop" '.e.bin.jumbo-part' $((24 << 20)); ok $? "the paced push is under way"
stop_beta
is "$rc" 0 "SIGTERM during a push: jumbod exits 0"
ok "$([ "$ms" -lt 4000 ]; echo $?)" "within a few seconds (${ms} ms)"
wait $cpid; is $? 1 "the client fails"
like 'jumbo: beta: site beta is shutting down' "$(cat "$T/stop1.err")" "and says the site is shutting down"
like 'alpha: push stop failed: site beta is shutting down' "$(cat "$T/beta/log")" "the daemon logs the session it ended"
like 'site beta: stopped$' "$(cat "$T/beta/log")" "and that it stopped after its sessions ended"
ok "$(sanitizer_clean; echo $?)" "no sanitizer report in the daemon's log"
ok "$([ ! -e "$T/beta/root/stop/e.bin" ]; echo $?)" "no file under its final name"
site_start beta; set_address alpha beta; port=$(site_port beta)
jb send -P 2 --json "$T/e.bin" beta:stop/ > "$T/stop1.json"; ok $? "after a restart the same command completes"
sent=$(jsonget "$T/stop1.json" bytes_sent)
ok "$([ "$sent" -lt $((64 << 20)) ]; echo $?)" "resuming: sent $((sent >> 20)) of 64 MiB"
is "$(sha "$T/beta/root/stop/e.bin")" "$(sha "$T/e.bin")" "bit-identical"
like 'resuming with [0-9]+ of 8 blocks' "$(cat "$T/beta/log")" "the daemon resumed from its journal"

# 2. a get (the daemon sends), and a connection that has not said anything yet
mkdir -p "$T/pull"
"$JUMBO" --config "$JBCONF" get -P 2 --rate 100M -q beta:stop/e.bin "$T/pull/" 2> "$T/stop2.err" &
cpid=$!
wait_bytes "$T/pull" '.e.bin.jumbo-part' $((24 << 20)); ok $? "the paced get is under way"
exec 9<>/dev/tcp/127.0.0.1/"$port"
stop_beta
exec 9>&-
is "$rc" 0 "SIGTERM during a get: jumbod exits 0"
ok "$([ "$ms" -lt 4000 ]; echo $?)" "within a few seconds (${ms} ms)"
wait $cpid; is $? 1 "the client fails"
like 'jumbo: beta: site beta is shutting down' "$(cat "$T/stop2.err")" "and says the site is shutting down"
ok "$(sanitizer_clean; echo $?)" "no sanitizer report in the daemon's log"
site_start beta; set_address alpha beta; port=$(site_port beta)
jb get -P 2 --json beta:stop/e.bin "$T/pull/" > "$T/stop2.json"; ok $? "after a restart the same get completes"
sent=$(jsonget "$T/stop2.json" bytes_sent)
ok "$([ "$sent" -lt $((64 << 20)) ]; echo $?)" "resuming: moved $((sent >> 20)) of 64 MiB"
is "$(sha "$T/pull/e.bin")" "$(sha "$T/e.bin")" "bit-identical"

# 3. sessions still waiting for their streams: their threads end during the
# stop, and must have ended completely (thread-exit handlers included) before
# the daemon frees what they use and exits (under ASan: no leak report)
EVIL=$(dirname "$0")/evil_client.py
fails=0
for i in 1 2 3 4 5; do
	# one session with a refused stream, two whose streams never come
	timeout 20 /usr/bin/python3 "$EVIL" "127.0.0.1:$port" "$T/alpha/id" join-bad-version > /dev/null 2>&1
	holds=()
	for k in 1 2; do
		timeout 30 /usr/bin/python3 "$EVIL" "127.0.0.1:$port" "$T/alpha/id" hold > "$T/hold$k" 2>&1 &
		holds+=($!)
	done
	for _ in $(seq 100); do [ "$(cat "$T/hold1" "$T/hold2" | grep -c WAITING)" = 2 ] && break; sleep 0.05; done
	stop_beta
	kill "${holds[@]}" 2> /dev/null; wait "${holds[@]}" 2> /dev/null
	if [ "$rc" != 0 ] || ! sanitizer_clean; then fails=$((fails + 1)); fi
	site_start beta; port=$(site_port beta)
done
is "$fails" 0 "SIGTERM with sessions waiting for their streams, 5 times: exit 0, no sanitizer report"
# a pushing session plans its manifest while it waits (it ends like a running
# one), a pulling one is refused
like 'alpha: (refused|push evil-hold failed): site beta is shutting down' "$(cat "$T/beta/log")" \
	"the waiting sessions are told"
set_address alpha beta

# 4. an idle daemon stops at once
stop_beta
is "$rc" 0 "SIGTERM of an idle jumbod: exit 0"
ok "$([ "$ms" -lt 1500 ]; echo $?)" "at once (${ms} ms)"
done_testing
