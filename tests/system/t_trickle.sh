#!/bin/bash
# Slow clients hold nothing for long (issue 17).  A connection to the
# transfer port has [site] handshake_timeout for its TLS handshake and HELLO
# (or JOIN) in all, an API connection api_request_timeout for each request's
# headers and body in all; one address may have handshakes_per_address (and
# api_connections_per_address) at once; and when the gate of those still in
# their handshake (max_handshakes; 60 for the API) is full, a newcomer takes
# the place of the one that has waited longest.  So 250 connections
# trickling a TLS ClientHello a byte a second into the transfer port and 70
# trickling headers into the API, all reconnecting a second after they are
# closed, do not keep a pinned peer's `jumbo ls` or `curl /api/v1/health`
# waiting.  The trickling clients (trickle.py) come from 127.0.0.2 and from
# 127.0.1.x and 127.0.2.x (all of 127/8 is loopback), the legitimate ones from
# 127.0.0.1.
. "$(dirname "$0")/lib.sh"
need curl
TRICKLE=$(dirname "$0")/trickle.py
DEADLINE=5
site_new alpha; site_new beta
cat >> "$T/beta/jumbo.conf" <<EOC
handshake_timeout = $DEADLINE
max_handshakes = 128
handshakes_per_address = 16
api_request_timeout = $DEADLINE
api_connections_per_address = 8
EOC
trust beta alpha
site_start beta || exit 1
trust alpha beta
port=$(site_port beta)
api=$(jsonget "$T/beta/ready" api)
echo hi > "$T/hi.txt"
jb send -q "$T/hi.txt" beta:hi.txt; ok $? "alpha sends beta a file: the sites trust each other"

