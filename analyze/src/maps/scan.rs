//! The first pass over the rows: where the capture starts and ends, whether the pid is there, and
//! which processes it was forked from. It reads only the rows that can tell (forks, lost rows and
//! the pid's own), through the query engine.

use std::collections::{HashMap, HashSet};

use anyhow::bail;
use arrow::{
    array::{Array as _, AsArray as _},
    compute::cast,
    datatypes::{DataType, Int64Type, UInt32Type},
};
use mmap_format::{event::RowKind, reader::CaptureReader, schema::col};

use crate::{
    engine::{Engine, filter::literal},
    replay::EFFECT_TIME,
    timespec::Span,
};

/// The first row of the pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstSeen {
    /// When it takes effect.
    pub ts: i64,
    /// The parent, when the row is the fork that created the process: it did not exist before.
    pub forked_from: Option<u32>,
}

/// What the first pass tells.
#[derive(Debug)]
pub struct Scan {
    /// When the capture starts and ends.
    pub span: Span,
    /// When the pid first appears (as pid, or as a forked child), and how.
    pub first_seen: Option<FirstSeen>,
    /// The pid's first exit row.
    pub exit_ts: Option<i64>,
    /// Parents of each forked child.
    parents: HashMap<u32, Vec<u32>>,
    /// Whether the capture has `lost` rows at all.
    pub has_lost_rows: bool,
}

impl Scan {
    /// Reads the forks, the lost rows and the rows of `pid` (only the columns that tell: kind,
    /// process, child, time), grouped so that only the first time of each (kind, process,
    /// child) comes back, and the span from an aggregate; fails when `pid` is in none of the
    /// rows.
    pub fn read(engine: &Engine, readers: &[CaptureReader], pid: u32) -> anyhow::Result<Self> {
        let mut scan = Self {
            span: engine.span(readers)?,
            first_seen: None,
            exit_ts: None,
            parents: HashMap::new(),
            has_lost_rows: false,
        };
        let query = format!(
            "SELECT {kind}, {pid_column}, {child}, min(CAST({EFFECT_TIME} AS BIGINT)) AS time \
             FROM events WHERE {kind} IN ({fork}, {lost}) OR {pid_column} = {pid} \
             GROUP BY {kind}, {pid_column}, {child}",
            kind = col::KIND,
            pid_column = col::PID,
            child = col::CHILD_PID,
            fork = literal(RowKind::Fork.as_str()),
            lost = literal(RowKind::Lost.as_str()),
        );
        for batch in engine.sql(&query)? {
            let batch = batch?;
            let kinds = cast(batch.column(0), &DataType::Utf8)?;
            let kinds = kinds.as_string::<i32>();
            let pids = batch.column(1).as_primitive::<UInt32Type>();
            let children = batch.column(2).as_primitive::<UInt32Type>();
            let times = batch.column(3).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let kind = RowKind::from_name(kinds.value(row));
                let child = children.is_valid(row).then(|| children.value(row));
                scan.add(kind, pids.value(row), child, times.value(row), pid);
            }
        }
        if scan.first_seen.is_none() {
            let inputs = match readers {
                [one] => one.path().display().to_string(),
                many => format!("the {} captures", many.len()),
            };
            bail!(
                "pid {pid} does not appear in {inputs} (no row has it as process id or as a forked \
                 child)"
            );
        }
        Ok(scan)
    }

    /// Takes in the first row of `kind` of process `row_pid` (with the `child` of a fork) that
    /// takes effect at `time` (or any such row: each keeps the earliest time it is given).
    fn add(&mut self, kind: RowKind, row_pid: u32, child: Option<u32>, time: i64, pid: u32) {
        let is_pid = row_pid == pid;
        match kind {
            RowKind::Lost => {
                self.has_lost_rows = true;
                return;
            }
            RowKind::Fork => {
                if let Some(child) = child {
                    self.parents.entry(child).or_default().push(row_pid);
                    if child == pid {
                        self.seen(FirstSeen {
                            ts: time,
                            forked_from: Some(row_pid),
                        });
                    }
                }
            }
            RowKind::Exit if is_pid => {
                self.exit_ts = Some(self.exit_ts.map_or(time, |first| first.min(time)));
            }
            _ => {}
        }
        if is_pid {
            self.seen(FirstSeen {
                ts: time,
                forked_from: None,
            });
        }
    }

    /// Keeps the earliest appearance; at equal times the fork that created the process.
    fn seen(&mut self, seen: FirstSeen) {
        let earlier = self.first_seen.is_none_or(|first| {
            seen.ts < first.ts || (seen.ts == first.ts && seen.forked_from.is_some())
        });
        if earlier {
            self.first_seen = Some(seen);
        }
    }

    /// `pid` and every process it may have been forked from, transitively.
    pub fn lineage(&self, pid: u32) -> HashSet<u32> {
        let mut pids = HashSet::from([pid]);
        let mut todo = vec![pid];
        while let Some(next) = todo.pop() {
            for parent in self.parents.get(&next).into_iter().flatten() {
                if pids.insert(*parent) {
                    todo.push(*parent);
                }
            }
        }
        pids
    }
}
