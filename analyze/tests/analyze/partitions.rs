//! Hive-style partitioned trees (`DIR/host=H/date=YYYY-MM-DD/*.parquet`, as `mmap-recorder
//! record --partition host,date` writes them): read recursively, the partition values as columns,
//! a filter on them reads only their files, links are not followed.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

use mmap_format::metadata::Counters;
use serde_json::{Value, json};

use crate::common::{json_lines, metadata, mmap, run, run_ok, write_capture};

/// A tree: `web1` on two days, `db/2` (escaped `db%2F2`) on the first, a file with no
/// partition at the top, and a partition directory that is a symbolic link to captures
/// elsewhere (not read).
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tree = Self { dir };
        for (host, escaped, date, name, rows) in [
            ("web1", "web1", "2026-12-01", "a.parquet", 3),
            ("web1", "web1", "2026-12-02", "b.parquet", 2),
            ("db/2", "db%2F2", "2026-12-01", "c.parquet", 4),
        ] {
            let path = tree
                .root()
                .join(format!("host={escaped}"))
                .join(format!("date={date}"));
            fs::create_dir_all(&path).expect("mkdir");
            capture(&path.join(name), host, rows);
        }
        capture(&tree.root().join("loose.parquet"), "loose", 1);
        let outside = tree.dir.path().join("outside");
        fs::create_dir_all(outside.join("date=2026-12-01")).expect("mkdir");
        capture(&outside.join("date=2026-12-01/evil.parquet"), "evil", 5);
        std::os::unix::fs::symlink(&outside, tree.root().join("host=evil")).expect("symlink");
        tree
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("tree")
    }
}

/// A capture of `rows` mmap calls recorded on `host`.
fn capture(path: &Path, host: &str, rows: usize) {
    let events: Vec<_> = (0..rows)
        .map(|i| mmap(i as i64 * 1000, 100 + i as u32, 100, "cat"))
        .collect();
    write_capture(path, &metadata(host, Counters::default()), &events);
}

