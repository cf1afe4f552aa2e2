//! Crash safety for real: journaled writers into temporary files, crashes simulated by
//! forgetting the writer (and by torn bytes at the ends of both files), then `recover`.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use mmap_format::{
    FormatError,
    event::Event,
    journal::{self, journal_path},
    metadata::{CaptureMetadata, FormatVersion},
    reader::CaptureReader,
    recover::{Recovered, recover},
    writer::{CaptureWriter, WriterConfig},
};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::{full_event, read_events, sample_metadata};

fn now_ns() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_nanos()).expect("fits")
}

fn config() -> WriterConfig {
    WriterConfig {
        row_group_rows: 1000,
        zstd_level: 1,
    }
}

/// A journaled writer on `dir/capture.parquet`.
fn start(dir: &Path, metadata: &CaptureMetadata) -> (PathBuf, CaptureWriter<File>) {
    let path = dir.join("capture.parquet");
    let (file, journal) = journal::create(&path).expect("create capture and journal");
    let writer = CaptureWriter::with_journal(file, journal, config(), metadata).expect("writer");
    (path, writer)
}

fn events(range: std::ops::Range<u32>) -> Vec<Event<'static>> {
    range.map(full_event).collect()
}

fn push_all(writer: &mut CaptureWriter<File>, events: &[Event<'_>]) {
    for event in events {
        writer.push(event).expect("push");
    }
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").len()
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append")
        .write_all(bytes)
        .expect("append");
}

/// Metadata as it changes during a capture: the counters and the end time move.
fn metadata_at(step: u64) -> CaptureMetadata {
    let mut metadata = sample_metadata();
    metadata.counters.emitted = step * 100;
    metadata.counters.lost_ringbuf_full = step;
    metadata.hostname = format!("host-step-{step}");
    metadata
}

/// What `recover` must store: the journaled metadata, recovered, ended at the last frame.
fn expected_metadata(journaled: &CaptureMetadata, end_ns: i64) -> CaptureMetadata {
    CaptureMetadata {
        format_version: FormatVersion::CURRENT,
        recovered: true,
        capture_end_ns: end_ns,
        ..journaled.clone()
    }
}

#[test]
fn crash_after_flushes_keeps_exactly_the_flushed_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut writer) = start(dir.path(), &metadata_at(0));
    assert!(writer.is_journaled());
    // A journal with its header and first frame exists before any row.
    assert!(len(&journal_path(&path)) > 16);
    assert_eq!(len(&path), 0);

    let rows = events(0..2_600);
    push_all(&mut writer, &rows[..1_200]); // one full row group of 1000, 200 buffered
    writer.set_metadata(&metadata_at(1));
    writer.flush().expect("flush 1");
    push_all(&mut writer, &rows[1_200..1_700]);
    writer.flush().expect("flush 2");
    push_all(&mut writer, &rows[1_700..2_500]);
    writer.set_metadata(&metadata_at(3));
    let before_last = now_ns();
    writer.flush().expect("flush 3");
    let after_last = now_ns();
    let journaled_len = len(&path);
    // Rows pushed after the last flush are buffered only: lost in the crash.
    push_all(&mut writer, &rows[2_500..]);
    std::mem::forget(writer);

    // The crash also left half a row group in the data file and a torn frame in the journal.
    append(&path, &[0xab; 3_000]);
    append(&journal_path(&path), b"JFRM\x10\x00\x00\x00\x05\x00");

    let recovered = recover(&path).expect("recover");
    let Recovered {
        rows: recovered_rows,
        row_groups,
        bytes_dropped,
        metadata,
    } = recovered;
    assert_eq!(recovered_rows, 2_500);
    assert_eq!(row_groups, 4); // 1000 | 200 (flush 1) | 500 (flush 2) | 800 (flush 3)
    assert_eq!(bytes_dropped, 3_000);
    assert!(
        (before_last..=after_last).contains(&metadata.capture_end_ns),
        "capture_end {} is the last frame's time, within [{before_last}, {after_last}]",
        metadata.capture_end_ns
    );
    assert_eq!(
        metadata,
        expected_metadata(&metadata_at(3), metadata.capture_end_ns)
    );
    assert!(!journal_path(&path).exists(), "the journal is removed");
    assert!(len(&path) > journaled_len, "a footer was appended");

    let reader = CaptureReader::open(&path).expect("the recovered capture opens");
    assert_eq!(reader.metadata(), &metadata);
    assert_eq!(reader.num_rows(), 2_500);
    assert_eq!(reader.num_row_groups(), 4);
    assert_eq!(read_events(&reader), rows[..2_500]);
    // The recovered footer has no page index (the writer keeps it in memory until finish);
    // column chunk statistics are kept.
    let parquet = SerializedFileReader::new(File::open(&path).expect("open")).expect("parquet");
    for rg in parquet.metadata().row_groups() {
        for column in rg.columns() {
            assert_eq!(column.offset_index_offset(), None);
            assert_eq!(column.column_index_offset(), None);
            assert!(column.statistics().is_some());
        }
    }

    // Recovering again finds a complete file.
    let err = recover(&path).expect_err("already complete");
    assert!(
        matches!(err, FormatError::AlreadyComplete { .. }),
        "{err:?}"
    );
}

