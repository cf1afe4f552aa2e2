//! `mmap-analyze report`: the page is well-formed, self-contained and escaped, has every section
//! and chart, its tables count what the capture holds, and headless Chromium draws every chart.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use mmap_format::event::{Event, RowKind, Syscall};
use quick_xml::events::Event as Xml;

use crate::common::{
    BASE_NS, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, run, run_ok,
    v11::{PROT_EXEC, call, events_c, metadata_c},
    write_capture,
};

/// A thread name that would be markup if it were not escaped.
const EVIL_COMM: &str = "<script>alert(1)</script>";
const EVIL_PATH: &str = "/opt/<b>x&y\".so";
const PID: u32 = 900;
/// Where the 20 mappings of pid 900 are: 1 MiB each, 2 MiB apart.
const FIRST: u64 = 0x7e10_0000_0000;
const MIB: u64 = 1 << 20;
/// Where the writable and executable mapping of pid 900 is.
const WX: u64 = 0x7e20_0000_0000;

/// Capture C plus pid 900: 20 successful mmaps of 1 MiB of a file over 9 ms (durations of
/// 2^i ns for i in 8..28), 5 munmaps, 3 mmaps that fail with EAGAIN, and a 64 KiB anonymous
/// mapping that is writable and executable.
fn events() -> Vec<Event<'static>> {
    let mut rows = events_c();
    for i in 0..20_u64 {
        let offset = 100_000 + i as i64 * 450_000;
        let mut mmap = call(
            Syscall::Mmap,
            offset,
            PID,
            EVIL_COMM,
            (FIRST + i * 2 * MIB) as i64,
        );
        mmap.ts_exit_ns = Some(BASE_NS + offset + (1_i64 << (8 + i)));
        mmap.addr = Some(0);
        mmap.len = Some(MIB);
        mmap.prot = Some(PROT_READ | PROT_EXEC);
        mmap.flags = Some(MAP_PRIVATE);
        mmap.fd = Some(3);
        mmap.off = Some(0);
        mmap.file_dev = Some(mmap_format::names::makedev(8, 1));
        mmap.file_ino = Some(77);
        mmap.file_path = Some(Cow::Borrowed(EVIL_PATH));
        mmap.file_name = Some(Cow::Borrowed("x&y\".so"));
        rows.push(mmap);
    }
    for i in 0..5_u64 {
        let mut munmap = call(Syscall::Munmap, 9_500_000 + i as i64, PID, EVIL_COMM, 0);
        munmap.addr = Some(FIRST + i * 2 * MIB);
        munmap.len = Some(MIB);
        rows.push(munmap);
    }
    for i in 0..3 {
        let mut failed = call(Syscall::Mmap, 9_600_000 + i, PID, EVIL_COMM, -11);
        failed.len = Some(64 * MIB);
        rows.push(failed);
    }
    // A writable and executable anonymous mapping: a finding of high severity.
    let mut wx = call(Syscall::Mmap, 9_700_000, PID, EVIL_COMM, WX as i64);
    wx.addr = Some(0);
    wx.len = Some(64 * 1024);
    wx.prot = Some(PROT_READ | PROT_WRITE | PROT_EXEC);
    wx.flags = Some(MAP_PRIVATE | MAP_ANONYMOUS);
    wx.fd = Some(-1);
    wx.off = Some(0);
    rows.push(wx);
    rows.sort_by_key(|row| row.ts_ns);
    rows
}

/// The capture in a temporary directory.
fn capture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("r.parquet");
    write_capture(&path, &metadata_c(), &events());
    (dir, path)
}

/// Writes the report of `path` (with `extra` options) and returns the page.
fn report(dir: &Path, path: &Path, extra: &[&str]) -> String {
    let out = dir.join("report.html");
    let mut args = vec![
        "report".to_owned(),
        path.display().to_string(),
        "-o".to_owned(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    assert_eq!(run_ok(&args), "", "the page goes to the file, not stdout");
    std::fs::read_to_string(&out).expect("read the report")
}

/// An element of the page.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Node>,
    /// The text directly inside it, unescaped.
    text: String,
}

impl Node {
    fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        for child in &self.children {
            child.walk(out);
        }
    }

    fn all(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        self.walk(&mut out);
        out
    }

    fn by_id(&self, id: &str) -> Option<&Node> {
        self.all()
            .into_iter()
            .find(|n| n.attrs.get("id").map(String::as_str) == Some(id))
    }

    fn named<'a>(&'a self, name: &str) -> Vec<&'a Node> {
        self.all().into_iter().filter(|n| n.name == name).collect()
    }

    /// All the text inside, concatenated.
    fn deep_text(&self) -> String {
        self.all().iter().map(|n| n.text.as_str()).collect()
    }
}

