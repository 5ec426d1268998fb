#!/bin/bash
# The WAN testbed's links in short: three sites whose pairs each have their
# own round trip (a-c and c-b 20 ms, a-b 40 ms: a relay at c is no longer
# than the direct path), one link cut and restored while a TCP connection
# across it waits.  Keeps `testbed up --link`, `cut` and `restore` working;
# the fuller check is `tests/bench/wan/verify --line`.
. "$(dirname "$0")/lib.sh"
use_testbed jbl
PY=/usr/bin/python3
"$TB" up --sites 3 --link a-c:20 --link c-b:20 --link a-b:40 > "$T/up.log" 2>&1
ok $? "testbed up: 3 sites, a-c 20 ms, c-b 20 ms, a-b 40 ms"
A=$("$TB" addr a) B=$("$TB" addr b) C=$("$TB" addr c)

# ping FROM TO-ADDR COUNT: "received least mean" (least and mean "-" if none
# came back); -W 1, so a lost ping costs a second at most
ping_() {
	"$TB" exec "$1" ping -q -n -c "$3" -i 0.2 -W 1 "$2" 2>&1 |
		awk '/transmitted/ {r = $4} /^rtt/ {split($4, v, "/"); mn = v[1]; av = v[2]}
			END {printf "%d %s %s\n", r, mn == "" ? "-" : mn, av == "" ? "-" : av}'
}
# near MS WANT: within 1 ms (and 0.1 ms for the delay line's batching)
near() { $PY -c "import sys; sys.exit(0 if '$1' != '-' and abs(float('$1') - $2) <= 1.1 else 1)"; echo $?; }

# the least of 5 round trips, every pair at once (t_wan.sh: a busy 2-CPU
# machine only adds to some of them)
(ping_ a "$C" 5 > "$T/ac" & ping_ c "$B" 5 > "$T/cb" & ping_ a "$B" 5 > "$T/ab"; wait)
for l in "ac 20 a-c" "cb 20 c-b" "ab 40 a-b"; do
	read -r f want name <<< "$l"
	read -r got mn av < "$T/$f"
	ok "$(near "$mn" "$want")" "$name: round trip $mn ms (least of 5, $got answered; mean $av) is within 1.1 ms of $want ms"
done

# a TCP connection from c to b, open across the cut: the cut must be an
# outage (the bytes wait and then arrive), not a reset
cat > "$T/echo.py" <<'EOP'
import socket, sys, time
if sys.argv[1] == 'server':
    s = socket.create_server((sys.argv[2], 4499))
    c, _ = s.accept()
    line = c.makefile('rb').readline()
    open(sys.argv[3], 'w').write('%s %.3f\n' % (line.decode().strip(), time.time()))
    c.sendall(line)
else:
    c = socket.create_connection((sys.argv[2], 4499), timeout=5)
    open(sys.argv[3] + '.up', 'w').close()
    while not __import__('os').path.exists(sys.argv[3] + '.go'):
        time.sleep(0.02)
    t0 = time.time()
    c.sendall(b'across the cut\n')
    c.settimeout(20)
    back = c.makefile('rb').readline().decode().strip()
    print('%s %.1f' % (back.replace(' ', '_'), time.time() - t0))
EOP
"$TB" exec b $PY "$T/echo.py" server "$B" "$T/got" & _pids+=($!)
sleep 0.3
"$TB" exec c $PY "$T/echo.py" client "$B" "$T/cl" > "$T/client.out" 2>&1 & client=$!
for _ in $(seq 100); do [ -f "$T/cl.up" ] && break; sleep 0.05; done
ok "$([ -f "$T/cl.up" ]; echo $?)" "a TCP connection from c to b is open"

"$TB" cut c-b > /dev/null
ok $? "cut c-b"
"$TB" cut b-c > /dev/null
ok $? "cut b-c again: idempotent (the same link)"
touch "$T/cl.go"
# at once, in a subshell: its `wait` is for the pings only
# (10 each, about 3 s of outage)
(ping_ c "$B" 10 > "$T/cut-cb" & ping_ b "$C" 10 > "$T/cut-bc" & ping_ a "$C" 10 > "$T/cut-ac"; wait)
read -r got _ < "$T/cut-cb"
is "$got" 0 "while cut, no ping from c to b is answered"
read -r got _ < "$T/cut-bc"
is "$got" 0 "nor from b to c"
read -r got mn _ < "$T/cut-ac"
ok "$([ "$got" = 10 ] && [ "$(near "$mn" 20)" = 0 ]; echo $?)" "while a to c still answers: $got of 10, least $mn ms"
ok "$([ ! -s "$T/got" ]; echo $?)" "the bytes sent across the cut have not arrived"
st=$("$TB" status)
like '^link b-c rtt_ms=20 loss=0 queue=[0-9]+ cut=yes$' "$(echo "$st" | grep '^link b-c')" "status: b-c 20 ms, cut"
like '^link a-c rtt_ms=20 loss=0 queue=[0-9]+ cut=no$' "$(echo "$st" | grep '^link a-c')" "status: a-c 20 ms, not cut"

restored_at=$(date +%s.%N)
"$TB" restore c-b > /dev/null && "$TB" restore c-b > /dev/null
ok $? "restore c-b, twice"
(ping_ c "$B" 5 > "$T/re-cb" & ping_ b "$C" 5 > "$T/re-bc"; wait)
read -r got mn _ < "$T/re-cb"
ok "$([ "$got" = 5 ] && [ "$(near "$mn" 20)" = 0 ]; echo $?)" "restored: c to b answers again, $got of 5, least $mn ms"
read -r got _ < "$T/re-bc"
is "$got" 5 "and b to c"
wait "$client"
ok $? "the TCP connection lived through the cut"
read -r back secs < "$T/client.out"
is "$back" "across_the_cut" "its bytes came back, ${secs:-?} s after they were sent"
read -r _ _ _ arrived < "$T/got"
ok "$($PY -c "import sys; sys.exit(0 if ${arrived:-0} >= $restored_at else 1)"; echo $?)" \
	"and reached b only after the restore ($($PY -c "print('%.1f' % (${arrived:-0} - $restored_at))") s after it)"
like '^link b-c .* cut=no$' "$("$TB" status | grep '^link b-c')" "status: b-c not cut"

"$TB" up --sites 2 --link a-c:20 > "$T/bad.log" 2>&1
ok "$([ $? != 0 ] && grep -q 'site c is not up' "$T/bad.log"; echo $?)" "a link to a site that is not up is refused: $(cat "$T/bad.log")"
"$TB" down
ok "$(ip netns list | grep -c "^$JBW_PREFIX-" | grep -qx 0; echo $?)" "testbed down removes its namespaces"
done_testing