# trickle KIND PORT SECONDS ARGS... > JSON: trickle.py, one JSON line per group
trickle() { /usr/bin/python3 "$TRICKLE" "$@"; }
# field FILE ADDR KEY: one group's KEY
field() { /usr/bin/python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["addr"] == sys.argv[2]: print(d[sys.argv[3]])' "$@"; }
# longest FILE: the longest any connection of any group lived, in s
longest() { /usr/bin/python3 -c 'import json,sys
print(max([t for l in open(sys.argv[1]) for t in json.loads(l)["lifetimes"]] or [0]))' "$1"; }
# total FILE: connections made by all the groups
total() { /usr/bin/python3 -c 'import json,sys; print(sum(json.loads(l)["made"] for l in open(sys.argv[1])))' "$1"; }
# within X LO HI: LO <= X <= HI (decimals)
within() { /usr/bin/python3 -c 'import sys; x, lo, hi = map(float, sys.argv[1:]); sys.exit(not lo <= x <= hi)' "$@"; }
metric() { curl -s "http://127.0.0.1:$api/metrics" | sed -n "s/^$1 //p"; }

# --- 1. a connection that sends nothing is closed at the deadline ---
# --- 2. the one connection over the cap of one address is closed at once ---
trickle silent "$port" $((DEADLINE + 2)) --once 127.0.0.9:1 > "$T/silent.json" 2> /dev/null & s1=$!
trickle silent "$api" $((DEADLINE + 2)) --once 127.0.0.9:1 > "$T/silent-api.json" 2> /dev/null & s2=$!
trickle silent "$port" 2 --once 127.0.0.3:17 > "$T/cap.json" 2> /dev/null & c1=$!
trickle silent "$api" 2 --once 127.0.0.3:9 > "$T/cap-api.json" 2> /dev/null & c2=$!
wait $c1 $c2
is "$(field "$T/cap.json" 127.0.0.3 at_once):$(field "$T/cap.json" 127.0.0.3 held_end)" 1:16 \
	"17 connections from one address to the transfer port: the 17th is closed at once, 16 stay (handshakes_per_address = 16)"
like 'connection from 127.0.0.3 closed at once: 16 connections from it are in their handshake already' \
	"$(cat "$T/beta/log")" "and the daemon says why"
is "$(field "$T/cap-api.json" 127.0.0.3 at_once):$(field "$T/cap-api.json" 127.0.0.3 held_end)" 1:8 \
	"9 connections from one address to the API: the 9th is closed at once, 8 stay (api_connections_per_address = 8)"
like 'api: a connection closed at once: its address has 8 open' "$(cat "$T/beta/log")" "and the daemon says why"
wait $s1 $s2
for f in silent silent-api; do
	life=$(field "$T/$f.json" 127.0.0.9 lifetimes | tr -d '[]')
	what=$([ $f = silent ] && echo "the transfer port" || echo "the API")
	ok "$(within "${life:-0}" $((DEADLINE)).0 $((DEADLINE)).9; echo $?)" \
		"a connection to $what that sends nothing is closed after ${life:-never} s (deadline $DEADLINE s)"
done
like "connection from 127.0.0.9 closed: no HELLO or JOIN within $DEADLINE s of connecting" "$(cat "$T/beta/log")" \
	"the daemon logs the transfer port's"
like "api: connection from 127.0.0.9 closed: no whole request within $DEADLINE s" "$(cat "$T/beta/log")" \
	"and the API's"

# --- 3. the siege: 250 + 70 trickling connections, 20 s ---
many() { local p=$1 n=$2 k=$3 i; for i in $(seq 1 "$n"); do printf '%s%s:%s\n' "$p" "$i" "$k"; done; }
log0=$(wc -l < "$T/beta/log")
# transfer port: 40 from 127.0.0.2 (16 at a time get in), 2 each from 105 others
trickle tls "$port" 20 127.0.0.2:40 $(many 127.0.1. 105 2) > "$T/tls.json" 2> "$T/tls.ready" & t1=$!
# API: 16 from 127.0.0.2 (8 at a time), 1 each from 54 others
trickle http "$api" 20 127.0.0.2:16 $(many 127.0.2. 54 1) > "$T/http.json" 2> "$T/http.ready" & t2=$!
for _ in $(seq 100); do [ -s "$T/tls.ready" ] && [ -s "$T/http.ready" ] && break; sleep 0.1; done
sleep 2 # the gates fill
ls_max=0 h_max=0 ls_bad=0 h_bad=0 times=
for i in $(seq 1 8); do
	a=$(date +%s%N)
	jb ls beta: > "$T/ls.out" 2> "$T/ls.err" && grep -q 'hi.txt' "$T/ls.out" || ls_bad=$((ls_bad + 1))
	b=$(date +%s%N)
	[ "$(curl -s -m 10 "http://127.0.0.1:$api/api/v1/health" | jsonget /dev/stdin status 2> /dev/null)" = ok ] ||
		h_bad=$((h_bad + 1))
	c=$(date +%s%N)
	l=$(((b - a) / 1000000)) h=$(((c - b) / 1000000))
	[ $l -gt $ls_max ] && ls_max=$l
	[ $h -gt $h_max ] && h_max=$h
	times="$times ls $l ms, health $h ms;"
	sleep 1.5
done
diag "under siege, $times"
is "$ls_bad" 0 "'jumbo ls beta:' from a pinned peer lists beta's files 8 times over 16 s of siege"
ok "$([ "$ls_max" -lt 2000 ]; echo $?)" "each within 2 s (the longest: $ls_max ms)"
is "$h_bad" 0 "GET /api/v1/health answers ok 8 times over the same 16 s"
ok "$([ "$h_max" -lt 2000 ]; echo $?)" "each within 2 s (the longest: $h_max ms)"
wait $t1 $t2
diag "the tricklers made $(total "$T/tls.json") connections to the transfer port, $(total "$T/http.json") to the API"
l=$(longest "$T/tls.json")
ok "$(within "$l" 0 $((DEADLINE)).9; echo $?)" "none of the transfer port's trickling connections lived past the deadline (the longest: $l s)"
l=$(longest "$T/http.json")
ok "$(within "$l" 0 $((DEADLINE)).9; echo $?)" "none of the API's did either (the longest: $l s)"
ok "$([ "$(field "$T/tls.json" 127.0.0.2 at_once)" -gt 0 ]; echo $?)" \
	"127.0.0.2's connections over its 16 were closed at once ($(field "$T/tls.json" 127.0.0.2 at_once) times)"
pushed=$(metric 'jumbo_connections_closed_total{reason="pushed_out"}')
per_addr=$(metric 'jumbo_connections_closed_total{reason="per_address"}')
api_pushed=$(metric 'jumbo_api_connections_closed_total{reason="pushed_out"}')
api_late=$(metric 'jumbo_api_connections_closed_total{reason="request_timeout"}')
late=$(metric 'jumbo_connections_closed_total{reason="handshake_timeout"}')
diag "closed: transfer port pushed_out $pushed, per_address $per_addr, handshake_timeout $late; API pushed_out $api_pushed, request_timeout $api_late"
ok "$([ "${pushed:-0}" -gt 0 ] && [ "${api_pushed:-0}" -gt 0 ]; echo $?)" \
	"both gates were full: newcomers took the oldest places ($pushed on the transfer port, $api_pushed on the API)"
# what a flood may write into the log: each kind of line is a burst of 5,
# then one a second
lines=$(tail -n +"$((log0 + 1))" "$T/beta/log" | grep -c 'connection')
ok "$([ "$lines" -le $((8 * (5 + 25))) ] && [ "$lines" -lt "$pushed" ]; echo $?)" \
	"the log took $lines lines about connections for the $((pushed + per_addr)) closed on the transfer port alone"
like 'more like it since the last such line' "$(tail -n +"$((log0 + 1))" "$T/beta/log")" "and says how many it left out"

# --- 4. afterwards ---
sleep 0.5
is "$(metric jumbo_handshakes)" 0 "once they are gone, no connection is left in its handshake"
jb send -q "$T/hi.txt" beta:after.txt; ok $? "a transfer succeeds"
is "$(cat "$T/beta/root/after.txt")" hi "and arrives"
ok "$(kill -0 "$(cat "$T/beta/pid")"; echo $?)" "the daemon is still running"
pid=$(cat "$T/beta/pid")
kill -TERM "$pid"; wait "$pid"; is $? 0 "and stops on SIGTERM with exit 0"
! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/beta/log"; ok $? "no sanitizer report in its log"
done_testing
