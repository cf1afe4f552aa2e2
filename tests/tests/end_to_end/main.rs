//! End-to-end tests across the mmap-capture binaries, in one test binary (one build, one link).
//!
//! Tests that load eBPF are `#[ignore = "needs root"]`: `make test` runs them as root with
//! `--include-ignored`; a run without root lists them as ignored instead of passing them.
mod chain;
mod derive;
mod edges;
mod faults;
mod findings;
mod fixtures;
/// The places a value can survive in a capture file, shared with the analyzer's own tests.
#[path = "../../../analyze/tests/analyze/leaks.rs"]
mod leaks;
mod partition;
mod record_mmap;
mod recorder;
mod rerun;
mod run_as;
mod snapshot;
mod spark;
mod stacks;
mod storms;
mod syscalls;