/// `sql INPUT QUERY --format json`: the rows, and stderr.
fn sql(input: &Path, query: &str) -> (Vec<Value>, String) {
    let out = run([
        "sql".as_ref(),
        input.as_os_str(),
        query.as_ref(),
        "--format".as_ref(),
        OsStr::new("json"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (
        json_lines(&String::from_utf8(out.stdout).expect("UTF-8")),
        stderr,
    )
}

#[test]
fn partition_values_are_columns_and_links_are_not_followed() {
    let tree = Tree::new();
    let (rows, stderr) = sql(
        &tree.root(),
        "SELECT date, host, count(*) AS n FROM events GROUP BY date, host ORDER BY date, host",
    );
    assert_eq!(
        rows,
        [
            json!({"date": "2026-12-01", "host": "db/2", "n": 4}),
            json!({"date": "2026-12-01", "host": "web1", "n": 3}),
            json!({"date": "2026-12-02", "host": "web1", "n": 2}),
            json!({"date": null, "host": "loose", "n": 1}),
        ],
        "every file below the tree, the unpartitioned one with a NULL date; not the link's"
    );
    assert!(
        stderr.contains("host=evil: skipped") && stderr.contains("symbolic link, not followed"),
        "{stderr}"
    );
    // The views have the column too.
    let (rows, _) = sql(
        &tree.root(),
        "SELECT date, count(*) AS n FROM calls WHERE date IS NOT NULL GROUP BY date ORDER BY date",
    );
    assert_eq!(
        rows,
        [
            json!({"date": "2026-12-01", "n": 7}),
            json!({"date": "2026-12-02", "n": 2})
        ]
    );
    // A partition directory given itself: its files carry the values of its whole path.
    let (rows, _) = sql(
        &tree.root().join("host=web1"),
        "SELECT DISTINCT host, date FROM events ORDER BY date",
    );
    assert_eq!(
        rows,
        [
            json!({"host": "web1", "date": "2026-12-01"}),
            json!({"host": "web1", "date": "2026-12-02"})
        ]
    );
}

#[test]
fn other_keys_become_sanitized_columns() {
    let tree = Tree::new();
    let region = tree.root().join("Region-Name=eu%2Dwest").join("pid=7");
    fs::create_dir_all(&region).expect("mkdir");
    capture(&region.join("r.parquet"), "web9", 2);
    let (rows, _) = sql(
        &tree.root(),
        "SELECT region_name, partition_pid, count(*) AS n FROM calls \
         GROUP BY region_name, partition_pid ORDER BY region_name",
    );
    assert_eq!(
        rows,
        [
            json!({"region_name": "eu-west", "partition_pid": "7", "n": 2}),
            json!({"region_name": null, "partition_pid": null, "n": 10}),
        ]
    );
}

#[test]
fn a_filter_on_a_partition_reads_only_its_files() {
    let tree = Tree::new();
    // A file that is not a capture, in a partition the filter rules out: opening it would fail.
    let broken = tree.root().join("host=web1/date=2026-12-03");
    fs::create_dir_all(&broken).expect("mkdir");
    fs::write(broken.join("broken.parquet"), b"not parquet").expect("write");
    let everything = run(["events".as_ref(), tree.root().as_os_str()]);
    assert_eq!(everything.status.code(), Some(2), "the broken file is read");
    assert!(String::from_utf8_lossy(&everything.stderr).contains("broken.parquet"));

    let out = run([
        "events".as_ref(),
        tree.root().as_os_str(),
        "--where".as_ref(),
        OsStr::new("date = '2026-12-01' AND pid >= 100"),
        "--format".as_ref(),
        OsStr::new("json"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 7, "a.parquet and c.parquet (3 + 4 rows)");
    assert!(
        stderr.contains("3 of 5 capture files left out by their partition directories"),
        "{stderr}"
    );
    // host= in the path is the host, for files whose path says it.
    let out = run([
        "events".as_ref(),
        tree.root().as_os_str(),
        "--where".as_ref(),
        OsStr::new("host = 'db/2'"),
        "--format".as_ref(),
        OsStr::new("json"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&String::from_utf8_lossy(&out.stdout)).len(), 4);

    // In SQL, the constant columns drop the other files' scans when the query is planned.
    fs::remove_dir_all(&broken).expect("rm");
    let (rows, _) = sql(
        &tree.root(),
        "EXPLAIN SELECT count(*) FROM events WHERE date = '2026-12-02' AND comm = 'cat'",
    );
    let physical: String = rows
        .iter()
        .filter(|row| row["plan_type"] == "physical_plan")
        .map(|row| row["plan"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(physical.contains("b.parquet"), "{physical}");
    for other in ["a.parquet", "c.parquet", "loose.parquet"] {
        assert!(!physical.contains(other), "{other} is scanned: {physical}");
    }
}

#[test]
fn a_host_directory_must_agree_with_the_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wrong = dir.path().join("host=other/date=2026-12-01");
    fs::create_dir_all(&wrong).expect("mkdir");
    capture(&wrong.join("x.parquet"), "web1", 1);
    let out = run(["summary".as_ref(), dir.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("x.parquet") && stderr.contains("host=other") && stderr.contains("web1"),
        "{stderr}"
    );

    let bad_day = dir.path().join("d/date=yesterday");
    fs::create_dir_all(&bad_day).expect("mkdir");
    capture(&bad_day.join("y.parquet"), "web1", 1);
    let out = run(["summary".as_ref(), dir.path().join("d").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a day"));
}

#[test]
fn a_summary_of_a_tree_counts_every_row() {
    let tree = Tree::new();
    fs::remove_file(tree.root().join("host=evil")).expect("rm link");
    let out = run_ok([
        "summary".as_ref(),
        tree.root().as_os_str(),
        "--format".as_ref(),
        OsStr::new("json"),
    ]);
    let summary: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(summary["events"], 10);
    assert_eq!(summary["files"].as_array().map(Vec::len), Some(4));
}
