//! Times on the command line (`--at`, `--since`, `--until`): one grammar for every command,
//! parsed by [`TimeSpec::from_str`] (as clap reads the argument) and resolved against the
//! capture by [`TimeSpec::resolve`] once its time span is known.

use std::{fmt, str::FromStr};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use mmap_format::reader::CaptureReader;

use crate::labels;

/// The grammar in Markdown: `--help` shows it reflowed by [`crate::cli::reflow`], and
/// docs/ANALYZE.md holds it verbatim between markers (a test below checks that it does).
pub const HELP: &str = include_str!("times.md");

/// A time as given on the command line, before the capture says when it starts and ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    /// ns since the Unix epoch.
    Absolute(i64),
    /// A time of day, UTC, on one of the capture's days.
    TimeOfDay(NaiveTime),
    /// ns after the capture's start.
    AfterStart(i64),
    /// ns before the capture's end.
    BeforeEnd(i64),
}

/// Most digits of epoch seconds (ns since the epoch fit an i64 until 2262).
const MAX_SECONDS_DIGITS: usize = 10;
/// Fewest digits of epoch nanoseconds (from 1973-03-03 on; fewer could be micro- or
/// milliseconds).
const MIN_NANOS_DIGITS: usize = 17;

impl FromStr for TimeSpec {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = |why: String| {
            format!(
                "{value:?}: {why}; expected a time of day (06:01:13.5), RFC 3339 \
                 (2026-11-27T06:01:13.5Z), epoch seconds or nanoseconds, +DURATION, -DURATION, \
                 start or end"
            )
        };
        let value = value.trim();
        match value {
            "start" => return Ok(Self::AfterStart(0)),
            "end" => return Ok(Self::BeforeEnd(0)),
            _ => {}
        }
        if let Some(offset) = value.strip_prefix('+') {
            return duration_ns(offset).map(Self::AfterStart).map_err(fail);
        }
        if let Some(offset) = value.strip_prefix('-') {
            return duration_ns(offset).map(Self::BeforeEnd).map_err(fail);
        }
        if value.contains(':') && !value.contains('-') {
            return time_of_day(value).map(Self::TimeOfDay).map_err(fail);
        }
        if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return epoch(value).map(Self::Absolute).map_err(fail);
        }
        let time = DateTime::parse_from_rfc3339(value).map_err(|e| fail(e.to_string()))?;
        time.timestamp_nanos_opt()
            .map(Self::Absolute)
            .ok_or_else(|| fail("out of range".to_owned()))
    }
}

fn duration_ns(text: &str) -> Result<i64, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| e.to_string())?;
    i64::try_from(duration.as_nanos()).map_err(|_| "too long".to_owned())
}

fn time_of_day(text: &str) -> Result<NaiveTime, String> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
        .ok_or_else(|| "not a time of day HH:MM[:SS[.fraction]]".to_owned())
}

/// Epoch seconds (with a fraction) or nanoseconds, told apart by the digits before the point.
fn epoch(text: &str) -> Result<i64, String> {
    let whole = text.split('.').next().unwrap_or_default().len();
    if whole <= MAX_SECONDS_DIGITS {
        NaiveDateTime::parse_from_str(text, "%s%.f")
            .ok()
            .and_then(|time| time.and_utc().timestamp_nanos_opt())
            .ok_or_else(|| "not epoch seconds".to_owned())
    } else if whole >= MIN_NANOS_DIGITS && !text.contains('.') {
        text.parse::<i64>()
            .map_err(|_| "epoch nanoseconds out of range".to_owned())
    } else {
        Err(format!(
            "{whole} digits: epoch seconds have at most {MAX_SECONDS_DIGITS} (with a fraction), \
             epoch nanoseconds {MIN_NANOS_DIGITS} or more (without)"
        ))
    }
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = |ns: &i64| {
            humantime::format_duration(std::time::Duration::from_nanos(
                u64::try_from(*ns).unwrap_or(0),
            ))
        };
        match self {
            Self::Absolute(ns) => f.write_str(&labels::rfc3339_ns(*ns)),
            Self::TimeOfDay(time) => write!(f, "{}", time.format("%H:%M:%S%.f")),
            Self::AfterStart(ns) => write!(f, "+{}", duration(ns)),
            Self::BeforeEnd(ns) => write!(f, "-{}", duration(ns)),
        }
    }
}

