//! Charts as inline SVG: a line chart over time, a stacked bar chart and the address-space strip,
//! with axes, ticks and a legend. Every text is escaped by [`Svg::text`]; the output is
//! well-formed XML (and HTML) with no external reference.

use std::fmt::Write as _;

use super::html::escape;
use crate::labels;

/// Ten colours that tell series apart (Tableau 10).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of series `index`.
pub fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// How the values of an axis read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: ticks at round KiB/MiB/GiB values.
    Bytes,
    /// A plain count.
    Count,
    /// Nanoseconds since the origin of the chart: `+1.5 s`.
    Elapsed,
}

impl Unit {
    /// The value as a tick label.
    fn label(self, value: f64) -> String {
        match self {
            Self::Bytes => labels::human_bytes(value.max(0.0) as u64),
            Self::Count => count_label(value),
            Self::Elapsed => format!("+{}", duration_label(value)),
        }
    }

    /// Round tick values from 0 (or `min`) to at least `max`, about `n` of them.
    fn ticks(self, min: f64, max: f64, n: usize) -> Vec<f64> {
        let base = match self {
            Self::Bytes => {
                // Steps of a round number of the largest binary unit below the maximum.
                let mut unit = 1.0;
                while max / unit >= 1024.0 {
                    unit *= 1024.0;
                }
                unit
            }
            Self::Count | Self::Elapsed => 1.0,
        };
        nice_ticks(min / base, max / base, n)
            .into_iter()
            .map(|t| t * base)
            .collect()
    }
}

/// `1234` as `1,234`, `0.5` as `0.5`.
fn count_label(value: f64) -> String {
    if value.fract().abs() < 1e-9 && value >= 0.0 {
        labels::thousands(value as u64)
    } else {
        format!("{value:.2}")
    }
}

/// Nanoseconds as a short duration: `750 ns`, `1.5 µs`, `20 ms`, `3.2 s`.
pub fn duration_label(ns: f64) -> String {
    let (value, unit) = if ns.abs() >= 86_400e9 {
        (ns / 86_400e9, "d")
    } else if ns.abs() >= 3_600e9 {
        (ns / 3_600e9, "h")
    } else if ns.abs() >= 60e9 {
        (ns / 60e9, "min")
    } else if ns.abs() >= 1e9 {
        (ns / 1e9, "s")
    } else if ns.abs() >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns.abs() >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {unit}")
}

/// Labels of elapsed-time ticks (ns), all in the largest unit the step between them is a whole
/// number of: `+20 s, +40 s, +60 s` rather than `+40 s, +1 min, +1.33 min`.
fn elapsed_labels(ticks: &[f64]) -> Vec<String> {
    const UNITS: [(f64, &str); 7] = [
        (86_400e9, "d"),
        (3_600e9, "h"),
        (60e9, "min"),
        (1e9, "s"),
        (1e6, "ms"),
        (1e3, "µs"),
        (1.0, "ns"),
    ];
    let step = match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    let (size, unit) = UNITS
        .into_iter()
        .find(|(size, _)| step >= *size && ((step / size) - (step / size).round()).abs() < 1e-6)
        .unwrap_or((1.0, "ns"));
    ticks
        .iter()
        .map(|tick| {
            let value = format!("{:.3}", tick / size);
            let value = value.trim_end_matches('0').trim_end_matches('.');
            format!("+{value} {unit}")
        })
        .collect()
}

/// Ticks at 1, 2 or 5 times a power of ten covering `min..=max`.
fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    let range = (max - min).max(f64::MIN_POSITIVE);
    let raw = range / n.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power);
    let first = (min / step).floor() * step;
    let mut ticks = Vec::new();
    let mut tick = first;
    while tick < max + step * 0.999 && ticks.len() < 50 {
        ticks.push(tick);
        tick += step;
    }
    ticks
}

/// An SVG document being written.
pub struct Svg {
    buf: String,
}

impl Svg {
    /// A drawing of `width` x `height` pixels described by `label` for screen readers.
    pub fn new(width: f64, height: f64, label: &str) -> Self {
        let mut buf = String::new();
        let _ = write!(
            buf,
            r#"<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
            escape(label)
        );
        Self { buf }
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str) {
        let _ = write!(
            self.buf,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" class="{class}"/>"#
        );
    }

