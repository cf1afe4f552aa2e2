# mmap-capture: `make demo` and `make test` set up everything they need on a fresh machine
# (nightly rust-src, bpf-linker built against nightly's LLVM, a Python venv for the
# interoperability tests) and cache it under $(CACHE), so a second run costs nothing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CACHE ?= $(HOME)/.cache/mmap-capture
VENV := $(CACHE)/venv
BPF_LINKER_VERSION := 0.13.0
export PATH := $(HOME)/.cargo/bin:$(PATH)
export MMAP_CAPTURE_PYTHON := $(VENV)/bin/python
# Root for the recorder: nothing when already root, sudo otherwise.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEMO_OUT ?= target/demo/demo.parquet

.PHONY: all bootstrap venv spark test-spark tools peers chromium build release demo test bench bench-analyze link-order soak fuzz fuzz-tools fuzz-seeds fmt lint clean

all: build

## bootstrap: nightly rust-src and bpf-linker (idempotent; ~1 minute the first time).
bootstrap:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@for c in rustfmt clippy; do \
	  rustup component list --installed --toolchain nightly | grep -q "^$$c" || \
	    rustup component add $$c --toolchain nightly; \
	done
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@sysroot=$$(rustc +nightly --print sysroot); \
	if [ ! -d "$$sysroot/lib/rustlib/src/rust/library" ]; then \
	  echo "bootstrap: adding rust-src to nightly"; rustup component add rust-src --toolchain nightly; \
	fi
	@sysroot=$$(rustc +nightly --print sysroot); \
	llvm=$$(cd "$$sysroot/lib" && ls libLLVM.so.* 2>/dev/null | head -n1); \
	if [ -z "$$llvm" ]; then echo "bootstrap: nightly has no libLLVM.so in $$sysroot/lib" >&2; exit 1; fi; \
	stamp="$(CACHE)/bpf-linker.stamp"; want="bpf-linker $(BPF_LINKER_VERSION) $$llvm"; \
	if [ -f "$$stamp" ] && [ "$$(cat $$stamp)" = "$$want" ] && bpf-linker --version >/dev/null 2>&1; then \
	  exit 0; \
	fi; \
	echo "bootstrap: building bpf-linker $(BPF_LINKER_VERSION) against $$llvm (about a minute)"; \
	prefix="$(CACHE)/llvm"; mkdir -p "$$prefix/lib"; \
	ln -sf "$$sysroot/lib/$$llvm" "$$prefix/lib/libLLVM.so"; ln -sf "$$sysroot/lib/$$llvm" "$$prefix/lib/"; \
	LLVM_PREFIX="$$prefix" cargo install bpf-linker@$(BPF_LINKER_VERSION) --locked --force \
	  --no-default-features --features llvm-22; \
	mkdir -p "$(CACHE)"; echo "$$want" > "$$stamp"

## venv: pyarrow and duckdb for the interoperability tests, moto's S3 server for the s3:// tests,
## DuckDB's command line tool for bench-analyze. (The stamp's name changes when the list does, so
## an existing venv gets what was added.)
venv: $(VENV)/.ok-duckdb-cli
$(VENV)/.ok-duckdb-cli:
	python3 -m venv "$(VENV)"
	"$(VENV)/bin/pip" install --quiet --disable-pip-version-check pyarrow duckdb duckdb-cli polars 'moto[server]'
	touch "$@"

## spark: Java 17 (Debian openjdk-17-jre-headless, when no java is there) and PySpark in a venv of
## its own, for the test that Spark reads captures through docs/spark/ (docs/FLEET.md). About 460 MB
## downloaded and 1.5 minutes the first time; nothing after.
SPARK_VENV := $(CACHE)/spark
PYSPARK_VERSION := 4.3.0
export MMAP_CAPTURE_SPARK_PYTHON := $(SPARK_VENV)/bin/python
spark: $(SPARK_VENV)/.ok-$(PYSPARK_VERSION)
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	    echo "spark: installing Java 17 (Debian package openjdk-17-jre-headless)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless >/dev/null; }; \
	  else echo "spark: java is missing (install openjdk-17-jre-headless); the Spark test will fail" >&2; fi; }
$(SPARK_VENV)/.ok-$(PYSPARK_VERSION):
	rm -rf "$(SPARK_VENV)"
	python3 -m venv "$(SPARK_VENV)"
	"$(SPARK_VENV)/bin/pip" install --quiet --disable-pip-version-check pyspark==$(PYSPARK_VERSION)
	touch "$@"

