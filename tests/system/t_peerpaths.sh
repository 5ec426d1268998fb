#!/bin/bash
# Who may do what (jumbo.conf(5), PEER PATHS): a peer writes (send) only at
# or below the write prefixes of its [peer] section and reads (get, ls) only
# at or below its read prefixes, by whole path components and confined to
# the prefix's directory, so a symbolic link inside a prefix does not lead
# out of it.  A [peer] section without read or write may do nothing.  A
# refusal is ERROR 13 (EACCES) naming the peer and the path, the client
# exits 1, nothing is written, and the server logs it (escaped).  Bad
# prefixes are configuration errors with file:line.  Durable transfers and a
# job's PEER:PATH dataset meet the same check at the peer.
. "$(dirname "$0")/lib.sh"
EVIL=$(dirname "$0")/evil_client.py
evil() { timeout 20 /usr/bin/python3 "$EVIL" "127.0.0.1:$(site_port beta)" "$T/alpha/id" "$1" 2>&1; }
none() { [ ! -e "$1" ]; ok $? "$2"; }

site_new alpha; site_new beta
cp "$T/beta/jumbo.conf" "$T/beta/base.conf"
# beta_with LINE...: beta (re)started with these lines in its [peer alpha]
beta_with() {
	if [ -f "$T/beta/pid" ] && kill "$(cat "$T/beta/pid")" 2>/dev/null; then
		wait "$(cat "$T/beta/pid")" 2>/dev/null
	fi
	cp "$T/beta/base.conf" "$T/beta/jumbo.conf"
	: > "$T/beta/log"
	trust beta alpha "$@"
	site_start beta || exit 1
	if grep -q '^\[peer beta\]' "$T/alpha/jumbo.conf"; then set_address alpha beta; else trust alpha beta; fi
}
echo hello > "$T/f.txt"

# --- 1. a [peer] section without read or write: the peer may do nothing ---
beta_with ''
out=$(jb send "$T/f.txt" beta:incoming/alpha/ 2>&1); is $? 1 "without read or write alpha may not send"
like "^jumbo: beta: peer alpha may not write 'incoming/alpha' \(no write = in its \[peer alpha\] section\)$" "$out" \
	"the client says who may not do what, and why"
out=$(jb ls beta: 2>&1); is $? 1 "nor list"
like "peer alpha may not read '/' \(no read = in its \[peer alpha\] section\)" "$out" "likewise"
out=$(jb get beta:anything "$T/got" 2>&1); is $? 1 "nor get"
is "$(ls -A "$T/beta/root" | wc -l)" 0 "nothing was written"
like "warning: site beta: no peer may read or write here" "$(cat "$T/beta/log")" \
	"beta warns at start that no peer may do anything (an older configuration)"
out=$("$JUMBOD" --config "$T/beta/jumbo.conf" --check 2>/dev/null)
like "  peer alpha: read nothing; write nothing" "$out" "jumbod --check says what each peer may"

# --- 2. writes: only at or below incoming/alpha ---
beta_with 'write = incoming/alpha'
like "info: site beta: peer alpha: read nothing; write incoming/alpha" "$(cat "$T/beta/log")" \
	"beta logs at start what alpha may"
out=$(jb send "$T/f.txt" beta:/other/x 2>&1); is $? 1 "send to /other/x is refused"
like "^jumbo: beta: peer alpha may not write 'other/x' \(write = incoming/alpha\)$" "$out" \
	"naming the peer, the path and what it may"
none "$T/beta/root/other" "nothing was written there"
like "^ERROR 13 peer alpha may not write 'other/x'" "$(evil hello:push:/other/x)" \
	"on the wire: ERROR 13 (EACCES), before anything is read"
