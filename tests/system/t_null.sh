#!/bin/bash
# The null backend: the scheduler's states without a container or an
# engine.  A job handed to it is pending, then running (on node "null") for
# the section's seconds, then completed with exit status 0; cancelled, it
# ends cancelled; over its timeout, jumbod ends it (timeout); jumbod
# restarted while one runs follows it again; bad sections are refused.
. "$(dirname "$0")/lib.sh"

need crun
need_root "jobs need root (crun must be usable for jumbod to take jobs)"
site_new alpha
cat >> "$T/alpha/jumbo.conf" <<EOC

[backend quick]
type = null

[backend slow]
type = null
seconds = 60
EOC
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
JB() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
state() { JB jobs --json "$1" | jsonget /dev/stdin state; }
# wait_state ID STATE: up to 10 s
wait_state() { for _ in $(seq 1 100); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1; }

# --- a job that ends at once ---
id=$(JB run --detach --backend quick --image any/image -- true); ok $? "jumbo run --backend quick takes a job ($id)"
wait_state "$id" completed; ok $? "it completes"
j=$(JB jobs --json "$id")
is "$(echo "$j" | jsonget /dev/stdin exit_code)" 0 "with exit status 0"
is "$(echo "$j" | jsonget /dev/stdin backend)" quick "handed to backend quick"
like '^null-[0-9a-f]{12}-[0-9]+$' "$(echo "$j" | jsonget /dev/stdin backend_id)" "with the engine's id for it"
[ -d "$T/alpha/state/jobs/$id/workspace/out" ]; ok $? "its workspace was made, as for any engine's job"

# --- running; jumbod restarted; then cancelled ---
id2=$(JB run --detach --backend slow --image any/image -- sleep 1000)
wait_state "$id2" running; ok $? "a slow one runs"
is "$(JB jobs --json "$id2" | jsonget /dev/stdin node)" null "on node null"
kill "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2>/dev/null
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
is "$(state "$id2")" running "after a restart of jumbod it is still running"
JB kill "$id2" > /dev/null; ok $? "jumbo kill takes it"
wait_state "$id2" cancelled; ok $? "and it ends cancelled"

# --- over its timeout: jumbod ends it ---
id3=$(JB run --detach --backend slow --timeout 1 --image any/image -- sleep 1000)
wait_state "$id3" timeout; ok $? "over its timeout (1 s) it ends timeout"

# --- refusals ---
out=$(JB run --detach --backend nowhere --image any/image -- true 2>&1); rc=$?
ok $((rc == 0)) "a backend that is not there is refused"
like "no backend 'nowhere'" "$out" "by name"
cp "$T/alpha/jumbo.conf" "$T/bad.conf"; printf 'url = http://x\n' >> "$T/bad.conf"
out=$("$JUMBOD" --config "$T/bad.conf" --check 2>&1); is $? 1 "--check refuses a key the null type does not take"
like "bad.conf:[0-9]+: unknown key 'url' in \[backend slow\] of type null" "$out" "naming file, line, key and type"
cp "$T/alpha/jumbo.conf" "$T/bad2.conf"; printf '\n[backend x]\ntype = pbs\n' >> "$T/bad2.conf"
out=$("$JUMBOD" --config "$T/bad2.conf" --check 2>&1); is $? 1 "--check refuses an unknown type"
like "bad2.conf:[0-9]+: backend x: type is local, slurm, marathon or null, not 'pbs'" "$out" "naming the types there are"
done_testing
