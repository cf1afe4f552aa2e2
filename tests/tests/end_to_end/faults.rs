//! Faults while recording: a map of followed processes that fills up. Each must end in a capture
//! that holds every call or counts it.
use std::{
    collections::HashSet,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use mmap_capture_tests::{read_capture, require_root, workspace_bin};
use mmap_format::event::RowKind;

/// Runs `mmap-recorder record -q EXTRA -o OUT -- COMMAND` and returns the command's stdout (the
/// recorder passes it through), the recorder's stderr and its peak RSS in KiB (VmHWM, read
/// every 20 ms while it runs).
fn record(out: &Path, extra: &[&str], command: &[&str]) -> (String, String, u64) {
    let mut child = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg("--")
        .args(command)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mmap-recorder");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    while child.try_wait().expect("try_wait").is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("recorder output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "mmap-recorder: {}\n{stderr}",
        output.status
    );
    (stdout, stderr, peak_kib)
}

fn analyze(args: &[&str], capture: &Path) -> String {
    let out = Command::new(workspace_bin("mmap-analyze"))
        .args(args)
        .arg(capture)
        .output()
        .expect("run mmap-analyze");
    assert!(
        out.status.success(),
        "mmap-analyze {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// With a map of followed processes of 8 entries (the hidden test knob; normally 16,384), a
/// shell that starts 20 children that live together fills it: the children the kernel could not
/// follow are counted in `follow_map_full` (before, they were silently not recorded), `summary`
/// reports them and calls the capture incomplete, and `maps` of such a child says so.
#[test]
#[ignore = "needs root"]
fn children_past_a_full_follow_map_are_counted_and_reported() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("follow.parquet");
    let (_, stderr, _) = record(
        &capture,
        &["--follow-map-size", "8"],
        &["sh", "-c", "for i in $(seq 20); do sleep 1 & done; wait"],
    );
    let (meta, events) = read_capture(&capture);
    let shell = events
        .iter()
        .find(|e| e.kind == RowKind::Exec)
        .expect("the shell's exec")
        .pid;
    let children: Vec<u32> = events
        .iter()
        .filter(|e| e.kind == RowKind::Fork && e.pid == shell)
        .map(|e| e.child_pid.expect("child_pid"))
        .collect();
    let with_exit: HashSet<u32> = events
        .iter()
        .filter(|e| e.kind == RowKind::Exit)
        .map(|e| e.pid)
        .collect();
    // A followed child has rows of its own (its exec of sleep, its exit); one not followed has
    // only the fork that created it.
    let unfollowed: Vec<u32> = children
        .iter()
        .copied()
        .filter(|c| !with_exit.contains(c))
        .collect();
    let counted = meta.counters.follow_map_full;
    eprintln!(
        "{} children, {} unfollowed, follow_map_full {counted}",
        children.len(),
        unfollowed.len()
    );
    assert!(children.len() >= 20, "{children:?}");
    assert!(counted > 0, "nothing counted: {:?}", meta.counters);
    assert_eq!(
        counted,
        unfollowed.len() as u64,
        "every child without rows of its own is counted"
    );
    assert!(
        stderr.contains(&format!("{counted} new processes were not recorded")),
        "{stderr}"
    );

    let summary = analyze(&["summary"], &capture);
    assert!(
        summary.contains(&format!(
            "{counted} new processes were not followed (the recorder's map of followed processes \
             was full)"
        )),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&analyze(&["summary", "--format", "json"], &capture)).expect("json");
    assert_eq!(json["complete"], false);
    assert_eq!(json["counters"]["follow_map_full"], counted);

    let child = unfollowed[0].to_string();
    let at = events
        .iter()
        .find(|e| e.kind == RowKind::Fork && e.child_pid == Some(unfollowed[0]))
        .expect("fork row")
        .ts_ns;
    let at = chrono::DateTime::from_timestamp_nanos(at + 1)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let maps: serde_json::Value = serde_json::from_str(&analyze(
        &["maps", "--pid", &child, "--at", &at, "--format", "json"],
        &capture,
    ))
    .expect("json");
    assert_eq!(maps["complete"], false, "{maps:#}");
    assert_eq!(maps["unfollowed_processes"], counted);
    assert!(
        maps["notes"].to_string().contains("not followed"),
        "{maps:#}"
    );
}
