#!/bin/bash
# JupyterLab on landed data, in a browser: alpha sends a dataset to beta;
# in headless Chromium a user logs in to beta's JupyterHub (hub-up), picks
# the PyTorch profile, gets JupyterLab in a jumbo container, trains a tiny
# torch model on the dataset from /data, saves the notebook, stops and
# starts the server, and finds the notebook again.  Screenshots go to
# $BUILD/test-artifacts/jupyterlab/.
. "$(dirname "$0")/lib.sh"

need crun mmdebstrap curl chromium node npm
need_root "notebooks need root (crun, veth networks)"
[ -x /usr/bin/jupyterhub ] && [ -x /usr/bin/configurable-http-proxy ] ||
	{ echo "1..0 # SKIP Debian's jupyterhub and node-configurable-http-proxy are not installed (build-aux/deps)"; exit 0; }
NODE_DIR=${JUMBO_TEST_CACHE:-/var/tmp/jumbo-test-cache}/node
if [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
	mkdir -p "$NODE_DIR"
	(cd "$NODE_DIR" && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null 2>&1)
fi
[ -d "$NODE_DIR/node_modules/playwright-core" ] || { echo "1..0 # SKIP playwright-core could not be installed from npm"; exit 0; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
ART=$BUILD/test-artifacts/jupyterlab
rm -rf "$ART"; mkdir -p "$ART"
HUB=$T/hub
the_end() {
	[ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && for f in "$T"/beta/state/jobs/*/stderr; do cp "$f" "$KEEP_LOGS/$(basename "$(dirname "$f")").stderr"; done
	"$SRC/contrib/jupyterhub/hub-down" "$HUB" > /dev/null 2>&1
	stop_jobs
	cleanup
}
trap the_end EXIT
read -r PORT HPORT PPORT <<< "$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"

two_sites
image_store - notebook; ok $? "an image store with jumbo/notebook"
sed -i "s|^state = .*|&\nimages = $IMAGE_STORE\njob_ports = $HPORT|" "$T/beta/jumbo.conf" # the hub's API, for the notebooks
kill "$(cat "$T/beta/pid")"; sleep 0.2; site_start beta || exit 1
set_address alpha beta
mkdir -p "$T/alpha/root/run7"
/usr/bin/python3 -c '
import random
random.seed(7)
print("x,y")
for i in range(500):
    x = random.uniform(-1, 1); print("%.6f,%.6f" % (x, 3 * x + 0.5 + random.gauss(0, 0.05)))' > "$T/alpha/root/run7/points.csv"
jb send -r "$T/alpha/root/run7" beta:incoming/ > /dev/null 2>&1; ok $? "alpha sends run7/points.csv to beta"

JUMBO_CLI=$JUMBO "$SRC/contrib/jupyterhub/hub-up" "$HUB" --jumbo-config "$T/beta/jumbo.conf" \
	--api "http://127.0.0.1:$(jsonget "$T/beta/ready" api)" --no-install --port "$PORT" --hub-port "$HPORT" \
	--proxy-api-port "$PPORT" --auth dummy --password s3cret --poll 5 > /dev/null; ok $? "beta's hub is up (hub-up)"

NODE_PATH=$NODE_DIR/node_modules node "$(dirname "$0")/jupyterlab.js" "http://127.0.0.1:$PORT" alice s3cret \
	incoming/run7/points.csv "$ART" > "$T/browser.out" 2>&1; rc=$?
is "$rc" 0 "headless Chromium went through the whole session"
[ "$rc" = 0 ] || { diag "$(cat "$T/browser.out")"; diag "hub:" "$(tail -40 "$HUB/hub.log")"
	diag "beta's jumbod:" "$(grep -E 'job|error|warn' "$T/beta/log" | tail -20)"; }
out=$(cat "$T/browser.out")
like '"lab":"http://127.0.0.1:[0-9]+/user/alice/lab' "$out" "after the profile form, JupyterLab at /user/alice/lab"
like '"output":"500 points from /data/incoming/run7/points.csv, torch 2' "$out" "the cell read the landed dataset with torch"
like 'learned y = 3\.0[0-9] x \+ 0\.[45][0-9], final loss 0\.00' "$out" "and the model learned it (y = 3x + 0.5)"
name=$(echo "$out" | grep '"saved"' | jsonget /dev/stdin saved)
like '\.ipynb$' "$name" "the notebook was saved ($name)"
grep -q 'final loss' "$T/beta/state/workspaces/alice/$name" 2>/dev/null; ok $? "it is in alice's workspace on beta, with its output"
like '"stopped":true' "$out" "the server was stopped from the hub"
like '"restarted":"http://127.0.0.1:[0-9]+/user/alice/lab' "$out" "and started again"
like "\"reopened\":\"$name\",\"output_again\":\"500 points" "$out" "the notebook was there, output and all"
like '"errors":\[\]' "$out" "without a script error while JupyterLab and the hub's pages were in use"
diag "JupyterLab's own errors, shown, not counted (as the browser leaves it; its checkpoint racing its rename on first save): $(echo "$out" | grep -o '"errors_while_leaving":.*')"
n=$(ls "$ART"/*.png 2>/dev/null | wc -l)
is "$n" 5 "five screenshots in $ART"
done_testing