#[test]
fn crash_with_the_writer_dropped_is_recovered_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut writer) = start(dir.path(), &metadata_at(0));
    let rows = events(0..300);
    push_all(&mut writer, &rows[..100]);
    writer.flush().expect("flush");
    push_all(&mut writer, &rows[100..]);
    // Drop runs destructors (buffers may reach the file), but writes no footer.
    drop(writer);
    assert!(CaptureReader::open(&path).is_err(), "no footer yet");

    let recovered = recover(&path).expect("recover");
    assert_eq!((recovered.rows, recovered.row_groups), (100, 1));
    let reader = CaptureReader::open(&path).expect("open");
    assert_eq!(read_events(&reader), rows[..100]);
    assert!(reader.metadata().recovered);
}

#[test]
fn crash_before_the_first_row_group_recovers_an_empty_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metadata = metadata_at(7);
    let before = now_ns();
    let (path, mut writer) = start(dir.path(), &metadata);
    let after = now_ns();
    push_all(&mut writer, &events(0..50));
    std::mem::forget(writer);

    let recovered = recover(&path).expect("recover");
    assert_eq!((recovered.rows, recovered.row_groups), (0, 0));
    assert_eq!(recovered.bytes_dropped, 0);
    assert!((before..=after).contains(&recovered.metadata.capture_end_ns));
    let reader = CaptureReader::open(&path).expect("open");
    assert_eq!(reader.num_rows(), 0);
    assert_eq!(
        reader.metadata(),
        &expected_metadata(&metadata, recovered.metadata.capture_end_ns)
    );
    assert!(read_events(&reader).is_empty());
}

#[test]
fn metadata_alone_is_journaled_by_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut writer) = start(dir.path(), &metadata_at(0));
    push_all(&mut writer, &events(0..10));
    writer.flush().expect("flush rows");
    let journal_len = len(&journal_path(&path));
    writer.flush().expect("flush without rows or new metadata");
    assert_eq!(
        len(&journal_path(&path)),
        journal_len,
        "nothing new, no frame"
    );
    writer.set_metadata(&metadata_at(9));
    writer.flush().expect("flush metadata");
    assert!(
        len(&journal_path(&path)) > journal_len,
        "a frame for the metadata"
    );
    std::mem::forget(writer);

    let recovered = recover(&path).expect("recover");
    assert_eq!(recovered.rows, 10);
    assert_eq!(recovered.metadata.hostname, "host-step-9");
    assert_eq!(recovered.metadata.counters, metadata_at(9).counters);
}

