//! Captures made from a real recording: `redact` leaves no original name anywhere in the file and
//! the same counts, `pack` joins the segments with every row, `extract` keeps what `maps` needs,
//! and the round trip record -> redact -> extract -> verify -> summary holds.
use std::{
    ffi::OsStr,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use mmap_capture_tests::{Report, analyze, read_capture, require_root, workspace_bin};
use serde_json::Value;

use crate::leaks::{self, Secrets};

/// Every distinctive value the recording holds starts with this: the program's path and name
/// (its comm), its data files' directory, its cgroup, the host name, the report path on the
/// recorder's command line.
const MARK: &str = "zqleak";

fn analyze_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = analyze(args);
    assert!(
        out.status.success(),
        "mmap-analyze: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `summary --format json` without what names the files and hosts, thread names blanked and
/// lists in a fixed order: the counts.
fn summary_counts(input: &Path) -> Value {
    let text = analyze_ok([
        OsStr::new("summary"),
        input.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let mut value: Value = serde_json::from_str(&text).expect("summary json");
    normalize(&mut value);
    value
}

fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("files");
            map.remove("hosts");
            for (key, item) in map.iter_mut() {
                if key == "comm" || key == "name" {
                    *item = Value::Null;
                }
                normalize(item);
            }
        }
        Value::Array(items) => {
            items.iter_mut().for_each(normalize);
            items.sort_by_key(Value::to_string);
        }
        _ => {}
    }
}

fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// The segments of `dir`, in name order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list segments")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension() == Some(OsStr::new("parquet")))
        .collect();
    files.sort();
    files
}

