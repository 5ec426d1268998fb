#!/bin/bash
# Committing a file by descriptor, not by name.  Two peers, alpha and gamma,
# send different files to the same path on beta at once: one session owns the
# path until its file is committed, the other is told who holds it, and the
# file under the name is the one whose digest the catalog records.  A
# manifest may not name a partial file; received files lose the bits of the
# site's umask (022 unless it says otherwise); a sender killed half way is
# resumed by its next session.
. "$(dirname "$0")/lib.sh"
site_new alpha; site_new beta; site_new gamma
trust beta alpha; trust beta gamma
site_start beta || exit 1
trust alpha beta; trust gamma beta
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
A() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
G() { "$JUMBO" --config "$T/gamma/jumbo.conf" "$@"; }
B() { "$JUMBO" --config "$T/beta/jumbo.conf" "$@"; }
digest() { "$JUMBO" sum "$1" | cut -d' ' -f1; }
# the catalog's record of a path on beta: FIELD of its current dataset
catalog() { B datasets --json "$1" | jsonget /dev/stdin "0.$2"; }

SIZE=$((128 * 1024 * 1024))
head -c $SIZE /dev/urandom > "$T/alpha.bin"
head -c $SIZE /dev/urandom > "$T/gamma.bin"

# 1. Both at once, to one name.  The paced rate keeps each at it for about a
# second, so that the second arrives while the first still holds the path.
A send -P 2 --rate 1G -q "$T/alpha.bin" beta:incoming/x.bin 2> "$T/alpha.err" & pa=$!
G send -P 2 --rate 1G -q "$T/gamma.bin" beta:incoming/x.bin 2> "$T/gamma.err" & pg=$!
wait $pa; ra=$?; wait $pg; rg=$?
is "$(( (ra == 0) + (rg == 0) ))" 1 "exactly one of the two senders wins (alpha $ra, gamma $rg)"
if [ $ra = 0 ]; then win=alpha lose=gamma; else win=gamma lose=alpha; fi
like "incoming/x.bin: busy: being received from peer $win \(session [0-9a-f]{16}\)" "$(cat "$T/$lose.err")" \
	"the other is told the path is busy, and who holds it"
on_disk=$(digest "$T/beta/root/incoming/x.bin")
is "$on_disk" "$(digest "$T/$win.bin")" "the file under the name is the winner's, bytes and all"
is "$(catalog incoming/x.bin digest)" "$on_disk" "the catalog's digest is the digest of what is under the name"
is "$(catalog incoming/x.bin origin)" "$win" "and its origin is the winner"
is "$(ls -a "$T/beta/root/incoming" | tr '\n' ' ')" ". .. x.bin " "no partial file is left beside it"
like "$lose: .*busy: being received from peer $win" "$(cat "$T/beta/log")" "beta logs the refusal"

# The path is free once the winner's file is committed: the other sends again.
"$JUMBO" --config "$T/$lose/jumbo.conf" send -q "$T/$lose.bin" beta:incoming/x.bin
ok $? "once the first has committed, the other's send succeeds"
is "$(digest "$T/beta/root/incoming/x.bin"):$(catalog incoming/x.bin digest):$(catalog incoming/x.bin origin)" \
	"$(digest "$T/$lose.bin"):$(digest "$T/$lose.bin"):$lose" "and the name, the catalog and the origin follow it"

# 2. A partial file's name is not a name a manifest may use.
echo data > "$T/.y.jumbo-part"
out=$(A send "$T/.y.jumbo-part" beta:incoming/ 2>&1); rc=$?
is "$rc" 1 "a manifest naming a partial file is refused"
like "\.y\.jumbo-part: refused: '\.y\.jumbo-part' is the name of a partial file" "$out" "with the path in the message"
out=$(A send "$T/alpha.bin" beta:incoming/.x.bin.jumbo-part 2>&1); rc=$?
is "$rc" 1 "so is a destination naming one"
like "incoming/\.x\.bin\.jumbo-part: '\.x\.bin\.jumbo-part' is the name of a partial file" "$out" \
	"naming it as well"
