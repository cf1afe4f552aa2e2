//! Captures that are not local files (objects in a store such as S3), opened from ranged reads:
//! the footer and the page headers, never the whole object.
//!
//! This crate does no networking: whoever holds the connection implements [`RangeSource`], and
//! [`CaptureReader::open_ranges`](crate::reader::CaptureReader::open_ranges) runs the same checks
//! as for a local file through it (magic, footer, the ranges the footer places, every page
//! header's declared sizes and the offset index, the metadata's size, version and schema).
//!
//! What is read: the first 4 and the last 8 bytes, then the footer, then the offset index, then,
//! row group by row group, the first 256 bytes of every page the offset index places (and of each column chunk, where its dictionary page starts), ranges less than
//! [`MERGE_GAP`] apart being read as one. A header longer than that, or a file without an
//! offset index, costs a read per header.

use std::{
    io,
    ops::Range,
    sync::{Mutex, MutexGuard},
};

use bytes::Bytes;
use parquet::{
    errors::ParquetError,
    file::reader::{ChunkReader, Length},
};

use crate::pages::HeaderSource;

/// Header ranges closer than this are read as one range: one request instead of several, for
/// a few KiB more.
pub const MERGE_GAP: u64 = 32 << 10;

/// The most bytes read as a stream: the footer and what follows it.
const MAX_STREAM: u64 = 64 << 20;

/// Byte ranges of one object, read by whoever holds the connection.
pub trait RangeSource: Send + Sync {
    /// The object's length in bytes.
    fn size(&self) -> u64;

    /// The bytes of each range, in order (each range lies within the object). A failure is
    /// the error to report, one line.
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Bytes>>;
}

/// A [`RangeSource`] with the ranges read so far kept, as the parquet reader and the page walk
/// want them: the footer and the page index for the whole opening, the page headers of one
/// row group at a time.
pub(crate) struct Ranged<'s> {
    source: &'s dyn RangeSource,
    len: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Ranges read before the page walk (the footer, the offset index).
    kept: Vec<(u64, Bytes)>,
    /// The page headers of the row group being walked.
    window: Vec<(u64, Bytes)>,
    /// Whether the page walk has started: what is read then goes to `window`.
    walking: bool,
    /// The first read that failed; the opening reports it rather than what parquet made of it.
    error: Option<io::Error>,
}

impl<'s> Ranged<'s> {
    pub(crate) fn new(source: &'s dyn RangeSource) -> Self {
        Self {
            len: source.size(),
            source,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The first read that failed, if one did.
    pub(crate) fn take_error(&self) -> Option<io::Error> {
        self.state().error.take()
    }

    /// The bytes `start..start + len` (cut at the object's end), from what was read or read now.
    fn bytes(&self, start: u64, len: u64) -> io::Result<Bytes> {
        let end = start.saturating_add(len).min(self.len);
        if start > end {
            return Err(io::Error::other(format!(
                "a read at byte {start}, past the end ({})",
                self.len
            )));
        }
        let state = self.state();
        if let Some((bytes, within)) =
            piece_holding(state.kept.iter().chain(&state.window), start..end)
        {
            return Ok(bytes.slice(within));
        }
        drop(state);
        let read = self.source.read_ranges(std::slice::from_ref(&(start..end)));
        let mut state = self.state();
        match read.and_then(|mut pieces| pieces.pop().ok_or_else(|| io::Error::other("no data"))) {
            Ok(bytes) => {
                let keep = if state.walking {
                    &mut state.window
                } else {
                    &mut state.kept
                };
                keep.push((start, bytes.clone()));
                Ok(bytes)
            }
            Err(err) => {
                let again = io::Error::new(err.kind(), err.to_string());
                state.error.get_or_insert(err);
                Err(again)
            }
        }
    }
}

impl Length for Ranged<'_> {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Ranged<'_> {
    type T = io::Cursor<Bytes>;

    /// Parquet reads the footer (and the page index) through this: the rest of the object from
    /// `start`, which is refused past [`MAX_STREAM`] (it would be a column chunk, not a footer).
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let rest = self.len.saturating_sub(start);
        if rest > MAX_STREAM {
            return Err(ParquetError::General(format!(
                "a read of {rest} bytes from byte {start}: more than a footer"
            )));
        }
        self.bytes(start, rest)
            .map(io::Cursor::new)
            .map_err(|err| ParquetError::External(Box::new(err)))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.bytes(start, length as u64)
            .map_err(|err| ParquetError::External(Box::new(err)))
    }
}

impl HeaderSource for Ranged<'_> {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize {
        match self.bytes(at, buf.len() as u64) {
            Ok(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                bytes.len()
            }
            Err(_) => 0,
        }
    }

    fn prefetch(&self, ranges: &[Range<u64>]) {
        let merged = merge(ranges, self.len);
        {
            let mut state = self.state();
            state.walking = true;
            state.window.clear();
            if state.error.is_some() || merged.is_empty() {
                return;
            }
        }
        let read = self.source.read_ranges(&merged);
        let mut state = self.state();
        match read {
            Ok(pieces) => {
                state.window = merged.iter().map(|r| r.start).zip(pieces).collect();
            }
            Err(err) => {
                state.error.get_or_insert(err);
            }
        }
    }
}

/// `ranges` sorted, cut at `len`, and joined where less than [`MERGE_GAP`] apart.
fn merge(ranges: &[Range<u64>], len: u64) -> Vec<Range<u64>> {
    merge_within(ranges, len, MERGE_GAP)
}

