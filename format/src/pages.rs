//! The memory a file's pages may ask for, checked before any page is read.
//!
//! A Parquet page header declares how large the page is once decompressed, and readers
//! (parquet-rs, hence DataFusion) allocate that much and decompress into it: a crafted header
//! can declare up to 2 GiB, and a few kilobytes of zstd can fill it. A reader holds one page per
//! column at a time (a dictionary page and a data page), so bounding each page, and the pages of
//! one row group together, bounds the memory reading takes whatever the file says.
//!
//! [`check_pages`] walks the page headers of every column chunk (headers only: a small read each)
//! and refuses a file whose pages declare more than [`MAX_PAGE_BYTES`] each, or more than
//! [`MAX_ROW_GROUP_PAGE_BYTES`] for the largest dictionary and data page of every column of one
//! row group together. It also checks that the offset index, which lets a reader jump to a page,
//! points only at pages the walk found: a location inside a page could make a reader take a
//! crafted header there for a page's.

use std::{fs::File, os::unix::fs::FileExt, path::Path};

use bytes::Bytes;
use parquet::file::{metadata::ParquetMetaData, reader::ChunkReader};
use polars_parquet_format::{PageHeader, PageType, thrift::protocol::TCompactInputProtocol};

use crate::FormatError;

/// The most bytes one page may declare decompressed: 64 MiB. The capture writer's pages hold at
/// most about 1 MiB (parquet's page size limit, checked every 1,024 values, so a page of long
/// paths may reach some MiB).
pub const MAX_PAGE_BYTES: i64 = 64 << 20;

/// The most bytes the largest dictionary page plus the largest data page of every column of one
/// row group may declare decompressed, together: 512 MiB.
pub const MAX_ROW_GROUP_PAGE_BYTES: i64 = 512 << 20;

/// Bytes read for a page header first (parquet's are a few dozen); a header that does not decode
/// from them is read again with [`MAX_HEADER_BYTES`].
const FIRST_READ: u64 = 256;

/// What the page headers are read from: one positioned read per header, into one buffer.
pub trait HeaderSource: ChunkReader {
    /// Fills `buf` from byte `at` as far as the input goes; the bytes read.
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize;

    /// Told, before each row group is walked, where its page headers are expected (from the
    /// column chunks and the offset index), for an input that reads them in bulk ahead of time
    /// (a remote object, [`crate::remote`]); local inputs read each header where it is.
    fn prefetch(&self, _ranges: &[std::ops::Range<u64>]) {}
}

impl HeaderSource for File {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_at(&mut buf[filled..], at + filled as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        filled
    }
}

/// A local file whose page headers are read row group by row group in a few reads: the
/// expected header ranges ([`HeaderSource::prefetch`]) less than [`LOCAL_GAP`] apart are read as
/// one, and the headers are then taken from those bytes. A capture of 10 million rows has about
/// 54,000 page headers, most of them in column chunks of a few hundred bytes; one small read per
/// header was most of the time it took to open.
struct Windowed<'f> {
    file: &'f File,
    len: u64,
    /// The bytes read for the row group being walked: (offset, bytes).
    window: std::sync::Mutex<Vec<(u64, Vec<u8>)>>,
}

/// Header ranges of a local file closer than this are read as one: a read of a few KiB costs
/// about what a read of 256 bytes does.
const LOCAL_GAP: u64 = 8 << 10;

/// The most bytes [`Windowed`] holds for one row group (a file of many tiny pages would have its
/// row groups read whole); the headers past it are read one by one.
const LOCAL_WINDOW_BYTES: u64 = 4 << 20;