out=$(jb send "$T/f.txt" beta:incoming/alphabet/x 2>&1); is $? 1 "incoming/alphabet is not below incoming/alpha"
like "may not write 'incoming/alphabet/x'" "$out" "refused by whole components"
out=$(jb send "$T/f.txt" beta:incoming/ 2>&1); is $? 1 "nor is its parent"
out=$(jb send "$T/f.txt" beta:incoming/alpha/../../etc/x 2>&1); is $? 1 "'..' is refused"
none "$T/beta/root/incoming/alphabet" "nothing outside the prefix was written"
jb send -q "$T/f.txt" beta:incoming/alpha/run7/a.txt; ok $? "send below the prefix"
is "$(cat "$T/beta/root/incoming/alpha/run7/a.txt")" hello "it arrived"
jb send -q "$T/f.txt" beta:incoming/alpha; ok $? "send to the prefix itself"
is "$(cat "$T/beta/root/incoming/alpha/f.txt")" hello "it lands inside it: a prefix is a directory"
mkdir -p "$T/tree/a/b"; echo 1 > "$T/tree/a/one"; echo 2 > "$T/tree/a/b/two"
jb send -q -r "$T/tree" beta:incoming/alpha/trees/; ok $? "a tree below the prefix"
is "$(cat "$T/beta/root/incoming/alpha/trees/tree/a/b/two")" 2 "arrives whole"
out=$(jb get beta:incoming/alpha/f.txt "$T/got" 2>&1); is $? 1 "write does not give read: get refused"
like "peer alpha may not read 'incoming/alpha/f.txt' \(no read = " "$out" "as a read"
out=$(jb ls beta:incoming/alpha 2>&1); is $? 1 "ls refused too (it would reveal names)"
like "warning: alpha: refused: peer alpha may not write 'other/x' \(write = incoming/alpha\)" "$(cat "$T/beta/log")" \
	"beta logs each refusal"
jb send -q "$T/f.txt" $'beta:odd\x1b[2Jname' > /dev/null 2>&1
grep -qF 'may not write '"'"'odd\x1b[2Jname'"'" "$T/beta/log"; ok $? "a control character the peer sent is logged as \\x1b"
! grep -q $'\x1b' "$T/beta/log"; ok $? "never raw"

# --- 3. reads: only at or below pub and incoming/alpha ---
mkdir -p "$T/beta/root/pub/run1" "$T/beta/root/secret" "$T/beta/root/publications"
head -c 300000 /dev/urandom > "$T/beta/root/pub/run1/data.bin"
echo s > "$T/beta/root/secret/s"; echo p > "$T/beta/root/publications/p"
beta_with 'read = pub incoming/alpha' 'write = incoming/alpha'
out=$(jb get beta:secret/s "$T/got" 2>&1); is $? 1 "get of secret/s is refused"
like "^jumbo: beta: peer alpha may not read 'secret/s' \(read = pub incoming/alpha\)$" "$out" "naming peer and path"
none "$T/got" "nothing was fetched"
like "^ERROR 13 peer alpha may not read 'secret/s'" "$(evil hello:pull:secret/s)" "on the wire: ERROR 13"
like "^ERROR 13 peer alpha may not read 'secret'" "$(evil hello:list:secret)" "a LIST too"
out=$(jb get beta:publications/p "$T/got" 2>&1); is $? 1 "publications is not below pub"
out=$(jb ls beta:secret 2>&1); is $? 1 "ls of secret refused"
like "may not read 'secret'" "$out" "clearly"
out=$(jb get -r beta: "$T/gotall" 2>&1); is $? 1 "get -r of the whole root refused"
like "may not read '/'" "$out" "clearly"
jb get -q beta:pub/run1/data.bin "$T/got.bin"; ok $? "get below a read prefix"
is "$(sha "$T/got.bin")" "$(sha "$T/beta/root/pub/run1/data.bin")" "bit-identical"
jb get -q beta:incoming/alpha/f.txt "$T/back.txt"; ok $? "and below the other one"
jb get -q -r beta:pub "$T/gotpub"; ok $? "get -r of a prefix itself"
is "$(sha "$T/gotpub/run1/data.bin")" "$(sha "$T/beta/root/pub/run1/data.bin")" "the tree arrives"
is "$(jb ls beta:pub)" "run1/" "ls of a read prefix"
is "$(jb ls beta: | tr '\n' ' ')" "incoming/ pub/ " "ls of the root shows only the way to the read prefixes"
is "$(jb ls beta:incoming)" "alpha/" "and so does ls of a parent of one"

# --- 4. symbolic links do not lead out of a prefix ---
ln -s ../secret "$T/beta/root/pub/out"                # out of pub, into the data root
ln -s run1 "$T/beta/root/pub/here"                    # stays in pub
ln -s ../../secret "$T/beta/root/incoming/alpha/drop"
out=$(jb get beta:pub/out/s "$T/got" 2>&1); is $? 1 "get through a link out of pub is refused"
like "peer alpha may not read 'pub/out/s': the path escapes its prefix pub" "$out" "saying so"
none "$T/got" "nothing fetched through it"
like "^ERROR 13 " "$(evil hello:pull:pub/out/s)" "ERROR 13"
out=$(jb ls beta:pub/out 2>&1); is $? 1 "ls through it refused"
jb get -q beta:pub/here/data.bin "$T/here.bin"; ok $? "a link that stays inside the prefix is followed"
jb get -q -r beta:pub "$T/gotpub2" 2>/dev/null; ok $? "get -r of pub"
none "$T/gotpub2/out" "leaves the link out (a walk follows no link)"
out=$(jb send "$T/f.txt" beta:incoming/alpha/drop/x 2>&1); is $? 1 "send through a link out of incoming/alpha refused"
like "may not write 'incoming/alpha/drop/x': the path escapes its prefix incoming/alpha" "$out" "saying so"
none "$T/beta/root/secret/x" "nothing written through it"
ln -s secret "$T/beta/root/linked"
beta_with 'read = linked pub'
out=$(jb get beta:linked/s "$T/got" 2>&1); is $? 1 "a prefix that is itself a link is not followed"
like "its read prefix linked is not a directory of the data root" "$out" "saying so"
is "$(jb ls beta: | tr '\n' ' ')" "pub/ " "nor shown on the way"

