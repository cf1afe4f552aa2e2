//! `mmap-analyze info`: what a capture is, from its footers and metadata, before anyone opens
//! it: where and how it was recorded, when, what, how many rows of each kind, what was lost,
//! its segments, redaction and provenance, and whether its chain and manifest are there and
//! agree by sizes (no hashing: `verify` does that).

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use arrow::{
    array::{Array, AsArray as _},
    compute::cast,
    datatypes::{DataType, Int64Type},
};
use clap::ValueEnum;
use mmap_format::{
    event::{RowKind, sources},
    manifest::manifest_name,
    metadata::{CaptureMetadata, Counters, Derivation, ParentFile},
    reader::CaptureReader,
    schema::col,
};
use serde::Serialize;

use super::verify::{FoundManifest, bounded, manifests_in};
use crate::{
    cli::Inputs,
    engine::{Engine, filter::literal},
    input, labels,
    loss::{LossWindow, LossWindows},
    output, segments, table,
};

/// What a capture is, from its footers and metadata: instant on any size.
///
/// For each capture among the INPUTs (the segments of one recording are one capture): the host,
/// kernel, recorder and format version, the time range, the targets and how the recorder
/// attached, rows by kind, records lost and the windows they fall in, the segments in order,
/// what was redacted and what the file was made from, and the integrity records (the segment
/// chain and the manifest: present, and consistent by sizes; `mmap-analyze verify` hashes).
///
/// Rows by kind are counted from the `kind` column alone (a few bytes per thousand rows); loss
/// windows are read from the `lost` rows only of segments whose counters report ring-buffer
/// loss. Everything else comes from footers and metadata.
///
/// Text from the file (host, command line, names) is untrusted: control characters are shown
/// escaped and long values cut.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = InfoFormat::Table)]
    format: InfoFormat,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze info rec/
  mmap-analyze info incident.parquet --format json";

/// How the result is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    /// Labelled lines per capture.
    Table,
    /// One JSON object: `{"captures": [...]}`; times are RFC 3339 with nanoseconds, UTC.
    Json,
}

/// At most this many distinct row kinds are counted by name (a crafted file may hold any
/// number of names); the rest count as "other".
const KINDS: usize = 16;

#[derive(Debug, Serialize)]
struct Info {
    captures: Vec<CaptureInfo>,
}

#[derive(Debug, Serialize)]
struct CaptureInfo {
    capture_id: Option<String>,
    host: String,
    kernel: String,
    boot_id: String,
    recorder_version: String,
    format_versions: Vec<String>,
    start: String,
    end: String,
    duration_s: f64,
    targets: TargetsInfo,
    attach_mode: String,
    /// How call stacks were taken (format 1.4), when they were.
    stacks: Option<mmap_format::metadata::StacksConfig>,
    command_line: Vec<String>,
    rows: u64,
    /// From the `kind` column.
    rows_by_kind: BTreeMap<String, u64>,
    counters: Counters,
    lost: u64,
    #[serde(flatten)]
    loss_windows: LossWindows,
    /// Segments whose counters report loss, with their time range.
    lossy_segments: Vec<LossySegment>,
    segments: Vec<SegmentInfo>,
    missing_segments: Vec<segments::MissingSegments>,
    redaction: Option<mmap_format::metadata::Redaction>,
    provenance: Vec<Derivation>,
    integrity: Integrity,
}

#[derive(Debug, Serialize)]
struct TargetsInfo {
    system_wide: bool,
    pids: Vec<u32>,
    command: Option<Vec<String>>,
    comms: Vec<String>,
    cgroups: Vec<String>,
    follow_forks: bool,
}

#[derive(Debug, Serialize)]
struct LossySegment {
    file: String,
    segment_index: Option<u32>,
    from: String,
    to: String,
    lost: u64,
}

#[derive(Debug, Serialize)]
struct SegmentInfo {
    file: String,
    segment_index: Option<u32>,
    start: String,
    end: String,
    rows: u64,
    bytes: u64,
    recovered: bool,
    /// Has a `previous_segment` link.
    linked: bool,
}

