//! The table output of `maps`: `Label  value` lines about the process and the answer, the loss
//! windows, then the regions like /proc/PID/maps.

use std::{
    io::{self, Write},
    time::Duration,
};

use mmap_format::names;

use super::{BaselineKind, Report, State};
use crate::{
    labels,
    replay::Region,
    table::{self, Column, Table},
};

impl Report {
    pub fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        table::write_fields(out, &self.fields())?;
        if self.state != State::Live {
            return Ok(());
        }
        if !self.loss_windows.is_empty() {
            writeln!(out)?;
            writeln!(out, "Loss windows before {}", self.at)?;
            self.loss_windows.write(out)?;
        }
        writeln!(out)?;
        write_regions(out, &self.table_regions, &self.table_stacks)
    }

    /// The lines above the regions.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("Process", self.process_label())];
        if let Some(exec) = &self.exec {
            let path = exec.path.as_deref().unwrap_or("?");
            fields.push(("Program", format!("{path} (exec at {})", exec.time)));
        }
        fields.push(("At", self.at_label()));
        let unknown = || "?".to_owned();
        match self.state {
            State::Exited => fields.push((
                "State",
                format!(
                    "exited at {}{}: no address space at this time",
                    self.exited_at.clone().unwrap_or_else(unknown),
                    self.exit_status
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ),
            )),
            State::NotStarted => fields.push((
                "State",
                format!(
                    "not started yet: the fork that creates it is at {}",
                    self.first_seen.clone().unwrap_or_else(unknown)
                ),
            )),
            State::NotSeen => fields.push((
                "State",
                format!(
                    "not seen yet: the first row of pid {} is at {} (see the notes)",
                    self.pid,
                    self.first_seen.clone().unwrap_or_else(unknown)
                ),
            )),
            State::Live => {
                fields.push(("Baseline", self.baseline_label()));
                fields.push(("Regions", self.regions_label()));
            }
        }
        if matches!(self.state, State::Live | State::NotSeen) {
            let complete = if self.complete {
                "yes"
            } else {
                "no (see the notes)"
            };
            fields.push(("Complete", complete.to_owned()));
        }
        fields.extend(self.notes.iter().map(|note| ("Note", note.clone())));
        fields
    }

    /// `1234 (comm), forked from 1200 at TIME`.
    fn process_label(&self) -> String {
        let mut process = self.pid.to_string();
        if let Some(comm) = &self.comm {
            process.push_str(&format!(" ({comm})"));
        }
        if let Some(fork) = &self.forked_from {
            process.push_str(&format!(", forked from {} at {}", fork.parent, fork.time));
        }
        process
    }

    /// The time, and how long after the capture's first row it is.
    fn at_label(&self) -> String {
        let mut at = self.at.clone();
        if let (Some(first), Some(first_ns)) = (&self.first_row, self.first_row_ns) {
            if self.at_ns >= first_ns {
                let after = Duration::from_nanos(u64::try_from(self.at_ns - first_ns).unwrap_or(0));
                at.push_str(&format!(
                    " (+{} after the first row)",
                    humantime::format_duration(after)
                ));
            } else {
                at.push_str(&format!(" (before the first row, {first})"));
            }
        }
        at
    }

    fn baseline_label(&self) -> String {
        let time = self.baseline.time.as_deref().unwrap_or("?");
        match self.baseline.kind {
            BaselineKind::Snapshot => {
                let of = self.baseline.snapshot_pid.unwrap_or(self.pid);
                let mut text = format!("snapshot of /proc/{of}/maps at {time}");
                if let Some(source) = &self.baseline.source {
                    text.push_str(&format!(" ({source})"));
                }
                text
            }
            BaselineKind::Exec => format!("none: emptied by the exec at {time}"),
            BaselineKind::Unknown => "none: no snapshot".to_owned(),
        }
    }

    /// `12 (merged from 20 pieces), 1.5 MiB`.
    fn regions_label(&self) -> String {
        let size = labels::human_bytes(self.bytes);
        if self.merged && self.pieces != self.regions.len() {
            format!(
                "{} (merged from {} pieces), {size}",
                self.regions.len(),
                self.pieces
            )
        } else {
            format!("{}, {size}", self.regions.len())
        }
    }
}

/// The regions like /proc/PID/maps, with when, by which kind of row and by which thread each got
/// its current state.
/// `stacks`: the lines under each region (`maps --stacks`), or none.
fn write_regions(
    out: &mut impl Write,
    regions: &[Region],
    stacks: &[Vec<String>],
) -> io::Result<()> {
    let mut table = Table::new(&[
        Column::left("ADDRESS"),
        Column::left("PERMS"),
        Column::left("OFFSET"),
        Column::left("DEV"),
        Column::right("INODE"),
        Column::left("SINCE"),
        Column::left("SET BY"),
        Column::right("TID"),
        Column::left("PATH"),
    ]);
    for (i, r) in regions.iter().enumerate() {
        let file = r.file();
        let dev = file.and_then(|f| f.dev).unwrap_or(0);
        let mut path = r.path().unwrap_or_default().to_owned();
        if file.is_some_and(|f| f.deleted) {
            path.push_str(" (deleted)");
        }
        if file.is_some_and(|f| f.lossy) {
            path.push_str(" (name not UTF-8)");
        }
        if file.is_some() && r.path().is_none() {
            path.push_str("(file, name not recorded)");
        }
        let lines = stacks.get(i).cloned().unwrap_or_default();
        table.push_with_lines(
            vec![
                format!("{:08x}-{:08x}", r.start, r.end),
                r.perms(),
                format!("{:08x}", r.off),
                format!(
                    "{:02x}:{:02x}",
                    names::dev_major(dev),
                    names::dev_minor(dev)
                ),
                file.and_then(|f| f.ino).unwrap_or(0).to_string(),
                labels::time_of_day_ns(r.since),
                r.set_by.as_str().to_owned(),
                r.tid.to_string(),
                path,
            ],
            lines,
        );
    }
    table.write(out, "")
}
