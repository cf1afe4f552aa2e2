//! Writing the results of a query: an aligned table, JSON Lines, CSV, or a Parquet file.
//!
//! Results are written batch by batch as the query produces them. A command can say what the
//! integers of a column mean ([`Unit`]): a table then shows them for people (`1.5 MiB`,
//! `2.3 ms`, `06:01:13.123456789`) while JSON and CSV keep the exact numbers. Text in table cells is
//! untrusted (process names, file paths): control characters are shown escaped (`\n`,
//! `\u{1b}`), never written raw to a terminal. JSON escapes them by itself; CSV and Parquet keep
//! the values exactly, for programs to read.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    fs::File,
    io::{self, BufWriter, Write},
    num::NonZeroUsize,
    path::Path,
    sync::Arc,
    thread::{self, JoinHandle},
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray as _, Int64Array, RecordBatch, StringArray, StringBuilder,
        TimestampNanosecondArray, timezone::Tz,
    },
    compute::cast,
    csv,
    datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, TimestampNanosecondType},
    error::ArrowError,
    json::{self, writer::LineDelimited},
    util::display::{ArrayFormatter, FormatOptions},
};
use chrono::{DateTime, format::StrftimeItems};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    errors::ParquetError,
    file::properties::WriterProperties,
};

use super::{Batches, EngineError};
use crate::{
    labels::{human_bytes, time_of_day_ns},
    table::{Align, Column, StreamingTable},
};

/// How results are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultFormat {
    /// Aligned columns for people; NULL for a missing value.
    Table,
    /// JSON Lines: one object per row, every column a key (null for a missing value).
    Json,
    /// CSV with a header line; an empty field for a missing value.
    Csv,
    /// A zstd-compressed Parquet file (needs -o FILE).
    Parquet,
}

/// How a command's results are written (the formats that go to standard output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextFormat {
    /// Aligned columns for people: sizes and durations human-readable.
    Table,
    /// JSON Lines: one object per row, exact numbers (durations in ns, times in ns since the
    /// Unix epoch).
    Json,
    /// CSV with a header line, exact numbers as in JSON.
    Csv,
}

impl From<TextFormat> for ResultFormat {
    fn from(format: TextFormat) -> Self {
        match format {
            TextFormat::Table => Self::Table,
            TextFormat::Json => Self::Json,
            TextFormat::Csv => Self::Csv,
        }
    }
}

/// What the integers of a column mean, for a table to show them to people. JSON and CSV write
/// the numbers as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A number of bytes: `1.5 MiB`.
    Bytes,
    /// A duration in nanoseconds: `2.3 ms`.
    Nanoseconds,
    /// A time in nanoseconds since the Unix epoch (or a timestamp): the UTC time of day,
    /// `06:01:13.123456789`.
    Time,
}

impl Unit {
    /// The cell text of `value`.
    fn show(self, value: i64) -> String {
        match self {
            Self::Bytes => u64::try_from(value).map_or_else(|_| value.to_string(), human_bytes),
            Self::Nanoseconds => human_duration(value),
            Self::Time => time_of_day_ns(value),
        }
    }

    /// The table header of column `name`: a duration or time column drops its `_ns` ending
    /// (its cells say their unit).
    fn header(self, name: &str) -> &str {
        match self {
            Self::Nanoseconds | Self::Time => name.strip_suffix("_ns").unwrap_or(name),
            Self::Bytes => name,
        }
    }
}

