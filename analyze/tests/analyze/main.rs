//! Integration tests of `mmap-analyze`, in one test binary: each module runs the real binary over
//! captures written with the format library (`common`).

mod cli;
mod common;
mod events;
mod inputs;
mod maps;
mod recover;
mod sql;
mod summary;
mod where_filters;
