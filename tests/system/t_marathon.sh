#!/bin/bash
# Marathon: jumbod's marathon backend against fake_marathon.py, which answers
# as Marathon's published REST API says and checks each app against its
# types (no Marathon or Mesos can run here).  What jumbo sends: the app
# (id, image, containerizer, RO dataset volumes, the RW workspace, limits,
# host or bridge network, backoff), Basic auth; what it reads back: the
# task's agent and port, lastTaskFailure (exit status, memory limit), a 404;
# what it does after: scale to zero, delete.  Also cancel, jumbod's own
# timeout, a lost app, a refusal (422) and wrong credentials.
. "$(dirname "$0")/lib.sh"

need crun curl
need_root "jobs need root (crun must be usable for jumbod to take jobs)"
read -r MP <<< "$(/usr/bin/python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG=$T/marathon.log
/usr/bin/python3 "$(dirname "$0")/fake_marathon.py" --port "$MP" --log "$LOG" --user jumbo --password s3cret &
_pids+=($!)
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$MP/v2/info" && break; sleep 0.1; done

site_new alpha
printf 's3cret\n' > "$T/mpw"
printf 'wrong\n' > "$T/bad"
mkdir -p "$T/alpha/root/run7"
echo data > "$T/alpha/root/run7/a.txt"
cat >> "$T/alpha/jumbo.conf" <<EOF

[backend mesos]
type = marathon
url = http://127.0.0.1:$MP
user = jumbo
password-file = $T/mpw
container = mesos
data = /mnt/jumbo/data
state = /mnt/jumbo/state

[backend badpw]
type = marathon
url = http://127.0.0.1:$MP
user = jumbo
password-file = $T/bad
EOF
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
A() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
job() { A jobs --json "$1"; }
IMG=registry.example:5000/lab/python:3.11
like 'backend mesos: marathon' "$(cat "$T/alpha/log")" "jumbod opened the marathon backend (GET /v2/info with Basic auth)"
like 'backend badpw: .*refused the credentials \(401\)' "$(cat "$T/alpha/log")" "wrong credentials: logged at start"
out=$(A run --backend badpw -i "$IMG" -- true 2>&1); rc=$?
is "$rc" 125 "a job on that backend is refused"
like 'backend .badpw. is not available: .*refused the credentials' "$out" "with the reason"
waitend() { for _ in $(seq 1 "${2:-100}"); do case $(job "$1" | jsonget /dev/stdin state) in pending|running) sleep 0.1 ;; *) return ;; esac; done; }

# --- a job: the app jumbo creates, the end it reads ---
id1=$(A run --detach --backend mesos -i "$IMG" -d run7 --cpus 0.5 -m 256M -e MODE=fast -- sh -c 'exit 0')
waitend "$id1"
is "$(job "$id1" | jsonget /dev/stdin state)" completed "a job on Marathon completes (TASK_FINISHED)"
is "$(job "$id1" | jsonget /dev/stdin exit_code)" 0 "exit status 0"
is "$(job "$id1" | jsonget /dev/stdin node)" agent-1.example "on the agent Marathon named"
is "$(job "$id1" | jsonget /dev/stdin backend_id)" "/jumbo/alpha/$id1" "the app's id is /jumbo/SITE/JOB"
post=$(grep '"POST", "path": "/v2/apps"' "$LOG" | head -1)
app=$(echo "$post" | jsonget /dev/stdin body)
is "$(echo "$app" | jsonget /dev/stdin container.type)" MESOS "the Mesos containerizer (UCR)"
is "$(echo "$app" | jsonget /dev/stdin container.docker.image)" "$IMG" "the job's image, from its registry"
is "$(echo "$app" | jsonget /dev/stdin args.2)" "exit 0" "the job's command as args"
is "$(echo "$app" | jsonget /dev/stdin cpus)" 0.5 "cpus"
is "$(echo "$app" | jsonget /dev/stdin mem)" 256.0 "mem in MB"
is "$(echo "$app" | jsonget /dev/stdin instances)" 1 "one instance"
is "$(echo "$app" | jsonget /dev/stdin env.MODE)" fast "the environment"
is "$(echo "$app" | jsonget /dev/stdin networks.0.mode)" host "host network for a batch job"
is "$(echo "$app" | jsonget /dev/stdin backoffSeconds)" 3600 "a task that ends is not relaunched before jumbo sees it"
vols=$(echo "$app" | /usr/bin/python3 -c 'import json,sys; print(" ".join("%s=%s:%s" % (v["containerPath"], v["hostPath"], v["mode"]) for v in json.load(sys.stdin)["container"]["volumes"]))')
like "/data/run7=/mnt/jumbo/data/run7:RO" "$vols" "the dataset as an RO volume, at its path on the agents"
like "/work=/mnt/jumbo/state/jobs/$id1/workspace:RW" "$vols" "the workspace RW"
like '"auth": "Basic anVtYm86czNjcmV0"' "$post" "HTTP Basic credentials (jumbo:s3cret)"
grep -q "\"PUT\", \"path\": \"/v2/apps/jumbo/alpha/$id1?force=true\"" "$LOG"; ok $? "after its end, the app is scaled to zero"
grep -q "\"DELETE\", \"path\": \"/v2/apps/jumbo/alpha/$id1?force=true\"" "$LOG"; ok $? "and deleted"
is "$(curl -s -u jumbo:s3cret -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MP/v2/apps/jumbo/alpha/$id1")" 404 "Marathon has no app left"

