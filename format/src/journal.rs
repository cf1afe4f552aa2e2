//! The crash-safety journal: a companion file `<capture>.journal` that a journaled
//! [`crate::writer::CaptureWriter`] appends one self-checking frame to after every row group it
//! writes, so that [`crate::recover::recover`] can complete a capture whose writer died before
//! writing the footer.
//!
//! Layout (all integers little-endian; docs/FORMAT.md, "Crash safety", is the reference):
//!
//! ```text
//! header  16 bytes   magic "MMCAPJNL" | u32 version (1) | u32 CRC-32 of the 12 bytes before
//! frame   52 + n     magic "JFRM" | u32 n | u64 seq | u64 data_len | u64 rows | u32 row_groups
//!                    | u32 new_row_groups | i64 time_ns | payload (n bytes) | u32 CRC-32
//! ```
//!
//! The payload of a frame is a Parquet footer, as [`ParquetMetaDataWriter`] writes it (Thrift
//! `FileMetaData`, its length, `PAR1`), whose row groups are the ones written since the previous
//! frame and whose key-value metadata is the capture metadata at the time (frame 0, written when
//! the writer starts, has no row groups and also holds the `ARROW:schema` key).

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use parquet::{
    file::metadata::{
        FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
        RowGroupMetaData,
    },
    schema::types::SchemaDescPtr,
};

use crate::{
    FormatError,
    metadata::{CaptureMetadata, FormatVersion},
};

/// What [`journal_path`] appends to the capture's file name.
pub const JOURNAL_SUFFIX: &str = ".journal";
/// The first 8 bytes of a journal.
pub const JOURNAL_MAGIC: &[u8; 8] = b"MMCAPJNL";
/// The journal layout version this crate writes and reads.
pub const JOURNAL_VERSION: u32 = 1;
/// Bytes of the journal header.
pub const HEADER_LEN: usize = 16;
/// The first 4 bytes of every frame.
pub const FRAME_MAGIC: &[u8; 4] = b"JFRM";
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 48;
/// Bytes of a frame besides its payload (header and CRC).
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + 4;
/// The largest payload a reader accepts; a larger length is taken for damage.
pub const MAX_PAYLOAD_LEN: u32 = 256 << 20;

/// The journal of a capture: its path with `.journal` appended
/// (`capture.parquet` -> `capture.parquet.journal`).
pub fn journal_path(capture: &Path) -> PathBuf {
    let mut name = OsString::from(capture.as_os_str());
    name.push(JOURNAL_SUFFIX);
    PathBuf::from(name)
}

/// Creates (or truncates) a capture file and its journal, both opened for reading and writing,
/// and syncs their directory so that both names survive a crash. Hand the two files to
/// [`crate::writer::CaptureWriter::with_journal`].
pub fn create(capture: &Path) -> Result<(File, File), FormatError> {
    let journal = journal_path(capture);
    let open = |path: &Path| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|source| FormatError::FileIo {
                path: path.to_path_buf(),
                source,
            })
    };
    let data = open(capture)?;
    let journal_file = open(&journal)?;
    sync_parent_dir(capture)?;
    Ok((data, journal_file))
}

/// fsyncs the directory holding `path`, so that a created or removed name is durable.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<(), FormatError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| FormatError::FileIo {
            path: dir.to_path_buf(),
            source,
        })
}

/// Wall-clock ns since the Unix epoch, saturating.
fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
    }
}

fn header_bytes() -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(JOURNAL_MAGIC);
    header[8..12].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The Parquet layout facts every frame needs, fixed for the life of a writer.
pub(crate) struct FileTemplate {
    pub schema_descr: SchemaDescPtr,
    pub created_by: String,
    pub writer_version: i32,
    /// The `ARROW:schema` key-value pair, stored in frame 0.
    pub arrow_schema: KeyValue,
}

