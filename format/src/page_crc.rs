//! Page checksums: a Parquet writer whose every page header carries the CRC-32 of the page.
//!
//! The Parquet `PageHeader` has an optional `crc` (field 4): the CRC-32 (zlib/IEEE polynomial)
//! of the page's bytes after the header, as stored (after compression). parquet-rs 59 verifies
//! it when reading (its `crc` feature) but never writes it. [`PageCrcWriter`] encodes row groups
//! with parquet's own Arrow column writers, then, before each column chunk goes into the file,
//! re-encodes every page header with its `crc` set and corrects what the longer headers move:
//! the chunk's sizes, its page offsets and its offset-index page locations.
//!
//! How it gets at the pages: the column writers buffer each finished page in a
//! [`PageStore`], one per column chunk, made by a [`PageStoreFactory`] the writer is given.
//! [`RecordingStores`] is that factory; its stores keep every blob they are handed (a page's
//! Thrift header, then its bytes) where the writer can take them back once the column writer is
//! closed. Each header is decoded with the Parquet Thrift types of `polars-parquet-format`,
//! checked to re-encode to exactly the bytes parquet wrote (so that no field is lost), and
//! encoded again with the CRC. The chunk is then appended with
//! [`SerializedRowGroupWriter::append_column`](parquet::file::writer::SerializedRowGroupWriter::append_column),
//! which places it in the file. Every assumption about what parquet hands the store is checked
//! against the column writer's own record of its pages; a mismatch is an error, never a file
//! with wrong offsets.
//!
//! It also compresses the pages of every column that the properties give zstd (with data page
//! v1, the capture writer's), instead of parquet: parquet makes a zstd compression context and a
//! decompression context for every column chunk it writes, and making a context costs 13-15 µs
//! on the 2-core guests this project measures on (three CPUID instructions, each a trap to the
//! hypervisor, 5.7 µs here), and a new compression context allocates its tables when it first
//! compresses. The recorder writes 49 column chunks per row group: its CPU per record went from
//! 484-513 to 434-440 ns with this (docs/PERFORMANCE.md). Those columns are encoded
//! uncompressed by parquet's column writers, and each page is compressed here with one context
//! per level for the whole file, with what parquet calls (`zstd::bulk::Compressor::new(level)`,
//! one frame a page): the page bytes are the ones parquet would write.
//!
//! A column chunk is stored compressed only when zstd makes its pages at least 1/32 smaller
//! ([`compression_pays`]); otherwise its pages are stored as encoded and the chunk's metadata says
//! UNCOMPRESSED (Parquet gives every column chunk its own codec). Readers then make no zstd
//! context for it: on the generated 10 M-row capture 23 of 60 columns have such chunks (the
//! sparse ones, `cpu`, `ts` and `ts_exit`), and a context costs a reader the same CPUID traps.

use std::{
    io::Write,
    sync::{Arc, Mutex, MutexGuard},
};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::{
    arrow::{
        ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata,
        arrow_writer::{
            ArrowColumnWriter, ArrowRowGroupWriterFactory, PageKey, PageStore, PageStoreArgs,
            PageStoreFactory, compute_leaves,
        },
    },
    basic::{Compression, ZstdLevel},
    column::writer::ColumnCloseResult,
    errors::ParquetError,
    file::{
        metadata::{KeyValue, RowGroupMetaData},
        properties::{WriterProperties, WriterVersion},
        writer::SerializedFileWriter,
    },
};
use polars_parquet_format::{
    PageHeader, PageType,
    thrift::protocol::{TCompactInputProtocol, TCompactOutputProtocol},
};

/// Writes a Parquet file one row group per [`PageCrcWriter::write_row_group`], every page
/// header with its CRC. Otherwise it writes what [`parquet::arrow::ArrowWriter`] writes with the
/// same properties (the `ARROW:schema` key included); the page bytes are the same.
pub struct PageCrcWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    columns: ArrowRowGroupWriterFactory,
    stores: Arc<RecordingStores>,
    schema: SchemaRef,
    /// The row group being written: its column writers (each holding its encoded pages) and
    /// their stores' blobs, from the first [`PageCrcWriter::write_batch`] to
    /// [`PageCrcWriter::close_row_group`].
    open: Option<(Vec<ArrowColumnWriter>, Vec<Blobs>)>,
    zstd: Zstd,
}

