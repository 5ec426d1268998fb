#!/bin/bash
# Images: build the minimal recipe with mmdebstrap, push it to the CNCF
# registry whose storage is a one-node OpenStack Swift (contrib/site), pull
# it back, interoperate with skopeo and umoci both ways, import archives,
# and refuse every lie a registry can tell.
. "$(dirname "$0")/lib.sh"
SITE=$(cd "$(dirname "$0")/../../contrib/site" && pwd)

need mmdebstrap docker-registry swift-proxy-server memcached skopeo umoci
stop_all() {
	for r in "$T"/reg*; do [ -d "$r" ] && "$SITE/registry-down" "$r" >/dev/null 2>&1; done
	[ -d "$T/swift" ] && "$SITE/swift-down" "$T/swift" >/dev/null 2>&1
	cleanup
}
trap stop_all EXIT

S1=$T/store1 S2=$T/store2
img() { local s=$1; shift; "$JUMBO" image --store "$s" "$@"; }

"$SITE/swift-up" "$T/swift" > "$T/swift.out" 2> "$T/swift.err"; ok $? "Swift starts on loopback (contrib/site/swift-up)"
"$SITE/registry-up" "$T/reg" --swift "$T/swift" --auth htpasswd --no-selftest > "$T/reg.out" 2> "$T/reg.err"
ok $? "the registry starts with its Swift storage driver and htpasswd auth"
[ -f "$T/reg/credentials" ] || { sed 's/^/# /' "$T/swift.err" "$T/reg.err"; exit 1; }
. "$T/reg/credentials"
. "$T/swift/credentials"
listening=$(ss -ltnH | awk '{print $4}' | grep -E ":(${REGISTRY_HOST##*:}|$SWIFT_PORT)$")
is "$(echo "$listening" | grep -c '^127\.0\.0\.1:')" 2 "Swift and the registry listen on 127.0.0.1"
is "$(echo "$listening" | grep -vc '^127\.0\.0\.1:')" 0 "and nowhere else"