#[derive(Debug, Serialize)]
struct Integrity {
    /// "directory capture", "single file", "derived".
    kind: &'static str,
    manifest: Option<String>,
    manifest_complete: Option<bool>,
    /// Every later segment links to the one before, by name, index and size.
    chain_consistent: Option<bool>,
    /// The manifest lists the segments here with their sizes.
    manifest_consistent: Option<bool>,
    /// What does not agree, one sentence each.
    problems: Vec<String>,
    /// Always false: sizes only; `mmap-analyze verify` computes the hashes.
    hashed: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open(&args.inputs)?;
    let gaps = segments::missing(&readers);
    // One capture per id, in the order first seen; files without an id stand alone.
    let mut groups: Vec<Vec<CaptureReader>> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for reader in readers {
        match reader.metadata().capture_id.clone() {
            Some(id) => match by_id.get(&id) {
                Some(&g) => groups[g].push(reader),
                None => {
                    by_id.insert(id, groups.len());
                    groups.push(vec![reader]);
                }
            },
            None => groups.push(vec![reader]),
        }
    }
    let mut captures = Vec::new();
    for mut group in groups {
        group.sort_by_key(|r| r.metadata().segment_index);
        captures.push(describe(&group, &gaps)?);
    }
    let info = Info { captures };
    let mut out = output::stdout();
    match args.format {
        InfoFormat::Json => output::write_json_pretty(&mut out, &info)?,
        InfoFormat::Table => write_table(&mut out, &info)?,
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn strings(values: &[String]) -> Vec<String> {
    values.iter().take(64).map(|v| bounded(v)).collect()
}

fn describe(
    group: &[CaptureReader],
    gaps: &[segments::MissingSegments],
) -> anyhow::Result<CaptureInfo> {
    let first = group[0].metadata();
    let start = group
        .iter()
        .map(|r| r.metadata().capture_start_ns)
        .min()
        .unwrap_or(0);
    let end = group
        .iter()
        .map(|r| r.metadata().capture_end_ns)
        .max()
        .unwrap_or(0);
    let mut versions: Vec<String> = group
        .iter()
        .map(|r| r.metadata().format_version.to_string())
        .collect();
    versions.dedup();
    let mut counters = Counters::default();
    let mut lossy_segments = Vec::new();
    let mut segments_info = Vec::new();
    for reader in group {
        let meta = reader.metadata();
        add(&mut counters, &meta.counters);
        if meta.counters.lost() > 0 {
            lossy_segments.push(LossySegment {
                file: file_name(reader.path()),
                segment_index: meta.segment_index,
                from: labels::rfc3339_ns(meta.capture_start_ns),
                to: labels::rfc3339_ns(meta.capture_end_ns),
                lost: meta.counters.lost(),
            });
        }
        segments_info.push(SegmentInfo {
            file: file_name(reader.path()),
            segment_index: meta.segment_index,
            start: labels::rfc3339_ns(meta.capture_start_ns),
            end: labels::rfc3339_ns(meta.capture_end_ns),
            rows: reader.num_rows(),
            bytes: reader
                .remote_len()
                .unwrap_or_else(|| std::fs::metadata(reader.path()).map_or(0, |m| m.len())),
            recovered: meta.recovered,
            linked: meta.previous_segment.is_some(),
        });
    }
    let (rows_by_kind, windows) = scan(group, counters.lost_ringbuf_full > 0)?;
    let missing = gaps
        .iter()
        .filter(|gap| first.capture_id.as_deref() == Some(gap.capture_id.as_str()))
        .cloned()
        .collect();
    Ok(CaptureInfo {
        capture_id: first.capture_id.as_deref().map(bounded),
        host: bounded(&first.hostname),
        kernel: bounded(&first.kernel_release),
        boot_id: bounded(&first.boot_id),
        recorder_version: bounded(&first.recorder_version),
        format_versions: versions,
        start: labels::rfc3339_ns(start),
        end: labels::rfc3339_ns(end),
        duration_s: end.saturating_sub(start) as f64 / 1e9,
        targets: TargetsInfo {
            system_wide: first.targets.system_wide,
            pids: first.targets.pids.iter().take(64).copied().collect(),
            command: first.targets.command.as_deref().map(strings),
            comms: strings(&first.targets.comms),
            cgroups: strings(&first.targets.cgroups),
            follow_forks: first.targets.follow_forks,
        },
        attach_mode: bounded(&first.attach_mode),
        stacks: first
            .stacks
            .clone()
            .map(|s| mmap_format::metadata::StacksConfig {
                mode: bounded(&s.mode),
                syscalls: strings(&s.syscalls),
                ..s
            }),
        command_line: strings(&first.command_line),
        rows: group
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.num_rows())),
        rows_by_kind,
        lost: counters.lost(),
        counters,
        loss_windows: windows.finish(),
        lossy_segments,
        missing_segments: missing,
        redaction: first.redaction.clone().map(|mut r| {
            r.method = bounded(&r.method);
            r.key_id = bounded(&r.key_id);
            r.tool = bounded(&r.tool);
            r.fields = r
                .fields
                .iter()
                .take(32)
                .map(|(k, v)| (bounded(k), bounded(v)))
                .collect();
            r
        }),
        provenance: first.provenance.iter().take(64).map(bounded_step).collect(),
        integrity: integrity(group, first),
        segments: segments_info,
    })
}

