//! The table output of `summary`: an overview of `Label  value  what it counts` lines, then one
//! section after another.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use super::{COUNTS, CommSummary, Count, ProcessSummary, Summary};
use crate::{
    labels::{self, thousands},
    table::{self, Column, Table},
};

impl Summary {
    /// The table output: an overview, then one section after another.
    pub(super) fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        table::write_fields(out, &self.overview())?;
        self.write_files(out)?;
        self.write_completeness(out)?;

        section(out, "By kind")?;
        write_counts(out, ["KIND", "ROWS"], &self.by_kind)?;

        section(out, "By system call")?;
        write_counts(out, ["SYSCALL", "CALLS"], &self.by_syscall)?;

        self.write_processes(out)?;
        self.write_comms(out)?;

        section(
            out,
            &format!("Failures by errno ({})", thousands(self.failed)),
        )?;
        if self.errors.is_empty() {
            writeln!(out, "  none")
        } else {
            write_counts(out, ["ERRNO", "CALLS"], &self.errors)
        }
    }

    /// The lines before the first section: hosts and times, then each of [`COUNTS`].
    fn overview(&self) -> Vec<(&'static str, String)> {
        let plural = |n: usize, one, many| if n > 1 { many } else { one };
        let mut fields = vec![
            (
                plural(self.hosts.len(), "Host", "Hosts"),
                join_or_dash(&self.hosts),
            ),
            (
                plural(self.kernels.len(), "Kernel", "Kernels"),
                join_or_dash(&self.kernels),
            ),
            ("Capture", span(&self.capture_start, &self.capture_end)),
            ("Row times", span(&self.first_ts, &self.last_ts)),
        ];
        fields.extend(
            COUNTS
                .iter()
                .map(|count| (count.label, self.count_value(count))),
        );
        fields
    }

    /// `VALUE what it counts`; bytes also in binary units.
    fn count_value(&self, count: &Count) -> String {
        let value = (count.value)(self);
        if count.bytes {
            format!(
                "{} ({}) {}",
                thousands(value),
                labels::human_bytes(value),
                count.unit
            )
        } else {
            format!("{} {}", thousands(value), count.unit)
        }
    }

    fn write_files(&self, out: &mut impl Write) -> io::Result<()> {
        section(out, &format!("Files ({})", self.files.len()))?;
        let mut files = Table::new(&[
            Column::left("PATH"),
            Column::right("SEGMENT"),
            Column::left("HOST"),
            Column::left("FORMAT"),
            Column::left("RECORDER"),
            Column::left("START"),
            Column::left("END"),
            Column::right("ROWS"),
            Column::right("LOST"),
        ]);
        for f in &self.files {
            files.push(vec![
                f.path.clone(),
                f.segment_index
                    .map_or_else(|| "-".to_owned(), |index| index.to_string()),
                f.hostname.clone(),
                if f.recovered {
                    format!("{} (recovered)", f.format_version)
                } else {
                    f.format_version.clone()
                },
                f.recorder_version.clone(),
                f.capture_start.clone(),
                f.capture_end.clone(),
                thousands(f.rows),
                thousands(f.lost),
            ]);
        }
        files.write(out, "  ")
    }

    fn write_completeness(&self, out: &mut impl Write) -> io::Result<()> {
        section(out, "Completeness")?;
        if self.complete {
            return writeln!(out, "  complete: no records lost, no segment missing");
        }
        let unfollowed = self.counters.follow_map_full;
        if unfollowed > 0 {
            writeln!(
                out,
                "  {} new process{} not followed (the recorder's map of followed processes was \
                 full): their calls are missing",
                thousands(unfollowed),
                if unfollowed == 1 { " was" } else { "es were" },
            )?;
        }
        for gap in &self.missing_segments {
            writeln!(out, "  {}", gap.sentence())?;
        }
        if !self.loss_windows.is_empty() {
            writeln!(
                out,
                "  {} lost in {} (changes in them are missing):",
                self.loss_windows.records_in_words(),
                self.loss_windows.windows_in_words(),
            )?;
            self.loss_windows.write(out)?;
            let untimed = self
                .counters
                .entry_map_full
                .saturating_add(self.counters.decode_errors);
            if untimed > 0 {
                writeln!(
                    out,
                    "  and {} record{} lost outside them (no room for a call in flight, decode \
                     errors; the capture does not say when)",
                    thousands(untimed),
                    labels::plural(untimed),
                )?;
            }
        } else if self.lost > 0 {
            writeln!(
                out,
                "  {} record{} lost (counted by the recorder; the capture does not say when)",
                thousands(self.lost),
                labels::plural(self.lost),
            )?;
        }
        Ok(())
    }

    fn write_processes(&self, out: &mut impl Write) -> io::Result<()> {
        section(
            out,
            &top_title("Processes by calls", self.by_process.len(), self.processes),
        )?;
        write_processes(out, &self.by_process)?;
        section(
            out,
            &top_title(
                "Processes by bytes mapped",
                self.by_process_bytes.len(),
                self.processes_that_mapped,
            ),
        )?;
        if self.by_process_bytes.is_empty() {
            writeln!(out, "  none mapped any")
        } else {
            write_processes(out, &self.by_process_bytes)
        }
    }

    fn write_comms(&self, out: &mut impl Write) -> io::Result<()> {
        section(
            out,
            &top_title("By command name (comm)", self.by_comm.len(), self.comms),
        )?;
        write_comms(out, &self.by_comm)
    }
}

/// `Processes by calls (3)`, or `(top 3 of 40)` when the list is cut.
fn top_title(what: &str, shown: usize, of: usize) -> String {
    if shown < of {
        format!("{what} (top {shown} of {of})")
    } else {
        format!("{what} ({shown})")
    }
}

fn write_processes(out: &mut impl Write, processes: &[ProcessSummary]) -> io::Result<()> {
    let mut table = Table::new(&[
        Column::right("PID"),
        Column::left("COMM"),
        Column::right("CALLS"),
        Column::right("BYTES MAPPED"),
    ]);
    for p in processes {
        table.push(vec![
            p.pid.to_string(),
            p.comm.clone(),
            thousands(p.events),
            thousands(p.bytes_mapped),
        ]);
    }
    table.write(out, "  ")
}

fn write_comms(out: &mut impl Write, comms: &[CommSummary]) -> io::Result<()> {
    let mut table = Table::new(&[
        Column::left("COMM"),
        Column::right("PROCESSES"),
        Column::right("CALLS"),
        Column::right("BYTES MAPPED"),
    ]);
    for c in comms {
        table.push(vec![
            c.comm.clone(),
            c.processes.to_string(),
            thousands(c.events),
            thousands(c.bytes_mapped),
        ]);
    }
    table.write(out, "  ")
}

/// A blank line and a section title.
fn section(out: &mut impl Write, title: &str) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{title}")
}

/// A table of counts by name, largest first (ties: by name), indented.
fn write_counts(
    out: &mut impl Write,
    [name, count]: [&'static str; 2],
    counts: &BTreeMap<String, u64>,
) -> io::Result<()> {
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut table = Table::new(&[Column::left(name), Column::right(count)]);
    for (name, n) in rows {
        table.push(vec![name.clone(), thousands(*n)]);
    }
    table.write(out, "  ")
}

/// `FROM .. TO`, or `-` when either is unknown.
fn span(from: &Option<String>, to: &Option<String>) -> String {
    match (from, to) {
        (Some(from), Some(to)) => format!("{from} .. {to}"),
        _ => "-".to_owned(),
    }
}

fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}
