//! Subcommands that are a query over the engine plus a rendering.

pub mod findings;
pub mod report;
pub mod sql;
