//! The first pass over the rows: where the capture starts and ends, whether the pid is there, and
//! which processes it was forked from. It reads only the rows that can tell (forks, lost rows and
//! the pid's own), through the query engine.

use std::collections::{HashMap, HashSet};

use anyhow::bail;
use mmap_format::{
    event::{Event, RowKind},
    reader::CaptureReader,
    schema::col,
};

use crate::{
    engine::{Engine, filter::literal},
    input, replay,
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
    /// Reads the forks, the lost rows and the rows of `pid`, and the span from an aggregate;
    /// fails when `pid` is in none of the rows.
    pub fn read(engine: &Engine, readers: &[CaptureReader], pid: u32) -> anyhow::Result<Self> {
        let mut scan = Self {
            span: engine.span(readers)?,
            first_seen: None,
            exit_ts: None,
            parents: HashMap::new(),
            has_lost_rows: false,
        };
        let predicate = format!(
            "{kind} IN ({fork}, {lost}) OR {pid_column} = {pid}",
            kind = col::KIND,
            fork = literal(RowKind::Fork.as_str()),
            lost = literal(RowKind::Lost.as_str()),
            pid_column = col::PID,
        );
        for reader in readers {
            for event in input::file_rows(engine, reader, Some(&predicate))? {
                scan.add(&event?, pid);
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

    fn add(&mut self, event: &Event<'_>, pid: u32) {
        let is_pid = event.pid == pid;
        let time = replay::effect_time(event).unwrap_or(event.ts_ns);
        match event.kind {
            RowKind::Lost => {
                self.has_lost_rows = true;
                return;
            }
            RowKind::Fork => {
                if let Some(child) = event.child_pid {
                    self.parents.entry(child).or_default().push(event.pid);
                    if child == pid {
                        self.seen(FirstSeen {
                            ts: time,
                            forked_from: Some(event.pid),
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