## test-spark: only the Spark test (as root: it records a capture first), with DuckDB and Polars.
test-spark: spark venv
	cargo build --workspace --exclude recorder-ebpf --bins --tests --examples
	cargo test -p mmap-capture-tests --test end_to_end spark -- --include-ignored

build: bootstrap
	cargo build

release: bootstrap
	cargo build --release

## demo: record a few seconds of the bundled workload, then summarise the capture.
demo: release
	@mkdir -p "$(dir $(DEMO_OUT))"
	$(SUDO) target/release/mmap-recorder record --force -o "$(DEMO_OUT)" -- \
	  target/release/mmap-workload --duration 3s
	target/release/mmap-analyze summary "$(DEMO_OUT)"

## tools: perf, for the test that other tracers keep working while we record.
tools:
	@command -v perf >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	    echo "tools: installing perf (Debian package linux-perf)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null; }; \
	  else echo "tools: perf is missing (install linux-perf); the perf coexistence test will fail" >&2; fi; }

## chromium: headless Chromium, for the test that renders `mmap-analyze report` pages and
## checks every chart is drawn (Debian package chromium). Without it that test fails.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -n "$${MMAP_CAPTURE_CHROMIUM:-}" ] || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	    echo "chromium: installing headless Chromium (Debian package chromium)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "chromium: missing (install Debian's chromium, or set MMAP_CAPTURE_CHROMIUM); the report rendering test will fail" >&2; fi; }

## test: the whole suite. Tests that load eBPF are #[ignore = "needs root"]: as root (CI) they
## run with --include-ignored and fail on any load or attach error; without root they are listed
## as ignored, never as passed.
INCLUDE_IGNORED := $(shell [ "$$(id -u)" -eq 0 ] && echo --include-ignored)
test: bootstrap venv spark tools chromium
	@# The end-to-end tests run the binaries, which cargo test does not build. They are built in
	@# the same invocation as the tests and examples so that dev-dependencies' features (png turns
	@# on flate2's defaults, which parquet also uses) are unified once: built with --bins alone,
	@# cargo test would compile parquet, DataFusion and the eBPF programs a second time (~9 min).
	cargo build --workspace --exclude recorder-ebpf --bins --tests --examples
	@[ -n "$(INCLUDE_IGNORED)" ] || echo "make test: not root: the eBPF tests are ignored (run as root to include them)" >&2
	cargo test --workspace --exclude recorder-ebpf -- $(INCLUDE_IGNORED)

## bench: tracing overhead per mmap+munmap pair, then the analyzer (see docs/PERFORMANCE.md).
## peers: the tracers `make bench` compares with (Debian packages strace and bpftrace; perf
## comes from `tools`), installed when missing and root; a tracer still missing is listed as
## "not installed" in the table.
peers: tools
	@for tool in strace bpftrace; do \
	  command -v $$tool >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	    echo "peers: installing $$tool (Debian package $$tool)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$tool >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$tool >/dev/null; } || \
	      echo "peers: $$tool could not be installed; make bench lists it as not installed" >&2; \
	  else echo "peers: $$tool is missing; make bench lists it as not installed" >&2; fi; \
	done

bench: release peers
	$(SUDO) target/release/mmap-bench --recorder target/release/mmap-recorder --rounds 9 --calls 300000 --also=tracepoint-exit,tp-btf,tp-btf-exit,--no-batches --compare --stacks fp,dwarf --flood 2000000 --compile 96
	$(MAKE) bench-analyze

## bench-analyze: mmap-analyze beside DuckDB on a generated 10-million-row capture (one file and
## its segments) and on a real recording of mmap-workload; the table goes to $(BENCH)/analyze.md.
BENCH := target/bench
BENCH_ROWS ?= 10000000
BENCH_REPS ?= 3
bench-analyze: release venv
	@mkdir -p "$(BENCH)"
	@# Each capture is made again whenever its maker (and so the capture writer) was built after it.
	@[ "$(BENCH)/gen-$(BENCH_ROWS).parquet" -nt target/release/mmap-gen ] || target/release/mmap-gen --rows $(BENCH_ROWS) \
	  --file "$(BENCH)/gen-$(BENCH_ROWS).parquet" --dir "$(BENCH)/gen-$(BENCH_ROWS)"
	@[ "$(BENCH)/real.parquet" -nt target/release/mmap-recorder ] || $(SUDO) target/release/mmap-recorder record --force \
	  -o "$(BENCH)/real.parquet" -- target/release/mmap-workload --duration 5s --family
	@python3 tests/bench/link_order.py --check
	"$(VENV)/bin/python" tests/bench/analyze.py --bin target/release --reps $(BENCH_REPS) \
	  --capture "$(BENCH)/gen-$(BENCH_ROWS).parquet" --capture "$(BENCH)/gen-$(BENCH_ROWS)" \
	  --capture "$(BENCH)/real.parquet" --out "$(BENCH)/analyze.md"

