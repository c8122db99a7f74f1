# The README's two commands: `make run` and `make test`. Everything else is a helper.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
TYPE ?= RelWithDebInfo
CTEST_ARGS ?=
JOBS ?= $(shell nproc)
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?=
# What the ASan build compiles: the unit tests and the fuzz corpus replays. The KVM tests (real
# guests through the evmm binary) run in the plain build: with /dev/kvm they boot guests for many
# minutes of emulated CPL0, which CI's budget on 2 cores cannot also spend under ASan.
ASAN_TARGETS = evmm_unit_tests fuzz_replays

.PHONY: all deps configure build run run-xen linux-guest test test-plain test-sanitizers test-asan test-tsan test-quick bench fuzz clean

all: build

deps:
	@scripts/deps.sh build

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Boots the demo guest on 2 vCPUs; it prints a tour and powers off (exit status 0). Builds only
# what it needs, so a first `make run` does not wait for the test suite to compile.
# Its virtio steps use a 1 MiB scratch disk in the build directory (made once; the demo writes sector 1),
# virtio-rng, and virtio-console, whose output shares stdout with the serial port.
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target evmm guests
	@test -f $(BUILD)/demo-disk.img || truncate -s 1M $(BUILD)/demo-disk.img
	$(BUILD)/src/evmm run --kernel $(BUILD)/guests/demo.mb.elf --cpus 2 \
	  --disk path=$(BUILD)/demo-disk.img --rng --console virtio

# The Xen HVM tour: the Xen test guest discovers Xen, then exercises IPIs, loopback, timers,
# masking, polling, blocking and port exhaustion, and shuts down with SHUTDOWN_poweroff.
run-xen: configure
	@cmake --build $(BUILD) -j $(JOBS) --target evmm guests
	$(BUILD)/src/evmm run --xen --cpus 2 --kernel $(BUILD)/guests/xen64.pvh.elf \
	  --cmdline "quiet hello ipi loopback timer mask poll block exhaust rebind"

# The small Linux guest with virtio built in (guests/linux/tiny.config; vmlinux and bzImage) and its
# ext4 root image, into the directories the long tests use. Cached: a second run takes seconds.
linux-guest:
	@scripts/guest_kernel.sh $(BUILD)/guest-kernel
	@scripts/rootfs.sh $(BUILD)/guest-rootfs

# The whole suite in the plain build. The sanitizer suites (test-sanitizers: the same tests under
# ASan and UBSan, then the concurrency tests under TSan) take three builds, over 30 minutes with the
# fuzz runs on a 2-core host, so .ci/run runs them after this rather than `make test` itself.
test: test-plain

test-sanitizers:
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan

test-plain: build
	@scripts/deps.sh test
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -j $(JOBS) $(CTEST_ARGS)

# The unit tests and the fuzz corpus replays under ASan and UBSan (ASAN_TARGETS above). Any report
# aborts the process that made it (testing/sanitizer_options.cpp), so it fails its test. The KVM test
# program is not built here, so ctest's placeholder for its tests is left out too.
test-asan: deps
	@scripts/deps.sh test
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) -DEVMM_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(ASAN_TARGETS)
	cd $(ASAN_BUILD) && ctest --output-on-failure --timeout 1200 -LE "long|kvm" -E "^evmm_kvm_tests_NOT_BUILT$$" -j $(JOBS) $(CTEST_ARGS)

# The tests labelled "concurrency": those in a suite whose name ends in Concurrent (CMakeLists.txt).
# This build compiles only the test files that have such a suite (EVMM_CONCURRENCY_TESTS_ONLY).
test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) -DEVMM_SANITIZE=thread \
	  -DEVMM_CONCURRENCY_TESTS_ONLY=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target evmm_unit_tests evmm_kvm_tests
	cd $(TSAN_BUILD) && ctest --output-on-failure --timeout 1200 -L concurrency $(CTEST_ARGS)

# The plain suite without the long cases (ctest label "long"); CI runs everything through `make test`.
test-quick: build
	@scripts/deps.sh test
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -LE long -j $(JOBS) $(CTEST_ARGS)

bench: build
	@scripts/deps.sh bench
	$(BUILD)/bench/evmm_startup_bench
	$(BUILD)/bench/evmm_exit_bench
	$(BUILD)/bench/evmm_pio_exit_bench
	$(BUILD)/bench/evmm_io_event_bench --benchmark_min_time=0.1
	$(BUILD)/bench/evmm_doorbell_bench
	$(BUILD)/bench/evmm_suspend_bench
	$(BUILD)/bench/evmm_xen_bench
	$(BUILD)/bench/evmm_virtio_net_bench --benchmark_min_time=0.2
	$(BUILD)/bench/evmm_blk_engine_bench --benchmark_min_time=0.1
	$(BUILD)/bench/evmm_address_space_bench --benchmark_min_time=0.2
	$(BUILD)/bench/evmm_vhost_user_blk_bench
	$(BUILD)/bench/evmm_blk_bench
	$(BUILD)/bench/evmm_linux_boot_bench

# Every libFuzzer target for FUZZ_SECONDS each (or only FUZZ_TARGETS), built with clang, ASan and
# UBSan in their own build dir; exits non-zero on a crash and names the reproducer (fuzz/README.md).
fuzz:
	@scripts/deps.sh fuzz
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DEVMM_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
