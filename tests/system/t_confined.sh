#!/bin/bash
# A job does not own the host.  The audit that found it: a job started with
# a fresh, ordinary token asked for the host's network, sniffed loopback and
# printed the site's admin bearer token from another client's request; it
# ran as the host's root (uid_map 0 0 4294967295), without seccomp, with 14
# capabilities.  Now: the host's network is admin's; the job's root is an
# unprivileged host id ([site] subuid); a seccomp profile refuses what a
# container's default refuses; its capabilities are Podman's default set.
. "$(dirname "$0")/lib.sh"

need crun python3
need_root "jobs need root (crun, id-mapped mounts)"
site_new alpha
image_store "$T/alpha/images" || { fail "the image store"; done_testing; }
sed -i "s|^state = .*|&\nimages = $T/alpha/images|" "$T/alpha/jumbo.conf"
cat >> "$T/alpha/jumbo.conf" <<EOC

[backend quick]
type = null
EOC
site_start alpha || exit 1
API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
JB() { "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }
tok=$(JB token create analyst --scope run)
post() { curl -s -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' --data "$1" "http://$API/api/v1/jobs"; }
# wait_end ID: until the job has ended (30 s), then its stdout
wait_end() {
	local s
	for _ in $(seq 1 300); do
		s=$(curl -s -H "Authorization: Bearer $tok" "http://$API/api/v1/jobs/$1" | jsonget /dev/stdin state)
		case $s in pending | running) sleep 0.1 ;; *) break ;; esac
	done
	curl -s -H "Authorization: Bearer $tok" "http://$API/api/v1/jobs/$1/logs?stream=stdout"
}

# --- the sniffer asks for the host's network: refused ---
sniff='import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); print(s.recv(65535))'
code=$(curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
	--data "{\"image\":\"jumbo/minimal\",\"network\":\"host\",\"args\":[\"python3\",\"-c\",\"$sniff\"]}" "http://$API/api/v1/jobs")
is "$code" 403 "a run token's job cannot have the host's network"
is "$(jsonget "$T/body" scope)" admin "(it is admin's)"

# --- what the job is, from inside ---
probe='
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
print("uid_map", " ".join(open("/proc/self/uid_map").read().split()))
st = dict(l.split(":", 1) for l in open("/proc/self/status"))
print("seccomp", st["Seccomp"].strip())
eff = int(st["CapEff"], 16)
print("caps", " ".join(n for n, b in (("SYS_ADMIN", 21), ("NET_RAW", 13), ("NET_ADMIN", 12), ("SYS_PTRACE", 19), ("SYS_MODULE", 16), ("MKNOD", 27)) if eff >> b & 1) or "none")
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); print("raw socket opened")
except OSError as e:
    print("raw socket", errno.errorcode[e.errno])
for name, call in (("unshare", lambda: libc.unshare(0x10000000)), ("mount", lambda: libc.mount(b"x", b"/mnt", b"tmpfs", 0, None)),
                   ("keyctl", lambda: libc.syscall(250, 0, 0)), ("bpf", lambda: libc.syscall(321, 0, 0, 0))):
    r = call(); print(name, "ok" if r == 0 else errno.errorcode[ctypes.get_errno()])
