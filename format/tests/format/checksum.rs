//! Page checksums: every page header the capture writer writes carries the CRC-32 of the page's
//! stored bytes, independent readers verify it, and a damaged page is an error instead of wrong
//! rows. The pages are walked here with their own Thrift decoder (polars-parquet-format), from the
//! column chunk ranges of the footer, not through the writer's code.

use std::{
    borrow::Cow,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use bytes::Bytes;
use mmap_format::{
    FormatError,
    event::Event,
    journal,
    reader::CaptureReader,
    recover::recover,
    writer::{CaptureWriter, WriterConfig},
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
use polars_parquet_format::{
    Encoding, PageHeader, PageType, thrift::protocol::TCompactInputProtocol,
};

use crate::common::{full_event, read_events, sample_events, sample_metadata, write_capture};

/// One page as found in the file.
#[derive(Debug)]
struct Page {
    row_group: usize,
    column: String,
    /// File offset of the header.
    offset: usize,
    /// Header and bytes.
    len: usize,
    header: PageHeader,
    /// File range of the bytes after the header (as stored: compressed).
    data: std::ops::Range<usize>,
}

/// Every page of every column chunk, walked from the start of each chunk to its end; checks that
/// the pages exactly fill each chunk and that the offset index, when the file has one, lists
/// exactly its data pages. (A recovered capture has none: its footer is made from the journal.)
fn pages(file: &[u8]) -> Vec<Page> {
    let bytes = Bytes::copy_from_slice(file);
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&bytes)
        .expect("footer and page index");
    let offset_index = metadata.offset_index();
    let mut pages = Vec::new();
    for (rg, row_group) in metadata.row_groups().iter().enumerate() {
        for (c, chunk) in row_group.columns().iter().enumerate() {
            let (start, len) = chunk.byte_range();
            let (start, end) = (
                usize::try_from(start).expect("offset"),
                usize::try_from(start + len).expect("end"),
            );
            let mut at = start;
            let mut data_pages = Vec::new();
            while at < end {
                let mut rest = &file[at..end];
                let header = PageHeader::read_from_in_protocol(&mut TCompactInputProtocol::new(
                    &mut rest,
                    1 << 20,
                ))
                .expect("page header");
                let header_len = (end - at) - rest.len();
                let data_start = at + header_len;
                let data_len = usize::try_from(header.compressed_page_size).expect("size");
                let page = Page {
                    row_group: rg,
                    column: chunk.column_path().string(),
                    offset: at,
                    len: header_len + data_len,
                    data: data_start..data_start + data_len,
                    header,
                };
                if page.header.type_ != PageType::DICTIONARY_PAGE {
                    data_pages.push((page.offset, page.len));
                } else {
                    assert_eq!(
                        chunk.dictionary_page_offset(),
                        Some(i64::try_from(at).expect("offset")),
                        "the dictionary page is where the footer says"
                    );
                }
                at = page.data.end;
                pages.push(page);
            }
            assert_eq!(at, end, "the pages of {rg}/{c} fill the chunk exactly");
            if let Some(offset_index) = offset_index {
                let listed: Vec<(usize, usize)> = offset_index[rg][c]
                    .page_locations()
                    .iter()
                    .map(|l| {
                        (
                            usize::try_from(l.offset).expect("offset"),
                            usize::try_from(l.compressed_page_size).expect("size"),
                        )
                    })
                    .collect();
                assert_eq!(listed, data_pages, "offset index of {rg}/{c}");
            }
            assert_eq!(
                chunk.data_page_offset(),
                i64::try_from(data_pages[0].0).expect("offset"),
                "data_page_offset of {rg}/{c}"
            );
        }
    }
    pages
}

fn stored_crc(page: &Page) -> Option<u32> {
    page.header
        .crc
        .map(|crc| u32::from_ne_bytes(crc.to_ne_bytes()))
}

fn assert_every_page_checksummed(file: &[u8]) -> Vec<Page> {
    let pages = pages(file);
    assert!(!pages.is_empty());
    for page in &pages {
        assert_eq!(
            stored_crc(page),
            Some(crc32fast::hash(&file[page.data.clone()])),
            "CRC of the page at {} ({} of row group {})",
            page.offset,
            page.column,
            page.row_group
        );
    }
    pages
}

/// Rows whose `file_path` values are all distinct and long: the column's dictionary outgrows
/// its page limit (1 MiB) and the writer falls back to plain pages part-way through a chunk,
/// the case where the dictionary page is produced after data pages.
fn many_distinct_paths(rows: u32) -> Vec<Event<'static>> {
    (0..rows)
        .map(|i| Event {
            file_path: Some(Cow::Owned(format!("/srv/data/{i:08}/{}", "x".repeat(100)))),
            ..full_event(i)
        })
        .collect()
}

