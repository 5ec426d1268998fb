#!/bin/bash
# Landing rules, the catalog and provenance: site alpha sends a file to site
# beta; a rule on beta runs a job on it in a container; the job's output is
# committed as a dataset whose provenance names the input's digest and the
# image's digest; jumbo rerun makes it again bit for bit, and refuses once
# the input has changed.  A rule whose image is missing fails its job with
# the reason and keeps the dataset.
. "$(dirname "$0")/lib.sh"

need crun mmdebstrap
need_root "jobs need root (crun, overlay mounts, cgroups)"

two_sites
image_store "$T/beta/images"; ok $? "an image store with jumbo/minimal"
cat >> "$T/beta/jumbo.conf" <<'EOC'

[rule mean]
glob = incoming/*.csv
image = jumbo/minimal
command = python3 -c 'import os, sys, statistics; v = [float(x) for x in open(sys.argv[1]).read().split()[1:]]; os.makedirs("/work/out", exist_ok=True); open("/work/out/mean.txt", "w").write("%.3f\n" % statistics.mean(v)); print("mean of", sys.argv[2], statistics.mean(v))' {input} {name}
memory = 256M
timeout = 60

[rule broken]
glob = *.bad
image = nope/nope
EOC
sed -i "s|^state = .*|&\nimages = $T/beta/images|" "$T/beta/jumbo.conf"
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
site_start beta || exit 1
set_address alpha beta
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
B() { "$JUMBO" --config "$T/beta/jumbo.conf" "$@"; }
is "$(curl -s -H "Authorization: Bearer $(cat "$T/beta/state/api.token")" "$JUMBO_API/api/v1/rules" | jsonget /dev/stdin rules.0.glob)" "incoming/*.csv" "GET /api/v1/rules lists the rules"

# a file lands and its rule runs: alpha's jumbod sends it (two daemons)
site_start alpha || exit 1
AAPI=127.0.0.1:$(jsonget "$T/alpha/ready" api)
printf 'energy\n1.5\n2.5\n3.5\n' > "$T/alpha/root/run7.csv"
cp "$T/alpha/root/run7.csv" "$T/run7.csv"
tid=$("$JUMBO" --config "$T/alpha/jumbo.conf" send --detach --api "$AAPI" "$T/alpha/root/run7.csv" beta:/incoming/)
"$JUMBO" --config "$T/alpha/jumbo.conf" wait --api "$AAPI" "$tid" 2> /dev/null
ok $? "alpha's jumbod sends run7.csv to beta's"
for _ in $(seq 100); do
	st=$(B jobs --json | jsonget /dev/stdin 0.state 2>/dev/null)
	[ "$st" = completed ] || [ "$st" = failed ] && break
	sleep 0.1
done
is "$st" completed "the rule's job ran and completed"
job=$(B jobs --json | jsonget /dev/stdin 0.id)
is "$(B logs "$job")" "mean of run7.csv 2.5" "its command got the dataset at /data and the template's values"
out=$(B jobs --json "$job" | jsonget /dev/stdin output)
is "$out" "results/mean/run7.csv/$job" "its output directory comes from the rule"
is "$(cat "$T/beta/root/$out/mean.txt")" "2.500" "/work/out/mean.txt was committed into the data root"

# the catalog
B datasets --json > "$T/ds.json"
is "$(jsonget "$T/ds.json" 0.path)" incoming/run7.csv "the landed file is a dataset"
is "$(jsonget "$T/ds.json" 0.source):$(jsonget "$T/ds.json" 0.origin)" "transfer:alpha" "sent by alpha"
is "$(jsonget "$T/ds.json" 0.digest)" "$("$JUMBO" sum "$T/run7.csv" | cut -d' ' -f1)" "with the digest jumbo sum computes"
is "$(jsonget "$T/ds.json" 1.path)" "$out/mean.txt" "the output is a dataset"
is "$(jsonget "$T/ds.json" 1.source):$(jsonget "$T/ds.json" 1.job)" "job:$job" "made by the job"
is "$(jsonget "$T/ds.json" 1.sha256)" "sha256:$(sha "$T/beta/root/$out/mean.txt")" "with its SHA-256"
like "incoming/run7.csv .* from +alpha" "$(B datasets incoming)" "jumbo datasets PATH lists a directory"
is "$(B datasets --sha256 --json incoming/run7.csv | jsonget /dev/stdin 0.sha256)" "sha256:$(sha "$T/run7.csv")" \
	"jumbo datasets --sha256 computes and records the SHA-256 when asked"
is "$(B datasets --json incoming/run7.csv | jsonget /dev/stdin 0.sha256)" "sha256:$(sha "$T/run7.csv")" "and it stays"

# provenance
B provenance --json "$out/mean.txt" > "$T/prov.json"; ok $? "jumbo provenance --json"
image_digest=$("$JUMBO" image --store "$T/beta/images" inspect --json jumbo/minimal | jsonget /dev/stdin digest)
is "$(jsonget "$T/prov.json" job.digest)" "$image_digest" "provenance names the image digest"
is "$(jsonget "$T/prov.json" job.inputs.0.path)" incoming/run7.csv "and the input"
is "$(jsonget "$T/prov.json" job.inputs.0.digest)" "$(jsonget "$T/ds.json" 0.digest)" "with its digest"
is "$(jsonget "$T/prov.json" from.0.dataset.origin)" alpha "back to the transfer from alpha"
is "$(jsonget "$T/prov.json" job.spec.memory)" 256M "with the job's limits"
like "<- job $job \(completed, exit 0\): image jumbo/minimal@$image_digest" "$(B provenance "$out/mean.txt")" \
	"the text form shows the chain"
out2=$(B provenance nothing/here 2>&1); is $? 1 "provenance of a path that is no dataset fails"
like "not a dataset" "$out2" "and says so"

# rerun: the same inputs, the same image: the same bytes
out2=$(B rerun "$job" 2>&1); rc=$?
is "$rc" 0 "jumbo rerun: exit 0"
like "bit-identical: 1 output" "$out2" "the outputs are bit-identical"
rerun=$(B jobs --json | jsonget /dev/stdin 0.id)
like "@$image_digest" "$(B jobs --json "$rerun" | jsonget /dev/stdin spec.image)" "the rerun pinned the image by digest"
is "$(B jobs --json "$rerun" | jsonget /dev/stdin spec.rerun_of)" "$job" "and says what it reran"
printf 'energy\n9\n' > "$T/beta/root/incoming/run7.csv"
out2=$(B rerun "$job" 2>&1); is $? 1 "a rerun after the input changed is refused"
like "input incoming/run7.csv of job $job has changed" "$out2" "naming the input"

# a rule whose image is missing: the job fails with the reason, the data stays
printf 'x\n' > "$T/x.bad"
jb send "$T/x.bad" beta:/ > /dev/null 2>&1; ok $? "a file for the broken rule lands"
for _ in $(seq 100); do
	st=$(B jobs --json | jsonget /dev/stdin 0.state 2>/dev/null)
	[ "$st" = failed ] && break
	sleep 0.1
done
is "$st" failed "the broken rule's job fails"
like "no such image here" "$(B jobs --json | jsonget /dev/stdin 0.reason)" "with the reason"
[ -f "$T/beta/root/x.bad" ]; ok $? "the dataset is kept"
is "$(B datasets --json x.bad | jsonget /dev/stdin 0.path)" x.bad "and catalogued"

# the catalog survives a restart
kill "$(cat "$T/beta/pid")"; wait "$(cat "$T/beta/pid")" 2>/dev/null
site_start beta || exit 1
export JUMBO_API=127.0.0.1:$(jsonget "$T/beta/ready" api)
is "$(B datasets --json "$out/mean.txt" | jsonget /dev/stdin 0.job)" "$job" "the catalog survives a restart"
done_testing