/// A provenance step with its text cut (at most 64 parents and selection words).
fn bounded_step(step: &Derivation) -> Derivation {
    Derivation {
        operation: bounded(&step.operation),
        tool: bounded(&step.tool),
        at: bounded(&step.at),
        parents: step
            .parents
            .iter()
            .take(64)
            .map(|p| ParentFile {
                file: bounded(&p.file),
                capture_id: p.capture_id.as_deref().map(bounded),
                segment_index: p.segment_index,
                sha256: bounded(&p.sha256),
                bytes: p.bytes,
                rows: p.rows,
            })
            .collect(),
        selection: step.selection.iter().take(64).map(|s| bounded(s)).collect(),
    }
}

fn add(total: &mut Counters, more: &Counters) {
    total.emitted = total.emitted.saturating_add(more.emitted);
    total.lost_ringbuf_full = total
        .lost_ringbuf_full
        .saturating_add(more.lost_ringbuf_full);
    total.orphan_exits = total.orphan_exits.saturating_add(more.orphan_exits);
    total.entry_map_full = total.entry_map_full.saturating_add(more.entry_map_full);
    total.decode_errors = total.decode_errors.saturating_add(more.decode_errors);
    total.follow_map_full = total.follow_map_full.saturating_add(more.follow_map_full);
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| bounded(&n.to_string_lossy()))
        .unwrap_or_default()
}