open("/work/out/result.txt", "w").write("made in a job\n")
os.chmod("/work/out/result.txt", 0o644)
print("owner", os.stat("/work/out/result.txt").st_uid)
'
body=$(python3 -c 'import json,sys; print(json.dumps({"image": "jumbo/minimal", "args": ["python3", "-c", sys.argv[1]]}))' "$probe")
id=$(post "$body" | jsonget /dev/stdin id); ok $? "a run token starts a job ($id)"
out=$(wait_end "$id")
like '^uid_map 0 524288 65536$' "$(echo "$out" | grep uid_map)" "its root is host uid 524288 (uid_map 0 524288 65536), not the identity map"
is "$(echo "$out" | grep '^seccomp')" "seccomp 2" "Seccomp: 2 (a filter)"
is "$(echo "$out" | grep '^caps')" "caps none" "CapEff has no CAP_SYS_ADMIN, CAP_NET_RAW, CAP_NET_ADMIN (nor SYS_PTRACE, SYS_MODULE, MKNOD)"
is "$(echo "$out" | grep '^raw socket')" "raw socket EPERM" "a raw socket is refused"
is "$(echo "$out" | grep '^unshare')" "unshare EPERM" "a new user namespace is refused"
is "$(echo "$out" | grep '^mount')" "mount EPERM" "mount is refused"
is "$(echo "$out" | grep '^keyctl')" "keyctl EPERM" "the kernel's keyrings are refused"
is "$(echo "$out" | grep '^bpf')" "bpf EPERM" "bpf is refused"
is "$(echo "$out" | grep '^owner')" "owner 0" "inside, its file is root's"
ws=$T/alpha/state/jobs/$id/workspace/out/result.txt
is "$(stat -c %u:%g "$ws")" 524288:524288 "on the host, the file it wrote in /work/out is uid 524288's, not root's"
committed=$(find "$T/alpha/root/results/$id" -name result.txt)
is "$(stat -c %u "$committed")" "$(id -u)" "the output committed to the data root is the site's (jumbod's user)"
is "$(stat -c %a "$T/alpha/state")" 710 "STATE is 0710 ..."
is "$(stat -c %g "$T/alpha/state")" 524288 "... its group the jobs' root (passes through, cannot list)"

d=$T/alpha/state
modes=$(cd "$d" && stat -c '%a %n' site.db* journal.db* api.token "jobs/$id/config.json" "jobs/$id/supervise.json" \
	"jobs/$id/stdout" "jobs/$id/stderr" "jobs/$id/result.json" | grep -vc '^600 ')
is "$modes" 0 "the databases (and their -wal, -shm), the token, the job's config (its env), logs and result are 0600"
is "$(stat -c %a "$d/jobs/$id")" 710 "the job's directory 0710 (its root passes through to its bundle)"

# --- a job's own network reaches the site address's job_ports, nothing else of the host ---
# two listeners on the host's 0.0.0.0: one on a port job_ports names, one not
ports=$(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("", 0)); b.bind(("", 0)); print(a.getsockname()[1], b.getsockname()[1])')
read -r allowed other <<< "$ports"
for p in $allowed $other; do
	python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"host service\n"); c.close()' "$p" &
	_pids+=($!)
done
kill "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2>/dev/null
sed -i "s|^state = .*|&\njob_ports = $allowed|" "$T/alpha/jumbo.conf"
site_start alpha || exit 1
API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
reach='
import socket, sys
gw = [socket.inet_ntoa(bytes.fromhex(f[2])[::-1]) for f in (l.split() for l in open("/proc/net/route").readlines()[1:]) if f[2] != "00000000"][0]
for host, port in (("10.213.0.1", int(sys.argv[1])), ("10.213.0.1", int(sys.argv[2])), (gw, int(sys.argv[2]))):
    what = "allowed" if port == int(sys.argv[1]) else "other"
    try:
        s = socket.create_connection((host, port), timeout=3); print(host, "port", what, "reached:", s.recv(64).decode().strip())
    except OSError as e:
        print(host, "port", what, "refused:", type(e).__name__)
'
vbody=$(python3 -c 'import json,sys; print(json.dumps({"image": "jumbo/minimal", "network": "veth", "args": ["python3", "-c"] + sys.argv[1:]}))' "$reach" "$allowed" "$other")
id=$(post "$vbody" | jsonget /dev/stdin id); ok $? "a run token's job on a network of its own (veth)"
out=$(wait_end "$id")
like '^10.213.0.1 port allowed reached: host service$' "$(echo "$out" | sed -n 1p)" "reaches the site address on a port of [site] job_ports"
like '^10.213.0.1 port other refused' "$(echo "$out" | sed -n 2p)" "but not another service of the host bound to 0.0.0.0"
like 'port other refused' "$(echo "$out" | sed -n 3p)" "nor that service at the host's end of its pair"
iptables -w -S JUMBO-JOBS > "$T/fw" 2>&1
like "-A JUMBO-JOBS -d 10.213.0.1/32 -p tcp -m multiport --dports $allowed -j ACCEPT" "$(cat "$T/fw")" "(the host's firewall: chain JUMBO-JOBS)"

