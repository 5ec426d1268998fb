#!/bin/bash
# A 1 GiB file and a 2,000-file tree arrive bit-identical, both directions.
. "$(dirname "$0")/lib.sh"
two_sites

head -c 1G /dev/urandom > "$T/big.bin"
jb send -P 4 --json "$T/big.bin" beta:/run7/ > "$T/send.json"
ok $? "send 1 GiB exits 0"
is "$(sha "$T/beta/root/run7/big.bin")" "$(sha "$T/big.bin")" "1 GiB file arrives bit-identical (sha256)"
is "$(jsonget "$T/send.json" files)" 1 "json: files"
is "$(jsonget "$T/send.json" bytes_total)" 1073741824 "json: bytes_total"
is "$(jsonget "$T/send.json" bytes_sent)" 1073741824 "json: bytes_sent"
is "$(jsonget "$T/send.json" streams)" 4 "json: streams"
is "$(jsonget "$T/send.json" entries.0.verified)" true "json: file verified"
like '^[0-9.]+$' "$(jsonget "$T/send.json" gbps)" "json: gbps is a number"
like '^[0-9.]+$' "$(jsonget "$T/send.json" seconds)" "json: seconds is a number"
digest=$(jsonget "$T/send.json" entries.0.digest)
like '^xxh3t:[0-9a-f]{32}$' "$digest" "json: digest"
is "$("$JUMBO" sum "$T/big.bin" | cut -d' ' -f1)" "$digest" "jumbo sum computes the reported digest locally"
# the strong digest (sha256t), against an independent computation with Python's hashlib
strong() { /usr/bin/python3 - "$1" "$2" <<'EOP'
import hashlib, sys
path, bs = sys.argv[1], int(sys.argv[2])
f, blocks, size = open(path, "rb"), b"", 0
while chunk := f.read(bs):
    blocks += hashlib.sha256(chunk).digest(); size += len(chunk)
print("sha256t:" + hashlib.sha256(b"jumbo sha256t 1\n" + size.to_bytes(8, "big") + bs.to_bytes(4, "big") + blocks).hexdigest())
EOP
}
is "$("$JUMBO" sum --strong "$T/beta/root/run7/big.bin" | cut -d' ' -f1)" "$(strong "$T/big.bin" 8388608)" \
	"jumbo sum --strong of the copy is the sha256t hashlib computes of the source"
: > "$T/empty"; head -c 100000 /dev/urandom > "$T/odd"
is "$("$JUMBO" sum --strong -b 64K "$T/empty" "$T/odd" | cut -d' ' -f1 | tr '\n' ' ')" \
	"$(strong "$T/empty" 65536) $(strong "$T/odd" 65536) " "and of an empty file and a short last block at 64K blocks"
ls -a "$T/beta/root/run7" > "$T/ls"
is "$(cat "$T/ls" | tr '\n' ' ')" ". .. big.bin " "no partial or journal files left beside it"

jb get -P 3 --json beta:run7/big.bin "$T/back.bin" > "$T/get.json"
ok $? "get 1 GiB exits 0"
is "$(sha "$T/back.bin")" "$(sha "$T/big.bin")" "1 GiB file comes back bit-identical"
is "$(jsonget "$T/get.json" entries.0.digest)" "$digest" "same digest both ways"
rm -f "$T/big.bin" "$T/back.bin" "$T/beta/root/run7/big.bin"

# a tree: 2,000 files in nested directories, odd sizes, an empty file, an empty dir
/usr/bin/python3 - "$T/tree" <<'EOP'
import os, sys, random
random.seed(7)
root = sys.argv[1]
for i in range(2000):
    d = os.path.join(root, 'd%02d' % (i % 40), 'sub%d' % (i % 3))
    os.makedirs(d, exist_ok=True)
    size = 0 if i == 5 else random.choice([1, 100, 4096, 65537, 200000, 1 << 20])
    with open(os.path.join(d, 'f%04d.dat' % i), 'wb') as f:
        f.write(os.urandom(size))
os.makedirs(os.path.join(root, 'empty-dir'))
os.chmod(os.path.join(root, 'd00', 'sub0', 'f0000.dat'), 0o600)
os.chmod(os.path.join(root, 'd02', 'sub2', 'f0002.dat'), 0o4755)
EOP
treesum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }
jb send -r -P 4 --json "$T/tree" beta:trees/ > "$T/tree.json"
ok $? "send -r a 2,000-file tree exits 0"
is "$(treesum "$T/beta/root/trees/tree")" "$(treesum "$T/tree")" "tree arrives bit-identical (sha256 of every file)"
is "$(find "$T/beta/root/trees/tree" -type f | wc -l)" 2000 "2,000 files"
ok "$([ -d "$T/beta/root/trees/tree/empty-dir" ]; echo $?)" "empty directory created"
is "$(stat -c %a "$T/beta/root/trees/tree/d00/sub0/f0000.dat")" 600 "file mode preserved"
is "$(stat -c %a "$T/tree/d02/sub2/f0002.dat")-$(stat -c %a "$T/beta/root/trees/tree/d02/sub2/f0002.dat")" 4755-755 \
	"a set-user-ID source arrives with its permission bits only"
