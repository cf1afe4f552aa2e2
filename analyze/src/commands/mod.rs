//! Subcommands that are a query over the engine plus a rendering.

pub mod diff;
pub mod export;
pub mod replay;
mod rows;
pub mod sql;