# --- a job's output where a transfer is receiving the same path: the job does
#     not write into the transfer's partial file, nor remove it ---
mkdir -p "$T/alpha/root/shared"
part=$T/alpha/root/shared/.o.txt.jumbo-part
printf 'a transfer is writing this\n' > "$part"
# the lock a receiving session holds on its partial file (F_OFD_SETLK)
python3 -c 'import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0) + bytes(4))
open(sys.argv[2], "w").close()
time.sleep(120)' "$part" "$T/locked" &
holder=$!
for _ in $(seq 1 50); do [ -e "$T/locked" ] && break; sleep 0.1; done
outjob='{"image": "jumbo/minimal", "output": "shared", "args": ["sh", "-c", "echo from the job > /work/out/o.txt"]}'
id=$(post "$outjob" | jsonget /dev/stdin id)
wait_end "$id" > /dev/null
rec=$(curl -s -H "Authorization: Bearer $tok" "http://$API/api/v1/jobs/$id")
is "$(echo "$rec" | jsonget /dev/stdin state)" failed "a job whose output path a transfer holds fails"
like "busy: a transfer is receiving shared/o.txt" "$(echo "$rec" | jsonget /dev/stdin reason)" "saying the path is busy"
is "$(cat "$part")" "a transfer is writing this" "the transfer's partial file is untouched"
ok "$([ ! -e "$T/alpha/root/shared/o.txt" ]; echo $?)" "and nothing is under the final name"
kill $holder; wait $holder 2>/dev/null
id=$(post "$outjob" | jsonget /dev/stdin id)
wait_end "$id" > /dev/null
is "$(curl -s -H "Authorization: Bearer $tok" "http://$API/api/v1/jobs/$id" | jsonget /dev/stdin state)" completed \
	"once nobody holds it, the same job completes"
is "$(cat "$T/alpha/root/shared/o.txt")" "from the job" "its output under the name"
ok "$([ ! -e "$part" ]; echo $?)" "and the stale partial file is gone"

# --- a notebook workspace from before: its files shifted to the jobs' ids ---
mkdir -p "$T/alpha/state/workspaces/alice/sub" && echo old > "$T/alpha/state/workspaces/alice/sub/nb.ipynb"
chown -R 1000:100 "$T/alpha/state/workspaces/alice"
admin=$(cat "$T/alpha/state/api.token")
curl -s -o /dev/null -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
	--data '{"image":"any/image","backend":"quick","notebook":{"user":"alice"}}' "http://$API/api/v1/jobs"
is "$(stat -c %u:%g "$T/alpha/state/workspaces/alice/sub/nb.ipynb")" 525288:524388 \
	"an old notebook workspace (uid 1000) is given to the jobs' jovyan (uid 525288, gid 524388)"

# --- configuration ---
cp "$T/alpha/jumbo.conf" "$T/bad.conf"; sed -i 's|^state = .*|&\nsubuid = 1000:10|' "$T/bad.conf"
out=$("$JUMBOD" --config "$T/bad.conf" --check 2>&1); is $? 1 "--check refuses a subuid range under 65536 ids"
like 'bad.conf:[0-9]+: subuid wants START:COUNT' "$out" "naming file and line"
kill "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2>/dev/null
sed -i 's|^state = .*|&\nsubuid = off|' "$T/alpha/jumbo.conf"
site_start alpha || exit 1
API=127.0.0.1:$(jsonget "$T/alpha/ready" api)
id=$(post "$body" | jsonget /dev/stdin id)
like '^uid_map 0 0 4294967295$' "$(wait_end "$id" | grep uid_map)" "subuid = off: the job's root is the host's (as documented, for hosts without id-mapped mounts)"
kill "$(cat "$T/alpha/pid")"; wait "$(cat "$T/alpha/pid")" 2>/dev/null
sed -i '/^subuid = off/d' "$T/alpha/jumbo.conf"
chmod 700 "$T"
site_start alpha || exit 1
like "jobs: their root \(host uid 524288, \[site\] subuid\) cannot pass through $T \(mode 0700\)" "$(cat "$T/alpha/log")" \
	"a STATE the jobs' root cannot reach: jumbod says which directory, and how to fix it"
chmod 711 "$T"

stop_jobs
done_testing
