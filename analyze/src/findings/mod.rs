//! The saved questions a responder asks first of a capture, each answered as a [`Finding`]:
//! how many rows and processes it concerns, a few examples, and the SQL predicate that shows its
//! rows (`mmap-analyze events INPUT --where "<predicate>"`).
//!
//! Most questions are one predicate over the `calls` view ([`checks`]); the ones that need the
//! history of a region or the state at the end (memory made executable after it was written, a
//! mapping never unmapped) replay the address space ([`history`]) and print the narrowest
//! predicate that shows the rows involved. [`evaluate`] answers every question; the `findings`
//! command and the HTML report render the answers.

mod checks;
mod history;
mod query;

use std::{fmt, str::FromStr};

use mmap_format::reader::CaptureReader;
use serde::Serialize;

use crate::engine::{Engine, filter::RowFilter};

/// How urgent a finding is, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A sign of code injection or of a program that hides where it comes from.
    High,
    /// Worth a look: unusual, often benign.
    Medium,
    /// A candidate that needs more context (a leak candidate).
    Low,
    /// Context for the others (records lost).
    Info,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to one saved question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable name of the question (`wx-mapping`), for scripts.
    pub id: &'static str,
    pub severity: Severity,
    /// One line saying what was looked for (with the thresholds used).
    pub title: String,
    /// How many rows it concerns, or for a per-process question how many processes
    /// ([`Finding::unit`]).
    pub count: u64,
    /// What [`Finding::count`] counts: `rows` or `processes`.
    pub unit: &'static str,
    /// How many distinct processes (pids) it concerns.
    pub processes: u64,
    /// The view or table the predicate is written for: `calls` (what `events --where` reads)
    /// or `events` (every row kind).
    pub view: &'static str,
    /// An SQL predicate over [`Finding::view`] that shows the rows involved (with the row
    /// filter of the command line left out).
    pub predicate: String,
    /// Whether the predicate selects exactly the rows of the finding; when false (a question
    /// that needs each region's history) it selects the narrowest superset, and
    /// [`Finding::note`] says so.
    pub exact: bool,
    /// What a reader should know to read the finding right.
    pub note: Option<String>,
    /// A few of the rows (or processes), earliest first.
    pub examples: Vec<Example>,
}

impl Finding {
    /// Whether anything was found.
    pub fn found(&self) -> bool {
        self.count > 0
    }

    /// The `sql` query that lists the rows involved.
    pub fn query(&self) -> String {
        format!("SELECT * FROM {} WHERE {}", self.view, self.predicate)
    }
}

/// One row (or process) a finding concerns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Example {
    pub pid: u32,
    /// Untrusted text: escape before printing to a terminal.
    pub comm: String,
    /// When (ns since the Unix epoch).
    pub ts_ns: i64,
    /// The system call or row kind (`mmap`, `exec`, `snapshot`), or `process` for a
    /// per-process finding.
    pub what: String,
    pub addr: Option<u64>,
    pub len: Option<u64>,
    /// `PROT_READ|PROT_WRITE|PROT_EXEC`.
    pub prot: Option<String>,
    /// Untrusted text: escape before printing to a terminal.
    pub file: Option<String>,
    /// More about this example (`1.2 GiB within 1s`, `ENOMEM`).
    pub detail: Option<String>,
}

/// The thresholds of the per-process questions.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Thresholds {
    /// Large anonymous memory: a process that maps more than SIZE of anonymous memory in all
    /// (successful anonymous mmaps; sizes as 1GiB, 512MiB, 4096).
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub big_anon: Size,

    /// Fast-growing anonymous memory: a process that maps more than SIZE of anonymous memory
    /// within --fast-anon-window.
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    pub fast_anon: Size,

    /// The window of --fast-anon (1s, 250ms).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub fast_anon_window: Window,

    /// Leak candidate: a live process whose anonymous mmaps still in place at the end (never
    /// unmapped) add up to more than SIZE.
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    pub leak: Size,

    /// Failure storm: at least N calls of one process failing with ENOMEM or EAGAIN within
    /// --storm-window.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub storm: u64,

    /// The window of --storm.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub storm_window: Window,

    /// Examples shown per finding.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub examples: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            big_anon: Size(1 << 30),
            fast_anon: Size(256 << 20),
            fast_anon_window: Window(1_000_000_000),
            leak: Size(256 << 20),
            storm: 10,
            storm_window: Window(1_000_000_000),
            examples: 3,
        }
    }
}

