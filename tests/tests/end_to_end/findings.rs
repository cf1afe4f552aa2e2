//! `mmap-analyze findings` on real recordings: `mmap-workload --plant all` under the recorder
//! shows every planted finding in the workload's processes; the same workload without plants
//! shows none.
use std::{path::Path, process::Command};

use mmap_capture_tests::{Report, require_root, workspace_bin};
use serde_json::Value;

/// Records `mmap-workload --report R --dir DIR EXTRA...` and returns the workload's report and
/// the findings (JSON Lines, one object per question).
fn record_and_find(dir: &Path, extra: &[&str]) -> (Report, Vec<Value>) {
    let (_, report, capture) = super::record_mmap::record_workload_with(dir, extra);
    let out = Command::new(workspace_bin("mmap-analyze"))
        .arg("findings")
        .arg(&capture)
        .args(["--format", "json"])
        .output()
        .expect("run mmap-analyze findings");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "findings failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    (report, findings)
}

fn by_id<'f>(findings: &'f [Value], id: &str) -> &'f Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
}

fn example_pids(finding: &Value) -> Vec<u64> {
    finding["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .filter_map(|e| e["pid"].as_u64())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn planted_findings_appear_only_in_the_planted_recording() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let planted_dir = dir.path().join("planted");
    let clean_dir = dir.path().join("clean");
    std::fs::create_dir_all(&planted_dir).expect("mkdir");
    std::fs::create_dir_all(&clean_dir).expect("mkdir");

    let (report, planted) = record_and_find(&planted_dir, &["--plant", "all"]);
    let workload = u64::from(report.pid);
    // Planted by the workload itself.
    for id in [
        "wx-mapping",
        "exec-after-write",
        "deleted-exec-mapping",
        "deleted-mapping",
        "big-anon",
        "failure-storm",
    ] {
        let finding = by_id(&planted, id);
        assert!(
            finding["count"].as_u64() > Some(0),
            "{id} not found: {finding}"
        );
        assert!(
            example_pids(finding).contains(&workload),
            "{id}: not in the workload ({workload}): {finding}"
        );
    }
    // Planted by its children: the exec of a deleted copy of sleep, the child keeping 300 MiB.
    for id in ["deleted-exec", "leak-candidate", "fast-anon"] {
        let finding = by_id(&planted, id);
        assert!(
            finding["count"].as_u64() > Some(0),
            "{id} not found: {finding}"
        );
    }
    let deleted_exec = by_id(&planted, "deleted-exec");
    let files: Vec<&str> = deleted_exec["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .filter_map(|e| e["file"].as_str())
        .collect();
    assert!(
        files.iter().any(|f| f.starts_with("/proc/self/fd/")),
        "{deleted_exec}"
    );
    let leak = by_id(&planted, "leak-candidate");
    assert!(
        leak["examples"][0]["len"].as_u64() >= Some(300 << 20),
        "{leak}"
    );

    let (_, clean) = record_and_find(&clean_dir, &[]);
    for finding in &clean {
        if finding["severity"] == "info" {
            continue;
        }
        assert_eq!(
            finding["count"], 0,
            "found in the clean recording: {finding}"
        );
    }
}