    /// A filled rectangle with a tooltip.
    pub fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str, tip: &str) {
        let _ = write!(
            self.buf,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"><title>{}</title></rect>"#,
            escape(tip)
        );
    }

    /// A line through `points` in colour `stroke`.
    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, tip: &str) {
        let mut list = String::new();
        for (x, y) in points {
            let _ = write!(list, "{x:.1},{y:.1} ");
        }
        let _ = write!(
            self.buf,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="2"><title>{}</title></polyline>"#,
            list.trim_end(),
            escape(tip)
        );
    }

    /// `text` at `(x, y)`, anchored `start`, `middle` or `end`, rotated by `rotate` degrees.
    pub fn text(&mut self, (x, y): (f64, f64), anchor: &str, class: &str, rotate: f64, text: &str) {
        let transform = if rotate == 0.0 {
            String::new()
        } else {
            format!(r#" transform="rotate({rotate} {x:.1} {y:.1})""#)
        };
        let _ = write!(
            self.buf,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}"{transform}>{}</text>"#,
            escape(text)
        );
    }

    pub fn finish(mut self) -> String {
        self.buf.push_str("</svg>");
        self.buf
    }
}

/// Where the plot area of a chart is, and how values map into it.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0).max(f64::MIN_POSITIVE) * self.width
    }

    fn py(&self, y: f64) -> f64 {
        self.top + self.height
            - (y - self.y.0) / (self.y.1 - self.y.0).max(f64::MIN_POSITIVE) * self.height
    }

    /// The y axis: grid lines, tick labels and its title.
    fn y_axis(&self, svg: &mut Svg, ticks: &[f64], unit: Unit, title: &str) {
        for tick in ticks {
            let y = self.py(*tick);
            svg.line((self.left, y), (self.left + self.width, y), "grid");
            svg.text(
                (self.left - 6.0, y + 4.0),
                "end",
                "tick",
                0.0,
                &unit.label(*tick),
            );
        }
        svg.line(
            (self.left, self.top),
            (self.left, self.top + self.height),
            "axis",
        );
        let middle = self.top + self.height / 2.0;
        svg.text((16.0, middle), "middle", "axis-title", -90.0, title);
    }

    /// The x axis line and its title.
    fn x_axis(&self, svg: &mut Svg, title: &str) {
        let bottom = self.top + self.height;
        svg.line(
            (self.left, bottom),
            (self.left + self.width, bottom),
            "axis",
        );
        svg.text(
            (self.left + self.width / 2.0, bottom + 38.0),
            "middle",
            "axis-title",
            0.0,
            title,
        );
    }
}

/// A named series of `(x, y)` points.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 960.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 16.0;
const PLOT_HEIGHT: f64 = 260.0;
const BOTTOM: f64 = 50.0;

/// The legend at the right of a chart: a swatch and a name per series.
fn legend(svg: &mut Svg, names: &[String]) {
    let x = WIDTH - RIGHT + 16.0;
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 8.0 + i as f64 * 18.0;
        svg.rect((x, y - 9.0), (12.0, 12.0), colour(i), name);
        let short: String = name.chars().take(28).collect();
        svg.text((x + 18.0, y + 1.0), "start", "legend", 0.0, &short);
    }
}

/// Lines over time: x is nanoseconds since the chart's origin, from 0 to `x_max`.
pub fn line_chart(
    label: &str,
    series: &[Series],
    x_max: f64,
    y_unit: Unit,
    y_title: &str,
) -> String {
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let mut svg = Svg::new(WIDTH, height, label);
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_ticks = y_unit.ticks(0.0, y_max.max(1.0), 5);
    let x_ticks = Unit::Elapsed.ticks(0.0, x_max.max(1.0), 8);
    let frame = Frame {
        left: LEFT,
        top: TOP,
        width: WIDTH - LEFT - RIGHT,
        height: PLOT_HEIGHT,
        x: (0.0, x_ticks.last().copied().unwrap_or(1.0)),
        y: (0.0, y_ticks.last().copied().unwrap_or(1.0)),
    };
    frame.y_axis(&mut svg, &y_ticks, y_unit, y_title);
    let bottom = TOP + PLOT_HEIGHT;
    for (tick, text) in x_ticks.iter().zip(elapsed_labels(&x_ticks)) {
        let x = frame.px(*tick);
        svg.line((x, bottom), (x, bottom + 5.0), "axis");
        svg.text((x, bottom + 18.0), "middle", "tick", 0.0, &text);
    }
    frame.x_axis(&mut svg, "time since the first row");
    for (i, s) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|(x, y)| (frame.px(*x), frame.py(*y)))
            .collect();
        svg.polyline(&points, colour(i), &s.name);
    }
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    legend(&mut svg, &names);
    svg.finish()
}