/// Writes three flushes of 100 rows; returns the journal length and data length after each.
fn three_flushes(dir: &Path) -> (PathBuf, Vec<Event<'static>>, Vec<(u64, u64)>) {
    let (path, mut writer) = start(dir, &metadata_at(0));
    let rows = events(0..300);
    let mut lens = Vec::new();
    for (i, chunk) in rows.chunks(100).enumerate() {
        push_all(&mut writer, chunk);
        writer.set_metadata(&metadata_at(i as u64 + 1));
        writer.flush().expect("flush");
        lens.push((len(&journal_path(&path)), len(&path)));
    }
    std::mem::forget(writer);
    (path, rows, lens)
}

#[test]
fn corrupt_last_frame_is_ignored_and_earlier_frames_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, rows, lens) = three_flushes(dir.path());
    // Flip one byte in the middle of the last frame's payload.
    let journal = journal_path(&path);
    let mut bytes = fs::read(&journal).expect("read journal");
    let middle = usize::try_from((lens[1].0 + lens[2].0) / 2).expect("small");
    bytes[middle] ^= 0x40;
    fs::write(&journal, &bytes).expect("write journal");

    let recovered = recover(&path).expect("recover");
    assert_eq!((recovered.rows, recovered.row_groups), (200, 2));
    assert_eq!(recovered.bytes_dropped, lens[2].1 - lens[1].1);
    assert_eq!(recovered.metadata.hostname, "host-step-2");
    let reader = CaptureReader::open(&path).expect("open");
    assert_eq!(read_events(&reader), rows[..200]);
}

#[test]
fn truncated_last_frame_is_ignored_and_earlier_frames_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, rows, lens) = three_flushes(dir.path());
    let journal = journal_path(&path);
    for cut in [lens[2].0 - 1, lens[2].0 - 4, lens[1].0 + 10] {
        OpenOptions::new()
            .write(true)
            .open(&journal)
            .expect("open journal")
            .set_len(cut)
            .expect("truncate journal");
        // Copy so that each cut is recovered from the same state.
        let copy = dir.path().join(format!("cut-{cut}.parquet"));
        fs::copy(&path, &copy).expect("copy data");
        fs::copy(&journal, journal_path(&copy)).expect("copy journal");
        let recovered = recover(&copy).expect("recover");
        assert_eq!(recovered.rows, 200, "journal cut at {cut}");
        let reader = CaptureReader::open(&copy).expect("open");
        assert_eq!(read_events(&reader), rows[..200]);
    }
}

#[test]
fn frames_beyond_the_data_file_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, rows, lens) = three_flushes(dir.path());
    // The data of the third row group never fully reached the disk (or the file was cut):
    // the third frame, which claims it, is unusable; so would be any frame after it.
    let data = OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open data");
    data.set_len(lens[2].1 - 1).expect("cut the data file");
    drop(data);
    let recovered = recover(&path).expect("recover");
    assert_eq!((recovered.rows, recovered.row_groups), (200, 2));
    assert_eq!(recovered.bytes_dropped, lens[2].1 - 1 - lens[1].1);
    assert_eq!(recovered.metadata.hostname, "host-step-2");
    assert_eq!(
        read_events(&CaptureReader::open(&path).expect("open")),
        rows[..200]
    );

    // Cut inside the first row group: only frame 0 (no rows) is usable.
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _, lens) = three_flushes(dir.path());
    let data = OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open data");
    data.set_len(lens[0].1 / 2).expect("cut");
    drop(data);
    let recovered = recover(&path).expect("recover");
    assert_eq!((recovered.rows, recovered.row_groups), (0, 0));
    assert_eq!(recovered.metadata.hostname, metadata_at(0).hostname);
    assert_eq!(CaptureReader::open(&path).expect("open").num_rows(), 0);
}