/// The compression this writer does in parquet's place (see the module documentation).
struct Zstd {
    /// Per leaf column: the level its pages are compressed with here; `None` for a column
    /// parquet's column writer compresses (another codec, data page v2) or nothing does.
    levels: Vec<Option<ZstdLevel>>,
    /// One context per level in use, made when first needed and kept for the whole file.
    compressors: Vec<(i32, zstd::bulk::Compressor<'static>)>,
}

impl Zstd {
    /// The context for `level`.
    fn compressor(
        &mut self,
        level: ZstdLevel,
    ) -> Result<&mut zstd::bulk::Compressor<'static>, ParquetError> {
        let level = level.compression_level();
        let at = match self.compressors.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                let compressor = zstd::bulk::Compressor::new(level)
                    .map_err(|e| general(format!("a zstd context at level {level}: {e}")))?;
                self.compressors.push((level, compressor));
                self.compressors.len() - 1
            }
        };
        Ok(&mut self.compressors[at].1)
    }
}

impl<W: Write + Send> std::fmt::Debug for PageCrcWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCrcWriter")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> PageCrcWriter<W> {
    /// Starts a Parquet file in `sink` (nothing reaches it before the first flush of the sink:
    /// the file writer buffers).
    pub fn try_new(
        sink: W,
        schema: SchemaRef,
        mut props: WriterProperties,
    ) -> Result<Self, ParquetError> {
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&schema)?;
        // Data page v2 compresses the values only, and only when that pays: parquet keeps it.
        let levels: Vec<Option<ZstdLevel>> = parquet_schema
            .columns()
            .iter()
            .map(|column| match props.compression(column.path()) {
                Compression::ZSTD(level)
                    if props.writer_version() == WriterVersion::PARQUET_1_0 =>
                {
                    Some(level)
                }
                _ => None,
            })
            .collect();
        if levels.iter().any(Option::is_some) {
            let mut builder = props.into_builder();
            for (column, level) in parquet_schema.columns().iter().zip(&levels) {
                if level.is_some() {
                    builder = builder
                        .set_column_compression(column.path().clone(), Compression::UNCOMPRESSED);
                }
            }
            props = builder.build();
        }
        add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let file =
            SerializedFileWriter::new(sink, parquet_schema.root_schema_ptr(), Arc::new(props))?;
        let stores = Arc::new(RecordingStores::default());
        let factory: Arc<dyn PageStoreFactory> = stores.clone();
        let columns = ArrowRowGroupWriterFactory::new(&file, Arc::clone(&schema))
            .with_page_store_factory(factory);
        Ok(Self {
            file,
            columns,
            stores,
            schema,
            open: None,
            zstd: Zstd {
                levels,
                compressors: Vec::new(),
            },
        })
    }

    /// Writes `batch` (of the writer's schema) as one row group, into the file writer's buffer;
    /// [`PageCrcWriter::flush`] hands it to the sink.
    pub fn write_row_group(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.write_batch(batch)?;
        self.close_row_group()
    }

    /// Encodes `batch` (of the writer's schema) into the row group being written, starting
    /// one if none is: a row group can be built from several small batches, so that the rows
    /// waiting in Arrow form stay few while row groups stay large. After an error the row
    /// group is dropped (its rows are not written).
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let result = self.encode(batch);
        if result.is_err() {
            self.open = None;
        }
        result
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let (writers, _) = match &mut self.open {
            Some(open) => open,
            None => {
                // Stores left by a failed row group must not be taken for this one's.
                self.stores.take_created()?;
                let writers = self
                    .columns
                    .create_column_writers(self.file.flushed_row_groups().len())?;
                let stores = self.stores.take_created()?;
                if stores.len() != writers.len() {
                    return Err(general(format!(
                        "{} page stores for {} column writers",
                        stores.len(),
                        writers.len()
                    )));
                }
                self.open.insert((writers, stores))
            }
        };
        let mut next = writers.iter_mut();
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                next.next()
                    .ok_or_else(|| general("more leaf columns than column writers".to_owned()))?
                    .write(&leaf)?;
            }
        }
        Ok(())
    }

    /// Closes the row group being written (the batches given to
    /// [`PageCrcWriter::write_batch`] since the last close), into the file writer's buffer;
    /// nothing when none is open.
    pub fn close_row_group(&mut self) -> Result<(), ParquetError> {
        let Some((writers, stores)) = self.open.take() else {
            return Ok(());
        };
        let mut row_group = self.file.next_row_group()?;
        for (column, (writer, blobs)) in writers.into_iter().zip(stores).enumerate() {
            let close = writer.close()?.close().clone();
            let blobs = std::mem::take(&mut *lock(&blobs)?);
            let zstd = match self.zstd.levels.get(column).copied().flatten() {
                Some(level) => Some((level, self.zstd.compressor(level)?)),
                None => None,
            };
            let (chunk, close) = checksummed_chunk(&blobs, close, zstd)?;
            drop(blobs);
            row_group.append_column(&chunk, close)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// The row groups written so far.
    pub fn flushed_row_groups(&self) -> &[RowGroupMetaData] {
        self.file.flushed_row_groups()
    }

    /// Adds a key-value pair to the footer's metadata.
    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.file.append_key_value_metadata(kv);
    }

    /// Hands what the file writer buffered to the sink.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    /// The sink.
    pub fn inner(&self) -> &W {
        self.file.inner()
    }

    /// Writes the footer and returns the sink.
    pub fn into_inner(self) -> Result<W, ParquetError> {
        self.file.into_inner()
    }
}

