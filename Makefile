# Thin wrapper over CMake. `make run` and `make check` are the two commands of README.md.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

PREFIX ?= /usr/local

.PHONY: all bootstrap build install check check-normal check-asan check-mcu check-fuzz run bench fuzz fuzz-merge mutate clean format

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@# Production binaries: no test failpoints, even in a directory `make check` configured.
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOAT_FAILPOINTS=OFF -DMOAT_MCU=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# make install [PREFIX=/usr/local] [DESTDIR=...]: packaging/CMakeLists.txt says what goes where.
install: build
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix $(PREFIX)

check: bootstrap
	@scripts/check

check-normal: bootstrap
	@scripts/check normal

check-asan: bootstrap
	@scripts/check asan

# moat-device on the MCU targets alone (tests/mcu under QEMU; part of make check too).
check-mcu: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOAT_FAILPOINTS=ON -DMOAT_MCU=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@ctest --test-dir $(BUILD) -L mcu --output-on-failure -j 2

# The demo's build is quiet: its log is shown only when it fails.
run: bootstrap
	@mkdir -p $(BUILD)
	@echo "make run: building moat (log: $(BUILD)/make-run.log)"
	@{ cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOAT_FAILPOINTS=OFF -DMOAT_MCU=OFF && \
	   cmake --build $(BUILD) -j $(JOBS); } >$(BUILD)/make-run.log 2>&1 || { \
	  tail -n 40 $(BUILD)/make-run.log; \
	  echo "make run: the build failed (above: the end of $(BUILD)/make-run.log)" >&2; exit 1; }
	@MOAT_BUILD=$(abspath $(BUILD)) scripts/demo

bench: build
	@scripts/bench

fuzz: bootstrap
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DMOAT_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
	  n=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; \
	done

# Keeps what `make fuzz` found that adds coverage (tests/fuzz/README.md): libFuzzer's -merge=1
# of $(FUZZ_BUILD)/corpus/<target> into the committed tests/fuzz/corpus/<target>, whose files
# all stay; only inputs of at most 64 KiB.
fuzz-merge:
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
	  n=$$(basename $$f); [ -d $(FUZZ_BUILD)/corpus/$$n ] || continue; \
	  $$f -merge=1 -max_len=65536 tests/fuzz/corpus/$$n $(FUZZ_BUILD)/corpus/$$n \
	    >$(FUZZ_BUILD)/merge-$$n.log 2>&1 || { tail -5 $(FUZZ_BUILD)/merge-$$n.log; exit 1; }; \
	  echo "$$n: $$(ls tests/fuzz/corpus/$$n | wc -l) files"; \
	done

# Mutation testing of the security rules (scripts/mutate): slow, not part of `make check`.
mutate: bootstrap
	@scripts/mutate $(MUTANTS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-mutate