#[test]
fn complete_capture_reports_already_complete_and_drops_a_stale_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut writer) = start(dir.path(), &metadata_at(0));
    push_all(&mut writer, &events(0..42));
    writer.flush().expect("flush");
    let file = writer.finish(&metadata_at(5)).expect("finish");
    drop(file);
    let before = fs::read(&path).expect("read");
    assert!(
        journal_path(&path).exists(),
        "finish leaves the journal to the caller"
    );

    let err = recover(&path).expect_err("complete");
    assert!(
        matches!(err, FormatError::AlreadyComplete { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: capture is complete (it has a valid footer); nothing to recover",
            path.display()
        )
    );
    assert!(
        !journal_path(&path).exists(),
        "the stale journal is removed"
    );
    assert_eq!(
        fs::read(&path).expect("read"),
        before,
        "the capture is untouched"
    );
    let reader = CaptureReader::open(&path).expect("open");
    assert_eq!(reader.num_rows(), 42);
    assert!(!reader.metadata().recovered);
    assert_eq!(reader.metadata().hostname, "host-step-5");

    // Without a journal: the same outcome.
    let err = recover(&path).expect_err("complete");
    assert!(
        matches!(err, FormatError::AlreadyComplete { .. }),
        "{err:?}"
    );
}

#[test]
fn no_journal_and_no_footer_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plain.parquet");
    let file = File::create(&path).expect("create");
    let mut writer = CaptureWriter::new(file, config()).expect("writer");
    assert!(!writer.is_journaled());
    push_all(&mut writer, &events(0..10));
    writer.flush().expect("flush");
    std::mem::forget(writer);

    let err = recover(&path).expect_err("nothing to recover from");
    assert!(matches!(err, FormatError::NoJournal { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no footer, and no journal next to it ({}); nothing to recover from",
            path.display(),
            journal_path(&path).display()
        )
    );

    let err = recover(&dir.path().join("missing.parquet")).expect_err("missing");
    assert!(matches!(err, FormatError::NotFound { .. }), "{err:?}");
}

#[test]
fn unusable_journals_are_bad_journal_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _, _) = three_flushes(dir.path());
    let journal = journal_path(&path);
    let good = fs::read(&journal).expect("read");

    fs::write(&journal, b"hello, not a journal").expect("write");
    let err = recover(&path).expect_err("garbage");
    assert!(matches!(err, FormatError::BadJournal { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: unusable journal: ", journal.display())),
        "{err}"
    );

    // The header alone, frame 0 torn: nothing usable.
    fs::write(&journal, &good[..20]).expect("write");
    let err = recover(&path).expect_err("no frame");
    assert!(err.to_string().contains("no complete frame"), "{err}");

    // A journal of another capture: its frames cover data this file does not start with.
    fs::write(&journal, &good).expect("write");
    let mut data = fs::read(&path).expect("read");
    data[..4].copy_from_slice(b"XXXX");
    fs::write(&path, &data).expect("write");
    let err = recover(&path).expect_err("foreign");
    assert!(
        err.to_string().contains("does not start with PAR1"),
        "{err}"
    );
    assert!(journal.exists(), "a failed recovery keeps the journal");
}

#[test]
fn journaled_writer_needs_an_empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("used.parquet");
    fs::write(&path, b"old contents").expect("write");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    let journal = File::create(journal_path(&path)).expect("journal");
    let err = CaptureWriter::with_journal(file, journal, config(), &metadata_at(0))
        .expect_err("non-empty file");
    assert!(matches!(err, FormatError::InvalidConfig(_)), "{err:?}");
}

/// A finished journaled capture is the same file a plain writer makes (the journal only adds
/// syncs and the companion file).
#[test]
fn journaled_and_plain_writers_write_the_same_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = events(0..2_500);
    let (path, mut writer) = start(dir.path(), &metadata_at(0));
    let mut plain = CaptureWriter::new(Vec::new(), config()).expect("plain writer");
    for (i, event) in rows.iter().enumerate() {
        writer.push(event).expect("push");
        plain.push(event).expect("push");
        if i % 700 == 699 {
            writer.flush().expect("flush");
            plain.flush().expect("flush");
        }
    }
    drop(writer.finish(&metadata_at(1)).expect("finish"));
    let plain = plain.finish(&metadata_at(1)).expect("finish");
    assert_eq!(fs::read(&path).expect("read"), plain);
}