# build
img "$S1" build minimal > "$T/build.out" 2> "$T/build.err"; rc=$?
ok $rc "jumbo image build minimal (mmdebstrap, Debian trixie)"
[ $rc = 0 ] || { tail -20 "$T/build.err" | sed 's/^/# /'; exit 1; }
like '^built jumbo/minimal:latest' "$(cat "$T/build.out")" "it says what it built"
img "$S1" inspect --json jumbo/minimal > "$T/inspect.json"
is "$(jsonget "$T/inspect.json" mediaType)" application/vnd.oci.image.manifest.v1+json "an OCI image manifest"
is "$(jsonget "$T/inspect.json" layers.0.mediaType)" application/vnd.oci.image.layer.v1.tar+gzip "with one gzip layer"
is "$(jsonget "$T/inspect.json" cmd.0)" /usr/bin/python3 "whose command is the recipe's"
digest=$(jsonget "$T/inspect.json" digest)
mdigest=$(sha "$S1/blobs/sha256/${digest#sha256:}")
is "sha256:$mdigest" "$digest" "the manifest is stored under its own digest"
layer=$(jsonget "$T/inspect.json" layers.0.digest)
is "sha256:$(sha "$S1/blobs/sha256/${layer#sha256:}")" "$layer" "and so is the layer"
diff=$(jsonget "$T/inspect.json" layers.0.diff_id)
is "sha256:$(zcat "$S1/blobs/sha256/${layer#sha256:}" | sha256sum | cut -d' ' -f1)" "$diff" \
	"the config's diff_id is the digest of the uncompressed layer"
tar -tzf "$S1/blobs/sha256/${layer#sha256:}" > "$T/layer.list"
grep -qx './usr/bin/python3' "$T/layer.list"; ok $? "the layer holds python3"
tar -tvzf "$S1/blobs/sha256/${layer#sha256:}" | grep -q '^[cb]'; is $? 1 "and no device nodes"

# interop: umoci unpacks what jumbo built (the store is an OCI layout)
umoci unpack --image "$S1:jumbo/minimal:latest" "$T/umoci-bundle" > /dev/null 2>&1
ok $? "umoci unpacks jumbo's image from the store"
[ -x "$T/umoci-bundle/rootfs/usr/bin/python3" ]; ok $? "into a root filesystem with python3"

# push
out=$(img "$S1" push jumbo/minimal "$REGISTRY_HOST/jumbo/minimal:1" 2>&1); is $? 1 "push without credentials fails"
like 'asks for a user name and password' "$out" "and says what is needed"
out=$(img "$S1" --creds "$REGISTRY_USER:wrong" push jumbo/minimal "$REGISTRY_HOST/jumbo/minimal:1" 2>&1)
is $? 1 "push with a wrong password fails"
like 'HTTP 401' "$out" "with the registry's answer"
out=$(img "$S1" --creds "$REGISTRY_USER:$REGISTRY_PASSWORD" --chunk 4M push jumbo/minimal "$REGISTRY_HOST/jumbo/minimal:1" 2>&1)
ok $? "push in 4 MiB chunks with credentials"
like "digest $digest" "$out" "the registry stores the manifest under the same digest"
like "blobs: 2 sent" "$out" "both blobs were sent"
export JUMBO_REGISTRY_USER=$REGISTRY_USER JUMBO_REGISTRY_PASSWORD=$REGISTRY_PASSWORD
out=$(img "$S1" push jumbo/minimal "$REGISTRY_HOST/jumbo/minimal:mono"); ok $? "push again, credentials from the environment"
like "0 sent .*2 already there" "$out" "nothing is sent twice"
img "$S1" push --json jumbo/minimal "$REGISTRY_HOST/copies/minimal:1" > "$T/mount.json"; ok $? "push into another repository"
is "$(jsonget "$T/mount.json" blobs_mounted):$(jsonget "$T/mount.json" bytes_sent)" "2:0" \
	"its blobs are mounted from the first one, not sent"
printf '%s\n' "$REGISTRY_PASSWORD" > "$T/reg.pw"
printf '[site]\nname = c\nidentity = /x\n[registry %s]\nuser = %s\npassword-file = %s\n' \
	"$REGISTRY_HOST" "$REGISTRY_USER" "$T/reg.pw" > "$T/creds.conf"
env -u JUMBO_REGISTRY_USER -u JUMBO_REGISTRY_PASSWORD "$JUMBO" --config "$T/creds.conf" image --store "$T/store4" \
	pull "$REGISTRY_HOST/jumbo/minimal:mono" > /dev/null
ok $? "pull with the credentials of a [registry HOST] section (password-file)"
objs=$(/usr/bin/python3 -c '
import sys, swiftclient
c = swiftclient.Connection(authurl=sys.argv[1], user=sys.argv[2], key=sys.argv[3])
print(sum(1 for o in c.get_container(sys.argv[4], full_listing=True)[1]))' \
	"$SWIFT_AUTH_URL" "$SWIFT_USER" "$SWIFT_KEY" "$REGISTRY_SWIFT_CONTAINER" 2>&1)
like '^[1-9][0-9]*$' "$objs" "the registry's objects are in Swift ($objs)"

# pull into another store
img "$S2" pull "$REGISTRY_HOST/jumbo/minimal:1" > "$T/pull.out" 2>&1; ok $? "pull into an empty store"
like "digest $digest" "$(cat "$T/pull.out")" "same digest as built"
img "$S2" pull "$REGISTRY_HOST/jumbo/minimal@$digest" > /dev/null 2>&1; ok $? "pull by digest"
is "$(img "$S2" ls --json | jsonget /dev/stdin 0.digest)" "$digest" "ls --json shows it"
dirs=$(img "$S2" unpack "$REGISTRY_HOST/jumbo/minimal:1"); ok $? "its layers are unpacked"
[ -x "$dirs/usr/bin/python3" ]; ok $? "into a directory with python3"
is "$(cat "$dirs.diff_id")" "$diff" "the unpacked layer records the diff_id it was checked against"

is "$(img "$S2" ls "$REGISTRY_HOST/jumbo/minimal" | sort | tr '\n' ' ')" \
	"$REGISTRY_HOST/jumbo/minimal:1 $REGISTRY_HOST/jumbo/minimal:mono " "image ls HOST/REPO lists the registry's tags"
img "$S1" push jumbo/minimal "$REGISTRY_HOST/scratch/gone:1" > /dev/null
img "$S2" rm --remote "$REGISTRY_HOST/scratch/gone:1" > /dev/null; ok $? "image rm --remote deletes a manifest"
out=$(img "$S2" --store "$T/store5" pull "$REGISTRY_HOST/scratch/gone:1" 2>&1); is $? 1 "it is gone from the registry"
like 'MANIFEST_UNKNOWN' "$out" "(manifest unknown)"

# interop: skopeo pulls what jumbo pushed, and umoci unpacks it
skopeo copy --quiet --src-tls-verify=false --src-creds "$REGISTRY_USER:$REGISTRY_PASSWORD" \
	"docker://$REGISTRY_HOST/jumbo/minimal:1" "oci:$T/sk:minimal" 2> "$T/sk.err"
ok $? "skopeo pulls the image jumbo pushed"
umoci unpack --image "$T/sk:minimal" "$T/sk-bundle" > /dev/null 2>&1 && [ -x "$T/sk-bundle/rootfs/usr/bin/python3" ]
ok $? "umoci unpacks it"

# interop: an image made by umoci, pushed by skopeo (as Docker schema 2), pulled by jumbo
mkdir -p "$T/sk-bundle/rootfs/opt"
echo "made by umoci" > "$T/sk-bundle/rootfs/opt/hello.txt"
rm -f "$T/sk-bundle/rootfs/etc/debian_version"
umoci repack --image "$T/sk:hello" "$T/sk-bundle" > /dev/null 2>&1; ok $? "umoci adds a layer (a file and a whiteout)"
skopeo copy --quiet --format v2s2 --dest-tls-verify=false --dest-creds "$REGISTRY_USER:$REGISTRY_PASSWORD" \
	"oci:$T/sk:hello" "docker://$REGISTRY_HOST/umoci/hello:1" 2> "$T/sk2.err"
ok $? "skopeo pushes it as Docker schema 2"
img "$S2" pull "$REGISTRY_HOST/umoci/hello:1" > /dev/null 2> "$T/pull2.err"; ok $? "jumbo pulls the image skopeo pushed"
img "$S2" inspect --json "$REGISTRY_HOST/umoci/hello:1" > "$T/hello.json"
is "$(jsonget "$T/hello.json" mediaType)" application/vnd.docker.distribution.manifest.v2+json "a Docker schema 2 manifest"
dirs=$(img "$S2" unpack "$REGISTRY_HOST/umoci/hello:1" | tr '\n' ' ')
set -- $dirs
is "$#" 2 "two layers, unpacked"
is "$(cat "$2/opt/hello.txt")" "made by umoci" "the top layer holds the new file"
is "$(stat -c '%F %t:%T' "$2/etc/debian_version" 2>&1)" "character special file 0:0" "and the whiteout in overlayfs form"

# run: a dataset lands on site beta (sent from alpha), and beta runs a job on
# it in the image pulled from the Swift-backed registry; then in the image
# skopeo pushed
if command -v crun > /dev/null; then
	two_sites
	sed -i "s|^state = .*|&\nimages = $S2|" "$T/beta/jumbo.conf"
	kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
	site_start beta || exit 1
	set_address alpha beta
	printf 'energy\n1.5\n2.5\n' > "$T/run7.csv"
	jb send "$T/run7.csv" beta:/landed/ > /dev/null 2>&1; ok $? "a dataset lands on beta"
	BAPI=127.0.0.1:$(jsonget "$T/beta/ready" api)
	out=$("$JUMBO" --config "$T/beta/jumbo.conf" run --api "$BAPI" -i "$REGISTRY_HOST/jumbo/minimal:1" -d landed -- python3 -c '
vals = [float(l) for l in open("/data/landed/run7.csv").read().split()[1:]]
open("/work/mean.txt", "w").write(str(sum(vals) / len(vals)))
print("mean", sum(vals) / len(vals))' 2>&1)
	is "$out" "mean 2.0" "a job in the pulled image reads the landed dataset from /data"
	jid=$("$JUMBO" --config "$T/beta/jumbo.conf" jobs --api "$BAPI" --json | jsonget /dev/stdin 0.id)
	is "$(cat "$T/beta/state/jobs/$jid/workspace/mean.txt")" 2.0 "and writes /work"
	is "$("$JUMBO" --config "$T/beta/jumbo.conf" jobs --api "$BAPI" --json "$jid" | jsonget /dev/stdin digest)" "$digest" "pinned to the image's digest"
	out=$("$JUMBO" --config "$T/beta/jumbo.conf" run --api "$BAPI" -i "$REGISTRY_HOST/umoci/hello:1" -- sh -c 'cat /opt/hello.txt; test -e /etc/debian_version || echo "whited out"' 2>&1)
	is "$out" "made by umoci
whited out" "a job runs in the image skopeo pushed: its layer's file and its whiteout"
else
	echo "ok $((_n += 1)) # SKIP crun is not installed"
fi

# import: an OCI archive and a docker save tarball
skopeo copy --quiet "oci:$T/sk:hello" "oci-archive:$T/hello-oci.tar" 2>/dev/null
skopeo copy --quiet "oci:$T/sk:hello" "docker-archive:$T/hello-docker.tar:site/tf:2.15" 2>/dev/null
img "$S1" import "$T/hello-oci.tar" local/hello:oci > "$T/imp1.out" 2>&1; ok $? "import an OCI archive"
img "$S1" import "$T/hello-docker.tar" > "$T/imp2.out" 2>&1; ok $? "import a docker save tarball"
like '^imported docker.io/site/tf:2.15' "$(cat "$T/imp2.out")" "named by its RepoTags"
is "$(img "$S1" unpack docker.io/site/tf:2.15 | wc -l)" 2 "its two layers unpack"
out=$(img "$S1" import /etc/hostname 2>&1); is $? 1 "importing a file that is no archive fails"
like 'hostname' "$out" "naming the file"

# faults: a registry that lies
/usr/bin/python3 "$(dirname "$0")/evil_registry.py" "$T/evil.port" 2>/dev/null &
_pids+=($!)
for _ in $(seq 50); do [ -f "$T/evil.port" ] && break; sleep 0.1; done
E=127.0.0.1:$(cat "$T/evil.port")
S3=$T/store3
check_refused() { # NAME PATTERN WHAT
	local out
	out=$(img "$S3" pull "$E/evil/$1:1" 2>&1); is $? 1 "$3: pull fails"
	like "$2" "$out" "$3: the error says so"
}
img "$S3" pull "$E/evil/good:1" > /dev/null 2>&1; ok $? "the lying registry's good image pulls"
before=$(ls -A "$S3/blobs/sha256" | sort)
check_refused baddigest 'the bytes received hash to' "a blob whose bytes are not its digest"
check_refused badmanifest 'not to the sha256:[0-9a-f]+ announced' "a manifest announced under another digest"
check_refused hugemanifest 'larger than 4194304 bytes' "a 5 MiB manifest"
check_refused escape "layer entry '../../escape': absolute or climbing out" "a layer entry with ../"
check_refused absolute "layer entry '/etc/evil': absolute" "a layer entry with an absolute path"
check_refused device "'dev/mem': device nodes are not allowed" "a layer with a device node"
check_refused diffid 'its tar hashes to .*, the config says' "a config whose diff_id is not the layer's (layer already unpacked)"
check_refused truncated 'partial file|transfer closed' "a blob cut short"
is "$(ls -A "$S3/blobs/sha256" | sort)" "$before" "failed pulls leave no blobs behind"
is "$(ls "$S3/layers" | grep -c -v diff_id)" 1 "nor unpacked layers"
is "$(img "$S3" ls --json | jsonget /dev/stdin 1.name 2>&1 | tail -1)" "IndexError: list index out of range" \
	"nor names"
[ ! -e "$T/escape" ] && [ ! -e /etc/evil ]; ok $? "nothing was written outside the store"

# faults: unknown image, registry down, Swift down
out=$(img "$S2" pull "$REGISTRY_HOST/jumbo/nope:1" 2>&1); is $? 1 "an unknown image fails"
like 'HTTP 404, (MANIFEST|NAME)_UNKNOWN' "$out" "with the registry's words"
out=$(img "$S2" pull "127.0.0.1:1/jumbo/minimal:1" 2>&1); is $? 1 "a registry that does not answer fails"
like "registry 127.0.0.1:1: (Couldn't|Could not|Failed to) connect" "$out" "clearly"
out=$(img "$S2" pull "jumbo/minimal" 2>&1); is $? 1 "a name without a registry cannot be pulled"
like 'no registry in the name' "$out" "and the error says why"
"$SITE/swift-down" "$T/swift" > /dev/null 2>&1
out=$(img "$S1" push docker.io/site/tf:2.15 "$REGISTRY_HOST/site/tf:2.15" 2>&1); is $? 1 "push with Swift down fails"
like 'HTTP 5[0-9][0-9]' "$out" "with the registry's error"
"$SITE/swift-up" "$T/swift" > /dev/null 2>&1; ok $? "Swift comes back"
for _ in $(seq 40); do img "$S1" push docker.io/site/tf:2.15 "$REGISTRY_HOST/site/tf:2.15" > /dev/null 2>&1 && break; sleep 0.5; done
img "$S1" push docker.io/site/tf:2.15 "$REGISTRY_HOST/site/tf:2.15" > /dev/null 2>&1; ok $? "and pushes work again"

# token auth: a registry behind a token service
"$SITE/registry-up" "$T/regtok" --swift "$T/swift" --auth token --container tok --no-selftest > /dev/null 2> "$T/regtok.err"
ok $? "a registry with token auth starts"
(
	. "$T/regtok/credentials"
	img "$S1" --creds "$REGISTRY_USER:$REGISTRY_PASSWORD" push jumbo/minimal "$REGISTRY_HOST/jumbo/minimal:tok" > /dev/null 2> "$T/tok.err"
	ok $? "push with a Bearer token from the realm"
	img "$S2" --creds "$REGISTRY_USER:$REGISTRY_PASSWORD" pull "$REGISTRY_HOST/jumbo/minimal:tok" > /dev/null 2>> "$T/tok.err"
	ok $? "pull with a token"
	out=$(img "$S2" --creds "$REGISTRY_USER:nope" pull "$REGISTRY_HOST/jumbo/minimal:tok" 2>&1)
	is $? 1 "wrong credentials at the token service fail"
	like 'token service .* refused these credentials' "$out" "and the error names the token service"
	# the same registry named localhost: its realm (127.0.0.1) is another
	# host, which gets none of the credentials given for localhost
	out=$(img "$S2" --creds "$REGISTRY_USER:$REGISTRY_PASSWORD" pull "localhost:${REGISTRY_HOST##*:}/jumbo/minimal:tok" 2>&1)
	is $? 1 "credentials for a registry are not sent on to a token realm on another host ..."
	like 'token service http://127.0.0.1:[0-9]+/token refused anonymous access' "$out" "... it is asked anonymously (and refuses)"
	echo "$_n $_fail" > "$T/sub.count"
)
read -r _n _fail < "$T/sub.count"

# prune waits for no writer: while a pull, import or build holds the store,
# it removes nothing (and says so); rm still forgets the name
flock -s "$S2/.busy" sleep 3 &
holder=$!
sleep 0.3
out=$(img "$S2" prune 2>&1); is $? 1 "prune while a pull writes to the store fails"
like 'is writing to the store: nothing removed' "$out" "and says why"
img "$S2" tag "$REGISTRY_HOST/jumbo/minimal:1" spare/minimal:1 > /dev/null
out=$(img "$S2" rm spare/minimal:1 2>&1); is $? 0 "rm then still forgets the name"
like 'nothing removed now' "$out" "and keeps the blobs for a later prune"
wait "$holder"

# rm: names go, then the blobs no name needs
img "$S2" rm "$REGISTRY_HOST/umoci/hello:1" > "$T/rm.out"; ok $? "image rm"
like 'blobs? no longer needed, removed' "$(cat "$T/rm.out")" "reports what it removed"
img "$S2" unpack "$REGISTRY_HOST/jumbo/minimal:1" > /dev/null; ok $? "the images left are whole"
out=$(img "$S2" rm nope/nope 2>&1); is $? 1 "rm of an unknown name fails"
like 'no such image' "$out" "and says so"
done_testing
