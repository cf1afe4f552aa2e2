//! The report's flame graph: mapped bytes by call stack (format 1.4 `stack_id` and `frame`
//! rows), drawn by `inferno` and made static for the page.
//!
//! inferno's SVG is written for a file of its own: an XML prologue, namespaces and a link in a
//! comment, a script for zoom and search (with `onload`), a style sheet (that inside a page would
//! apply to every SVG of it) and a gradient filled by `url(#...)`. [`statically`] keeps only the
//! drawing: the frames, each a rectangle with its name and a `<title>` that the browser shows on
//! hover (name, bytes, share). Zoom and search are left out: the page has no script.

use std::{collections::BTreeMap, fmt::Write as _};

use inferno::flamegraph::{self, Options, Palette, color::BasicPalette};
use xml::{
    Reader, Writer,
    events::{BytesStart, Event},
};

use super::collect::{Cell, rows, where_all};
use crate::{
    engine::{Engine, EngineError},
    table::visible,
};

/// The most stacks drawn; the others are summed into one `[other]` stack.
pub const MAX_STACKS: usize = 2_000;

/// The name of the stack that sums the stacks left out.
pub const OTHER: &str = "[other]";

/// Mapped bytes by call stack, as folded lines.
#[derive(Clone, Debug, Default)]
pub struct Flame {
    /// `root;...;leaf BYTES`, the heaviest first.
    pub lines: Vec<String>,
    /// Distinct stacks that mapped bytes (drawn or summed into `[other]`).
    pub stacks: usize,
    /// Bytes mapped by calls with a stack.
    pub bytes: u64,
    /// Bytes mapped by calls without one (no stack recorded for them).
    pub without_stack: u64,
}

/// The bytes a successful call maps: `len` of mmap, the growth of mremap.
const BYTES: &str = "CASE syscall WHEN 'mmap' THEN CAST(len AS BIGINT) \
                     ELSE greatest(CAST(new_len AS BIGINT) - CAST(len AS BIGINT), 0) END";

/// Mapped bytes per stack of the calls that `calls` (SQL over [`crate::input::rows`]) selects,
/// with the frames of the [`MAX_STACKS`] heaviest stacks.
pub fn collect(engine: &Engine, calls: Option<&str>) -> Result<Flame, EngineError> {
    let relation = crate::input::rows();
    let per_stack = format!(
        "SELECT CAST(stack_id AS VARCHAR) AS id, CAST(sum({BYTES}) AS BIGINT) AS bytes, \
           coalesce(capture_id, '') AS capture \
         FROM {relation} r{} GROUP BY capture_id, stack_id ORDER BY bytes DESC, capture, id",
        where_all(&[
            Some(
                "kind = 'syscall' AND errno IS NULL AND ret IS NOT NULL AND syscall IN ('mmap', \
                 'mremap')"
            ),
            calls
        ])
    );
    let mut flame = Flame::default();
    // Stack ids as text (they are unsigned 64-bit numbers), with their recording: ids are unique
    // only within one recording (`capture_id`).
    let mut heaviest: Vec<((String, String), u64)> = Vec::new();
    let mut other = 0_u64;
    for row in rows(engine, &per_stack)? {
        let bytes = u64::try_from(row[1].int()).unwrap_or(0);
        match row[0] {
            Cell::Null => flame.without_stack += bytes,
            _ if bytes == 0 => {}
            _ => {
                flame.stacks += 1;
                flame.bytes += bytes;
                if heaviest.len() < MAX_STACKS {
                    heaviest.push(((row[2].text(), row[0].text()), bytes));
                } else {
                    other += bytes;
                }
            }
        }
    }
    if heaviest.is_empty() {
        return Ok(flame);
    }
    // The frames of those stacks: a stack used in several segments has its frames in each.
    // Digits only (a cast of an integer): safe as literals.
    let ids: Vec<&str> = heaviest
        .iter()
        .map(|((_, id), _)| id.as_str())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let frames = format!(
        "SELECT CAST(stack_id AS VARCHAR) AS id, frame_index, first_value(frame_function) AS function, \
           first_value(frame_module) AS module, first_value(frame_offset) AS offset, \
           first_value(frame_addr) AS addr, coalesce(capture_id, '') AS capture \
         FROM events WHERE kind = 'frame' AND stack_id IN ({}) AND frame_index IS NOT NULL \
         GROUP BY capture_id, stack_id, frame_index",
        ids.join(", ")
    );
    let mut names: BTreeMap<(String, String), BTreeMap<i64, String>> = BTreeMap::new();
    for row in rows(engine, &frames)? {
        names
            .entry((row[6].text(), row[0].text()))
            .or_default()
            .insert(row[1].int(), frame_name(&row[2], &row[3], &row[4], &row[5]));
    }
    for (key, bytes) in heaviest {
        let stack = names.get(&key).map_or_else(
            || format!("[stack {}: no frames]", key.1),
            |frames| {
                // Root first: the highest frame index is the outermost caller.
                let names: Vec<&str> = frames.values().rev().map(String::as_str).collect();
                names.join(";")
            },
        );
        flame.lines.push(format!("{stack} {bytes}"));
    }
    if other > 0 {
        flame.lines.push(format!("{OTHER} {other}"));
    }
    Ok(flame)
}