/// A frame describes only the new row groups: its size does not grow with the file.
#[test]
fn frame_size_does_not_grow_with_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut writer) = start(dir.path(), &metadata_at(0));
    let journal = journal_path(&path);
    let mut frame_sizes = Vec::new();
    for flush in 0..60_u32 {
        push_all(&mut writer, &events(flush * 50..flush * 50 + 50));
        let before = len(&journal);
        writer.flush().expect("flush");
        frame_sizes.push(len(&journal) - before);
    }
    drop(writer.finish(&metadata_at(1)).expect("finish"));
    let first = frame_sizes[0];
    let last = frame_sizes[frame_sizes.len() - 1];
    assert!(
        frame_sizes
            .iter()
            .all(|size| *size < first * 3 / 2 && *size > first / 2),
        "frames stay the size of one row group's metadata: {frame_sizes:?}"
    );
    assert!(last < 20_000, "{last} bytes for one row group's frame");
}

/// pyarrow (an independent Parquet reader) opens a recovered capture (see
/// [`crate::common::pyarrow_python`] for which Python, and when it is skipped).
#[test]
fn pyarrow_reads_a_recovered_capture() {
    let Some(python) = crate::common::pyarrow_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, rows, _) = three_flushes(dir.path());
    recover(&path).expect("recover");
    let script = r#"
import sys, pyarrow.parquet as pq
pf = pq.ParquetFile(sys.argv[1])
t = pf.read()
meta = pf.metadata.metadata
print(t.num_rows, pf.metadata.num_row_groups, meta[b"mmap_capture.recovered"].decode(),
      t.column("tid").to_pylist()[-1], t.schema.field("kind").type)
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last_tid = rows[299].tid;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("300 3 true {last_tid} dictionary<values=string, indices=int32, ordered=0>")
    );
}

/// A crashed capture (three flushes) whose journal the test then replaces.
fn crashed(dir: &Path) -> (PathBuf, PathBuf) {
    let (path, _, _) = three_flushes(dir);
    let journal = journal_path(&path);
    (path, journal)
}

fn assert_bad_journal(result: Result<Recovered, FormatError>, needle: &str) {
    match result {
        Err(FormatError::BadJournal { detail, .. }) => {
            assert!(detail.contains(needle), "{detail}");
        }
        other => panic!("expected a bad-journal error with {needle:?}, got {other:?}"),
    }
}

#[test]
fn a_capture_that_is_a_symbolic_link_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, journal) = crashed(dir.path());
    // The capture path now points at another file, which must stay untouched.
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").expect("victim");
    let real = dir.path().join("real.parquet");
    fs::rename(&path, &real).expect("move the capture");
    std::os::unix::fs::symlink(&victim, &path).expect("symlink");
    let err = recover(&path).expect_err("a symlink is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(fs::read(&victim).expect("victim"), b"precious");
    assert!(journal.exists(), "the journal is left for a real recovery");
}

#[test]
fn a_journal_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, journal) = crashed(dir.path());
    fs::remove_file(&journal).expect("remove journal");
    let c_path = std::ffi::CString::new(journal.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    // Would block forever on open or read without O_NONBLOCK and the file-type check.
    let err = recover(&path).expect_err("a FIFO is refused");
    assert!(err.to_string().contains("not a regular file"), "{err}");

    fs::remove_file(&journal).expect("remove fifo");
    std::os::unix::fs::symlink("/dev/zero", &journal).expect("symlink");
    let err = recover(&path).expect_err("a link to /dev/zero is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn a_journal_larger_than_any_journal_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, journal) = crashed(dir.path());
    // Sparse: claims 2 GiB, costs nothing on disk.
    let file = OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("journal");
    file.set_len(mmap_format::recover::MAX_JOURNAL_BYTES + 1)
        .expect("grow");
    assert_bad_journal(recover(&path), "more than a journal can hold");
}

#[test]
#[ignore = "needs root"]
fn a_journal_of_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "needs root to give the journal to another user");
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, journal) = crashed(dir.path());
    std::os::unix::fs::chown(&journal, Some(65534), Some(65534)).expect("chown");
    let before = fs::read(&path).expect("capture");
    assert_bad_journal(recover(&path), "belongs to another user");
    assert_eq!(
        fs::read(&path).expect("capture"),
        before,
        "capture untouched"
    );
}