/// Parses the page as XML (it is written to be well-formed): fails on any unclosed or mismatched
/// element, bad attribute or entity.
fn parse(page: &str) -> Node {
    let mut reader = quick_xml::Reader::from_str(page);
    reader.config_mut().check_end_names = true;
    let mut stack = vec![Node::default()];
    let element = |e: &quick_xml::events::BytesStart<'_>| Node {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                    a.unescape_value().expect("attribute escapes").into_owned(),
                )
            })
            .collect(),
        ..Node::default()
    };
    loop {
        match reader.read_event().expect("the page is well-formed XML") {
            Xml::Start(e) => stack.push(element(&e)),
            Xml::Empty(e) => {
                let node = element(&e);
                stack.last_mut().expect("parent").children.push(node);
            }
            Xml::End(_) => {
                let node = stack.pop().expect("open element");
                stack.last_mut().expect("parent").children.push(node);
            }
            Xml::Text(t) => {
                let text = t.unescape().expect("text escapes");
                stack.last_mut().expect("parent").text.push_str(&text);
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "every element is closed");
    stack.pop().expect("document")
}

/// The cells of table `id`, row by row.
fn table(root: &Node, id: &str) -> Vec<Vec<String>> {
    let table = root.by_id(id).unwrap_or_else(|| panic!("table {id}"));
    table
        .named("tr")
        .into_iter()
        .skip(1)
        .map(|tr| tr.named("td").iter().map(|td| td.deep_text()).collect())
        .collect()
}

fn number(cell: &str) -> u64 {
    cell.replace(',', "").parse().expect("a count")
}

/// The chart figures and the section ids of the page.
const CHARTS: [&str; 4] = ["chart-mapped", "chart-rate", "chart-latency", "chart-space"];
const SECTIONS: [&str; 7] = [
    "capture",
    "completeness",
    "findings",
    "tables",
    "charts",
    "stacks",
    "address-space",
];

#[test]
fn page_is_well_formed_self_contained_escaped_and_complete() {
    let (dir, path) = capture();
    let page = report(dir.path(), &path, &[]);
    let root = parse(&page);

    for id in SECTIONS {
        assert!(root.by_id(id).is_some(), "section {id}");
    }
    for id in CHARTS {
        let figure = root.by_id(id).unwrap_or_else(|| panic!("chart {id}"));
        let svg = figure.named("svg");
        assert_eq!(svg.len(), 1, "{id} has one svg");
        let drawn = svg[0]
            .all()
            .into_iter()
            .filter(|n| n.name == "rect" || n.name == "polyline")
            .count();
        assert!(drawn > 0, "{id} draws something");
        assert!(!svg[0].named("text").is_empty(), "{id} has labels");
    }

    // Self-contained: nothing to fetch, no script, no external reference of any kind.
    assert!(root.named("script").is_empty());
    for name in ["img", "link", "iframe", "object", "embed"] {
        assert!(root.named(name).is_empty(), "no <{name}>");
    }
    for node in root.all() {
        for (key, value) in &node.attrs {
            if key == "src" || key.ends_with("href") {
                assert!(value.starts_with('#'), "{key}={value} stays in the page");
            }
        }
    }
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(!page.contains("url(") && !page.contains("@import"));

    // The untrusted name and path are text, not markup.
    assert!(!page.contains(EVIL_COMM));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let processes = table(&root, "processes");
    let evil = processes
        .iter()
        .find(|row| row[0] == PID.to_string())
        .expect("pid 900 in the top processes");
    assert_eq!(evil[1], EVIL_COMM);
    let files = table(&root, "files");
    assert_eq!(files[0][0], EVIL_PATH, "the file with the most bytes first");
    assert_eq!(files[0][4], "20.0 MiB");
}

#[test]
fn tables_count_what_the_capture_holds() {
    let (dir, path) = capture();
    let root = parse(&report(dir.path(), &path, &["--rows", "20"]));

    // Expected, from the rows written: calls and failures per system call.
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in events().iter().filter(|r| r.kind == RowKind::Syscall) {
        let entry = expected
            .entry(row.syscall.expect("syscall").as_str().to_owned())
            .or_default();
        entry.0 += 1;
        entry.1 += u64::from(row.ret.is_some_and(|r| r < 0));
    }
    let shown: BTreeMap<String, (u64, u64)> = table(&root, "syscalls")
        .into_iter()
        .map(|row| (row[0].clone(), (number(&row[1]), number(&row[2]))))
        .collect();
    assert_eq!(shown, expected);

    let errors = table(&root, "errors");
    let eagain = errors
        .iter()
        .find(|row| row[0] == "EAGAIN")
        .expect("EAGAIN row");
    assert_eq!((eagain[1].as_str(), number(&eagain[2])), ("mmap", 3));

    // Capture C lost 17 records: the page says it is incomplete and lists the loss window.
    let completeness = root.by_id("completeness").expect("section");
    assert!(completeness.deep_text().contains("Incomplete"));
    assert_eq!(table(&root, "loss-windows")[0][3], "17");

    // The picture: pid 900, mapped the most at the end: 15 of its 20 file regions are left, and
    // the writable and executable one.
    let space = root.by_id("address-space").expect("section");
    assert!(
        space.deep_text().contains("Process 900"),
        "{}",
        space.deep_text()
    );
    let regions = table(&root, "regions");
    assert_eq!(regions.len(), 16);
    assert_eq!(regions[0][0], format!("{:#x}", FIRST + 5 * 2 * MIB));
    assert_eq!(regions[0][2], "r-xp");
    assert_eq!(regions[15][0], format!("{WX:#x}"));
    assert_eq!(regions[15][2], "rwxp");

    // The findings: the writable and executable mapping, with pid 900 as its example.
    let findings = root.by_id("findings").expect("section");
    let high: Vec<String> = findings
        .named("h3")
        .iter()
        .filter(|h| h.attrs.get("class").map(String::as_str) == Some("sev-high"))
        .map(|h| h.deep_text())
        .collect();
    assert!(!high.is_empty(), "a high finding: {}", findings.deep_text());
    let examples = table(&root, "finding-wx-mapping");
    assert_eq!(examples.len(), 1);
    assert_eq!(examples[0][0], PID.to_string());
    assert_eq!(examples[0][1], EVIL_COMM);
}

#[test]
fn filters_narrow_the_tables_and_a_bad_where_exits_1() {
    let (dir, path) = capture();
    let root = parse(&report(dir.path(), &path, &["--pid", "500", "--rows", "2"]));
    let processes = table(&root, "processes");
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0][0], "500");
    // One --pid is also the process drawn.
    let space = root.by_id("address-space").expect("section");
    assert!(space.deep_text().contains("Process 500"));
    // Two of the regions of pid 500, and a line saying how many there are.
    assert_eq!(table(&root, "regions").len(), 2);
    assert!(space.deep_text().contains("Showing 2 of"));

    let out = dir.path().join("bad.html");
    let output = run([
        "report".as_ref(),
        path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--where".as_ref(),
        "len >".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!out.exists());
}