/// A frame's name in a folded line: its function; else `module+0xOFFSET` (the file name of the
/// module); else its address. Control characters are shown as escapes and `;` (the separator of
/// frames) as `:`.
fn frame_name(function: &Cell, module: &Cell, offset: &Cell, addr: &Cell) -> String {
    let name = match (function, module) {
        (Cell::Text(function), _) if !function.is_empty() => function.clone(),
        (_, Cell::Text(module)) => {
            let file = module.rsplit('/').next().unwrap_or(module);
            match offset {
                Cell::Null => file.to_owned(),
                offset => format!("{file}+{:#x}", offset.int()),
            }
        }
        _ => match addr {
            Cell::Null => "[unknown]".to_owned(),
            addr => format!("{:#x}", addr.int()),
        },
    };
    visible(&name).replace(';', ":")
}

/// The width of the drawing, as the page's other charts.
const WIDTH: usize = 960;

/// The flame graph of `flame`'s lines as an SVG element for the page (no script, no style
/// sheet, no namespace, nothing fetched), or why it could not be drawn.
pub fn svg(flame: &Flame) -> Result<String, String> {
    let mut options = Options::default();
    options.title = String::new();
    options.count_name = "bytes".to_owned();
    options.name_type = String::new();
    options.colors = Palette::Basic(BasicPalette::Mem);
    // The same colour for the same name, and the same page for the same capture.
    options.hash = true;
    options.deterministic = true;
    options.image_width = Some(WIDTH);
    options.font_type = "monospace".to_owned();
    let mut out = Vec::new();
    flamegraph::from_lines(
        &mut options,
        flame.lines.iter().map(String::as_str),
        &mut out,
    )
    .map_err(|err| format!("inferno could not draw it: {err}"))?;
    let svg = String::from_utf8(out).map_err(|err| format!("inferno wrote no UTF-8: {err}"))?;
    statically(&svg).map_err(|err| format!("inferno's SVG could not be read: {err}"))
}

/// Elements of inferno's SVG that the static page does without: the script, its style sheet,
/// the gradient, and (by id) the empty title and the controls and detail line of the script.
const DROPPED: [&str; 3] = ["script", "style", "defs"];
const DROPPED_IDS: [&str; 7] = [
    "title",
    "subtitle",
    "unzoom",
    "search",
    "ignorecase",
    "matched",
    "details",
];

