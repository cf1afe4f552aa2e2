//! `verify` and `info` over a directory capture written here the way docs/FORMAT.md specifies
//! the chain and the manifest (so the spec, not the recorder's code, is what is checked), and
//! over single files.

use std::path::{Path, PathBuf};

use mmap_format::{
    event::{Event, RowKind},
    manifest::{Manifest, ManifestSegment},
    metadata::{Counters, SegmentLink, format_rfc3339_ns},
};
use sha2::{Digest as _, Sha256};

use crate::common::{self, BASE_NS, counters_a, events_a, metadata, mmap, run, run_ok};

const ID: &str = "c0ffee00-1111-4222-8333-444455556666";

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

fn segment_name(index: u32) -> String {
    format!("mmap-20231114T221320Z-c0ffee00-{index:05}.parquet")
}

/// Segments 0..n of one capture in `dir`, each linking to the one before, and their manifest.
fn write_directory(dir: &Path, n: u32) -> Vec<PathBuf> {
    let mut manifest = Manifest::new(ID);
    let mut previous: Option<SegmentLink> = None;
    let mut files = Vec::new();
    for index in 0..n {
        let start = BASE_NS + i64::from(index) * 1_000_000_000;
        let mut meta = metadata("host-a", Counters::default());
        meta.capture_id = Some(ID.to_owned());
        meta.segment_index = Some(index);
        meta.capture_start_ns = start;
        meta.capture_end_ns = start + 900_000_000;
        meta.previous_segment = previous.clone();
        let events: Vec<Event<'static>> = (0..5 + index)
            .map(|i| {
                mmap(
                    i64::from(index) * 1_000_000_000 + i64::from(i),
                    100,
                    100,
                    "app",
                )
            })
            .collect();
        let path = dir.join(segment_name(index));
        common::write_capture(&path, &meta, &events);
        let entry = ManifestSegment {
            file: segment_name(index),
            segment_index: index,
            sha256: sha256(&path),
            bytes: std::fs::metadata(&path).expect("meta").len(),
            rows: events.len() as u64,
            start: format_rfc3339_ns(meta.capture_start_ns),
            end: format_rfc3339_ns(meta.capture_end_ns),
            recovered: false,
        };
        previous = Some(SegmentLink {
            file: entry.file.clone(),
            segment_index: index,
            sha256: entry.sha256.clone(),
            bytes: entry.bytes,
            rows: entry.rows,
        });
        manifest.insert(entry);
        files.push(path);
    }
    manifest.complete = true;
    std::fs::write(
        dir.join("mmap-20231114T221320Z-c0ffee00.manifest.json"),
        manifest.to_bytes(),
    )
    .expect("write manifest");
    files
}

fn verify_json(args: &[&Path]) -> (i32, serde_json::Value) {
    let mut all: Vec<&std::ffi::OsStr> = vec!["verify".as_ref()];
    all.extend(args.iter().map(|p| p.as_os_str()));
    all.extend([
        std::ffi::OsStr::new("--format"),
        std::ffi::OsStr::new("json"),
    ]);
    let out = run(all);
    (
        out.status.code().expect("exit code"),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn verify_accepts_a_whole_directory_and_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_directory(dir.path(), 3);
    let (code, report) = verify_json(&[dir.path()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["files"].as_array().expect("files").len(), 3);
    for file in report["files"].as_array().expect("files") {
        assert_eq!(file["decoded_rows"], file["footer_rows"]);
        assert_eq!(file["sha256"].as_str().map(str::len), Some(64));
    }
    // One segment alone: its own checks and its manifest entry.
    let (code, report) = verify_json(&[&files[2]]);
    assert_eq!(code, 0, "{report:#}");
    let text = run_ok(["verify".as_ref(), dir.path().as_os_str()]);
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("whole: 3 files")),
        "{text}"
    );
}

#[test]
fn verify_names_the_segment_whose_bytes_or_place_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_directory(dir.path(), 3);
    let name = |i: usize| files[i].display().to_string();

    // A changed byte near the end of the footer's metadata of segment 1.
    let mut bytes = std::fs::read(&files[1]).expect("read");
    let at = bytes
        .windows(b"host-a".len())
        .rposition(|w| w == b"host-a")
        .expect("the host name in the footer");
    bytes[at] = b'H';
    std::fs::write(&files[1], bytes).expect("write");
    let (code, report) = verify_json(&[dir.path()]);
    assert_eq!(code, 1, "{report:#}");
    let problems = report["problems"].as_array().expect("problems");
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == name(1) && p["problem"] == "changed" && p["segment_index"] == 1),
        "{report:#}"
    );
    assert!(
        problems.iter().all(|p| p["file"] == name(1)),
        "only segment 1 is named: {report:#}"
    );

    // The last segment removed: the manifest says it is missing.
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_directory(dir.path(), 3);
    std::fs::remove_file(&files[2]).expect("rm");
    let (code, report) = verify_json(&[dir.path()]);
    assert_eq!(code, 1);
    assert_eq!(report["problems"][0]["problem"], "missing", "{report:#}");
    assert_eq!(report["problems"][0]["segment_index"], 2, "{report:#}");

    // Segment 0 truncated: named as truncated by the manifest and by segment 1's link.
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_directory(dir.path(), 3);
    let len = std::fs::metadata(&files[0]).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");
    let (code, report) = verify_json(&[dir.path()]);
    assert_eq!(code, 1);
    let truncated = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["problem"] == "truncated" && p["file"] == files[0].display().to_string())
        .count();
    assert_eq!(truncated, 2, "{report:#}");
}

