//! Writing the results of a query: an aligned table, JSON Lines, CSV, or a Parquet file.
//!
//! Results are written batch by batch as the query produces them. Text in table cells is
//! untrusted (process names, file paths): control characters are shown escaped (`\n`,
//! `\u{1b}`), never written raw to a terminal. JSON escapes them by itself; CSV and Parquet keep
//! the values exactly, for programs to read.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use arrow::{
    array::{Array, RecordBatch},
    csv,
    datatypes::{DataType, Schema},
    error::ArrowError,
    json::{self, writer::LineDelimited},
    util::display::{ArrayFormatter, FormatOptions},
};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    errors::ParquetError,
    file::properties::WriterProperties,
};

use super::{Batches, EngineError};
use crate::table::{Align, Column, StreamingTable};

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

/// How times are written in table, JSON and CSV output: RFC 3339 with nanoseconds.
const TIMESTAMP_TZ_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.9f%:z";
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
    let schema = batches.schema();
    let mut sink = TextSink::new(format, &schema, out).map_err(EngineError::Output)?;
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows();
        sink.write(&batch).map_err(EngineError::Output)?;
    }
    sink.finish().map_err(EngineError::Output)?;
    Ok(rows)
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
        out: &'w mut W,
    },
    Json(json::Writer<&'w mut W, LineDelimited>),
    Csv(Box<csv::Writer<&'w mut W>>),
}

impl<'w, W: Write> TextSink<'w, W> {
    fn new(format: ResultFormat, schema: &Schema, out: &'w mut W) -> io::Result<Self> {
        Ok(match format {
            ResultFormat::Table => {
                let columns: Vec<Column> = schema
                    .fields()
                    .iter()
                    .map(|field| Column::new(escape(field.name()), align(field.data_type())))
                    .collect();
                Self::Table {
                    table: StreamingTable::new(&columns, TABLE_BLOCK),
                    out,
                }
            }
            ResultFormat::Json => Self::Json(
                json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .with_timestamp_format(TIMESTAMP_FORMAT.to_owned())
                    .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
                    .build(out),
            ),
            ResultFormat::Csv => Self::Csv(Box::new(
                csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_format(TIMESTAMP_FORMAT.to_owned())
                    .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
                    .build(out),
            )),
            ResultFormat::Parquet => {
                return Err(io::Error::other("Parquet results are written to a file"));
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        match self {
            Self::Table { table, out } => {
                for row in table_rows(batch)? {
                    table.push(*out, row)?;
                }
                Ok(())
            }
            Self::Json(writer) => writer.write(batch).map_err(arrow_to_io),
            Self::Csv(writer) => writer.write(batch).map_err(arrow_to_io),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Self::Table { mut table, out } => {
                table.finish(out)?;
                out.flush()
            }
            Self::Json(mut writer) => {
                writer.finish().map_err(arrow_to_io)?;
                writer.into_inner().flush()
            }
            Self::Csv(writer) => writer.into_inner().flush(),
        }
    }
}

/// Numbers align right, everything else left.
fn align(data_type: &DataType) -> Align {
    if data_type.is_numeric() {
        Align::Right
    } else {
        Align::Left
    }
}

/// The cells of every row of `batch`, as text.
fn table_rows(batch: &RecordBatch) -> io::Result<Vec<Vec<String>>> {
    let options = FormatOptions::new()
        .with_null(TABLE_NULL)
        .with_timestamp_format(Some(TIMESTAMP_FORMAT))
        .with_timestamp_tz_format(Some(TIMESTAMP_TZ_FORMAT));
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref() as &dyn Array, &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow_to_io)?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|formatter| escape(&formatter.value(row).to_string()))
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
    use std::sync::Arc;

    use arrow::array::{StringArray, UInt32Array};

    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain ü"), "plain ü");
        assert_eq!(escape("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
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
        let rows = table_rows(&batch).expect("rows");
        assert_eq!(
            rows,
            [
                vec!["evil\\u{1b}]0;x".to_owned(), "1".to_owned()],
                vec!["NULL".to_owned(), "22".to_owned()]
            ]
        );
    }
}
