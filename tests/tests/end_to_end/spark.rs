//! The same files and the same SQL on Spark, DuckDB and Polars: a real recording in segments,
//! the three questions of `mmap-analyze sql` (calls per system call, top processes by mapped
//! bytes, failures by errno) asked of each engine over the same directory, the same answers.
//!
//! Spark reads the captures as they are through the recipe in docs/spark/ (views.sql, loaded by
//! mmap_views.py), PySpark in local mode from the venv `make spark` makes (Java 17 and pyspark,
//! cached under ~/.cache/mmap-capture/spark); the script is tests/spark/three_questions.py.
//! Without that venv the test fails: `make test` installs it, so its absence is a fault.
use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use mmap_capture_tests::{analyze, require_root, workspace_bin};
use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, ClockAnchor, Targets},
    writer::{CaptureWriter, WriterConfig},
};
use serde_json::Value;

/// The Python that runs `engine`: pyspark's venv for Spark, the interoperability venv (pyarrow,
/// duckdb, polars) for the others; MMAP_CAPTURE_SPARK_PYTHON and MMAP_CAPTURE_PYTHON (what
/// `make test` exports) override them.
fn python(engine: &str) -> PathBuf {
    let (var, cached, make) = if engine == "spark" {
        (
            "MMAP_CAPTURE_SPARK_PYTHON",
            "spark/bin/python",
            "make spark",
        )
    } else {
        ("MMAP_CAPTURE_PYTHON", "venv/bin/python", "make venv")
    };
    let python = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME");
        Path::new(&home).join(".cache/mmap-capture").join(cached)
    });
    assert!(
        python.exists(),
        "{} missing: run `{make}` (make test does)",
        python.display()
    );
    python
}

/// Runs tests/spark/three_questions.py with `engine` on `dir` (and EXTRA arguments): its JSON.
fn ask(engine: &str, dir: &Path, extra: &[&OsStr]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("spark/three_questions.py");
    let start = Instant::now();
    let out = Command::new(python(engine))
        .arg(&script)
        .args(["--engine", engine])
        .arg(dir)
        .args(extra)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "three_questions.py --engine {engine} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).expect("three_questions.py json");
    eprintln!(
        "{engine} {}: {:.1} s in all, {}",
        value["version"],
        start.elapsed().as_secs_f64(),
        value["seconds"]
    );
    value
}

