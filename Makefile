# A thin layer over Meson: the README's two commands and a few helpers.
BUILD ?= build
ASAN  ?= build-asan
FUZZ  ?= build-fuzz

.PHONY: all deps build demo check check-fast bench-loopback bench-cpu bench-tree bench-bigfile bench-digest bench-expiry bench-wan bench-wan-verify bench-relay bench-images bench-api bench-notebooks fuzz clean

all: build

deps:
	@sh build-aux/deps

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN)/build.ninja:
	meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dtest_hooks=true

# The demo: two sites on loopback, a generated 1 GiB file, throughput and digest,
# then a landing rule's job on it, its output and provenance, the dashboard.
demo: build
	BUILD=$(abspath $(BUILD)) bash tests/demo

# Every test: unit tests, the fuzz corpus and the system tests on the normal
# build, then all of it again built with AddressSanitizer + UBSan.
check: build $(ASAN)/build.ninja
	ninja -C $(ASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		tests/run $(BUILD) $(ASAN)

check-fast: build
	tests/run $(BUILD)

bench-loopback: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/loopback/run

# The WAN testbed and every tool on it (root; installs the peers from Debian)
bench-wan: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/wan/run

# Relays on the WAN testbed: a to b direct (150 ms), through a relay in c
# (75 + 75 ms) and in two stages; loss 0, 1e-5, 1e-4; BBR and CUBIC (root)
bench-relay: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/relay/run

# Check the WAN emulator: RTT, window/RTT, loss, its own CPU
bench-wan-verify: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/wan/verify

# CPU-seconds per GiB of the sender and the receiver (stable under load)
bench-cpu: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/loopback/cpu

# A tree of 1,000,000 files of 1 KiB: jumbo against tar | tar and rsync -a on
# loopback, and against rsync over ssh at 150 ms on the WAN testbed (root)
bench-tree: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/tree/run --wan

# CPU-seconds per GiB of xxh3t and sha256t (the strong digest of relayed files), one core
bench-digest: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/digest/run

# One expiry sweep of jumbod over a data root of 1,000,000 files (tmpfs)
bench-expiry: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/expiry/run

# A 16 GiB file of random bytes disk to disk: time, and the memory of both ends
bench-bigfile: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/loopback/bigfile

# Image pull/push against skopeo+umoci, job start against crun (root)
bench-images: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/images/run

# The REST API under wrk at 1,000 req/s: p50/p90/p99, jumbod's RSS
bench-api: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/api/run

# JupyterHub spawn to ready: jumbo's spawner against LocalProcessSpawner (root)
bench-notebooks: build
	BUILD=$(abspath $(BUILD)) bash tests/bench/notebooks/run

# Grow the wire, OCI and layer corpora with libFuzzer (needs clang): make fuzz SECONDS=300
SECONDS ?= 120
fuzz:
	test -f $(FUZZ)/build.ninja || CC=clang meson setup $(FUZZ) -Dfuzz=true
	ninja -C $(FUZZ) tests/fuzz_wire tests/fuzz_oci tests/fuzz_layer
	set -e; for t in wire oci layer; do mkdir -p $(FUZZ)/corpus-new-$$t; \
	  $(FUZZ)/tests/fuzz_$$t -max_total_time=$(SECONDS) -max_len=4096 $(FUZZ)/corpus-new-$$t tests/fuzz/corpus/$$t; \
	  $(FUZZ)/tests/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t $(FUZZ)/corpus-new-$$t; done

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
