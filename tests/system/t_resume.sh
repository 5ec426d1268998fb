#!/bin/bash
# Resume: SIGKILL the receiving daemon, the sending client, or the receiving
# client at about half way; the same command again sends only what is missing.
. "$(dirname "$0")/lib.sh"
two_sites
SIZE=$((1024 * 1024 * 1024))
head -c $SIZE /dev/urandom > "$T/big.bin"

# allocated bytes of a (sparse, out-of-order) partial file
allocated() { local f; f=$(find "$1" -name "$2" 2>/dev/null | head -1); [ -n "$f" ] && echo $(( $(stat -c %b "$f") * 512 )) || echo 0; }
# wait_half DIR PATTERN: until about half of SIZE is written
wait_half() {
	for _ in $(seq 1 600); do
		[ "$(allocated "$1" "$2")" -ge $((SIZE / 2)) ] && return 0
		sleep 0.02
	done
	return 1
}

# 1. the receiving daemon is SIGKILLed; the paced rate keeps the timing easy
"$JUMBO" --config "$JBCONF" send -P 4 --rate 3G -q "$T/big.bin" beta:r1/ 2> "$T/err1" &
cpid=$!
wait_half "$T/beta/root/r1" '.big.bin.jumbo-part'
ok $? "transfer reached half way"
kill -9 "$(cat "$T/beta/pid")"
wait $cpid
rc=$?
ok "$([ $rc -ne 0 ]; echo $?)" "client exits non-zero when the daemon dies (rc=$rc)"
like 'lost|closed|reset' "$(cat "$T/err1")" "client says the connection was lost"
ok "$([ ! -e "$T/beta/root/r1/big.bin" ]; echo $?)" "no file under the final name"
site_start beta
set_address alpha beta
jb send -P 4 --json "$T/big.bin" beta:r1/ > "$T/r1.json"
ok $? "the same command again completes"
sent=$(jsonget "$T/r1.json" bytes_sent)
pct=$((sent * 100 / SIZE))
diag "resent $sent of $SIZE bytes ($pct%)"
ok "$([ "$sent" -le $((SIZE * 55 / 100)) ]; echo $?)" "resume after SIGKILL of the receiver re-sends <= 55% ($pct%)"
ok "$([ "$sent" -gt 0 ]; echo $?)" "and something was still missing"
is "$(sha "$T/beta/root/r1/big.bin")" "$(sha "$T/big.bin")" "file is bit-identical after resume"
like 'resuming with [0-9]+ of 128 blocks' "$(cat "$T/beta/log")" "daemon logs the resume"

# 2. the sending client is SIGKILLed
"$JUMBO" --config "$JBCONF" send -P 4 --rate 3G -q "$T/big.bin" beta:r2/ &
cpid=$!
wait_half "$T/beta/root/r2" '.big.bin.jumbo-part'
kill -9 $cpid
wait $cpid 2>/dev/null
jb send -P 4 --json "$T/big.bin" beta:r2/ > "$T/r2.json"
ok $? "after SIGKILL of the client the same command completes"
sent=$(jsonget "$T/r2.json" bytes_sent)
ok "$([ "$sent" -le $((SIZE * 55 / 100)) ]; echo $?)" "client killed: re-sends <= 55% ($((sent * 100 / SIZE))%)"
is "$(sha "$T/beta/root/r2/big.bin")" "$(sha "$T/big.bin")" "bit-identical"

# 3. the receiving client (jumbo get) is SIGKILLed; its own journal resumes
mkdir -p "$T/pull"
"$JUMBO" --config "$JBCONF" get -P 4 --rate 3G -q beta:r2/big.bin "$T/pull/" &
cpid=$!
wait_half "$T/pull" '.big.bin.jumbo-part'
kill -9 $cpid
wait $cpid 2>/dev/null
jb get -P 4 --json beta:r2/big.bin "$T/pull/" > "$T/r3.json"
ok $? "get after SIGKILL completes"
sent=$(jsonget "$T/r3.json" bytes_sent)
ok "$([ "$sent" -le $((SIZE * 55 / 100)) ]; echo $?)" "get resumed: moves <= 55% ($((sent * 100 / SIZE))%)"
is "$(sha "$T/pull/big.bin")" "$(sha "$T/big.bin")" "bit-identical"

# 4. a changed source invalidates the journal instead of mixing versions
"$JUMBO" --config "$JBCONF" send -P 2 --rate 2G -q "$T/big.bin" beta:r4/ &
cpid=$!
wait_half "$T/beta/root/r4" '.big.bin.jumbo-part'
kill -9 $cpid
wait $cpid 2>/dev/null
printf 'changed' | dd of="$T/big.bin" bs=1 seek=1000 conv=notrunc status=none
touch -d '2020-01-01' "$T/big.bin"
jb send -P 4 --json "$T/big.bin" beta:r4/ > "$T/r4.json"
ok $? "a changed source is sent again"
is "$(jsonget "$T/r4.json" bytes_sent)" $SIZE "all of it (size or mtime changed)"
is "$(sha "$T/beta/root/r4/big.bin")" "$(sha "$T/big.bin")" "the new version arrives"
done_testing