#[test]
fn help_explains_the_page() {
    let output = run(["report", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    insta::assert_snapshot!("report_help", help);
}

/// The Chromium binary: `$MMAP_CAPTURE_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("MMAP_CAPTURE_CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file());
    found.expect(
        "headless Chromium is needed to check that the report renders: `make chromium` installs \
         Debian's chromium package (as root), or set MMAP_CAPTURE_CHROMIUM to a chromium binary",
    )
}

/// Runs headless Chromium on `page` with `args`, returns its stdout.
fn headless(page: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Measures every chart after layout: a copy of the page with a script (the page itself has
/// none) that writes, for each figure, its svg's size and how many drawn shapes have a non-empty
/// box, into an element that `--dump-dom` shows.
const MEASURE: &str = r#"<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('figure').forEach(function (f) {
    var svg = f.querySelector('svg');
    var box = svg.getBoundingClientRect();
    var drawn = 0;
    svg.querySelectorAll('rect, polyline').forEach(function (e) {
      var b = e.getBBox();
      if (b.width > 0 || b.height > 0) { drawn++; }
    });
    out.push(f.id + ' ' + Math.round(box.width) + ' ' + Math.round(box.height) + ' ' + drawn);
  });
  var pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = out.join('\n');
  document.body.appendChild(pre);
});
</script>"#;

