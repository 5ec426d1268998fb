#!/bin/bash
# Expiry: a transfer that never comes back leaves, on the site it was
# sending to, a partial file and the journal's record of its blocks.  After
# [site] max_partial_age they go; a committed file's record goes after
# max_journal_age.  A partial file a live session holds stays, however long
# it has been still, and the expirer follows no link out of the data root.
. "$(dirname "$0")/lib.sh"
site_new alpha; site_new beta
trust beta alpha
sed -i '/^state = /a max_partial_age = 4s\nmax_journal_age = 10s' "$T/beta/jumbo.conf"
site_start beta || exit 1
trust alpha beta
J=$T/beta/state/journal.db
R=$T/beta/root
rows() { sqlite3 "$J" "SELECT count(*) FROM partial WHERE committed=$1"; }
# until FILE is gone (true) or 20 s have passed
gone() { for _ in $(seq 1 200); do [ -e "$1" ] || return 0; sleep 0.1; done; return 1; }
allocated() { [ -e "$1" ] && echo $(( $(stat -c %b "$1") * 512 )) || echo 0; }
# until FILE has at least N bytes written
grown() { for _ in $(seq 1 300); do [ "$(allocated "$1")" -ge "$2" ] && return 0; sleep 0.02; done; return 1; }
SIZE=$((64 * 1024 * 1024))
head -c $SIZE /dev/urandom > "$T/big.bin"
metric() { curl -s "http://127.0.0.1:$(jsonget "$T/beta/ready" api)/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# a bad age is refused with its line
cp "$T/beta/jumbo.conf" "$T/bad.conf"
sed -i 's/^max_partial_age = 4s/max_partial_age = 7w/' "$T/bad.conf"
out=$("$JUMBOD" --config "$T/bad.conf" --check 2>&1)
ok "$([ $? -ne 0 ]; echo $?)" "jumbod --check refuses max_partial_age = 7w"
like "bad.conf:[0-9]+: max_partial_age wants a duration from 1s to 3650d" "$out" "naming the file, the line and the form"

# 1. the sender is killed half way: its partial file and record are left...
"$JUMBO" --config "$JBCONF" send -P 2 --rate 200M -q "$T/big.bin" beta:k1/ 2>/dev/null &
cpid=$!
grown "$R/k1/.big.bin.jumbo-part" $((SIZE / 3))
ok $? "a third of the file arrived"
kill -9 $cpid
wait $cpid 2>/dev/null
sleep 0.5
ok "$([ -f "$R/k1/.big.bin.jumbo-part" ]; echo $?)" "the killed sender left a partial file"
is "$(rows 0)" 1 "and the journal's record of its blocks"
# ...until max_partial_age (4 s) has passed without a change
gone "$R/k1/.big.bin.jumbo-part"
ok $? "the stale partial file is removed"
is "$(rows 0)" 0 "with its record"
ok "$([ ! -e "$R/k1/big.bin" ]; echo $?)" "and nothing stands under the final name"
like 'expiry: 1 stale partial files removed, 1 records' "$(cat "$T/beta/log")" "the daemon logs it"

# 2. a sender paused (SIGSTOP) for longer than max_partial_age: its session
#    is alive and holds the partial file, which stays; it then completes
"$JUMBO" --config "$JBCONF" send -P 2 --rate 100M -q "$T/big.bin" beta:k2/ 2> "$T/err2" &
cpid=$!
grown "$R/k2/.big.bin.jumbo-part" $((SIZE / 5))
kill -STOP $cpid
sleep 9
ok "$([ -f "$R/k2/.big.bin.jumbo-part" ]; echo $?)" "after 9 s still, the live session's partial file is kept"
is "$(rows 0)" 1 "and its record"
kill -CONT $cpid
wait $cpid
ok $? "the sender, let go on, completes"
is "$(sha "$R/k2/big.bin")" "$(sha "$T/big.bin")" "bit-identical"

# 3. partial files no session made: planted ones go; what only looks like one,
#    a directory of that name, and what a link leads to outside stay
mkdir -p "$R/p/deep/er" "$T/outside" "$R/p/.d.jumbo-part"
head -c 1000 /dev/urandom > "$R/p/deep/er/.small.dat.jumbo-part"
head -c 1000 /dev/urandom > "$R/.top.jumbo-part"
head -c 1000 /dev/urandom > "$R/p/keep.jumbo-part"
head -c 1000 /dev/urandom > "$T/outside/.x.jumbo-part"
ln -s "$T/outside" "$R/p/link"
ln -s "$T/outside/.x.jumbo-part" "$R/p/.y.jumbo-part"
gone "$R/p/deep/er/.small.dat.jumbo-part"
ok $? "a planted stale partial file three levels down is removed"
gone "$R/.top.jumbo-part"
ok $? "and one at the top of the data root"
ok "$([ -f "$R/p/keep.jumbo-part" ]; echo $?)" "keep.jumbo-part (not a partial name) stays"
ok "$([ -d "$R/p/.d.jumbo-part" ]; echo $?)" "a directory with a partial name stays"
ok "$([ -f "$T/outside/.x.jumbo-part" ]; echo $?)" "a partial file reached through a link out of the data root stays"
ok "$([ -L "$R/p/.y.jumbo-part" ]; echo $?)" "and so does a link with a partial name"

# 4. a committed file's record lets a re-send skip it, until max_journal_age
head -c 4096 /dev/urandom > "$T/small.bin"
jb send --json "$T/small.bin" "$T/big.bin" beta:c/ > "$T/c1.json"
ok $? "two files sent"
is "$(sqlite3 "$J" "SELECT count(*) FROM partial WHERE committed=1 AND key LIKE 'c/%'")" 2 \
	"their records are committed"
jb send --json "$T/small.bin" "$T/big.bin" beta:c/ > "$T/c2.json"
is "$(jsonget "$T/c2.json" bytes_sent)" 0 "sent again at once: nothing moves"
for _ in $(seq 1 200); do [ "$(rows 1)" = 0 ] && break; sleep 0.1; done
is "$(rows 1)" 0 "after max_journal_age (10 s) the committed records are gone"
jb send --json "$T/small.bin" "$T/big.bin" beta:c/ > "$T/c3.json"
is "$(jsonget "$T/c3.json" bytes_sent)" $((SIZE + 4096)) "so a re-send moves the files again"
is "$(sha "$R/c/big.bin")" "$(sha "$T/big.bin")" "bit-identical"

# 5. jumbo get keeps its own journal: killed half way, its record stays until
#    the partial file is gone and max_partial_age has passed (the partial file
#    is the user's, and stays until then); committed records go after
#    max_journal_age; both when jumbo get runs next
sed -i '/^state = /a max_partial_age = 2s\nmax_journal_age = 4s' "$T/alpha/jumbo.conf"
CJ=$JUMBO_STATE_DIR/journal.db
crows() { sqlite3 "$CJ" "SELECT count(*) FROM partial WHERE committed=$1"; }
mkdir -p "$T/pull"
"$JUMBO" --config "$JBCONF" get -P 2 --rate 100M -q beta:c/big.bin "$T/pull/" 2>/dev/null &
cpid=$!
grown "$T/pull/.big.bin.jumbo-part" $((SIZE / 5))
kill -9 $cpid
wait $cpid 2>/dev/null
is "$(crows 0)" 1 "a killed jumbo get leaves its record"
jb get -q beta:c/small.bin "$T/pull/" > /dev/null
is "$(crows 0)" 1 "the next get keeps it while its partial file is there"
is "$(crows 1)" 1 "and records the file it committed"
rm "$T/pull/.big.bin.jumbo-part"
sleep 5.5 # ages are whole seconds
jb get -q beta:c/small.bin "$T/pull/small2.bin" > /dev/null
is "$(crows 0)" 0 "once the partial file is gone and max_partial_age has passed, the next get drops the record"
is "$(sqlite3 "$CJ" "SELECT count(*) FROM partial WHERE committed=1 AND key LIKE '%/small.bin'")" 0 \
	"and the committed record older than max_journal_age"

like '^[1-9]' "$(metric jumbo_partials_expired_total)" "/metrics counts the partial files removed"
like '^[1-9]' "$(metric jumbo_journal_records_expired_total)" "and the records dropped"
done_testing
