#!/bin/bash
# A relay on the WAN testbed's line: alpha in site a sends to beta in site b
# through gamma, a relay in site c.  Each hop is a link of its own (a-c and
# c-b 20 ms, a-b 40 ms), so the relayed path is no longer than the direct one.
# The file arrives whole and alpha sends each byte once; then the link from
# the relay to beta is cut for 30 s in the middle of a transfer: gamma keeps
# taking alpha's blocks into staging, its session to beta waits the outage
# out (or, if it gave up, gamma tries beta again), and beta ends with the
# same bytes while alpha still sent each byte once.  The loopback version, with refusals, restarts and quotas, is
# t_relay.sh.
. "$(dirname "$0")/lib.sh"
use_testbed jbr
"$TB" up --sites 3 --link a-c:20 --link c-b:20 --link a-b:40 > "$T/up.log" 2>&1
ok $? "testbed up: a-c 20 ms, c-b 20 ms, a-b 40 ms"
B=$("$TB" addr b) C=$("$TB" addr c)
digest() { "$JUMBO" sum "$1" | cut -d' ' -f1; }

# in_site SITE NAME: start jumbod NAME in namespace SITE, listening on the
# site's address, port 4410
in_site() {
	local s=$1 n=$2 addr
	addr=$("$TB" addr "$s")
	sed -i "s/^listen = .*/listen = $addr:4410/" "$T/$n/jumbo.conf"
	"$TB" exec "$s" "$JUMBOD" --config "$T/$n/jumbo.conf" --ready-file "$T/$n/ready" >> "$T/$n/log" 2>&1 &
	_pids+=($!)
	echo $! > "$T/$n/pid"
	for _ in $(seq 100); do [ -f "$T/$n/ready" ] && return 0; sleep 0.05; done
	echo "# jumbod $n did not start in site $s:"; sed 's/^/#   /' "$T/$n/log"; return 1
}
# pin X Y ADDR: X's [peer Y] gets Y's address (trust writes loopback ones only)
pin() { printf 'address = %s:4410\n' "$3" >> "$T/$1/jumbo.conf"; }

# beta takes what alpha sends it, through gamma or not; gamma relays for
# alpha, to beta; alpha knows both by address
site_new alpha; site_new beta; site_new gamma
trust beta alpha 'write = .'; trust beta gamma 'write = .'
in_site b beta || exit 1
printf '\n[relay]\nstaging = %s\n' "$T/gamma/staging" >> "$T/gamma/jumbo.conf"
trust gamma alpha 'relay = yes'
trust gamma beta; pin gamma beta "$B"
in_site c gamma || exit 1
trust alpha gamma; pin alpha gamma "$C"
trust alpha beta; pin alpha beta "$B"
send() { "$TB" exec a "$JUMBO" --config "$T/alpha/jumbo.conf" send "$@"; }

SIZE=$((1024 * 1024 * 1024))
ldd "$JUMBOD" | grep -q libasan && SIZE=$((256 * 1024 * 1024)) # the bytes are the same; ASan only slows them
MIB=$((SIZE >> 20))
head -c $SIZE /dev/urandom > "$T/big.bin"
WANT=$(digest "$T/big.bin")

# 1. Through gamma, on a clean line.
t0=$(date +%s.%N)
send --via gamma --json -q "$T/big.bin" beta:in/one.bin > "$T/one.json"
ok $? "alpha sends $MIB MiB to beta through gamma (site a to b through c)"
diag "$MIB MiB through the relay in $(/usr/bin/python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s"
is "$(digest "$T/beta/root/in/one.bin")" "$WANT" "beta holds the same bytes"
is "$(jsonget "$T/one.json" bytes_sent)" "$SIZE" "alpha sent each byte once"
like "relay: alpha's transfer through this site: $SIZE bytes forwarded in 1 attempt; staging freed" \
	"$(cat "$T/gamma/log")" "gamma forwarded every byte, at the first attempt, and freed its staging"
rm -f "$T/beta/root/in/one.bin"

# 2. The link from gamma to beta cut for 30 s half way.  Paced at 1 Gbit/s
# (about 9 s for 1 GiB, 2 s under ASan) the cut comes while alpha is still
# sending; alpha's link to gamma stays up all along and alpha's blocks go
# on into staging.  A 30 s outage is shorter than TCP_USER_TIMEOUT (60 s),
# so gamma's connections to beta usually live through it and carry on at
# their next retransmission (by then up to 28 s apart); the odd one that
# times out first makes gamma try beta again.
send --via gamma --rate 1G --json -q "$T/big.bin" beta:in/cut.bin > "$T/cut.json" 2> "$T/cut.err" & p=$!
part=$T/beta/root/in/.cut.bin.jumbo-part
kib() { du -k "$part" 2> /dev/null | cut -f1; }
for _ in $(seq 400); do
	[ "$(kib)" -ge $((SIZE >> 14)) ] 2> /dev/null && break # 1/16 of it
	sleep 0.05
done
at=$(kib)
"$TB" cut c-b > /dev/null
cut_at=$(date +%s.%N)
ok "$(kill -0 $p 2> /dev/null && [ "${at:-0}" -gt 0 ]; echo $?)" \
	"c-b cut with $((${at:-0} >> 10)) MiB of $MIB at beta, alpha still sending"
sleep 30
"$TB" restore c-b > /dev/null
restored_at=$(date +%s.%N)
held=$(kib)
staged=$(find "$T/gamma/staging" -type f -printf '%s\n' 2> /dev/null | sort -n | tail -1) # its size, holes and all
ok "$([ "${held:-0}" -lt $((SIZE >> 10)) ] && [ "${staged:-0}" = "$SIZE" ]; echo $?)" \
	"when c-b comes back beta has $((${held:-0} >> 10)) MiB and gamma has staged all $((${staged:-0} >> 20)): alpha went on sending"
wait $p; rc=$?
done_at=$(date +%s.%N)
is "$rc" 0 "alpha's send survives the 30 s cut"
[ "$rc" = 0 ] || diag "$(cat "$T/cut.err")"
diag "delivered $(/usr/bin/python3 -c "print('%.1f s after the cut, %.1f s after the restore' % \
	($done_at - $cut_at, $done_at - $restored_at))")"
is "$(digest "$T/beta/root/in/cut.bin")" "$WANT" "beta holds the same bytes"
is "$(jsonget "$T/cut.json" bytes_sent)" "$SIZE" "alpha sent each byte once: gamma held them through the cut"
cutlog=$(sed -n '\|in/cut.bin|,$p' "$T/gamma/log")
# The cut is an outage, not a reset: gamma's connections to beta wait it out
# (TCP retransmits) and the session goes on once the link is back, or, if
# it gave up meanwhile, gamma tries beta again.  Either way, as logged:
diag "gamma made $(echo "$cutlog" | grep -c 'trying again in') further attempts at beta"
like "relay: alpha's transfer through this site: [0-9]+ bytes forwarded in [0-9]+ attempts?; staging freed" "$cutlog" \
	"gamma forwarded it all and freed its staging"
echo "$cutlog" | grep -E 'relay: alpha|trying again' | sed 's/^/# gamma: /'
is "$(find "$T/gamma/staging" -type f 2> /dev/null | wc -l)" 0 "nothing is left in gamma's staging"

"$TB" down
ok "$(ip netns list | grep -c "^$JBW_PREFIX-" | grep -qx 0; echo $?)" "testbed down removes its namespaces"
done_testing