/// When a capture starts and ends, for resolving times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The earliest recorded capture start.
    pub capture_start: i64,
    /// The earliest row, the origin of `+DURATION`.
    pub first_row: Option<i64>,
    /// The later of the last time a row records (its `ts`, or `ts_exit`: a call's exit, the end of
    /// a loss window) and the latest recorded capture end.
    pub end: i64,
}

impl Span {
    /// Only the files' metadata: no rows yet.
    pub fn of_files(readers: &[CaptureReader]) -> Self {
        let meta = || readers.iter().map(CaptureReader::metadata);
        Self {
            capture_start: meta().map(|m| m.capture_start_ns).min().unwrap_or(0),
            first_row: None,
            end: meta().map(|m| m.capture_end_ns).max().unwrap_or(0),
        }
    }

    /// The start: the first row, else the recorded start.
    pub fn start(&self) -> i64 {
        self.first_row.unwrap_or(self.capture_start)
    }

    /// Everything the capture covers: from the earlier of its recorded start and first row.
    fn covers(&self, ns: i64) -> bool {
        (self.capture_start.min(self.start())..=self.end).contains(&ns)
    }

    fn words(&self) -> String {
        format!(
            "{} .. {}",
            labels::rfc3339_ns(self.capture_start.min(self.start())),
            labels::rfc3339_ns(self.end)
        )
    }
}

/// A time resolved against a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// ns since the Unix epoch.
    pub ns: i64,
    /// Set when the time is outside the capture.
    pub warning: Option<String>,
}

impl TimeSpec {
    /// The time in ns since the Unix epoch; an error when a time of day fits several of the
    /// capture's days, or none of several.
    pub fn resolve(&self, span: &Span) -> Result<Resolved, String> {
        let ns = match *self {
            Self::Absolute(ns) => ns,
            Self::AfterStart(ns) => span.start().saturating_add(ns),
            Self::BeforeEnd(ns) => span.end.saturating_sub(ns),
            Self::TimeOfDay(time) => self.on_capture_day(time, span)?,
        };
        let warning = (!span.covers(ns)).then(|| {
            format!(
                "{self}: {} is outside the capture ({})",
                labels::rfc3339_ns(ns),
                span.words()
            )
        });
        Ok(Resolved { ns, warning })
    }

