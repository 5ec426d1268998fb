#!/bin/bash
# Store-and-forward through relays.  alpha sends to beta through r1, and
# through r1 and r2: each relay holds every block durably in its staging
# directory and passes it on while later blocks still arrive, and alpha's
# send returns only once beta has verified every file.  Relays refuse what
# they may not relay, with a sentence; beta checks a relayed write against
# both alpha's and the relay's rights.  A relay killed half way and started
# again, and a destination that goes away and comes back, cost the origin no
# block twice.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
A() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
B() { "$JUMBO" --config "$T/beta/jumbo.conf" "$@"; }
digest() { "$JUMBO" sum "$1" | cut -d' ' -f1; }
staged() { find "$T/$1/staging" -type f 2> /dev/null | wc -l; }

site_new alpha; site_new r1; site_new r2; site_new r4; site_new beta
BETA_PORT=$(free_port)
sed -i "s/^listen = 127.0.0.1:0$/listen = 127.0.0.1:$BETA_PORT/" "$T/beta/jumbo.conf"
# beta takes alpha's data under incoming/, and what the relays bring it
trust beta alpha 'write = incoming'; trust beta r1 'write = .'; trust beta r2 'write = .'; trust beta r4 'write = .'
site_start beta || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
for r in r1 r2; do
	printf '\n[relay]\nstaging = %s\n' "$T/$r/staging" >> "$T/$r/jumbo.conf"
	trust $r beta
done
trust r1 alpha 'relay = yes'; trust r2 alpha 'relay = yes'
trust r2 r1 'relay = yes'            # r1 hands r2 alpha's transfers: no rights of its own
site_start r2 || exit 1
trust r1 r2
site_start r1 || exit 1
trust alpha r1; trust alpha r2; trust alpha beta

SIZE=$((1024 * 1024 * 1024))
ldd "$JUMBOD" | grep -q libasan && SIZE=$((256 * 1024 * 1024)) # the bytes are the same; ASan only slows them
head -c $SIZE /dev/urandom > "$T/big.bin"
WANT=$(digest "$T/big.bin")

