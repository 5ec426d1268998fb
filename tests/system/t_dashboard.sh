#!/bin/bash
# The dashboard jumbod serves, in headless Chromium (Debian's chromium,
# driven by playwright-core from npm): a durable transfer progresses and
# ends, a job finishes and its log opens, a dataset's provenance opens; a
# screenshot is saved as a test artifact ($BUILD/test-artifacts/).
. "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "1..0 # SKIP chromium, node or npm is missing (build-aux/deps installs chromium)"
	exit 0
fi
NODE_DIR=${JUMBO_TEST_CACHE:-/var/tmp/jumbo-test-cache}/node
if [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
	mkdir -p "$NODE_DIR"
	(cd "$NODE_DIR" && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null 2>&1)
fi
[ -d "$NODE_DIR/node_modules/playwright-core" ] || { echo "1..0 # SKIP playwright-core could not be installed from npm"; exit 0; }
ART=$BUILD/test-artifacts
mkdir -p "$ART"

two_sites
image_store "$T/alpha/images" || exit 1
sed -i "s|^state = .*|&\nimages = $T/alpha/images|" "$T/alpha/jumbo.conf"
site_start alpha || exit 1
API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
export JUMBO_API=$API
A() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
head -c 50000000 /dev/urandom > "$T/alpha/root/run7.h5"
mkdir -p "$T/alpha/root/landed" && printf '1\n2\n' > "$T/alpha/root/landed/table.csv"

# the page first, then the work it must see
status=$(curl -s -o "$T/index.html" -w '%{http_code} %{content_type}' "http://$API/")
is "$status" "200 text/html; charset=utf-8" "GET / serves the dashboard"
like 'script src="/ui/app.js"' "$(cat "$T/index.html")" "which loads its script from the daemon"
like "default-src 'self'" "$(curl -sI "http://$API/ui/app.js" | tr -d '\r')" "with a content security policy"
NODE_PATH=$NODE_DIR/node_modules node "$(dirname "$0")/dashboard.js" "http://$API/#token=$(cat "$T/alpha/state/api.token")" \
	"$ART/dashboard.png" > "$T/browser.out" 2>&1 &
browser=$!
sleep 2
A send --detach --rate 100M "$T/alpha/root/run7.h5" beta:/in/ > "$T/tid"
A run --detach -d landed -- python3 -c 'import time; time.sleep(4); print("finished", open("/data/landed/table.csv").read().split())' > "$T/jid"
wait $browser; rc=$?
is "$rc" 0 "headless Chromium went through the dashboard"
[ "$rc" = 0 ] || diag "$(cat "$T/browser.out")"
out=$(cat "$T/browser.out")
like '"title":"jumbo"' "$out" "the page loaded"
like '"url_after_load":"http://[^"]*/"' "$out" "and took the token out of the address"
like '"site":"alpha' "$out" "it names the site"
like "\"transfer_running\":\"$(cat "$T/tid")send *running" "$out" "it showed the transfer running, with its progress"
like '"rate":"throughput now [0-9.]+ Gbit/s' "$out" "and the throughput chart"
like "\"job_row\":\"$(cat "$T/jid")completed" "$out" "it showed the job completed"
like '"log":"job [0-9a-f]+ \(completed\)\\nfinished' "$out" "and its log"
like '"provenance":"\{' "$out" "and a dataset's provenance"
like '"errors":\[\]' "$out" "without a script error"
[ -s "$ART/dashboard.png" ] && file "$ART/dashboard.png" | grep -q PNG; ok $? "a screenshot was saved: $ART/dashboard.png"
done_testing
