//! `s3://` and `file://` inputs, against a local S3 server (moto, from the project's venv) on
//! 127.0.0.1: the same commands on the objects and on the local files print the same, a filter
//! reads only the row groups it needs (counted in the server's request log), and a missing key,
//! a missing bucket or an endpoint that refuses connections is one line and exit status 2.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::common::{
    BASE_NS, Fixture, counters_a, metadata, mmap, segmented::write_segments, write_capture_with,
};

const BUCKET: &str = "captures";

/// A Python that can run moto's server: MMAP_CAPTURE_PYTHON (what `make test` exports), else
/// python3; None (the test is skipped) when it cannot import moto. Under `make test`
/// (MMAP_CAPTURE_PYTHON set) or in CI a missing moto fails the test: the set-up installs it.
fn moto_python() -> Option<String> {
    let python = std::env::var("MMAP_CAPTURE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import moto.server, boto3"])
        .output()
        .is_ok_and(|out| out.status.success());
    if ok {
        Some(python)
    } else if std::env::var_os("MMAP_CAPTURE_PYTHON").is_some() || std::env::var_os("CI").is_some()
    {
        panic!("{python} cannot import moto.server, which `make test` installs (make venv)");
    } else {
        eprintln!("skipped: {python} cannot import moto.server (set MMAP_CAPTURE_PYTHON)");
        None
    }
}

