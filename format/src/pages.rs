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

use std::{
    fs::File,
    ops::Range,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

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
pub trait HeaderSource {
    /// Fills `buf` from byte `at` as far as the input goes; the bytes read.
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize;

    /// Told, before each row group is walked, where its page headers are expected (from the
    /// column chunks and the offset index), for an input that reads them in bulk ahead of time
    /// (a remote object, [`crate::remote`]); local inputs read each header where it is.
    fn prefetch(&self, _ranges: &[Range<u64>]) {}
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
    window: Mutex<Vec<(u64, Vec<u8>)>>,
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
            window: Mutex::new(Vec::new()),
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

    fn prefetch(&self, ranges: &[Range<u64>]) {
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
        Fetched {
            start: 0,
            bytes: self,
        }
        .read_into(at, buf)
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

/// The checks of [`check_file_pages`], made column chunk by column chunk as a reader fetches
/// the chunks' bytes, so that a query walks the pages of the columns and row groups it reads,
/// not every page of the file before it starts (a sixth of the time of a short question on a
/// capture of millions of rows).
///
/// A reader hands each range it fetched, with its bytes, to [`PageGuard::check_fetched`]
/// before it decodes anything from them. A column chunk fetched whole is walked in those bytes
/// (no read); one fetched in part (the pages the page index selected) is walked from the file,
/// its headers read as [`check_file_pages`] reads them. Each chunk is walked once. The
/// row-group limit counts the chunks walked so far, so it bounds what is read together, as the
/// walk of the whole file bounds the whole row group.
pub struct PageGuard {
    path: PathBuf,
    metadata: Arc<ParquetMetaData>,
    limits: Limits,
    /// The column chunks by start: (start, end, row group, column).
    chunks: Vec<(u64, u64, usize, usize)>,
    /// The largest end of `chunks[..=i]`, so the first chunk that may reach past an offset is
    /// found by bisection whatever the chunks' order or overlaps (a crafted footer's).
    reach: Vec<u64>,
    state: Mutex<GuardState>,
}

struct GuardState {
    /// Every page was walked ([`PageGuard::check_all`]).
    all: bool,
    /// Per row group, per column chunk: walked.
    walked: Vec<Vec<bool>>,
    /// Per row group: the largest dictionary and data page of each of its chunks walked,
    /// together.
    totals: Vec<i64>,
}

impl std::fmt::Debug for PageGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageGuard")
            .field("path", &self.path)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

impl PageGuard {
    /// The guard of the capture at `path`, whose footer is `metadata` (with its offset index,
    /// when it has one). It holds no open file (an analyzer may open thousands of captures):
    /// a chunk fetched in part is walked from the file opened again.
    pub fn new(path: &Path, metadata: Arc<ParquetMetaData>) -> Self {
        Self::with_limits(
            path,
            metadata,
            Limits {
                max_page: MAX_PAGE_BYTES,
                max_row_group: MAX_ROW_GROUP_PAGE_BYTES,
            },
        )
    }

    fn with_limits(path: &Path, metadata: Arc<ParquetMetaData>, limits: Limits) -> Self {
        let mut chunks: Vec<(u64, u64, usize, usize)> = metadata
            .row_groups()
            .iter()
            .enumerate()
            .flat_map(|(rg_index, rg)| {
                rg.columns()
                    .iter()
                    .enumerate()
                    .map(move |(column_index, c)| {
                        let (start, len) = c.byte_range();
                        (start, start.saturating_add(len), rg_index, column_index)
                    })
            })
            .collect();
        chunks.sort_unstable();
        let reach = chunks
            .iter()
            .scan(0, |reach, &(_, end, _, _)| {
                *reach = end.max(*reach);
                Some(*reach)
            })
            .collect();
        let walked = metadata
            .row_groups()
            .iter()
            .map(|rg| vec![false; rg.num_columns()])
            .collect();
        let groups = metadata.num_row_groups();
        Self {
            path: path.to_path_buf(),
            limits,
            chunks,
            reach,
            state: Mutex::new(GuardState {
                all: false,
                walked,
                totals: vec![0; groups],
            }),
            metadata,
        }
    }

    /// The footer the checks are made against: a reader must read with this one.
    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        &self.metadata
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the pages of every column chunk that `range`, fetched as `bytes`, holds some of
    /// (see the type's documentation); the error says what is wrong, as the walk of the whole
    /// file does.
    pub fn check_fetched(&self, range: Range<u64>, bytes: &[u8]) -> Result<(), FormatError> {
        if self.state().all {
            return Ok(());
        }
        let first = self.reach.partition_point(|&reach| reach <= range.start);
        let mut buf = Vec::new();
        // Opened for the first chunk fetched in part, once for all of them.
        let mut file: Option<File> = None;
        for &(start, end, rg_index, column_index) in &self.chunks[first..] {
            if start >= range.end {
                break;
            }
            if end <= range.start {
                continue;
            }
            if self.state().walked[rg_index][column_index] {
                continue;
            }
            let largest = if start >= range.start && end <= range.end {
                let fetched = Fetched {
                    start: range.start,
                    bytes,
                };
                self.walk(&fetched, rg_index, column_index, &mut buf)?
            } else {
                let file = match &mut file {
                    Some(file) => file,
                    None => file.insert(crate::reader::open_existing(&self.path)?),
                };
                let windowed = Windowed::new(file);
                windowed.prefetch(
                    &expected_headers(&self.metadata, rg_index, column_index).collect::<Vec<_>>(),
                );
                self.walk(&windowed, rg_index, column_index, &mut buf)?
            };
            let mut state = self.state();
            if !std::mem::replace(&mut state.walked[rg_index][column_index], true) {
                state.totals[rg_index] = state.totals[rg_index].saturating_add(largest);
                check_row_group_total(&self.path, rg_index, state.totals[rg_index], self.limits)?;
            }
        }
        Ok(())
    }

    fn walk<R: HeaderSource>(
        &self,
        input: &R,
        rg_index: usize,
        column_index: usize,
        buf: &mut Vec<u8>,
    ) -> Result<i64, FormatError> {
        walk_chunk(
            &self.path,
            input,
            &self.metadata,
            rg_index,
            column_index,
            self.limits,
            buf,
        )
    }

    /// Walks every page of the file, read from `file` ([`check_file_pages`]), unless that was
    /// done: for a reader of whole row groups.
    pub fn check_all(&self, file: &File) -> Result<(), FormatError> {
        if self.state().all {
            return Ok(());
        }
        check_file_pages_within(&self.path, file, &self.metadata, self.limits)?;
        self.state().all = true;
        Ok(())
    }
}

/// Bytes a reader fetched from the file, from byte `start`, as a source of page headers.
struct Fetched<'a> {
    start: u64,
    bytes: &'a [u8],
}

impl HeaderSource for Fetched<'_> {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize {
        let Some(from) = at
            .checked_sub(self.start)
            .and_then(|from| usize::try_from(from).ok())
            .filter(|&from| from <= self.bytes.len())
        else {
            return 0;
        };
        let n = buf.len().min(self.bytes.len() - from);
        buf[..n].copy_from_slice(&self.bytes[from..from + n]);
        n
    }
}

