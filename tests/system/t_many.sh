#!/bin/bash
# Many small files: 10,000 files of 64 KiB cross a link with a 20 ms round
# trip (a relay that delays every byte, delay_proxy.py).  Files are
# pipelined, several in flight on each stream, so the transfer must take far
# less than one round trip per file (10,000 x 20 ms = 200 s).
. "$(dirname "$0")/lib.sh"

rtt_ms=20
two_sites
# alpha reaches beta through a relay that holds every byte 10 ms each way
# (this kernel has no sch_netem to delay loopback itself).
/usr/bin/python3 "$(dirname "$0")/delay_proxy.py" 0 "127.0.0.1:$(site_port beta)" $((rtt_ms / 2)) "$T/relay.port" \
	> "$T/relay.log" 2>&1 &
_pids+=($!)
for _ in $(seq 100); do [ -f "$T/relay.port" ] && break; sleep 0.05; done
sed -i "s/^address = .*/address = 127.0.0.1:$(cat "$T/relay.port")/" "$T/alpha/jumbo.conf"
jbn() { jb "$@"; }
t0=$(date +%s%N)
jb ls beta:/ > /dev/null
ok $? "jumbo ls through the relay"
diag "jumbo ls through the relay took $(( ($(date +%s%N) - t0) / 1000000 )) ms (TLS set-up and one request: a few round trips)"

/usr/bin/python3 - "$T/many" <<'EOP'
import os, sys
root = sys.argv[1]
for i in range(10000):
    d = os.path.join(root, 'd%02d' % (i // 500))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f%05d' % i), 'wb') as f:
        f.write(os.urandom(65536))
EOP
treesum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }

start=$(date +%s.%N)
jbn send -r -P 4 --json "$T/many" beta:/many/ > "$T/many.json"
ok $? "send -r 10,000 files of 64 KiB over a ${rtt_ms} ms round trip exits 0"
secs=$(/usr/bin/python3 -c "import sys; print('%.1f' % ($(date +%s.%N) - $start))")
is "$(find "$T/beta/root/many/many" -type f | wc -l)" 10000 "10,000 files arrived"
is "$(treesum "$T/beta/root/many/many")" "$(treesum "$T/many")" "every file bit-identical (sha256)"
is "$(jsonget "$T/many.json" files_verified)" "$(jsonget "$T/many.json" files)" "every entry verified"
serial=$((10000 * rtt_ms / 1000))
diag "10,000 files in ${secs} s; one round trip per file would take at least ${serial} s"
ok "$(/usr/bin/python3 -c "import sys; sys.exit(0 if $secs < $serial / 10 else 1)"; echo $?)" \
	"pipelined: under a tenth of one round trip per file (${secs} s < $((serial / 10)) s)"

done_testing
