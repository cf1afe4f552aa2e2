//! `redact`, `extract` and `pack`: captures made from captures.

use std::{
    borrow::Cow,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use hmac::{Hmac, Mac as _};
use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, Derivation, ParentFile, Targets},
    reader::CaptureReader,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{
    common::{
        self, BASE_NS, run, run_ok,
        segmented::{self, write_segments},
        v11::{self, FixtureC, call, mmap_anon, row, snapshot},
        write_capture,
    },
    leaks::{self, Secrets},
};

/// The key of these tests: text, so that a leak of it would show in a search.
const KEY: &[u8] = b"zq-key-0123456789-never-printed";

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read file")))
}

fn write_key(dir: &Path, name: &str, key: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, key).expect("write key");
    path
}

fn metadata_of(path: &Path) -> CaptureMetadata {
    CaptureReader::open(path)
        .expect("open output")
        .metadata()
        .clone()
}

fn events_of(path: &Path) -> Vec<Event<'static>> {
    CaptureReader::open(path)
        .expect("open")
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode")
}

/// `summary --format json` without what names the files and hosts, thread names blanked, and
/// lists in a fixed order: the counts.
fn summary_counts(inputs: &[&Path]) -> Value {
    let mut args = vec!["summary".into(), "--format".into(), "json".into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    let mut value: Value = serde_json::from_str(&run_ok(args)).expect("summary json");
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

/// The distinctive values of the capture [`secret_capture`] writes.
const SECRETS: [&str; 14] = [
    "zqalice",
    "zqproject",
    "zqmodel",
    "zqpool",
    "zqjit",
    "zqtool",
    "zqcomm",
    "zqslice",
    "zqunit",
    "zqhost",
    "zqboot",
    "zqsource",
    "zqparent",
    "zqselect",
];
const SECRET_IDS: [u32; 2] = [4242, 4343];

/// A capture where every text column, the ids and every metadata value that can hold a name
/// hold one of [`SECRETS`].
fn secret_capture(path: &Path) {
    let named = |mut e: Event<'static>| {
        e.comm = Cow::Borrowed("zqcomm-main");
        e.uid = 4242;
        e.gid = 4343;
        e.cgroup_path = Some(Cow::Borrowed("/zqslice/zqunit.scope"));
        e
    };
    let mut rows = vec![
        snapshot(
            100,
            500,
            "x",
            "proc_maps:start",
            (0x5555_0000_0000, 0x5555_0000_4000),
            v11::PROT_EXEC | 1,
            0,
            Some(("/home/zqalice/zqproject/zqmodel.bin", 77)),
        ),
        snapshot(
            100,
            500,
            "x",
            "proc_maps:start",
            (0x7f00_0000_0000, 0x7f00_0000_4000),
            3,
            0,
            None,
        ),
        snapshot(
            100,
            500,
            "x",
            "proc_maps:start",
            (0x7ff0_0000_0000, 0x7ff0_0000_4000),
            3,
            0,
            None,
        ),
        mmap_anon(1000, 500, "x", 4096, 0x7f10_0000_0000),
        Event {
            child_pid: Some(600),
            ..row(RowKind::Fork, 2000, 500, "x")
        },
        Event {
            file_path: Some(Cow::Borrowed("./zqtool")),
            path_source: Some(Cow::Borrowed("exec_filename")),
            ..row(RowKind::Exec, 3000, 600, "x")
        },
        Event {
            file_path: Some(Cow::Borrowed("/memfd:zqjit")),
            file_name: Some(Cow::Borrowed("memfd:zqjit")),
            file_memfd: Some(true),
            file_deleted: Some(false),
            path_lossy: Some(false),
            path_source: Some(Cow::Borrowed("zqsource-odd")),
            source: Some(Cow::Borrowed("zqsource")),
            file_ino: Some(99),
            file_dev: Some(5),
            prot: Some(3),
            flags: Some(1),
            fd: Some(4),
            addr: Some(0),
            len: Some(8192),
            off: Some(0),
            ..call(Syscall::Mmap, 4000, 600, "x", 0x7f20_0000_0000)
        },
        Event {
            file_path: Some(Cow::Borrowed("/home/zqalice/lib\u{fffd}zq.so")),
            file_name: Some(Cow::Borrowed("lib\u{fffd}zq.so")),
            path_lossy: Some(true),
            path_source: Some(Cow::Borrowed("kernel_dentry_walk")),
            file_ino: Some(1234),
            file_dev: Some(5),
            prot: Some(1),
            flags: Some(2),
            fd: Some(5),
            addr: Some(0),
            len: Some(4096),
            off: Some(0),
            ..call(Syscall::Mmap, 5000, 600, "x", 0x7f30_0000_0000)
        },
        Event {
            exit_code: Some(0),
            ..row(RowKind::Exit, 6000, 600, "x")
        },
    ];
    rows[1].file_path = Some(Cow::Borrowed("[anon:zqpool]"));
    rows[2].file_path = Some(Cow::Borrowed("[heap]"));
    let rows: Vec<Event<'static>> = rows.into_iter().map(named).collect();
    let mut meta = common::metadata("zqhost.example", Default::default());
    meta.boot_id = "zqboot-0000".to_owned();
    meta.capture_id = Some("zq00c0de-0000-4000-8000-000000000000".to_owned());
    meta.segment_index = Some(0);
    meta.command_line = vec![
        "/opt/zqtool/mmap-recorder".to_owned(),
        "record".to_owned(),
        "--comm=zqcomm-main".to_owned(),
        "-o".to_owned(),
        "/home/zqalice/out.parquet".to_owned(),
    ];
    meta.targets = Targets {
        system_wide: false,
        pids: vec![500],
        command: Some(vec![
            "/home/zqalice/zqtool".to_owned(),
            "--zqselect".to_owned(),
        ]),
        comms: vec!["zqcomm-main".to_owned()],
        cgroups: vec!["/zqslice/zqunit.scope".to_owned()],
        follow_forks: true,
    };
    meta.provenance = vec![Derivation {
        operation: "extract".to_owned(),
        tool: "mmap-analyze 0.1.0".to_owned(),
        at: "2026-11-27T06:01:13Z".to_owned(),
        parents: vec![ParentFile {
            file: "zqparent.parquet".to_owned(),
            capture_id: None,
            segment_index: Some(0),
            sha256: "ab".repeat(32),
            bytes: 1,
            rows: 1,
        }],
        selection: vec!["--where".to_owned(), "comm = 'zqselect'".to_owned()],
    }];
    write_capture(path, &meta, &rows);
}

#[test]
fn redact_leaves_no_original_name_anywhere_and_the_same_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original = dir.path().join("zqproject-original.parquet");
    secret_capture(&original);
    let key = write_key(dir.path(), "key", KEY);
    let key_text = std::str::from_utf8(KEY).expect("text key");
    let mut texts: Vec<&str> = SECRETS.to_vec();
    texts.push(key_text);
    let secrets = Secrets {
        texts: &texts,
        ids: &SECRET_IDS,
    };
    // The check finds what is there.
    let before = leaks::find(&fs::read(&original).expect("read"), &secrets);
    for place in [
        "value of comm",
        "value of file_path",
        "key-value metadata mmap_capture.hostname",
    ] {
        assert!(
            before.iter().any(|p| p.starts_with(place)),
            "{place} not found in {before:#?}"
        );
    }
    assert!(
        before
            .iter()
            .any(|p| p.starts_with("id in the values of uid"))
    );

    for paths in ["hash", "dirs", "drop"] {
        let out = dir.path().join(format!("shared-{paths}.parquet"));
        let printed = run_ok([
            "redact".as_ref(),
            original.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--key-file".as_ref(),
            key.as_os_str(),
            "--paths".as_ref(),
            paths.as_ref(),
            "--inodes".as_ref(),
            "hash".as_ref(),
        ]);
        assert!(!printed.contains(key_text), "{printed}");
        let found = leaks::find(&fs::read(&out).expect("read output"), &secrets);
        assert!(found.is_empty(), "--paths {paths}: survives in {found:#?}");

        assert_eq!(
            summary_counts(&[&out]),
            summary_counts(&[&original]),
            "--paths {paths}: summary counts"
        );
        let meta = metadata_of(&out);
        let redaction = meta.redaction.expect("redaction metadata");
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("key");
        mac.update(b"mmap-capture key id");
        let key_id = hex::encode(mac.finalize().into_bytes());
        assert_eq!(redaction.key_id, key_id[..16]);
        assert_eq!(redaction.method, "hmac-sha256");
        assert_eq!(redaction.fields["paths"], paths);
        assert_eq!(redaction.fields["inodes"], "hash");
        let step = meta.provenance.last().expect("a redact step");
        assert_eq!(step.operation, "redact");
        assert_eq!(step.parents[0].sha256, sha256_hex(&original));
        assert_eq!(step.parents[0].file, "", "redact hides the input's name");
        assert_eq!(meta.provenance.len(), 2, "the earlier extract step is kept");

        let rows = events_of(&out);
        let inos: Vec<_> = rows.iter().filter_map(|e| e.file_ino).collect();
        assert!(!inos.contains(&1234) && !inos.contains(&99), "{inos:?}");
        assert!(
            rows.iter()
                .any(|e| e.file_path.as_deref() == Some("[heap]"))
        );
        for e in &rows {
            if let (Some(path), Some(name)) = (&e.file_path, &e.file_name) {
                assert_eq!(path.rsplit('/').next(), Some(name.as_ref()), "{e:?}");
            }
        }
        if paths == "dirs" {
            assert!(
                rows.iter()
                    .any(|e| e.file_path.as_deref().is_some_and(|p| p.ends_with(".bin"))),
                "dirs keeps the extension"
            );
        }
    }
}