/// inferno's SVG with only the drawing: see the module's documentation.
fn statically(svg: &str) -> Result<String, xml::Error> {
    let mut reader = Reader::from_str(svg);
    let mut writer = Writer::new(Vec::new());
    // Inside a dropped element: its depth.
    let mut skipping = 0_usize;
    let mut outermost = true;
    loop {
        let event = reader.read_event()?;
        if skipping > 0 {
            match event {
                Event::Start(_) => skipping += 1,
                Event::End(_) => skipping -= 1,
                Event::Eof => break,
                _ => {}
            }
            continue;
        }
        match event {
            Event::Eof => break,
            Event::Decl(_) | Event::DocType(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Start(e) if dropped(&e) => skipping = 1,
            Event::Empty(e) if dropped(&e) => {}
            Event::Start(e) => {
                let e = kept(&e, std::mem::take(&mut outermost))?;
                writer.write_event(Event::Start(e))?;
            }
            Event::Empty(e) => writer.write_event(Event::Empty(kept(&e, false)?))?,
            other => writer.write_event(other)?,
        }
    }
    Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
}

fn dropped(e: &BytesStart<'_>) -> bool {
    let name = e.name();
    if DROPPED.iter().any(|d| d.as_bytes() == name.as_ref()) {
        return true;
    }
    e.try_get_attribute("id").ok().flatten().is_some_and(|id| {
        DROPPED_IDS
            .iter()
            .any(|d| d.as_bytes() == id.value.as_ref())
    })
}

/// `e` without the attributes of the script (`onload`, `fg:*`) and the namespaces (inline SVG
/// in HTML needs none); the background gradient becomes a plain fill. The outermost `<svg>`
/// gets the class that the page's style sheet draws flame graphs with.
fn kept(e: &BytesStart<'_>, outermost: bool) -> Result<BytesStart<'static>, xml::Error> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut out = BytesStart::new(name);
    for attr in e.attributes() {
        let attr = attr.map_err(xml::Error::InvalidAttr)?;
        let key = attr.key.as_ref();
        if key == b"onload"
            || key == b"xmlns"
            || key.starts_with(b"xmlns:")
            || key.starts_with(b"fg:")
        {
            continue;
        }
        if key == b"fill" && attr.value.starts_with(b"url(") {
            out.push_attribute(("fill", "#f8f8f0"));
            continue;
        }
        // Copied as inferno escaped it.
        out.push_attribute(attr);
    }
    if outermost {
        out.push_attribute(("class", "flame"));
        out.push_attribute(("role", "img"));
        out.push_attribute(("aria-label", "flame graph of mapped bytes by call stack"));
    }
    Ok(out.into_owned())
}

/// One line for the page on what the flame graph shows.
pub fn caption(flame: &Flame, bytes: impl Fn(u64) -> String) -> String {
    let mut text = format!(
        "Bytes mapped (successful mmap, and mremap growth) by the call stack of the call: each \
         box is a function, as wide as the bytes mapped from it and the functions it called, its \
         callers below it (root at the bottom). {} of {} mapped by {} stack{}",
        bytes(flame.bytes),
        bytes(flame.bytes + flame.without_stack),
        crate::labels::thousands(flame.stacks as u64),
        if flame.stacks == 1 { "" } else { "s" }
    );
    if flame.stacks > MAX_STACKS {
        let _ = write!(
            text,
            "; the {} heaviest are drawn, the others summed as {OTHER}",
            crate::labels::thousands(MAX_STACKS as u64)
        );
    }
    if flame.without_stack > 0 {
        let _ = write!(
            text,
            "; {} by calls without a stack",
            bytes(flame.without_stack)
        );
    }
    text.push_str(
        ". Hover a box for its name, bytes and share (no zoom or search: the page has no script).",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flame(lines: &[&str]) -> Flame {
        Flame {
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
            stacks: lines.len(),
            bytes: 1,
            without_stack: 0,
        }
    }

    #[test]
    fn the_svg_is_static_and_names_are_escaped() {
        let svg = svg(&flame(&[
            "main;outer;inner;mmap 4096",
            "main;a<b&c>;mmap 8192",
        ]))
        .expect("drawn");
        for gone in [
            "<script",
            "<style",
            "onload",
            "xmlns",
            "http://",
            "url(",
            "<?xml",
            "<!DOCTYPE",
            "fg:",
        ] {
            assert!(!svg.contains(gone), "{gone} in {svg}");
        }
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(svg.contains(r#"class="flame""#));
        for name in ["main", "outer", "inner", "mmap"] {
            assert!(svg.contains(&format!("<title>{name} (")), "{name}: {svg}");
        }
        assert!(svg.contains("a&lt;b&amp;c&gt;"), "{svg}");
        assert!(!svg.contains("a<b&c>"));
    }

    #[test]
    fn frame_names_fall_back_to_module_and_address() {
        let text = |s: &str| Cell::Text(s.to_owned());
        assert_eq!(
            frame_name(&text("f;g\n"), &Cell::Null, &Cell::Null, &Cell::Null),
            "f:g\\n"
        );
        assert_eq!(
            frame_name(
                &Cell::Null,
                &text("/usr/lib/libc.so.6"),
                &Cell::Int(0x1234),
                &Cell::Int(1)
            ),
            "libc.so.6+0x1234"
        );
        assert_eq!(
            frame_name(&Cell::Null, &Cell::Null, &Cell::Null, &Cell::Int(0xabc)),
            "0xabc"
        );
    }
}
