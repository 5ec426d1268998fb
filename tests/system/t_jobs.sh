#!/bin/bash
# Jobs: jumbo run through jumbod's REST API, in containers run by crun on an
# overlay of the image's layers, next to the data: datasets read-only under
# /data (one fetched from another site), a workspace at /work, limits
# enforced (memory -> OOM, CPUs, pids, time), no network, default
# capabilities, no new privileges; cancel; jumbod SIGKILLed while a job runs;
# a supervisor killed; bad input; nothing left mounted or running.
. "$(dirname "$0")/lib.sh"

need crun mmdebstrap
need_root "jobs need root (crun, overlay mounts, cgroups)"
the_end() { # supervisors outlive jumbod by design: the test stops its own
	stop_jobs
	cleanup
}
trap the_end EXIT

two_sites
image_store "$T/alpha/images"; ok $? "an image store with jumbo/minimal (built once per run with mmdebstrap)"
sed -i "s|^state = .*|&\nimages = $T/alpha/images|" "$T/alpha/jumbo.conf"
mkdir -p "$T/alpha/root/run7" "$T/beta/root/remote"
printf 'x,y\n1,2\n3,4\n' > "$T/alpha/root/run7/table.csv"
head -c 3000000 /dev/urandom > "$T/beta/root/remote/sample.bin"
ln -s /etc "$T/alpha/root/etc-link"
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
JB() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }

