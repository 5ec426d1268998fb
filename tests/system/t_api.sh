#!/bin/bash
# The REST API against random requests (tests/system/api_fuzz.py): methods,
# climbing and encoded paths, random and deeply nested JSON, broken UTF-8,
# bodies over the limit, with and without tokens.  The daemon must answer
# every one (a JSON error where one is due, never a 5xx but 503) and still
# be well afterwards, its memory bounded; the same under ASan.
. "$(dirname "$0")/lib.sh"

site_new alpha
site_start alpha || exit 1
API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
TOKEN=$(cat "$T/alpha/state/api.token")
pid=$(cat "$T/alpha/pid")
rss0=$(ps -o rss= -p "$pid")
for seed in 1 2 3; do
	out=$(/usr/bin/python3 "$(dirname "$0")/api_fuzz.py" "$API" "$TOKEN" 1500 "$seed" 2>&1); rc=$?
	is "$rc" 0 "1500 random requests (seed $seed): every answer well-formed, the daemon alive"
	[ "$rc" = 0 ] || diag "$out"
done
like '^(400|401|404|405) [0-9]+' "$(echo "$out" | head -5)" "the answers include refusals of each kind"
kill -0 "$pid"; ok $? "jumbod is still running"
rss1=$(ps -o rss= -p "$pid")
if ldd "$JUMBOD" | grep -q libasan; then
	echo "ok $((_n += 1)) # SKIP memory under AddressSanitizer (its quarantine holds freed memory): ${rss0} KiB -> ${rss1} KiB"
else
	ok "$([ "$rss1" -lt $((rss0 + 200000)) ]; echo $?)" "its memory stays bounded (RSS ${rss0} KiB -> ${rss1} KiB)"
fi
is "$(curl -s "http://$API/api/v1/health" | jsonget /dev/stdin status)" ok "health answers ok"
done_testing
