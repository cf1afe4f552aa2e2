//! Subcommands that are a query over the engine plus a rendering.

pub mod calls;
pub mod errors;
pub mod findings;
pub mod latency;
pub mod report;
pub mod sql;
pub mod top;