type Blobs = Arc<Mutex<Vec<Bytes>>>;

/// The [`PageStoreFactory`] of [`PageCrcWriter`]: it keeps a handle on the blobs of every store
/// it makes, until [`RecordingStores::take_created`].
#[derive(Debug, Default)]
struct RecordingStores {
    /// (leaf column index, its store's blobs) of the stores made since the last take.
    created: Mutex<Vec<(usize, Blobs)>>,
}

impl RecordingStores {
    /// The blobs of the stores made since the last call, in leaf column order.
    fn take_created(&self) -> Result<Vec<Blobs>, ParquetError> {
        let mut created = std::mem::take(&mut *lock(&self.created)?);
        created.sort_by_key(|(column, _)| *column);
        Ok(created.into_iter().map(|(_, blobs)| blobs).collect())
    }
}

impl PageStoreFactory for RecordingStores {
    fn create(&self, args: &PageStoreArgs<'_>) -> Result<Box<dyn PageStore>, ParquetError> {
        let blobs = Blobs::default();
        lock(&self.created)?.push((args.column_index(), Arc::clone(&blobs)));
        Ok(Box::new(RecordingStore { blobs, resident: 0 }))
    }
}

/// An in-memory [`PageStore`] whose blobs the writer can also reach.
struct RecordingStore {
    blobs: Blobs,
    resident: usize,
}

impl PageStore for RecordingStore {
    fn put(&mut self, value: Bytes) -> Result<PageKey, ParquetError> {
        let mut blobs = lock(&self.blobs)?;
        let key = PageKey::new(blobs.len() as u64);
        self.resident += value.len();
        blobs.push(value);
        Ok(key)
    }

    fn take(&mut self, key: PageKey) -> Result<Bytes, ParquetError> {
        let blobs = lock(&self.blobs)?;
        usize::try_from(key.get())
            .ok()
            .and_then(|at| blobs.get(at).cloned())
            .ok_or_else(|| general(format!("no page blob {}", key.get())))
    }

