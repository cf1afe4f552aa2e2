//! The same files and the same SQL on Spark, DuckDB and Polars: a real recording in segments,
//! the three questions of `mmap-analyze sql` (calls per system call, top processes by mapped
//! bytes, failures by errno) asked of each engine over the same directory, the same answers.
//!
//! Spark reads the captures as they are through the recipe in docs/spark/ (views.sql, loaded by
//! mmap_views.py), PySpark in local mode from the venv `make spark` makes (Java 17 and pyspark,
//! cached under ~/.cache/mmap-capture/spark); the script is tests/spark/three_questions.py.
//! Without that venv the test fails: `make test` installs it, so its absence is a fault.
use std::{
    collections::BTreeSet,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use mmap_capture_tests::{analyze, require_root, workspace_bin};
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

/// Runs tests/spark/three_questions.py with `engine` on `dir`: its JSON.
fn ask(engine: &str, dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("spark/three_questions.py");
    let start = Instant::now();
    let out = Command::new(python(engine))
        .arg(&script)
        .args(["--engine", engine])
        .arg(dir)
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

/// Rows as a set (each row's JSON text, its keys in order): equal sets, equal answers.
fn set(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(Value::to_string).collect()
}

fn rows(value: &Value) -> &[Value] {
    value.as_array().expect("rows").as_slice()
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

    let spark = ask("spark", &dir);
    let questions = spark["questions"].as_object().expect("questions");
    assert_eq!(questions.len(), 3, "{questions:?}");
    let mut answers = Vec::new();
    for (name, query) in questions {
        let query = query.as_str().expect("SQL text");
        let expected = sql(&dir, query);
        assert!(!expected.is_empty(), "{name}: mmap-analyze found no rows");
        answers.push((name.clone(), expected));
    }
    for engine in [&spark, &ask("duckdb", &dir), &ask("polars", &dir)] {
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
        (
            "call_names",
            "SELECT DISTINCT syscall, prot, prot_names, flags, flags_names, errno, errno_name \
             FROM calls",
        ),
        (
            "snapshot_names",
            "SELECT DISTINCT prot, prot_names, flags, flags_names FROM snapshots",
        ),
    ] {
        let expected = sql(&dir, query);
        assert!(expected.len() > 1, "{check}: {expected:?}");
        assert_eq!(set(rows(&checks[check])), set(&expected), "{check}");
    }

    // Every row is in the view of its kind, as in mmap-analyze.
    for row in rows(&checks["kinds"]) {
        let view = row["view"].as_str().expect("view");
        let count = &sql(&dir, &format!("SELECT count(*) AS n FROM {view}"))[0]["n"];
        assert_eq!(&row["n"], count, "rows of {view}");
    }
    assert_eq!(checks["files"][0]["files"], segments);
}