# 1. Through one relay.
out=$(A send --via r1 --json -q "$T/big.bin" beta:incoming/one.bin); rc=$?
is "$rc" 0 "alpha sends $((SIZE >> 20)) MiB to beta through r1"
is "$(digest "$T/beta/root/incoming/one.bin")" "$WANT" "beta holds the same bytes"
is "$(echo "$out" | jsonget /dev/stdin bytes_sent)" "$SIZE" "alpha sent each byte once"
# custody receipts: r1 signs for what it staged, beta for what it committed,
# each with its site key, and each names what alpha sent
rcpt() { echo "$out" | $PY -c 'import json,sys
print(" ".join("%s:%s:%s:%s:%d" % (r["hop"], r["holds"], r["verified"], r["matches"], r["files"]) for r in json.load(sys.stdin).get("receipts", [])))'; }
is "$(rcpt)" "r1:staged:True:True:1 beta:committed:True:True:1" "alpha has r1's and beta's signed receipts, both for what it sent"
like "alpha: receipt signed for 1 entries, $SIZE bytes \(staged here\)" "$(cat "$T/r1/log")" "r1 logs the receipt it signed"
like "r1: alpha: receipt signed for 1 entries, $SIZE bytes \(committed here\)" "$(cat "$T/beta/log")" "and so does beta"
is "$(B datasets --json incoming/one.bin | jsonget /dev/stdin 0.origin)" alpha "beta's catalog names alpha as the origin, not r1"
is "$(B datasets --json incoming/one.bin | jsonget /dev/stdin 0.via)" r1 "and r1 as the relay that delivered it"
out=$(B provenance --verify incoming/one.bin); rc=$?
is "$rc" 0 "jumbo provenance --verify at beta: the file holds against alpha's seal"
like "verified: sealed by alpha \(sha256t:[0-9a-f]{64}\), delivered by r1" "$out" "saying who sealed it and who delivered it"
is "$(B provenance --verify --json incoming/one.bin | jsonget /dev/stdin verify.sealed)" "$("$JUMBO" sum --strong "$T/big.bin" | cut -d' ' -f1)" \
	"the root alpha signed is the source's sha256t"
like "alpha: relaying alpha's push of incoming/one.bin to beta \(staging [0-9a-f]{32}\)" "$(cat "$T/r1/log")" "r1 says what it relays"
like "relay: alpha's transfer through this site: $SIZE bytes forwarded in 1 attempt; staging freed" "$(cat "$T/r1/log")" \
	"and that it forwarded every byte and freed its staging"
is "$(staged r1)" 0 "nothing is left in r1's staging"
is "$("$JUMBO" --config "$T/r1/jumbo.conf" datasets --api "127.0.0.1:$(jsonget "$T/r1/ready" api)" --json | tr -d ' \n')" "[]" \
	"nor in r1's catalog: what a relay stages is no dataset of its own"
m=$(curl -s "http://127.0.0.1:$(jsonget "$T/r1/ready" api)/metrics")
like "jumbo_relay_transfers_total 1" "$m" "r1's /metrics counts the relayed transfer"
like "jumbo_relay_bytes_forwarded_total $SIZE" "$m" "and the bytes it forwarded"
like "jumbo_relay_staged_bytes 0" "$m" "with nothing staged any more"
like "jumbo_receipts_signed_total 1" "$m" "and the receipt it signed"

# the origin's --cc is every hop's
echo cubic > "$T/cc.txt"
A send --via r1 --cc cubic -q "$T/cc.txt" beta:incoming/cubic.txt
ok $? "alpha sends through r1 with --cc cubic"
like "relay: alpha, next hop beta: data streams ran cubic \(the origin's choice\)" "$(cat "$T/r1/log")" \
	"r1 forwards with the congestion control alpha asked for (--cc cubic)"

# 2. Through two relays: the route is r1, r2, beta.
out=$(A send --via r1,r2 --json -q "$T/big.bin" beta:incoming/two.bin)
ok $? "alpha sends it through r1 and r2"
is "$(rcpt)" "r1:staged:True:True:1 r2:staged:True:True:1 beta:committed:True:True:1" \
	"a receipt from each hop comes back to alpha, r2's and beta's passed on by the relays before"
is "$(digest "$T/beta/root/incoming/two.bin")" "$WANT" "identical at beta"
like "r1: relaying alpha's push of incoming/two.bin to beta" "$(cat "$T/r2/log")" "r2 relays alpha's push that r1 hands it"
is "$(staged r1):$(staged r2)" 0:0 "both relays' staging is empty again"
# a byte of two.bin changed at beta after it arrived (size and time kept):
# its seal no longer holds
f=$T/beta/root/incoming/two.bin; t=$(stat -c %y "$f")
printf 'X' | dd of="$f" bs=1 seek=12345 conv=notrunc status=none; touch -d "$t" "$f"
out=$(B provenance --verify incoming/two.bin 2>&1); rc=$?
is "$rc" 1 "--verify fails once the file was changed at beta"
like "not verified: its bytes \(sha256t:[0-9a-f]+\) are not the ones the origin sealed" "$out" "and says why"

# 3. --until custody: alpha's send ends once r1 holds everything and has
# signed for it, while beta (stopped half way) has not got it yet; r1
# then delivers alone, and frees its staging once beta has it.
freed=$(grep -c "staging freed" "$T/r1/log")
A send --via r1 --until custody --rate 2G --json -q "$T/big.bin" beta:incoming/custody.bin > "$T/custody.json" & p=$!
for _ in $(seq 1 200); do
	[ -f "$T/beta/root/incoming/.custody.bin.jumbo-part" ] && break
	sleep 0.05
done
kill -STOP "$(cat "$T/beta/pid")"
wait $p; rc=$?
is "$rc" 0 "alpha's send --until custody succeeds while beta is stopped"
is "$(jsonget "$T/custody.json" custody)" r1 "in r1's custody"
out=$(cat "$T/custody.json")
is "$(rcpt)" "r1:staged:True:True:1" "on r1's signed receipt for what alpha sent"
ok "$([ ! -e "$T/beta/root/incoming/custody.bin" ]; echo $?)" "beta does not have it yet"
out=$("$JUMBO" --config "$T/r1/jumbo.conf" transfers --api "127.0.0.1:$(jsonget "$T/r1/ready" api)")
like "relayed through this site now:" "$out" "jumbo transfers at r1 lists what passes through it"
like "alpha +alpha > beta +custody +incoming/custody.bin +0/1 " "$out" \
	"alpha's transfer: from alpha to beta, in r1's custody, nothing delivered yet"
kill -CONT "$(cat "$T/beta/pid")"
for _ in $(seq 1 600); do
	[ "$(grep -c "staging freed" "$T/r1/log")" -gt "$freed" ] && break
	sleep 0.1
done
is "$(digest "$T/beta/root/incoming/custody.bin")" "$WANT" "r1 delivered it to beta after alpha had gone"
like "relay: alpha left with this site's receipt: forwarding the rest to beta alone" "$(cat "$T/r1/log")" "r1 says it went on alone"
is "$(staged r1)" 0 "and freed its staging once beta had it all"
out=$(A send --until custody -q "$T/tree/a/f1" beta:incoming/x 2>&1); rc=$?
like "until custody is for sends through relays" "$out" "--until custody without a relay is a usage error"

# A tree, and the peer's default route ([peer beta] via = r1).
mkdir -p "$T/tree/a/b" "$T/tree/empty"
for i in $(seq 1 200); do echo "file $i" > "$T/tree/a/f$i"; done
head -c 30M /dev/urandom > "$T/tree/a/b/big"
printf 'via = r1\n' >> "$T/alpha/jumbo.conf"      # the last section is [peer beta]
A send -r -q "$T/tree" beta:incoming/trees/
ok $? "a tree of 203 entries goes by beta's default route"
diff -r "$T/tree" "$T/beta/root/incoming/trees/tree" > /dev/null
ok $? "and arrives whole"
like "relaying alpha's push of incoming/trees" "$(cat "$T/r1/log")" "through r1"
out=$(A send -r --json -q "$T/tree/empty" beta:incoming/trees/ 2> "$T/empty.err")
is "$(rcpt):$(cat "$T/empty.err")" "r1:staged:True:True:1 beta:committed:True:True:1:" \
	"a directory alone (no seal, no transfer id) gets its receipts too, and no warning"
A send --direct -q "$T/tree/a/f1" beta:incoming/direct.txt
ok $? "--direct goes straight to beta"
ok "$(grep -c 'incoming/direct.txt' "$T/r1/log" | grep -qx 0; echo $?)" "without r1"
out=$(B provenance --verify incoming/direct.txt 2>&1); rc=$?
like "^1:.*not verified: it came without a seal" "$rc:$out" "--verify of a file that came directly: no seal to check (exit 1)"

# 3. Cut-through: paced at 2 Gbit/s the file takes about 4 s; beta's copy
# grows while alpha is still sending, not after r1 has it all.
A send --via r1 --rate 2G -q "$T/big.bin" beta:incoming/paced.bin & p=$!
seen=0
for _ in $(seq 1 200); do
	part=$T/beta/root/incoming/.paced.bin.jumbo-part
	if [ -f "$part" ] && [ "$(du -k "$part" | cut -f1)" -gt 8192 ] && kill -0 $p 2> /dev/null; then seen=1; break; fi
	sleep 0.05
done
wait $p; rc=$?
is "$seen:$rc" 1:0 "beta held blocks while alpha was still sending (hops run at once), and the send succeeded"

# 4. Refusals.
out=$(A send --via beta -q "$T/tree/a/f1" r1:incoming/x 2>&1)
like "site beta is not a relay \(its jumbo.conf has no \[relay\] section\)" "$out" "a site without [relay] refuses to relay"
site_new gamma; trust r1 gamma; trust beta gamma 'write = .'
# r4 relays for alpha, but takes nothing r1 hands it
printf '\n[relay]\nstaging = %s\n' "$T/r4/staging" >> "$T/r4/jumbo.conf"
trust r4 alpha 'relay = yes'; trust r4 r1 ''; trust r4 beta
site_start r4 || exit 1
trust r1 r4; trust alpha r4
kill "$(cat "$T/r1/pid")"; wait "$(cat "$T/r1/pid")" 2> /dev/null
site_start r1 || exit 1
set_address alpha r1
trust gamma r1; trust gamma beta
out=$(A send --via r1,r4 -q "$T/tree/a/f1" beta:incoming/x 2>&1); rc=$?
like "site r4 does not take relayed transfers from r1 \(\[peer r1\] has no relay = yes\) \(relaying through r1\)" "$out" \
	"a relay takes a transfer from another relay only with relay = yes for it"
A send --via r4 -q "$T/tree/a/f1" beta:incoming/via-r4.txt
ok $? "while alpha itself may send through r4"
out=$("$JUMBO" --config "$T/gamma/jumbo.conf" send --via r1 -q "$T/tree/a/f1" beta:x 2>&1); rc=$?
is "$rc" 1 "r1 refuses gamma, which it has no relay = yes for"
like "site r1 does not relay for gamma \(\[peer gamma\] has no relay = yes\)" "$out" "saying so"
out=$(A send --via r1 -q "$T/tree/a/f1" beta:elsewhere/x 2>&1); rc=$?
is "$rc" 1 "beta refuses a relayed write outside alpha's write prefixes"
like "elsewhere/x.*(relaying through r1)" "$out" "and alpha hears beta's refusal, through r1"
ok "$([ ! -e "$T/beta/root/elsewhere" ]; echo $?)" "nothing was written there"
out=$(A send --via r2 -q "$T/tree/a/f1" r1:incoming/x 2>&1); rc=$?
like "site r2 cannot relay to r1: no \[peer r1\] with an address" "$out" "a relay refuses a next hop it cannot reach"
out=$(A send --via r1,r1 -q "$T/tree/a/f1" beta:incoming/x 2>&1)
like "route goes back to r1" "$out" "a route through the same relay twice is refused"

# 5. r1 killed half way, started again: the next send moves only what
# r1 does not have yet, and beta ends with the same bytes.  (Staging holds
# the entries as alpha names them: big.bin, renamed only at beta.)
A send --via r1 --rate 2G -q "$T/big.bin" beta:incoming/killed.bin 2> "$T/killed.err" & p=$!
for _ in $(seq 1 200); do
	[ "$(find "$T/r1/staging" -name '.big.bin.jumbo-part' -size +$((SIZE / 3 >> 20))M 2> /dev/null | wc -l)" = 1 ] && break
	sleep 0.05
done
# beta stopped for a second first: r1 then holds blocks beta has not taken
# (those beta has, r1 frees at once)
kill -STOP "$(cat "$T/beta/pid")"; sleep 1
kill -9 "$(cat "$T/r1/pid")"; wait "$(cat "$T/r1/pid")" 2> /dev/null
kill -CONT "$(cat "$T/beta/pid")"
wait $p; rc=$?
is "$rc" 1 "alpha's send fails when r1 dies under it"
site_start r1 || exit 1
set_address alpha r1
out=$(A send --via r1 --json -q "$T/big.bin" beta:incoming/killed.bin); rc=$?
is "$rc" 0 "sent again, it succeeds"
sent=$(echo "$out" | jsonget /dev/stdin bytes_sent)
had=$(grep -oE 'big.bin: resuming with [0-9]+ of' "$T/r1/log" | tail -1 | grep -oE '[0-9]+')
ok "$([ "${had:-0}" -gt 0 ] && [ "$sent" = $((SIZE - ${had:-0} * 8 * 1024 * 1024)) ]; echo $?)" \
	"alpha sent only the blocks r1 lacked: $sent bytes, r1 had ${had:-no} blocks of 8 MiB"
is "$(digest "$T/beta/root/incoming/killed.bin")" "$WANT" "and beta holds the file whole"
is "$(staged r1)" 0 "r1's staging is empty"

# 6. beta goes away half way and comes back (on its port): r1 keeps taking
# alpha's blocks and tries beta again; alpha sends each block once.
A send --via r1 --rate 2G --json -q "$T/big.bin" beta:incoming/outage.bin > "$T/outage.json" 2> "$T/outage.err" & p=$!
for _ in $(seq 1 200); do
	[ -f "$T/beta/root/incoming/.outage.bin.jumbo-part" ] && break
	sleep 0.05
done
sleep 0.5
kill -9 "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2> /dev/null
sleep 3
site_start beta || exit 1
wait $p; rc=$?
is "$rc" 0 "alpha's send survives beta's outage"
is "$(jsonget "$T/outage.json" bytes_sent)" "$SIZE" "alpha sent every byte once: r1 held them through the outage"
is "$(digest "$T/beta/root/incoming/outage.bin")" "$WANT" "beta has the file whole"
like "relay: alpha, next hop beta: .*trying again in" "$(cat "$T/r1/log")" "r1 logs its retries"
like "forwarded in [2-9][0-9]* attempts; staging freed" "$(cat "$T/r1/log")" "and the attempts it took"
like "jumbo_relay_retries_total [1-9]" "$(curl -s "http://127.0.0.1:$(jsonget "$T/r1/ready" api)/metrics")" \
	"/metrics counts the retries"

# A next hop down for longer than [relay] give_up (2 s at r2): r2 gives the
# transfer up, and alpha's send fails saying why.
kill "$(cat "$T/r2/pid")"; wait "$(cat "$T/r2/pid")" 2> /dev/null
sed -i "s|^staging = $T/r2/staging$|&\ngive_up = 2s|" "$T/r2/jumbo.conf"
site_start r2 || exit 1
set_address alpha r2
A send --via r2 --rate 1G -q "$T/big.bin" beta:incoming/giveup.bin 2> "$T/giveup.err" & p=$!
for _ in $(seq 1 200); do
	[ -f "$T/beta/root/incoming/.giveup.bin.jumbo-part" ] && break
	sleep 0.05
done
kill -9 "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2> /dev/null
wait $p; rc=$?
is "$rc" 1 "alpha's send fails once beta has been unreachable from r2 for its give_up"
like "next hop beta: nothing moved for [0-9]+ s .*\(relaying through r2\)" "$(cat "$T/giveup.err")" "saying so"
like "relay: alpha, next hop beta: nothing moved for [0-9]+ s \(\[relay\] give_up\): giving up" "$(cat "$T/r2/log")" \
	"r2 logs that it gave up"
site_start beta || exit 1

# 7. A quota smaller than the file: r1 holds at most 256 MiB at once.  It
# stops reading alpha's blocks when staging is full (back-pressure) and
# frees each block once beta says it holds it (HELD).
kill "$(cat "$T/r1/pid")"; wait "$(cat "$T/r1/pid")" 2> /dev/null
sed -i "s|^staging = $T/r1/staging$|&\nquota = 256M|" "$T/r1/jumbo.conf"
site_start r1 || exit 1
set_address alpha r1
QSIZE=$((1024 * 1024 * 1024))
[ "$SIZE" -lt $QSIZE ] && head -c $QSIZE /dev/urandom > "$T/big.bin" && WANT=$(digest "$T/big.bin")
( most=0
  while [ ! -f "$T/quota.stop" ]; do
	n=$(du -s -B1 "$T/r1/staging" 2> /dev/null | cut -f1)
	[ "${n:-0}" -gt "$most" ] && most=$n && echo "$most" > "$T/quota.most"
	sleep 0.02
  done ) & sampler=$!
out=$(A send --via r1 --json -q "$T/big.bin" beta:incoming/quota.bin); rc=$?
touch "$T/quota.stop"; wait $sampler
is "$rc" 0 "1 GiB through r1 with a quota of 256 MiB"
is "$(digest "$T/beta/root/incoming/quota.bin")" "$WANT" "arrives whole"
is "$(echo "$out" | jsonget /dev/stdin bytes_sent)" "$QSIZE" "alpha sent each byte once"
most=$(cat "$T/quota.most" 2> /dev/null || echo 0)
ok "$([ "$most" -le $((256 * 1024 * 1024 + 1024 * 1024)) ] && [ "$most" -gt $((64 * 1024 * 1024)) ]; echo $?)" \
	"r1's staging never held more than the quota (at most $((most >> 20)) MiB on disk, directories included)"

# 8. A transfer abandoned half way leaves its staging behind; the expirer
# removes it once it is older than [site] max_partial_age.
A send --via r1 --rate 2G -q "$T/big.bin" beta:incoming/abandoned.bin 2> /dev/null & p=$!
for _ in $(seq 1 200); do
	[ "$(find "$T/r1/staging" -name '.big.bin.jumbo-part' -size +50M 2> /dev/null | wc -l)" = 1 ] && break
	sleep 0.05
done
kill -9 $p; wait $p 2> /dev/null
sleep 1
ok "$([ "$(staged r1)" -gt 0 ]; echo $?)" "alpha gone half way: r1 keeps what it staged, for a next attempt"
kill "$(cat "$T/r1/pid")"; wait "$(cat "$T/r1/pid")" 2> /dev/null
sed -i 's/^\[site\]$/&\nmax_partial_age = 2s/' "$T/r1/jumbo.conf"
sleep 2
site_start r1 || exit 1
for _ in $(seq 1 100); do [ "$(ls "$T/r1/staging" | wc -l)" = 0 ] && break; sleep 0.1; done
is "$(ls "$T/r1/staging" | wc -l)" 0 "older than max_partial_age, r1's expirer removes it"
like "expiry: 1 stale staging directories of relayed transfers removed" "$(cat "$T/r1/log")" "and says so"

# 9. jumbo send --detach through a relay: alpha's jumbod runs the transfer
# (and seals it with alpha's key), retried and resumed like any of its own.
set_address alpha r1
site_start alpha || exit 1
AAPI=127.0.0.1:$(jsonget "$T/alpha/ready" api)
head -c 50000000 /dev/urandom > "$T/alpha/root/det.bin"
id=$(A send --detach --api "$AAPI" --via r1 "$T/alpha/root/det.bin" beta:incoming/detached.bin); rc=$?
is "$rc" 0 "jumbo send --detach --via r1 returns at once"
timeout 120 "$JUMBO" --config "$T/alpha/jumbo.conf" wait --api "$AAPI" "$id" 2> "$T/wait.err"
ok $? "alpha's jumbod delivers it through r1" || diag "$(cat "$T/wait.err")"
is "$(digest "$T/beta/root/incoming/detached.bin")" "$(digest "$T/alpha/root/det.bin")" "identical at beta"
like "alpha: relaying alpha's push of incoming/detached.bin to beta" "$(cat "$T/r1/log")" "through r1"
is "$(B provenance --api "127.0.0.1:$(jsonget "$T/beta/ready" api)" --verify --json incoming/detached.bin |
	jsonget /dev/stdin verify.ok)" true \
	"and it holds against the seal alpha's jumbod made"
