//! Subcommands that are a query over the engine plus a rendering.

pub mod calls;
pub mod diff;
pub mod errors;
pub mod export;
pub mod extract;
pub mod findings;
pub mod info;
pub mod latency;
pub mod pack;
pub mod redact;
pub mod replay;
pub mod report;
pub mod rows;
pub mod sql;
pub mod stacks;
pub mod symbolize;
pub mod top;
pub mod verify;