#[test]
fn chromium_draws_every_chart() {
    let (dir, path) = capture();
    let page = report(dir.path(), &path, &[]);

    let measured_page = dir.path().join("measured.html");
    std::fs::write(
        &measured_page,
        page.replace("</body>", &format!("{MEASURE}</body>")),
    )
    .expect("write measured page");
    let dom = headless(&measured_page, &["--dump-dom".to_owned()]);
    let start = dom.find("<pre id=\"measured\">").expect("the script ran") + 19;
    let end = start + dom[start..].find("</pre>").expect("end of measures");
    let measures: BTreeMap<&str, (u32, u32, u32)> = dom[start..end]
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let n = |i: usize| f[i].parse::<u32>().expect("a number");
            (f[0], (n(1), n(2), n(3)))
        })
        .collect();
    for id in CHARTS {
        let (width, height, drawn) = measures
            .get(id)
            .copied()
            .unwrap_or_else(|| panic!("{id} is laid out: {measures:?}"));
        assert!(width > 100 && height > 100, "{id} is {width}x{height}");
        assert!(drawn > 0, "{id} draws shapes of non-zero size");
    }

    // The screenshot is not blank: many colours, among them the first series' and the
    // read-execute regions' of the picture.
    let png = dir.path().join("report.png");
    headless(
        &dir.path().join("report.html"),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,4000".to_owned(),
        ],
    );
    if let Some(keep) = std::env::var_os("MMAP_CAPTURE_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("keep the screenshot");
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("open screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("decode screenshot");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour screenshot");
    let colours: std::collections::HashSet<[u8; 3]> = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    assert!(colours.len() > 50, "{} colours", colours.len());
    for (name, rgb) in [
        ("series 1", [0x4e, 0x79, 0xa7]),
        ("r-x", [0xf2, 0x8e, 0x2b]),
    ] {
        assert!(colours.contains(&rgb), "{name} colour drawn");
    }
}

/// A function name that would be markup if it were not escaped.
const EVIL_FUNCTION: &str = "evil<T&U>";

/// A frame row of stack `stack`, named `function` (`None`: unnamed, in module `libx.so` at
/// offset 0x1234).
fn frame(stack: u64, index: u32, function: Option<&'static str>) -> Event<'static> {
    let mut row = call(Syscall::Mmap, 50, 700, "stacky", 0);
    row.kind = RowKind::Frame;
    row.syscall = None;
    row.ts_exit_ns = None;
    row.ret = None;
    row.source = Some(Cow::Borrowed("stack_fp"));
    row.stack_id = Some(stack);
    row.frame_index = Some(index);
    row.frame_addr = Some(0x5555_0000_1000 + u64::from(index));
    row.frame_module = Some(Cow::Borrowed("/opt/app/libx.so"));
    row.frame_build_id = Some(Cow::Borrowed("abcdef0123456789"));
    row.frame_offset = Some(0x1234);
    row.frame_function = function.map(Cow::Borrowed);
    row.symbol_source = function.map(|_| Cow::Borrowed("map_files"));
    row
}

/// Capture C plus pid 700 with call stacks: stack 1 (main > outer > inner > mmap) maps 3 MiB in
/// 3 calls, stack 2 (main > EVIL_FUNCTION > an unnamed frame > mmap) 1 MiB, a mremap on stack 1
/// grows by 1 MiB, and one call without a stack maps 5 MiB.
fn stacks_events() -> Vec<Event<'static>> {
    let mut rows = events_c();
    let mapping = |offset: i64, stack: Option<u64>, len: u64| {
        let mut mmap = call(Syscall::Mmap, offset, 700, "stacky", 0x7e30_0000_0000);
        mmap.addr = Some(0);
        mmap.len = Some(len);
        mmap.prot = Some(PROT_READ | PROT_WRITE);
        mmap.flags = Some(MAP_PRIVATE | MAP_ANONYMOUS);
        mmap.fd = Some(-1);
        mmap.off = Some(0);
        mmap.stack_id = stack;
        mmap
    };
    for i in 0..3 {
        rows.push(mapping(100 + i, Some(1), MIB));
    }
    rows.push(mapping(200, Some(2), MIB));
    rows.push(mapping(300, None, 5 * MIB));
    let mut mremap = call(Syscall::Mremap, 400, 700, "stacky", 0x7e30_0000_0000);
    mremap.addr = Some(0x7e30_0000_0000);
    mremap.len = Some(MIB);
    mremap.new_len = Some(2 * MIB);
    mremap.stack_id = Some(1);
    rows.push(mremap);
    for (i, name) in ["mmap", "inner", "outer", "main"].into_iter().enumerate() {
        rows.push(frame(1, i as u32, Some(name)));
    }
    for (i, name) in [Some("mmap"), None, Some(EVIL_FUNCTION), Some("main")]
        .into_iter()
        .enumerate()
    {
        rows.push(frame(2, i as u32, name));
    }
    rows.sort_by_key(|row| row.ts_ns);
    rows
}

