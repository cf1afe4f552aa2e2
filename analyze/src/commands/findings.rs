//! `mmap-analyze findings`: the saved questions a responder asks first, answered.

use std::{
    io::{self, Write},
    process::ExitCode,
};

use serde::Serialize;

use crate::{
    cli::Inputs,
    engine::{Engine, filter::RowFilter},
    findings::{self, Example, Finding, Severity, Thresholds},
    input, labels, output,
    table::{Column, Table, visible},
};

/// Exit status of `--fail-on` when a finding of that severity (or worse) was found.
pub const EXIT_FOUND: u8 = 3;

/// Answer the questions a responder asks first of a capture.
///
/// Each question has an id, a severity (high, medium, low, info) and a one-line title; for each
/// the output says how many rows (or processes) it concerns, shows a few examples (time, pid,
/// comm, call, address, length, protection, file) and prints the SQL predicate that finds its
/// rows, so `mmap-analyze events INPUT --where "PREDICATE"` (or `mmap-analyze sql INPUT "SELECT *
/// FROM calls WHERE PREDICATE"`) lists them all.
///
/// The questions:
///
/// - high `wx-mapping`: mmap or mprotect asking for PROT_WRITE|PROT_EXEC;
/// - high `exec-after-write`: mprotect making anonymous memory, or memory that was writable
///   since it was mapped, executable (found by replaying each address space);
/// - high `deleted-exec`: exec of a deleted file, a memfd or a /proc/PID/fd path;
/// - high `deleted-exec-mapping`, medium `deleted-mapping`: mappings of deleted files and
///   memfds, executable or not;
/// - medium `big-anon`, `fast-anon`: processes mapping more anonymous memory than --big-anon in
///   all or --fast-anon within --fast-anon-window;
/// - medium `failure-storm`: at least --storm calls of one process failing with ENOMEM or
///   EAGAIN within --storm-window;
/// - low `leak-candidate`: live processes whose anonymous mmaps still in place at the end of the
///   capture (never unmapped) add up to more than --leak: a candidate, not a proof;
/// - info `records-lost`: records the recorder lost; any finding may miss rows there.
///
/// The row filter options narrow the rows every question looks at (a --where error exits 1).
///
/// Exit status: 0 whether or not anything is found (also when the reader of stdout goes away,
/// as in `| head`); 3 with --fail-on SEVERITY when a finding that severe or worse is found; 1
/// when --where is a wrong predicate; 2 on a usage error or an input that is missing or not a
/// readable capture file.
#[derive(Debug, clap::Args)]
// Verbatim: the list of questions keeps its lines (the short help, without the full stop, as
// every command's).
#[command(
    about = "Answer the questions a responder asks first of a capture",
    after_long_help = EXAMPLES,
    verbatim_doc_comment
)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// Output format: table (what was found, with examples, then the questions with nothing
    /// found), json (JSON Lines: one object per question, found or not, exact numbers and
    /// times in ns), or csv (one line per question).
    #[arg(long, value_enum, default_value_t = FindingsFormat::Table)]
    format: FindingsFormat,

    /// Exit with status 3 when a finding of this severity or a more urgent one is found (for
    /// scripts).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<Severity>,

    #[command(flatten)]
    filter: RowFilter,

    #[command(flatten)]
    thresholds: Thresholds,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze findings rec/
  mmap-analyze findings rec/ --pid 4242 --since +10s
  mmap-analyze findings rec/ --big-anon 4GiB --storm 100 --storm-window 100ms
  mmap-analyze findings rec/ --format json | jq 'select(.count > 0) | .id'
  mmap-analyze findings rec/ --fail-on high || echo 'look at this capture'";

