//! `mmap-analyze maps` over a format 1.1 capture written with the format library.

use std::{ffi::OsString, path::Path};

use mmap_format::{event::RowKind, metadata::Counters};
use serde_json::{Value, json};

use crate::common::{
    BASE_NS, run, run_ok, run_ok_in,
    v11::{
        ANON, BIN_APP, BLOB_MOVED, CHILD_BIN, CHILD_STACK, FixtureC, HEAP, LD_SO, LONER, MEMFD,
        STACK, events_c, metadata_c,
    },
    write_capture,
};

fn maps_json(input: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<OsString> = vec!["maps".into(), input.as_os_str().to_owned()];
    args.extend(["--format".into(), "json".into()]);
    args.extend(extra.iter().map(Into::into));
    serde_json::from_str(&run_ok(args)).expect("maps --format json prints one JSON object")
}

/// `(start, end, perms, path, set_by)` of each region.
fn regions(report: &Value) -> Vec<(u64, u64, String, Option<String>, String)> {
    report["regions"]
        .as_array()
        .expect("regions is an array")
        .iter()
        .map(|r| {
            (
                r["start"].as_u64().expect("start"),
                r["end"].as_u64().expect("end"),
                r["perms"].as_str().expect("perms").to_owned(),
                r["path"].as_str().map(str::to_owned),
                r["set_by"].as_str().expect("set_by").to_owned(),
            )
        })
        .collect()
}

fn region(
    start: u64,
    end: u64,
    perms: &str,
    path: Option<&str>,
    set_by: &str,
) -> (u64, u64, String, Option<String>, String) {
    (
        start,
        end,
        perms.to_owned(),
        path.map(str::to_owned),
        set_by.to_owned(),
    )
}