echo shared > "$T/ww.txt"; chmod 0666 "$T/ww.txt"
jb send -q "$T/ww.txt" beta:modes/ > /dev/null 2>&1
is "$(stat -c %a "$T/beta/root/modes/ww.txt")" 644 "a 0666 file lands 0644 (a peer makes nothing group- or world-writable)"
is "$(stat -c %Y "$T/beta/root/trees/tree/d01/sub1/f0001.dat")" "$(stat -c %Y "$T/tree/d01/sub1/f0001.dat")" "mtime preserved"
is "$(jsonget "$T/tree.json" files_verified)" "$(jsonget "$T/tree.json" files)" "every entry verified"
is "$(find "$T/beta/root" -name '*.jumbo-part' | wc -l)" 0 "no partial files left"

jb get -r --json beta:trees/tree "$T/tree-back" > "$T/treeget.json"
ok $? "get -r the tree exits 0"
is "$(treesum "$T/tree-back")" "$(treesum "$T/tree")" "tree comes back bit-identical under the new name"

# sending the same tree again: everything is already there and verified
jb send -r --json "$T/tree" beta:trees/ > "$T/again.json"
ok $? "sending the same tree again exits 0"
is "$(jsonget "$T/again.json" bytes_sent)" 0 "nothing is sent again (committed files recognised)"

# three sessions at once into one daemon (one journal): the tree twice under new
# names and a 200 MiB file, all concurrently
head -c 200M /dev/urandom > "$T/mid.bin"
"$JUMBO" --config "$JBCONF" send -r -P 2 -q "$T/tree" beta:conc1/ & p1=$!
"$JUMBO" --config "$JBCONF" send -r -P 2 -q "$T/tree" beta:conc2/ & p2=$!
"$JUMBO" --config "$JBCONF" send -P 2 -q "$T/mid.bin" beta:conc3/ & p3=$!
wait $p1; r1=$?; wait $p2; r2=$?; wait $p3; r3=$?
is "$r1 $r2 $r3" "0 0 0" "three concurrent sessions all succeed"
is "$(treesum "$T/beta/root/conc1/tree")-$(treesum "$T/beta/root/conc2/tree")" "$(treesum "$T/tree")-$(treesum "$T/tree")" \
	"both concurrent trees arrive bit-identical"
is "$(sha "$T/beta/root/conc3/mid.bin")" "$(sha "$T/mid.bin")" "the concurrent file arrives bit-identical"
ok "$(grep -ciE 'cannot start a transaction|journal:' "$T/beta/log" | grep -qx 0; echo $?)" "the daemon logged no journal errors"
rm -rf "$T/beta/root/conc1" "$T/beta/root/conc2" "$T/mid.bin"

# a sparse file of 5 PiB: its block bookkeeping alone would be 10 GiB; refused up front
truncate -s 5P "$T/huge.bin"
out=$(jb send "$T/huge.bin" beta:/huge/ 2>&1); rc=$?
is "$rc" 1 "sending a 5 PiB (sparse) file is refused"
like 'over the limit of [0-9]+ for one session' "$out" "with the block limit in the message"
cp --sparse=always "$T/huge.bin" "$T/beta/root/huge.bin" 2>/dev/null || truncate -s 5P "$T/beta/root/huge.bin"
out=$(jb get beta:/huge.bin "$T/huge-back.bin" 2>&1); rc=$?
is "$rc" 1 "getting one is refused by the sending daemon"
like 'over the limit' "$out" "and the client shows the daemon's reason"
ok "$([ ! -e "$T/huge-back.bin" ]; echo $?)" "nothing was created"
rm -f "$T/huge.bin" "$T/beta/root/huge.bin"

# a directory without -r, several sources into a directory, renaming a single file
out=$(jb send "$T/tree" beta:x 2>&1); rc=$?
is "$rc" 1 "a directory without -r fails"
like 'is a directory \(use -r\)' "$out" "and says to use -r"
echo one > "$T/one"; echo two > "$T/two"
jb send -q "$T/one" "$T/two" beta:multi; is "$?:$(cat "$T/beta/root/multi/two")" 0:two "several sources land in a directory"
jb send -q "$T/one" beta:renamed.txt; is "$?:$(cat "$T/beta/root/renamed.txt")" 0:one "a single source takes the destination's name"
# same size, and on tmpfs most likely the same mtime: only the digest tells them apart
touch -r "$T/one" "$T/two"
jb send -q "$T/two" beta:renamed.txt; is "$?:$(cat "$T/beta/root/renamed.txt")" 0:two \
	"an existing file is replaced by another of the same size and mtime"
mkdir -p "$T/other"; echo dup > "$T/other/one"
out=$(jb send "$T/one" "$T/other/one" beta:dups/ 2>&1)
like "both arrive as 'one'" "$out" "two sources with the same name are refused before sending"
done_testing