/// A port nobody listens on (right now).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// moto's S3 server on 127.0.0.1, stopped when dropped; its request log is a file.
struct Moto {
    child: Child,
    python: String,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts the server and waits until it answers; fails the test when it cannot start.
    fn start(python: String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("moto.log");
        let port = free_port();
        let mut child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.path().join("moto.out")).expect("stdout file"))
            .stderr(fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start moto.server");
        let start = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().expect("wait for moto") {
                panic!(
                    "moto.server exited ({status}): {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto.server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            python,
            port,
            log,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` and uploads each `(key, file)`.
    fn upload(&self, bucket: &str, objects: &[(String, &Path)]) {
        const SCRIPT: &str = "
import sys, boto3
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id='testing',
                  aws_secret_access_key='testing', region_name='us-east-1')
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
for pair in sys.argv[3:]:
    key, path = pair.split('\t', 1)
    s3.upload_file(path, bucket, key)
";
        let mut command = Command::new(&self.python);
        command.args(["-c", SCRIPT, &self.endpoint(), bucket]);
        for (key, path) in objects {
            // A tab between: keys of a partitioned tree hold `=`.
            command.arg(format!("{key}\t{}", path.display()));
        }
        let out = command.output().expect("run the upload script");
        assert!(
            out.status.success(),
            "upload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The request lines of the log so far.
    fn requests(&self) -> Vec<String> {
        // The server writes a request's line after answering it.
        std::thread::sleep(Duration::from_millis(300));
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            // `127.0.0.1 - - [date] "GET /bucket/key HTTP/1.1" 206 -`, the request in colours.
            .filter(|line| line.contains(" HTTP/1.1"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mmap-analyze` with test credentials for the server (and no other AWS settings).
fn analyze(args: &[&str]) -> Output {
    let mut command = Command::new(crate::common::bin());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("AWS_")) {
            command.env_remove(&key);
        }
    }
    command
        .args(args)
        .env("COLUMNS", "100")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run mmap-analyze")
}

fn stdout_ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{what}: unexpected stderr: {stderr}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// Runs `command` on the local `local` inputs and on the `remote` URLs (with `--endpoint`), and
/// checks that both print the same once each local path is replaced by its URL.
fn same(moto: &Moto, command: &[&str], local: &[&str], remote: &[&str], tail: &[&str]) {
    let endpoint = moto.endpoint();
    let mut local_args: Vec<&str> = command.to_vec();
    local_args.extend(local);
    local_args.extend(tail);
    let mut remote_args: Vec<&str> = command.to_vec();
    remote_args.extend(["--endpoint", &endpoint]);
    remote_args.extend(remote);
    remote_args.extend(tail);
    let what = remote_args.join(" ");
    let mut expected = stdout_ok(&analyze(&local_args), &local_args.join(" "));
    let got = stdout_ok(&analyze(&remote_args), &what);
    for (path, url) in local.iter().zip(remote) {
        if path != url {
            expected = expected.replace(path, url);
        }
    }
    assert_eq!(norm(&got), norm(&expected), "{what}");
    assert!(!got.trim().is_empty(), "{what}: printed nothing");
}

/// `text` with each line's runs of spaces as one: a table pads its columns to the longest name,
/// and a URL is not as long as the local path it replaces.
fn norm(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn s3_and_file_urls_read_like_local_files() {
    let Some(python) = moto_python() else { return };
    let moto = Moto::start(python);
    let fixture = Fixture::new();
    let segments_dir = tempfile::tempdir().expect("temp dir");
    let segments = write_segments(segments_dir.path(), &[0, 1, 2]);
    let mut objects = vec![
        ("caps/a.parquet".to_owned(), fixture.a.as_path()),
        ("caps/b.parquet".to_owned(), fixture.b.as_path()),
    ];
    for segment in &segments {
        let name = segment.file_name().and_then(|n| n.to_str()).expect("name");
        objects.push((format!("seg/{name}"), segment.as_path()));
    }
    moto.upload(BUCKET, &objects);
    let a_url = format!("s3://{BUCKET}/caps/a.parquet");
    let b_url = format!("s3://{BUCKET}/caps/b.parquet");

    // One object each, in the order given.
    same(
        &moto,
        &["summary"],
        &[s(&fixture.a), s(&fixture.b)],
        &[&a_url, &b_url],
        &[],
    );
    same(
        &moto,
        &["summary", "--format", "json"],
        &[s(&fixture.a), s(&fixture.b)],
        &[&a_url, &b_url],
        &[],
    );
    // A prefix is its *.parquet objects in key order, like a directory.
    let seg_local: Vec<&str> = segments.iter().map(|p| s(p)).collect();
    let seg_urls: Vec<String> = segments
        .iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).expect("name");
            format!("s3://{BUCKET}/seg/{name}")
        })
        .collect();
    let seg_url_refs: Vec<&str> = seg_urls.iter().map(String::as_str).collect();
    let seg_prefix = format!("s3://{BUCKET}/seg/");
    let expected = stdout_ok(
        &analyze(&["events", "--pid", "800", s(segments_dir.path())]),
        "local",
    );
    let mut expected_urls = expected.clone();
    for (path, url) in seg_local.iter().zip(&seg_url_refs) {
        expected_urls = expected_urls.replace(path, url);
    }
    let got = stdout_ok(
        &analyze(&[
            "events",
            "--pid",
            "800",
            "--endpoint",
            &moto.endpoint(),
            &seg_prefix,
        ]),
        "events on a prefix",
    );
    assert_eq!(
        norm(&got),
        norm(&expected_urls),
        "events --pid 800 on {seg_prefix}"
    );
    // Filters, on objects named one by one.
    same(
        &moto,
        &["events", "--pid", "200"],
        &[s(&fixture.a), s(&fixture.b)],
        &[&a_url, &b_url],
        &[],
    );
    same(
        &moto,
        &[
            "events",
            "--format",
            "json",
            "--where",
            "len > 4096 AND errno IS NULL",
        ],
        &[s(&fixture.a), s(&fixture.b)],
        &[&a_url, &b_url],
        &[],
    );
    // A glob on the keys.
    let glob = format!("s3://{BUCKET}/seg/*.parquet");
    let maps_local = stdout_ok(
        &analyze(&["maps", "--pid", "800", s(segments_dir.path())]),
        "maps local",
    );
    let mut maps_expected = maps_local.clone();
    for (path, url) in seg_local.iter().zip(&seg_url_refs) {
        maps_expected = maps_expected.replace(path, url);
    }
    let maps_remote = stdout_ok(
        &analyze(&[
            "maps",
            "--pid",
            "800",
            "--endpoint",
            &moto.endpoint(),
            &glob,
        ]),
        "maps on a glob",
    );
    assert_eq!(
        norm(&maps_remote),
        norm(&maps_expected),
        "maps --pid 800 on {glob}"
    );
    // sql over an object and a local file together.
    let query = "SELECT file, syscall, count(*) AS n, sum(len) AS bytes FROM calls \
                 GROUP BY file, syscall ORDER BY syscall, n";
    same(
        &moto,
        &["sql"],
        &[s(&fixture.a), s(&fixture.b)],
        &[&a_url, s(&fixture.b)],
        &[query],
    );
    // file:///abs/path is the local file.
    let file_url = format!("file://{}", s(&fixture.a));
    let by_url = stdout_ok(&analyze(&["summary", &file_url]), "file URL");
    let by_path = stdout_ok(&analyze(&["summary", s(&fixture.a)]), "path");
    assert_eq!(by_url, by_path);
}