/// The `<title>` texts of the boxes of the flame graph of `root`.
fn flame_titles(root: &Node) -> Vec<String> {
    let figure = root.by_id("chart-flame").expect("the flame graph");
    figure
        .named("g")
        .into_iter()
        .flat_map(|g| g.named("title"))
        .map(|t| t.deep_text())
        .collect()
}

#[test]
fn the_flame_graph_names_every_function_of_the_stacks() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("s.parquet");
    write_capture(&path, &metadata_c(), &stacks_events());
    let page = report(dir.path(), &path, &[]);
    let root = parse(&page);
    assert!(
        root.named("script").is_empty(),
        "the page stays without script"
    );
    assert!(!page.contains("http://") && !page.contains("url("));
    assert!(!page.contains(EVIL_FUNCTION), "the name is escaped");

    let titles = flame_titles(&root);
    let title = |name: &str| {
        titles
            .iter()
            .find(|t| t.starts_with(&format!("{name} (")))
            .unwrap_or_else(|| panic!("a box for {name}: {titles:?}"))
            .clone()
    };
    // 3 MiB + 1 MiB of growth on stack 1, 1 MiB on stack 2: 5 MiB under main.
    assert!(
        title("main").contains("5,242,880 bytes"),
        "{}",
        title("main")
    );
    assert!(
        title("outer").contains("4,194,304 bytes"),
        "{}",
        title("outer")
    );
    assert!(title("inner").contains("4,194,304 bytes"));
    assert!(title(EVIL_FUNCTION).contains("1,048,576 bytes"));
    // The unnamed frame: its module's file name and offset.
    assert!(title("libx.so+0x1234").contains("1,048,576 bytes"));
    let caption = root
        .by_id("chart-flame")
        .expect("figure")
        .named("figcaption")[0]
        .deep_text();
    // 5 MiB with a stack; capture C's calls and the 5 MiB call of pid 700 without one.
    assert!(
        caption.contains("5.0 MiB of 10.1 MiB mapped by 2 stacks"),
        "{caption}"
    );
    assert!(
        caption.contains("5.1 MiB by calls without a stack"),
        "{caption}"
    );

    // Without stacks: one line.
    let (dir, path) = capture();
    let root = parse(&report(dir.path(), &path, &[]));
    let section = root.by_id("stacks").expect("section");
    assert!(section.by_id("chart-flame").is_none());
    assert_eq!(section.named("p").len(), 1);
    assert!(
        section.deep_text().contains("No call stacks"),
        "{}",
        section.deep_text()
    );
}

