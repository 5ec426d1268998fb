#!/bin/bash
# Upgrade in place: a site whose STATE was written by an earlier release
# (tests/upgrade/state-*, made by tests/upgrade/make-state with that build:
# its databases as SQL text, the data-root files they name, its tokens)
# starts with this build and keeps every record: datasets and their
# provenance, jobs with their inputs and outputs, the durable transfer, the
# tokens it handed out, and the resume journal of a transfer cut off half way,
# which goes on from its verified blocks.
. "$(dirname "$0")/lib.sh"
need sqlite3 openssl
fx=$(cd "$(dirname "$0")/../upgrade" && pwd)/state-cf28f2f

two_sites
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2> /dev/null
# alpha's STATE and data root as the old release left them
mkdir -p "$T/old"
for f in "$fx"/sql/*.sql; do
	n=$(basename "$f" .sql)
	sqlite3 "$T/alpha/state/$n.db" < "$f"
	sqlite3 "$T/old/$n.db" < "$f"
done
cp -a "$fx/root/." "$T/alpha/root/"
install -m 600 "$fx/admin.token" "$T/alpha/state/api.token"
# the transfer cut off half way: its source (a keystream anyone can make
# again, with the time it had) and the partial file it had left
openssl enc -aes-128-ctr -nosalt -pass pass:jumbo-upgrade -in /dev/zero 2> /dev/null | head -c 100000000 > "$T/beta/big.bin"
touch -d @1767225600 "$T/beta/big.bin"
head -c "$(cat "$fx/partial.size")" "$T/beta/big.bin" > "$T/alpha/root/.big.bin.jumbo-part"
old() { sqlite3 "$T/old/$1.db" "$2"; }

site_start alpha || exit 1
site_start beta || exit 1
set_address beta alpha
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
A() { timeout 60 "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
S() { sqlite3 "$T/alpha/state/site.db" "$1"; }

is "$(S 'PRAGMA user_version')" 3 "the first start made STATE/site.db at the newest schema"
is "$(ls "$T/alpha/state" | grep -E '[.]db([.]imported)?$' | tr '\n' ' ')" \
	"catalog.db.imported jobs.db.imported journal.db site.db tokens.db.imported transfers.db.imported " \
	"the old databases are kept beside, renamed; the journal stays"
like 'taken in from catalog.db' "$(cat "$T/alpha/log")" "jumbod says what it took in"
is "$(stat -c %a "$T/alpha/state/site.db")" 600 "site.db is readable by its owner only"

# every record, compared with the old databases (their columns; those
# added since are checked after)
cols() { sqlite3 "$T/old/$1.db" "SELECT group_concat(name, ', ') FROM pragma_table_info('$2')"; }
for t in dataset job_input; do
	is "$(S "SELECT $(cols catalog $t) FROM $t ORDER BY 1, 2")" "$(old catalog "SELECT * FROM $t ORDER BY 1, 2")" "every $t row is there"
done
is "$(S "SELECT $(cols jobs job) FROM job ORDER BY id")" "$(old jobs 'SELECT * FROM job ORDER BY id')" "every job row is there"
is "$(S "SELECT $(cols transfers transfer) FROM transfer")" "$(old transfers 'SELECT * FROM transfer')" "the durable transfer is there"
is "$(S "SELECT $(cols tokens token) FROM token ORDER BY name")" "$(old tokens 'SELECT * FROM token ORDER BY name')" "both tokens are there"
is "$(S "SELECT DISTINCT scopes FROM token WHERE name IN ('reader', 'site-admin')")" "read,admin" \
	"tokens made before keep what they could do (admin)"
is "$(S "SELECT count(*) FROM job WHERE owner IS NOT NULL") $(S "SELECT count(*) FROM transfer WHERE owner IS NOT NULL")" \
	"0 0" "jobs and transfers made before are the site's own (no owner: admin sees them)"

# and as the commands show them
csv=$(old catalog "SELECT digest FROM dataset WHERE path='run7/table.csv'")
is "$(A datasets --json run7/table.csv | jsonget /dev/stdin 0.digest)" "$csv" "jumbo datasets: the dataset that came by transfer"
job=$(old jobs "SELECT id FROM job WHERE state=2")
failed=$(old jobs "SELECT id FROM job WHERE state=3")
is "$(A jobs --json "$job" | jsonget /dev/stdin state)" completed "jumbo jobs: the job that completed"
is "$(A jobs --json "$failed" | jsonget /dev/stdin reason)" "exit status 3" "and the one that failed, with its reason"
prov=$(A provenance "results/$job/sum.txt" 2>&1)
like "job $job" "$prov" "jumbo provenance: the result names its job"
like "run7/table.csv.*beta" "$prov" "and the job's input, that came from beta"
tid=$(old transfers 'SELECT id FROM transfer')
is "$(A transfers --json "$tid" | jsonget /dev/stdin state)" done "jumbo transfers: the durable transfer, done"
is "$(cat "$T/alpha/state/api.token")" "$(cat "$fx/admin.token")" "the site's admin token was found, not made anew"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$fx/token")" "http://$JUMBO_API/api/v1/jobs")
is "$code" 200 "the token the old release handed out still opens the API"
A token create after-upgrade > /dev/null; ok $? "a token is made in the new database"
is "$(A token list | grep -cE 'reader|site-admin|after-upgrade')" 3 "jumbo token list: the old ones and the new one"

# the cut-off transfer goes on from its verified blocks
verified=$(old journal "SELECT count(*) FROM block b JOIN partial p ON p.id = b.partial WHERE p.key = 'big.bin'")
"$JUMBO" --config "$T/beta/jumbo.conf" send -q -P 1 --block-size 1M --json "$T/beta/big.bin" alpha:/big.bin > "$T/r.json"
ok $? "the transfer cut off before the upgrade is sent again"
is "$(jsonget "$T/r.json" bytes_sent)" $((100000000 - verified * 1048576)) \
	"only the blocks the old journal did not hold (its $verified verified blocks were not sent again)"
is "$(sha "$T/alpha/root/big.bin")" "$(sha "$T/beta/big.bin")" "and the file is whole"
done_testing