    fn memory_size(&self) -> usize {
        self.resident
    }
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, ParquetError> {
    mutex
        .lock()
        .map_err(|_| general("a page store lock was poisoned".to_owned()))
}

fn general(detail: String) -> ParquetError {
    ParquetError::General(format!("page checksums: {detail}"))
}

/// A column chunk from the `blobs` its column writer stored (header, bytes, header, bytes...,
/// in the order written: the dictionary page, if any, comes after the data pages before it),
/// laid out as it goes into the file (dictionary page first) with a CRC in every page header,
/// and `close` corrected for that layout. With `zstd`, the pages were written uncompressed and
/// each is compressed with that level and context, and the chunk says ZSTD.
fn checksummed_chunk(
    blobs: &[Bytes],
    mut close: ColumnCloseResult,
    mut zstd: Option<(ZstdLevel, &mut zstd::bulk::Compressor<'static>)>,
) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
    let pages = blobs.chunks_exact(2);
    if !pages.remainder().is_empty() {
        return Err(general(format!(
            "{} blobs, not header and bytes of each page",
            blobs.len()
        )));
    }
    let stored: usize = blobs.iter().map(Bytes::len).sum();
    if i64::try_from(stored).ok() != Some(close.metadata.compressed_size()) {
        return Err(general(format!(
            "the pages stored ({stored} bytes) are not the column chunk written ({} bytes)",
            close.metadata.compressed_size()
        )));
    }
    // Each page's bytes as they will be stored: compressed when zstd pays for the chunk.
    let mut stored_pages: Vec<Bytes> = pages.clone().map(|page| page[1].clone()).collect();
    if let Some((_, compressor)) = zstd.as_mut() {
        // One frame a page, as parquet's zstd codec compresses a page.
        let compressed = stored_pages
            .iter()
            .map(|written| {
                compressor
                    .compress(written)
                    .map(Bytes::from)
                    .map_err(|e| general(format!("zstd: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let before: usize = stored_pages.iter().map(Bytes::len).sum();
        let after: usize = compressed.iter().map(Bytes::len).sum();
        if compression_pays(before, after) {
            stored_pages = compressed;
        } else {
            zstd = None;
        }
    }
    let mut dictionary = None;
    let mut data_pages = Vec::with_capacity(blobs.len() / 2);
    // Where each data page's header was in the order written, and its length with the header.
    let mut written_at = Vec::with_capacity(blobs.len() / 2);
    let mut at = 0;
    // What the new headers add to the old ones' length (parquet counts headers in the
    // uncompressed size too).
    let mut header_growth = 0;
    for (page, bytes) in pages.zip(stored_pages) {
        let (header, written) = (&page[0], &page[1]);
        let len = header.len() + written.len();
        let (new_header, is_dictionary) =
            checksummed_header(header, written.len(), &bytes, zstd.is_some())?;
        header_growth += to_i64(new_header.len())? - to_i64(header.len())?;
        if is_dictionary {
            if dictionary.replace((new_header, bytes)).is_some() {
                return Err(general("two dictionary pages in a column chunk".to_owned()));
            }
        } else {
            data_pages.push((new_header, bytes));
            written_at.push((at, len));
        }
        at += len;
    }

    let page_len = |(header, bytes): &(Vec<u8>, Bytes)| header.len() + bytes.len();
    let dictionary_len = dictionary.as_ref().map_or(0, page_len);
    let total = dictionary_len + data_pages.iter().map(page_len).sum::<usize>();
    let mut chunk = Vec::with_capacity(total);
    if let Some((header, bytes)) = &dictionary {
        chunk.extend_from_slice(header);
        chunk.extend_from_slice(bytes);
    }
    let mut locations = Vec::with_capacity(data_pages.len());
    for (header, bytes) in &data_pages {
        locations.push((chunk.len(), header.len() + bytes.len()));
        chunk.extend_from_slice(header);
        chunk.extend_from_slice(bytes);
    }

    if let Some(index) = close.offset_index.as_mut() {
        if index.page_locations.len() != data_pages.len() {
            return Err(general(format!(
                "{} data pages stored, {} in the offset index",
                data_pages.len(),
                index.page_locations.len()
            )));
        }
        for ((location, &(offset, len)), &(old_offset, old_len)) in index
            .page_locations
            .iter_mut()
            .zip(&locations)
            .zip(&written_at)
        {
            if (location.offset, i64::from(location.compressed_page_size))
                != (to_i64(old_offset)?, to_i64(old_len)?)
            {
                return Err(general(format!(
                    "a data page stored at {old_offset} ({old_len} bytes) is at {} ({} bytes) \
                     in the offset index",
                    location.offset, location.compressed_page_size
                )));
            }
            location.offset = to_i64(offset)?;
            location.compressed_page_size =
                i32::try_from(len).map_err(|_| general(format!("a page of {len} bytes")))?;
        }
    }
    let mut metadata = close
        .metadata
        .clone()
        .into_builder()
        .set_total_compressed_size(to_i64(total)?)
        // parquet-rs counts the page headers in the uncompressed size too.
        .set_total_uncompressed_size(close.metadata.uncompressed_size() + header_growth)
        .set_dictionary_page_offset(dictionary.is_some().then_some(0))
        .set_data_page_offset(to_i64(dictionary_len)?);
    if let Some((level, _)) = zstd {
        metadata = metadata.set_compression(Compression::ZSTD(level));
    }
    close.metadata = metadata.build()?;
    close.bytes_written = total as u64;
    Ok((Bytes::from(chunk), close))
}

/// Whether a column chunk of `before` bytes of pages is stored compressed as `after` bytes: when
/// zstd saves at least one part in [`PAYS_FRACTION`] of it. A compressed chunk costs every reader
/// a zstd context and a pass over its bytes; sparse columns (null in most rows) do not shrink,
/// nor, on the generated capture, `ts` and `ts_exit` (delta encoded: their bit-packed deltas
/// leave zstd little to find).
fn compression_pays(before: usize, after: usize) -> bool {
    after < before && before - after >= before.div_ceil(PAYS_FRACTION)
}

/// zstd must save one part in this many of a column chunk's bytes for the chunk to be stored
/// compressed (see [`compression_pays`]).
const PAYS_FRACTION: usize = 32;

fn to_i64(n: usize) -> Result<i64, ParquetError> {
    i64::try_from(n).map_err(|_| general(format!("{n} bytes")))
}

/// The largest allocation the Thrift decoder may make for one page header (statistics
/// included); the headers are parquet's own, a few dozen bytes.
const MAX_HEADER_ALLOC: usize = 1 << 20;

/// `header` (a Thrift compact `PageHeader`, of a page of `written` bytes) with `crc` set to the
/// CRC-32 of `bytes`, and whether it is a dictionary page's. With `compressed`, `bytes` are the
/// page's `written` bytes compressed (a dictionary or v1 data page, written uncompressed), and
/// the header says so.
fn checksummed_header(
    header: &[u8],
    written: usize,
    bytes: &[u8],
    compressed: bool,
) -> Result<(Vec<u8>, bool), ParquetError> {
    let mut rest = header;
    let mut decoded = PageHeader::read_from_in_protocol(&mut TCompactInputProtocol::new(
        &mut rest,
        MAX_HEADER_ALLOC,
    ))
    .map_err(|e| general(format!("a page header does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(general(format!("{} bytes after a page header", rest.len())));
    }
    // Re-encoded as it is, it must be the very bytes parquet wrote: no field lost or changed.
    if encode(&decoded)? != header {
        return Err(general(
            "a page header does not re-encode to the same bytes".to_owned(),
        ));
    }
    if usize::try_from(decoded.compressed_page_size).ok() != Some(written) {
        return Err(general(format!(
            "a page header says {} bytes, the page has {written}",
            decoded.compressed_page_size,
        )));
    }
    if compressed {
        if !matches!(
            decoded.type_,
            PageType::DATA_PAGE | PageType::DICTIONARY_PAGE
        ) || decoded.uncompressed_page_size != decoded.compressed_page_size
        {
            return Err(general(format!(
                "a page to compress is not an uncompressed dictionary or v1 data page \
                 ({:?}, {} of {} bytes)",
                decoded.type_, decoded.compressed_page_size, decoded.uncompressed_page_size
            )));
        }
        decoded.compressed_page_size = i32::try_from(bytes.len())
            .map_err(|_| general(format!("a compressed page of {} bytes", bytes.len())))?;
    }
    // Parquet stores the CRC's 32 bits in a Thrift i32.
    decoded.crc = Some(i32::from_ne_bytes(crc32fast::hash(bytes).to_ne_bytes()));
    Ok((
        encode(&decoded)?,
        decoded.type_ == PageType::DICTIONARY_PAGE,
    ))
}

fn encode(header: &PageHeader) -> Result<Vec<u8>, ParquetError> {
    let mut out = Vec::with_capacity(64);
    header
        .write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut out))
        .map_err(|e| general(format!("a page header does not encode: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::{
        arrow::ArrowWriter,
        file::{metadata::ParquetMetaDataReader, properties::EnabledStatistics},
    };

    use super::*;

    /// Every page of a file in file order: its decoded header and its bytes.
    fn walk(file: &Bytes) -> Vec<(PageHeader, Bytes)> {
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(file)
            .expect("footer");
        let mut pages = Vec::new();
        for row_group in metadata.row_groups() {
            for column in row_group.columns() {
                let (start, len) = column.byte_range();
                let (mut at, end) = (start as usize, (start + len) as usize);
                while at < end {
                    let mut rest = &file[at..end];
                    let header = PageHeader::read_from_in_protocol(
                        &mut TCompactInputProtocol::new(&mut rest, MAX_HEADER_ALLOC),
                    )
                    .expect("header");
                    let data = end - rest.len();
                    let next = data + header.compressed_page_size as usize;
                    pages.push((header, file.slice(data..next)));
                    at = next;
                }
                assert_eq!(at, end);
            }
        }
        pages
    }

    #[test]
    fn the_same_pages_as_arrow_writer_with_a_crc_in_each_header() {
        // Data page v1 (the capture writer's): this writer compresses the pages.
        same_pages_as_arrow_writer(WriterVersion::PARQUET_1_0);
    }

    #[test]
    fn the_same_pages_as_arrow_writer_with_data_page_v2() {
        // Data page v2: parquet compresses the values, when that pays.
        same_pages_as_arrow_writer(WriterVersion::PARQUET_2_0);
    }

    #[test]
    fn a_column_chunk_zstd_cannot_shrink_is_stored_uncompressed() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

        let schema = Arc::new(Schema::new(vec![
            Field::new("noise", DataType::Int64, false),
            Field::new("same", DataType::Int64, true),
        ]));
        // xorshift64: values zstd finds nothing in, where the first row group has them.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let rows = 8_000;
        let noise: ArrayRef = Arc::new(Int64Array::from_iter_values((0..2 * rows).map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i < rows { x as i64 } else { 42 }
        })));
        let same: ArrayRef = Arc::new(Int64Array::from_iter(
            (0..2 * rows).map(|i| (i % 3 != 0).then_some(7)),
        ));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![noise, same]).expect("batch");
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(1000)
            .build();
        let mut writer =
            PageCrcWriter::try_new(Vec::new(), Arc::clone(&schema), props).expect("writer");
        for start in [0, rows as usize] {
            writer
                .write_row_group(&batch.slice(start, rows as usize))
                .expect("write");
        }
        let file = Bytes::from(writer.into_inner().expect("close"));

        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .expect("footer");
        // (The level is not stored: a reader sees its default.)
        let codecs: Vec<Vec<&str>> = metadata
            .row_groups()
            .iter()
            .map(|rg| {
                rg.columns()
                    .iter()
                    .map(|c| match c.compression() {
                        Compression::ZSTD(_) => "zstd",
                        Compression::UNCOMPRESSED => "none",
                        _ => "other",
                    })
                    .collect()
            })
            .collect();
        assert_eq!(codecs, [["none", "zstd"], ["zstd", "zstd"]]);
        // The noise is stored as encoded: 8 bytes a value, and each page's CRC is of its bytes.
        let noise_chunk = metadata.row_group(0).column(0);
        assert_eq!(
            noise_chunk.compressed_size(),
            noise_chunk.uncompressed_size()
        );
        assert!(noise_chunk.compressed_size() > 8 * rows);
        for (header, bytes) in walk(&file) {
            let crc = crc32fast::hash(&bytes);
            assert_eq!(header.crc, Some(i32::from_ne_bytes(crc.to_ne_bytes())));
        }

        // Parquet's own reader gives the rows back, the chunks of either codec alike.
        let read: Vec<RecordBatch> = ParquetRecordBatchReader::try_new(file, 100_000)
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("read");
        let read = arrow::compute::concat_batches(&schema, &read).expect("concat");
        assert_eq!(read, batch);
    }

    #[test]
    fn compression_pays_from_one_part_in_32() {
        assert!(compression_pays(3200, 3100));
        assert!(!compression_pays(3200, 3101));
        assert!(!compression_pays(100, 100));
        assert!(!compression_pays(100, 120));
        assert!(!compression_pays(0, 0));
        assert!(compression_pays(1, 0));
    }

    fn same_pages_as_arrow_writer(version: WriterVersion) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let rows = 30_000;
        let n: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i * 7919)));
        // Distinct long strings: the dictionary falls back to plain pages part-way.
        let s: ArrayRef =
            Arc::new(StringArray::from_iter((0..rows).map(|i| {
                (i % 11 != 0).then(|| format!("{i:06}-{}", "y".repeat(60)))
            })));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![n, s]).expect("batch");
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
                .set_writer_version(version)
                .set_statistics_enabled(EnabledStatistics::Page)
                .set_data_page_row_count_limit(4000)
                .set_dictionary_page_size_limit(64 << 10)
                .build()
        };
        let mut plain = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props()))
            .expect("arrow writer");
        let mut checked =
            PageCrcWriter::try_new(Vec::new(), Arc::clone(&schema), props()).expect("writer");
        // Which of the two compresses the pages.
        assert_eq!(
            checked.zstd.levels,
            vec![
                (version == WriterVersion::PARQUET_1_0)
                    .then_some(ZstdLevel::try_new(3).expect("level"));
                2
            ]
        );
        for range in [(0, 20_000), (20_000, 10_000)] {
            plain.write(&batch.slice(range.0, range.1)).expect("write");
            plain.flush().expect("flush");
            checked
                .write_row_group(&batch.slice(range.0, range.1))
                .expect("write");
        }
        let plain = Bytes::from(plain.into_inner().expect("close"));
        let checked = Bytes::from(checked.into_inner().expect("close"));

        let (plain_pages, checked_pages) = (walk(&plain), walk(&checked));
        assert!(plain_pages.len() > 10, "{} pages", plain_pages.len());
        assert_eq!(plain_pages.len(), checked_pages.len());
        for ((plain_header, plain_bytes), (checked_header, checked_bytes)) in
            plain_pages.iter().zip(&checked_pages)
        {
            assert_eq!(plain_bytes, checked_bytes);
            assert_eq!(plain_header.crc, None);
            let crc = crc32fast::hash(checked_bytes);
            assert_eq!(
                checked_header.crc,
                Some(i32::from_ne_bytes(crc.to_ne_bytes()))
            );
            let mut without = checked_header.clone();
            without.crc = None;
            assert_eq!(&without, plain_header);
        }
        assert!(
            plain_pages
                .iter()
                .any(|(h, _)| h.type_ == PageType::DICTIONARY_PAGE)
        );

        // The footers agree on everything but where the pages are.
        let footer = |file: &Bytes| {
            ParquetMetaDataReader::new()
                .parse_and_finish(file)
                .expect("footer")
        };
        let (plain, checked) = (footer(&plain), footer(&checked));
        assert_eq!(
            plain.file_metadata().key_value_metadata(),
            checked.file_metadata().key_value_metadata()
        );
        for (p, c) in plain.row_groups().iter().zip(checked.row_groups()) {
            assert_eq!(p.num_rows(), c.num_rows());
            for (p, c) in p.columns().iter().zip(c.columns()) {
                assert_eq!(p.statistics(), c.statistics());
                assert_eq!(p.num_values(), c.num_values());
                assert_eq!(p.page_encoding_stats(), c.page_encoding_stats());
                assert_eq!(p.compression(), c.compression());
                // The same page bytes: the sizes differ by the CRCs in the headers only.
                assert!(c.compressed_size() > p.compressed_size());
                assert_eq!(
                    c.uncompressed_size() - p.uncompressed_size(),
                    c.compressed_size() - p.compressed_size()
                );
            }
        }
    }
}
