#!/bin/bash
# STATE on a full disk: jumbod's STATE is a small tmpfs, filled to the brim
# while it runs.  Every command that would record something fails, saying
# the disk is full (jumbo send --detach, jumbo run, jumbo token create), the
# API answers 5xx and never 201, reads go on, nothing recorded before is
# lost, and once space is freed the same commands work again.  Then a job
# ends while the site database cannot be written: its end (state and
# outputs) is recorded whole or not at all, once the database takes it
# again (jumbod writes it again every second), or after a restart.
. "$(dirname "$0")/lib.sh"
need crun mmdebstrap sqlite3
need_root "a tmpfs for STATE needs root"
the_end() { stop_jobs; cleanup; }
trap the_end EXIT

two_sites
image_store "$T/alpha/images"; ok $? "an image store with jumbo/minimal"
mkdir -p "$T/alpha/small"
mount -t tmpfs -o size=4m tmpfs "$T/alpha/small"
mv "$T/alpha/state" "$T/alpha/state.orig"
sed -i "s|^state = .*|state = $T/alpha/small\nimages = $T/alpha/images|" "$T/alpha/jumbo.conf"
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
A() { timeout 60 "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
API() { curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $(cat "$T/alpha/small/api.token")" "$@"; }

# records made while there is room
echo one > "$T/alpha/root/one.txt"
id1=$(A send --detach "$T/alpha/root/one.txt" beta:/in/) && A wait "$id1" 2> /dev/null
ok $? "with room, a durable transfer is recorded and done"
A token create before > /dev/null; ok $? "and a token made"
A run -- true > /dev/null 2>&1; ok $? "and a job run"
jobs_before=$(A jobs --json | jsonget /dev/stdin 0.id)

# the disk is filled to the last byte.  SQLite may still write a few records
# into the pages its write-ahead log holds already; each command is tried
# until it fails, and whatever went in before must be kept.
fill() {
	head -c 8M /dev/zero > "$T/alpha/small/filler" 2> /dev/null
	dd if=/dev/zero of="$T/alpha/small/filler2" bs=1 count=100000 2> /dev/null
}
unfill() { rm -f "$T/alpha/small/filler" "$T/alpha/small/filler2"; }
fill
is "$(df --output=avail -B1 "$T/alpha/small" | tail -1 | tr -d ' ')" 0 "STATE's disk is full"
full='No space left on device|database or disk is full'
until_fails() { # CMD...: run it until it fails (at most 200 times); $fits: how often it worked
	fits=0
	while [ "$fits" -lt 200 ]; do
		"$@" > "$T/out" 2> "$T/err" < /dev/null || return 0
		fits=$((fits + 1))
		cat "$T/out" >> "$T/made"
	done
	return 1
}
: > "$T/made"
until_fails A send --detach "$T/alpha/root/one.txt" beta:/in/again.txt
ok $? "jumbo send --detach fails on a full STATE ($fits went in first)"
like "$full" "$(cat "$T/err")" "and says why: $(head -c 160 "$T/err")"
is "$(cat "$T/out")" "" "and prints no transfer id"
sent=$(cat "$T/made")
until_fails A run -- true
ok $? "jumbo run fails ($fits went in first)"
like "$full" "$(cat "$T/err")" "and says why: $(head -c 160 "$T/err")"
until_fails A token create "during$RANDOM"
ok $? "jumbo token create fails ($fits went in first)"
like "$full" "$(cat "$T/err")" "and says why: $(head -c 160 "$T/err")"
code=$(API -X POST -d '{"op":"send","sources":["one.txt"],"dest":"beta:/in/x"}' \
	"http://$JUMBO_API/api/v1/transfers")
like '^5[0-9][0-9]$' "$code" "the API answers 5xx ($code), not 201, to a new transfer"
like "$full" "$(cat "$T/body")" "with the reason in its body"

# reads go on, and what was recorded is there
is "$(API "http://$JUMBO_API/api/v1/transfers/$id1")" 200 "reads are answered"
is "$(jsonget "$T/body" state)" done "the transfer recorded before is there"
is "$(A jobs --json | jsonget /dev/stdin 0.id)" "$jobs_before" "so is the job"
kill -0 "$(cat "$T/alpha/pid")"; ok $? "jumbod is still running"

# space is freed: everything works again, without a restart
unfill
id2=$(A send --detach "$T/alpha/root/one.txt" beta:/in/again.txt) && A wait "$id2" 2> /dev/null
ok $? "once space is freed, jumbo send --detach works again"
is "$(cat "$T/beta/root/in/again.txt" 2>/dev/null)" one "and the file arrives"
A run -- true > /dev/null 2>&1; ok $? "jumbo run works again"
A token create after > /dev/null; ok $? "jumbo token create works again"
like 'before' "$(A token list)" "the token made before the disk filled is there"
lost=0
for id in $id1 $sent $id2; do A transfers --json "$id" > /dev/null 2>&1 || lost=$((lost + 1)); done
is "$lost" 0 "every transfer accepted before, during and after the full disk is recorded"

# a job that ends while the site database cannot be written (another
# process holds its write lock past the 5 s busy timeout): its end is
# recorded whole or not at all
jstate() { A jobs --json "$1" | jsonget /dev/stdin state; }
# lock_db SECONDS: hold the site database's write lock (in the background: $locker)
lock_db() {
	rm -f "$T/locked"
	/usr/bin/python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))' "$T/alpha/small/site.db" "$T/locked" "$1" &
	locker=$!
	for _ in $(seq 50); do [ -f "$T/locked" ] && break; sleep 0.1; done
}
# ended_unrecorded ID: wait until jumbod says the job's end is not recorded
ended_unrecorded() {
	for _ in $(seq 120); do grep -q "job $1: its end" "$T/alpha/log" && break; sleep 0.1; done
	like "job $1: its end .* is not recorded" "$(cat "$T/alpha/log")" "$2"
}
idj=$(A run --detach -- sh -c 'sleep 2; mkdir -p /work/out; echo r > /work/out/r.txt'); ok $? "a job starts"
lock_db 600
ended_unrecorded "$idj" "the job ended with the database locked: jumbod says its end is not recorded"
is "$(jstate "$idj")" running "no half of its end is recorded (still running)"
is "$(A datasets --json "results/$idj" 2>/dev/null | jsonget /dev/stdin 0.path 2>/dev/null)" "" \
	"and no output of it is a current dataset"