fn time(offset_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(BASE_NS + offset_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[test]
fn at_the_end_every_rule_has_been_applied() {
    let fx = FixtureC::new();
    let report = maps_json(&fx.c, &["--pid", "500"]);
    assert_eq!(report["state"], "live");
    assert_eq!(report["comm"], "app");
    // The default time is the end of the capture (capture_end, 10 ms).
    assert_eq!(report["at"], time(10_000_000));
    assert_eq!(
        regions(&report),
        [
            region(
                BIN_APP,
                BIN_APP + 0x2000,
                "r--p",
                Some("/usr/bin/app"),
                "snapshot"
            ),
            region(
                BIN_APP + 0x2000,
                HEAP,
                "r-xp",
                Some("/usr/bin/app"),
                "snapshot"
            ),
            // brk grew the snapshot's heap.
            region(HEAP, HEAP + 0x42000, "rw-p", Some("[heap]"), "brk"),
            // mprotect split the anonymous mapping, and a second one made it whole again.
            region(ANON, ANON + 0x2000, "rw-p", None, "mprotect"),
            // mremap moved and grew the file mapping.
            region(
                BLOB_MOVED,
                BLOB_MOVED + 0x8000,
                "rw-s",
                Some("/data/blob.bin"),
                "mremap"
            ),
            // munmap took the first page of ld.so.
            region(
                LD_SO + 0x1000,
                LD_SO + 0x2000,
                "r--p",
                Some("/usr/lib/ld.so"),
                "snapshot"
            ),
            region(STACK, 0x7fff_ffff_f000, "rw-p", Some("[stack]"), "snapshot"),
        ]
    );
    let regs = report["regions"].as_array().expect("regions");
    let ld_so = &regs[5];
    assert_eq!(ld_so["off"], 0x1000, "the offset follows the cut");
    assert_eq!(ld_so["ino"], 200);
    assert_eq!(ld_so["dev_major_minor"], "8:1");
    let blob = &regs[4];
    assert_eq!(blob["shared"], true);
    assert_eq!(blob["ino"], 300);
    assert_eq!(blob["since"], time(4500), "a call takes effect at its exit");
    let anon = &regs[3];
    assert_eq!(anon["start_hex"], "0x7f0000000000");
    assert_eq!(
        anon["since"],
        time(13_000),
        "a merged region shows its latest change"
    );

    assert_eq!(report["baseline"]["kind"], "snapshot");
    assert_eq!(report["baseline"]["source"], "proc_maps:start");
    assert_eq!(report["baseline"]["time"], time(100));
    // The loss window before the time makes the map possibly incomplete.
    assert_eq!(report["complete"], false);
    assert_eq!(
        report["loss_windows"],
        json!([{"cpu": 2, "from": time(6500), "to": time(7500), "count": 17}])
    );
    let notes = report["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]
            .as_str()
            .is_some_and(|n| n.contains("17 records in 1 loss window")),
        "{notes:?}"
    );
}

#[test]
fn at_an_earlier_time_only_earlier_effects_count() {
    let fx = FixtureC::new();
    // The first row is the snapshot at +100 ns: +2100ns is +2200 ns. The file mmap entered at
    // +2000 but returned at +2500: not yet.
    let expected = [
        region(
            BIN_APP,
            BIN_APP + 0x2000,
            "r--p",
            Some("/usr/bin/app"),
            "snapshot",
        ),
        region(
            BIN_APP + 0x2000,
            HEAP,
            "r-xp",
            Some("/usr/bin/app"),
            "snapshot",
        ),
        region(HEAP, HEAP + 0x21000, "rw-p", Some("[heap]"), "snapshot"),
        region(ANON, ANON + 0x2000, "rw-p", None, "mmap"),
        region(
            LD_SO,
            LD_SO + 0x2000,
            "r--p",
            Some("/usr/lib/ld.so"),
            "snapshot",
        ),
        region(STACK, 0x7fff_ffff_f000, "rw-p", Some("[stack]"), "snapshot"),
    ];
    let by_offset = maps_json(&fx.c, &["--pid", "500", "--at", "+2100ns"]);
    assert_eq!(by_offset["at"], time(2200));
    assert_eq!(regions(&by_offset), expected);
    let by_time = maps_json(&fx.c, &["--pid", "500", "--at", &time(2200)]);
    assert_eq!(regions(&by_time), expected);
    // Nothing lost before that time, a snapshot as baseline: complete.
    assert_eq!(by_time["complete"], true);
    assert_eq!(by_time["loss_windows"], json!([]));
    assert_eq!(by_time["notes"], json!([]));
}

#[test]
fn no_merge_shows_the_raw_pieces() {
    let fx = FixtureC::new();
    // The two mprotect calls on the first page of ANON leave two pieces that merge again.
    let merged = maps_json(&fx.c, &["--pid", "500"]);
    let raw = maps_json(&fx.c, &["--pid", "500", "--no-merge"]);
    assert_eq!(merged["merged"], true);
    assert_eq!(raw["merged"], false);
    let anon = |report: &Value| -> Vec<(u64, u64, String, Option<String>, String)> {
        regions(report)
            .into_iter()
            .filter(|r| r.0 >= ANON && r.1 <= ANON + 0x2000)
            .collect()
    };
    assert_eq!(
        anon(&merged),
        [region(ANON, ANON + 0x2000, "rw-p", None, "mprotect")]
    );
    assert_eq!(
        anon(&raw),
        [
            region(ANON, ANON + 0x1000, "rw-p", None, "mprotect"),
            region(ANON + 0x1000, ANON + 0x2000, "rw-p", None, "mmap"),
        ]
    );
    assert_eq!(raw["regions"][4]["tid"], 501, "the thread that mapped it");
    assert_eq!(merged["pieces"], 8);
    assert_eq!(merged["regions"].as_array().map(Vec::len), Some(7));
    assert_eq!(merged["bytes"], raw["bytes"]);
}

#[test]
fn a_forked_child_starts_as_a_copy_then_execs() {
    let fx = FixtureC::new();
    // Between the fork (+8000) and the exec (+9000): the parent's map, set by the fork.
    let forked = maps_json(&fx.c, &["--pid", "600", "--at", &time(8500)]);
    assert_eq!(forked["state"], "live");
    assert_eq!(forked["forked_from"]["parent"], 500);
    assert_eq!(forked["forked_from"]["time"], time(8000));
    let parent = maps_json(&fx.c, &["--pid", "500", "--at", &time(8500)]);
    let copied: Vec<_> = regions(&forked)
        .into_iter()
        .map(|r| (r.0, r.1, r.2, r.3))
        .collect();
    let original: Vec<_> = regions(&parent)
        .into_iter()
        .map(|r| (r.0, r.1, r.2, r.3))
        .collect();
    assert_eq!(copied, original);
    assert!(regions(&forked).iter().all(|r| r.4 == "fork"));
    assert_eq!(
        forked["baseline"]["snapshot_pid"], 500,
        "known from the parent's snapshot"
    );

    // After the exec and its snapshot, plus the memfd mapping (exit at +10000).
    let execd = maps_json(&fx.c, &["--pid", "600", "--at", &time(10_000)]);
    assert_eq!(execd["comm"], "child");
    assert_eq!(execd["exec"]["path"], "/usr/bin/child");
    assert_eq!(execd["baseline"]["source"], "proc_maps:exec");
    assert_eq!(
        regions(&execd),
        [
            region(
                CHILD_BIN,
                CHILD_BIN + 0x3000,
                "r-xp",
                Some("/usr/bin/child"),
                "snapshot"
            ),
            region(MEMFD, MEMFD + 0x10000, "rw-s", Some("/memfd:jit"), "mmap"),
            region(
                CHILD_STACK,
                CHILD_STACK + 0x21000,
                "rw-p",
                Some("[stack]"),
                "snapshot"
            ),
        ]
    );
    let memfd = &execd["regions"][1];
    assert_eq!(memfd["memfd"], true);
    assert_eq!(memfd["deleted"], true);

    // Between the exec and its snapshot: empty, and said to be unknown.
    let emptied = maps_json(&fx.c, &["--pid", "600", "--at", &time(9050)]);
    assert_eq!(emptied["regions"], json!([]));
    assert_eq!(emptied["baseline"]["kind"], "exec");
    assert_eq!(emptied["complete"], false);
}

#[test]
fn after_its_exit_a_process_has_no_map() {
    let fx = FixtureC::new();
    let report = maps_json(&fx.c, &["--pid", "600"]);
    assert_eq!(report["state"], "exited");
    assert_eq!(report["exited_at"], time(11_000));
    assert_eq!(report["exit_code"], 256);
    assert_eq!(report["exit_status"], "exit status 1");
    assert_eq!(report["regions"], json!([]));

    let table = run_ok([
        "maps".as_ref(),
        fx.c.as_os_str(),
        "--pid".as_ref(),
        "600".as_ref(),
    ]);
    assert!(
        table.contains(&format!("exited at {} (exit status 1)", time(11_000))),
        "{table}"
    );
    assert!(!table.contains("ADDRESS"), "no map table: {table}");
}

#[test]
fn before_its_first_row_a_process_is_not_started() {
    let fx = FixtureC::new();
    let report = maps_json(&fx.c, &["--pid", "600", "--at", "+0"]);
    assert_eq!(report["state"], "not_started");
    assert_eq!(report["first_seen"], time(8000), "the fork that created it");
    assert_eq!(report["regions"], json!([]));
}

#[test]
fn without_a_snapshot_the_output_says_so() {
    let fx = FixtureC::new();
    let report = maps_json(&fx.c, &["--pid", "700", "--at", &time(1000)]);
    assert_eq!(report["baseline"]["kind"], "none");
    assert_eq!(report["complete"], false);
    assert_eq!(
        regions(&report),
        [region(LONER, LONER + 0x1000, "rw-p", None, "mmap")]
    );
    let note = report["notes"][0].as_str().expect("a note");
    assert!(
        note.contains("mappings made before the capture started are not known"),
        "{note}"
    );
    let table = run_ok([
        "maps".as_ref(),
        fx.c.as_os_str(),
        "--pid".as_ref(),
        "700".as_ref(),
    ]);
    assert!(
        table.contains("mappings made before the capture started are not known"),
        "{table}"
    );
}

#[test]
fn unknown_pid_is_a_one_line_error() {
    let fx = FixtureC::new();
    let output = run([
        "maps".as_ref(),
        fx.c.as_os_str(),
        "--pid".as_ref(),
        "999".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "mmap-analyze: pid 999 does not appear in {}",
            fx.c.display()
        )),
        "{stderr}"
    );
}

#[test]
fn bad_times_are_usage_errors() {
    let fx = FixtureC::new();
    for at in ["yesterday", "1.5s", "+1.5 parsecs", "2026-11-27"] {
        let output = run([
            "maps".as_ref(),
            fx.c.as_os_str(),
            "--pid".as_ref(),
            "500".as_ref(),
            "--at".as_ref(),
            at.as_ref(),
        ]);
        assert_eq!(output.status.code(), Some(2), "--at {at}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("RFC 3339"), "--at {at}: {stderr}");
    }
}

#[test]
fn format_1_0_captures_are_replayed_with_a_warning() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1/synthetic-v1.0.parquet");
    let report = maps_json(&fixture, &["--pid", "4242"]);
    assert_eq!(report["state"], "live");
    assert_eq!(report["complete"], false);
    assert!(
        report["regions"].as_array().is_some_and(|r| !r.is_empty()),
        "the fixture's successful mmap calls"
    );
    let notes = report["notes"].to_string();
    assert!(notes.contains("format 1.0"), "{notes}");
}

#[test]
fn table_output_snapshot() {
    let fx = FixtureC::new();
    let stdout = run_ok_in(fx.dir.path(), ["maps", "c.parquet", "--pid", "500"]);
    insta::assert_snapshot!("maps_table_c_500", stdout);
    let stdout = run_ok_in(
        fx.dir.path(),
        [
            "maps",
            "c.parquet",
            "--pid",
            "600",
            "--at",
            "+9900ns",
            "--no-merge",
        ],
    );
    insta::assert_snapshot!("maps_table_c_600_after_exec", stdout);
}

// Processes that predate the capture, and segments missing from the inputs (capture D).

mod predating {
    use std::ffi::OsString;

    use serde_json::{Value, json};

    use super::{maps_json, region, regions, time};
    use crate::common::{
        run_ok,
        segmented::{BASH, BASH_ANON1, BASH_ANON2, TOOL, TOOL_BIN, write_segments},
    };

    fn maps_json_of(inputs: &[&std::path::Path], extra: &[&str]) -> Value {
        let mut args: Vec<OsString> = vec!["maps".into()];
        args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
        args.extend(["--format".into(), "json".into()]);
        args.extend(extra.iter().map(Into::into));
        serde_json::from_str(&run_ok(args)).expect("one JSON object")
    }

    fn notes(report: &Value) -> String {
        report["notes"].to_string()
    }

    #[test]
    fn a_process_seen_before_the_time_exists_then_without_a_known_map() {
        let dir = tempfile::tempdir().expect("temp dir");
        let [seg0] = &write_segments(dir.path(), &[0])[..] else {
            unreachable!("one segment written")
        };
        // The shell's first row is its fork at +1000; at +2500 it has mapped nothing yet.
        let report = maps_json(seg0, &["--pid", "800", "--at", &time(2500)]);
        assert_eq!(report["state"], "live", "{report:#}");
        assert_eq!(report["complete"], false);
        assert_eq!(report["baseline"]["kind"], "none");
        assert_eq!(report["regions"], json!([]));
        assert!(
            notes(&report).contains("no snapshot of pid 800"),
            "{}",
            notes(&report)
        );
        assert_eq!(report["first_seen"], Value::Null);

        let table = run_ok([
            "maps".as_ref(),
            seg0.as_os_str(),
            "--pid".as_ref(),
            "800".as_ref(),
            "--at".as_ref(),
            time(2500).as_ref(),
        ]);
        assert!(!table.contains("not seen yet"), "{table}");
        assert!(table.contains("Complete  no (see the notes)"), "{table}");

        // At the end of the segment: what its own calls mapped, still not complete.
        let report = maps_json(seg0, &["--pid", "800"]);
        assert_eq!(report["state"], "live");
        assert_eq!(report["complete"], false);
        assert_eq!(
            regions(&report),
            [region(
                BASH_ANON1,
                BASH_ANON1 + 0x1000,
                "rw-p",
                None,
                "mmap"
            )]
        );
    }

    #[test]
    fn across_segments_the_calls_of_every_segment_count() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_segments(dir.path(), &[0, 1, 2]);
        let report = maps_json(dir.path(), &["--pid", &BASH.to_string()]);
        assert_eq!(report["state"], "live");
        assert_eq!(report["complete"], false, "no snapshot of the shell");
        assert_eq!(report["missing_segments"], json!([]));
        assert_eq!(
            regions(&report),
            [region(
                BASH_ANON2,
                BASH_ANON2 + 0x2000,
                "rw-p",
                None,
                "mmap"
            )]
        );
        // The tool has an exec snapshot and every segment is there: complete.
        let tool = maps_json(dir.path(), &["--pid", &TOOL.to_string()]);
        assert_eq!(tool["complete"], true, "{tool:#}");
        assert_eq!(
            regions(&tool),
            [region(
                TOOL_BIN,
                TOOL_BIN + 0x1000,
                "r-xp",
                Some("/usr/bin/tool"),
                "snapshot"
            )]
        );
    }

    #[test]
    fn a_missing_segment_before_the_time_makes_no_answer_complete() {
        let dir = tempfile::tempdir().expect("temp dir");
        // `--keep 2` removed segment 0.
        write_segments(dir.path(), &[1, 2]);
        let tool = maps_json(dir.path(), &["--pid", &TOOL.to_string()]);
        assert_eq!(tool["state"], "live");
        assert_eq!(tool["baseline"]["kind"], "snapshot");
        assert_eq!(tool["complete"], false, "{tool:#}");
        assert_eq!(
            tool["missing_segments"],
            json!([{
                "capture_id": "d0d0d0d0-0000-4000-8000-000000000002",
                "first_index": 0,
                "last_index": 0,
                "unknown_from": null,
                "unknown_to": time(10_000_000),
            }])
        );
        assert!(
            notes(&tool).contains("segment 0 of capture d0d0d0d0 is missing"),
            "{}",
            notes(&tool)
        );

        // Segment 1 left out on the command line: unknown between segments 0 and 2, so only
        // times after the end of segment 0 are affected.
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = write_segments(dir.path(), &[0, 2]);
        let inputs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        let early = maps_json_of(&inputs, &["--pid", "801", "--at", &time(3000)]);
        assert_eq!(early["complete"], true, "{early:#}");
        let late = maps_json_of(&inputs, &["--pid", &BASH.to_string()]);
        assert_eq!(late["missing_segments"][0]["first_index"], 1);
        assert_eq!(
            late["missing_segments"][0]["unknown_from"],
            time(10_000_000)
        );
        assert_eq!(late["missing_segments"][0]["unknown_to"], time(20_000_000));
    }

    #[test]
    fn a_process_first_seen_later_may_have_existed_before() {
        let fx = crate::common::v11::FixtureC::new();
        // pid 700 has one mmap (in effect at +1000) and no fork: at +100 it may exist already.
        let report = maps_json(&fx.c, &["--pid", "700", "--at", &time(100)]);
        assert_eq!(report["state"], "not_seen");
        assert_eq!(report["complete"], false);
        assert_eq!(report["first_seen"], time(1000));
        assert!(
            notes(&report).contains("it may already have existed"),
            "{}",
            notes(&report)
        );
    }
}

