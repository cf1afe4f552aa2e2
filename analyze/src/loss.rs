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

/// The most windows listed one by one. A recorder writes a few windows per second of overload;
/// a crafted capture can hold millions of `lost` rows, and the list would then be as big as the
/// file claims. Past this, windows are counted and their records summed, not listed.
pub const LISTED: usize = 1_000;

/// Loss windows: the earliest [`LISTED`] of them (by start time, then CPU), and the count and
/// records of all of them. Memory is bounded by [`LISTED`] whatever the capture holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LossWindows {
    /// The earliest windows, by start time then CPU.
    pub loss_windows: Vec<LossWindow>,
    /// Every window, listed or not.
    pub loss_window_count: u64,
    /// The records lost in every window.
    pub lost_in_windows: u64,
}

impl LossWindows {
    pub fn push(&mut self, window: LossWindow) {
        self.loss_window_count += 1;
        self.lost_in_windows = self.lost_in_windows.saturating_add(window.count);
        self.loss_windows.push(window);
        if self.loss_windows.len() >= 2 * LISTED {
            self.keep_earliest();
        }
    }

    /// Sorts the listed windows and keeps the earliest [`LISTED`]; call it once all are pushed.
    pub fn finish(mut self) -> Self {
        self.keep_earliest();
        self
    }

    fn keep_earliest(&mut self) {
        self.loss_windows.sort_by_key(|w| (w.from_ns, w.cpu));
        self.loss_windows.truncate(LISTED);
    }

    pub fn is_empty(&self) -> bool {
        self.loss_window_count == 0
    }

    /// How many records the windows lost, in words: `1 record`, `1,234 records`.
    pub fn records_in_words(&self) -> String {
        let lost = self.lost_in_windows;
        format!("{} record{}", labels::thousands(lost), labels::plural(lost))
    }

    /// How many windows there are, in words: `1 loss window`, `3 loss windows`.
    pub fn windows_in_words(&self) -> String {
        format!(
            "{} loss window{}",
            labels::thousands(self.loss_window_count),
            labels::plural(self.loss_window_count)
        )
    }

    /// The listed windows as a table, indented, with a line for those not listed.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        write_loss_windows(out, &self.loss_windows)?;
        let unlisted = self.loss_window_count - self.loss_windows.len() as u64;
        if unlisted > 0 {
            writeln!(
                out,
                "  ... and {} later loss window{} (only the first {} are listed)",
                labels::thousands(unlisted),
                labels::plural(unlisted),
                labels::thousands(LISTED as u64)
            )?;
        }
        Ok(())
    }
}

/// The loss windows as a table, indented.
fn write_loss_windows(out: &mut impl Write, windows: &[LossWindow]) -> io::Result<()> {
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
