#!/bin/bash
# What an outsider can grow has a bound.  The audit: 25 files landing in a
# ruled directory started 25 containers at once; a 2 MB layer unpacked to
# 2 GiB.  Now this host runs at most [site] max_jobs jobs at once (the
# others wait in line, pending, and all finish), and an image whose layers
# unpack to more than [site] max_image_size is refused with the reason.
. "$(dirname "$0")/lib.sh"

need crun python3
need_root "jobs need root (crun, id-mapped mounts)"
two_sites
image_store "$T/beta/images" || { fail "the image store"; done_testing; }
sed -i "s|^state = .*|&\nimages = $T/beta/images\nmax_jobs = 3\nmax_image_size = 256M\nmax_job_log = 1M|" "$T/beta/jumbo.conf"
cat >> "$T/beta/jumbo.conf" <<'EOC'

[rule burst]
glob = burst/*.dat
image = jumbo/minimal
command = sh -c 'sleep 1; wc -c < {input} > /work/out/size'
EOC
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
site_start beta || exit 1
set_address alpha beta
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
B() { "$JUMBO" --config "$T/beta/jumbo.conf" "$@"; }

# --- 25 files land in a ruled directory ---
mkdir -p "$T/burst"
for i in $(seq -w 1 25); do echo "file $i" > "$T/burst/f$i.dat"; done
jb send -r "$T/burst" beta:/ > /dev/null; ok $? "25 files sent into beta's ruled directory burst/"
# counts: running pending queued completed, every 0.2 s until all have ended (120 s)
maxrun=0 sawqueued=0 done_=0
for _ in $(seq 1 600); do
	read -r run pend queued comp < <(B jobs --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(sum(x["state"] == "running" for x in j), sum(x["state"] == "pending" for x in j),
      sum((x.get("reason") or "").startswith("queued") for x in j), sum(x["state"] == "completed" for x in j))')
	[ "$run" -gt "$maxrun" ] && maxrun=$run
	[ "$queued" -gt 0 ] && sawqueued=1
	[ "$comp" = 25 ] && { done_=1; break; }
	sleep 0.2
done
ok $((maxrun > 3)) "at most max_jobs (3) ran at once (most seen: $maxrun)"
ok $((maxrun == 0)) "(and jobs did run)"
is "$sawqueued" 1 "the others waited, pending, with the reason 'queued'"
is "$done_" 1 "all 25 finished"
like 'queued: 3 of this host.s jobs run at once \(\[site\] max_jobs\)' "$(cat "$T/beta/log")" "the log says why they waited"

# --- a queued job cancelled leaves the line ---
id1=$(B run --detach -i jumbo/minimal -- sleep 30)
id2=$(B run --detach -i jumbo/minimal -- sleep 30)
id3=$(B run --detach -i jumbo/minimal -- sleep 30)
id4=$(B run --detach -i jumbo/minimal -- true)
sleep 1
is "$(B jobs --json "$id4" | jsonget /dev/stdin state)" pending "a fourth job waits"
B kill "$id4" > /dev/null
for _ in $(seq 1 50); do [ "$(B jobs --json "$id4" | jsonget /dev/stdin state)" = cancelled ] && break; sleep 0.1; done
is "$(B jobs --json "$id4" | jsonget /dev/stdin state)" cancelled "cancelled in the line, it ends cancelled"
# --- jumbod restarted: the one in line keeps its place ---
id5=$(B run --detach -i jumbo/minimal -- sleep 30)
sleep 0.5
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
site_start beta || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
is "$(B jobs --json "$id5" | jsonget /dev/stdin state)" pending "after a restart of jumbod the job in line is still pending ..."
like '^queued' "$(B jobs --json "$id5" | jsonget /dev/stdin reason)" "... in line"
like "job $id5: in line again for a slot" "$(cat "$T/beta/log")" "(the log says so)"
B kill "$id1" > /dev/null
for _ in $(seq 1 100); do [ "$(B jobs --json "$id5" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
is "$(B jobs --json "$id5" | jsonget /dev/stdin state)" running "when a slot frees, it runs"
B kill "$id2" > /dev/null; B kill "$id3" > /dev/null; B kill "$id5" > /dev/null

# --- a job that writes 20 MiB to its stdout keeps 1 MiB of it ---
id=$(B run --detach -i jumbo/minimal -- sh -c 'head -c 20M /dev/zero | tr "\0" x; echo; echo to err >&2')
for _ in $(seq 1 300); do [ "$(B jobs --json "$id" | jsonget /dev/stdin state)" = completed ] && break; sleep 0.1; done
is "$(B jobs --json "$id" | jsonget /dev/stdin state)" completed "a job writing 20 MiB with max_job_log = 1M completes (it never blocks)"
log=$T/beta/state/jobs/$id/stdout
size=$(stat -c %s "$log")
ok $((size < 1048576 || size > 1048576 + 200)) "its stdout keeps 1 MiB and a line ($size bytes)"
like 'this log stops at 1048576 bytes \(\[site\] max_job_log\); the rest is dropped' "$(tail -c 200 "$log")" "the line says why"
is "$(cat "$T/beta/state/jobs/$id/stderr")" "to err" "stderr has its own bound"

# --- the layer bomb: 2 MB of gzip that unpacks to 2 GiB ---
/usr/bin/python3 "$(dirname "$0")/evil_registry.py" "$T/evil.port" 2>/dev/null &
_pids+=($!)
for _ in $(seq 50); do [ -f "$T/evil.port" ] && break; sleep 0.1; done
E=127.0.0.1:$(cat "$T/evil.port")
out=$(B run -i "$E/evil/bomb:1" -- true 2>&1); rc=$?
is "$rc" 125 "a job whose image is a layer bomb does not start (exit 125)"
like 'unpacks to more than 268435456 bytes \(the bound on an image.s layers\)' "$out" "the error names the bound (max_image_size = 256M)"
is "$(ls "$T/beta/images/layers" | grep -c '^\.tmp')" 0 "nothing of it is left in the store"

# --- configuration ---
cp "$T/beta/jumbo.conf" "$T/bad.conf"; sed -i 's|^max_jobs = 3|max_jobs = 0|' "$T/bad.conf"
out=$("$JUMBOD" --config "$T/bad.conf" --check 2>&1); is $? 1 "--check refuses max_jobs = 0"
like 'bad.conf:[0-9]+: max_jobs wants a number of jobs from 1 to 256' "$out" "naming file, line and the range"
stop_jobs
done_testing
