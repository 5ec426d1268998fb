#!/bin/bash
# Slurm: a one-node cluster started from nothing (contrib/slurm/slurm-up:
# munged, slurmctld, slurmd, slurmrestd with JWT), and jobs handed to it by
# jumbod's slurm backend, through slurmrestd and through sbatch/scontrol/
# scancel: output and exit status, the memory limit (OOM reported), cancel,
# jumbod SIGKILLed while a Slurm job runs (re-attached), a job Slurm loses
# (reported lost), a landing rule whose job runs on Slurm with provenance,
# and a notebook profile on the Slurm backend reached through JupyterHub.
. "$(dirname "$0")/lib.sh"

need crun mmdebstrap curl
need_root "Slurm jobs need root (slurmd runs jumbo's supervisor, which runs crun)"
[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/slurmrestd ] && [ -x /usr/sbin/munged ] ||
	{ echo "1..0 # SKIP Slurm is not installed (build-aux/deps: slurmctld slurmd slurmrestd munge)"; exit 0; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SL=$T/slurm HUB=$T/hub
chmod 755 "$T" # slurmrestd runs as nobody and reads slurm.conf there
the_end() {
	"$SRC/contrib/jupyterhub/hub-down" "$HUB" > /dev/null 2>&1
	"$SRC/contrib/slurm/slurm-down" "$SL" > /dev/null 2>&1
	stop_jobs
	cleanup
}
trap the_end EXIT
[ -n "${KEEP:-}" ] && trap "echo kept $T" EXIT
read -r CP DP RP PORT HPORT PPORT <<< "$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"

# --- the cluster, from nothing ---
t0=$(date +%s.%N)
out=$("$SRC/contrib/slurm/slurm-up" "$SL" --ctld-port "$CP" --slurmd-port "$DP" --rest-port "$RP" 2>&1); ok $? \
	"slurm-up: munged, slurmctld, slurmd, slurmrestd ($(/usr/bin/python3 -c "import time; print('%.1f' % (time.time() - $t0))") s)"
like "rest = http://127.0.0.1:$RP" "$out" "it prints the backend section for jumbo.conf"
export SLURM_CONF=$SL/slurm.conf
like 'idle' "$(sinfo -h -o %t)" "the node is idle"

# --- beta runs jobs on Slurm: rest (slurm) and commands (cmds) ---
two_sites
image_store - notebook; ok $? "an image store with jumbo/notebook"
sed -i "s|^state = .*|&\nimages = $IMAGE_STORE\njob_ports = $HPORT|" "$T/beta/jumbo.conf" # the hub's API, for the notebook
cat >> "$T/beta/jumbo.conf" <<EOF

[backend slurm]
type = slurm
rest = http://127.0.0.1:$RP
jwt-key = $SL/jwt.key

[backend cmds]
type = slurm

[rule digest]
glob = incoming/*.csv
image = jumbo/notebook
command = sh -c 'sha256sum {input} | cut -d" " -f1 > /work/out/{name}.sha256; hostname > /work/out/ran-on'
backend = slurm
EOF
kill "$(cat "$T/beta/pid")"; sleep 0.2; site_start beta || exit 1
set_address alpha beta
like 'backend slurm: slurm' "$(cat "$T/beta/log")" "jumbod opened both backends"
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
B() { "$JUMBO" --config "$T/beta/jumbo.conf" "$@"; }
job() { B jobs --json "$1"; }
mkdir -p "$T/beta/root/in"
printf 'x,y\n1,2\n' > "$T/beta/root/in/t.csv"

out=$(B run --backend slurm -i jumbo/notebook -d in -- sh -c 'echo hello from slurm; cat /data/in/t.csv | wc -l' 2> "$T/err1"); rc=$?
is "$rc" 0 "jumbo run --backend slurm: exit 0"
is "$out" "hello from slurm
2" "its output streams back"
id1=$(B jobs --json | jsonget /dev/stdin 0.id)
is "$(job "$id1" | jsonget /dev/stdin backend)" slurm "the job's backend is slurm"
sid=$(job "$id1" | jsonget /dev/stdin backend_id)
like '^[0-9]+$' "$sid" "with Slurm's job id ($sid)"
is "$(job "$id1" | jsonget /dev/stdin node)" localhost "and the node it ran on"
like "JobName=jumbo-$id1 .*JobState=COMPLETED" "$(scontrol show job -o "$sid")" "Slurm ran it and says COMPLETED"

out=$(B run --backend cmds -i jumbo/notebook -- sh -c 'echo via sbatch; exit 3' 2> /dev/null); rc=$?
is "$rc" 3 "--backend cmds (sbatch, scontrol): the exit status is the job's"
is "$out" "via sbatch" "and its output"
id2=$(B jobs --json | jsonget /dev/stdin 0.id)
like '^[0-9]+$' "$(job "$id2" | jsonget /dev/stdin backend_id)" "sbatch's job id is recorded"
is "$(job "$id2" | jsonget /dev/stdin state)" failed "failed, as for a local job"

# --- limits: memory (OOM), the time limit ---
B run --backend slurm -i jumbo/notebook -m 64M -- python3 -c 'b = bytearray(400 << 20); print(len(b))' > /dev/null 2>&1; rc=$?
is "$rc" 137 "over --memory on Slurm: killed, exit 137"
id3=$(B jobs --json | jsonget /dev/stdin 0.id)
is "$(job "$id3" | jsonget /dev/stdin state)" oom "reported oom"
like 'MinMemoryNode=64M' "$(scontrol show job -o "$(job "$id3" | jsonget /dev/stdin backend_id)")" "Slurm was asked for 64M"
B run --backend slurm -i jumbo/notebook -t 2 -- sleep 30 > /dev/null 2>&1; rc=$?
is "$rc" 124 "over --timeout on Slurm: exit 124"

# --- cancel ---
idc=$(B run --detach --backend slurm -i jumbo/notebook -- sleep 300)
for _ in $(seq 1 100); do [ "$(job "$idc" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
is "$(job "$idc" | jsonget /dev/stdin state)" running "a detached Slurm job runs"
B kill "$idc" > /dev/null; ok $? "jumbo kill"
for _ in $(seq 1 200); do [ "$(job "$idc" | jsonget /dev/stdin state)" = running ] || break; sleep 0.1; done
is "$(job "$idc" | jsonget /dev/stdin state)" cancelled "it ends cancelled"
like 'JobState=CANCELLED' "$(scontrol show job -o "$(job "$idc" | jsonget /dev/stdin backend_id)")" "Slurm cancelled it"

# --- jumbod SIGKILLed while a Slurm job runs ---
idr=$(B run --detach --backend slurm -i jumbo/notebook -- sh -c 'sleep 4; echo survived')
for _ in $(seq 1 100); do [ "$(job "$idr" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
{ kill -9 "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")"; } 2>/dev/null; sleep 0.5
site_start beta || exit 1
set_address alpha beta
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
for _ in $(seq 1 150); do [ "$(job "$idr" | jsonget /dev/stdin state)" = running ] || break; sleep 0.1; done
is "$(job "$idr" | jsonget /dev/stdin state)" completed "after jumbod's restart, the Slurm job is followed to its end"
is "$(B logs "$idr")" survived "with its output"

# --- a job Slurm loses ---
idb=$(B run --detach --backend slurm -i jumbo/notebook --cpus 2 -- sleep 60)
for _ in $(seq 1 100); do [ "$(job "$idb" | jsonget /dev/stdin state)" = running ] && break; sleep 0.1; done
idp=$(B run --detach --backend slurm -i jumbo/notebook --cpus 2 -- true)
for _ in $(seq 1 50); do job "$idp" | grep -q backend_id && break; sleep 0.1; done
like 'JobState=PENDING' "$(scontrol show job -o "$(job "$idp" | jsonget /dev/stdin backend_id)")" "a second job waits in Slurm's queue"
is "$(job "$idp" | jsonget /dev/stdin state)" pending "pending in jumbo too"
scontrol shutdown slurmctld > /dev/null; sleep 1
/usr/sbin/slurmctld -c -i; ok $? "slurmctld restarts with its state cleared (-c)"
for _ in $(seq 1 100); do [ "$(job "$idp" | jsonget /dev/stdin state)" = pending ] || break; sleep 0.1; done
is "$(job "$idp" | jsonget /dev/stdin state)" lost "the job Slurm forgot is reported lost"
like 'lost by its backend: Slurm has no job' "$(job "$idp" | jsonget /dev/stdin reason)" "saying so"
B kill "$idb" > /dev/null 2>&1
for _ in $(seq 1 200); do [ "$(job "$idb" | jsonget /dev/stdin state)" = running ] || break; sleep 0.1; done
like '^(cancelled|lost)$' "$(job "$idb" | jsonget /dev/stdin state)" "the running one ends too ($(job "$idb" | jsonget /dev/stdin state))"
for _ in $(seq 1 100); do sinfo -h -o %t | grep -q idle && break; sleep 0.1; done

# --- a landing rule whose job runs on Slurm ---
printf 'a,b\n3,4\n' > "$T/alpha/root/obs.csv"
jb send "$T/alpha/root/obs.csv" beta:incoming/ > /dev/null 2>&1; ok $? "alpha sends obs.csv to beta"
for _ in $(seq 1 300); do
	idrule=$(B jobs --json | /usr/bin/python3 -c 'import json,sys; print(next((j["id"] for j in json.load(sys.stdin) if j["spec"].get("rule") == "digest" and j["state"] not in ("pending", "running")), ""))')
	[ -n "$idrule" ] && break; sleep 0.1
done
st=$(job "$idrule" | jsonget /dev/stdin state)
is "$st" completed "the rule's job ran and completed"
[ "$st" = completed ] || diag "$(job "$idrule" | jsonget /dev/stdin reason)" "$(B logs "$idrule" 2>&1 | tail -5)"
is "$(job "$idrule" | jsonget /dev/stdin backend)" slurm "on Slurm"
outd=$(job "$idrule" | jsonget /dev/stdin output)
is "$(cat "$T/beta/root/$outd/obs.csv.sha256" 2>/dev/null)" "$(sha "$T/alpha/root/obs.csv")" "its output is the input's sha256"
prov=$(B provenance --json "$outd/obs.csv.sha256")
like "\"job\": *\"$idrule\"" "$prov" "the output's provenance names the job"
like '"origin": *"alpha"' "$prov" "and the input that came from alpha"

# --- a notebook profile on the Slurm backend, through JupyterHub ---
if [ -x /usr/bin/jupyterhub ] && [ -x /usr/bin/configurable-http-proxy ]; then
	echo '[{"slug": "slurm", "display_name": "PyTorch on Slurm", "image": "jumbo/notebook", "backend": "slurm", "cpus": 1, "memory": "2G"}]' > "$T/profiles.json"
	JUMBO_CLI=$JUMBO "$SRC/contrib/jupyterhub/hub-up" "$HUB" --jumbo-config "$T/beta/jumbo.conf" --api "http://$JUMBO_API" \
		--no-install --port "$PORT" --hub-port "$HPORT" --proxy-api-port "$PPORT" --auth dummy --password pw \
		--profiles "$T/profiles.json" --poll 2 > /dev/null; ok $? "hub-up with a profile on the Slurm backend"
	ADM=$(cat "$HUB/admin.token")
	curl -s -X POST -H "Authorization: token $ADM" "http://127.0.0.1:$PORT/hub/api/users/alice" > /dev/null
	curl -s -X POST -H "Authorization: token $ADM" -d '{"profile":"slurm"}' "http://127.0.0.1:$PORT/hub/api/users/alice/server" > /dev/null
	for _ in $(seq 1 300); do
		curl -s -H "Authorization: token $ADM" "http://127.0.0.1:$PORT/hub/api/users/alice" | grep -q '"ready": true' && break
		sleep 0.1
	done
	TA=$(curl -s -X POST -H "Authorization: token $ADM" -d '{}' "http://127.0.0.1:$PORT/hub/api/users/alice/tokens" | jsonget /dev/stdin token)
	is "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: token $TA" "http://127.0.0.1:$PORT/user/alice/api/status")" 200 \
		"alice's server, a Slurm job, answers through the hub's proxy"
	idn=$(B jobs --json | /usr/bin/python3 -c 'import json,sys; print(next(j["id"] for j in json.load(sys.stdin) if j["spec"].get("notebook")))')
	is "$(job "$idn" | jsonget /dev/stdin backend)" slurm "its job is on the Slurm backend"
	like "JobName=jumbo-$idn .*JobState=RUNNING" "$(scontrol show job -o "$(job "$idn" | jsonget /dev/stdin backend_id)")" "and Slurm runs it"
	curl -s -X DELETE -H "Authorization: token $ADM" "http://127.0.0.1:$PORT/hub/api/users/alice/server" > /dev/null
	for _ in $(seq 1 200); do [ "$(job "$idn" | jsonget /dev/stdin state)" = running ] || break; sleep 0.1; done
	is "$(job "$idn" | jsonget /dev/stdin state)" cancelled "stopping it from the hub cancels the Slurm job"
else
	pass "# SKIP Debian's jupyterhub is not installed: the notebook on Slurm is not tested"
fi
"$SRC/contrib/slurm/slurm-down" "$SL"; ok $? "slurm-down"
done_testing
