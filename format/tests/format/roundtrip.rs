//! Write into a `Vec<u8>`, read back, compare.

use std::sync::Arc;

use arrow::{compute::cast, util::display::array_value_to_string};
use arrow_array::{Array, Int32Array, cast::AsArray, types::Int32Type};
use arrow_schema::DataType;
use bytes::Bytes;
use mmap_format::{
    FORMAT_MAJOR, FORMAT_MINOR,
    event::Event,
    metadata::{CaptureMetadata, FormatVersion, keys},
    reader::{CaptureReader, events_from_batch},
    schema::{COLUMNS, Value, col, schema},
    writer::{
        CaptureWriter, DELTA_COLUMNS, NO_DICTIONARY_COLUMNS, PAGE_STATISTICS_COLUMNS, WriterConfig,
    },
};
use parquet::{
    basic::{Compression, Encoding, LogicalType, TimeUnit, Type as PhysicalType},
    file::reader::{FileReader, SerializedFileReader},
};

use crate::common::{full_event, read_events, sample_events, sample_metadata, write_capture};

#[test]
fn every_column_and_all_metadata_round_trip() {
    let events = sample_events();
    let metadata = sample_metadata();
    let bytes = write_capture(&events, WriterConfig::default(), &metadata);

    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(reader.path().to_str(), Some("<memory>"));
    assert_eq!(reader.metadata(), &metadata);
    assert_eq!(reader.num_rows(), events.len() as u64);
    assert_eq!(reader.num_row_groups(), 1);
    assert_eq!(read_events(&reader), events);
}

#[test]
fn batches_have_the_current_schema_and_derived_errno() {
    let events = sample_events();
    let bytes = write_capture(&events, WriterConfig::default(), &sample_metadata());
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    let batches: Vec<_> = reader
        .batches()
        .expect("batches")
        .collect::<Result<_, _>>()
        .expect("read batches");
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.schema(), schema());

    let errno = batch
        .column_by_name(col::ERRNO)
        .expect("errno column")
        .as_any()
        .downcast_ref::<Int32Array>()
        .expect("errno is Int32");
    let read: Vec<Option<i32>> = errno.iter().collect();
    let derived: Vec<Option<i32>> = events.iter().map(Event::errno).collect();
    assert_eq!(read, derived);
    // The tail of sample_events: ret -1, -9, -22, -4095, -4096, i64::MIN, 0.
    assert_eq!(
        read[read.len() - 7..],
        [Some(1), Some(9), Some(22), Some(4095), None, None, None]
    );
    // Rows with ret null have errno null.
    assert!(events[2].ret.is_none() && errno.is_null(2));

    // Nulls stay nulls in every nullable column, and non-null columns have none.
    for (i, field) in schema().fields().iter().enumerate() {
        let column = batch.column(i);
        if field.is_nullable() {
            // Row 2 has a syscall; every other nullable column is null there.
            let expect_null = field.name() != col::SYSCALL;
            assert_eq!(column.is_null(2), expect_null, "{}", field.name());
        } else {
            assert_eq!(column.null_count(), 0, "{}", field.name());
        }
    }
    let syscall = batch
        .column_by_name(col::SYSCALL)
        .expect("syscall")
        .as_dictionary::<Int32Type>();
    assert_eq!(
        syscall.null_count(),
        events.iter().filter(|e| e.syscall.is_none()).count()
    );

    assert_eq!(events_from_batch(batch).expect("decode"), events);
}

/// Every column, read back in a batch, holds what [`Column::value`] says was written (the
/// derived `errno` included): a new column is checked here without an edit.
#[test]
fn every_column_reads_back_as_written() {
    let events = sample_events();
    let bytes = write_capture(&events, WriterConfig::default(), &sample_metadata());
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    let batches: Vec<_> = reader
        .batches()
        .expect("batches")
        .collect::<Result<_, _>>()
        .expect("read batches");
    let batch = &batches[0];
    assert_eq!(batch.num_columns(), COLUMNS.len());
    for column in &COLUMNS {
        let array = batch.column_by_name(column.name).expect("column");
        assert_eq!(array.data_type(), &column.data_type(), "{}", column.name);
        // Times as their ns since the epoch; everything else as Arrow shows it.
        let array = match column.data_type() {
            DataType::Timestamp(..) => cast(array, &DataType::Int64).expect("ns"),
            _ => Arc::clone(array),
        };
        for (row, event) in events.iter().enumerate() {
            let value = column.value(event);
            assert_eq!(
                array.is_null(row),
                value == Value::Null,
                "{} row {row}",
                column.name
            );
            let shown = array_value_to_string(&array, row).expect("display");
            assert_eq!(shown, value.to_string(), "{} row {row}", column.name);
        }
    }
}