ok "$([ ! -e "$T/beta/root/incoming/.y.jumbo-part" ] && [ ! -e "$T/beta/root/incoming/.x.bin.jumbo-part" ]; echo $?)" \
	"and nothing was written under either name"
mkdir -p "$T/tree"; echo kept > "$T/tree/a.txt"; echo skipped > "$T/tree/.b.txt.jumbo-part"
A send -r -q "$T/tree" beta:trees/; ok $? "a tree holding a partial file is sent"
is "$(ls -a "$T/beta/root/trees/tree" | tr '\n' ' ')" ". .. a.txt " "without it: a partial file is not data yet"

# 3. Modes: less the site's umask, 022 by default.
echo open > "$T/open.txt"; chmod 0666 "$T/open.txt"
A send -q "$T/open.txt" beta:modes/; ok $? "a 0666 file is sent"
is "$(stat -c %a "$T/beta/root/modes/open.txt")" 644 "it lands 0644 (umask 022 by default)"
mkdir -m 0777 "$T/wide"; A send -r -q "$T/wide" beta:modes/
is "$(stat -c %a "$T/beta/root/modes/wide")" 755 "a 0777 directory lands 0755"
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
sed -i 's/^\[site\]$/&\numask = 0/' "$T/beta/jumbo.conf"
site_start beta || exit 1
set_address alpha beta; set_address gamma beta
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
A send -q "$T/open.txt" beta:modes0/; ok $? "with umask = 0 in beta's [site]"
is "$(stat -c %a "$T/beta/root/modes0/open.txt")" 666 "the 0666 file lands 0666"
sed -i 's/^umask = 0$/umask = 0888/' "$T/beta/jumbo.conf"
out=$("$JUMBOD" --config "$T/beta/jumbo.conf" --check 2>&1)
like "umask wants permission bits in octal from 0 to 777 \(like 022\), not '0888'" "$out" "a umask that is not octal is refused"
sed -i 's/^umask = 0888$/umask = 0/' "$T/beta/jumbo.conf"

# 4. A sender killed half way: its partial file waits for it, and its next
# session resumes it.
allocated() { [ -f "$1" ] && echo $(( $(stat -c %b "$1") * 512 )) || echo 0; }
part=$T/beta/root/r/.alpha.bin.jumbo-part
"$JUMBO" --config "$T/alpha/jumbo.conf" send -P 2 --rate 1G -q "$T/alpha.bin" beta:r/ & pa=$!
for _ in $(seq 1 500); do [ "$(allocated "$part")" -ge $((SIZE / 2)) ] && break; sleep 0.01; done
kill -9 $pa; wait $pa 2>/dev/null
ok "$([ -f "$part" ] && [ ! -e "$T/beta/root/r/alpha.bin" ]; echo $?)" "killed half way: a partial file, nothing under the name"
A send -P 2 --json "$T/alpha.bin" beta:r/ > "$T/resume.json"
ok $? "the same send again completes"
sent=$(jsonget "$T/resume.json" bytes_sent)
ok "$([ "$sent" -gt 0 ] && [ "$sent" -le $((SIZE * 60 / 100)) ]; echo $?)" \
	"resumed: it moves only what was missing ($((sent * 100 / SIZE))%)"
like 'r/alpha.bin: resuming with [0-9]+ of 16 blocks|alpha.bin: resuming with [0-9]+ of 16 blocks' "$(cat "$T/beta/log")" \
	"beta logs the resume"
is "$(sha "$T/beta/root/r/alpha.bin")" "$(sha "$T/alpha.bin")" "the file is bit-identical"
is "$(catalog r/alpha.bin digest)" "$(digest "$T/alpha.bin")" "and the catalog has its digest"
done_testing
