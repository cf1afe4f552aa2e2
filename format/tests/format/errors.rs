//! Every way `CaptureReader::open` refuses a file: the right variant, one line, the path first.

use std::{path::Path, sync::Arc};

use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use mmap_format::{FormatError, metadata::keys, reader::CaptureReader, writer::WriterConfig};

use crate::common::{sample_events, sample_metadata, write_capture, write_raw};

/// Opens `path`, expects an error, checks it is one line starting with the path.
fn open_err(path: &Path) -> FormatError {
    let err = CaptureReader::open(path).expect_err("open must fail");
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message:?}");
    assert!(
        message.starts_with(&format!("{}: ", path.display())),
        "names the path first: {message:?}"
    );
    err
}

fn capture_bytes() -> Vec<u8> {
    write_capture(
        &sample_events(),
        WriterConfig::default(),
        &sample_metadata(),
    )
}

fn plain_parquet(kv: &[(String, String)]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt32, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(UInt32Array::from(vec![1, 2, 3]))])
        .expect("batch");
    write_raw(&batch, kv)
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.parquet");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{}: no such file", path.display()));
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.parquet");
    std::fs::write(&path, b"").expect("write");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::Empty { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: empty file (0 bytes), not a capture", path.display())
    );
}

#[test]
fn text_file_is_not_parquet() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in [
        ("notes.txt", &b"pid,addr\n1,0x1000\n"[..]),
        ("tiny", &b"PA"[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        let err = open_err(&path);
        assert!(matches!(err, FormatError::NotParquet { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: not a Parquet file (no PAR1 magic)", path.display())
        );
    }
}

#[test]
fn capture_cut_in_half_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = capture_bytes();
    for (name, len) in [
        ("half.parquet", bytes.len() / 2),
        ("minus-one.parquet", bytes.len() - 1),
        ("magic-only.parquet", 4),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..len]).expect("write");
        let err = open_err(&path);
        assert!(
            matches!(err, FormatError::Truncated { .. }),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "{}: truncated or damaged Parquet file: ",
                path.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn damaged_footer_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage-footer.parquet");
    // Magic at both ends, a footer length that fits, a footer that is not Thrift.
    let mut bytes = b"PAR1".to_vec();
    bytes.extend_from_slice(&[0xff; 40]);
    bytes.extend_from_slice(&30u32.to_le_bytes());
    bytes.extend_from_slice(b"PAR1");
    std::fs::write(&path, &bytes).expect("write");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::Truncated { .. }), "{err:?}");

    // A footer length larger than the file.
    let path = dir.path().join("long-footer.parquet");
    let mut bytes = b"PAR1".to_vec();
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&1_000_000u32.to_le_bytes());
    bytes.extend_from_slice(b"PAR1");
    std::fs::write(&path, &bytes).expect("write");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::Truncated { .. }), "{err:?}");
}

#[test]
fn plain_parquet_is_not_a_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plain.parquet");
    std::fs::write(&path, plain_parquet(&[("other.key".into(), "1".into())])).expect("write");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::NotACapture { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: Parquet file without mmap-capture metadata (not a capture)",
            path.display()
        )
    );
}

#[test]
fn major_2_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.parquet");
    // A major-2 file need not have the 1.x columns or keys: only the version keys matter.
    let mut kv = vec![
        (keys::FORMAT_MAJOR.to_owned(), "2".to_owned()),
        (keys::FORMAT_MINOR.to_owned(), "3".to_owned()),
    ];
    std::fs::write(&path, plain_parquet(&kv)).expect("write");
    let err = open_err(&path);
    assert!(
        matches!(
            err,
            FormatError::UnsupportedVersion {
                major: 2,
                minor: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: capture format 2.3 is not supported by this reader (supports 1.x)",
            path.display()
        )
    );

    // A later writer names the mmap-analyze that reads its files; the refusal passes it on.
    kv.push((keys::READ_WITH.to_owned(), "0.4.0".to_owned()));
    std::fs::write(&path, plain_parquet(&kv)).expect("write");
    assert_eq!(
        open_err(&path).to_string(),
        format!(
            "{}: capture format 2.3 is not supported by this reader (supports 1.x); \
             the file says mmap-analyze 0.4.0 or later reads it",
            path.display()
        )
    );
}