# --- 5. bad prefixes: configuration errors with file:line ---
for bad in /data .. a/../b; do
	cp "$T/beta/jumbo.conf" "$T/bad.conf"
	printf 'read = pub %s\n' "$bad" >> "$T/bad.conf"
	line=$(wc -l < "$T/bad.conf")
	out=$("$JUMBOD" --config "$T/bad.conf" --check 2>&1); is $? 1 "--check refuses read = pub $bad"
	like "bad.conf:$line: peer alpha: read prefix '$bad' (is absolute|has a '\.\.' component)" "$out" "with file:line"
done
cp "$T/beta/jumbo.conf" "$T/bad.conf"; printf 'write =\n' >> "$T/bad.conf"
out=$("$JUMBOD" --config "$T/bad.conf" --check 2>&1); is $? 1 "--check refuses an empty write ="
like "bad.conf:$(wc -l < "$T/bad.conf"): peer alpha: write = wants one or more prefixes" "$out" "with file:line"

# --- 6. durable transfers and a job's dataset meet the same check at the peer ---
beta_with 'read = pub' 'write = incoming/alpha'
jobs=0
if [ "$(id -u)" = 0 ] && command -v crun > /dev/null; then
	jobs=1
	printf '\n[backend quick]\ntype = null\n' >> "$T/alpha/jumbo.conf"
fi
site_start alpha || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
A() { timeout 60 "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
echo durable > "$T/alpha/root/d.txt"
id=$(A send --detach "$T/alpha/root/d.txt" beta:/other/); ok $? "a durable send to /other is taken ($id)"
A wait "$id" 2>/dev/null; is $? 1 "and fails"
t=$(A transfers --json "$id")
is "$(jsonget /dev/stdin state <<< "$t")" failed "failed for good, not retrying (EACCES is not transient)"
like "peer alpha may not write 'other'" "$(jsonget /dev/stdin error <<< "$t")" "with beta's reason"
none "$T/beta/root/other" "nothing written"
id=$(A send --detach "$T/alpha/root/d.txt" beta:incoming/alpha/durable/)
A wait "$id" 2>/dev/null; ok $? "a durable send below the prefix is done"
is "$(cat "$T/beta/root/incoming/alpha/durable/d.txt")" durable "and the file is there"
id=$(A get --detach beta:secret/s "$T/alpha/root/s.txt")
A wait "$id" 2>/dev/null; is $? 1 "a durable get of secret/s fails"
like "peer alpha may not read 'secret/s'" "$(A transfers --json "$id" | jsonget /dev/stdin error)" "refused by beta"
if [ "$jobs" = 1 ]; then
	jstate() { A jobs --json "$1" | jsonget /dev/stdin "$2"; }
	jwait() { for _ in $(seq 100); do [ "$(jstate "$1" state)" = "$2" ] && return 0; sleep 0.1; done; return 1; }
	j=$(A run --detach --backend quick --image any/image -d beta:secret/s -- true)
	jwait "$j" failed; ok $? "a job with the dataset beta:secret/s fails"
	like "peer alpha may not read 'secret/s'" "$(jstate "$j" reason)" "beta refused the fetch"
	none "$T/alpha/root/beta/secret/s" "nothing fetched"
	j=$(A run --detach --backend quick --image any/image -d beta:pub/run1/data.bin -- true)
	jwait "$j" completed; ok $? "a job with beta:pub/run1/data.bin completes"
	is "$(sha "$T/alpha/root/beta/pub/run1/data.bin")" "$(sha "$T/beta/root/pub/run1/data.bin")" "with it fetched"
else
	for _ in 1 2 3 4 5; do echo "ok $((++_n)) # SKIP jobs need root and crun"; done
fi
done_testing
