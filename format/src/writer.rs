//! Writes captures: rows are buffered in Arrow builders and written as Parquet row groups.

use std::{io::Write, sync::Arc};

use arrow_array::{
    ArrayRef, DictionaryArray, RecordBatch, StringArray,
    builder::{
        Int32Builder, Int64Builder, StringDictionaryBuilder, TimestampNanosecondBuilder,
        UInt32Builder, UInt64Builder,
    },
    types::Int32Type,
};
use arrow_schema::SchemaRef;
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::{
        metadata::KeyValue,
        properties::{DEFAULT_CREATED_BY, EnabledStatistics, WriterProperties},
    },
    schema::types::ColumnPath,
};

use crate::{
    FormatError,
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, FormatVersion},
    schema::{TIMEZONE, col, schema},
};

/// The Parquet `created_by` string of capture files, e.g.
/// `mmap-capture version 0.1.0 (build parquet-rs version 59.3.2)`.
pub fn created_by() -> String {
    format!(
        "mmap-capture version {} (build {DEFAULT_CREATED_BY})",
        env!("CARGO_PKG_VERSION")
    )
}

/// How captures are written.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Rows per row group (a row group is also cut at every [`CaptureWriter::flush`]).
    pub row_group_rows: usize,
    /// zstd compression level (1..=22; default 3).
    pub zstd_level: i32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            row_group_rows: 65536,
            zstd_level: 3,
        }
    }
}

/// Columns written without dictionary encoding (all others use it).
pub const NO_DICTIONARY_COLUMNS: [&str; 3] = [col::TS, col::TS_EXIT, col::RET];

/// The largest `row_group_rows`: dictionary keys are `Int32`.
pub const MAX_ROW_GROUP_ROWS: usize = i32::MAX as usize;

/// Writes one capture file into a sink.
///
/// Dropping the writer without [`CaptureWriter::finish`] leaves a file without footer, which no
/// reader opens.
pub struct CaptureWriter<W: Write + Send> {
    writer: ArrowWriter<CountingWriter<W>>,
    schema: SchemaRef,
    builders: Builders,
    row_group_rows: usize,
    buffered: usize,
    rows_written: u64,
}

impl<W: Write + Send> std::fmt::Debug for CaptureWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("row_group_rows", &self.row_group_rows)
            .field("buffered", &self.buffered)
            .field("rows_written", &self.rows_written)
            .field("bytes_written", &self.bytes_written())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> CaptureWriter<W> {
    /// Starts a capture in `sink`. Nothing reaches the sink before the first row group (the
    /// Parquet magic goes with it).
    pub fn new(sink: W, config: WriterConfig) -> Result<Self, FormatError> {
        if config.row_group_rows == 0 || config.row_group_rows > MAX_ROW_GROUP_ROWS {
            return Err(FormatError::InvalidConfig(format!(
                "row_group_rows must be in 1..={MAX_ROW_GROUP_ROWS}, not {}",
                config.row_group_rows
            )));
        }
        let level = ZstdLevel::try_new(config.zstd_level).map_err(|e| {
            FormatError::InvalidConfig(format!("zstd level {}: {e}", config.zstd_level))
        })?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_max_row_group_bytes(None)
            .set_created_by(created_by());
        // Nearly every value of these columns is distinct: a dictionary would only be built to
        // be thrown away when it outgrows its page.
        for column in NO_DICTIONARY_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let props = props.build();
        let schema = schema();
        let writer = ArrowWriter::try_new(
            CountingWriter {
                inner: sink,
                count: 0,
            },
            Arc::clone(&schema),
            Some(props),
        )?;
        Ok(Self {
            writer,
            schema,
            builders: Builders::new(config.row_group_rows.min(8192)),
            row_group_rows: config.row_group_rows,
            buffered: 0,
            rows_written: 0,
        })
    }

    /// Buffers one row; writes a row group when row_group_rows are buffered.
    pub fn push(&mut self, event: &Event<'_>) -> Result<(), FormatError> {
        self.builders.append(event)?;
        self.buffered += 1;
        self.rows_written += 1;
        if self.buffered >= self.row_group_rows {
            self.write_row_group()?;
        }
        Ok(())
    }

    /// Writes buffered rows (if any) as a row group and flushes it to the sink.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        if self.buffered > 0 {
            self.write_row_group()?;
        }
        Ok(())
    }

    /// Rows pushed so far (written or buffered).
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Rows pushed but not yet written as a row group.
    pub fn rows_buffered(&self) -> usize {
        self.buffered
    }

    /// Bytes handed to the sink so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.inner().count
    }

    /// Flushes, stores the metadata as key-value pairs, writes the footer; returns the sink.
    ///
    /// The stored format version is always [`FormatVersion::CURRENT`], the version of the rows
    /// this writer wrote, whatever `metadata.format_version` says.
    pub fn finish(mut self, metadata: &CaptureMetadata) -> Result<W, FormatError> {
        self.flush()?;
        let metadata = CaptureMetadata {
            format_version: FormatVersion::CURRENT,
            ..metadata.clone()
        };
        for (key, value) in metadata.to_key_values() {
            self.writer
                .append_key_value_metadata(KeyValue::new(key, value));
        }
        let mut sink = self.writer.into_inner()?;
        sink.flush()?;
        Ok(sink.inner)
    }

    fn write_row_group(&mut self) -> Result<(), FormatError> {
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), self.builders.finish()?)?;
        self.buffered = 0;
        self.writer.write(&batch)?;
        self.writer.flush()?;
        self.writer.sync()?;
        Ok(())
    }
}

