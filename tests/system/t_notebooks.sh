#!/bin/bash
# Notebooks: Debian's JupyterHub (hub-up) spawns jupyterhub-singleuser as
# jumbo notebook jobs through contrib/jupyterhub/jumbo_spawner.py.  A dataset
# sent from another site is at /data; the workspace survives stop and start;
# user A's token reaches neither B's server nor B's files, nor B's address;
# a hub restarted while servers run finds them again (poll); an idle server
# is culled; a missing image and a start timeout are reported by the hub;
# bad notebook requests are refused by jumbod.
. "$(dirname "$0")/lib.sh"

need crun mmdebstrap curl
need_root "notebooks need root (crun, veth networks)"
[ -x /usr/bin/jupyterhub ] && [ -x /usr/bin/configurable-http-proxy ] ||
	{ echo "1..0 # SKIP Debian's jupyterhub and node-configurable-http-proxy are not installed (build-aux/deps)"; exit 0; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HUB=$T/hub
the_end() {
	"$SRC/contrib/jupyterhub/hub-down" "$HUB" > /dev/null 2>&1
	[ -f "$T/hang.pid" ] && kill "$(cat "$T/hang.pid")" 2>/dev/null
	stop_jobs
	cleanup
}
trap the_end EXIT

# free TCP ports on 127.0.0.1
ports() { /usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'; }
read -r PORT HPORT PPORT HANG <<< "$(ports)"

# --- two sites: alpha sends a dataset to beta, where the notebooks run ---
two_sites
image_store - notebook; ok $? "an image store with jumbo/notebook (built once per machine with mmdebstrap)"
sed -i "s|^state = .*|&\nimages = $IMAGE_STORE\njob_ports = $HPORT|" "$T/beta/jumbo.conf" # the hub's API, for the notebooks
kill "$(cat "$T/beta/pid")"; sleep 0.2; site_start beta || exit 1
set_address alpha beta
API=http://127.0.0.1:$(jsonget "$T/beta/ready" api)
mkdir -p "$T/alpha/root/run7"
/usr/bin/python3 -c '
import random
random.seed(7)
print("x,y")
for i in range(200):
    x = random.uniform(-1, 1); print("%.6f,%.6f" % (x, 3 * x + 0.5 + random.gauss(0, 0.01)))' > "$T/alpha/root/run7/points.csv"
jb send -r "$T/alpha/root/run7" beta:incoming/ > /dev/null 2>&1; ok $? "alpha sends run7 to beta"
cmp -s "$T/alpha/root/run7/points.csv" "$T/beta/root/incoming/run7/points.csv"; ok $? "it landed in beta's data root"

# --- jumbod refuses bad notebook requests ---
BT=$(cat "$T/beta/state/api.token")
post() { curl -s -o "$T/post.out" -w '%{http_code}' -H "Authorization: Bearer $BT" -d "$1" "$API/api/v1/jobs"; }
is "$(post '{"image":"jumbo/notebook","notebook":{"user":"../etc"}}')" 400 "a user name with a path in it: 400"
like 'notebook.user' "$(cat "$T/post.out")" "the error names notebook.user"
is "$(post '{"image":"jumbo/notebook","notebook":{"user":"a","bogus":1}}')" 400 "an unknown notebook field: 400"
is "$(post '{"image":"jumbo/notebook","network":"host","notebook":{"user":"a"}}')" 400 "a notebook on the host's network: 400"
[ ! -e "$T/beta/state/workspaces/../etc" ] && [ ! -e "$T/beta/state/etc" ]; ok $? "nothing made outside the workspaces"

# --- the hub, in one command ---
# a registry that accepts connections and never answers: a start that times out
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); held = []
while True: held.append(s.accept()[0])' "$HANG" &
echo $! > "$T/hang.pid"
cat > "$T/profiles.json" <<EOF
[
 {"slug": "pytorch", "display_name": "PyTorch", "image": "jumbo/notebook", "cpus": 2, "memory": "4G", "default": true},
 {"slug": "cull", "display_name": "Culled", "image": "jumbo/notebook", "cull_idle": 6},
 {"slug": "missing", "display_name": "Missing", "image": "jumbo/nosuch"},
 {"slug": "gpu", "display_name": "GPU", "image": "jumbo/notebook", "gpus": 1},
 {"slug": "hang", "display_name": "Hangs", "image": "127.0.0.1:$HANG/slow/image:1", "note": "never stored: the pull hangs"}
]
EOF
hubup() {
	JUMBO_CLI=$JUMBO "$SRC/contrib/jupyterhub/hub-up" "$HUB" --jumbo-config "$T/beta/jumbo.conf" --api "$API" --no-install \
		--port "$PORT" --hub-port "$HPORT" --proxy-api-port "$PPORT" --auth dummy --password s3cret \
		--admin admin --profiles "$T/profiles.json" --poll 2 --start-timeout 20 --cull 0 "$@"
}
out=$(hubup 2>&1); ok $? "hub-up starts the proxy and the hub"
like "JupyterHub at http://127.0.0.1:$PORT/" "$out" "and says where"
like "^jbt_" "$(cat "$HUB/jumbo.token")" "the hub got a jumbo API token of its own"
like "jumbo_spawner.JumboSpawner" "$(cat "$HUB/jupyterhub_config.py")" "its configuration uses the jumbo spawner"
URL=http://127.0.0.1:$PORT
ADM=$(cat "$HUB/admin.token")
hubapi() { # METHOD PATH [BODY]: the hub's API with the admin service token
	curl -s -X "$1" -H "Authorization: token $ADM" ${3:+-d "$3"} "$URL/hub/api$2"
}
ready() { # USER: wait for the server, print its seconds
	/usr/bin/python3 - "$URL" "$ADM" "$1" <<'EOP'
import json, sys, time, urllib.request
url, tok, user = sys.argv[1:]
t0 = time.time()
while time.time() - t0 < 60:
    r = urllib.request.Request(url + "/hub/api/users/" + user, headers={"Authorization": "token " + tok})
    d = json.load(urllib.request.urlopen(r))
    s = d.get("servers", {}).get("")
    if s and s.get("ready"):
        print("%.2f" % (time.time() - t0)); sys.exit(0)
    if not d.get("pending") and not s:
        print("gone"); sys.exit(1)
    time.sleep(0.1)
print("timeout"); sys.exit(1)
EOP
}
progress_end() { # USER: the last event of the spawn's progress stream
	curl -s -N --max-time 60 -H "Authorization: token $ADM" "$URL/hub/api/users/$1/server/progress" |
		grep '^data:' | tee "$T/progress-$1" | tail -1 | sed 's/^data: //'
}
usertoken() { hubapi POST "/users/$1/tokens" '{"note":"test"}' | jsonget /dev/stdin token; }

for u in alice bob carol dave erin; do hubapi POST "/users/$u" > /dev/null; done
is "$(hubapi GET /users/alice | jsonget /dev/stdin name)" alice "the hub knows alice"

# --- alice and bob start servers (PyTorch profile) ---
hubapi POST /users/alice/server '{"profile":"pytorch"}' > /dev/null
t=$(ready alice); ok $? "alice's server starts ($t s)"
hubapi POST /users/bob/server '{"profile":"pytorch"}' > /dev/null
t=$(ready bob); ok $? "bob's server starts ($t s)"
JA=$(sqlite3 "$HUB/jupyterhub.sqlite" "SELECT s.state FROM spawners s JOIN users u ON s.user_id=u.id WHERE u.name='alice'" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
JB_=$(sqlite3 "$HUB/jupyterhub.sqlite" "SELECT s.state FROM spawners s JOIN users u ON s.user_id=u.id WHERE u.name='bob'" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
like '^[0-9a-f]{12}$' "$JA" "the hub keeps alice's jumbo job id in its state"
job() { curl -s -H "Authorization: Bearer $BT" "$API/api/v1/jobs/$1"; }
is "$(job "$JA" | jsonget /dev/stdin state)" running "the job runs in jumbod"
is "$(job "$JA" | jsonget /dev/stdin spec.notebook.user)" alice "a notebook job of alice"
AA=$(job "$JA" | jsonget /dev/stdin address)
AB=$(job "$JB_" | jsonget /dev/stdin address)
like '^10\.213\.' "$AA" "at a veth address ($AA)"

TA=$(usertoken alice)
TB=$(usertoken bob)
code() { curl -s -o "$T/code.out" -w '%{http_code}' "$@"; }
is "$(code -H "Authorization: token $TA" "$URL/user/alice/api/status")" 200 "alice's token reaches alice's server through the proxy"
is "$(code -X PUT -H "Authorization: token $TA" -d '{"type":"file","format":"text","content":"alice was here\n"}' \
	"$URL/user/alice/api/contents/note.txt")" 201 "alice saves a file through the contents API"
is "$(cat "$T/beta/state/workspaces/alice/note.txt" 2>/dev/null)" "alice was here" "it is in alice's workspace on the host"
is "$(stat -c %u "$T/beta/state/workspaces/alice/note.txt" 2>/dev/null)" 525288 "owned by the notebook user: jovyan (1000) in the jobs' user namespace, host uid 524288 + 1000"
code -X PUT -H "Authorization: token $TB" -d '{"type":"file","format":"text","content":"bob secret\n"}' \
	"$URL/user/bob/api/contents/secret.txt" > /dev/null

# --- isolation ---
c=$(code -H "Authorization: token $TA" "$URL/user/bob/api/contents/secret.txt")
[ "$c" = 403 ] || [ "$c" = 404 ] || [ "$c" = 302 ]; ok $? "alice's token does not reach bob's server ($c)"
! grep -q 'bob secret' "$T/code.out"; ok $? "and gets none of bob's file"
c=$(code -H "Authorization: token $TA" "$URL/hub/api/users/bob")
[ "$c" = 403 ] || [ "$c" = 404 ]; ok $? "nor bob's record in the hub's API ($c)"
c=$(code -H "Authorization: token $TA" "http://$AB:8888/user/bob/api/contents/secret.txt")
[ "$c" = 403 ] || [ "$c" = 302 ]; ok $? "bob's server, asked directly with alice's token, refuses ($c)"
CR=$T/beta/state/crun
inalice() { crun --root "$CR" exec --user 1000:100 "$JA" "$@"; }
is "$(inalice ls /home)" jovyan "alice's container has one home, her own"
is "$(inalice cat /home/jovyan/note.txt)" "alice was here" "her workspace is /home/jovyan"
is "$(inalice id -un)" jovyan "the notebook user is jovyan in it"
is "$(inalice awk '/^Uid/ {print $2}' /proc/1/status)" 1000 "and the server runs as uid 1000"
out=$(inalice python3 -c "
import socket
for host, port in (('$AB', 8888), ('10.213.0.1', $HPORT)):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); print(host, 'open')
    except OSError as e:
        print(host, 'refused', e.errno)
" 2>&1)
like "$AB refused" "$out" "alice's container has no route to bob's server"
like "10.213.0.1 open" "$out" "but reaches the hub's API"
is "$(inalice cat /data/incoming/run7/points.csv | head -1)" "x,y" "the data root is at /data"
out=$(inalice sh -c '(echo x > /data/incoming/new) 2>/dev/null; echo rc=$?')
like 'rc=[1-9]' "$out" "read-only"
like 'jumbo-host' "$(inalice cat /etc/hosts)" "its own /etc/hosts names the host"
like 'nothing beyond' "$(inalice cat /etc/resolv.conf)" "its own /etc/resolv.conf"
is "$(inalice sh -c 'ls /home/jovyan' | grep -c secret)" 0 "bob's file is nowhere in alice's workspace"

# --- the hub restarts while servers run: poll finds them ---
"$SRC/contrib/jupyterhub/hub-down" "$HUB" --keep-proxy; ok $? "hub-down --keep-proxy"
is "$(job "$JA" | jsonget /dev/stdin state)" running "alice's notebook runs on without the hub"
out=$(hubup 2>&1); ok $? "the hub starts again"
t=$(ready alice); ok $? "alice's server is ready at once after the restart ($t s)"
is "$(sqlite3 "$HUB/jupyterhub.sqlite" "SELECT s.state FROM spawners s JOIN users u ON s.user_id=u.id WHERE u.name='alice'" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')" "$JA" "the same job"
is "$(code -H "Authorization: token $TA" "$URL/user/alice/api/contents/note.txt")" 200 "alice reaches it through the proxy"

# --- stop and start: the workspace stays ---
hubapi DELETE /users/alice/server > /dev/null
for _ in $(seq 1 100); do [ "$(job "$JA" | jsonget /dev/stdin state)" != running ] && break; sleep 0.1; done
is "$(job "$JA" | jsonget /dev/stdin state)" cancelled "stopping the server from the hub cancels its job"
ip netns list | grep -q "jb-$JA"; is $? 1 "and its network namespace goes"
hubapi POST /users/alice/server '{"profile":"pytorch"}' > /dev/null
t=$(ready alice); ok $? "alice's server starts again ($t s)"
is "$(curl -s -H "Authorization: token $TA" "$URL/user/alice/api/contents/note.txt" | jsonget /dev/stdin content)" \
	"alice was here" "her file is still there"

# --- a missing image, a start that times out: the hub says why ---
hubapi POST /users/dave/server '{"profile":"missing"}' > /dev/null
ev=$(progress_end dave)
like '"failed": true' "$ev" "a missing image: the spawn fails"
like 'jumbo/nosuch' "$ev" "and the hub's message names the image ($(echo "$ev" | jsonget /dev/stdin message | cut -c1-120))"
if [ ! -e /dev/nvidiactl ]; then
	hubapi POST /users/dave/server '{"profile":"gpu"}' > /dev/null
	like 'GPU.*this site has none' "$(progress_end dave)" "a GPU profile on a site without GPUs: the hub shows jumbo's refusal"
else
	pass "# SKIP this site has GPUs: the refusal is not tested"
fi
hubapi POST /users/erin/server '{"profile":"hang"}' > /dev/null
ev=$(progress_end erin)
like '"failed": true' "$ev" "a registry that never answers: the spawn fails"
like '[Tt]imeout|timed out' "$ev" "after the start timeout ($(echo "$ev" | jsonget /dev/stdin message | cut -c1-100))"
like "jumbo job [0-9a-f]{12}: preparing the image 127.0.0.1:$HANG/slow/image:1" "$(cat "$T/progress-erin")" \
	"while it waited, the hub's progress said what jumbo was doing"
JE=$(curl -s -H "Authorization: Bearer $BT" "$API/api/v1/jobs" | /usr/bin/python3 -c '
import json, sys
print([j["id"] for j in json.load(sys.stdin)["jobs"] if j["spec"].get("notebook", {}).get("user") == "erin"][0])')
for _ in $(seq 1 50); do [ "$(job "$JE" | jsonget /dev/stdin state)" = pending ] || break; sleep 0.1; done
is "$(job "$JE" | jsonget /dev/stdin state)" cancelled "the hub's stop cancels the job that could not start, its pull cut short"

# --- an idle server is culled ---
hubapi POST /users/carol/server '{"profile":"cull"}' > /dev/null
t=$(ready carol); ok $? "carol's server starts ($t s)"
JC=$(sqlite3 "$HUB/jupyterhub.sqlite" "SELECT s.state FROM spawners s JOIN users u ON s.user_id=u.id WHERE u.name='carol'" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 600); do
	hubapi GET /users/carol | grep -q '"servers": {}' && break
	sleep 0.1
done
like '"servers": \{\}' "$(hubapi GET /users/carol)" "left idle, carol's server is gone from the hub"
is "$(job "$JC" | jsonget /dev/stdin state)" completed "its job completed (the server shut itself down)"

# --- bob stops; nothing left behind ---
hubapi DELETE /users/bob/server > /dev/null
hubapi DELETE /users/alice/server > /dev/null
for _ in $(seq 1 100); do
	n=$(curl -s -H "Authorization: Bearer $BT" "$API/api/v1/jobs" | grep -o '"state": *"running"' | wc -l)
	[ "$n" = 0 ] && break; sleep 0.1
done
is "$n" 0 "every notebook job has ended"
is "$(ip netns list | grep -c -e "jb-$JA" -e "jb-$JB_" -e "jb-$JC")" 0 "no job network is left"
"$SRC/contrib/jupyterhub/hub-down" "$HUB"; ok $? "hub-down"
! kill -0 "$(cat "$HUB/proxy.pid" 2>/dev/null || echo 999999)" 2>/dev/null; ok $? "the proxy is gone too"
done_testing