#[test]
fn a_filter_reads_only_the_row_groups_it_needs() {
    let Some(python) = moto_python() else { return };
    let moto = Moto::start(python);
    let dir = tempfile::tempdir().expect("temp dir");
    // 40 row groups of 500 rows, one process each: pid 1000 + i in row group i.
    const GROUPS: u32 = 40;
    const ROWS: u32 = 500;
    let events: Vec<_> = (0..GROUPS * ROWS)
        .map(|i| {
            let group = i / ROWS;
            let mut event = mmap(i64::from(i) * 1000, 1000 + group, 1000 + group, "worker");
            event.len = Some(4096 * u64::from(i % 13 + 1));
            event
        })
        .collect();
    let path = dir.path().join("many.parquet");
    let mut meta = metadata("host-m", counters_a());
    meta.capture_end_ns = BASE_NS + i64::from(GROUPS * ROWS) * 1000 + 1_000_000;
    write_capture_with(&path, &meta, &events, ROWS as usize);
    moto.upload(BUCKET, &[("many.parquet".to_owned(), path.as_path())]);
    let url = format!("s3://{BUCKET}/many.parquet");
    let endpoint = moto.endpoint();
    // Ranged GETs of the object for one command.
    let gets = |args: &[&str], tail: &[&str]| -> (usize, String) {
        let before = moto.requests().len();
        let mut all = args.to_vec();
        all.extend(["--endpoint", &endpoint, &url]);
        all.extend(tail);
        let out = stdout_ok(&analyze(&all), &all.join(" "));
        let requests = moto.requests();
        let gets = requests[before..]
            .iter()
            .filter(|line| {
                line.contains("GET /captures/many.parquet HTTP/1.1") && line.contains("\" 206 ")
            })
            .count();
        (gets, out)
    };
    // Opening only: the footer, the offset index and the page headers.
    let (open, _) = gets(&["sql"], &["SELECT 1 AS one"]);
    let (filtered, out) = gets(&["events", "--format", "json", "--pid", "1017"], &[]);
    let (all, _) = gets(&["events", "--format", "json"], &[]);
    let rows = crate::common::json_lines(&out);
    assert_eq!(rows.len(), ROWS as usize, "every row of pid 1017");
    let filtered_scan = filtered - open;
    let all_scan = all - open;
    eprintln!(
        "ranged GETs of {url} ({GROUPS} row groups): opening {open}, events --pid 1017 \
         {filtered} ({filtered_scan} past opening), events {all} ({all_scan} past opening)"
    );
    assert!(
        filtered_scan * 5 < all_scan,
        "a filter on one row group of {GROUPS} read {filtered_scan} ranges, all rows {all_scan}"
    );
}