#[test]
fn bad_metadata_value_names_path_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad-kv.parquet");
    let mut kv = sample_metadata().to_key_values();
    for (key, value) in &mut kv {
        if key == keys::CLOCK_ANCHORS {
            *value = "[{\"boot_ns\": -1}]".into();
        }
    }
    std::fs::write(&path, plain_parquet(&kv)).expect("write");
    let err = open_err(&path);
    assert!(
        matches!(&err, FormatError::BadMetadata { key, .. } if key == keys::CLOCK_ANCHORS),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{}: bad metadata value for mmap_capture.clock_anchors: ",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn capture_keys_without_capture_columns_is_a_bad_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-columns.parquet");
    std::fs::write(&path, plain_parquet(&sample_metadata().to_key_values())).expect("write");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::BadSchema { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: bad capture schema: no column kind (a column of format 1.6)",
            path.display()
        )
    );
}

#[test]
fn directory_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = open_err(dir.path());
    assert!(matches!(err, FormatError::FileIo { .. }), "{err:?}");
}

#[test]
fn memory_errors_name_memory() {
    let err = CaptureReader::from_bytes(Vec::new()).expect_err("empty");
    assert_eq!(
        err.to_string(),
        "<memory>: empty file (0 bytes), not a capture"
    );
    let err = CaptureReader::from_bytes(b"hello world".to_vec()).expect_err("text");
    assert!(matches!(err, FormatError::NotParquet { .. }));
    let bytes = capture_bytes();
    let err = CaptureReader::from_bytes(bytes[..bytes.len() / 2].to_vec()).expect_err("half");
    assert!(matches!(err, FormatError::Truncated { .. }));
}

#[test]
fn file_replaced_after_open_reports_damage_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replaced.parquet");
    std::fs::write(&path, capture_bytes()).expect("write");
    let reader = CaptureReader::open(&path).expect("open");
    std::fs::write(&path, b"PAR1 gone PAR1").expect("overwrite");
    let result: Result<Vec<_>, _> = reader.batches().and_then(|batches| batches.collect());
    let err = result.expect_err("the data is gone");
    assert!(!err.to_string().contains('\n'));
    std::fs::remove_file(&path).expect("remove");
    assert!(matches!(
        reader.events().map(|_| ()).expect_err("gone"),
        FormatError::NotFound { .. }
    ));
}

/// The embedded Arrow schema (`ARROW:schema`, base64 of an IPC flatbuffer) overwritten in place
/// at many offsets: every variant opens and reads to an error or to rows, never to a panic.
#[test]
fn a_damaged_embedded_arrow_schema_is_an_error_not_a_panic() {
    let good = capture_bytes();
    let key = b"ARROW:schema";
    let at = good
        .windows(key.len())
        .position(|w| w == key)
        .expect("the key is in the footer")
        + key.len();
    // The value is the longest run of base64 characters after the key (behind its length).
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || *b == b'=';
    let start = at + good[at..].iter().position(is_b64).expect("value");
    let len = good[start..].iter().take_while(|b| is_b64(b)).count();
    assert!(len > 64, "a schema of {len} base64 characters");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outcomes = (0, 0);
    for (i, offset) in (0..len.saturating_sub(8)).step_by(7).enumerate() {
        for fill in [b'A', b'/', b'z'] {
            let mut bad = good.clone();
            bad[start + offset..start + offset + 8].fill(fill);
            let path = dir.path().join(format!("bad-{i}-{fill}.parquet"));
            std::fs::write(&path, &bad).expect("write");
            let result = CaptureReader::open(&path).and_then(|reader| {
                reader
                    .events()?
                    .collect::<Result<Vec<_>, _>>()
                    .map(|rows| rows.len())
            });
            match result {
                Ok(_) => outcomes.0 += 1,
                Err(err) => {
                    let message = err.to_string();
                    assert!(!message.contains('\n'), "one line: {message:?}");
                    assert!(
                        message.starts_with(&path.display().to_string()),
                        "{message}"
                    );
                    outcomes.1 += 1;
                }
            }
        }
    }
    assert!(outcomes.1 > 0, "some damage is detected: {outcomes:?}");
}

/// A FIFO given as a capture is refused at once instead of blocking the reader forever.
#[test]
fn a_fifo_is_not_a_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fifo.parquet");
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let err = open_err(&path);
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