#[test]
fn every_page_header_carries_the_crc_of_its_stored_bytes() {
    let events = many_distinct_paths(45_000);
    let config = WriterConfig {
        row_group_rows: 30_000,
        zstd_level: 3,
    };
    let file = write_capture(&events, config, &sample_metadata());
    let pages = assert_every_page_checksummed(&file);
    let has_index = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(&Bytes::from(file.clone()))
        .expect("footer")
        .offset_index()
        .is_some();
    assert!(has_index, "the offset index was checked against the pages");

    // The file has what makes the layout non-trivial: two row groups, dictionary pages, several
    // data pages in one chunk, and a chunk that fell back from its dictionary part-way.
    assert!(pages.iter().any(|p| p.row_group == 1));
    assert!(
        pages
            .iter()
            .any(|p| p.header.type_ == PageType::DICTIONARY_PAGE)
    );
    let path_pages: Vec<&Page> = pages
        .iter()
        .filter(|p| p.row_group == 0 && p.column == "file_path")
        .collect();
    let encodings: Vec<Encoding> = path_pages
        .iter()
        .filter_map(|p| p.header.data_page_header.as_ref().map(|h| h.encoding))
        .collect();
    assert!(
        encodings.contains(&Encoding::RLE_DICTIONARY) && encodings.contains(&Encoding::PLAIN),
        "file_path fell back from its dictionary: {encodings:?}"
    );
    assert_eq!(path_pages[0].header.type_, PageType::DICTIONARY_PAGE);

    // And it reads back whole, with the reader verifying every page.
    let reader = CaptureReader::from_bytes(file).expect("open");
    assert_eq!(read_events(&reader), events);
}

#[test]
fn small_captures_and_the_sample_rows_are_checksummed_too() {
    for row_group_rows in [1, 3, 65536] {
        let config = WriterConfig {
            row_group_rows,
            zstd_level: 1,
        };
        let file = write_capture(&sample_events(), config, &sample_metadata());
        assert_every_page_checksummed(&file);
        let reader = CaptureReader::from_bytes(file).expect("open");
        assert_eq!(read_events(&reader), sample_events());
    }
}

/// A journaled capture whose writer died after three flushes, recovered.
fn recovered_capture(dir: &Path) -> (PathBuf, Vec<Event<'static>>) {
    let path = dir.join("crashed.parquet");
    let (file, journal_file) = journal::create(&path).expect("create");
    let config = WriterConfig {
        row_group_rows: 1000,
        zstd_level: 1,
    };
    let mut writer = CaptureWriter::with_journal(file, journal_file, config, &sample_metadata())
        .expect("journaled writer");
    let events: Vec<_> = (0..300).map(full_event).collect();
    for chunk in events.chunks(100) {
        for event in chunk {
            writer.push(event).expect("push");
        }
        writer.flush().expect("flush");
    }
    // Rows after the last flush are lost with the writer.
    writer.push(&full_event(999)).expect("push");
    std::mem::forget(writer);
    recover(&path).expect("recover");
    (path, events)
}

#[test]
fn a_recovered_capture_is_checksummed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, events) = recovered_capture(dir.path());
    let file = fs::read(&path).expect("read");
    assert_eq!(
        pages(&file).len(),
        assert_every_page_checksummed(&file).len()
    );
    let reader = CaptureReader::open(&path).expect("open");
    assert_eq!(read_events(&reader), events);
}

/// A data page of `column` in row group 0 (not its dictionary page).
fn data_page<'a>(pages: &'a [Page], column: &str) -> &'a Page {
    pages
        .iter()
        .find(|p| p.row_group == 0 && p.column == column && p.header.data_page_header.is_some())
        .expect("a data page of the column")
}

