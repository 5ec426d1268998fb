#!/bin/bash
# The WAN testbed in short: two sites around a router that delays (30 ms
# round trip) and drops (0.01 %) what it forwards, jumbo between them.  Keeps
# tests/bench/wan/testbed and delayline working; the full benchmark is
# `make bench-wan`.
. "$(dirname "$0")/lib.sh"
use_testbed jbt
"$TB" up --rtt 30 --loss 0.0001 > "$T/up.log" 2>&1
ok $? "testbed up: 30 ms round trip, 0.01 % loss"
A=$("$TB" addr a) B=$("$TB" addr b)
# the delay the emulator adds is the floor of the round trips: a busy
# (shared, 2-CPU) machine only adds to some of them
rtts=$("$TB" exec a ping -q -c 5 -i 0.2 "$B" | sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/.*|\1 \2|p')
min=${rtts% *}
ok "$(/usr/bin/python3 -c "import sys; sys.exit(0 if abs(${min:-0} - 30) <= 1 else 1)"; echo $?)" \
	"ping round trip ${min:-?} ms (least of 5; mean ${rtts#* }) is within 1 ms of 30 ms"

# site beta runs in namespace b; the client (alpha) in namespace a
site_new alpha; site_new beta
sed -i "s/^listen = .*/listen = $B:4410/" "$T/beta/jumbo.conf"
trust beta alpha
"$TB" exec b "$JUMBOD" --config "$T/beta/jumbo.conf" --ready-file "$T/beta/ready" >> "$T/beta/log" 2>&1 &
_pids+=($!)
for _ in $(seq 100); do [ -f "$T/beta/ready" ] && break; sleep 0.05; done
ok "$([ -f "$T/beta/ready" ]; echo $?)" "jumbod starts in site b"
printf '\n[peer beta]\nfingerprint = %s\naddress = %s:4410\n' "$(cat "$T/beta/fp")" "$B" >> "$T/alpha/jumbo.conf"
jba() { "$TB" exec a "$JUMBO" --config "$T/alpha/jumbo.conf" "$@"; }

head -c 128M /dev/urandom > "$T/f.bin"
jba send -P 4 --json "$T/f.bin" beta:/in/ > "$T/send.json"
ok $? "send 128 MiB across the emulated WAN"
is "$(sha "$T/beta/root/in/f.bin")" "$(sha "$T/f.bin")" "it arrives bit-identical"
diag "128 MiB at 30 ms, 0.01 % loss: $(jsonget "$T/send.json" gbps) Gbit/s"

mkdir -p "$T/small"
for i in $(seq 1000); do head -c 65536 /dev/urandom > "$T/small/f$i"; done
jba send -r -P 4 --json "$T/small" beta:/trees/ > "$T/tree.json"
ok $? "send 1,000 files of 64 KiB across it"
is "$( (cd "$T/beta/root/trees/small" && sha256sum f* | sort) | sha256sum)" "$( (cd "$T/small" && sha256sum f* | sort) | sha256sum)" \
	"all of them bit-identical"
diag "1,000 x 64 KiB: $(jsonget "$T/tree.json" seconds) s"

jba get -P 2 --json beta:/in/f.bin "$T/back.bin" > "$T/get.json"
ok $? "get it back"
is "$(sha "$T/back.bin")" "$(sha "$T/f.bin")" "bit-identical both ways"

# an untuned sending host (tcp_wmem's kernel default ceiling, 4 MiB: 4 MiB
# per 30 ms is 1.1 Gbit/s a stream): jumbo run as root lifts its send buffers
wmem=$("$TB" exec a cat /proc/sys/net/ipv4/tcp_wmem)
"$TB" exec a sysctl -qw net.ipv4.tcp_wmem="4096 16384 4194304"
head -c 16M /dev/urandom > "$T/u.bin"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$TB" exec a strace -f -qq -e trace=setsockopt -o "$T/strace" \
	"$JUMBO" --config "$T/alpha/jumbo.conf" send -P 2 -q "$T/u.bin" beta:/untuned/
ok $? "send from an untuned host"
is "$(grep -c 'SO_SNDBUFFORCE, \[67108864\]' "$T/strace")" 2 "both streams' send buffers lifted to 64 MiB"
"$TB" exec a sysctl -qw net.ipv4.tcp_wmem="$wmem"
is "$(sha "$T/beta/root/untuned/u.bin")" "$(sha "$T/u.bin")" "bit-identical"

stats=$(kill -USR1 "$(cat "/run/jumbo-wan-$JBW_PREFIX/delayline.pid")"; sleep 0.2; tail -n 1 "/run/jumbo-wan-$JBW_PREFIX/delayline.log")
like '"packets": [1-9]' "$stats" "every packet went through the delay line"
diag "delay line: $stats"

"$TB" down
ok "$(ip netns list | grep -c "^$JBW_PREFIX-" | grep -qx 0; echo $?)" "testbed down removes its namespaces"

# the benchmark itself, in short: one scenario (1,000 files of 64 KiB at
# 150 ms), jumbo only, one repetition; the table and the JSON it writes
out=$("$(dirname "$TB")/run" --quick --size 1M --scenarios small --tools jumbo-8 --out "$T/wan.json" 2>&1)
ok $? "the WAN benchmark runs (make bench-wan, in short)"
like 'small +[0-9]+\.[0-9]+ \([0-9.]+-[0-9.]+\)' "$out" "and prints the table: median (min-max) Gbit/s"
ok "$(/usr/bin/python3 -c "import json, sys; r = json.load(open(sys.argv[1]))['scenarios']['small']['jumbo-8']
sys.exit(0 if r['status'] == ['ok'] and r['median'] > 0 else 1)" "$T/wan.json"; echo $?)" \
	"and writes it as JSON: jumbo moved the files, rated above zero"
ok "$(ip netns list | grep -c "^$JBW_PREFIX-" | grep -qx 0; echo $?)" "and takes its testbed down"
done_testing