# --- a job reads /data and writes /work ---
out=$(JB run -d run7 -- python3 -c '
import csv, os
rows = list(csv.DictReader(open("/data/run7/table.csv")))
s = sum(int(r["y"]) for r in rows)
open("/work/sum.txt", "w").write(str(s))
print("sum", s, "cwd", os.getcwd(), "uid", os.getuid())' 2> "$T/err1"); rc=$?
is "$rc" 0 "jumbo run: a job reading /data exits 0"
is "$out" "sum 6 cwd /work uid 0" "its output streams back"
id1=$(JB jobs --json | jsonget /dev/stdin 0.id)
is "$(cat "$T/alpha/state/jobs/$id1/workspace/sum.txt")" 6 "what it wrote in /work is in its workspace"
is "$(JB jobs --json "$id1" | jsonget /dev/stdin state)" completed "jumbo jobs: completed"
like '^sha256:[0-9a-f]{64}$' "$(JB jobs --json "$id1" | jsonget /dev/stdin digest)" "the job records the image digest"

out=$(JB run -- python3 -c 'import sys; print("to out"); print("to err", file=sys.stderr); sys.exit(3)' 2> "$T/err2"); rc=$?
is "$rc" 3 "the exit status is the job's"
is "$out" "to out" "stdout on stdout"
like 'to err' "$(cat "$T/err2")" "stderr on stderr"
like 'job [0-9a-f]{12} failed: exit status 3' "$(cat "$T/err2")" "and the end is reported"

# --- isolation ---
out=$(JB run -d run7 -- python3 -c '
try:
    open("/data/run7/new", "w")
    print("wrote")
except OSError as e:
    print("refused", e.errno)' 2>&1)
is "$out" "refused 30" "/data is read-only (EROFS)"
out=$(JB run -- python3 -c '
for l in open("/proc/self/status"):
    if l.startswith(("NoNewPrivs", "CapEff")): print(l.split()[1])' 2>&1)
is "$(echo $out)" "00000000800405fb 1" "Podman's default capabilities only (no CAP_NET_RAW, CAP_MKNOD, CAP_AUDIT_WRITE), and no new privileges"
api_port=$(jsonget "$T/alpha/ready" api)
out=$(JB run -- python3 -c "
import socket, time
t = time.time(); print(socket.gethostbyname('localhost'), round(time.time() - t) < 2)
print(sorted(__import__('os').listdir('/sys/class/net')))
s = socket.socket()
s.settimeout(3)
try:
    s.connect(('127.0.0.1', $api_port)); print('reached the host')
except OSError as e:
    print('no host:', type(e).__name__)" 2>&1)
is "$out" "127.0.0.1 True
['lo']
no host: ConnectionRefusedError" "no network: only loopback of its own; names resolve at once from its /etc/hosts"
out=$(JB run --network -- python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $api_port), 3); print('reached the host')" 2>&1)
is "$out" "reached the host" "--network shares the host's network"
# a network of its own, joined to the host by a veth pair: the host reaches
# the job, the job reaches nothing beyond the host
idn=$(JB run --detach --network=veth -- python3 -c '
import http.server, socket
s = socket.socket()
try:
    s.connect(("192.0.2.1", 80)); print("reached beyond")
except OSError as e:
    print("beyond:", e.errno == 101)
http.server.HTTPServer(("", 8000), http.server.SimpleHTTPRequestHandler).serve_forever()')
for _ in $(seq 50); do [ "$(JB jobs --json "$idn" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
addr=$(JB jobs --json "$idn" | jsonget /dev/stdin address)
like '^10\.213\.[0-9]+\.[0-9]+$' "$addr" "--network=veth: the job has an address of its own ($addr)"
code=000
for _ in $(seq 50); do code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$addr:8000/"); [ "$code" = 200 ] && break; sleep 0.1; done
is "$code" 200 "the host reaches a server in the job there"
ip netns list | grep -q "jb-$idn"; ok $? "its namespace is jb-ID"
JB kill "$idn" > /dev/null
for _ in $(seq 50); do [ "$(JB jobs --json "$idn" | jsonget /dev/stdin state)" = cancelled ] && break; sleep 0.1; done
like 'beyond: True' "$(JB logs "$idn" 2>/dev/null)" "and the job reaches nothing beyond the host (no route)"
ip netns list | grep -q "jb-$idn"; is $? 1 "when it ends, its namespace goes"
ip link | grep -q " jb$idn"; is $? 1 "and so does its veth pair"
out=$(JB run --network=wifi -- true 2>&1); is $? 2 "an unknown network mode is a usage error"

out=$(JB run -- python3 -c 'import os; print(os.getpid(), [p for p in os.listdir("/proc") if p.isdigit()])' 2>&1)
is "$out" "1 ['1']" "its own PID namespace: the job is process 1, alone"

# --- limits ---
out=$(JB run -m 64M -- python3 -c 'x = bytearray(512 << 20); print("survived")' 2>&1); rc=$?
is "$rc" 137 "over --memory: killed, exit 137"
like 'job [0-9a-f]{12} oom: out of memory' "$out" "reported as out of memory"
idm=$(JB jobs --json | jsonget /dev/stdin 0.id)
is "$(JB jobs --json "$idm" | jsonget /dev/stdin state)" oom "state oom"
out=$(JB run --pids 16 -- python3 -c '
import threading, time
n = 0
try:
    for i in range(64):
        threading.Thread(target=time.sleep, args=(2,), daemon=True).start(); n += 1
except RuntimeError:
    pass
print(n < 16)' 2>&1)
is "$out" True "--pids caps the threads"
out=$(JB run --cpus 0.5 -- python3 -c '
import time, os
t = time.time()
while time.time() - t < 1.5: pass
print(os.times().user + os.times().system < 1.1)' 2>&1)
is "$out" True "--cpus 0.5: 1.5 s of spinning gets at most ~0.75 s of CPU"
out=$(JB run -t 1s -- python3 -c 'import time; print("start", flush=True); time.sleep(60)' 2>&1); rc=$?
is "$rc" 124 "over --timeout: exit 124"
like 'timeout: over its time limit' "$out" "and says so"

# --- cancel ---
idk=$(JB run --detach -- python3 -c 'import time; time.sleep(60)')
like '^[0-9a-f]{12}$' "$idk" "--detach prints the job id"
for _ in $(seq 50); do [ "$(JB jobs --json "$idk" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
JB kill "$idk" > /dev/null; ok $? "jumbo kill"
for _ in $(seq 50); do [ "$(JB jobs --json "$idk" | jsonget /dev/stdin state)" = cancelled ] && break; sleep 0.1; done
is "$(JB jobs --json "$idk" | jsonget /dev/stdin state)" cancelled "the job is cancelled"
out=$(JB kill "$idk" 2>&1); is $? 1 "killing it again fails"
like 'has ended \(cancelled\)' "$out" "saying it has ended"

# --- jumbod SIGKILLed while a job runs ---
idr=$(JB run --detach -- python3 -c '
import time
for i in range(4):
    print("tick", i, flush=True); time.sleep(0.5)')
sleep 0.5
kill -9 "$(cat "$T/alpha/pid")"
wait "$(cat "$T/alpha/pid")" 2>/dev/null
sleep 0.3
pgrep -f -- "--supervise $T/alpha/state/jobs/$idr" > /dev/null; ok $? "its supervisor outlives jumbod"
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
out=$(JB logs -f "$idr"); rc=$?
is "$rc" 0 "after the restart the job is re-attached and ends well"
is "$(echo $out)" "tick 0 tick 1 tick 2 tick 3" "with all its output"
grep -q "job $idr: still running, re-attached" "$T/alpha/log"; ok $? "the daemon says it re-attached"

# a supervisor killed: the job is lost, and its container does not linger
ids=$(JB run --detach -- python3 -c 'import time; time.sleep(60)')
for _ in $(seq 50); do [ -f "$T/alpha/state/jobs/$ids/container.pid" ] && break; sleep 0.1; done
sleep 0.3
kill -9 "$(cat "$T/alpha/state/jobs/$ids/supervisor.pid")"
for _ in $(seq 50); do [ "$(JB jobs --json "$ids" | jsonget /dev/stdin state)" = lost ] && break; sleep 0.1; done
is "$(JB jobs --json "$ids" | jsonget /dev/stdin state)" lost "a job whose supervisor was killed is lost"
like 'supervisor ended without a result' "$(JB jobs --json "$ids" | jsonget /dev/stdin reason)" "with the reason"
is "$(crun --root "$T/alpha/state/crun" list -q 2>/dev/null | grep -c .)" 0 "and its container is removed"

# --- a dataset of another site, fetched when the job starts ---
out=$(JB run -d beta:remote/sample.bin -- python3 -c '
import hashlib; print(hashlib.sha256(open("/data/sample.bin", "rb").read()).hexdigest())' 2>&1)
is "$out" "$(sha "$T/beta/root/remote/sample.bin")" "--data PEER:PATH: fetched from beta, verified, mounted"
is "$(sha "$T/alpha/root/beta/remote/sample.bin")" "$(sha "$T/beta/root/remote/sample.bin")" \
	"it landed in alpha's data root under the peer's name"

# --- bad input ---
out=$(JB run -i nope/nope -- true 2>&1); is $? 125 "an unknown image: exit 125"
like 'no such image here' "$out" "clear message"
out=$(JB run -d ../../etc -- true 2>&1); is $? 125 "a dataset path with ..: exit 125"
like "escapes the data root" "$out" "refused"
out=$(JB run -d etc-link -- true 2>&1); is $? 125 "a symlink out of the data root: exit 125"
like "outside the data root" "$out" "refused"
out=$(JB run -d nothing/here -- true 2>&1); is $? 125 "a dataset that is not there: exit 125"
like "nothing/here" "$out" "named in the error"
out=$(JB run -d beta:nope/none -- true 2>&1); is $? 125 "a peer's dataset that is not there: exit 125"
like "beta:nope/none" "$out" "named in the error"
if [ ! -e /dev/nvidiactl ]; then
	out=$(JB run --gpus 1 -- true 2>&1); is $? 125 "--gpus on a site without GPUs: exit 125"
	like 'this site has none \(no NVIDIA driver' "$out" "clear message"
else
	echo "ok $((_n += 1)) # SKIP this site has NVIDIA GPUs"
fi
out=$(JB run -m 1k -- true 2>&1); is $? 2 "a bad --memory: usage error"
# the API wants a token (the CLI above used the site's own, STATE/api.token)
is "$(stat -c %a "$T/alpha/state/api.token")" 600 "the site's token file is private (0600)"
is "$(curl -s -o /dev/null -w '%{http_code}' "$JUMBO_API/api/v1/jobs")" 401 "no token: 401"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer jbt_nope' "$JUMBO_API/api/v1/jobs")" 401 "a wrong token: 401"
like 'jumbo token create' "$(curl -s "$JUMBO_API/api/v1/jobs")" "and the error says how to get one"
is "$(curl -s -o /dev/null -w '%{http_code}' "$JUMBO_API/api/v1/health")" 200 "health needs none"
tok=$(JB token create ci-bot --scope run); ok $? "jumbo token create"
like '^jbt_[0-9a-f]{64}$' "$tok" "prints the token once"
is "$(JUMBO_TOKEN=$tok "$JUMBO" jobs --api "$JUMBO_API" --json)" "[]" \
	"a token from \$JUMBO_TOKEN is accepted (and sees no job of another token's)"
like 'ci-bot +read,run +created' "$(JB token list)" "jumbo token list names it, with its scopes"
JB token revoke ci-bot > /dev/null; ok $? "jumbo token revoke"
out=$(JUMBO_TOKEN=$tok "$JUMBO" jobs --api "$JUMBO_API" 2>&1); is $? 1 "a revoked token is refused"
like 'missing or wrong token' "$out" "clearly"
AUTH="Authorization: Bearer $(cat "$T/alpha/state/api.token")"
out=$(curl -s -H "$AUTH" -XPOST "$JUMBO_API/api/v1/jobs" -d '{"image": "jumbo/minimal", "colour": 1}')
like 'unknown field \\"colour\\"' "$out" "the API refuses unknown fields"
code=$(curl -s -H "$AUTH" -o /dev/null -w '%{http_code}' -XPOST "$JUMBO_API/api/v1/jobs" -d '{"image": ')
is "$code" 400 "malformed JSON: 400"
code=$(head -c 2000000 /dev/zero | tr '\0' ' ' | curl -s -H "$AUTH" -o /dev/null -w '%{http_code}' -XPOST "$JUMBO_API/api/v1/jobs" --data-binary @-)
is "$code" 413 "a 2 MB body: 413"
is "$(curl -s -H "$AUTH" -o /dev/null -w '%{http_code}' "$JUMBO_API/api/v1/jobs/ffffffffffff")" 404 "an unknown job: 404"
like 'jumbo_jobs\{state="completed"\} [1-9]' "$(curl -s "$JUMBO_API/metrics")" "/metrics counts jobs by state"

# --- an image removed while a job runs in it ---
idp=$(JB run --detach -- python3 -c 'import time; time.sleep(2); import json, csv, email.parser; print("still whole")')
for _ in $(seq 50); do [ "$(JB jobs --json "$idp" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
sleep 0.3
"$JUMBO" image --store "$T/alpha/images" rm jumbo/minimal > /dev/null; ok $? "image rm while a job runs in it"
is "$(ls "$T/alpha/images/layers" | grep -vc diff_id)" 1 "its unpacked layer stays while the job runs"
is "$(JB logs -f "$idp")" "still whole" "and the job ends well"
"$JUMBO" image --store "$T/alpha/images" prune > /dev/null; ok $? "image prune"
is "$(ls "$T/alpha/images/layers" | grep -c .)" 0 "once the job is over, the layer goes"

# --- nothing left ---
sleep 0.3
is "$(pgrep -fc -- "--supervise $T/" || true)" 0 "no supervisor is left"
is "$(crun --root "$T/alpha/state/crun" list -q 2>/dev/null | grep -c .)" 0 "no container is left"
is "$(grep -c " $T/" /proc/mounts)" 0 "nothing is left mounted"
is "$(ls "$T/alpha/state/jobs/$id1")" "$(printf '%s\n' config.json container.pid crun.log hostname hosts merged resolv.conf result.json stderr stdout supervise.json supervisor.lock supervisor.pid workspace)" \
	"a finished job keeps its logs, result and workspace, not its writable layer"
done_testing
