//! Integration tests of `mmap-analyze`, in one test binary: each module runs the real binary over
//! captures written with the format library (`common`).

mod checksum;
mod cli;
mod common;
mod corpus;
mod derive;
mod diff;
mod errors;
mod events;
mod export;
mod findings;
mod hostile;
mod inputs;
mod integrity;
mod latency;
mod leaks;
mod maps;
mod partitions;
mod progress;
mod recover;
mod replay_cmd;
mod report;
mod rerun;
mod s3;
mod sql;
mod stacks;
mod summary;
mod symbolize;
mod top;
mod where_filters;