/// `mmap-analyze sql DIR QUERY --format json`: its rows.
fn sql(dir: &Path, query: &str) -> Vec<Value> {
    let out = analyze([
        OsStr::new("sql"),
        dir.as_os_str(),
        OsStr::new(query),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    assert!(
        out.status.success(),
        "mmap-analyze sql {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON row"))
        .collect()
}

/// Rows as a set (each row's JSON text, its keys sorted): equal sets, equal answers.
fn set(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(canonical).collect()
}

fn canonical(row: &Value) -> String {
    let sorted: BTreeMap<&String, &Value> = row.as_object().expect("a row object").iter().collect();
    serde_json::to_string(&sorted).expect("JSON")
}

fn rows(value: &Value) -> &[Value] {
    value.as_array().expect("rows").as_slice()
}

/// Writes `dir/crafted.parquet`: calls whose prot, flags and errno take every path of the
/// decoders (unknown bits, bit 63, huge page sizes named and not, MAP_UNINITIALIZED, MREMAP_*,
/// errno numbers with a name, an internal name, and none).
fn write_crafted(dir: &Path) {
    const HUGETLB: u64 = 0x4_0000;
    let calls: &[(Syscall, Option<u64>, Option<u64>, i64)] = &[
        (
            Syscall::Mmap,
            Some(0x107),
            Some(0x22 | HUGETLB | 21 << 26),
            -512,
        ),
        (Syscall::Mmap, Some(u64::MAX), Some(u64::MAX), -41),
        (
            Syscall::Mmap,
            Some(0x0300_000f),
            Some(0x3 | HUGETLB | 30 << 26 | 0x10_0000),
            -600,
        ),
        (Syscall::Mmap, Some(0), Some(0x400_0002), -4095),
        (Syscall::Mmap, Some(1), Some(0x22 | HUGETLB | 5 << 26), -133),
        (Syscall::Mmap, Some(3), Some(0x1 | HUGETLB | 16 << 26), -529),
        (Syscall::Mmap, Some(1 << 63), Some(1 << 63 | 0x20), -58),
        (Syscall::Mmap, Some(0), Some(0), 0x7f00_0000_0000),
        (Syscall::Mremap, None, Some(0x17 | 1 << 63), -520),
        (Syscall::Mremap, None, Some(0), 0x7f00_0000_1000),
        (Syscall::Mprotect, Some(0x0100_0008), None, -1),
        (Syscall::Munmap, None, None, 0),
    ];
    const BASE_NS: i64 = 1_796_000_000_123_456_789;
    let meta = CaptureMetadata {
        recorder_version: "crafted".to_owned(),
        hostname: "crafted".to_owned(),
        kernel_release: "6.1.0".to_owned(),
        boot_id: "00000000-0000-4000-8000-000000000000".to_owned(),
        clock_anchors: vec![ClockAnchor {
            boot_ns: 1_000_000_000,
            realtime_ns: BASE_NS,
            uncertainty_ns: 1_000,
        }],
        capture_start_ns: BASE_NS,
        capture_end_ns: BASE_NS + 1_000_000,
        targets: Targets {
            system_wide: true,
            ..Targets::default()
        },
        attach_mode: "tracepoint".to_owned(),
        ..CaptureMetadata::default()
    };
    std::fs::create_dir(dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("crafted.parquet")).expect("create");
    let mut writer =
        CaptureWriter::new(std::io::BufWriter::new(file), WriterConfig::default()).expect("writer");
    for (i, &(syscall, prot, flags, ret)) in (0_i64..).zip(calls) {
        writer
            .push(&Event {
                kind: RowKind::Syscall,
                syscall: Some(syscall),
                ts_ns: BASE_NS + i * 1_001,
                ts_exit_ns: Some(BASE_NS + i * 1_001 + 7),
                pid: 42,
                tid: 42,
                comm: "crafted".into(),
                addr: Some(0),
                len: Some(4096),
                prot,
                flags,
                ret: Some(ret),
                ..Default::default()
            })
            .expect("push");
    }
    writer.finish(&meta).expect("finish");
}

/// Copies the segments of `rec` into `tree/host=HOST/date=DATE/`, half the files under each of
/// two hosts: a partitioned layout as docs/FLEET.md describes.
fn partition(rec: &Path, tree: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rec)
        .expect("read the capture directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension() == Some(OsStr::new("parquet")))
        .collect();
    files.sort();
    let mut placed = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let (host, date) = if i % 2 == 0 {
            ("build-07", "2026-12-01")
        } else {
            ("web-3", "2026-12-02")
        };
        let dir = tree.join(format!("host={host}/date={date}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(file, dir.join(file.file_name().expect("name"))).expect("copy");
        placed.push((host.to_owned(), file.display().to_string()));
    }
    placed
}

/// Records the workload (with its fork, exec and every call family) into 300 ms segments.
fn record(base: &Path) -> PathBuf {
    let rec = base.join("rec");
    let data = base.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "--rotate-time", "300ms", "-o"])
        .arg(format!("{}/", rec.display()))
        .arg("--")
        .arg(workspace_bin("mmap-workload"))
        .args(["--family", "--duration", "1500ms", "--dir"])
        .arg(&data)
        .output()
        .expect("run the recorder");
    assert!(
        out.status.success(),
        "recorder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rec
}

/// The decoded names beside their numbers (three_questions.py's NAMES_SQL).
const NAMES: &str =
    "SELECT DISTINCT syscall, prot, prot_names, flags, flags_names, errno, errno_name FROM calls";

#[test]
#[ignore = "needs root"]
fn spark_duckdb_and_polars_answer_the_three_questions_as_mmap_analyze_does() {
    require_root!();
    let base = tempfile::tempdir().expect("tempdir");
    let dir = record(base.path());
    let segments = std::fs::read_dir(&dir)
        .expect("read the capture directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension() == Some(OsStr::new("parquet")))
        })
        .count();
    assert!(segments >= 3, "{segments} segments: the test needs several");

    let crafted = base.path().join("crafted");
    write_crafted(&crafted);
    let tree = base.path().join("tree");
    let placed = partition(&dir, &tree);
    // The committed captures of format 1.0 and 1.1 alone: the columns they lack read as NULL.
    let old = base.path().join("old");
    std::fs::create_dir(&old).expect("mkdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures/v1") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.ends_with("-v1.0.parquet") || name.ends_with("-v1.1.parquet") {
            std::fs::copy(&path, old.join(&name)).expect("copy a fixture");
        }
    }
    let spark = ask(
        "spark",
        &dir,
        &[
            OsStr::new("--crafted"),
            crafted.as_os_str(),
            OsStr::new("--tree"),
            tree.as_os_str(),
            OsStr::new("--old"),
            old.as_os_str(),
        ],
    );
    let questions = spark["questions"].as_object().expect("questions");
    assert_eq!(questions.len(), 3, "{questions:?}");
    let mut answers = Vec::new();
    for (name, query) in questions {
        let query = query.as_str().expect("SQL text");
        let expected = sql(&dir, query);
        assert!(!expected.is_empty(), "{name}: mmap-analyze found no rows");
        answers.push((name.clone(), expected));
    }
    for engine in [&spark, &ask("duckdb", &dir, &[]), &ask("polars", &dir, &[])] {
        assert_eq!(&engine["questions"], &spark["questions"], "the same SQL");
        for (name, expected) in &answers {
            assert_eq!(
                set(rows(&engine["answers"][name])),
                set(expected),
                "{} answers {name} otherwise than mmap-analyze",
                engine["engine"]
            );
        }
    }

    for (name, query) in questions {
        let expected = sql(&old, query.as_str().expect("SQL text"));
        assert!(!expected.is_empty(), "{name}: no rows in the old captures");
        assert_eq!(
            set(rows(&spark["checks"]["old_answers"][name])),
            set(&expected),
            "spark answers {name} on the 1.0 and 1.1 captures otherwise than mmap-analyze"
        );
    }

    // Spark kept every nanosecond: the BIGINT columns are the exact times, the TIMESTAMPs the
    // same times in microseconds.
    let checks = &spark["checks"];
    let times = &sql(
        &dir,
        "SELECT count(*) AS calls, min(CAST(ts AS BIGINT)) AS first_ns, \
         max(CAST(ts_exit AS BIGINT)) AS last_ns, sum(dur_ns) AS dur_ns FROM calls",
    )[0];
    let spark_times = &checks["times"][0];
    for key in ["calls", "first_ns", "last_ns", "dur_ns"] {
        assert_eq!(spark_times[key], times[key], "{key}");
    }
    let ns = |key: &str| times[key].as_i64().expect("ns");
    assert_eq!(spark_times["first_us"], ns("first_ns").div_euclid(1000));
    assert_eq!(spark_times["last_us"], ns("last_ns").div_euclid(1000));
    assert!(ns("first_ns") % 1000 != 0 || ns("last_ns") % 1000 != 0);

    // The decoded names are mmap-analyze's, on every value the recording has.
    for (check, query) in [
        ("call_names", NAMES),
        (
            "snapshot_names",
            "SELECT DISTINCT prot, prot_names, flags, flags_names FROM snapshots",
        ),
    ] {
        let expected = sql(&dir, query);
        assert!(expected.len() > 1, "{check}: {expected:?}");
        assert_eq!(set(rows(&checks[check])), set(&expected), "{check}");
    }

    // ... and on crafted values that take every rule of the decoders.
    let expected = sql(&crafted, NAMES);
    assert!(expected.len() >= 12, "{expected:?}");
    assert_eq!(
        set(rows(&checks["crafted_names"])),
        set(&expected),
        "crafted names"
    );
    let expected = sql(
        &dir,
        "SELECT errno_number, errno_name FROM (SELECT CAST(value AS INT) AS errno_number, \
         errno_name(CAST(value AS INT)) AS errno_name FROM generate_series(0, 4095)) \
         WHERE errno_name IS NOT NULL",
    );
    assert_eq!(
        set(rows(&checks["errno_names"])),
        set(&expected),
        "errno table"
    );

    // A host=H/date=D tree: host and date are columns, the calls of each file under its host.
    let mut expected = BTreeSet::new();
    for (host, date) in [("build-07", "2026-12-01"), ("web-3", "2026-12-02")] {
        let files: Vec<&str> = placed
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, f)| f.as_str())
            .collect();
        let mut args = vec!["sql"];
        args.extend(&files);
        args.extend([
            "SELECT syscall, count(*) AS calls FROM calls GROUP BY syscall",
            "--format",
            "json",
        ]);
        let out = analyze(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout).expect("UTF-8").lines() {
            let mut row: Value = serde_json::from_str(line).expect("row");
            row["host"] = host.into();
            row["date"] = date.into();
            expected.insert(canonical(&row));
        }
    }
    assert_eq!(set(rows(&checks["tree"])), expected, "the partitioned tree");

    // views.sql declares the format's columns in order, and mmap_views.py knows them all: a
    // column added to the format must be added there too.
    let schema = mmap_format::schema::schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let names = |check: &str| -> Vec<String> {
        rows(&checks[check])
            .iter()
            .map(|c| c.as_str().expect("a column name").to_owned())
            .collect()
    };
    assert_eq!(
        names("raw_columns"),
        columns,
        "docs/spark/views.sql mmap_raw"
    );
    let mut sorted = columns.clone();
    sorted.sort_unstable();
    assert_eq!(names("format_columns"), sorted, "docs/spark/mmap_views.py");

    // Every row is in the view of its kind, as in mmap-analyze.
    for row in rows(&checks["kinds"]) {
        let view = row["view"].as_str().expect("view");
        let count = &sql(&dir, &format!("SELECT count(*) AS n FROM {view}"))[0]["n"];
        assert_eq!(&row["n"], count, "rows of {view}");
    }
    assert_eq!(checks["files"][0]["files"], segments);
}
