//! The incident report: one self-contained HTML page (inline CSS, inline SVG, no script, no
//! network fetch) with a capture's metadata and completeness, summary tables, findings, charts
//! and a flame graph of mapped bytes by call stack ([`flame`]).
//!
//! In phases: [`Report::collect`] asks the engine for aggregates ([`collect`], [`tables`]), the
//! `summary` command's collection for the metadata and the `maps` command's replay for the
//! address-space picture; [`Report::write_html`] renders it ([`page`], with [`svg`] charts and
//! [`html`] escaping).

mod collect;
mod flame;
mod html;
mod page;
mod svg;
mod tables;

use mmap_format::reader::CaptureReader;

use self::collect::{Buckets, Histogram, MappedSeries, process_filter};
use crate::{
    engine::{Engine, filter::RowFilter},
    findings::{self, Finding, Thresholds},
    maps, summary,
    timespec::{Span, TimeSpec},
};

/// What the report shows, and how much of it.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which calls the tables and charts count.
    pub filter: RowFilter,
    /// Rows per table.
    pub rows: usize,
    /// Series per chart.
    pub series: usize,
    /// The process of the address-space picture (default: the most mapped bytes at the end).
    pub pid: Option<u32>,
    /// When (default: the end of the capture).
    pub at: Option<TimeSpec>,
    /// The thresholds of the findings.
    pub thresholds: Thresholds,
}

/// The most regions drawn in the address-space picture.
pub const MAX_REGIONS: usize = 400;

/// Everything on the page.
pub struct Report {
    options: Options,
    inputs: Vec<String>,
    span: Span,
    /// The `summary` command's JSON: metadata, counters, loss windows, missing segments.
    summary: serde_json::Value,
    /// The filter as SQL, when one is set.
    predicate: Option<String>,
    tables: Vec<tables::Filled>,
    /// Every saved question's answer, most severe first.
    findings: Vec<Finding>,
    buckets: Buckets,
    /// Every process's mapped bytes, most at their peak first.
    mapped: Vec<MappedSeries>,
    rates: Vec<(String, Vec<u64>)>,
    latency: Histogram,
    /// The `maps` command's JSON for the picture, and why that process.
    space: Option<(serde_json::Value, String)>,
    /// Mapped bytes by call stack.
    flame: flame::Flame,
}

impl Report {
    /// Runs every query of the page.
    pub fn collect(readers: &[CaptureReader], options: Options) -> anyhow::Result<Self> {
        let engine = Engine::open(readers)?;
        let span = engine.span(readers)?;
        let rows = crate::input::rows();
        let predicate = options.filter.sql(&engine, &rows, &span)?;
        let process = process_filter(&options.filter).sql(&engine, &rows, &span)?;
        let calls = predicate.as_deref();

        let findings = findings::evaluate(&engine, readers, &options.filter, &options.thresholds)?;
        let tables = tables::specs()
            .into_iter()
            .map(|spec| spec.fill(&engine, calls, options.rows))
            .collect::<Result<Vec<_>, _>>()?;
        let buckets = Buckets::over(span.start(), span.end);
        let mut mapped = collect::mapped_bytes(&engine, &buckets, calls, process.as_deref())?;
        mapped.sort_by_key(|s| (std::cmp::Reverse(s.peak()), s.pid));
        let rates = collect::call_rates(&engine, &buckets, calls)?;
        let latency = collect::latency_histogram(&engine, calls)?;
        let flame = flame::collect(&engine, calls)?;

        let space = picture(&options, &mapped, &buckets)
            .map(|(pid, at, why)| {
                maps::collect_json(&engine, readers, pid, at).map(|json| (json, why))
            })
            .transpose()?;
        Ok(Self {
            inputs: readers
                .iter()
                .map(|r| r.path().display().to_string())
                .collect(),
            summary: summary::collect_json(readers, options.rows)?,
            span,
            predicate,
            tables,
            findings,
            buckets,
            mapped,
            rates,
            latency,
            space,
            flame,
            options,
        })
    }

    /// The page.
    pub fn write_html(&self) -> String {
        page::write(self)
    }
}

/// Which process the address-space picture shows, when, and why that one: the one asked for;
/// else the one with the most mapped bytes at the end; else (every process exited) the one with
/// the highest peak, at its peak.
fn picture(
    options: &Options,
    mapped: &[MappedSeries],
    buckets: &Buckets,
) -> Option<(u32, Option<TimeSpec>, String)> {
    if let Some(pid) = options.pid {
        return Some((pid, options.at, "chosen with --map-pid".to_owned()));
    }
    let by = |value: fn(&MappedSeries) -> i64| {
        mapped
            .iter()
            .filter(move |s| value(s) > 0)
            .max_by_key(move |s| (value(s), std::cmp::Reverse(s.pid)))
    };
    if let Some(series) = by(MappedSeries::last) {
        let why = "the process with the most mapped bytes at the end";
        return Some((series.pid, options.at, why.to_owned()));
    }
    by(MappedSeries::peak).map(|series| {
        let at = options
            .at
            .unwrap_or(TimeSpec::Absolute(series.peak_ns(buckets)));
        let why = "the process with the highest peak of mapped bytes, at its peak (none had \
                   mapped bytes at the end)";
        (series.pid, Some(at), why.to_owned())
    })
}