impl<'f> Windowed<'f> {
    fn new(file: &'f File) -> Self {
        Self {
            file,
            len: file.metadata().map_or(0, |m| m.len()),
            window: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Vec<u8>)>> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl parquet::file::reader::Length for Windowed<'_> {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Windowed<'_> {
    type T = <File as ChunkReader>::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.file.get_bytes(start, length)
    }
}

impl HeaderSource for Windowed<'_> {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize {
        let end = at.saturating_add(buf.len() as u64);
        if let Some((bytes, within)) = crate::remote::piece_holding(self.window().iter(), at..end) {
            buf.copy_from_slice(&bytes[within]);
            return buf.len();
        }
        self.file.read_into(at, buf)
    }

    fn prefetch(&self, ranges: &[std::ops::Range<u64>]) {
        let mut window = self.window();
        window.clear();
        let mut held = 0;
        for range in crate::remote::merge_within(ranges, self.len, LOCAL_GAP) {
            let len = range.end - range.start;
            if held + len > LOCAL_WINDOW_BYTES {
                continue;
            }
            held += len;
            let mut bytes = vec![0; len as usize];
            let read = self.file.read_into(range.start, &mut bytes);
            bytes.truncate(read);
            window.push((range.start, bytes));
        }
    }
}

impl HeaderSource for Bytes {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize {
        let start = usize::try_from(at).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        n
    }
}

/// The largest page header read (statistics included); parquet's own are a few dozen bytes.
const MAX_HEADER_BYTES: u64 = 64 << 10;

/// Checks the declared sizes of every page of the file, and that the offset index points only
/// at page starts (see the module documentation). A page header that does not decode ends the
/// walk of its column chunk: a reader fails there too, with its own message, before it
/// allocates anything past it.
pub fn check_pages<R: HeaderSource>(
    path: &Path,
    input: &R,
    metadata: &ParquetMetaData,
) -> Result<(), FormatError> {
    check_pages_within(
        path,
        input,
        metadata,
        MAX_PAGE_BYTES,
        MAX_ROW_GROUP_PAGE_BYTES,
    )
}

/// [`check_pages`] with the two limits given (the tests use small ones).
fn check_pages_within<R: HeaderSource>(
    path: &Path,
    input: &R,
    metadata: &ParquetMetaData,
    max_page: i64,
    max_row_group: i64,
) -> Result<(), FormatError> {
    let limits = Limits {
        max_page,
        max_row_group,
    };
    let mut buf = Vec::new();
    (0..metadata.num_row_groups())
        .try_for_each(|rg_index| check_row_group(path, input, metadata, rg_index, limits, &mut buf))
}

/// [`check_pages`] for a local file, its row groups walked by every core, the page headers of
/// each row group read in a few reads ([`Windowed`]: 7,120 reads for the 10 M-row benchmark
/// capture, against 54,469 at one per header). The first damage found, in row-group order, is
/// the error.
pub fn check_file_pages(
    path: &Path,
    input: &File,
    metadata: &ParquetMetaData,
) -> Result<(), FormatError> {
    let limits = Limits {
        max_page: MAX_PAGE_BYTES,
        max_row_group: MAX_ROW_GROUP_PAGE_BYTES,
    };
    check_file_pages_within(path, input, metadata, limits)
}

/// [`check_file_pages`] with the limits given (the tests use small ones).
fn check_file_pages_within(
    path: &Path,
    input: &File,
    metadata: &ParquetMetaData,
    limits: Limits,
) -> Result<(), FormatError> {
    let groups = metadata.num_row_groups();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(groups / 8)
        .max(1);
    if threads == 1 {
        return check_pages_within(
            path,
            &Windowed::new(input),
            metadata,
            limits.max_page,
            limits.max_row_group,
        );
    }
    // Row groups dealt out in turn (their sizes vary along the file).
    let results: Vec<Vec<(usize, FormatError)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    let input = Windowed::new(input);
                    let mut buf = Vec::new();
                    let mut errors = Vec::new();
                    for rg_index in (first..groups).step_by(threads) {
                        if let Err(err) =
                            check_row_group(path, &input, metadata, rg_index, limits, &mut buf)
                        {
                            errors.push((rg_index, err));
                            break;
                        }
                    }
                    errors
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker.join().unwrap_or_else(|_| {
                    vec![(
                        0,
                        FormatError::Truncated {
                            path: path.to_path_buf(),
                            detail: "the page walk failed".to_owned(),
                        },
                    )]
                })
            })
            .collect()
    });
    match results.into_iter().flatten().min_by_key(|(rg, _)| *rg) {
        Some((_, err)) => Err(err),
        None => Ok(()),
    }
}