/// The two limits of the walk.
#[derive(Clone, Copy)]
struct Limits {
    max_page: i64,
    max_row_group: i64,
}

/// Walks the page headers of row group `rg_index`; `buf` is reused from one header to the next.
fn check_row_group<R: HeaderSource + ?Sized>(
    path: &Path,
    input: &R,
    metadata: &ParquetMetaData,
    rg_index: usize,
    limits: Limits,
    buf: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let rg = metadata.row_group(rg_index);
    let expected: Vec<_> = (0..rg.num_columns())
        .flat_map(|column_index| expected_headers(metadata, rg_index, column_index))
        .collect();
    input.prefetch(&expected);
    let mut row_group_total: i64 = 0;
    for column_index in 0..rg.num_columns() {
        let largest = walk_chunk(path, input, metadata, rg_index, column_index, limits, buf)?;
        row_group_total = row_group_total.saturating_add(largest);
    }
    check_row_group_total(path, rg_index, row_group_total, limits)
}

/// Where the page headers of a column chunk are expected: its start (its first page, the
/// dictionary's when it has one) and each data page the offset index locates, each the first
/// [`FIRST_READ`] bytes from there (within the chunk).
fn expected_headers(
    metadata: &ParquetMetaData,
    rg_index: usize,
    column_index: usize,
) -> impl Iterator<Item = Range<u64>> + '_ {
    let (start, len) = metadata
        .row_group(rg_index)
        .column(column_index)
        .byte_range();
    let end = start.saturating_add(len);
    let pages = locations(metadata, rg_index, column_index)
        .iter()
        .filter_map(|location| u64::try_from(location.offset).ok());
    std::iter::once(start)
        .chain(pages)
        .map(move |at| at..at.saturating_add(FIRST_READ).min(end))
}