#[test]
fn at_takes_the_times_the_tables_print_and_every_other_form() {
    let fx = FixtureC::new();
    let expected = regions(&maps_json(&fx.c, &["--pid", "500", "--at", &time(2200)]));
    for at in [
        "06:01:13.000002200",
        "1795759273000002200",
        "1795759273.0000022",
        "+2100ns",
    ] {
        let report = maps_json(&fx.c, &["--pid", "500", "--at", at]);
        assert_eq!(report["at"], time(2200), "--at {at}");
        assert_eq!(regions(&report), expected, "--at {at}");
    }
    // From the end (capture_end, +10 ms), and the end itself.
    let report = maps_json(&fx.c, &["--pid", "500", "--at", "-9990us"]);
    assert_eq!(report["at"], time(10_000));
    let report = maps_json(&fx.c, &["--pid", "500", "--at", "end"]);
    assert_eq!(report["at"], time(10_000_000));
}

#[test]
fn before_exit_is_the_last_moment_of_the_process() {
    let fx = FixtureC::new();
    // pid 600 exits at +11000.
    let report = maps_json(&fx.c, &["--pid", "600", "--before-exit"]);
    assert_eq!(report["at"], time(10_999));
    assert_eq!(report["state"], "live");
    assert_eq!(
        regions(&report),
        regions(&maps_json(&fx.c, &["--pid", "600", "--at", &time(10_000)]))
    );
    let output = run([
        "maps".as_ref(),
        fx.c.as_os_str(),
        "--pid".as_ref(),
        "500".as_ref(),
        "--before-exit".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("pid 500 has no exit row"), "{stderr}");
}

#[test]
fn a_time_outside_the_capture_is_used_with_a_warning() {
    let fx = FixtureC::new();
    let output = run([
        "maps".as_ref(),
        fx.c.as_os_str(),
        "--pid".as_ref(),
        "500".as_ref(),
        "--at".as_ref(),
        "+1h".as_ref(),
    ]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "mmap-analyze: warning: --at +1h: 2026-11-27T07:01:13.000000100Z is outside the capture"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}

/// Capture C with `counters`, and without its lost row when `without_lost_row` (its loss
/// window would make the later answers incomplete whatever the counters say).
fn capture_c_with(dir: &Path, counters: Counters, without_lost_row: bool) -> std::path::PathBuf {
    let path = dir.join(format!("c-{}.parquet", without_lost_row));
    let mut meta = metadata_c();
    meta.counters = counters;
    let events: Vec<_> = events_c()
        .into_iter()
        .filter(|e| !(without_lost_row && e.kind == RowKind::Lost))
        .collect();
    write_capture(&path, &meta, &events);
    path
}

/// Entries dropped for want of room for the call in flight and records user space could not decode
/// have no time: every answer is incomplete, even before the capture's first loss window (which
/// used to hide them: with `lost` rows present, `maps` said "complete" before them).
#[test]
fn counted_losses_without_a_time_make_every_answer_incomplete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lost = Counters {
        emitted: 22,
        lost_ringbuf_full: 17,
        ..Counters::default()
    };
    let before_the_window = ["--pid", "500", "--at", &time(6000)];
    let plain = capture_c_with(dir.path(), lost, false);
    let report = maps_json(&plain, &before_the_window);
    assert_eq!(report["complete"], true, "{report:#}");

    for (counters, words) in [
        (
            Counters {
                entry_map_full: 3,
                ..lost
            },
            "3 system calls dropped by the recorder, which had no room for their state in the \
             kernel",
        ),
        (
            Counters {
                decode_errors: 2,
                ..lost
            },
            "2 kernel records the recorder could not decode",
        ),
    ] {
        let sub = tempfile::tempdir_in(dir.path()).expect("temp dir");
        let path = capture_c_with(sub.path(), counters, false);
        let report = maps_json(&path, &before_the_window);
        assert_eq!(report["complete"], false, "{counters:?}: {report:#}");
        let notes = report["notes"].to_string();
        assert!(notes.contains(words), "{words:?} in {notes}");
        assert_eq!(
            report["lost_without_time"],
            counters.entry_map_full + counters.decode_errors
        );
        let table = run_ok([
            "maps".as_ref(),
            path.as_os_str(),
            "--pid".as_ref(),
            "500".as_ref(),
            "--at".as_ref(),
            time(6000).as_ref(),
        ]);
        assert!(
            table.contains("Complete  no (see the notes)") || table.contains("no (see the notes)"),
            "{table}"
        );
        assert!(table.contains(words), "{table}");
    }
}

/// New processes the kernel side could not follow (its map of followed processes was full) have
/// a fork row and nothing after it: the answer for a forked process says so; a process the
/// capture knew from its start is not affected.
#[test]
fn unfollowed_children_make_the_answer_for_forked_processes_incomplete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clean = Counters {
        emitted: 21,
        ..Counters::default()
    };
    let child = ["--pid", "600", "--at", &time(8500)];
    let parent = ["--pid", "500", "--at", &time(8500)];
    let path = capture_c_with(dir.path(), clean, true);
    assert_eq!(maps_json(&path, &child)["complete"], true);

    let sub = tempfile::tempdir_in(dir.path()).expect("temp dir");
    let full = Counters {
        follow_map_full: 4,
        ..clean
    };
    let path = capture_c_with(sub.path(), full, true);
    let report = maps_json(&path, &child);
    assert_eq!(report["complete"], false, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("4 new processes were not followed"),
        "{notes}"
    );
    assert_eq!(maps_json(&path, &parent)["complete"], true);
}

