#!/bin/bash
# Who may do what on the REST API.  The audit that found it: any token
# could start a job on the host's network (and sniff the admin's bearer
# token off loopback), start a notebook in another user's workspace, and
# read every job's environment, JUPYTERHUB_API_TOKEN included.  Now each
# token has scopes: read (GET), transfer, run, notebook (for hub users),
# admin.  A request outside them is 403 naming the scope it lacks; a token
# sees only the jobs and transfers it made; env values go to their owner
# and admin alone.
. "$(dirname "$0")/lib.sh"

need crun
need_root "jobs need root (crun must be usable for jumbod to take jobs)"
site_new alpha; site_new beta
trust alpha beta
cat >> "$T/alpha/jumbo.conf" <<EOC

[backend quick]
type = null
EOC
site_start alpha || exit 1
API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
JB() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
# as TOKEN METHOD PATH [BODY]: the status line's code, the body in $T/body
as() {
	curl -s -o "$T/body" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
		${4:+-H 'Content-Type: application/json' --data "$4"} "http://$API$3"
}
body() { cat "$T/body"; }
field() { jsonget "$T/body" "$1"; }

reader=$(JB token create reader); ok $? "a token without --scope ..."
is "$(JB token list --json | python3 -c 'import json,sys; print(",".join(t["scopes"] for t in json.load(sys.stdin) if t["name"]=="reader"))')" \
	read "... has the scope read"
runner=$(JB token create runner --scope run)
other=$(JB token create other --scope run)
hub=$(JB token create hub --scope notebook:alice)
mover=$(JB token create mover --scope transfer)
admin=$(cat "$T/alpha/state/api.token")
job='{"image":"any/image","backend":"quick","args":["true"],"env":["SECRET=s3cr3t"]}'

# --- read: GET only ---
is "$(as "$reader" GET /api/v1/jobs)" 200 "a read token lists jobs"
is "$(as "$reader" POST /api/v1/jobs "$job")" 403 "a read token cannot POST a job"
is "$(field scope)" run "the refusal names the scope it lacks (run)"
like "token 'reader' lacks the scope 'run'" "$(field error)" "and says so in words"
is "$(as "$reader" POST /api/v1/transfers '{"from":"x:/a","to":"b"}')" 403 "nor a transfer"
is "$(field scope)" transfer "(lacking transfer)"
is "$(as "$reader" POST /api/v1/datasets/sha256 '{"path":"x"}')" 403 "nor ask for a digest"
is "$(as "$reader" DELETE /api/v1/jobs/0123456789abcdef)" 403 "nor kill a job"

# --- run: jobs, not the host's network ---
is "$(as "$runner" POST /api/v1/jobs "${job%\}},\"network\":\"host\"}")" 403 "a run token cannot ask for the host's network"
is "$(field scope)" admin "that is admin's"
is "$(as "$runner" POST /api/v1/jobs "$job")" 201 "a run token starts a job"
mine=$(field id)
is "$(field owner)" runner "the job records the token that made it"
is "$(field spec.env.0)" SECRET=s3cr3t "its owner sees its env"
is "$(as "$runner" POST /api/v1/jobs '{"image":"any/image","notebook":{"user":"alice"}}')" 403 \
	"a run token cannot start a notebook"
is "$(field scope)" notebook "(lacking notebook)"
is "$(as "$runner" POST /api/v1/jobs '{"image":"any/image","backend":"quick","data":["beta:/x/y"]}')" 403 \
	"nor fetch a peer's dataset into the site (a transfer)"
is "$(field scope)" transfer "(lacking transfer)"

# --- another token sees none of it ---
is "$(as "$other" GET "/api/v1/jobs/$mine")" 404 "another run token cannot see the job"
is "$(as "$other" POST "/api/v1/jobs/$mine/kill")" 404 "nor kill it"
is "$(as "$other" POST "/api/v1/jobs/$mine/rerun")" 404 "nor rerun it"
is "$(as "$other" GET "/api/v1/jobs/$mine/logs")" 404 "nor read its log"
as "$other" GET /api/v1/jobs > /dev/null
is "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["jobs"]))' "$T/body")" 0 "its list is empty"
is "$(as "$reader" GET "/api/v1/jobs/$mine")" 404 "nor can the read token"

# --- admin sees everything; env values are the owner's ---
is "$(as "$admin" GET "/api/v1/jobs/$mine")" 200 "admin sees every job"
is "$(field spec.env.0)" SECRET=s3cr3t "with its env"

# --- the hub's token: notebooks for its user, nothing else ---
is "$(as "$hub" POST /api/v1/jobs "$job")" 403 "a notebook token cannot create a plain job"
is "$(field scope)" run "(lacking run)"
is "$(as "$hub" POST /api/v1/jobs '{"image":"any/image","notebook":{"user":"bob"}}')" 403 \
	"a notebook:alice token cannot name bob's workspace"
like "for 'alice' only" "$(field error)" "and says whose it is"
is "$(as "$hub" POST /api/v1/jobs '{"image":"any/image","notebook":{"user":"alice"},"network":"host"}')" 403 \
	"nor put a notebook on the host's network"
is "$(as "$hub" POST /api/v1/jobs '{"image":"any/image","notebook":{"user":"alice"},"data":["beta:/x"]}')" 403 \
	"nor make the site fetch a hub user's PEER:PATH"
is "$(as "$hub" GET "/api/v1/jobs/$mine")" 404 "nor read another token's job (and its env)"
is "$(as "$hub" GET "/api/v1/jobs")" 200 "it may list (its own)"
like '"jobs": *\[\]' "$(body)" "which are none"

# --- transfer: transfers, not jobs ---
is "$(as "$mover" POST /api/v1/jobs "$job")" 403 "a transfer token cannot start a job"
is "$(as "$mover" GET /api/v1/transfers)" 200 "it lists transfers"

# --- tokens: admin's alone, and a bad scope is refused ---
out=$(JB token create bad --scope root 2>&1); rc=$?
ok $((rc == 0)) "an unknown scope is refused"
like "root" "$out" "by name"
is "$(as "$admin" POST /api/v1/jobs "${job%\}},\"network\":\"host\"}")" 201 "admin may use the host's network"
done_testing