/// Records the workload (with its fork and exec) as a program named `zqleakcomm` in a
/// distinctive directory, in a cgroup and under a host name of its own, into 300 ms segments;
/// returns the segment directory and the workload's report.
fn record(base: &Path) -> (PathBuf, Report) {
    let program_dir = base.join(format!("{MARK}prog"));
    std::fs::create_dir(&program_dir).expect("mkdir");
    let program = program_dir.join(format!("{MARK}comm"));
    std::fs::copy(workspace_bin("mmap-workload"), &program).expect("copy the workload");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = base.join(format!("{MARK}data"));
    std::fs::create_dir(&data).expect("mkdir");
    let report_path = base.join(format!("{MARK}report.json"));
    let rec = base.join("rec");

    let mount = cgroup2_mount().expect("a cgroup2 mount: the test needs cgroup v2");
    let cgroup = mount.join(format!("{MARK}cg-{}", std::process::id()));
    std::fs::create_dir(&cgroup).expect("create cgroup");
    let procs = cgroup.join("cgroup.procs");
    let mut cmd = Command::new(workspace_bin("mmap-recorder"));
    cmd.args(["record", "-q", "--rotate-time", "300ms", "-o"])
        .arg(format!("{}/", rec.display()))
        .arg("--")
        .arg(&program)
        .args(["--family", "--duration", "1500ms", "--dir"])
        .arg(&data)
        .arg("--report")
        .arg(&report_path);
    // SAFETY: between fork and exec the child only moves itself into the cgroup (open, write,
    // close) and into a UTS namespace of its own, whose host name it sets: no locks are taken.
    unsafe {
        cmd.pre_exec(move || {
            std::fs::write(&procs, std::process::id().to_string())?;
            if libc::unshare(libc::CLONE_NEWUTS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let host = b"zqleakhost";
            if libc::sethostname(host.as_ptr().cast(), host.len()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run the recorder");
    let _ = std::fs::remove_dir(&cgroup);
    assert!(
        out.status.success(),
        "recorder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("parse");
    (rec, report)
}

#[test]
#[ignore = "needs root"]
fn captures_made_from_a_real_recording() {
    require_root!();
    let base = tempfile::Builder::new()
        .prefix(&format!("{MARK}-"))
        .tempdir()
        .expect("tempdir");
    let (rec, report) = record(base.path());
    let files = segments(&rec);
    assert!(files.len() >= 2, "rotation gave {} segments", files.len());

    // The recording holds the marked values where the test put them (else the check below
    // would prove nothing).
    let (meta, _) = read_capture(&files[0]);
    assert_eq!(meta.hostname, "zqleakhost");
    let rows: Vec<_> = files.iter().flat_map(|f| read_capture(f).1).collect();
    let marked = |text: Option<&str>| text.is_some_and(|t| t.contains(MARK));
    assert!(rows.iter().any(|e| e.comm.starts_with(MARK)), "comm");
    assert!(rows.iter().any(|e| marked(e.file_path.as_deref())), "paths");
    assert!(
        rows.iter().any(|e| marked(e.cgroup_path.as_deref())),
        "cgroup"
    );

    // redact: nothing of the marked values, nor of the key, anywhere in the file.
    let key = base.path().join("key");
    let key_text = "zq-e2e-key-0123456789abcdef";
    std::fs::write(&key, key_text).expect("write key");
    let shared = base.path().join("shared.parquet");
    analyze_ok([
        OsStr::new("redact"),
        rec.as_os_str(),
        OsStr::new("-o"),
        shared.as_os_str(),
        OsStr::new("--key-file"),
        key.as_os_str(),
    ]);
    let secrets = Secrets {
        texts: &[MARK, key_text],
        ids: &[],
    };
    let found = leaks::find(&std::fs::read(&files[0]).expect("read"), &secrets);
    assert!(
        !found.is_empty(),
        "the check sees the marks in the original"
    );
    let found = leaks::find(&std::fs::read(&shared).expect("read"), &secrets);
    assert!(
        found.is_empty(),
        "survives in the redacted capture: {found:#?}"
    );
    assert_eq!(
        summary_counts(&shared),
        summary_counts(&rec),
        "summary counts"
    );

    // pack: one file, every row in order, the same summary.
    let packed = base.path().join("packed.parquet");
    analyze_ok([
        OsStr::new("pack"),
        rec.as_os_str(),
        OsStr::new("-o"),
        packed.as_os_str(),
    ]);
    let (packed_meta, packed_rows) = read_capture(&packed);
    assert_eq!(packed_rows, rows, "every row, segment after segment");
    assert_eq!(summary_counts(&packed), summary_counts(&rec));
    let step = packed_meta.provenance.last().expect("pack step");
    assert_eq!(step.parents.len(), files.len());
    assert_eq!(packed_meta.capture_id, meta.capture_id);

    // extract: the exec'd child (forked by the workload) rebuilds the same way.
    let child = report
        .exec_child
        .as_ref()
        .expect("the workload's exec child");
    let extract = base.path().join("child.parquet");
    analyze_ok([
        OsStr::new("extract"),
        rec.as_os_str(),
        OsStr::new("-o"),
        extract.as_os_str(),
        OsStr::new("--pid"),
        OsStr::new(&child.pid.to_string()),
    ]);
    let (_, extracted) = read_capture(&extract);
    assert!(extracted.len() < rows.len(), "the extract is smaller");
    let at = chrono::DateTime::from_timestamp_nanos(child.maps_after_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let maps = |input: &Path| {
        let text = analyze_ok([
            OsStr::new("maps"),
            input.as_os_str(),
            OsStr::new("--pid"),
            OsStr::new(&child.pid.to_string()),
            OsStr::new("--at"),
            OsStr::new(&at),
            OsStr::new("--format"),
            OsStr::new("json"),
        ]);
        let mut value: Value = serde_json::from_str(&text).expect("maps json");
        if let Value::Object(map) = &mut value {
            map.remove("first_row");
        }
        value
    };
    let on_extract = maps(&extract);
    assert!(
        on_extract["regions"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{on_extract}"
    );
    assert_eq!(
        on_extract,
        maps(&rec),
        "maps on the extract and on the recording"
    );

    // The redacted capture reads like any other: maps of the same child, same regions but for
    // the names.
    let redacted_maps = analyze_ok([
        OsStr::new("maps"),
        shared.as_os_str(),
        OsStr::new("--pid"),
        OsStr::new(&child.pid.to_string()),
        OsStr::new("--at"),
        OsStr::new(&at),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let redacted_maps: Value = serde_json::from_str(&redacted_maps).expect("json");
    let ranges = |v: &Value| -> Vec<(u64, u64, String)> {
        v["regions"]
            .as_array()
            .expect("regions")
            .iter()
            .map(|r| {
                (
                    r["start"].as_u64().unwrap_or(0),
                    r["end"].as_u64().unwrap_or(0),
                    r["perms"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(ranges(&redacted_maps), ranges(&on_extract));

    // record -> redact -> extract: the extract of the redacted copy stays redacted, names both
    // steps, and still holds nothing of the marks.
    let shared_child = base.path().join("shared-child.parquet");
    analyze_ok([
        OsStr::new("extract"),
        shared.as_os_str(),
        OsStr::new("-o"),
        shared_child.as_os_str(),
        OsStr::new("--pid"),
        OsStr::new(&child.pid.to_string()),
    ]);
    let (child_meta, child_rows) = read_capture(&shared_child);
    assert_eq!(child_rows.len(), extracted.len());
    assert!(child_meta.redaction.is_some());
    let steps: Vec<&str> = child_meta
        .provenance
        .iter()
        .map(|s| s.operation.as_str())
        .collect();
    assert_eq!(steps, ["redact", "extract"]);
    let found = leaks::find(&std::fs::read(&shared_child).expect("read"), &secrets);
    assert!(found.is_empty(), "survives in the extract: {found:#?}");
    assert_eq!(summary_counts(&shared_child), summary_counts(&extract));

    // ... -> verify: the recording is whole (chain, manifest, pages), and each derived file
    // checks against the files it was made from, by their SHA-256.
    analyze_ok([OsStr::new("verify"), rec.as_os_str()]);
    analyze_ok([
        OsStr::new("verify"),
        shared_child.as_os_str(),
        OsStr::new("--parent"),
        shared.as_os_str(),
    ]);
    let mut args = vec![
        OsStr::new("verify"),
        shared.as_os_str(),
        OsStr::new("--parent"),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    analyze_ok(args);
    // A file it was not made from is named as such (exit 1).
    let out = analyze([
        OsStr::new("verify"),
        shared_child.as_os_str(),
        OsStr::new("--parent"),
        extract.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("parent"), "{stdout}");
}