/// A process with thousands of calls, some failed: the rows come in batches of thousands
/// (replayed from where they were read) and in batches of a few kept rows (copied out), and
/// every call still takes effect in time order: every other mapping of the first half is
/// unmapped later, in another batch.
#[test]
fn thousands_of_calls_replay_in_order_across_batches() {
    use mmap_format::event::{Event, Syscall};

    use crate::common::{
        metadata,
        v11::{call, mmap_anon},
        write_capture_with,
    };

    const MAPS: u64 = 12_000;
    const BASE: u64 = 0x7f00_0000_0000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("many.parquet");
    let mut events = Vec::new();
    let mut t = 1_000;
    for i in 0..MAPS {
        t += 1_000;
        events.push(mmap_anon(t, 700, "many", 4096, BASE + i * 0x2000));
        if i % 3 == 0 {
            // Failed calls, read and not replayed: a batch keeps only some of its rows. Another
            // process's would not be read at all.
            events.push(mmap_anon(t + 1, 700, "many", 4096, -12_i64 as u64));
        }
    }
    for i in (0..MAPS / 2).step_by(2) {
        t += 1_000;
        events.push(Event {
            addr: Some(BASE + i * 0x2000),
            len: Some(4096),
            ..call(Syscall::Munmap, t, 700, "many", 0)
        });
        // Here a batch keeps fewer than half its rows: they are copied out.
        for k in 1..3 {
            events.push(mmap_anon(t + k, 700, "many", 4096, -12_i64 as u64));
        }
    }
    let counters = Counters {
        emitted: events.len() as u64,
        ..Counters::default()
    };
    write_capture_with(&path, &metadata("host", counters), &events, 20_000);
    // Not held while the children run (their peak RSS counts this process's at the fork).
    drop(events);

    let report = maps_json(&path, &["--pid", "700", "--no-merge"]);
    let starts: Vec<u64> = regions(&report).iter().map(|r| r.0).collect();
    let expected: Vec<u64> = (0..MAPS)
        .filter(|i| *i >= MAPS / 2 || i % 2 == 1)
        .map(|i| BASE + i * 0x2000)
        .collect();
    assert_eq!(starts.len(), expected.len());
    assert_eq!(starts, expected);
    assert!(
        regions(&report)
            .iter()
            .all(|r| r.1 == r.0 + 4096 && r.4 == "mmap"),
        "one page each, set by its mmap"
    );
}