/// The units of some columns of a result, by column name; other columns are shown as they are.
pub type Units<'a> = &'a [(&'a str, Unit)];

/// `ns` for people, to three significant digits: `500 ns`, `1.5 us`, `16.4 ms`, `2 s`.
pub fn human_duration(ns: i64) -> String {
    const UNITS: [(f64, &str); 3] = [(1e3, "us"), (1e6, "ms"), (1e9, "s")];
    if ns.unsigned_abs() < 1000 {
        return format!("{ns} ns");
    }
    let (scale, unit) = UNITS
        .iter()
        .rev()
        .find(|(scale, _)| ns.unsigned_abs() as f64 >= *scale)
        .copied()
        .unwrap_or(UNITS[0]);
    let value = ns as f64 / scale;
    let digits = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} {unit}")
}

/// How times are written in table, JSON and CSV output: RFC 3339 with nanoseconds.
const TIMESTAMP_TZ_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.9f%:z";
/// [`TIMESTAMP_TZ_FORMAT`] up to the whole seconds, and its UTC offset: CSV and JSON results
/// format these once per second ([`format_each`]).
const SECONDS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
const OFFSET_FORMAT: &str = "%:z";
/// The same for times without a time zone.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.9f";
/// Rows a table is sized from before it starts writing.
const TABLE_BLOCK: usize = 1000;
/// Cell text of a missing value in a table.
const TABLE_NULL: &str = "NULL";

/// Writes every batch of `batches` to `out` as `format` (not [`ResultFormat::Parquet`], which
/// writes a file: [`write_parquet`]). Returns the number of rows.
pub fn write_text(
    format: ResultFormat,
    batches: Batches<'_>,
    out: &mut impl Write,
) -> Result<usize, EngineError> {
    write_text_with(format, batches, out, &[])
}

/// [`write_text`] with the columns named in `units` shown for people in a table.
pub fn write_text_with(
    format: ResultFormat,
    batches: Batches<'_>,
    out: &mut impl Write,
    units: Units<'_>,
) -> Result<usize, EngineError> {
    let schema = batches.schema();
    write_batches(format, &schema, batches, out, units)
}

/// [`write_text_with`] for batches from anywhere (e.g. built by a command), all of `schema`.
pub fn write_batches(
    format: ResultFormat,
    schema: &Schema,
    batches: impl IntoIterator<Item = Result<RecordBatch, EngineError>>,
    out: &mut impl Write,
    units: Units<'_>,
) -> Result<usize, EngineError> {
    let mut tracked = Tracked {
        inner: out,
        failed: None,
    };
    let written = (|| {
        let mut sink =
            TextSink::new(format, schema, units, &mut tracked).map_err(EngineError::Output)?;
        let mut rows = 0;
        for batch in batches {
            let batch = batch?;
            rows += batch.num_rows();
            sink.write(&batch).map_err(EngineError::Output)?;
        }
        sink.finish().map_err(EngineError::Output)?;
        Ok(rows)
    })();
    match (written, tracked.failed) {
        (Err(EngineError::Output(err)), Some(kind)) if err.kind() != kind => {
            Err(EngineError::Output(io::Error::new(kind, err.to_string())))
        }
        (written, _) => written,
    }
}

/// A writer that remembers the kind of the last error of the writer under it: Arrow's CSV
/// writer turns an I/O error into text, and a broken pipe must still be seen as one.
struct Tracked<W> {
    inner: W,
    failed: Option<io::ErrorKind>,
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner
            .write(buf)
            .inspect_err(|err| self.failed = Some(err.kind()))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|err| self.failed = Some(err.kind()))
    }
}

/// Writes every batch of `batches` to a new Parquet file at `path`. Returns the number of rows.
pub fn write_parquet(batches: Batches<'_>, path: &Path) -> Result<usize, EngineError> {
    let output = |err: ParquetError| EngineError::Output(parquet_to_io(err));
    let file = File::create(path).map_err(EngineError::Output)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(BufWriter::new(file), batches.schema(), Some(properties))
        .map_err(output)?;
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch).map_err(output)?;
    }
    writer
        .into_inner()
        .map_err(output)?
        .into_inner()
        .map_err(|err| EngineError::Output(err.into_error()))?
        .sync_all()
        .map_err(EngineError::Output)?;
    Ok(rows)
}

