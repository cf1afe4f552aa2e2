//! Integration tests of `mmap-analyze`, in one test binary: each module runs the real binary over
//! captures written with the format library (`common`).

mod cli;
mod common;
mod diff;
mod events;
mod export;
mod inputs;
mod maps;
mod recover;
mod replay_cmd;
mod sql;
mod summary;