#[test]
fn one_flipped_byte_in_a_page_is_a_damaged_file_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<_> = (0..2000).map(full_event).collect();
    let file = write_capture(&events, WriterConfig::default(), &sample_metadata());
    let pages = pages(&file);
    for column in ["ret", "tid", "comm", "file_path"] {
        let page = data_page(&pages, column);
        for at in [
            page.data.start,
            (page.data.start + page.data.end) / 2,
            page.data.end - 1,
        ] {
            let mut damaged = file.clone();
            damaged[at] ^= 0x01;
            let path = dir.path().join(format!("{column}-{at}.parquet"));
            fs::write(&path, &damaged).expect("write");
            // The footer is intact: the file opens, and reading its rows fails.
            let reader = CaptureReader::open(&path).expect("the footer is intact");
            let err = reader
                .events()
                .and_then(|events| events.collect::<Result<Vec<_>, _>>())
                .expect_err("a damaged page is not read");
            assert!(
                matches!(err, FormatError::Truncated { .. }),
                "{column} byte {at}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "{}: truncated or damaged Parquet file: ",
                    path.display()
                )) && message.contains("CRC"),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }
}

fn run_python(python: &str, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python)
        .args(["-c", script])
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Reads each file with pyarrow verifying every page CRC; prints rows per file.
const VERIFIED_READ: &str = r#"
import sys, pyarrow.parquet as pq
for path in sys.argv[1:]:
    t = pq.read_table(path, page_checksum_verification=True)
    print(t.num_rows)
"#;

#[test]
fn pyarrow_verifies_the_page_checksums_of_plain_and_recovered_captures() {
    let Some(python) = crate::common::pyarrow_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.parquet");
    let events = many_distinct_paths(45_000);
    let config = WriterConfig {
        row_group_rows: 30_000,
        zstd_level: 3,
    };
    fs::write(&plain, write_capture(&events, config, &sample_metadata())).expect("write");
    let (recovered, recovered_events) = recovered_capture(dir.path());
    let out = run_python(
        &python,
        VERIFIED_READ,
        &[plain.as_os_str(), recovered.as_os_str()],
    );
    assert_eq!(out, format!("{}\n{}", events.len(), recovered_events.len()));
}

/// Given a file, the file range of one page's bytes and an output path: flips one byte at a
/// time in that range until a flip that a reader without CRC verification still decodes (to
/// other rows than the file holds); writes that damaged file and prints the byte's offset, what
/// the unverified read saw, and pyarrow's error with verification.
const FIND_A_SILENT_FLIP: &str = r#"
import io, sys, pyarrow.parquet as pq
path, start, end, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = open(path, "rb").read()
good = pq.read_table(io.BytesIO(data))
# One thread: pyarrow's threaded read of a damaged page sometimes ends the process
# ("terminate called without an active exception") instead of raising.
for at in range(start, end):
    bad = bytearray(data)
    bad[at] ^= 0x01
    try:
        seen = pq.read_table(io.BytesIO(bytes(bad)), use_threads=False)
    except Exception:
        continue
    if seen.equals(good):
        continue
    open(out, "wb").write(bad)
    try:
        pq.read_table(
            io.BytesIO(bytes(bad)), page_checksum_verification=True, use_threads=False
        )
        verified = "read"
    except Exception as e:
        verified = str(e).splitlines()[0]
    print(at)
    print("unverified: %d rows, different values" % seen.num_rows)
    print("verified: " + verified)
    break
"#;

#[test]
fn a_flip_that_decodes_silently_without_crc_is_caught_with_it() {
    let Some(python) = crate::common::pyarrow_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("good.parquet");
    let events: Vec<_> = (0..2000).map(full_event).collect();
    let file = write_capture(&events, WriterConfig::default(), &sample_metadata());
    fs::write(&path, &file).expect("write");
    let pages = pages(&file);
    // `ret` is written without a dictionary: its page bytes are the values, compressed.
    let page = data_page(&pages, "ret");
    let damaged = dir.path().join("damaged.parquet");
    let out = run_python(
        &python,
        FIND_A_SILENT_FLIP,
        &[
            path.as_os_str(),
            page.data.start.to_string().as_ref(),
            page.data.end.to_string().as_ref(),
            damaged.as_os_str(),
        ],
    );
    eprintln!("{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "some flip in the page decodes silently: {out:?}"
    );
    let at: usize = lines[0].parse().expect("offset");
    assert!(
        page.data.contains(&at),
        "the flipped byte is in the page's bytes"
    );
    assert_eq!(lines[1], "unverified: 2000 rows, different values");
    assert!(
        lines[2].starts_with("verified: ") && lines[2].contains("CRC"),
        "pyarrow with verification refuses it: {}",
        lines[2]
    );
    // The capture reader verifies always.
    let err = CaptureReader::open(&damaged)
        .and_then(|reader| reader.events()?.collect::<Result<Vec<_>, _>>())
        .expect_err("refused");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: truncated or damaged Parquet file: ",
            damaged.display()
        )),
        "{err}"
    );
}
