//! Loss windows: the `lost` rows of a capture, records the kernel could not deliver.

use std::io::{self, Write};

use mmap_format::event::Event;
use serde::Serialize;

use crate::{
    labels,
    table::{Column, Table},
};

/// Records that the kernel could not deliver on one CPU between two times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LossWindow {
    pub cpu: u32,
    pub from: String,
    pub to: String,
    pub count: u64,
    #[serde(skip)]
    pub from_ns: i64,
}

impl LossWindow {
    pub fn from_event(event: &Event<'_>) -> Self {
        Self {
            cpu: event.cpu,
            from: labels::rfc3339_ns(event.ts_ns),
            to: labels::rfc3339_ns(event.ts_exit_ns.unwrap_or(event.ts_ns)),
            count: event.lost_count.unwrap_or(0),
            from_ns: event.ts_ns,
        }
    }
}

/// Sorts windows by start time, then CPU.
pub fn sort(windows: &mut [LossWindow]) {
    windows.sort_by_key(|w| (w.from_ns, w.cpu));
}

/// The total of the windows' counts.
pub fn total(windows: &[LossWindow]) -> u64 {
    windows.iter().map(|w| w.count).fold(0, u64::saturating_add)
}

/// How many records the windows lost, in words: `1 record`, `1,234 records`.
pub fn records_in_words(windows: &[LossWindow]) -> String {
    let lost = total(windows);
    format!("{} record{}", labels::thousands(lost), labels::plural(lost))
}

/// How many windows there are, in words: `1 loss window`, `3 loss windows`.
pub fn windows_in_words(windows: &[LossWindow]) -> String {
    format!(
        "{} loss window{}",
        windows.len(),
        labels::plural(windows.len() as u64)
    )
}

/// The loss windows as a table, indented.
pub fn write_loss_windows(out: &mut impl Write, windows: &[LossWindow]) -> io::Result<()> {
    let mut table = Table::new(&[
        Column::right("CPU"),
        Column::left("FROM"),
        Column::left("TO"),
        Column::right("LOST"),
    ]);
    for w in windows {
        table.push(vec![
            w.cpu.to_string(),
            w.from.clone(),
            w.to.clone(),
            labels::thousands(w.count),
        ]);
    }
    table.write(out, "  ")
}