enum TextSink<'w, W: Write> {
    Table {
        table: StreamingTable,
        /// The unit of each column, if it has one.
        units: Vec<Option<Unit>>,
        out: &'w mut W,
    },
    /// JSON Lines or CSV: each batch is encoded on a thread of its own while the next batches
    /// are read, and written in turn ([`Encoded`]).
    Encoded(Encoded<'w, W>),
}

impl<'w, W: Write> TextSink<'w, W> {
    fn new(
        format: ResultFormat,
        schema: &Schema,
        units: Units<'_>,
        out: &'w mut W,
    ) -> io::Result<Self> {
        Ok(match format {
            ResultFormat::Table => {
                let units: Vec<Option<Unit>> = schema
                    .fields()
                    .iter()
                    .map(|field| {
                        units
                            .iter()
                            .find(|(name, _)| name == field.name())
                            .map(|(_, unit)| *unit)
                    })
                    .collect();
                let columns: Vec<Column> = schema
                    .fields()
                    .iter()
                    .zip(&units)
                    .map(|(field, unit)| {
                        let name = unit.map_or(field.name().as_str(), |u| u.header(field.name()));
                        let align = match unit {
                            Some(_) => Align::Right,
                            None => align(field.data_type()),
                        };
                        Column::new(escape(name), align)
                    })
                    .collect();
                Self::Table {
                    table: StreamingTable::new(&columns, TABLE_BLOCK),
                    units,
                    out,
                }
            }
            ResultFormat::Json => Self::Encoded(Encoded::new(encode_json, schema, out)),
            ResultFormat::Csv => Self::Encoded(Encoded::new(encode_csv, schema, out)),
            ResultFormat::Parquet => {
                return Err(io::Error::other("Parquet results are written to a file"));
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        match self {
            Self::Table { table, units, out } => {
                for row in table_rows(batch, units)? {
                    table.push(*out, row)?;
                }
                Ok(())
            }
            Self::Encoded(encoded) => encoded.write(batch),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Self::Table { mut table, out, .. } => {
                table.finish(out)?;
                out.flush()
            }
            Self::Encoded(encoded) => encoded.finish(),
        }
    }
}

/// Encodes a batch as text; `first`: the first batch of the results (CSV writes its header
/// line with it).
type Encode = fn(&RecordBatch, bool) -> Result<Vec<u8>, ArrowError>;

/// Batches encoded on threads of their own, written in the order they came. Encoding is most
/// of the work of a large text result (`sql 'SELECT * FROM events' --format csv` on 10 M rows:
/// 52 s on one thread, the engine's threads mostly waiting); the batches are independent (a
/// CSV header goes with the first, JSON Lines has none), so each is encoded alone and the
/// bytes are the same as one writer's. At most [`Encoded::in_flight`] batches are encoded or
/// waiting at a time: two per core, so that the cores still encode while this thread writes
/// or waits for the engine's next batch (10 M rows to CSV, alternated: 10.8 s with one per
/// core, 8.9 s with two, 8.6 s with three).
struct Encoded<'w, W: Write> {
    encode: Encode,
    /// The results' schema, for the header of results without a batch.
    schema: Arc<Schema>,
    out: &'w mut W,
    /// Whether a first batch was taken.
    started: bool,
    pending: VecDeque<JoinHandle<Result<Vec<u8>, ArrowError>>>,
    in_flight: usize,
}

impl<'w, W: Write> Encoded<'w, W> {
    fn new(encode: Encode, schema: &Schema, out: &'w mut W) -> Self {
        let in_flight = 2 * thread::available_parallelism().map_or(2, NonZeroUsize::get);
        Self {
            encode,
            schema: Arc::new(schema.clone()),
            out,
            started: false,
            pending: VecDeque::with_capacity(in_flight),
            in_flight,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        if self.pending.len() >= self.in_flight {
            self.write_next()?;
        }
        let (encode, batch, first) = (self.encode, batch.clone(), !self.started);
        self.started = true;
        let encoding = thread::Builder::new()
            .name("encode".to_owned())
            .spawn(move || encode(&batch, first))?;
        self.pending.push_back(encoding);
        Ok(())
    }

    /// Waits for the oldest batch's bytes and writes them.
    fn write_next(&mut self) -> io::Result<()> {
        let Some(encoding) = self.pending.pop_front() else {
            return Ok(());
        };
        let bytes = encoding
            .join()
            .map_err(|_| io::Error::other("a thread encoding results failed"))?
            .map_err(arrow_to_io)?;
        self.out.write_all(&bytes)
    }

    fn finish(mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        // No batch: a CSV header line still says what the columns would have been.
        if !self.started {
            let empty = RecordBatch::new_empty(Arc::clone(&self.schema));
            let bytes = (self.encode)(&empty, true).map_err(arrow_to_io)?;
            self.out.write_all(&bytes)?;
        }
        self.out.flush()
    }
}

fn encode_csv(batch: &RecordBatch, first: bool) -> Result<Vec<u8>, ArrowError> {
    let batch = &timestamps_as_text(batch)?;
    let mut bytes = Vec::new();
    csv::WriterBuilder::new()
        .with_header(first)
        .with_timestamp_format(TIMESTAMP_FORMAT.to_owned())
        .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
        .build(&mut bytes)
        .write(batch)?;
    Ok(bytes)
}

fn encode_json(batch: &RecordBatch, _first: bool) -> Result<Vec<u8>, ArrowError> {
    let batch = &timestamps_as_text(batch)?;
    let mut bytes = Vec::new();
    let mut writer = json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_timestamp_format(TIMESTAMP_FORMAT.to_owned())
        .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
        .build::<_, LineDelimited>(&mut bytes);
    writer.write(batch)?;
    writer.finish()?;
    Ok(bytes)
}

/// `batch` with its nanosecond timestamp columns as the text the CSV and JSON writers would
/// make of them ([`TIMESTAMP_FORMAT`], [`TIMESTAMP_TZ_FORMAT`]), the formats parsed once per
/// column and each second's text made once ([`format_each`]). Arrow's writers format each
/// value with chrono's `format`, which parses the format string again for every value: 18 % of
/// the samples of `sql 'SELECT * FROM events' --format csv`. A text column is written as the
/// timestamp was (unquoted in CSV, a string in JSON).
fn timestamps_as_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let is_ns = |field: &Field| {
        matches!(
            field.data_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, _)
        )
    };
    if !schema.fields().iter().any(|field| is_ns(field)) {
        return Ok(batch.clone());
    }
    let parse = |format| {
        StrftimeItems::new(format)
            .parse()
            .map_err(|err| ArrowError::InvalidArgumentError(err.to_string()))
    };
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let DataType::Timestamp(TimeUnit::Nanosecond, tz) = field.data_type() else {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        };
        let values = column.as_primitive::<TimestampNanosecondType>();
        let seconds = parse(SECONDS_FORMAT)?;
        let text = match tz {
            None => format_each(values, |second| {
                let time = DateTime::from_timestamp(second, 0).ok_or(std::fmt::Error)?;
                let head = time.naive_utc().format_with_items(seconds.iter());
                Ok((head.to_string(), String::new()))
            }),
            Some(tz) => {
                let tz: Tz = tz.parse()?;
                let offset = parse(OFFSET_FORMAT)?;
                format_each(values, |second| {
                    let time = DateTime::from_timestamp(second, 0)
                        .ok_or(std::fmt::Error)?
                        .with_timezone(&tz);
                    let head = time.format_with_items(seconds.iter()).to_string();
                    Ok((head, time.format_with_items(offset.iter()).to_string()))
                })
            }
        }
        .map_err(|err| ArrowError::ComputeError(err.to_string()))?;
        fields.push(Arc::new(Field::new(
            field.name(),
            DataType::Utf8,
            field.is_nullable(),
        )));
        columns.push(Arc::new(text) as ArrayRef);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Each of `values` as text (null stays null): what comes before the fraction of a second
/// and what comes after it, made by `second` from the whole seconds once for each run of values
/// in the same second (a capture's times are mostly in order), and the fraction's nine digits
/// between them. The text is what the whole format would make of each value: a UTC offset
/// changes only at a whole second. Formatting each value whole with chrono took 6 of the 20
/// CPU seconds of `sql 'SELECT * FROM events' --format csv` on 10 M rows.
fn format_each(
    values: &TimestampNanosecondArray,
    second: impl Fn(i64) -> Result<(String, String), std::fmt::Error>,
) -> Result<StringArray, std::fmt::Error> {
    const NS_PER_SECOND: i64 = 1_000_000_000;
    let mut text = StringBuilder::with_capacity(values.len(), values.len() * 35);
    let mut last: Option<(i64, String, String)> = None;
    for value in values {
        let Some(ns) = value else {
            text.append_null();
            continue;
        };
        let whole = ns.div_euclid(NS_PER_SECOND);
        let (head, tail) = match &last {
            Some((at, head, tail)) if *at == whole => (head, tail),
            _ => {
                let (head, tail) = second(whole)?;
                let (_, head, tail) = last.insert((whole, head, tail));
                (&*head, &*tail)
            }
        };
        let mut fraction = *b".000000000";
        let mut rest = ns.rem_euclid(NS_PER_SECOND);
        for digit in fraction[1..].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        text.write_str(head)?;
        text.write_str(std::str::from_utf8(&fraction).map_err(|_| std::fmt::Error)?)?;
        text.write_str(tail)?;
        text.append_value("");
    }
    Ok(text.finish())
}

/// Numbers align right, everything else left.
fn align(data_type: &DataType) -> Align {
    if data_type.is_numeric() {
        Align::Right
    } else {
        Align::Left
    }
}

/// How one column's cells are made: by Arrow's formatter, or from the integers under a unit.
enum Cells<'a> {
    Plain(ArrayFormatter<'a>),
    InUnit(Int64Array, Unit),
}

/// The cells of every row of `batch`, as text; `units` has the unit of each column, if any.
fn table_rows(batch: &RecordBatch, units: &[Option<Unit>]) -> io::Result<Vec<Vec<String>>> {
    let options = FormatOptions::new()
        .with_null(TABLE_NULL)
        .with_timestamp_format(Some(TIMESTAMP_FORMAT))
        .with_timestamp_tz_format(Some(TIMESTAMP_TZ_FORMAT));
    let columns = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| match units.get(i).copied().flatten() {
            Some(unit) => {
                let numbers = cast(column, &DataType::Int64)?;
                let numbers = numbers.as_primitive_opt::<Int64Type>().ok_or_else(|| {
                    ArrowError::CastError(format!("column {i} did not become BIGINT"))
                })?;
                Ok(Cells::InUnit(numbers.clone(), unit))
            }
            None => {
                ArrayFormatter::try_new(column.as_ref() as &dyn Array, &options).map(Cells::Plain)
            }
        })
        .collect::<Result<Vec<_>, ArrowError>>()
        .map_err(arrow_to_io)?;
    Ok((0..batch.num_rows())
        .map(|row| {
            columns
                .iter()
                .map(|cells| match cells {
                    Cells::Plain(formatter) => escape(&formatter.value(row).to_string()),
                    Cells::InUnit(numbers, unit) => {
                        if numbers.is_valid(row) {
                            unit.show(numbers.value(row))
                        } else {
                            TABLE_NULL.to_owned()
                        }
                    }
                })
                .collect()
        })
        .collect())
}

/// `text` with every control character escaped (`\n`, `\t`, `\u{1b}`).
pub fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// The I/O error under an Arrow error when there is one, so that a broken pipe is seen as one.
fn arrow_to_io(err: ArrowError) -> io::Error {
    match err {
        ArrowError::IoError(_, io_err) => io_err,
        ArrowError::ExternalError(inner) => match inner.downcast::<io::Error>() {
            Ok(io_err) => *io_err,
            Err(inner) => io::Error::other(inner),
        },
        other => io::Error::other(other),
    }
}

/// The I/O error under a Parquet error when there is one.
fn parquet_to_io(err: ParquetError) -> io::Error {
    match err {
        ParquetError::External(inner) => match inner.downcast::<io::Error>() {
            Ok(io_err) => *io_err,
            Err(inner) => io::Error::other(inner),
        },
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{StringArray, UInt32Array, UInt64Array};

    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain ü"), "plain ü");
        assert_eq!(escape("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(0), "0 ns");
        assert_eq!(human_duration(999), "999 ns");
        assert_eq!(human_duration(1000), "1 us");
        assert_eq!(human_duration(1500), "1.5 us");
        assert_eq!(human_duration(2_300_000), "2.3 ms");
        assert_eq!(human_duration(16_384_000), "16.4 ms");
        assert_eq!(human_duration(131_072_000), "131 ms");
        assert_eq!(human_duration(2_000_000_000), "2 s");
        assert_eq!(human_duration(-1500), "-1.5 us");
    }

    #[test]
    fn columns_with_a_unit_are_shown_for_people() {
        let batch = RecordBatch::try_from_iter([
            (
                "bytes",
                Arc::new(UInt64Array::from(vec![1536, 3 << 20])) as _,
            ),
            (
                "total_ns",
                Arc::new(Int64Array::from(vec![Some(2_300_000), None])) as _,
            ),
            (
                "first_ns",
                Arc::new(Int64Array::from(vec![1_795_759_273_123_456_789, 0])) as _,
            ),
            ("n", Arc::new(UInt32Array::from(vec![1, 2])) as _),
        ])
        .expect("batch");
        let units = [
            ("bytes", Unit::Bytes),
            ("total_ns", Unit::Nanoseconds),
            ("first_ns", Unit::Time),
        ];
        let mut table = Vec::new();
        write_batches(
            ResultFormat::Table,
            &batch.schema(),
            [Ok(batch.clone())],
            &mut table,
            &units,
        )
        .expect("table");
        assert_eq!(
            String::from_utf8(table).expect("UTF-8"),
            "  bytes   total               first  n\n\
             1.5 KiB  2.3 ms  06:01:13.123456789  1\n\
             3.0 MiB    NULL  00:00:00.000000000  2\n"
        );
        let mut csv = Vec::new();
        write_batches(
            ResultFormat::Csv,
            &batch.schema(),
            [Ok(batch)],
            &mut csv,
            &units,
        )
        .expect("CSV");
        assert_eq!(
            String::from_utf8(csv).expect("UTF-8"),
            "bytes,total_ns,first_ns,n\n1536,2300000,1795759273123456789,1\n3145728,,0,2\n"
        );
    }

    #[test]
    fn batches_encoded_side_by_side_are_written_in_order_with_one_header() {
        // More batches than are encoded at a time, empty ones among them (the first too).
        let batches: Vec<RecordBatch> = (0..40_u32)
            .map(|i| {
                let values: Vec<u32> = (0..(i % 3) * 1000).map(|j| i * 10_000 + j).collect();
                RecordBatch::try_from_iter([("n", Arc::new(UInt32Array::from(values)) as _)])
                    .expect("batch")
            })
            .collect();
        let schema = batches[0].schema();
        let rows = || {
            batches.iter().flat_map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::UInt32Type>()
                    .values()
                    .to_vec()
            })
        };
        let written = |format| {
            let mut out = Vec::new();
            let count = write_batches(
                format,
                &schema,
                batches.iter().cloned().map(Ok),
                &mut out,
                &[],
            )
            .expect("written");
            (count, String::from_utf8(out).expect("UTF-8"))
        };
        let (count, csv) = written(ResultFormat::Csv);
        assert_eq!(count, rows().count());
        let expected: String = std::iter::once("n".to_owned())
            .chain(rows().map(|n| n.to_string()))
            .map(|line| line + "\n")
            .collect();
        assert_eq!(csv, expected);
        let (_, json) = written(ResultFormat::Json);
        let expected: String = rows().map(|n| format!("{{\"n\":{n}}}\n")).collect();
        assert_eq!(json, expected);
        // No batch at all: the CSV header alone, and no JSON line.
        let none = |format| {
            let mut out = Vec::new();
            write_batches(format, &schema, [], &mut out, &[]).expect("written");
            String::from_utf8(out).expect("UTF-8")
        };
        assert_eq!(none(ResultFormat::Csv), "n\n");
        assert_eq!(none(ResultFormat::Json), "");
    }

    #[test]
    fn timestamps_are_written_as_arrows_writers_write_them() {
        use arrow::array::TimestampNanosecondArray;
        let values = vec![
            Some(1_798_761_600_000_024_943),
            // The same second again, and the one before it.
            Some(1_798_761_600_999_999_999),
            Some(1_798_761_599_000_000_001),
            None,
            Some(0),
            Some(-1_500),
            Some(-1_000_000_000),
            Some(i64::MIN),
            Some(i64::MAX),
            // Paris goes from +01:00 to +02:00 at 2026-03-29T01:00:00Z.
            Some(1_774_745_999_999_999_999),
            Some(1_774_746_000_000_000_000),
        ];
        let column = |tz: Option<&str>| {
            let array = TimestampNanosecondArray::from(values.clone());
            Arc::new(match tz {
                Some(tz) => array.with_timezone(tz),
                None => array,
            }) as ArrayRef
        };
        let batch = RecordBatch::try_from_iter([
            ("plain", column(None)),
            ("utc", column(Some("UTC"))),
            ("east", column(Some("+02:00"))),
            ("named", column(Some("Europe/Paris"))),
        ])
        .expect("batch");
        // What one Arrow writer makes of the timestamps themselves.
        let mut csv_expected = Vec::new();
        csv::WriterBuilder::new()
            .with_timestamp_format(TIMESTAMP_FORMAT.to_owned())
            .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
            .build(&mut csv_expected)
            .write(&batch)
            .expect("CSV");
        let csv_written = encode_csv(&batch, true).expect("CSV");
        assert_eq!(
            String::from_utf8(csv_written).expect("UTF-8"),
            String::from_utf8(csv_expected).expect("UTF-8")
        );
        let mut json_expected = Vec::new();
        let mut writer = json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_timestamp_format(TIMESTAMP_FORMAT.to_owned())
            .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
            .build::<_, LineDelimited>(&mut json_expected);
        writer.write(&batch).expect("JSON");
        writer.finish().expect("JSON");
        assert_eq!(
            String::from_utf8(encode_json(&batch, true).expect("JSON")).expect("UTF-8"),
            String::from_utf8(json_expected).expect("UTF-8")
        );
    }

    #[test]
    fn table_cells_are_escaped_and_nulls_named() {
        let batch = RecordBatch::try_from_iter([
            (
                "comm",
                Arc::new(StringArray::from(vec![Some("evil\u{1b}]0;x"), None])) as _,
            ),
            ("pid", Arc::new(UInt32Array::from(vec![1, 22])) as _),
        ])
        .expect("batch");
        let rows = table_rows(&batch, &[]).expect("rows");
        assert_eq!(
            rows,
            [
                vec!["evil\\u{1b}]0;x".to_owned(), "1".to_owned()],
                vec!["NULL".to_owned(), "22".to_owned()]
            ]
        );
    }
}