## link-order: write analyze/link-order.txt again (the functions the short commands run, which
## the release build lays out together; see analyze/build.rs) after a toolchain or Cargo.lock
## change. Needs valgrind (apt-get install valgrind).
link-order: release
	@command -v valgrind > /dev/null || { echo "link-order: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
	python3 tests/bench/link_order.py
	$(MAKE) release
	python3 tests/bench/link_order.py --check

## soak: the release recorder for SOAK_SECONDS (10 minutes) at a moderate rate into rotating
## segments: memory flat, nothing lost, every call recorded, every segment reads whole
## (tests/src/bin/mmap-soak.rs; results in docs/RELIABILITY.md).
SOAK_SECONDS ?= 600
soak: release
	$(SUDO) target/release/mmap-soak --recorder target/release/mmap-recorder --seconds $(SOAK_SECONDS)

## fuzz: each cargo-fuzz target (fuzz/) for FUZZ_SECONDS (default 60), one after the other, on
## one core, seeded from fixtures/ (docs/RELIABILITY.md, "Fuzzing"). A crash stops it, with the
## input in fuzz/artifacts/TARGET/.
FUZZ_TARGETS ?= reader journal analyze_input
FUZZ_SECONDS ?= 60
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(CACHE)/cargo-fuzz/bin/cargo-fuzz
# One libFuzzer process per target, in the foreground (a single job: the machines have 2 cores).
FUZZ_FLAGS := -rss_limit_mb=2048 -timeout=20 -print_final_stats=1
# The query engine is built only for analyze_input (`make fuzz FUZZ_TARGETS="reader journal"`
# builds in minutes).
FUZZ_FEATURES := $(if $(filter analyze_input,$(FUZZ_TARGETS)),--features analyze)
fuzz: fuzz-tools fuzz-seeds
	cd fuzz && PATH="$(dir $(CARGO_FUZZ)):$$PATH" cargo +nightly fuzz build --sanitizer none $(FUZZ_FEATURES)
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && PATH="$(dir $(CARGO_FUZZ)):$$PATH" MMAP_FUZZ_SEED_DIR=corpus/$$t \
	    cargo +nightly fuzz run --sanitizer none $(FUZZ_FEATURES) $$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS)) || exit 1; \
	done

## fuzz-tools: nightly and cargo-fuzz $(CARGO_FUZZ_VERSION), built once into $(CACHE)/cargo-fuzz.
fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@if [ ! -x "$(CARGO_FUZZ)" ] || ! "$(CARGO_FUZZ)" --version | grep -q " $(CARGO_FUZZ_VERSION)$$"; then \
	  echo "fuzz-tools: building cargo-fuzz $(CARGO_FUZZ_VERSION) into $(CACHE)/cargo-fuzz"; \
	  cargo install cargo-fuzz@$(CARGO_FUZZ_VERSION) --locked --force --root "$(CACHE)/cargo-fuzz"; \
	fi

## fuzz-seeds: the committed captures as seeds of the capture targets (the journal target writes
## its own seed, a crashed writer's journal, when it starts), and the bad-input corpus.
fuzz-seeds:
	@for t in reader analyze_input; do \
	  mkdir -p fuzz/corpus/$$t; \
	  cp fixtures/v1/*.parquet fuzz/corpus/$$t/; \
	  find analyze/tests/corpus -maxdepth 1 -type f -size -1024k ! -name '*.md' \
	    -exec cp {} fuzz/corpus/$$t/ \; ; \
	done
	@mkdir -p fuzz/corpus/journal

fmt:
	cargo +nightly fmt --all

## lint: rustfmt, and clippy with -D warnings on every crate: user space for the host, the eBPF
## programs for the BPF target (as aya-template's CI does). Workspace lints in Cargo.toml.
lint: bootstrap
	cargo +nightly fmt --all -- --check
	cargo clippy --workspace --exclude recorder-ebpf --all-targets -- -D warnings
	cargo +nightly clippy -p recorder-ebpf --target bpfel-unknown-none -Z build-std=core -- -D warnings

clean:
	cargo clean