/// A size in bytes, written `1GiB`, `256MiB`, `64KiB`, `1G` or `4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => {
                return Err(format!(
                    "{text:?}: expected a size such as 1GiB, 256MiB or 4096"
                ));
            }
        };
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: expected a size such as 1GiB, 256MiB or 4096"))?;
        value
            .checked_mul(1 << shift)
            .map(Self)
            .ok_or_else(|| format!("{text:?}: too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::labels::human_bytes(self.0))
    }
}

/// A time window in nanoseconds, written as humantime durations (`1s`, `250ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window(pub i64);

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let duration =
            humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        let ns = i64::try_from(duration.as_nanos()).map_err(|_| format!("{text:?}: too long"))?;
        if ns <= 0 {
            return Err(format!("{text:?}: a window must be longer than 0"));
        }
        Ok(Self(ns))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = std::time::Duration::from_nanos(self.0.unsigned_abs());
        write!(f, "{}", humantime::format_duration(duration))
    }
}

/// Answers every saved question about the rows of `readers` (already registered in `engine`)
/// that `filter` selects: one [`Finding`] per question, found or not, most severe first (within a
/// severity in the order of [`ORDER`]).
///
/// An error of the filter's `--where` is an [`crate::engine::EngineError::Query`] in the chain.
pub fn evaluate(
    engine: &Engine,
    readers: &[CaptureReader],
    filter: &RowFilter,
    options: &Thresholds,
) -> anyhow::Result<Vec<Finding>> {
    let span = engine.span(readers)?;
    let scope = query::Scope {
        engine,
        filter: filter.sql(engine, &crate::input::rows(), &span)?,
        span,
        examples: options.examples,
    };
    let mut findings = checks::evaluate(&scope, options)?;
    findings.extend(history::evaluate(&scope, readers, options)?);
    findings.sort_by_key(|finding| {
        let rank = ORDER.iter().position(|id| *id == finding.id);
        (finding.severity, rank)
    });
    Ok(findings)
}

/// The questions in the order they are shown within a severity: the clearest signs first.
pub const ORDER: [&str; 10] = [
    "wx-mapping",
    "exec-after-write",
    "deleted-exec",
    "deleted-exec-mapping",
    "deleted-mapping",
    "big-anon",
    "fast-anon",
    "failure-storm",
    "leak-candidate",
    "records-lost",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!("1GiB".parse(), Ok(Size(1 << 30)));
        assert_eq!("256 MiB".parse(), Ok(Size(256 << 20)));
        assert_eq!("4k".parse(), Ok(Size(4096)));
        assert_eq!("4096".parse(), Ok(Size(4096)));
        assert!("1.5GiB".parse::<Size>().is_err());
        assert!("lots".parse::<Size>().is_err());
        assert!("99999999999TiB".parse::<Size>().is_err());
    }

    #[test]
    fn windows_parse_as_durations() {
        assert_eq!("1s".parse(), Ok(Window(1_000_000_000)));
        assert_eq!("250ms".parse(), Ok(Window(250_000_000)));
        assert!("0s".parse::<Window>().is_err());
    }

    #[test]
    fn severities_sort_most_urgent_first() {
        let mut all = [
            Severity::Info,
            Severity::High,
            Severity::Low,
            Severity::Medium,
        ];
        all.sort();
        assert_eq!(
            all,
            [
                Severity::High,
                Severity::Medium,
                Severity::Low,
                Severity::Info
            ]
        );
    }
}