/// The offset index's page locations of a column chunk (none when the file has no offset
/// index).
fn locations(
    metadata: &ParquetMetaData,
    rg_index: usize,
    column_index: usize,
) -> &[parquet::file::page_index::offset_index::PageLocation] {
    metadata
        .offset_index()
        .and_then(|index| index.get(rg_index))
        .and_then(|columns| columns.get(column_index))
        .map_or(&[][..], |l| l.page_locations())
}

/// Refuses a row group whose pages' `total` (the largest dictionary and data page of each of
/// its columns walked, together) is past the limit.
fn check_row_group_total(
    path: &Path,
    rg_index: usize,
    total: i64,
    limits: Limits,
) -> Result<(), FormatError> {
    if total > limits.max_row_group {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "the pages of row group {rg_index} declare {total} bytes decompressed (the \
                 largest of each column together); a capture's are at most {}",
                limits.max_row_group
            ),
        });
    }
    Ok(())
}

/// Walks the page headers of one column chunk: each page's declared size against the limit,
/// and the offset index's locations against the page starts found. Returns the largest
/// dictionary page plus the largest data page it declares, its share of the row group's total.
fn walk_chunk<R: HeaderSource + ?Sized>(
    path: &Path,
    input: &R,
    metadata: &ParquetMetaData,
    rg_index: usize,
    column_index: usize,
    limits: Limits,
    buf: &mut Vec<u8>,
) -> Result<i64, FormatError> {
    let max_page = limits.max_page;
    let damaged = |detail: String| FormatError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    let column = metadata.row_group(rg_index).column(column_index);
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
                "a page of column {name} in row group {rg_index} declares {declared} bytes \
                 decompressed; a capture's pages hold at most {max_page}"
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
    for location in locations(metadata, rg_index, column_index) {
        let points_at_a_page = u64::try_from(location.offset)
            .is_ok_and(|offset| starts.binary_search(&offset).is_ok());
        // Past the last header the walk decoded nothing is known: a reader fails on the
        // header it cannot decode before reaching those pages.
        let walked = u64::try_from(location.offset).is_ok_and(|offset| offset < at);
        if walked && !points_at_a_page {
            return Err(damaged(format!(
                "the offset index of column {name} in row group {rg_index} points at byte {}, \
                 which is not the start of a page",
                location.offset
            )));
        }
    }
    Ok(largest_dictionary.saturating_add(largest_data))
}