/// The two limits of the walk.
#[derive(Clone, Copy)]
struct Limits {
    max_page: i64,
    max_row_group: i64,
}

/// Walks the page headers of row group `rg_index`; `buf` is reused from one header to the next.
fn check_row_group<R: HeaderSource>(
    path: &Path,
    input: &R,
    metadata: &ParquetMetaData,
    rg_index: usize,
    limits: Limits,
    buf: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let Limits {
        max_page,
        max_row_group,
    } = limits;
    let damaged = |detail: String| FormatError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    // Loaded with the footer (`reader::load_footer`), when it decodes.
    let offset_index = metadata.offset_index();
    {
        let rg = metadata.row_group(rg_index);
        let expected = rg
            .columns()
            .iter()
            .enumerate()
            .flat_map(|(column_index, column)| {
                let (start, len) = column.byte_range();
                let end = start.saturating_add(len);
                let pages = offset_index
                    .as_ref()
                    .and_then(|index| index.get(rg_index))
                    .and_then(|columns| columns.get(column_index))
                    .map_or(&[][..], |l| l.page_locations())
                    .iter()
                    .filter_map(|location| u64::try_from(location.offset).ok());
                std::iter::once(start)
                    .chain(pages)
                    .map(move |at| at..at.saturating_add(FIRST_READ).min(end))
            });
        input.prefetch(&expected.collect::<Vec<_>>());
        let mut row_group_total: i64 = 0;
        for (column_index, column) in rg.columns().iter().enumerate() {
            let name = column.column_descr().name();
            let (start, len) = column.byte_range();
            let end = start.saturating_add(len);
            let mut at = start;
            let mut starts = Vec::new();
            let (mut largest_dictionary, mut largest_data) = (0_i64, 0_i64);
            while at < end {
                let Some((header, header_len)) = read_header(input, buf, at, end) else {
                    break;
                };
                let declared = i64::from(header.uncompressed_page_size);
                let stored = i64::from(header.compressed_page_size);
                if declared < 0 || stored < 0 {
                    return Err(damaged(format!(
                        "a page of column {name} in row group {rg_index} declares a negative size"
                    )));
                }
                if declared > max_page {
                    return Err(damaged(format!(
                        "a page of column {name} in row group {rg_index} declares {declared} \
                         bytes decompressed; a capture's pages hold at most {max_page}"
                    )));
                }
                if header.type_ == PageType::DICTIONARY_PAGE {
                    largest_dictionary = largest_dictionary.max(declared);
                } else {
                    largest_data = largest_data.max(declared);
                }
                starts.push(at);
                // `stored` is at most `i32::MAX` and `at` below the file's length: no overflow.
                at = at.saturating_add(header_len).saturating_add(stored as u64);
            }
            row_group_total = row_group_total
                .saturating_add(largest_dictionary)
                .saturating_add(largest_data);
            let locations = offset_index
                .as_ref()
                .and_then(|index| index.get(rg_index))
                .and_then(|columns| columns.get(column_index));
            for location in locations.map_or(&[][..], |l| l.page_locations()) {
                let points_at_a_page = u64::try_from(location.offset)
                    .is_ok_and(|offset| starts.binary_search(&offset).is_ok());
                // Past the last header the walk decoded nothing is known: a reader fails on
                // the header it cannot decode before reaching those pages.
                let walked = u64::try_from(location.offset).is_ok_and(|offset| offset < at);
                if walked && !points_at_a_page {
                    return Err(damaged(format!(
                        "the offset index of column {name} in row group {rg_index} points at \
                         byte {}, which is not the start of a page",
                        location.offset
                    )));
                }
            }
        }
        if row_group_total > max_row_group {
            return Err(damaged(format!(
                "the pages of row group {rg_index} declare {row_group_total} bytes decompressed \
                 (the largest of each column together); a capture's are at most {max_row_group}"
            )));
        }
    }
    Ok(())
}

