//! The page: sections in the order a responder reads them.

use serde_json::Value;

use super::{
    MAX_REGIONS, Report,
    collect::{Cell, Histogram},
    flame,
    html::Html,
    svg::{self, Block, Series, Unit},
    tables::Kind,
};
use crate::{findings::Finding, labels};

/// The style sheet, inline (no fetch). Plain CSS without `<` or `&`, so the page stays XML.
const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #4e79a7; padding-bottom: 4px; margin-top: 1.8em; }
h3 { margin-bottom: 0.3em; }
p.note, p.bound { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #eef2f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { overflow-wrap: break-word; }
table.fields th { background: #f6f6f6; font-weight: normal; color: #444; }
.ok { color: #1a7f37; font-weight: bold; }
.bad { color: #b42318; font-weight: bold; }
.warn { color: #8a4b00; }
.sev-high { color: #b42318; font-weight: bold; }
.sev-medium { color: #b35c00; font-weight: bold; }
figure { margin: 1em 0 2em; }
figcaption { font-size: 0.9em; color: #444; margin-top: 4px; }
svg { display: block; background: #fff; }
svg .grid { stroke: #e5e5e5; stroke-width: 1; }
svg .axis { stroke: #333; stroke-width: 1; }
svg .break { stroke: #333; stroke-width: 1.5; }
svg .tick { font-size: 11px; fill: #333; }
svg .gap { font-size: 10px; fill: #777; }
svg .legend { font-size: 12px; fill: #222; }
svg .region { font-size: 11px; fill: #222; }
svg .axis-title { font-size: 12px; fill: #222; }
svg.flame text { font-family: monospace; font-size: 12px; fill: #000; }
svg.flame g:hover rect { stroke: #000; stroke-width: 0.5; }
span.swatch { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }
code { background: #f3f3f3; padding: 1px 4px; word-break: break-all; }
"#;

/// The sections, in order: (id, heading).
pub const SECTIONS: [(&str, &str); 7] = [
    ("capture", "Capture"),
    ("completeness", "Completeness"),
    ("findings", "Findings"),
    ("tables", "Summary tables"),
    ("charts", "Charts"),
    ("stacks", "Mapped bytes by call stack"),
    ("address-space", "Address space"),
];

pub fn write(report: &Report) -> String {
    let mut h = Html::default();
    h.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
        .raw(r#"<meta name="viewport" content="width=device-width, initial-scale=1"/>"#)
        .element("title", &title(report))
        .raw("<style>")
        .raw(STYLE)
        .raw("</style></head><body>");
    h.element("h1", &title(report));
    h.raw(r#"<p class="note">"#)
        .text(&format!(
            "Written by mmap-analyze {} from {} input file{}. Self-contained: no script, nothing \
             fetched.",
            env!("CARGO_PKG_VERSION"),
            report.inputs.len(),
            labels::plural(report.inputs.len() as u64)
        ))
        .raw("</p>");
    match &report.predicate {
        Some(predicate) => {
            h.raw(r#"<p class="note">Tables and charts count the calls where <code>"#)
                .text(predicate)
                .raw("</code>; the capture and completeness sections cover every row.</p>");
        }
        None if !report.options.filter.is_set() => {
            h.raw(r#"<p class="note">Tables and charts count every call.</p>"#);
        }
        None => {}
    }
    h.raw(r#"<p class="bound">"#)
        .text(&format!(
            "Bounded: tables show at most {} rows, charts at most {} series, the address-space \
             picture at most {MAX_REGIONS} regions; each says when it leaves some out.",
            report.options.rows, report.options.series
        ))
        .raw("</p><nav>");
    for (id, heading) in SECTIONS {
        h.raw(&format!(r##"<a href="#{id}">"##))
            .text(heading)
            .raw("</a>");
    }
    h.raw("</nav>");
    capture(&mut h, report);
    completeness(&mut h, report);
    findings(&mut h, report);
    summary_tables(&mut h, report);
    charts(&mut h, report);
    stacks(&mut h, report);
    address_space(&mut h, report);
    h.raw("</body></html>\n");
    h.finish()
}

fn title(report: &Report) -> String {
    let hosts = strings(&report.summary["hosts"]).join(", ");
    format!("mmap-capture report: {hosts}")
}

fn section(h: &mut Html, id: &str) {
    let heading = SECTIONS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or(id, |(_, heading)| heading);
    h.raw(&format!(r#"<section id="{id}">"#))
        .element("h2", heading);
}

/// A JSON value as text: strings as they are, `null` as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().map(text).collect())
        .unwrap_or_default()
}

fn count(value: &Value) -> String {
    labels::thousands(value.as_u64().unwrap_or(0))
}

fn capture(h: &mut Html, report: &Report) {
    let s = &report.summary;
    section(h, "capture");
    let span = &report.span;
    h.fields(&[
        ("hosts", strings(&s["hosts"]).join(", ")),
        ("kernels", strings(&s["kernels"]).join(", ")),
        ("capture start", text(&s["capture_start"])),
        ("capture end", text(&s["capture_end"])),
        (
            "duration (to the last time a row records)",
            svg::duration_label((span.end - span.capture_start.min(span.start())) as f64),
        ),
        ("first row", text(&s["first_ts"])),
        ("last row", text(&s["last_ts"])),
        ("rows", count(&s["events"])),
        ("failed calls", count(&s["failed"])),
        (
            "bytes mapped (successful mmap)",
            labels::human_bytes(s["bytes_mapped"].as_u64().unwrap_or(0)),
        ),
    ]);
    h.element("h3", "Files");
    let files = s["files"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<(&str, String)>> = files
        .iter()
        .map(|f| {
            let id: String = text(&f["capture_id"]).chars().take(8).collect();
            vec![
                ("text", text(&f["path"])),
                ("text", text(&f["hostname"])),
                ("num", text(&f["format_version"])),
                ("text", id),
                ("num", text(&f["segment_index"])),
                ("text", text(&f["capture_start"])),
                ("text", text(&f["capture_end"])),
                ("num", count(&f["rows"])),
                ("num", count(&f["lost"])),
                (
                    "text",
                    if f["recovered"].as_bool() == Some(true) {
                        "recovered".to_owned()
                    } else {
                        "-".to_owned()
                    },
                ),
            ]
        })
        .collect();
    h.table(
        "input-files",
        &[
            "file", "host", "format", "capture", "segment", "start", "end", "rows", "lost", "",
        ],
        &rows,
    );
    h.raw("</section>");
}

fn completeness(h: &mut Html, report: &Report) {
    let s = &report.summary;
    section(h, "completeness");
    if s["complete"].as_bool() == Some(true) {
        h.raw(r#"<p class="ok">"#)
            .text("Complete: no records lost, no segment missing.")
            .raw("</p>");
    } else {
        h.raw(r#"<p class="bad">"#)
            .text("Incomplete: what happened in the gaps below is not in the capture.")
            .raw("</p>");
    }
    let c = &s["counters"];
    h.fields(&[
        ("lost records", count(&s["lost"])),
        ("  ring buffer full", count(&c["lost_ringbuf_full"])),
        ("  no room for call", count(&c["entry_map_full"])),
        ("  decode errors", count(&c["decode_errors"])),
        (
            "new processes not followed (map of followed processes full)",
            count(&c["follow_map_full"]),
        ),
        (
            "orphan exits (calls in progress at the start)",
            count(&s["orphan_exits"]),
        ),
        ("kernel records delivered", count(&c["emitted"])),
    ]);
    let missing = s["missing_segments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !missing.is_empty() {
        h.element("h3", "Missing segments");
        let rows: Vec<Vec<(&str, String)>> = missing
            .iter()
            .map(|m| {
                vec![
                    ("text", text(&m["capture_id"])),
                    (
                        "num",
                        format!("{}-{}", text(&m["first_index"]), text(&m["last_index"])),
                    ),
                    ("text", text(&m["unknown_from"])),
                    ("text", text(&m["unknown_to"])),
                ]
            })
            .collect();
        h.table(
            "missing-segments",
            &["capture", "segments", "unknown from", "unknown until"],
            &rows,
        );
    }
    let windows = s["loss_windows"].as_array().cloned().unwrap_or_default();
    if !windows.is_empty() {
        h.element("h3", "Loss windows");
        let rows: Vec<Vec<(&str, String)>> = windows
            .iter()
            .take(report.options.rows)
            .map(|w| {
                vec![
                    ("num", text(&w["cpu"])),
                    ("text", text(&w["from"])),
                    ("text", text(&w["to"])),
                    ("num", count(&w["count"])),
                ]
            })
            .collect();
        h.table(
            "loss-windows",
            &["cpu", "from", "to", "records lost"],
            &rows,
        );
        shown_of(h, rows.len(), windows.len() as u64, "loss windows");
    }
    h.raw("</section>");
}

/// "Showing 10 of 312 processes." when rows were left out.
fn shown_of(h: &mut Html, shown: usize, total: u64, what: &str) {
    if (shown as u64) < total {
        h.raw(r#"<p class="bound">"#)
            .text(&format!(
                "Showing {shown} of {} {what} (--rows sets how many).",
                labels::thousands(total)
            ))
            .raw("</p>");
    }
}

fn findings(h: &mut Html, report: &Report) {
    section(h, "findings");
    let (found, clean): (Vec<&Finding>, Vec<&Finding>) =
        report.findings.iter().partition(|f| f.found());
    if found.is_empty() {
        h.raw(r#"<p class="ok">"#)
            .text(&format!(
                "Nothing found ({} questions asked).",
                report.findings.len()
            ))
            .raw("</p>");
    }
    for finding in found {
        let severity = finding.severity.as_str();
        h.raw(&format!(r#"<h3 class="sev-{severity}">"#))
            .text(&format!("{}: {}", severity.to_uppercase(), finding.title))
            .raw("</h3>");
        h.raw(r#"<p class="note">"#).text(&format!(
            "{}: {}, {}.",
            finding.id,
            counted(finding.count, finding.unit),
            counted(finding.processes, "processes"),
        ));
        if let Some(note) = &finding.note {
            let stop = if note.ends_with('.') { "" } else { "." };
            h.text(&format!(" {note}{stop}"));
        }
        h.raw(" Its rows: <code>mmap-analyze sql INPUT ")
            .text(&format!("\"{}\"", finding.query()))
            .raw("</code></p>");
        let rows: Vec<Vec<(&str, String)>> = finding
            .examples
            .iter()
            .map(|e| {
                vec![
                    ("num", e.pid.to_string()),
                    ("text", e.comm.clone()),
                    ("num", labels::time_of_day_ns(e.ts_ns)),
                    ("text", e.what.clone()),
                    ("num", e.addr.map_or_else(|| "-".to_owned(), labels::hex)),
                    (
                        "num",
                        e.len.map_or_else(|| "-".to_owned(), labels::human_bytes),
                    ),
                    ("text", e.prot.clone().unwrap_or_default()),
                    ("text", e.file.clone().unwrap_or_default()),
                    ("text", e.detail.clone().unwrap_or_default()),
                ]
            })
            .collect();
        if !rows.is_empty() {
            h.table(
                &format!("finding-{}", finding.id),
                &[
                    "pid", "name", "time", "what", "address", "length", "prot", "file", "detail",
                ],
                &rows,
            );
        }
    }
    if !clean.is_empty() {
        let ids: Vec<&str> = clean.iter().map(|f| f.id).collect();
        h.raw(r#"<p class="note">"#)
            .text(&format!("Nothing found for: {}.", ids.join(", ")))
            .raw("</p>");
    }
    h.raw("</section>");
}

/// `1 process`, `2 processes`, `1 row`.
fn counted(n: u64, plural: &str) -> String {
    let unit = match (n, plural) {
        (1, "processes") => "process",
        (1, unit) => unit.strip_suffix('s').unwrap_or(unit),
        (_, unit) => unit,
    };
    format!("{} {unit}", labels::thousands(n))
}

fn summary_tables(h: &mut Html, report: &Report) {
    section(h, "tables");
    for table in &report.tables {
        let spec = &table.spec;
        h.element("h3", spec.title);
        h.raw(r#"<p class="note">"#).text(spec.what).raw("</p>");
        let header: Vec<&str> = spec.columns.iter().map(|(name, _)| *name).collect();
        let rows: Vec<Vec<(&str, String)>> = table
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(spec.columns)
                    .map(|(cell, (_, kind))| render_cell(cell, *kind))
                    .collect()
            })
            .collect();
        h.table(spec.id, &header, &rows);
        if rows.is_empty() {
            h.raw(r#"<p class="note">None.</p>"#);
        }
        shown_of(h, rows.len(), table.total, "rows");
    }
    h.raw("</section>");
}

fn render_cell(cell: &Cell, kind: Kind) -> (&'static str, String) {
    if *cell == Cell::Null {
        return ("num", "-".to_owned());
    }
    let n = cell.int();
    match kind {
        Kind::Text => ("text", cell.text()),
        Kind::Int => ("num", cell.text()),
        Kind::Count => ("num", labels::thousands(u64::try_from(n).unwrap_or(0))),
        Kind::Bytes => ("num", labels::human_bytes(u64::try_from(n).unwrap_or(0))),
        Kind::Duration => ("num", svg::duration_label(n as f64)),
        Kind::Time => ("num", labels::time_of_day_ns(n)),
    }
}

/// A chart with its caption.
fn figure(h: &mut Html, id: &str, heading: &str, svg: &str, caption: &str) {
    h.raw(&format!(r#"<figure id="{id}">"#))
        .element("h3", heading)
        .raw(svg)
        .raw("<figcaption>")
        .text(caption)
        .raw("</figcaption></figure>");
}

fn charts(h: &mut Html, report: &Report) {
    section(h, "charts");
    let b = &report.buckets;
    let x_max = (report.span.end - b.origin) as f64;
    let at_x = |i: usize| b.end_of(i as i64).min(x_max);
    let origin = labels::rfc3339_ns(b.origin);
    let width = svg::duration_label(b.width as f64);

    let shown: Vec<Series> = report
        .mapped
        .iter()
        .filter(|s| s.peak() > 0)
        .take(report.options.series)
        .map(|s| Series {
            name: format!("{} {}", s.pid, s.comm),
            points: s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (at_x(i), *v as f64))
                .collect(),
        })
        .collect();
    let with_bytes = report.mapped.iter().filter(|s| s.peak() > 0).count();
    let caption = format!(
        "The {} of {with_bytes} processes with the highest peak (legend: pid and name), at the \
         end of each {width} from {origin}. Mapped bytes: the first snapshot of the process, plus \
         successful mmap, minus munmap, plus mremap growth; an exec or exit empties it.",
        shown.len()
    );
    if shown.is_empty() {
        h.element("h3", "Mapped bytes over time")
            .raw(r#"<p class="note">No call mapped memory.</p>"#);
    } else {
        let chart = svg::line_chart(
            "mapped bytes over time",
            &shown,
            x_max,
            Unit::Bytes,
            "mapped bytes",
        );
        figure(
            h,
            "chart-mapped",
            "Mapped bytes over time",
            &chart,
            &caption,
        );
    }

    let seconds = b.width as f64 / 1e9;
    let rates: Vec<Series> = report
        .rates
        .iter()
        .take(report.options.series)
        .map(|(name, counts)| Series {
            name: name.clone(),
            points: counts
                .iter()
                .enumerate()
                .map(|(i, n)| (at_x(i), *n as f64 / seconds))
                .collect(),
        })
        .collect();
    if rates.is_empty() {
        h.element("h3", "Call rate over time")
            .raw(r#"<p class="note">No calls.</p>"#);
    } else {
        let chart = svg::line_chart(
            "calls per second over time, per system call",
            &rates,
            x_max,
            Unit::Count,
            "calls per second",
        );
        let caption = format!(
            "Calls per second of each system call ({} of {}), averaged over each {width} from \
             {origin}.",
            rates.len(),
            report.rates.len()
        );
        figure(h, "chart-rate", "Call rate over time", &chart, &caption);
    }

    let Histogram {
        first,
        syscalls,
        counts,
    } = &report.latency;
    let names: Vec<String> = syscalls
        .iter()
        .take(report.options.series)
        .cloned()
        .collect();
    let columns = counts.first().map_or(0, Vec::len);
    if names.is_empty() || columns == 0 {
        h.element("h3", "Latency histogram")
            .raw(r#"<p class="note">No call with a duration.</p>"#);
    } else {
        let categories: Vec<String> = (0..columns)
            .map(|i| svg::duration_label(2f64.powi((*first + i as i64) as i32)))
            .collect();
        let chart = svg::stacked_bars(
            "call durations in log2 buckets, per system call",
            &categories,
            &names,
            counts,
            "call duration (at least; each bucket up to twice its label)",
            "calls",
        );
        let caption = "Call durations (exit time minus entry time) in powers of two: the bar \
                       labelled 1.02 µs counts calls of 1024 to 2047 ns. Stacked by system call; \
                       calls whose exit was not seen are left out.";
        figure(h, "chart-latency", "Latency histogram", &chart, caption);
    }
    h.raw("</section>");
}

/// The flame graph of mapped bytes by call stack, or one line saying why there is none.
fn stacks(h: &mut Html, report: &Report) {
    section(h, "stacks");
    let flame = &report.flame;
    if flame.lines.is_empty() {
        let why = if flame.without_stack > 0 {
            "No call stacks in this capture (record with --stacks fp or --stacks dwarf to see \
             which code mapped the memory)."
        } else {
            "No successful mmap or mremap call with a call stack."
        };
        h.raw(r#"<p class="note">"#).text(why).raw("</p></section>");
        return;
    }
    match flame::svg(flame) {
        Ok(chart) => {
            let caption = flame::caption(flame, labels::human_bytes);
            figure(h, "chart-flame", "Flame graph", &chart, &caption);
        }
        Err(why) => {
            h.raw(r#"<p class="warn">"#)
                .text(&format!("The flame graph could not be drawn: {why}"))
                .raw("</p>");
        }
    }
    h.raw("</section>");
}

fn address_space(h: &mut Html, report: &Report) {
    section(h, "address-space");
    let Some((map, why)) = &report.space else {
        h.raw(r#"<p class="note">"#)
            .text("No process had mapped bytes at the end (choose one with --pid).")
            .raw("</p></section>");
        return;
    };
    h.raw(r#"<p class="note">"#)
        .text(&format!(
            "Process {} ({}), {why}, at {}: state {}, {} mapped in {} regions.",
            text(&map["pid"]),
            text(&map["comm"]),
            text(&map["at"]),
            text(&map["state"]),
            labels::human_bytes(map["bytes"].as_u64().unwrap_or(0)),
            map["regions"].as_array().map_or(0, Vec::len),
        ))
        .raw("</p>");
    if map["complete"].as_bool() == Some(true) {
        h.raw(r#"<p class="ok">"#)
            .text("Complete: the map is known from a snapshot, with nothing lost before.")
            .raw("</p>");
    }
    for note in strings(&map["notes"]) {
        h.raw(r#"<p class="warn">"#).text(&note).raw("</p>");
    }
    let regions = map["regions"].as_array().cloned().unwrap_or_default();
    let blocks: Vec<Block> = regions
        .iter()
        .take(MAX_REGIONS)
        .map(|r| Block {
            start: r["start"].as_u64().unwrap_or(0),
            end: r["end"].as_u64().unwrap_or(0),
            perms: text(&r["perms"]),
            name: region_name(r),
        })
        .collect();
    if blocks.is_empty() {
        h.raw(r#"<p class="note">No region.</p></section>"#);
        return;
    }
    let chart = svg::address_space("the address space, lowest address first", &blocks);
    let caption = format!(
        "Regions from the lowest address (left) to the highest, wrapped into lanes; a bar's \
         width grows with the logarithm of its size and gaps between regions are cut out (the \
         size of each gap is written under it). Hover a bar for its range. {}",
        if regions.len() > blocks.len() {
            format!("The first {} of {} regions.", blocks.len(), regions.len())
        } else {
            String::new()
        }
    );
    figure(h, "chart-space", "Regions by address", &chart, &caption);
    h.raw("<p>");
    for (perms, colour, meaning) in svg::PERMS {
        h.raw(&format!(
            r#"<span class="swatch" style="background:{colour}"></span>"#
        ))
        .text(&format!("{perms} {meaning}"));
    }
    h.raw("</p>");
    let rows: Vec<Vec<(&str, String)>> = regions
        .iter()
        .take(report.options.rows)
        .map(|r| {
            vec![
                ("num", text(&r["start_hex"])),
                ("num", text(&r["end_hex"])),
                ("text", text(&r["perms"])),
                ("num", labels::human_bytes(r["size"].as_u64().unwrap_or(0))),
                ("text", text(&r["path"])),
                ("text", text(&r["set_by"])),
            ]
        })
        .collect();
    h.table(
        "regions",
        &["start", "end", "perms", "size", "path", "set by"],
        &rows,
    );
    shown_of(h, rows.len(), regions.len() as u64, "regions");
    h.raw("</section>");
}

/// A region's label: the file name (with `(deleted)`), a pseudo path, or `[anon]`.
fn region_name(region: &Value) -> String {
    let Some(path) = region["path"].as_str() else {
        return "[anon]".to_owned();
    };
    let name = if path.starts_with('[') {
        path
    } else {
        path.rsplit('/').next().unwrap_or(path)
    };
    if region["deleted"].as_bool() == Some(true) {
        format!("{name} (deleted)")
    } else {
        name.to_owned()
    }
}