/// The piece, among `(offset, bytes)` pieces read earlier, that holds all of `range`, and where
/// `range` lies in it.
pub(crate) fn piece_holding<'p, B: AsRef<[u8]> + 'p>(
    pieces: impl IntoIterator<Item = &'p (u64, B)>,
    range: Range<u64>,
) -> Option<(&'p B, Range<usize>)> {
    pieces.into_iter().find_map(|(at, bytes)| {
        let piece_end = at.saturating_add(bytes.as_ref().len() as u64);
        if *at <= range.start && range.end <= piece_end {
            let from = usize::try_from(range.start - at).ok()?;
            let to = usize::try_from(range.end - at).ok()?;
            Some((bytes, from..to))
        } else {
            None
        }
    })
}

/// `ranges` sorted, cut at `len`, and joined where less than `gap` apart.
pub(crate) fn merge_within(ranges: &[Range<u64>], len: u64, gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges
        .iter()
        .map(|r| r.start.min(len)..r.end.min(len))
        .filter(|r| r.start < r.end)
        .collect();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{
        FormatError,
        event::Event,
        metadata::CaptureMetadata,
        reader::CaptureReader,
        writer::{CaptureWriter, WriterConfig},
    };

    /// The name the tests open objects as.
    pub(crate) const URL: &str = "s3://bucket/key.parquet";

    /// An object in memory that counts its reads and can be made to fail.
    pub(crate) struct Object {
        data: Bytes,
        pub(crate) requests: AtomicUsize,
        pub(crate) bytes: AtomicUsize,
        fail: bool,
    }

    impl Object {
        pub(crate) fn new(data: Bytes) -> Self {
            Self {
                data,
                requests: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                fail: false,
            }
        }
    }

    impl RangeSource for Object {
        fn size(&self) -> u64 {
            self.data.len() as u64
        }

        fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Bytes>> {
            if self.fail {
                return Err(io::Error::other("connection refused"));
            }
            self.requests.fetch_add(ranges.len(), Ordering::Relaxed);
            ranges
                .iter()
                .map(|r| {
                    let (start, end) = (r.start as usize, r.end as usize);
                    assert!(
                        start <= end && end <= self.data.len(),
                        "{r:?} within the object"
                    );
                    self.bytes.fetch_add(end - start, Ordering::Relaxed);
                    Ok(self.data.slice(start..end))
                })
                .collect()
        }
    }

    /// Opens `data` as the object [`URL`].
    pub(crate) fn open_remote(data: Bytes) -> Result<CaptureReader, FormatError> {
        CaptureReader::open_ranges(URL, &Object::new(data))
    }

    /// A capture of `rows` rows in row groups of `per_group`, with long paths that do not
    /// compress (pages of some hundred KiB).
    fn capture(rows: u64, per_group: usize) -> Bytes {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let config = WriterConfig {
            row_group_rows: per_group,
            ..WriterConfig::default()
        };
        let mut writer = CaptureWriter::new(Vec::new(), config).expect("writer");
        for i in 0..rows {
            writer
                .push(&Event {
                    ts_ns: 1_700_000_000_000_000_000 + i as i64,
                    pid: 7 + (i / per_group as u64) as u32,
                    file_path: Some(
                        (0..8)
                            .map(|_| format!("{:016x}", noise()))
                            .collect::<Vec<_>>()
                            .join("/")
                            .into(),
                    ),
                    ..Default::default()
                })
                .expect("push");
        }
        Bytes::from(writer.finish(&CaptureMetadata::default()).expect("finish"))
    }

    #[test]
    fn an_object_opens_from_its_footer_and_page_headers_only() {
        let data = capture(60_000, 20_000);
        let local = CaptureReader::from_bytes(data.clone()).expect("open in memory");
        let object = Object::new(data.clone());
        let remote = CaptureReader::open_ranges(URL, &object).expect("open from ranges");
        assert_eq!(remote.path().to_str(), Some(URL));
        assert!(remote.is_remote() && !local.is_remote());
        assert_eq!(remote.num_rows(), local.num_rows());
        assert_eq!(remote.num_row_groups(), 3);
        assert_eq!(remote.metadata(), local.metadata());
        let requests = object.requests.load(Ordering::Relaxed);
        let bytes = object.bytes.load(Ordering::Relaxed);
        eprintln!(
            "opened from {requests} reads of {bytes} bytes, of {}",
            data.len()
        );
        // The head, the tail, the footer, the offset index, a few per row group.
        assert!(requests < 40, "{requests} reads");
        assert!(
            bytes * 4 < data.len(),
            "{bytes} of {} bytes read",
            data.len()
        );
        assert!(remote.batches().is_err(), "rows are the engine's to read");
    }

    #[test]
    fn a_failed_read_is_an_io_error_naming_the_object() {
        let object = Object {
            fail: true,
            ..Object::new(capture(10, 10))
        };
        let err = CaptureReader::open_ranges(URL, &object).expect_err("fails");
        assert!(matches!(err, FormatError::FileIo { .. }), "{err:?}");
        assert!(err.to_string().starts_with(URL), "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
        let short = CaptureReader::open_ranges(URL, &Object::new(Bytes::from_static(b"PAR1")))
            .expect_err("too short");
        assert!(matches!(short, FormatError::Truncated { .. }), "{short:?}");
    }

    #[test]
    fn close_ranges_are_read_as_one() {
        let ranges = [0..10, 100..356, 200_000..200_256, 40..50, 300_000..400_000];
        assert_eq!(
            merge(&ranges, 350_000),
            [0..356, 200_000..200_256, 300_000..350_000]
        );
    }
}