#[test]
fn verify_exits_2_on_an_unreadable_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"PAR1 this is not a capture at all PAR1").expect("write");
    let out = run(["verify".as_ref(), garbage.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("garbage.parquet"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = run([
        "verify".as_ref(),
        dir.path().join("none.parquet").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_checks_the_parents_an_extract_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parent = dir.path().join("parent.parquet");
    common::write_capture(&parent, &metadata("host-a", counters_a()), &events_a());
    let mut meta = metadata("host-a", counters_a());
    meta.provenance = vec![mmap_format::metadata::Derivation {
        operation: "extract".into(),
        tool: "test".into(),
        at: "2023-11-15T00:00:00Z".into(),
        parents: vec![mmap_format::metadata::ParentFile {
            file: "parent.parquet".into(),
            capture_id: None,
            segment_index: None,
            sha256: sha256(&parent),
            bytes: std::fs::metadata(&parent).expect("meta").len(),
            rows: events_a().len() as u64,
        }],
        selection: vec!["--pid".into(), "100".into()],
    }];
    let child = dir.path().join("child.parquet");
    common::write_capture(&child, &meta, &events_a()[..2]);
    let out = run([
        "verify".as_ref(),
        child.as_os_str(),
        "--parent".as_ref(),
        parent.as_os_str(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Another file given as the parent.
    let other = dir.path().join("other.parquet");
    common::write_capture(&other, &metadata("host-b", counters_a()), &events_a());
    let (code, report) = verify_json(&[&child, Path::new("--parent"), &other]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["problems"][0]["problem"], "parent");

    let info = run_ok(["info".as_ref(), child.as_os_str()]);
    assert!(
        info.contains("provenance") && info.contains("extract"),
        "{info}"
    );
}

#[test]
fn info_describes_a_directory_and_a_file_from_footers() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_directory(dir.path(), 3);
    let json: serde_json::Value = serde_json::from_str(&run_ok([
        "info".as_ref(),
        dir.path().as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("json");
    let capture = &json["captures"][0];
    assert_eq!(capture["capture_id"], ID);
    assert_eq!(capture["host"], "host-a");
    assert_eq!(capture["rows"], 5 + 6 + 7);
    assert_eq!(capture["rows_by_kind"]["syscall"], 5 + 6 + 7);
    assert_eq!(capture["segments"].as_array().expect("segments").len(), 3);
    assert_eq!(capture["segments"][1]["linked"], true);
    assert_eq!(capture["integrity"]["kind"], "directory capture");
    assert_eq!(
        capture["integrity"]["chain_consistent"], true,
        "{capture:#}"
    );
    assert_eq!(
        capture["integrity"]["manifest_consistent"], true,
        "{capture:#}"
    );
    assert_eq!(capture["integrity"]["hashed"], false);

    let text = run_ok(["info".as_ref(), dir.path().as_os_str()]);
    for expected in [
        "capture c0ffee00-1111-4222-8333-444455556666: 3 segments",
        "host         host-a",
        "rows         18 (syscall 18; counted from the kind column)",
        "chain consistent; manifest consistent",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }

    // A single file with loss and hostile text in its metadata.
    let file = dir.path().join("single.parquet");
    let mut meta = metadata("evil\u{1b}]0;owned\u{7}host", counters_a());
    meta.command_line = vec!["x".repeat(10_000)];
    let mut events = events_a();
    events.push(Event {
        kind: RowKind::Lost,
        ts_ns: BASE_NS + 5,
        ts_exit_ns: Some(BASE_NS + 9),
        cpu: 3,
        lost_count: Some(2),
        ..Default::default()
    });
    common::write_capture(&file, &meta, &events);
    let text = run_ok(["info".as_ref(), file.as_os_str()]);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("evil\\u{1b}]0;owned\\u{7}host"), "{text}");
    assert!(text.contains("single file: no chain or manifest"), "{text}");
    assert!(text.contains("loss windows:"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run_ok([
        "info".as_ref(),
        file.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("json");
    let capture = &json["captures"][0];
    assert_eq!(capture["lost"], counters_a().lost());
    assert!(
        capture["loss_window_count"].as_u64() >= Some(1),
        "{capture:#}"
    );
    assert!(
        capture["command_line"][0]
            .as_str()
            .expect("text")
            .chars()
            .count()
            <= 161,
        "long values are cut"
    );
}

/// Files not named as a recorder's segments are captures of their own, even when they share a
/// capture id (the committed fixtures of every version do): each is checked alone.
#[test]
fn verify_accepts_the_fixtures_of_every_version() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1");
    let (code, report) = verify_json(&[&fixtures]);
    assert_eq!(code, 0, "{report:#}");
    let versions: Vec<&str> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["format_version"].as_str())
        .collect();
    for version in ["1.0", "1.1", "1.2"] {
        assert!(versions.contains(&version), "{versions:?}");
    }
}