/// Counts the bytes handed to the sink.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.count += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A `Dictionary(Int32, Utf8)` column over a fixed list of names (the enum columns): appending
/// is pushing an integer, with no string hashing.
struct FixedDictionary {
    keys: Int32Builder,
    values: ArrayRef,
}

impl FixedDictionary {
    fn new(rows: usize, names: &[&str]) -> Self {
        Self {
            keys: Int32Builder::with_capacity(rows),
            values: Arc::new(StringArray::from(names.to_vec())),
        }
    }

    #[inline]
    fn append(&mut self, index: usize) {
        // The enums have a handful of variants: the index always fits.
        self.keys.append_value(index as i32);
    }

    fn append_null(&mut self) {
        self.keys.append_null();
    }

    fn finish(&mut self) -> Result<DictionaryArray<Int32Type>, FormatError> {
        Ok(DictionaryArray::try_new(
            self.keys.finish(),
            Arc::clone(&self.values),
        )?)
    }
}

/// One builder per column, in schema order.
struct Builders {
    kind: FixedDictionary,
    syscall: FixedDictionary,
    ts: TimestampNanosecondBuilder,
    ts_exit: TimestampNanosecondBuilder,
    cpu: UInt32Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    ppid: UInt32Builder,
    uid: UInt32Builder,
    gid: UInt32Builder,
    comm: StringDictionaryBuilder<Int32Type>,
    cgroup_id: UInt64Builder,
    addr: UInt64Builder,
    len: UInt64Builder,
    prot: UInt64Builder,
    flags: UInt64Builder,
    fd: Int32Builder,
    off: UInt64Builder,
    ret: Int64Builder,
    errno: Int32Builder,
    file_dev: UInt64Builder,
    file_ino: UInt64Builder,
    file_name: StringDictionaryBuilder<Int32Type>,
}

impl Builders {
    fn new(rows: usize) -> Self {
        let dict = |values: usize, bytes: usize| {
            StringDictionaryBuilder::<Int32Type>::with_capacity(rows, values, bytes)
        };
        let ts = || TimestampNanosecondBuilder::with_capacity(rows).with_timezone(TIMEZONE);
        Self {
            kind: FixedDictionary::new(rows, &RowKind::ALL.map(RowKind::as_str)),
            syscall: FixedDictionary::new(rows, &Syscall::ALL.map(Syscall::as_str)),
            ts: ts(),
            ts_exit: ts(),
            cpu: UInt32Builder::with_capacity(rows),
            pid: UInt32Builder::with_capacity(rows),
            tid: UInt32Builder::with_capacity(rows),
            ppid: UInt32Builder::with_capacity(rows),
            uid: UInt32Builder::with_capacity(rows),
            gid: UInt32Builder::with_capacity(rows),
            comm: dict(256, 4096),
            cgroup_id: UInt64Builder::with_capacity(rows),
            addr: UInt64Builder::with_capacity(rows),
            len: UInt64Builder::with_capacity(rows),
            prot: UInt64Builder::with_capacity(rows),
            flags: UInt64Builder::with_capacity(rows),
            fd: Int32Builder::with_capacity(rows),
            off: UInt64Builder::with_capacity(rows),
            ret: Int64Builder::with_capacity(rows),
            errno: Int32Builder::with_capacity(rows),
            file_dev: UInt64Builder::with_capacity(rows),
            file_ino: UInt64Builder::with_capacity(rows),
            file_name: dict(1024, 32768),
        }
    }

    /// Appends one row. The string columns come first: they are the only fallible appends
    /// (key overflow, which `MAX_ROW_GROUP_ROWS` rules out), so a failure leaves no partial row
    /// in the other columns.
    #[inline]
    fn append(&mut self, e: &Event<'_>) -> Result<(), FormatError> {
        self.comm.append(&*e.comm)?;
        match &e.file_name {
            Some(name) => self.file_name.append(&**name).map(drop)?,
            None => self.file_name.append_null(),
        }
        self.kind.append(e.kind.index());
        match e.syscall {
            Some(syscall) => self.syscall.append(syscall.index()),
            None => self.syscall.append_null(),
        }
        self.ts.append_value(e.ts_ns);
        self.ts_exit.append_option(e.ts_exit_ns);
        self.cpu.append_value(e.cpu);
        self.pid.append_value(e.pid);
        self.tid.append_value(e.tid);
        self.ppid.append_value(e.ppid);
        self.uid.append_value(e.uid);
        self.gid.append_value(e.gid);
        self.cgroup_id.append_value(e.cgroup_id);
        self.addr.append_option(e.addr);
        self.len.append_option(e.len);
        self.prot.append_option(e.prot);
        self.flags.append_option(e.flags);
        self.fd.append_option(e.fd);
        self.off.append_option(e.off);
        self.ret.append_option(e.ret);
        self.errno.append_option(e.errno());
        self.file_dev.append_option(e.file_dev);
        self.file_ino.append_option(e.file_ino);
        Ok(())
    }

    /// The buffered columns, in schema order; the builders are left empty.
    fn finish(&mut self) -> Result<Vec<ArrayRef>, FormatError> {
        Ok(vec![
            Arc::new(self.kind.finish()?),
            Arc::new(self.syscall.finish()?),
            Arc::new(self.ts.finish()),
            Arc::new(self.ts_exit.finish()),
            Arc::new(self.cpu.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.gid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.cgroup_id.finish()),
            Arc::new(self.addr.finish()),
            Arc::new(self.len.finish()),
            Arc::new(self.prot.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.fd.finish()),
            Arc::new(self.off.finish()),
            Arc::new(self.ret.finish()),
            Arc::new(self.errno.finish()),
            Arc::new(self.file_dev.finish()),
            Arc::new(self.file_ino.finish()),
            Arc::new(self.file_name.finish()),
        ])
    }
}
