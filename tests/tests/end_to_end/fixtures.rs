//! The committed captures in fixtures/ stay readable by this version of the reader, with the
//! contents they were made with. (fixtures/v1/synthetic-v1.0.parquet is checked field by field in
//! format/tests; this file checks the real recording.)
use std::path::Path;

use mmap_capture_tests::{Report, check_workload_capture};
use mmap_format::{FORMAT_MAJOR, reader::CaptureReader};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

#[test]
fn recorded_v1_0_fixture_reads_with_every_workload_call() {
    let reader = CaptureReader::open(&fixture("v1/recorded-v1.0.parquet")).expect("open fixture");
    let report: Report = serde_json::from_slice(
        &std::fs::read(fixture("v1/recorded-v1.0.report.json")).expect("report"),
    )
    .expect("parse report");
    let meta = reader.metadata().clone();
    assert_eq!(meta.format_version.major, FORMAT_MAJOR);
    assert_eq!(meta.format_version.minor, 0);
    assert_eq!(meta.attach_mode, "tracepoint");
    let events: Vec<_> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(events.len(), 24);
    assert_eq!(report.calls.len(), 8);
    check_workload_capture(&meta, &events, &report);
}

#[test]
fn recorded_v1_1_fixture_reads_with_every_call_and_replays_to_the_childs_own_maps() {
    use mmap_capture_tests::{check_calls, check_family_call, check_replay_matches_maps};
    use mmap_format::event::RowKind;

    let reader = CaptureReader::open(&fixture("v1/recorded-v1.1.parquet")).expect("open fixture");
    let report: Report = serde_json::from_slice(
        &std::fs::read(fixture("v1/recorded-v1.1.report.json")).expect("report"),
    )
    .expect("parse report");
    let meta = reader.metadata().clone();
    assert_eq!(
        (meta.format_version.major, meta.format_version.minor),
        (1, 1)
    );
    assert_eq!(meta.attach_mode, "tracepoint");
    assert_eq!(meta.counters.lost(), 0);
    let events: Vec<_> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(events.len(), 142);
    check_calls(&meta, &events, &report);
    let slack = meta.clock_anchors[0].uncertainty_ns as i64 + 1_000;
    let child = report.exec_child.as_ref().expect("exec child");
    for call in report.family.iter().chain(&child.calls) {
        check_family_call(&events, call, slack);
    }
    assert!(
        events
            .iter()
            .any(|e| e.kind == RowKind::Fork && e.child_pid == Some(child.pid))
    );
    check_replay_matches_maps(
        &fixture("v1"),
        "recorded-v1.1.parquet",
        child.pid,
        child.maps_after_ns,
        &child.maps,
    );
}