/// The writing side, owned by a journaled [`crate::writer::CaptureWriter`].
pub(crate) struct JournalWriter {
    journal: File,
    /// A second handle on the capture file, to fdatasync it.
    data: File,
    template: FileTemplate,
    /// Bytes of the header and the complete frames.
    len: u64,
    /// A failed append may have left bytes after `len`: cut them before the next one.
    torn: bool,
    next_seq: u64,
    row_groups: usize,
    rows: u64,
    kv: Vec<KeyValue>,
    /// `set_metadata` was called after the last frame.
    metadata_changed: bool,
}

impl JournalWriter {
    /// Truncates the journal, writes its header and frame 0 (no row groups, `metadata`), syncs.
    pub fn start(
        journal: File,
        data: File,
        template: FileTemplate,
        metadata: &CaptureMetadata,
    ) -> Result<Self, FormatError> {
        journal.set_len(0)?;
        journal.write_all_at(&header_bytes(), 0)?;
        let mut writer = Self {
            journal,
            data,
            template,
            len: HEADER_LEN as u64,
            torn: false,
            next_seq: 0,
            row_groups: 0,
            rows: 0,
            kv: Vec::new(),
            metadata_changed: false,
        };
        writer.set_metadata(metadata);
        writer.append(&[], 0)?;
        Ok(writer)
    }

    /// The capture metadata for the next frames. The stored format version is always
    /// [`FormatVersion::CURRENT`], as [`crate::writer::CaptureWriter::finish`] stores it.
    pub fn set_metadata(&mut self, metadata: &CaptureMetadata) {
        let metadata = CaptureMetadata {
            format_version: FormatVersion::CURRENT,
            ..metadata.clone()
        };
        self.kv = metadata
            .to_key_values()
            .into_iter()
            .map(|(key, value)| KeyValue::new(key, value))
            .collect();
        self.metadata_changed = true;
    }

    /// After the writer wrote row groups: `flushed` is every row group of the file so far,
    /// `data_len` the bytes of the capture file. Journals the new row groups, if any (or the
    /// metadata alone when `set_metadata` was called since the last frame): fdatasync of the
    /// capture file, one frame appended, fdatasync of the journal.
    pub fn commit(
        &mut self,
        flushed: &[RowGroupMetaData],
        data_len: u64,
    ) -> Result<(), FormatError> {
        let new = flushed.get(self.row_groups..).unwrap_or_default();
        if new.is_empty() && !self.metadata_changed {
            return Ok(());
        }
        self.data.sync_data()?;
        self.append(new, data_len)
    }

    fn append(&mut self, new: &[RowGroupMetaData], data_len: u64) -> Result<(), FormatError> {
        let new_rows: u64 = new
            .iter()
            .map(|rg| u64::try_from(rg.num_rows()).unwrap_or(0))
            .sum();
        let rows = self.rows + new_rows;
        let row_groups = self.row_groups + new.len();
        let mut kv = Vec::with_capacity(self.kv.len() + 1);
        if self.next_seq == 0 {
            kv.push(self.template.arrow_schema.clone());
        }
        kv.extend(self.kv.iter().cloned());
        let file_metadata = FileMetaData::new(
            self.template.writer_version,
            i64::try_from(new_rows).unwrap_or(i64::MAX),
            Some(self.template.created_by.clone()),
            Some(kv),
            self.template.schema_descr.clone(),
            None,
        );
        let footer = ParquetMetaData::new(file_metadata, new.to_vec());

        let mut frame = Vec::with_capacity(FRAME_OVERHEAD + 4096 * (new.len() + 1));
        frame.extend_from_slice(FRAME_MAGIC);
        frame.extend_from_slice(&[0; 4]); // payload length, filled in below
        frame.extend_from_slice(&self.next_seq.to_le_bytes());
        frame.extend_from_slice(&data_len.to_le_bytes());
        frame.extend_from_slice(&rows.to_le_bytes());
        frame.extend_from_slice(&count_u32(row_groups)?.to_le_bytes());
        frame.extend_from_slice(&count_u32(new.len())?.to_le_bytes());
        frame.extend_from_slice(&now_ns().to_le_bytes());
        ParquetMetaDataWriter::new(&mut frame, &footer).finish()?;
        let payload_len = frame.len() - FRAME_HEADER_LEN;
        let payload_len = u32::try_from(payload_len)
            .ok()
            .filter(|len| *len <= MAX_PAYLOAD_LEN)
            .ok_or_else(|| {
                FormatError::InvalidConfig(format!(
                    "a journal frame of {payload_len} bytes: too many row groups between flushes"
                ))
            })?;
        frame[4..8].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());