/// Stacked bars: one bar per category, one stack per series (`values[series][category]`).
pub fn stacked_bars(
    label: &str,
    categories: &[String],
    names: &[String],
    values: &[Vec<u64>],
    x_title: &str,
    y_title: &str,
) -> String {
    let height = TOP + PLOT_HEIGHT + BOTTOM + 10.0;
    let mut svg = Svg::new(WIDTH, height, label);
    let totals: Vec<u64> = (0..categories.len())
        .map(|c| values.iter().map(|v| v.get(c).copied().unwrap_or(0)).sum())
        .collect();
    let y_max = totals.iter().copied().max().unwrap_or(0) as f64;
    let y_ticks = Unit::Count.ticks(0.0, y_max.max(1.0), 5);
    let frame = Frame {
        left: LEFT,
        top: TOP,
        width: WIDTH - LEFT - RIGHT,
        height: PLOT_HEIGHT,
        x: (0.0, categories.len().max(1) as f64),
        y: (0.0, y_ticks.last().copied().unwrap_or(1.0)),
    };
    frame.y_axis(&mut svg, &y_ticks, Unit::Count, y_title);
    let slot = frame.width / categories.len().max(1) as f64;
    let bottom = TOP + PLOT_HEIGHT;
    for (c, category) in categories.iter().enumerate() {
        let x = frame.px(c as f64);
        let mut base = 0_u64;
        for (s, name) in names.iter().enumerate() {
            let value = values.get(s).and_then(|v| v.get(c)).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let (y0, y1) = (frame.py(base as f64), frame.py((base + value) as f64));
            let tip = format!("{name}, {category}: {}", labels::thousands(value));
            svg.rect(
                (x + slot * 0.1, y1),
                (slot * 0.8, (y0 - y1).max(1.0)),
                colour(s),
                &tip,
            );
            base += value;
        }
        // Every label when they fit, else every other one.
        let every = if slot >= 40.0 { 1 } else { 2 };
        if c % every == 0 {
            svg.text(
                (x + slot / 2.0, bottom + 16.0),
                "middle",
                "tick",
                0.0,
                category,
            );
        }
    }
    frame.x_axis(&mut svg, x_title);
    legend(&mut svg, names);
    svg.finish()
}

/// One region of an address space, for [`address_space`].
#[derive(Clone, Debug)]
pub struct Block {
    pub start: u64,
    pub end: u64,
    /// `rwxp` as in /proc/PID/maps.
    pub perms: String,
    /// The file name (or `[heap]`, `[stack]`, `[anon]`).
    pub name: String,
}

/// The colour and legend of a permission set (the `rwx` part).
pub const PERMS: [(&str, &str, &str); 6] = [
    ("r--", "#9ecae1", "read only"),
    ("rw-", "#59a14f", "read-write"),
    ("r-x", "#f28e2b", "read-execute"),
    ("rwx", "#d62728", "read-write-execute"),
    ("--x", "#b07aa1", "execute only"),
    ("---", "#d9d9d9", "no access (guard)"),
];

fn perms_colour(perms: &str) -> &'static str {
    let rwx = perms.get(..3).unwrap_or("---");
    PERMS
        .iter()
        .find(|(p, _, _)| *p == rwx)
        .map_or("#7f7f7f", |(_, colour, _)| *colour)
}