/// `maps`' default time is the capture's end: the later of its recorded end and the last time a
/// row records, a call's exit or a loss window's end. Read from the row groups' statistics, or
/// from the rows of a file written without them: the same answer either way.
#[test]
fn the_default_time_is_the_last_time_a_row_records_with_or_without_statistics() {
    use std::borrow::Cow;

    use mmap_format::{event::Event, reader::CaptureReader};
    use parquet::file::properties::EnabledStatistics;

    use crate::{
        common::{
            metadata,
            v11::{mmap_anon, row},
        },
        corpus,
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let with = dir.path().join("with.parquet");
    // The recorded end is BASE + 10 ms; the rows go past it.
    let loss_end = BASE_NS + 40_000_000;
    let events = vec![
        mmap_anon(2_000, 700, "app", 4096, 0x7f00_0000_0000),
        Event {
            ts_exit_ns: Some(loss_end),
            lost_count: Some(3),
            source: Some(Cow::Borrowed("kernel")),
            pid: 0,
            tid: 0,
            comm: Cow::Borrowed(""),
            ..row(RowKind::Lost, 20_000_000, 0, "")
        },
        mmap_anon(30_000_000, 700, "app", 4096, 0x7f00_0001_0000),
    ];
    write_capture(&with, &metadata("host", Counters::default()), &events);
    let without = dir.path().join("without.parquet");
    let bytes = corpus::rewrite(
        &std::fs::read(&with).expect("read"),
        None,
        corpus::zstd_props().set_statistics_enabled(EnabledStatistics::None),
        |_| {},
    );
    std::fs::write(&without, bytes).expect("write");
    let bound = |path: &Path| CaptureReader::open(path).expect("open").max_time_ns();
    assert_eq!(bound(&with), Some(Some(loss_end)), "from the statistics");
    assert_eq!(bound(&without), None, "no statistics: read from the rows");

    for (name, path) in [("statistics", &with), ("rows", &without)] {
        let report = maps_json(path, &["--pid", "700"]);
        assert_eq!(report["at_ns"], json!(loss_end), "{name}: {report}");
        assert_eq!(
            report["first_row"],
            json!("2026-11-27T06:01:13.000002000Z"),
            "{name}"
        );
        assert_eq!(regions(&report).len(), 2, "{name}");
    }
}
