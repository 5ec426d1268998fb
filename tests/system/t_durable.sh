#!/bin/bash
# Durable transfers: jumbo send --detach hands a transfer to the local
# jumbod, which runs it with the site's identity; it waits and retries while
# the peer is down, resumes after jumbod is SIGKILLed (from the blocks
# already verified), can be cancelled, and refuses paths outside the data
# root.  jumbo transfers, wait, cancel; /metrics counts them.
. "$(dirname "$0")/lib.sh"
export JUMBO_RETRY_SECONDS=0.5 # the first wait before a retry (then doubling)

two_sites
# alpha runs a daemon too: the transfers are its
alpha_up() { site_start alpha || exit 1; export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api); }
alpha_up
A() { timeout 60 "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
state() { A transfers --json "$1" | jsonget /dev/stdin state; }
wait_state() { # ID STATE...: until the transfer is in one of them (10 s at most)
	local id=$1 s; shift
	for _ in $(seq 200); do
		s=$(state "$id")
		for w in "$@"; do [ "$s" = "$w" ] && return 0; done
		sleep 0.05
	done
	return 1
}

head -c 20000000 /dev/urandom > "$T/alpha/root/a.bin"
id=$(A send --detach "$T/alpha/root/a.bin" beta:/in/); ok $? "jumbo send --detach returns at once"
like '^[0-9a-f]{12}$' "$id" "with the transfer's id"
A wait "$id" 2> "$T/wait.err"; ok $? "jumbo wait: done"
like "transfer $id done: 20000000 bytes" "$(cat "$T/wait.err")" "with what it moved"
is "$(sha "$T/beta/root/in/a.bin")" "$(sha "$T/alpha/root/a.bin")" "the file arrived bit-identical"
is "$(state "$id")" done "jumbo transfers: done"

# the peer is down: the transfer waits and tries again, then goes through
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
echo small > "$T/alpha/root/b.txt"
id2=$(A send --detach "$T/alpha/root/b.txt" beta:/in/)
wait_state "$id2" retrying; ok $? "with the peer down the transfer is retrying"
like 'refused|connect' "$(A transfers --json "$id2" | jsonget /dev/stdin error)" "and says why"
sleep 1
like '^[2-9]$|^[1-9][0-9]$' "$(A transfers --json "$id2" | jsonget /dev/stdin attempts)" "after more than one attempt"
site_start beta || exit 1
set_address alpha beta
# the peer's address changed with its restart: the daemon reads its config at start
kill "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2>/dev/null
alpha_up
A wait "$id2" 2>/dev/null; ok $? "once the peer is back the transfer is done"
is "$(cat "$T/beta/root/in/b.txt")" small "and the file is there"

# jumbod SIGKILLed in the middle of a (paced) transfer: it resumes
head -c 60000000 /dev/urandom > "$T/alpha/root/big.bin"
id3=$(A send --detach --rate 200M -P 2 "$T/alpha/root/big.bin" beta:/in/)
wait_state "$id3" running; ok $? "a paced transfer runs"
sleep 1.2
kill -9 "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2>/dev/null
alpha_up
grep -q "transfer $id3: send, attempt 2" "$T/alpha/log" || sleep 1
A wait "$id3" 2>/dev/null; ok $? "after jumbod was SIGKILLed it resumes and ends done"
is "$(sha "$T/beta/root/in/big.bin")" "$(sha "$T/alpha/root/big.bin")" "bit-identical"
sent=$(A transfers --json "$id3" | jsonget /dev/stdin bytes_sent)
ok "$([ "$sent" -lt 60000000 ]; echo $?)" "the second attempt moved only what was missing ($sent of 60000000 bytes)"

# cancel
id4=$(A send --detach --rate 50M "$T/alpha/root/big.bin" beta:/in2/)
wait_state "$id4" running
A cancel "$id4" > /dev/null; ok $? "jumbo cancel"
wait_state "$id4" cancelled; ok $? "the transfer is cancelled"
A wait "$id4" 2> "$T/wait4.err"; is $? 1 "jumbo wait on it fails"
like "cancelled" "$(cat "$T/wait4.err")" "saying so"
[ ! -e "$T/beta/root/in2/big.bin" ]; ok $? "nothing partial appears under the file's name"
out=$(A cancel "$id4" 2>&1); is $? 1 "cancelling it again fails"

# get --detach: from the peer into this site's data root
id5=$(A get --detach beta:/in/b.txt "$T/alpha/root/back.txt")
A wait "$id5" 2>/dev/null; ok $? "jumbo get --detach"
is "$(cat "$T/alpha/root/back.txt")" small "the file came back"

# bad input
out=$(A send --detach /etc/hostname beta:/x/ 2>&1); is $? 1 "a source outside the data root is refused"
like "outside the data root" "$out" "clearly"
out=$(A send --detach "$T/alpha/root/nothing" beta:/x/ 2>&1); is $? 1 "a source that is not there is refused"
out=$(A get --detach beta:/in/b.txt /tmp/elsewhere.txt 2>&1); is $? 1 "a destination outside the data root is refused"
out=$(A send --detach "$T/alpha/root/b.txt" nobody:/x 2>&1); is $? 1 "an unknown peer is refused"
like "nobody" "$out" "named"
metrics=$(curl -s "http://$JUMBO_API/metrics")
like 'jumbo_transfers\{state="done"\} [3-9]' "$metrics" "/metrics counts transfers by state"
like 'jumbo_transfer_retries_total [1-9]' "$metrics" "and their retries"
# a block damaged on its way to beta is asked for again: beta counts it
if hooks; then
	JUMBO_TEST_CORRUPT_BLOCK=0 jb send -q "$T/alpha/root/a.bin" beta:/again/ > /dev/null 2>&1; ok $? "a send with a damaged block succeeds"
	like 'jumbo_blocks_resent_total [1-9]' "$(curl -s "http://127.0.0.1:$(jsonget "$T/beta/ready" api)/metrics")" \
		"and the receiving site's /metrics counts the block sent again"
else
	skip 2 "a release build has no corruption hook (meson -Dtest_hooks=true)"
fi
done_testing