id2=$(A run --detach --backend mesos -i "$IMG" -- sh -c 'exit 3')
waitend "$id2"
is "$(job "$id2" | jsonget /dev/stdin state)" failed "TASK_FAILED: failed"
is "$(job "$id2" | jsonget /dev/stdin exit_code)" 3 "with the exit status of lastTaskFailure's message"
id3=$(A run --detach --backend mesos -i "$IMG" -m 64M -- oom)
waitend "$id3"
is "$(job "$id3" | jsonget /dev/stdin state)" oom "a memory limit in lastTaskFailure: oom"
is "$(job "$id3" | jsonget /dev/stdin exit_code)" 137 "exit 137"

# --- cancel, timeout, lost ---
id4=$(A run --detach --backend mesos -i "$IMG" -- forever)
for _ in $(seq 1 50); do [ "$(job "$id4" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
is "$(job "$id4" | jsonget /dev/stdin state)" running "a long job runs"
A kill "$id4" > /dev/null; ok $? "jumbo kill"
waitend "$id4"
is "$(job "$id4" | jsonget /dev/stdin state)" cancelled "cancelled (the app deleted)"
id5=$(A run --detach --backend mesos -i "$IMG" -t 1 -- forever)
waitend "$id5" 100
is "$(job "$id5" | jsonget /dev/stdin state)" timeout "over --timeout: jumbod deletes the app, state timeout"
is "$(job "$id5" | jsonget /dev/stdin exit_code)" 124 "exit 124"
id6=$(A run --detach --backend mesos -i "$IMG" -- forever)
for _ in $(seq 1 50); do [ "$(job "$id6" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
curl -s -u jumbo:s3cret -X POST "http://127.0.0.1:$MP/fake/forget/jumbo/alpha/$id6" > /dev/null
waitend "$id6"
is "$(job "$id6" | jsonget /dev/stdin state)" lost "an app Marathon no longer has: lost"
like 'Marathon has no such app' "$(job "$id6" | jsonget /dev/stdin reason)" "saying so"

# --- Marathon refuses: its 422 details reach the job's reason ---
out=$(A run --backend mesos -i registry.example:5000/invalid/x -- true 2>&1); rc=$?
is "$rc" 125 "a refused app: the job cannot start"
like 'Marathon refused the app .* \(422\): Object is not valid \(/container/docker/image: ' "$out" "Marathon's message and detail"

# --- a notebook on Marathon: bridge network, the agent's host port ---
TOK=$(cat "$T/alpha/state/api.token")
nb=$(curl -s -H "Authorization: Bearer $TOK" -d "{\"image\":\"$IMG\",\"backend\":\"mesos\",\"args\":[\"forever\"],\"notebook\":{\"user\":\"alice\"}}" \
	"http://$JUMBO_API/api/v1/jobs" | jsonget /dev/stdin id)
for _ in $(seq 1 50); do job "$nb" | grep -q '"port"' && break; sleep 0.1; done
is "$(job "$nb" | jsonget /dev/stdin address)" agent-1.example "a notebook's address is its agent"
like '^310[0-9][0-9]$' "$(job "$nb" | jsonget /dev/stdin port)" "and the host port Marathon gave ($(job "$nb" | jsonget /dev/stdin port))"
app=$(grep "\"POST\", \"path\": \"/v2/apps\"" "$LOG" | tail -1 | jsonget /dev/stdin body)
is "$(echo "$app" | jsonget /dev/stdin networks.0.mode)" container/bridge "on a bridge network"
is "$(echo "$app" | jsonget /dev/stdin container.portMappings.0.containerPort)" 8888 "mapping the server's port 8888"
like "/home/jovyan=/mnt/jumbo/state/workspaces/alice:RW" \
	"$(echo "$app" | /usr/bin/python3 -c 'import json,sys; print(" ".join("%s=%s:%s" % (v["containerPath"], v["hostPath"], v["mode"]) for v in json.load(sys.stdin)["container"]["volumes"]))')" \
	"with the user's workspace"
A kill "$nb" > /dev/null
waitend "$nb"
is "$(job "$nb" | jsonget /dev/stdin state)" cancelled "stopped"
is "$(grep -vc 'the test asked for this refusal' "$LOG.rejected")" 0 "every app jumbo sent passed the published types (but the one refused on purpose)"
done_testing
