# The README's two commands: `make run` and `make test`. Everything else is a helper.
BUILD ?= build
TYPE ?= RelWithDebInfo
CTEST_ARGS ?=
JOBS ?= $(shell nproc)
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?=

.PHONY: all deps configure build run test test-quick bench fuzz clean

all: build

deps:
	@scripts/deps.sh build

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Boots the demo guest on 2 vCPUs; it prints a tour and powers off (exit status 0). Builds only
# what it needs, so a first `make run` does not wait for the test suite to compile.
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target evmm guests
	$(BUILD)/src/evmm run --kernel $(BUILD)/guests/demo.mb.elf --cpus 2

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600 $(CTEST_ARGS)

# The suite without the long cases (ctest label "long"); CI runs everything through `make test`.
test-quick: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -LE long $(CTEST_ARGS)

bench: build
	@scripts/deps.sh bench
	$(BUILD)/bench/evmm_startup_bench
	$(BUILD)/bench/evmm_exit_bench
	$(BUILD)/bench/evmm_io_event_bench --benchmark_min_time=0.1
	$(BUILD)/bench/evmm_doorbell_bench

# Every libFuzzer target for FUZZ_SECONDS each (or only FUZZ_TARGETS), built with clang, ASan and
# UBSan in their own build dir; exits non-zero on a crash and names the reproducer (fuzz/README.md).
fuzz:
	@scripts/deps.sh fuzz
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DEVMM_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD)