    fn on_capture_day(&self, time: NaiveTime, span: &Span) -> Result<i64, String> {
        let date = |ns: i64| DateTime::<Utc>::from_timestamp_nanos(ns).date_naive();
        let days: Vec<NaiveDate> = date(span.capture_start.min(span.start()))
            .iter_days()
            .take_while(|day| *day <= date(span.end))
            .collect();
        let at = |day: &NaiveDate| day.and_time(time).and_utc().timestamp_nanos_opt();
        let inside: Vec<i64> = days
            .iter()
            .filter_map(at)
            .filter(|ns| span.covers(*ns))
            .collect();
        match (&inside[..], &days[..]) {
            ([ns], _) => Ok(*ns),
            ([], [day]) => at(day).ok_or_else(|| format!("{self}: out of range")),
            _ => Err(format!(
                "{self}: the capture ({}) spans {} days and this time of day is in {} of them: \
                 give the date too (RFC 3339)",
                span.words(),
                days.len(),
                if inside.is_empty() {
                    "none".to_owned()
                } else {
                    inside.len().to_string()
                }
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27T06:01:13Z.
    const BASE: i64 = 1_795_759_273_000_000_000;
    const SECOND: i64 = 1_000_000_000;
    const DAY: i64 = 86_400 * SECOND;

    fn parse(text: &str) -> TimeSpec {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn span(start: i64, end: i64) -> Span {
        Span {
            capture_start: start,
            first_row: Some(start + 100),
            end,
        }
    }

    fn at(text: &str, span: &Span) -> i64 {
        parse(text).resolve(span).expect("resolves").ns
    }

    #[test]
    fn docs_hold_the_forms_of_time_verbatim() {
        assert_eq!(
            crate::cli::copy_in_docs("analyze/src/times.md"),
            Some(HELP),
            "docs/ANALYZE.md must hold analyze/src/times.md between its markers: copy it there"
        );
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(
            parse("2026-11-27T06:01:13.5Z"),
            TimeSpec::Absolute(BASE + SECOND / 2)
        );
        assert_eq!(
            parse("2026-11-27T07:01:13.5+01:00"),
            TimeSpec::Absolute(BASE + SECOND / 2)
        );
        assert_eq!(parse("1795759273"), TimeSpec::Absolute(BASE));
        assert_eq!(
            parse("1795759273.25"),
            TimeSpec::Absolute(BASE + SECOND / 4)
        );
        assert_eq!(parse("1795759273000000007"), TimeSpec::Absolute(BASE + 7));
        assert_eq!(parse("+1.5s"), TimeSpec::AfterStart(1_500_000_000));
        assert_eq!(parse("+250ms"), TimeSpec::AfterStart(250_000_000));
        assert_eq!(parse("+2m 3s"), TimeSpec::AfterStart(123 * SECOND));
        assert_eq!(parse("+0"), TimeSpec::AfterStart(0));
        assert_eq!(parse("-1s"), TimeSpec::BeforeEnd(SECOND));
        assert_eq!(parse("start"), TimeSpec::AfterStart(0));
        assert_eq!(parse("end"), TimeSpec::BeforeEnd(0));
        let tod = |h, m, s, ns| {
            TimeSpec::TimeOfDay(NaiveTime::from_hms_nano_opt(h, m, s, ns).expect("a time"))
        };
        assert_eq!(parse("06:01:13.000002500"), tod(6, 1, 13, 2500));
        assert_eq!(parse("06:01:13"), tod(6, 1, 13, 0));
        assert_eq!(parse("06:01"), tod(6, 1, 0, 0));
    }

    #[test]
    fn bad_times_say_what_is_expected() {
        for bad in [
            "1.5s",
            "+",
            "+1.5 parsecs",
            "yesterday",
            "2026-11-27",
            "25:00:00",
            "1795759273000000000.5",
            "",
        ] {
            let err = bad.parse::<TimeSpec>().expect_err(bad);
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
        for (digits, text) in [(13, "1795759273123"), (16, "1795759273123456")] {
            let err = text.parse::<TimeSpec>().expect_err(text);
            assert!(err.contains(&format!("{digits} digits")), "{err}");
        }
    }

    #[test]
    fn offsets_count_from_the_first_row_and_back_from_the_end() {
        let s = span(BASE, BASE + 10 * SECOND);
        assert_eq!(at("+1s", &s), BASE + 100 + SECOND);
        assert_eq!(at("start", &s), BASE + 100);
        assert_eq!(at("-1s", &s), BASE + 9 * SECOND);
        assert_eq!(at("end", &s), BASE + 10 * SECOND);
        let no_rows = Span {
            first_row: None,
            ..s
        };
        assert_eq!(at("+1s", &no_rows), BASE + SECOND);
    }

    #[test]
    fn a_time_of_day_takes_the_capture_date() {
        let s = span(BASE, BASE + 10 * SECOND);
        assert_eq!(at("06:01:13.000002500", &s), BASE + 2500);
        // Printed by the tables, read back.
        assert_eq!(at(&labels::time_of_day_ns(BASE + 77), &s), BASE + 77);
        // Outside the capture, on its only day: used, with a warning.
        let resolved = parse("12:00").resolve(&s).expect("one day");
        assert_eq!(
            labels::rfc3339_ns(resolved.ns),
            "2026-11-27T12:00:00.000000000Z"
        );
        assert!(
            resolved
                .warning
                .is_some_and(|w| w.contains("is outside the capture")),
        );
        // Over midnight: 23:30 is on the first day, 00:30 on the second.
        let night = span(BASE + 17 * 3600 * SECOND, BASE + 19 * 3600 * SECOND);
        assert_eq!(
            labels::rfc3339_ns(at("00:30", &night)),
            "2026-11-28T00:30:00.000000000Z"
        );
        assert_eq!(
            labels::rfc3339_ns(at("23:30", &night)),
            "2026-11-27T23:30:00.000000000Z"
        );
        let err = parse("12:00")
            .resolve(&night)
            .expect_err("in none of 2 days");
        assert!(err.contains("spans 2 days"), "{err}");
        let long = span(BASE, BASE + 2 * DAY);
        let err = parse("12:00").resolve(&long).expect_err("in 2 of 3 days");
        assert!(err.contains("give the date too"), "{err}");
    }

    #[test]
    fn only_times_outside_the_capture_warn() {
        let s = span(BASE, BASE + 10 * SECOND);
        for inside in ["start", "end", "+1s", "-1s", "1795759274"] {
            assert_eq!(parse(inside).resolve(&s).expect(inside).warning, None);
        }
        for outside in ["+1m", "-1m", "1795759200", "2026-11-28T00:00:00Z"] {
            let warning = parse(outside).resolve(&s).expect(outside).warning;
            assert!(warning.is_some(), "{outside}");
        }
    }
}