/// The page header at `at` (before `end`) and its length in bytes, or `None` when it does not
/// decode. `buf` is reused from one header to the next.
fn read_header<R: HeaderSource>(
    input: &R,
    buf: &mut Vec<u8>,
    at: u64,
    end: u64,
) -> Option<(PageHeader, u64)> {
    for want in [FIRST_READ, MAX_HEADER_BYTES] {
        let len = usize::try_from(want.min(end - at)).ok()?;
        buf.resize(len, 0);
        let read = input.read_into(at, buf);
        let mut rest = &buf[..read];
        let decoded = crate::guard::catch(|| {
            PageHeader::read_from_in_protocol(&mut TCompactInputProtocol::new(
                &mut rest,
                usize::try_from(MAX_HEADER_BYTES).unwrap_or(usize::MAX),
            ))
        });
        if let Ok(Ok(header)) = decoded {
            return Some((header, (read - rest.len()) as u64));
        }
        if read < buf.len() || u64::try_from(len).is_ok_and(|len| len < want) {
            // The whole rest of the chunk (or of the file) was read: more cannot help.
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use bytes::Bytes;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    use polars_parquet_format::{OffsetIndex, thrift::protocol::TCompactOutputProtocol};

    use super::*;
    use crate::{
        event::{Event, RowKind, Syscall},
        metadata::CaptureMetadata,
        reader::CaptureReader,
        writer::{CaptureWriter, WriterConfig},
    };

    /// A capture of 3,000 rows in two row groups, with a dictionary and a data page per column
    /// chunk.
    fn capture() -> Bytes {
        capture_in(2_000)
    }

    /// The 3,000 rows of [`capture`], `row_group_rows` to a row group.
    fn capture_in(row_group_rows: usize) -> Bytes {
        let config = WriterConfig {
            row_group_rows,
            ..WriterConfig::default()
        };
        let mut writer = CaptureWriter::new(Vec::new(), config).expect("writer");
        for i in 0..3_000_u64 {
            writer
                .push(&Event {
                    kind: RowKind::Syscall,
                    syscall: Some(Syscall::Mmap),
                    ts_ns: 1_700_000_000_000_000_000 + i as i64,
                    pid: 42,
                    tid: 42,
                    comm: Cow::Borrowed("pages"),
                    addr: Some(i << 12),
                    len: Some(4096 * (i % 7 + 1)),
                    ret: Some((0x7f00_0000_0000 + (i << 12)) as i64),
                    file_path: Some(Cow::Owned(format!("/data/file-{i}.bin"))),
                    ..Default::default()
                })
                .expect("push");
        }
        Bytes::from(writer.finish(&CaptureMetadata::default()).expect("finish"))
    }

    fn metadata(file: &Bytes) -> ParquetMetaData {
        ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(file)
            .expect("footer")
    }

    fn encode<T>(
        value: &T,
        write: impl Fn(&T, &mut TCompactOutputProtocol<&mut Vec<u8>>),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        write(value, &mut TCompactOutputProtocol::new(&mut out));
        out
    }

    #[test]
    fn the_writer_s_pages_pass_and_their_sizes_are_what_the_limits_compare() {
        let file = capture();
        let meta = metadata(&file);
        let path = Path::new("t.parquet");
        check_pages(path, &file, &meta).expect("a capture's own pages pass");
        // The same walk with limits just below what the file declares refuses it: the limits
        // compare the sizes the headers declare.
        let mut largest = 0;
        let mut group_total = 0;
        for column in meta.row_group(0).columns() {
            let (start, len) = column.byte_range();
            let (mut at, mut column_dict, mut column_data) = (start, 0, 0);
            while at < start + len {
                let (header, header_len) =
                    read_header(&file, &mut Vec::new(), at, start + len).expect("header");
                let size = i64::from(header.uncompressed_page_size);
                largest = largest.max(size);
                if header.type_ == PageType::DICTIONARY_PAGE {
                    column_dict = size.max(column_dict);
                } else {
                    column_data = size.max(column_data);
                }
                at += header_len + header.compressed_page_size as u64;
            }
            group_total += column_dict + column_data;
        }
        check_pages_within(path, &file, &meta, largest, group_total).expect("at the limits");
        let err = check_pages_within(path, &file, &meta, largest - 1, i64::MAX)
            .expect_err("a page over the limit");
        assert!(
            err.to_string()
                .contains(&format!("declares {largest} bytes")),
            "{err}"
        );
        let err = check_pages_within(path, &file, &meta, i64::MAX, group_total - 1)
            .expect_err("a row group over the limit");
        assert!(
            err.to_string()
                .contains(&format!("row group 0 declare {group_total} bytes")),
            "{err}"
        );
    }

    #[test]
    fn a_local_file_s_headers_come_from_a_bounded_window_or_the_file() {
        let content: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bytes");
        std::fs::write(&path, &content).expect("write");
        let file = File::open(&path).expect("open");
        let windowed = Windowed::new(&file);
        let held = |w: &Windowed<'_>| w.window().iter().map(|(_, b)| b.len()).sum::<usize>();
        let reads_as_the_file = |w: &Windowed<'_>| {
            for at in [
                0,
                100,
                3 * 65_536 + 10,
                6 << 20,
                (10 << 20) - 100,
                (10 << 20) + 5,
            ] {
                let mut buf = vec![0; 256];
                let n = w.read_into(at, &mut buf);
                let from = (at as usize).min(content.len());
                let to = (at as usize + 256).min(content.len());
                assert_eq!(&buf[..n], &content[from..to], "at {at}");
            }
        };
        // Headers 64 KiB apart: each is read on its own, and kept.
        let sparse: Vec<_> = (0..10 << 20)
            .step_by(65_536)
            .map(|at| at..at + 256)
            .collect();
        windowed.prefetch(&sparse);
        assert_eq!(held(&windowed), 160 * 256);
        reads_as_the_file(&windowed);
        // Headers 4 KiB apart over 10 MiB join into one range beyond the bound: nothing is
        // kept, and every header is read from the file.
        let dense: Vec<_> = (0..10 << 20)
            .step_by(4_096)
            .map(|at| at..at + 256)
            .collect();
        windowed.prefetch(&dense);
        assert_eq!(held(&windowed), 0);
        reads_as_the_file(&windowed);
        // Up to the bound, they are kept.
        let some: Vec<_> = (0..2 << 20).step_by(4_096).map(|at| at..at + 256).collect();
        windowed.prefetch(&some);
        assert_eq!(held(&windowed), (2 << 20) - 4_096 + 256);
        reads_as_the_file(&windowed);
    }

    #[test]
    fn a_file_s_row_groups_are_walked_side_by_side_and_the_first_damage_is_named() {
        let file = capture_in(100);
        let meta = metadata(&file);
        assert_eq!(meta.num_row_groups(), 30);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.parquet");
        let input = File::open(&{
            std::fs::write(&path, &file).expect("write");
            path.clone()
        })
        .expect("open");
        let limits = Limits {
            max_page: 4_000,
            max_row_group: MAX_ROW_GROUP_PAGE_BYTES,
        };
        check_file_pages_within(&path, &input, &meta, limits).expect("an intact file passes");
        // Rows groups 17 and 22 (walked by different threads when there are two) each have a
        // page declaring 6,000 bytes, above the test's limit of 4,000 (the header keeps its
        // length: nothing moves).
        let mut crafted = file.to_vec();
        for rg in [22, 17] {
            let column = meta
                .row_group(rg)
                .columns()
                .iter()
                .find(|c| c.column_descr().name() == "addr")
                .expect("addr");
            let (at, len) = column.byte_range();
            let (mut header, header_len) =
                read_header(&file, &mut Vec::new(), at, at + len).expect("header");
            header.uncompressed_page_size = 6_000;
            let patched = encode(&header, |h, p| {
                h.write_to_out_protocol(p).expect("encode");
            });
            assert_eq!(patched.len() as u64, header_len);
            let at = at as usize;
            crafted.splice(at..at + header_len as usize, patched);
        }
        std::fs::write(&path, &crafted).expect("write");
        let input = File::open(&path).expect("open");
        let err = check_file_pages_within(&path, &input, &meta, limits).expect_err("refused");
        assert!(
            err.to_string().ends_with(
                "a page of column addr in row group 17 declares 6000 bytes decompressed; a \
                 capture's pages hold at most 4000"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_page_declaring_a_gigabyte_is_refused_before_anything_is_read() {
        let file = capture();
        let meta = metadata(&file);
        // The first page of the `addr` column claims 1 GiB once decompressed.
        let column = meta
            .row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_descr().name() == "addr")
            .expect("addr");
        let at = column.byte_range().0;
        let (mut header, header_len) =
            read_header(&file, &mut Vec::new(), at, at + column.byte_range().1).expect("header");
        header.uncompressed_page_size = 1 << 30;
        let patched = encode(&header, |h, p| {
            h.write_to_out_protocol(p).expect("encode");
        });
        let at = at as usize;
        let mut crafted = file[..at].to_vec();
        crafted.extend_from_slice(&patched);
        crafted.extend_from_slice(&file[at + header_len as usize..]);
        let remote = crate::remote::tests::open_remote(Bytes::from(crafted.clone()));
        let Err(err) = CaptureReader::from_bytes(crafted) else {
            panic!("refused");
        };
        assert_eq!(
            err.to_string(),
            "<memory>: truncated or damaged Parquet file: a page of column addr in row group 0 \
             declares 1073741824 bytes decompressed; a capture's pages hold at most 67108864"
        );
        // Read from ranges (an s3:// object), the same check refuses it.
        let Err(remote) = remote else {
            panic!("refused when remote");
        };
        assert_eq!(
            remote.to_string(),
            err.to_string()
                .replace("<memory>", crate::remote::tests::URL)
        );
    }

    #[test]
    fn an_offset_index_pointing_inside_a_page_is_refused() {
        let file = capture();
        let meta = metadata(&file);
        let column = meta
            .row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_descr().name() == "file_path")
            .expect("file_path");
        let start = column.offset_index_offset().expect("offset index") as usize;
        let len = column.offset_index_length().expect("length") as usize;
        let mut rest = &file[start..start + len];
        let mut index =
            OffsetIndex::read_from_in_protocol(&mut TCompactInputProtocol::new(&mut rest, 1 << 20))
                .expect("offset index");
        // One byte further: inside the page header, where a crafted header could hide.
        index.page_locations[0].offset += 1;
        let patched = encode(&index, |i, p| {
            i.write_to_out_protocol(p).expect("encode");
        });
        assert_eq!(patched.len(), len, "same length, so nothing else moves");
        let mut crafted = file.to_vec();
        crafted[start..start + len].copy_from_slice(&patched);
        let remote = crate::remote::tests::open_remote(Bytes::from(crafted.clone()));
        let Err(err) = CaptureReader::from_bytes(crafted) else {
            panic!("refused");
        };
        let Err(remote) = remote else {
            panic!("refused when remote");
        };
        assert_eq!(
            remote.to_string(),
            err.to_string()
                .replace("<memory>", crate::remote::tests::URL)
        );
        let message = err.to_string();
        assert!(
            message.starts_with(
                "<memory>: truncated or damaged Parquet file: the offset index of column \
                 file_path in row group 0 points at byte "
            ) && message.ends_with(", which is not the start of a page"),
            "{message}"
        );
    }
}