/// The page header at `at` (before `end`) and its length in bytes, or `None` when it does not
/// decode. `buf` is reused from one header to the next.
fn read_header<R: HeaderSource + ?Sized>(
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
    fn a_guard_walks_each_chunk_once_as_it_is_fetched() {
        let file = capture_in(100);
        let meta = Arc::new(metadata(&file));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.parquet");
        let chunk_of = |rg: usize, name: &str| {
            let column = meta
                .row_group(rg)
                .columns()
                .iter()
                .find(|c| c.column_descr().name() == name)
                .expect("column");
            let (start, len) = column.byte_range();
            start..start + len
        };
        // Row group 17's first `addr` page declares 6,000 bytes, above the test's limit.
        let mut crafted = file.to_vec();
        let addr = chunk_of(17, "addr");
        let (mut header, header_len) =
            read_header(&file, &mut Vec::new(), addr.start, addr.end).expect("header");
        header.uncompressed_page_size = 6_000;
        let patched = encode(&header, |h, p| {
            h.write_to_out_protocol(p).expect("encode");
        });
        assert_eq!(patched.len() as u64, header_len);
        let at = addr.start as usize;
        crafted.splice(at..at + header_len as usize, patched);
        std::fs::write(&path, &crafted).expect("write");
        let limits = Limits {
            max_page: 4_000,
            max_row_group: MAX_ROW_GROUP_PAGE_BYTES,
        };
        let guard = || PageGuard::with_limits(&path, Arc::clone(&meta), limits);
        let bytes = |range: &Range<u64>| &crafted[range.start as usize..range.end as usize];
        let refused = "a page of column addr in row group 17 declares 6000 bytes decompressed; a \
                       capture's pages hold at most 4000";

        // Fetched whole: walked in the bytes. Another row group's chunk, the footer (no
        // chunk) and a range over several chunks of a healthy row group pass.
        let checks = guard();
        let healthy = chunk_of(3, "addr");
        checks
            .check_fetched(healthy.clone(), bytes(&healthy))
            .expect("a healthy chunk");
        let tail = crafted.len() as u64 - 8..crafted.len() as u64;
        checks
            .check_fetched(tail.clone(), bytes(&tail))
            .expect("no chunk");
        let (rg_start, rg_len) = (
            meta.row_group(4).column(0).byte_range().0,
            meta.row_group(4).compressed_size() as u64,
        );
        let row_group = rg_start..rg_start + rg_len;
        checks
            .check_fetched(row_group.clone(), bytes(&row_group))
            .expect("a whole row group");
        let err = checks
            .check_fetched(addr.clone(), bytes(&addr))
            .expect_err("the crafted chunk");
        assert!(err.to_string().ends_with(refused), "{err}");
        // Fetched in part (a page the page index chose): walked from the file.
        let part = addr.end - 10..addr.end;
        let err = guard()
            .check_fetched(part.clone(), bytes(&part))
            .expect_err("part of the crafted chunk");
        assert!(err.to_string().ends_with(refused), "{err}");
        // Each chunk once: bytes fetched again are not walked again (here, bytes that would
        // not decode as pages at all are taken as the chunk already walked).
        checks
            .check_fetched(healthy.clone(), &vec![0xff; bytes(&healthy).len()])
            .expect("walked before");
        // The whole file, for a reader of whole row groups: refused, and an intact file passes
        // and is not walked again.
        let err = checks
            .check_all(&File::open(&path).expect("open"))
            .expect_err("the whole file");
        assert!(err.to_string().ends_with(refused), "{err}");
        std::fs::write(&path, &file).expect("write intact");
        let intact = guard();
        intact
            .check_all(&File::open(&path).expect("open"))
            .expect("an intact file");
        intact
            .check_fetched(addr.clone(), &vec![0xff; bytes(&addr).len()])
            .expect("walked with the file");
    }

    #[test]
    fn a_guard_counts_the_row_group_limit_over_the_chunks_it_walked() {
        let file = capture();
        let meta = Arc::new(metadata(&file));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.parquet");
        std::fs::write(&path, &file).expect("write");
        let limits = Limits {
            max_page: MAX_PAGE_BYTES,
            max_row_group: MAX_ROW_GROUP_PAGE_BYTES,
        };
        let largest = |column: usize| {
            walk_chunk(&path, &file, &meta, 0, column, limits, &mut Vec::new()).expect("walk")
        };
        let (first, second) = (largest(0), largest(1));
        let limits = Limits {
            max_page: MAX_PAGE_BYTES,
            max_row_group: first + second - 1,
        };
        let checks = PageGuard::with_limits(&path, Arc::clone(&meta), limits);
        let fetch = |column: usize| {
            let (start, len) = meta.row_group(0).column(column).byte_range();
            checks.check_fetched(
                start..start + len,
                &file[start as usize..(start + len) as usize],
            )
        };
        fetch(0).expect("one column is within the limit");
        fetch(0).expect("the same column again counts once");
        let err = fetch(1).expect_err("two columns together are past it");
        assert!(
            err.to_string()
                .contains(&format!("row group 0 declare {} bytes", first + second)),
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
        // Opened from a local file, without the walk: the file opens, and the page is refused
        // when it is read, by rows or by chunk, with the same message.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.parquet");
        std::fs::write(&path, &crafted).expect("write");
        let deferred = CaptureReader::open_deferred(&path).expect("opens without the walk");
        let Err(by_rows) = deferred.batches() else {
            panic!("refused when read by rows");
        };
        let guard = deferred.page_guard().expect("checks still to make");
        let chunk = at as u64..at as u64 + column.byte_range().1;
        let by_chunk = guard
            .check_fetched(chunk.clone(), &crafted[at..chunk.end as usize])
            .expect_err("refused when its chunk is fetched");
        let Err(eager) = CaptureReader::open(&path) else {
            panic!("refused at open");
        };
        assert_eq!(by_rows.to_string(), eager.to_string());
        assert_eq!(by_chunk.to_string(), eager.to_string());
        let Err(err) = CaptureReader::from_bytes(crafted) else {
            panic!("refused");
        };
        assert_eq!(
            err.to_string(),
            "<memory>: truncated or damaged Parquet file: a page of column addr in row group 0 \
             declares 1073741824 bytes decompressed; a capture's pages hold at most 67108864"
        );
        assert_eq!(
            eager.to_string(),
            err.to_string()
                .replace("<memory>", &path.display().to_string())
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