#[test]
fn a_missing_object_bucket_or_server_is_one_line_and_exit_2() {
    let Some(python) = moto_python() else { return };
    let moto = Moto::start(python);
    let fixture = Fixture::new();
    moto.upload(BUCKET, &[("a.parquet".to_owned(), fixture.a.as_path())]);
    let endpoint = moto.endpoint();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let cases = [
        (
            format!("s3://{BUCKET}/nothing.parquet"),
            endpoint.as_str(),
            "no such object",
        ),
        (
            format!("s3://{BUCKET}/nothing/"),
            endpoint.as_str(),
            "no capture objects",
        ),
        (
            format!("s3://{BUCKET}/no-*.parquet"),
            endpoint.as_str(),
            "no object matches",
        ),
        (
            "s3://no-such-bucket/a.parquet".to_owned(),
            endpoint.as_str(),
            "no such bucket",
        ),
        (
            format!("s3://{BUCKET}/a.parquet"),
            refused.as_str(),
            "127.0.0.1",
        ),
    ];
    for (url, endpoint, says) in &cases {
        let start = Instant::now();
        let out = analyze(&["summary", "--endpoint", endpoint, url]);
        let took = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url} at {endpoint}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: one line: {stderr}");
        assert!(
            stderr.contains(url.as_str()) && stderr.contains(says),
            "{url}: {stderr}"
        );
        assert!(
            took < Duration::from_secs(30),
            "{url} at {endpoint} took {took:?}"
        );
        assert!(out.stdout.is_empty(), "{url}: nothing on stdout");
    }
    // The objects of a prefix open several at a time; the error is still the first damaged
    // object's in key order.
    let dir = tempfile::tempdir().expect("temp dir");
    let indices: Vec<u32> = (0..9).collect();
    let paths = write_segments(dir.path(), &indices);
    for damaged in [6, 2] {
        fs::write(&paths[damaged], b"not a capture at all").expect("damage");
    }
    let name = |i: usize| {
        paths[i]
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned()
    };
    let objects: Vec<(String, &Path)> = (0..paths.len())
        .map(|i| (format!("segments/{}", name(i)), paths[i].as_path()))
        .collect();
    moto.upload(BUCKET, &objects);
    let out = analyze(&[
        "summary",
        "--endpoint",
        &endpoint,
        &format!("s3://{BUCKET}/segments/"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&name(2)), "{stderr}");
    assert!(!stderr.contains(&name(6)), "{stderr}");

    // The commands that need whole local files refuse objects.
    let url = format!("s3://{BUCKET}/a.parquet");
    for command in [&["verify"][..], &["recover"], &["pack", "-o", "x.parquet"]] {
        let mut args = command.to_vec();
        args.push(&url);
        let out = analyze(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("local files") && stderr.lines().count() == 1,
            "{stderr}"
        );
    }
}

/// A Hive-style tree of `host=`/`date=` prefixes reads like the same local tree: its objects
/// under the partition prefixes, the partition values as columns, a filter on them.
#[test]
fn a_partitioned_tree_reads_like_the_local_tree() {
    let Some(python) = moto_python() else { return };
    let moto = Moto::start(python);
    let fixture = Fixture::new();
    let tree = tempfile::tempdir().expect("temp dir");
    let mut objects = Vec::new();
    let mut copies = Vec::new();
    for (host, date, file) in [
        ("host-a", "2026-11-27", &fixture.a),
        ("host-b", "2026-11-28", &fixture.b),
    ] {
        let dir = tree.path().join(format!("host={host}/date={date}"));
        fs::create_dir_all(&dir).expect("partition dir");
        let copy = dir.join("capture.parquet");
        fs::copy(file, &copy).expect("copy capture");
        copies.push((
            format!("tree/host={host}/date={date}/capture.parquet"),
            copy,
        ));
    }
    for (key, path) in &copies {
        objects.push((key.clone(), path.as_path()));
    }
    moto.upload(BUCKET, &objects);
    let url = format!("s3://{BUCKET}/tree/");
    for query in [
        "SELECT date, host, count(*) AS n FROM events GROUP BY date, host ORDER BY date, host",
        "SELECT count(*) AS n FROM calls WHERE date = '2026-11-28'",
    ] {
        same(&moto, &["sql"], &[s(tree.path())], &[&url], &[query]);
    }
    let out = analyze(&[
        "sql",
        "--endpoint",
        &moto.endpoint(),
        &url,
        "SELECT count(DISTINCT date) AS days FROM events",
        "--format",
        "csv",
    ]);
    assert_eq!(stdout_ok(&out, "days").trim(), "days\n2");
}