out=$(A send --detach --api "$AAPI" --until custody "$T/alpha/root/det.bin" beta:incoming/x 2>&1)
like "until custody is for a send run here" "$out" "--until custody with --detach is a usage error"
out=$(A get --via r1 beta:incoming/detached.bin "$T/back.bin" 2>&1)
like "relays .* are for jumbo send in this version" "$out" "jumbo get through relays is refused, saying so"

# 10. A relay that alters a block and computes its XXH3 again (a test
# build's hook) passes every check on the way; beta compares the file's
# sha256t with the seal alpha signed, and refuses it.
if hooks; then
	site_new r3
	printf '\n[relay]\nstaging = %s\n' "$T/r3/staging" >> "$T/r3/jumbo.conf"
	trust r3 alpha 'relay = yes'; trust r3 beta
	JUMBO_TEST_RELAY_TAMPER=2 site_start r3 || exit 1
	trust alpha r3
	kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2> /dev/null
	trust beta r3 'write = .'
	site_start beta || exit 1
	out=$(A send --via r3 -q "$T/big.bin" beta:incoming/tampered.bin 2>&1); rc=$?
	is "$rc" 1 "a file r3 altered on the way is refused"
	like "tampered.bin: cannot commit: its bytes do not match the origin's seal: they were altered on the way \(through r3\)" \
		"$out" "alpha hears why, and through whom"
	ok "$(ls -a "$T/beta/root/incoming" | grep -c tampered | grep -qx 0; echo $?)" "nothing of it is left at beta, not even its partial file"
	like "test hook: altering block 2" "$(cat "$T/r3/log")" "(r3 did alter block 2)"
else
	skip 4 "the relay's tampering hook is in test builds only (meson -Dtest_hooks=true)"
fi

done_testing
