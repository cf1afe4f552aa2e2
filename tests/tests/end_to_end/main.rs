//! End-to-end tests across the mmap-capture binaries, in one test binary (one build, one link).
//!
//! Tests that load eBPF are `#[ignore = "needs root"]`: `make test` runs them as root with
//! `--include-ignored`; a run without root lists them as ignored instead of passing them.
mod chain;
mod edges;
mod faults;
mod findings;
mod fixtures;
mod record_mmap;
mod recorder;
mod run_as;
mod snapshot;
mod storms;
mod syscalls;