/// How the findings are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FindingsFormat {
    Table,
    Json,
    Csv,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let inputs = input::open(&args.inputs)?;
    let engine = Engine::open(&inputs)?;
    let findings = findings::evaluate(&engine, &inputs, &args.filter, &args.thresholds)?;
    let mut out = output::stdout();
    match args.format {
        FindingsFormat::Table => write_table(&mut out, &findings)?,
        FindingsFormat::Json => {
            for finding in &findings {
                serde_json::to_writer(&mut out, finding).map_err(io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        FindingsFormat::Csv => write_csv(&mut out, &findings)?,
    }
    out.flush()?;
    let fail = args.fail_on.is_some_and(|worst| {
        findings
            .iter()
            .any(|finding| finding.found() && finding.severity <= worst)
    });
    Ok(if fail {
        ExitCode::from(EXIT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

/// What was found, each with its examples, then the questions with nothing found.
fn write_table(out: &mut impl Write, findings: &[Finding]) -> io::Result<()> {
    let (found, clean): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|finding| finding.found());
    for finding in &found {
        writeln!(
            out,
            "{:<6}  {}: {}",
            finding.severity.as_str().to_uppercase(),
            finding.id,
            finding.title
        )?;
        writeln!(out, "  {}", amount(finding))?;
        if let Some(note) = &finding.note {
            writeln!(out, "  note: {note}")?;
        }
        writeln!(out, "  rows: {}", show_command(finding))?;
        if !finding.examples.is_empty() {
            examples_table(&finding.examples).write(out, "    ")?;
        }
        writeln!(out)?;
    }
    if found.is_empty() {
        writeln!(out, "Nothing found ({} questions asked).", findings.len())?;
    }
    if !clean.is_empty() && !found.is_empty() {
        let ids: Vec<&str> = clean.iter().map(|finding| finding.id).collect();
        writeln!(out, "Nothing found for: {}.", ids.join(", "))?;
    }
    Ok(())
}

/// `3 rows, 2 processes`.
fn amount(finding: &Finding) -> String {
    let count = format!(
        "{} {}",
        labels::thousands(finding.count),
        match (finding.unit, finding.count) {
            ("processes", 1) => "process",
            ("rows", 1) => "row",
            ("records", 1) => "record",
            (unit, _) => unit,
        }
    );
    if finding.unit == "processes" || finding.processes == 0 {
        return count;
    }
    let processes = finding.processes;
    format!(
        "{count} of {} process{}",
        labels::thousands(processes),
        if processes == 1 { "" } else { "es" }
    )
}

/// The command that lists the rows of `finding`.
fn show_command(finding: &Finding) -> String {
    let shown = if finding.exact {
        ""
    } else {
        " (more rows than the finding's: see the note)"
    };
    match finding.view {
        "calls" => format!(
            "mmap-analyze events INPUT --where \"{}\"{shown}",
            finding.predicate
        ),
        _ => format!("mmap-analyze sql INPUT \"{}\"{shown}", finding.query()),
    }
}

/// The examples of a finding as a table, without the columns that are empty in every row.
fn examples_table(examples: &[Example]) -> Table {
    let columns = [
        Column::left("TIME"),
        Column::right("PID"),
        Column::left("COMM"),
        Column::left("WHAT"),
        Column::right("ADDR"),
        Column::right("LEN"),
        Column::left("PROT"),
        Column::left("FILE"),
        Column::left("DETAIL"),
    ];
    let rows: Vec<Vec<String>> = examples
        .iter()
        .map(|example| {
            let pid = if example.pid == 0 && example.comm.is_empty() {
                String::new()
            } else {
                example.pid.to_string()
            };
            vec![
                labels::time_of_day_ns(example.ts_ns),
                pid,
                visible(&example.comm).into_owned(),
                example.what.clone(),
                example.addr.map(labels::hex).unwrap_or_default(),
                example.len.map(labels::human_bytes).unwrap_or_default(),
                example.prot.clone().unwrap_or_default(),
                example
                    .file
                    .as_deref()
                    .map(|file| visible(file).into_owned())
                    .unwrap_or_default(),
                example.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let used: Vec<bool> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .any(|row| row.get(i).is_some_and(|cell| !cell.is_empty()))
        })
        .collect();
    let keep = |i: &usize| used.get(*i).copied().unwrap_or(false);
    let shown: Vec<Column> = (0..columns.len())
        .filter(keep)
        .filter_map(|i| columns.get(i).cloned())
        .collect();
    let mut table = Table::new(&shown);
    for row in rows {
        table.push(
            row.into_iter()
                .enumerate()
                .filter(|(i, _)| keep(i))
                .map(|(_, cell)| cell)
                .collect(),
        );
    }
    table
}

/// One CSV line per question.
#[derive(Serialize)]
struct CsvLine<'f> {
    id: &'f str,
    severity: Severity,
    count: u64,
    unit: &'f str,
    processes: u64,
    title: &'f str,
    view: &'f str,
    predicate: &'f str,
    exact: bool,
    note: Option<&'f str>,
    /// The first example's time, RFC 3339.
    first: Option<String>,
    first_pid: Option<u32>,
}

fn write_csv(out: &mut impl Write, findings: &[Finding]) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    for finding in findings {
        let first = finding.examples.first();
        writer
            .serialize(CsvLine {
                id: finding.id,
                severity: finding.severity,
                count: finding.count,
                unit: finding.unit,
                processes: finding.processes,
                title: &finding.title,
                view: finding.view,
                predicate: &finding.predicate,
                exact: finding.exact,
                note: finding.note.as_deref(),
                first: first.map(|example| labels::rfc3339_ns(example.ts_ns)),
                first_pid: first.map(|example| example.pid).filter(|pid| *pid != 0),
            })
            .map_err(output::csv_to_io)?;
    }
    writer.flush()
}