/// Regions as bars along the address axis, left to right, wrapped into lanes. A bar's width
/// grows with the logarithm of its size; gaps between regions are compressed to a break mark
/// with the gap's size (where the label fits). Each bar that starts a new file, and each bar
/// after a gap, is labelled with its name; the first bar of a run has its address under it (where
/// it fits).
pub fn address_space(label: &str, blocks: &[Block]) -> String {
    const LANE_WIDTH: f64 = 830.0;
    const LANE_HEIGHT: f64 = 190.0;
    const BAR_TOP: f64 = 110.0;
    const BAR_HEIGHT: f64 = 34.0;
    const GAP: f64 = 16.0;
    /// The width of `0x7f0000001000` in 11 px type, and some space.
    const ADDRESS_WIDTH: f64 = 96.0;
    /// The width of `+56.3 MiB` in 10 px type, and some space.
    const GAP_LABEL_WIDTH: f64 = 62.0;
    let width_of = |b: &Block| {
        let pages = (b.end.saturating_sub(b.start) / 4096).max(1) as f64;
        12.0 + 6.0 * pages.log2()
    };
    // Lay out: (lane, x) of each block and of each gap mark.
    let mut placed = Vec::new();
    let mut gaps = Vec::new();
    let (mut lane, mut x) = (0_usize, 10.0);
    let mut previous: Option<&Block> = None;
    for block in blocks {
        let w = width_of(block);
        let gap = previous.filter(|p| p.end < block.start);
        let needed = w + if gap.is_some() { GAP } else { 0.0 };
        if x + needed > LANE_WIDTH {
            lane += 1;
            x = 10.0;
        } else if let Some(p) = gap {
            gaps.push((lane, x, block.start - p.end));
            x += GAP;
        }
        let labelled = gap.is_some() || previous.is_none_or(|p| p.name != block.name) || x == 10.0;
        placed.push((lane, x, w, labelled, gap.is_some() || previous.is_none()));
        x += w;
        previous = Some(block);
    }
    let lanes = lane + 1;
    let height = lanes as f64 * LANE_HEIGHT + 10.0;
    // Room on the right for the address under the last bar of a lane.
    let mut svg = Svg::new(LANE_WIDTH + ADDRESS_WIDTH + 10.0, height, label);
    for l in 0..lanes {
        let y = l as f64 * LANE_HEIGHT + BAR_TOP + BAR_HEIGHT;
        svg.line((10.0, y), (LANE_WIDTH, y), "axis");
    }
    // Where the next address label fits: (lane, x).
    let mut address_room = (0_usize, 0.0);
    for (block, (lane, x, w, labelled, new_run)) in blocks.iter().zip(&placed) {
        let top = *lane as f64 * LANE_HEIGHT + BAR_TOP;
        let tip = format!(
            "{}-{} {} {} ({})",
            labels::hex(block.start),
            labels::hex(block.end),
            block.perms,
            block.name,
            labels::human_bytes(block.end - block.start)
        );
        svg.rect(
            (*x + 0.5, top),
            ((w - 1.0).max(1.0), BAR_HEIGHT),
            perms_colour(&block.perms),
            &tip,
        );
        if *labelled {
            let short: String = block.name.chars().take(22).collect();
            svg.text((*x + 8.0, top - 4.0), "start", "region", -60.0, &short);
        }
        // An address under the first bar of each run, when the previous one leaves room.
        if *new_run && (*lane, *x) >= address_room {
            address_room = (*lane, *x + ADDRESS_WIDTH);
            svg.text(
                (*x + 2.0, top + BAR_HEIGHT + 14.0),
                "start",
                "tick",
                0.0,
                &labels::hex(block.start),
            );
        }
    }
    let mut gap_room = (0_usize, 0.0);
    for (lane, x, size) in gaps {
        let top = lane as f64 * LANE_HEIGHT + BAR_TOP;
        let mid = x + GAP / 2.0;
        let labelled = (lane, mid - GAP_LABEL_WIDTH / 2.0) >= gap_room;
        if labelled {
            gap_room = (lane, mid + GAP_LABEL_WIDTH / 2.0);
        }
        svg.line((mid - 3.0, top + 4.0), (mid + 3.0, top - 4.0), "break");
        svg.line(
            (mid - 3.0, top + BAR_HEIGHT + 4.0),
            (mid + 3.0, top + BAR_HEIGHT - 4.0),
            "break",
        );
        if labelled {
            svg.text(
                (mid, top + BAR_HEIGHT + 28.0),
                "middle",
                "gap",
                0.0,
                &format!("+{}", labels::human_bytes(size)),
            );
        }
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let bytes = Unit::Bytes.ticks(0.0, 3.0 * 1024.0 * 1024.0, 5);
        assert_eq!(bytes.first(), Some(&0.0));
        assert!(bytes.last().is_some_and(|t| *t >= 3.0 * 1024.0 * 1024.0));
        assert_eq!(Unit::Bytes.label(1024.0 * 1024.0), "1.0 MiB");
        assert_eq!(duration_label(1_500_000.0), "1.5 ms");
        assert_eq!(duration_label(2e9), "2 s");
        let minutes = [0.0, 20e9, 40e9, 60e9, 80e9];
        assert_eq!(
            elapsed_labels(&minutes),
            ["+0 s", "+20 s", "+40 s", "+60 s", "+80 s"]
        );
        assert_eq!(elapsed_labels(&[0.0, 5e5]), ["+0 µs", "+500 µs"]);
    }

    #[test]
    fn text_is_escaped() {
        let mut svg = Svg::new(10.0, 10.0, "a<b");
        svg.text((0.0, 0.0), "start", "t", 0.0, "<script>&");
        let out = svg.finish();
        assert!(out.contains("&lt;script&gt;&amp;"), "{out}");
        assert!(out.contains(r#"aria-label="a&lt;b""#), "{out}");
    }
}