kill $locker; wait $locker 2> /dev/null
for _ in $(seq 100); do [ "$(jstate "$idj")" = completed ] && break; sleep 0.1; done
is "$(jstate "$idj")" completed "once the lock is gone its end is recorded, without a restart: completed"
is "$(A datasets --json "results/$idj" | jsonget /dev/stdin 0.path)" "results/$idj/r.txt" "with its output a dataset"
like "job $idj: its end \(completed\) is recorded now" "$(cat "$T/alpha/log")" "and jumbod says so"

# the same, but jumbod stops before the database takes the end: the next
# start reads it from the supervisor's result
idk=$(A run --detach -- sh -c 'sleep 2; mkdir -p /work/out; echo k > /work/out/k.txt'); ok $? "another job starts"
lock_db 600
ended_unrecorded "$idk" "it ends with the database locked"
kill "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2> /dev/null
like "1 job end not recorded; read again at the next start" "$(cat "$T/alpha/log")" "jumbod stops saying one end is not recorded"
kill $locker; wait $locker 2> /dev/null
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
for _ in $(seq 100); do [ "$(jstate "$idk")" = completed ] && break; sleep 0.1; done
is "$(jstate "$idk")" completed "after a restart, its end is recorded: completed"
is "$(A datasets --json "results/$idk" | jsonget /dev/stdin 0.path)" "results/$idk/k.txt" "with its output a dataset"

# a durable transfer that ends while the database is locked: "running" until
# the database takes its end, then done
xstate() { A transfers --json "$1" | jsonget /dev/stdin state; }
head -c 12M /dev/urandom > "$T/alpha/root/slow.bin"
idt=$(A send --detach --rate 30M "$T/alpha/root/slow.bin" beta:/in/slow.bin); ok $? "a slow durable transfer starts"
for _ in $(seq 100); do [ "$(xstate "$idt")" = running ] && break; sleep 0.1; done
lock_db 600
for _ in $(seq 300); do grep -q "transfer $idt: its end is not recorded" "$T/alpha/log" && break; sleep 0.1; done
like "transfer $idt: its end is not recorded; written again every second" "$(cat "$T/alpha/log")" \
	"it ends with the database locked: jumbod says its end is not recorded"
is "$(xstate "$idt")" running "while it is not, the transfer shows running"
kill $locker; wait $locker 2> /dev/null
for _ in $(seq 100); do [ "$(xstate "$idt")" = done ] && break; sleep 0.1; done
is "$(xstate "$idt")" done "once the lock is gone it is done, without a restart"
cmp -s "$T/alpha/root/slow.bin" "$T/beta/root/in/slow.bin"; ok $? "and what arrived is what was sent"
done_testing