#[test]
fn the_same_key_gives_the_same_pseudonyms_across_captures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = FixtureC::new();
    let other = dir.path().join("other.parquet");
    secret_capture(&other);
    let key = write_key(dir.path(), "key", KEY);
    let key2 = write_key(dir.path(), "key2", b"another key of 32 bytes, at least");
    let redact = |input: &Path, out: &str, key: &Path| {
        let out = dir.path().join(out);
        run_ok([
            "redact".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--key-file".as_ref(),
            key.as_os_str(),
        ]);
        events_of(&out)
    };
    let a = redact(&c.c, "a.parquet", &key);
    let b = redact(&c.c, "b.parquet", &key);
    let other_key = redact(&c.c, "c.parquet", &key2);
    assert_eq!(a, b, "the same input and key give the same rows");
    assert_ne!(a[0].comm, other_key[0].comm);
    let in_other = redact(&other, "d.parquet", &key);
    let x_in_c = a
        .iter()
        .zip(events_of(&c.c))
        .find(|(_, original)| original.comm == "app")
        .map(|(redacted, _)| redacted.comm.clone())
        .expect("an app row");
    assert!(x_in_c.starts_with("c-") && x_in_c.len() <= 15, "{x_in_c}");
    assert!(in_other.iter().all(|e| e.comm != x_in_c));
    // The same command works on both: --comm with the pseudonym selects the rows.
    let out = run_ok([
        "events".as_ref(),
        dir.path().join("a.parquet").as_os_str(),
        "--comm".as_ref(),
        std::ffi::OsStr::new(x_in_c.as_ref()),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert!(!out.is_empty());
}

#[test]
fn bad_keys_are_refused_without_showing_them() {
    let c = FixtureC::new();
    let dir = c.dir.path();
    let out = dir.join("out.parquet");
    for (name, key, says) in [
        ("empty", &b""[..], "empty"),
        ("short", &b"zq-short-key"[..], "12 bytes"),
    ] {
        let key = write_key(dir, name, key);
        let output = run([
            "redact".as_ref(),
            c.c.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--key-file".as_ref(),
            key.as_os_str(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && !stderr.contains("zq-short"),
            "{stderr}"
        );
        assert!(!out.exists());
    }
    let missing = run([
        "redact".as_ref(),
        c.c.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--key-file".as_ref(),
        dir.join("no-key").as_os_str(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(!out.exists());
}

#[test]
fn an_output_is_never_an_input_a_directory_or_a_link_and_is_replaced_only_with_force() {
    let c = FixtureC::new();
    let dir = c.dir.path();
    let pack = |out: &Path, force: bool| {
        let mut args = vec![
            "pack".as_ref(),
            c.c.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ];
        if force {
            args.push("--force".as_ref());
        }
        run(args)
    };
    let fails = |out: &Path, force: bool, says: &str| {
        let output = pack(out, force);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", out.display());
        assert!(stderr.contains(says), "{stderr}");
    };
    let before = fs::read(&c.c).expect("read");
    fails(&c.c, true, "is one of the inputs");
    let alias = dir.join("alias.parquet");
    fs::hard_link(&c.c, &alias).expect("hard link");
    fails(&alias, true, "is one of the inputs");
    assert_eq!(
        fs::read(&c.c).expect("read"),
        before,
        "the input is untouched"
    );
    fails(dir, true, "is a directory");
    let link = dir.join("link.parquet");
    let target = dir.join("target.parquet");
    fs::write(&target, b"keep me").expect("write");
    symlink(&target, &link).expect("symlink");
    fails(&link, true, "symbolic link");
    assert_eq!(fs::read(&target).expect("read"), b"keep me");
    fails(&target, false, "--force");
    assert_eq!(fs::read(&target).expect("read"), b"keep me");
    fails(
        &dir.join("no-such-dir/out.parquet"),
        false,
        "cannot write there",
    );

    let output = pack(&target, true);
    assert!(output.status.success());
    assert_eq!(events_of(&target), events_of(&c.c));
    // Nothing but what was there and the output: no temporary file is left.
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alias.parquet",
            "c.parquet",
            "link.parquet",
            "target.parquet"
        ]
    );

    // A wrong --where fails before anything is written.
    let out = dir.join("never.parquet");
    let output = run([
        "extract".as_ref(),
        c.c.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--where".as_ref(),
        "no_such_column = 1".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!out.exists());
}

#[test]
fn pack_joins_the_segments_of_a_capture_into_one_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let segments = dir.path().join("rec");
    fs::create_dir(&segments).expect("mkdir");
    let files = write_segments(&segments, &[0, 1, 2]);
    let packed = dir.path().join("rec.parquet");
    let json: Value = serde_json::from_str(&run_ok([
        "pack".as_ref(),
        segments.as_os_str(),
        "-o".as_ref(),
        packed.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("json");
    assert_eq!(json["inputs"], 3);
    assert_eq!(json["sha256"], sha256_hex(&packed));

    let want: Vec<Event<'static>> = (0..3).flat_map(segmented::segment_rows).collect();
    assert_eq!(events_of(&packed), want, "every row, segment after segment");
    assert_eq!(summary_counts(&[&packed]), summary_counts(&[&segments]));
    let meta = metadata_of(&packed);
    assert_eq!(meta.capture_id.as_deref(), Some(segmented::CAPTURE_ID));
    assert_eq!(meta.segment_index, Some(0));
    assert_eq!(meta.capture_start_ns, BASE_NS);
    assert_eq!(meta.capture_end_ns, BASE_NS + 3 * segmented::SEGMENT_NS);
    let step = meta.provenance.last().expect("pack step");
    assert_eq!(step.operation, "pack");
    let parents: Vec<(String, Option<u32>, String, u64)> = step
        .parents
        .iter()
        .map(|p| (p.file.clone(), p.segment_index, p.sha256.clone(), p.rows))
        .collect();
    let expected: Vec<(String, Option<u32>, String, u64)> = files
        .iter()
        .zip(0..)
        .map(|(f, i)| {
            (
                segmented::segment_name(i),
                Some(i),
                sha256_hex(f),
                segmented::segment_rows(i).len() as u64,
            )
        })
        .collect();
    assert_eq!(parents, expected);

    // Given out of order, the segments are still packed in order.
    let reordered = dir.path().join("reordered.parquet");
    run_ok([
        "pack".as_ref(),
        files[2].as_os_str(),
        files[0].as_os_str(),
        files[1].as_os_str(),
        "-o".as_ref(),
        reordered.as_os_str(),
    ]);
    assert_eq!(events_of(&reordered), want);

    // Never into a directory given as input: it would read as one more segment.
    let inside = segments.join("packed.parquet");
    let output = run([
        "pack".as_ref(),
        segments.as_os_str(),
        "-o".as_ref(),
        inside.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("a directory given as input"));
    assert!(!inside.exists());

    // Two captures are not one.
    let c = FixtureC::new();
    let output = run([
        "pack".as_ref(),
        segments.as_os_str(),
        c.c.as_os_str(),
        "-o".as_ref(),
        dir.path().join("two.parquet").as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 captures"));
}

/// `maps --format json` of `input`, without the fields that name the input.
fn maps(input: &Path, pid: u32, at: &str) -> Value {
    let mut value: Value = serde_json::from_str(&run_ok([
        "maps".as_ref(),
        input.as_os_str(),
        "--pid".as_ref(),
        pid.to_string().as_ref(),
        "--at".as_ref(),
        at.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("maps json");
    assert!(
        value["regions"].as_array().is_some_and(|r| !r.is_empty()),
        "{value}"
    );
    if let Value::Object(map) = &mut value {
        map.remove("first_row");
    }
    value
}

#[test]
fn extract_keeps_what_maps_needs_for_the_selected_processes() {
    let c = FixtureC::new();
    let dir = c.dir.path();
    let time = |offset_ns: i64| {
        chrono::DateTime::from_timestamp_nanos(BASE_NS + offset_ns)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    // The forked child (its parent's rows up to the fork are needed) and the parent.
    for (pid, select, at) in [
        (600, vec!["--pid", "600"], time(10_000)),
        (500, vec!["--pid", "500", "--until", "+6us"], time(6_000)),
        (
            600,
            vec!["--where", "pid = 600 AND kind = 'syscall'"],
            time(10_000),
        ),
    ] {
        let out = dir.join(format!("extract-{pid}.parquet"));
        let mut args = vec![
            "extract".as_ref(),
            c.c.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--force".as_ref(),
        ];
        args.extend(select.iter().map(std::ffi::OsStr::new));
        run_ok(args);
        let extracted = events_of(&out);
        assert!(
            extracted.len() < v11::events_c().len(),
            "{select:?}: the extract is smaller"
        );
        assert_eq!(
            maps(&out, pid, &at),
            maps(&c.c, pid, &at),
            "{select:?}: maps on the extract"
        );
        let meta = metadata_of(&out);
        let step = meta.provenance.last().expect("extract step");
        assert_eq!(step.operation, "extract");
        assert_eq!(step.selection, select);
        assert_eq!(step.parents[0].sha256, sha256_hex(&c.c));
        assert_eq!(step.parents[0].capture_id, v11::metadata_c().capture_id);
        assert_eq!(step.parents[0].file, "c.parquet");
    }

    // Across segments: the tool forked by the shell in segment 1.
    let segments = dir.join("rec");
    fs::create_dir(&segments).expect("mkdir");
    write_segments(&segments, &[0, 1, 2]);
    let out = dir.join("tool.parquet");
    run_ok([
        "extract".as_ref(),
        segments.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--pid".as_ref(),
        segmented::TOOL.to_string().as_ref(),
    ]);
    let at = time(20_000_000);
    assert_eq!(
        maps(&out, segmented::TOOL, &at),
        maps(&segments, segmented::TOOL, &at)
    );
    let meta = metadata_of(&out);
    assert_eq!(meta.provenance.last().map(|s| s.parents.len()), Some(3));
}

#[test]
fn extract_of_nothing_is_an_empty_capture_with_a_note() {
    let c = FixtureC::new();
    let out = c.dir.path().join("none.parquet");
    let output = run([
        "extract".as_ref(),
        c.c.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--pid".as_ref(),
        "31337".as_ref(),
    ]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no row matches"));
    assert!(events_of(&out).is_empty());
}

/// A signal while a capture is written stops the command and removes its temporary file:
/// neither the output nor a hidden `.OUT.XXXXXX.tmp` is left behind (the default action of
/// SIGINT would end the process with the temporary file still there).
#[test]
fn a_signal_while_writing_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("big.parquet");
    let events: Vec<_> = (0..300_000_i64)
        .map(|i| common::mmap(i * 1_000, 4242 + (i % 50) as u32, 4242, "writer"))
        .collect();
    common::write_capture_with(
        &input,
        &common::metadata("host-a", Default::default()),
        &events,
        10_000,
    );
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    let output = out_dir.join("packed.parquet");
    let mut child = std::process::Command::new(common::bin())
        .args([
            "pack".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            output.as_os_str(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mmap-analyze");
    // Once the temporary file exists, rows are being written.
    let started = std::time::Instant::now();
    while fs::read_dir(&out_dir).expect("read_dir").next().is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no temporary file appeared"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "pack ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the child's pid, which is still ours to signal (not yet waited for).
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0, "kill");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("interrupted by a signal") && stderr.contains("was not written"),
        "{stderr}"
    );
    let left: Vec<_> = fs::read_dir(&out_dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