        if self.torn {
            self.journal.set_len(self.len)?;
        }
        // Until the frame is written and synced, bytes past `len` may be a torn frame.
        self.torn = true;
        self.journal.write_all_at(&frame, self.len)?;
        self.journal.sync_data()?;
        self.torn = false;

        self.len += frame.len() as u64;
        self.next_seq += 1;
        self.row_groups = row_groups;
        self.rows = rows;
        self.metadata_changed = false;
        Ok(())
    }

    /// fdatasync of the capture file (after the footer is written).
    pub fn sync_data_file(&self) -> Result<(), FormatError> {
        Ok(self.data.sync_data()?)
    }
}

fn count_u32(n: usize) -> Result<u32, FormatError> {
    u32::try_from(n).map_err(|_| FormatError::InvalidConfig(format!("{n} row groups")))
}

/// One valid frame, decoded.
#[derive(Debug)]
pub struct Frame {
    pub data_len: u64,
    /// Rows in all row groups up to and including this frame's.
    pub rows: u64,
    /// Row groups up to and including this frame's.
    pub row_groups: usize,
    pub time_ns: i64,
    /// The payload: this frame's row groups and the capture metadata at the time.
    pub footer: ParquetMetaData,
}

/// Reads a journal's valid frames, stopping at the first one that is torn, corrupt or
/// inconsistent with the frames before it (that frame and every byte after it are ignored).
/// An error only for a bad header.
///
/// [`crate::recover::recover`] runs it on the bytes of a journal (inside
/// [`crate::guard::catch`]: the Parquet footer decoder asserts on some malformed payloads); it is
/// public so that fuzzing can run it alone.
pub fn read(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    if bytes[..8] != JOURNAL_MAGIC[..] {
        return Err("no journal magic (not an mmap-capture journal)".to_owned());
    }
    if bytes[..HEADER_LEN] != header_bytes()[..] {
        let version = u32::from_le_bytes(le_array(&bytes[8..12]));
        return Err(if version == JOURNAL_VERSION {
            "damaged header (CRC mismatch)".to_owned()
        } else {
            format!("journal version {version} (this reader reads version {JOURNAL_VERSION})")
        });
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match read_frame(&bytes[at..], frames.last(), frames.len()) {
            Ok((frame, len)) => {
                frames.push(frame);
                at += len;
            }
            Err(_torn_or_corrupt) => break,
        }
    }
    Ok(frames)
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(&bytes[..N]);
    array
}