/// Rows by kind (the `kind` column alone) and, when `lossy`, the loss windows (the `lost` rows'
/// CPU, times and counts), through the query engine, which reads only those columns.
fn scan(
    group: &[CaptureReader],
    lossy: bool,
) -> anyhow::Result<(BTreeMap<String, u64>, LossWindows)> {
    let engine = Engine::open(group)?;
    let mut counts = BTreeMap::new();
    let query = format!(
        "SELECT CAST({kind} AS VARCHAR), CAST(COUNT(*) AS BIGINT) FROM events GROUP BY 1",
        kind = col::KIND
    );
    for batch in engine.sql(&query)? {
        let batch = batch?;
        let names = cast(batch.column(0), &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let rows = cast(batch.column(1), &DataType::Int64)?;
        let rows = rows.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let name = if names.is_valid(row) {
                names.value(row)
            } else {
                "(none)"
            };
            bump(
                &mut counts,
                name,
                u64::try_from(rows.value(row)).unwrap_or(0),
            );
        }
    }
    let mut windows = LossWindows::default();
    if lossy {
        let query = format!(
            "SELECT CAST({cpu} AS BIGINT), CAST({ts} AS BIGINT), CAST({exit} AS BIGINT), \
             CAST({count} AS BIGINT) FROM events WHERE {kind} = {lost}",
            cpu = col::CPU,
            ts = col::TS,
            exit = col::TS_EXIT,
            count = col::LOST_COUNT,
            kind = col::KIND,
            lost = literal(RowKind::Lost.as_str()),
        );
        for batch in engine.sql(&query)? {
            let batch = batch?;
            let columns = (0..4)
                .map(|i| cast(batch.column(i), &DataType::Int64))
                .collect::<Result<Vec<_>, _>>()?;
            let int = |c: usize, row: usize| {
                let values = columns[c].as_primitive::<Int64Type>();
                values.is_valid(row).then(|| values.value(row))
            };
            for row in 0..batch.num_rows() {
                let from_ns = int(1, row).unwrap_or_default();
                windows.push(LossWindow {
                    cpu: int(0, row).and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
                    from: labels::rfc3339_ns(from_ns),
                    to: labels::rfc3339_ns(int(2, row).unwrap_or(from_ns)),
                    count: int(3, row).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    from_ns,
                });
            }
        }
    }
    Ok((counts, windows))
}

fn bump(counts: &mut BTreeMap<String, u64>, name: &str, n: u64) {
    let known = counts.contains_key(name) || counts.len() < KINDS;
    let key = if known {
        bounded(name)
    } else {
        "other".to_owned()
    };
    let count = counts.entry(key).or_default();
    *count = count.saturating_add(n);
}

/// The chain and the manifest, by sizes only.
fn integrity(group: &[CaptureReader], first: &CaptureMetadata) -> Integrity {
    let mut problems = Vec::new();
    let derived = !first.provenance.is_empty();
    let dir: PathBuf = match group[0].path().parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let named_as_segment = manifest_name(&file_name(group[0].path())).is_some();
    let manifest: Option<FoundManifest> = match (&first.capture_id, named_as_segment) {
        (Some(id), true) => manifests_in(&dir)
            .0
            .into_iter()
            .find(|m| m.manifest.capture_id == *id),
        _ => None,
    };
    let size_of = |name: &str| {
        std::fs::symlink_metadata(dir.join(name))
            .ok()
            .map(|m| m.len())
    };
    // The chain: each later segment's link against the file before it.
    let mut chain_consistent = None;
    for pair in group.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let (Some(b), Some(a)) = (
            before.metadata().segment_index,
            after.metadata().segment_index,
        ) else {
            continue;
        };
        if b.checked_add(1) != Some(a) {
            continue;
        }
        let Some(link) = &after.metadata().previous_segment else {
            if after.metadata().format_version.minor >= 3 && manifest.is_some() {
                chain_consistent = Some(false);
                problems.push(format!("segment {a} has no link to segment {b}"));
            }
            continue;
        };
        let bytes = before
            .remote_len()
            .unwrap_or_else(|| std::fs::metadata(before.path()).map_or(0, |m| m.len()));
        let ok = link.segment_index == b
            && link.file == file_name(before.path())
            && link.bytes == bytes
            && link.rows == before.num_rows();
        if !ok {
            problems.push(format!(
                "segment {a}'s link does not match segment {b} ({}, {bytes} bytes)",
                file_name(before.path())
            ));
        }
        chain_consistent = Some(chain_consistent.unwrap_or(true) && ok);
    }
    let mut manifest_consistent = None;
    if let Some(found) = &manifest {
        let mut ok = true;
        for entry in &found.manifest.segments {
            match size_of(&entry.file) {
                Some(bytes) if bytes == entry.bytes => {}
                Some(bytes) => {
                    ok = false;
                    problems.push(format!(
                        "{} is {bytes} bytes, the manifest says {}",
                        bounded(&entry.file),
                        entry.bytes
                    ));
                }
                None => {
                    ok = false;
                    problems.push(format!(
                        "{} (segment {}) is listed in the manifest but not there",
                        bounded(&entry.file),
                        entry.segment_index
                    ));
                }
            }
        }
        for reader in group {
            let name = file_name(reader.path());
            if !found.manifest.segments.iter().any(|s| s.file == name) {
                ok = false;
                problems.push(format!("{name} is not in the manifest"));
            }
        }
        manifest_consistent = Some(ok);
    } else if named_as_segment && first.capture_id.is_some() && first.format_version.minor >= 3 {
        problems.push(format!("no manifest of this capture in {}", dir.display()));
    }
    Integrity {
        kind: if derived {
            "derived"
        } else if named_as_segment {
            "directory capture"
        } else {
            "single file"
        },
        manifest: manifest.as_ref().map(|m| m.path.display().to_string()),
        manifest_complete: manifest.as_ref().map(|m| m.manifest.complete),
        chain_consistent,
        manifest_consistent,
        problems,
        hashed: false,
    }
}