#[test]
fn chromium_draws_the_flame_graph() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("s.parquet");
    write_capture(&path, &metadata_c(), &stacks_events());
    let page = report(dir.path(), &path, &[]);
    let measured_page = dir.path().join("measured.html");
    std::fs::write(
        &measured_page,
        page.replace("</body>", &format!("{MEASURE_FLAME}</body>")),
    )
    .expect("write measured page");
    let dom = headless(&measured_page, &["--dump-dom".to_owned()]);
    let start = dom.find("<pre id=\"measured\">").expect("the script ran") + 19;
    let end = start + dom[start..].find("</pre>").expect("end of measures");
    // --dump-dom writes the text of the element escaped.
    let measured = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let mut lines = measured.lines();
    let size: Vec<u32> = lines
        .next()
        .expect("the size")
        .split(' ')
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert!(size[0] > 500 && size[1] > 50, "the flame graph is {size:?}");
    // Each box with a name: its width on the page, and the text drawn in it.
    let boxes: BTreeMap<String, (f64, String)> = lines
        .map(|line| {
            let mut f = line.splitn(3, '\t');
            let name = f.next().expect("name").to_owned();
            let width = f.next().expect("width").parse().expect("width");
            (name, (width, f.next().unwrap_or("").to_owned()))
        })
        .collect();
    for name in ["main", "outer", "inner", "mmap", EVIL_FUNCTION] {
        let (width, _) = boxes
            .get(name)
            .unwrap_or_else(|| panic!("a box for {name}: {boxes:?}"));
        assert!(*width > 1.0, "{name} is drawn: {width}");
    }
    // main has all the bytes, outer 4/5 of them.
    let ratio = boxes["outer"].0 / boxes["main"].0;
    assert!((ratio - 0.8).abs() < 0.02, "outer/main = {ratio}");
    assert_eq!(boxes["main"].1, "main", "the name is written in its box");

    let png = dir.path().join("flame.png");
    headless(
        &dir.path().join("report.html"),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,4000".to_owned(),
        ],
    );
    if let Some(keep) = std::env::var_os("MMAP_CAPTURE_KEEP_FLAME_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("keep the screenshot");
    }
}

/// Measures the flame graph after layout: its size, then for each box its name (the start of
/// its title), its width and the text drawn in it, tab-separated.
const MEASURE_FLAME: &str = r#"<script>
window.addEventListener('load', function () {
  var svg = document.querySelector('#chart-flame svg');
  var box = svg.getBoundingClientRect();
  var out = [Math.round(box.width) + ' ' + Math.round(box.height)];
  svg.querySelectorAll('g').forEach(function (g) {
    var title = g.querySelector('title');
    var rect = g.querySelector('rect');
    var text = g.querySelector('text');
    if (!title || !rect) { return; }
    var name = title.textContent.replace(/ \([0-9,]+ bytes.*$/, '');
    out.push(name + '\t' + rect.getBoundingClientRect().width + '\t' + (text ? text.textContent : ''));
  });
  var pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = out.join('\n');
  document.body.appendChild(pre);
});
</script>"#;

#[test]
fn the_flame_graph_draws_the_heaviest_stacks_and_sums_the_others() {
    // 2,050 stacks main > f{i}, stack i mapping i + 1 pages: the 50 lightest are summed.
    const STACKS: u64 = 2_050;
    const DRAWN: u64 = 2_000;
    let mut rows = events_c();
    for i in 0..STACKS {
        let mut mmap = call(
            Syscall::Mmap,
            100 + i as i64,
            700,
            "stacky",
            0x7e30_0000_0000,
        );
        mmap.addr = Some(0);
        mmap.len = Some((i + 1) * 4096);
        mmap.stack_id = Some(i + 1);
        rows.push(mmap);
        let name: &'static str = Box::leak(format!("f{i}").into_boxed_str());
        rows.push(frame(i + 1, 0, Some(name)));
        rows.push(frame(i + 1, 1, Some("main")));
    }
    rows.sort_by_key(|row| row.ts_ns);
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("many.parquet");
    crate::common::write_capture_with(&path, &metadata_c(), &rows, 8192);
    let root = parse(&report(dir.path(), &path, &[]));
    let titles = flame_titles(&root);
    let other: u64 = (0..STACKS - DRAWN).map(|i| (i + 1) * 4096).sum();
    let other_title = titles
        .iter()
        .find(|t| t.starts_with("[other] ("))
        .expect("an [other] box");
    assert!(
        other_title.contains(&format!("{} bytes", thousands(other))),
        "{other_title}"
    );
    // The heaviest stack is drawn, the lightest is not.
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with(&format!("f{} (", STACKS - 1)))
    );
    assert!(!titles.iter().any(|t| t.starts_with("f0 (")));
    let caption = root
        .by_id("chart-flame")
        .expect("figure")
        .named("figcaption")[0]
        .deep_text();
    assert!(
        caption.contains("by 2,050 stacks; the 2,000 heaviest are drawn"),
        "{caption}"
    );
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