/// Decodes the frame at the start of `bytes`; returns it and its length.
fn read_frame(
    bytes: &[u8],
    previous: Option<&Frame>,
    seq: usize,
) -> Result<(Frame, usize), String> {
    if bytes.len() < FRAME_OVERHEAD {
        return Err(format!("torn ({} bytes)", bytes.len()));
    }
    if bytes[..4] != FRAME_MAGIC[..] {
        return Err("no frame magic".to_owned());
    }
    let u32_at = |at: usize| u32::from_le_bytes(le_array(&bytes[at..at + 4]));
    let u64_at = |at: usize| u64::from_le_bytes(le_array(&bytes[at..at + 8]));
    let payload_len = u32_at(4);
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(format!("payload length {payload_len} out of range"));
    }
    let payload_len = payload_len as usize;
    let len = FRAME_OVERHEAD + payload_len;
    if bytes.len() < len {
        return Err(format!("torn ({} of its {len} bytes present)", bytes.len()));
    }
    let stored_crc = u32_at(FRAME_HEADER_LEN + payload_len);
    if crc32fast::hash(&bytes[..FRAME_HEADER_LEN + payload_len]) != stored_crc {
        return Err("CRC mismatch".to_owned());
    }
    let frame_seq = u64_at(8);
    let data_len = u64_at(16);
    let rows = u64_at(24);
    let row_groups = u32_at(32) as usize;
    let new_row_groups = u32_at(36) as usize;
    let time_ns = i64::from_le_bytes(le_array(&bytes[40..48]));
    if frame_seq != seq as u64 {
        return Err(format!("sequence number {frame_seq}, expected {seq}"));
    }
    let (prev_rows, prev_groups, prev_len) =
        previous.map_or((0, 0, 0), |p| (p.rows, p.row_groups, p.data_len));
    if row_groups != prev_groups + new_row_groups || rows < prev_rows || data_len < prev_len {
        return Err("counts inconsistent with the frames before it".to_owned());
    }
    let payload = &bytes[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload_len];
    let footer = payload
        .len()
        .checked_sub(8)
        .filter(|_| payload.ends_with(b"PAR1"))
        .ok_or_else(|| "payload is not a Parquet footer".to_owned())
        .and_then(|end| {
            ParquetMetaDataReader::decode_metadata(&payload[..end])
                .map_err(|e| format!("payload does not decode: {e}"))
        })?;
    if footer.num_row_groups() != new_row_groups {
        return Err(format!(
            "{} row groups in the payload, {new_row_groups} in the header",
            footer.num_row_groups()
        ));
    }
    let payload_rows: i64 = footer.row_groups().iter().map(|rg| rg.num_rows()).sum();
    if u64::try_from(payload_rows).ok() != Some(rows - prev_rows) {
        return Err(format!(
            "{payload_rows} rows in the payload, {} in the header",
            rows - prev_rows
        ));
    }
    if let Some(previous) = previous
        && previous.footer.file_metadata().schema() != footer.file_metadata().schema()
    {
        return Err("schema differs from frame 0's".to_owned());
    }
    // Every column chunk must lie inside the data the frame covers.
    for rg in footer.row_groups() {
        for column in rg.columns() {
            let (start, chunk_len) = column.byte_range();
            if start < 4 || start.saturating_add(chunk_len) > data_len {
                return Err(format!(
                    "column chunk at bytes {start}..{} outside the {data_len} bytes it covers",
                    start.saturating_add(chunk_len)
                ));
            }
        }
    }
    Ok((
        Frame {
            data_len,
            rows,
            row_groups,
            time_ns,
            footer,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_path_appends_the_suffix() {
        assert_eq!(
            journal_path(Path::new("/tmp/cap.parquet")),
            Path::new("/tmp/cap.parquet.journal")
        );
        assert_eq!(journal_path(Path::new("x")), Path::new("x.journal"));
    }

    #[test]
    fn header_is_checked() {
        let header = header_bytes();
        assert_eq!(&header[..8], b"MMCAPJNL");
        let frames = read(&header).expect("a header alone is a journal without frames");
        assert!(frames.is_empty());

        let err = read(&header[..10]).expect_err("short");
        assert!(err.contains("shorter than the 16-byte header"), "{err}");
        let mut other = header;
        other[0] = b'X';
        assert!(read(&other).expect_err("magic").contains("magic"));
        let mut damaged = header;
        damaged[13] ^= 1;
        assert!(read(&damaged).expect_err("crc").contains("CRC"));
        let mut newer = header;
        newer[8] = 2;
        assert!(
            read(&newer)
                .expect_err("version")
                .contains("journal version 2")
        );
    }

    #[test]
    fn garbage_after_the_header_is_a_stop_not_an_error() {
        let mut bytes = header_bytes().to_vec();
        bytes.extend_from_slice(b"JFRM\x01");
        assert!(read(&bytes).expect("read").is_empty());
        assert_eq!(
            read_frame(&bytes[HEADER_LEN..], None, 0).expect_err("torn"),
            "torn (5 bytes)"
        );
        let mut long = b"JFRM".to_vec();
        long.extend_from_slice(&100u32.to_le_bytes());
        long.resize(FRAME_OVERHEAD + 10, 0);
        assert_eq!(
            read_frame(&long, None, 0).expect_err("torn"),
            "torn (62 of its 152 bytes present)"
        );
    }
}
