# The README's two commands: `make run` and `make test`. Everything else is a helper.
BUILD ?= build
TYPE ?= RelWithDebInfo
CTEST_ARGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test test-quick bench clean

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

clean:
	rm -rf $(BUILD)