fn write_table(out: &mut impl Write, info: &Info) -> std::io::Result<()> {
    for (n, capture) in info.captures.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let id = capture.capture_id.as_deref().unwrap_or("(none)");
        writeln!(
            out,
            "capture {}: {} segment{}",
            table::visible(id),
            capture.segments.len(),
            labels::plural(capture.segments.len() as u64)
        )?;
        let t = &capture.targets;
        let mut targets = Vec::new();
        if t.system_wide {
            targets.push("system-wide".to_owned());
        }
        if !t.pids.is_empty() {
            targets.push(format!("pids {:?}", t.pids));
        }
        if let Some(command) = &t.command {
            targets.push(format!("command {command:?}"));
        }
        if !t.comms.is_empty() {
            targets.push(format!("comms {:?}", t.comms));
        }
        if !t.cgroups.is_empty() {
            targets.push(format!("cgroups {:?}", t.cgroups));
        }
        if t.follow_forks {
            targets.push("following forks".to_owned());
        }
        let kinds: Vec<String> = capture
            .rows_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {}", labels::thousands(*n)))
            .collect();
        let c = &capture.counters;
        let lost = if capture.lost == 0 {
            "none".to_owned()
        } else {
            format!(
                "{} (ring buffer full {}, no room for call {}, undecodable {}) in {}",
                labels::thousands(capture.lost),
                labels::thousands(c.lost_ringbuf_full),
                labels::thousands(c.entry_map_full),
                labels::thousands(c.decode_errors),
                capture.loss_windows.windows_in_words()
            )
        };
        let mut fields: Vec<(&str, String)> = vec![
            ("host", capture.host.clone()),
            ("kernel", capture.kernel.clone()),
            (
                "recorder",
                format!(
                    "{}, format {}",
                    capture.recorder_version,
                    capture.format_versions.join(", ")
                ),
            ),
            (
                "time",
                format!(
                    "{} to {} ({:.3} s)",
                    capture.start, capture.end, capture.duration_s
                ),
            ),
            ("targets", targets.join("; ")),
            (
                "attach mode",
                if sources::exit_only(&capture.attach_mode) {
                    format!(
                        "{} (calls recorded at their exit only: no durations)",
                        capture.attach_mode
                    )
                } else {
                    capture.attach_mode.clone()
                },
            ),
            (
                "call stacks",
                match &capture.stacks {
                    None => "none".to_owned(),
                    Some(s) if s.stack_bytes > 0 => format!(
                        "{} for {}, at most {} frames, {} bytes of stack per call",
                        s.mode,
                        s.syscalls.join(","),
                        s.max_frames,
                        s.stack_bytes
                    ),
                    Some(s) => format!(
                        "{} for {}, at most {} frames",
                        s.mode,
                        s.syscalls.join(","),
                        s.max_frames
                    ),
                },
            ),
            (
                "rows",
                format!(
                    "{} ({}; counted from the kind column)",
                    labels::thousands(capture.rows),
                    kinds.join(", ")
                ),
            ),
            ("lost", lost),
        ];
        if c.orphan_exits > 0 || c.follow_map_full > 0 {
            fields.push((
                "not recorded",
                format!(
                    "{} exits without entry, {} processes not followed (follow map full)",
                    labels::thousands(c.orphan_exits),
                    labels::thousands(c.follow_map_full)
                ),
            ));
        }
        for lossy in &capture.lossy_segments {
            fields.push((
                "loss in",
                format!(
                    "{} (segment {}): {} lost between {} and {}",
                    lossy.file,
                    lossy
                        .segment_index
                        .map_or_else(|| "-".to_owned(), |i| i.to_string()),
                    labels::thousands(lossy.lost),
                    lossy.from,
                    lossy.to
                ),
            ));
        }
        for gap in &capture.missing_segments {
            fields.push(("missing", gap.sentence()));
        }
        if let Some(r) = &capture.redaction {
            let how: Vec<String> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            fields.push((
                "redaction",
                format!(
                    "{} (key id {}) by {}: {}",
                    r.method,
                    r.key_id,
                    r.tool,
                    how.join(", ")
                ),
            ));
        }
        for step in &capture.provenance {
            let parents: Vec<String> = step
                .parents
                .iter()
                .take(8)
                .map(|p| {
                    format!(
                        "{} (sha256 {}…, {} rows)",
                        if p.file.is_empty() {
                            "(name hidden)"
                        } else {
                            &p.file
                        },
                        p.sha256.chars().take(16).collect::<String>(),
                        labels::thousands(p.rows)
                    )
                })
                .collect();
            fields.push((
                "provenance",
                bounded(&format!(
                    "{} by {} at {} from {}{}",
                    step.operation,
                    step.tool,
                    step.at,
                    parents.join(", "),
                    if step.parents.len() > 8 { ", ..." } else { "" }
                )),
            ));
        }
        let integ = &capture.integrity;
        let status = match (integ.kind, &integ.manifest) {
            ("directory capture", Some(m)) => format!(
                "directory capture; manifest {m} ({}); chain {}; manifest {}",
                if integ.manifest_complete == Some(true) {
                    "complete"
                } else {
                    "recording not finished"
                },
                consistent(integ.chain_consistent),
                consistent(integ.manifest_consistent)
            ),
            ("directory capture", None) => "directory capture without its manifest".to_owned(),
            ("derived", _) => {
                "derived from other captures (`verify --parent` checks them)".to_owned()
            }
            _ => "single file: no chain or manifest".to_owned(),
        };
        fields.push((
            "integrity",
            format!("{status}; by sizes only, `mmap-analyze verify` computes the hashes"),
        ));
        for problem in &integ.problems {
            fields.push(("  mismatch", problem.clone()));
        }
        table::write_fields(out, &fields)?;
        writeln!(out, "segments:")?;
        let mut segs = table::Table::new(&[
            table::Column::right("INDEX"),
            table::Column::left("FILE"),
            table::Column::left("START"),
            table::Column::left("END"),
            table::Column::right("ROWS"),
            table::Column::right("BYTES"),
            table::Column::left("NOTE"),
        ]);
        for s in &capture.segments {
            let mut note = Vec::new();
            if s.recovered {
                note.push("recovered");
            }
            if s.linked {
                note.push("linked");
            }
            segs.push(vec![
                s.segment_index
                    .map_or_else(|| "-".to_owned(), |i| i.to_string()),
                s.file.clone(),
                s.start.clone(),
                s.end.clone(),
                labels::thousands(s.rows),
                labels::thousands(s.bytes),
                note.join(", "),
            ]);
        }
        segs.write(out, "  ")?;
        if !capture.loss_windows.is_empty() {
            writeln!(out, "loss windows:")?;
            capture.loss_windows.write(out)?;
        }
    }
    Ok(())
}

fn consistent(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "consistent",
        Some(false) => "INCONSISTENT",
        None => "not applicable",
    }
}