#[test]
fn writer_stamps_the_current_version() {
    let mut metadata = sample_metadata();
    metadata.format_version = FormatVersion { major: 1, minor: 9 };
    let bytes = write_capture(&sample_events(), WriterConfig::default(), &metadata);
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(
        reader.metadata().format_version,
        FormatVersion {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR
        }
    );
}

#[test]
fn parquet_layout_is_the_documented_one() {
    let bytes = write_capture(
        &sample_events(),
        WriterConfig::default(),
        &sample_metadata(),
    );
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
    let file = SerializedFileReader::new(Bytes::from(bytes)).expect("parquet");
    let meta = file.metadata();
    let created_by = meta.file_metadata().created_by().expect("created_by");
    assert!(
        created_by.starts_with(&format!(
            "mmap-capture version {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{created_by}"
    );

    let kv = meta.file_metadata().key_value_metadata().expect("kv");
    let kv_keys: Vec<&str> = kv.iter().map(|kv| kv.key.as_str()).collect();
    // Every 1.0 key; the 1.1 keys that are set (recovered is false: not written).
    for key in keys::REQUIRED {
        assert!(kv_keys.contains(&key), "{key}");
    }
    for key in [keys::CAPTURE_ID, keys::SEGMENT_INDEX, keys::PAGE_SIZE] {
        assert!(kv_keys.contains(&key), "{key}");
    }
    assert!(!kv_keys.contains(&keys::RECOVERED));
    assert!(kv_keys.contains(&"ARROW:schema"));
    let value = |key: &str| {
        kv.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .expect("value")
    };
    assert_eq!(value(keys::FORMAT_MAJOR), "1");
    assert_eq!(value(keys::FORMAT_MINOR), "6");
    assert_eq!(value(keys::CAPTURE_START), "2026-01-01T00:00:00.123456789Z");
    assert_eq!(
        value(keys::TARGETS),
        r#"{"system_wide":true,"pids":[1,2,3],"command":null,"comms":["nginx","postgres"],"cgroups":["/system.slice/nginx.service"],"follow_forks":true}"#
    );
    assert_eq!(value(keys::SEGMENT_INDEX), "2");
    assert_eq!(value(keys::PAGE_SIZE), "4096");

    let schema = meta.file_metadata().schema_descr();
    assert_eq!(schema.num_columns(), col::ALL.len());
    for (i, name) in col::ALL.iter().enumerate() {
        assert_eq!(schema.column(i).name(), *name);
    }
    let ts = schema.column(2);
    assert_eq!(ts.physical_type(), PhysicalType::INT64);
    assert!(
        matches!(
            ts.logical_type_ref(),
            Some(LogicalType::Timestamp(t)) if t.is_adjusted_to_u_t_c && matches!(t.unit, TimeUnit::NANOS)
        ),
        "{:?}",
        ts.logical_type_ref()
    );
    let pid = schema.column(5);
    assert!(
        matches!(
            pid.logical_type_ref(),
            Some(LogicalType::Integer(t)) if t.bit_width == 32 && !t.is_signed
        ),
        "{:?}",
        pid.logical_type_ref()
    );
    assert_eq!(
        schema.column(10).logical_type_ref(),
        Some(&LogicalType::String)
    );

    let row_group = meta.row_group(0);
    // zstd where it makes a column chunk smaller (the level is not stored in the file), the
    // pages as encoded where it does not (page_crc.rs, `compression_pays`).
    let mut compressed = 0;
    for column in row_group.columns() {
        match column.compression() {
            Compression::ZSTD(_) => {
                compressed += 1;
                assert!(
                    column.compressed_size() < column.uncompressed_size(),
                    "{}",
                    column.column_path()
                );
            }
            Compression::UNCOMPRESSED => assert_eq!(
                column.compressed_size(),
                column.uncompressed_size(),
                "{}",
                column.column_path()
            ),
            other => panic!("{}: {other:?}", column.column_path()),
        }
        assert!(column.statistics().is_some(), "{}", column.column_path());
    }
    assert!(compressed > 0);
    let comm = row_group.column(10);
    assert!(
        comm.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
        "comm is dictionary encoded"
    );
    let len = row_group.column(col::ALL.iter().position(|c| *c == col::LEN).expect("len"));
    assert!(
        len.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
        "the arguments keep their dictionaries"
    );
    // Page statistics (a column index) for the columns queries select rows by, and only them;
    // an offset index for every column.
    for (index, name) in col::ALL.iter().enumerate() {
        let column = row_group.column(index);
        assert_eq!(
            column.column_index_offset().is_some(),
            PAGE_STATISTICS_COLUMNS.contains(name),
            "{name}"
        );
        assert!(column.offset_index_offset().is_some(), "{name}");
    }
    // Nearly unique columns and the identity columns are not dictionary encoded; the times
    // are delta encoded.
    for name in NO_DICTIONARY_COLUMNS.iter().chain(&DELTA_COLUMNS) {
        let index = col::ALL.iter().position(|c| c == name).expect("column");
        let column = row_group.column(index);
        assert!(
            !column.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
            "{name}"
        );
        assert_eq!(
            column
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED),
            DELTA_COLUMNS.contains(name),
            "{name}"
        );
    }
}

#[test]
fn row_groups_are_cut_at_row_group_rows_and_at_flush() {
    let config = WriterConfig {
        row_group_rows: 3,
        zstd_level: 1,
    };
    let mut writer = CaptureWriter::new(Vec::new(), config).expect("writer");
    let events: Vec<_> = (0..11).map(full_event).collect();
    assert_eq!(writer.bytes_written(), 0);
    let mut sizes = Vec::new();
    for (i, event) in events.iter().enumerate() {
        writer.push(event).expect("push");
        sizes.push(writer.bytes_written());
        if i == 4 {
            // 3 rows written, 2 buffered: flush cuts a row group of 2.
            assert_eq!(writer.rows_buffered(), 2);
            writer.flush().expect("flush");
            assert_eq!(writer.rows_buffered(), 0);
            let flushed = writer.bytes_written();
            writer.flush().expect("flush with nothing buffered");
            assert_eq!(writer.bytes_written(), flushed);
        }
    }
    assert_eq!(writer.rows_written(), 11);
    // Nothing reaches the sink before the first row group; each row group reaches it at once.
    assert_eq!(sizes[0], 0);
    assert_eq!(sizes[1], 0);
    assert!(sizes[2] > 0);
    assert_eq!(sizes[3], sizes[2]);
    assert!(sizes[7] > sizes[4]);
    let before_finish = writer.bytes_written();
    let bytes = writer.finish(&sample_metadata()).expect("finish");
    assert!(bytes.len() as u64 > before_finish);

    let reader = CaptureReader::from_bytes(bytes.clone()).expect("open");
    // 3 | 2 (flush) | 3 | 3 | 0 + finish flushes nothing more... rows 5..11 are 6 rows: 3 + 3.
    let file = SerializedFileReader::new(Bytes::from(bytes)).expect("parquet");
    let rows: Vec<i64> = file
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    assert_eq!(rows, [3, 2, 3, 3]);
    assert_eq!(reader.num_row_groups(), 4);
    assert_eq!(reader.num_rows(), 11);
    assert_eq!(read_events(&reader), events);
}

#[test]
fn finish_writes_a_partial_row_group_and_counts_every_byte() {
    let config = WriterConfig {
        row_group_rows: 4,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(Vec::new(), config).expect("writer");
    let events: Vec<_> = (0..6).map(full_event).collect();
    for event in &events {
        writer.push(event).expect("push");
    }
    let bytes = writer.finish(&sample_metadata()).expect("finish");
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(reader.num_row_groups(), 2);
    assert_eq!(read_events(&reader), events);
}

/// A sink that remembers how much it was given, to compare with bytes_written.
struct Counted(Vec<u8>);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Short writes, to check that partial writes are counted as written.
        let n = buf.len().min(1000);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn bytes_written_matches_the_sink() {
    let config = WriterConfig {
        row_group_rows: 100,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(Counted(Vec::new()), config).expect("writer");
    for i in 0..1000 {
        writer.push(&full_event(i)).expect("push");
        if i % 100 == 99 {
            assert!(writer.bytes_written() > 0);
        }
    }
    let written = writer.bytes_written();
    let sink = writer.finish(&CaptureMetadata::default()).expect("finish");
    assert!(sink.0.len() as u64 > written);
    let reader = CaptureReader::from_bytes(sink.0).expect("open");
    assert_eq!(reader.num_rows(), 1000);
    assert_eq!(reader.num_row_groups(), 10);
}

#[test]
fn empty_capture_reads_as_zero_rows() {
    let bytes = write_capture(&[], WriterConfig::default(), &sample_metadata());
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(reader.num_rows(), 0);
    assert_eq!(reader.metadata(), &sample_metadata());
    assert!(read_events(&reader).is_empty());
}

#[test]
fn many_rows_in_default_row_groups_read_back_in_order() {
    let events: Vec<_> = (0..70_000).map(full_event).collect();
    let bytes = write_capture(&events, WriterConfig::default(), &sample_metadata());
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(reader.num_row_groups(), 2);
    let mut count = 0;
    for (i, event) in reader.events().expect("events").enumerate() {
        let event = event.expect("event");
        assert_eq!(event.tid, 1000 + i as u32);
        count += 1;
    }
    assert_eq!(count, 70_000);
}

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capture.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let mut writer =
        CaptureWriter::new(std::io::BufWriter::new(file), WriterConfig::default()).expect("writer");
    let events = sample_events();
    for event in &events {
        writer.push(event).expect("push");
    }
    let written = writer.bytes_written();
    let sink = writer.finish(&sample_metadata()).expect("finish");
    drop(sink);
    let len = std::fs::metadata(&path).expect("stat").len();
    assert!(len > written);

    let reader = CaptureReader::open(&path).expect("open");
    assert_eq!(reader.path(), path);
    assert_eq!(reader.metadata(), &sample_metadata());
    assert_eq!(read_events(&reader), events);
    // Iterating twice works (each call reopens the file).
    assert_eq!(read_events(&reader).len(), events.len());
}

#[test]
fn invalid_configs_are_refused() {
    let err = CaptureWriter::new(
        Vec::new(),
        WriterConfig {
            row_group_rows: 0,
            zstd_level: 3,
        },
    )
    .expect_err("0 rows");
    assert!(
        err.to_string()
            .starts_with("invalid writer configuration: row_group_rows")
    );
    let err = CaptureWriter::new(
        Vec::new(),
        WriterConfig {
            row_group_rows: 10,
            zstd_level: 99,
        },
    )
    .expect_err("level 99");
    assert!(
        err.to_string()
            .starts_with("invalid writer configuration: zstd level 99"),
        "{err}"
    );
}

#[test]
fn borrowed_events_write_and_into_owned_keeps_values() {
    let comm = String::from("borrowed");
    let name = String::from("lib.so");
    let mut event = full_event(1);
    event.comm = std::borrow::Cow::Borrowed(&comm);
    let mut borrowed: Event<'_> = event;
    borrowed.file_name = Some(std::borrow::Cow::Borrowed(&name));
    let owned = borrowed.clone().into_owned();
    assert_eq!(owned, borrowed);
    let bytes = write_capture(&[borrowed], WriterConfig::default(), &sample_metadata());
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(read_events(&reader), [owned]);
}

#[test]
fn reader_and_writer_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<CaptureReader>();
    send::<CaptureWriter<std::io::BufWriter<std::fs::File>>>();
    send::<CaptureWriter<Vec<u8>>>();
}

/// The 1.1 columns are built lazily (nothing per row while a row group has no value for
/// them): row groups with no 1.1 value, with values only at the start, only at the end, or in a
/// single column, all read back exactly.
#[test]
fn sparse_1_1_columns_read_back_in_every_pattern() {
    let plain = |i: u32| mmap_format_v1_0_only(full_event(i));
    let mut events = Vec::new();
    // Row group 1 (rows 0..5): no 1.1 values at all.
    events.extend((0..5).map(plain));
    // Row group 2: a value in the first row only.
    events.push(full_event(5));
    events.extend((6..10).map(plain));
    // Row group 3: values in the last row only.
    events.extend((10..14).map(plain));
    events.push(full_event(14));
    // Row group 4: one column in one middle row.
    events.extend((15..17).map(plain));
    events.push(Event {
        lost_count: Some(99),
        ..plain(17)
    });
    events.extend((18..20).map(plain));
    // Row group 5: every row has values.
    events.extend((20..25).map(full_event));
    let config = WriterConfig {
        row_group_rows: 5,
        zstd_level: 1,
    };
    let bytes = write_capture(&events, config.clone(), &sample_metadata());
    let reader = CaptureReader::from_bytes(bytes).expect("open");
    assert_eq!(reader.num_row_groups(), 5);
    assert_eq!(read_events(&reader), events);
    // Twice in one writer, across flushes of odd sizes.
    let mut writer = CaptureWriter::new(Vec::new(), config).expect("writer");
    for (i, event) in events.iter().chain(&events).enumerate() {
        writer.push(event).expect("push");
        if i % 7 == 3 {
            writer.flush().expect("flush");
        }
    }
    let reader = CaptureReader::from_bytes(writer.finish(&sample_metadata()).expect("finish"))
        .expect("open");
    let twice: Vec<_> = events.iter().chain(&events).cloned().collect();
    assert_eq!(read_events(&reader), twice);
}

/// `event` with every 1.1 field None.
fn mmap_format_v1_0_only(event: Event<'static>) -> Event<'static> {
    Event {
        source: None,
        new_addr: None,
        new_len: None,
        child_pid: None,
        exit_code: None,
        file_path: None,
        path_source: None,
        path_truncated: None,
        file_deleted: None,
        file_memfd: None,
        cgroup_path: None,
        pidns_ino: None,
        ns_pid: None,
        ns_tid: None,
        lost_count: None,
        ..event
    }
}
