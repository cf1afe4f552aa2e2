//! The rows of captures read through the query engine: an SQL predicate is pushed down to each
//! file's Parquet reader (row groups and pages whose statistics rule it out are skipped, and
//! only the filter columns are decoded for rows that fail it), and what passes comes back as
//! [`Event`]s in the order of the file, so the commands that replay or print rows keep their
//! logic and read a fraction of a large capture.

use std::{fmt::Write as _, vec};

use arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use mmap_format::{
    event::Event,
    reader::{CaptureReader, events_in_rows},
    schema::{self, col},
};

use crate::engine::{
    Batches, Engine, EngineError,
    filter::literal,
    tables::FILE,
    views::{DUR_NS, ERRNO_NAME, FLAGS_NAMES, PROT_NAMES},
};

/// Rows of one file that pass a predicate, in the file's order, as the engine reads them.
pub struct FileRows<'e> {
    batches: Batches<'e>,
    /// The batch being handed out, and its first row not yet decoded.
    batch: Option<(RecordBatch, usize)>,
    current: vec::IntoIter<Event<'static>>,
}

/// Rows of a batch decoded into events at a time: a reader that stops early (`events
/// --limit`) decodes (and copies the strings of) about this many rows past its last, not the
/// rest of a batch of thousands.
const DECODED_ROWS: usize = 256;

impl Iterator for FileRows<'_> {
    type Item = Result<Event<'static>, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(Ok(event));
            }
            let (batch, from) = match self.batch.take() {
                Some((batch, from)) if from < batch.num_rows() => (batch, from),
                _ => match self.batches.next()? {
                    Ok(batch) => (batch, 0),
                    Err(err) => return Some(Err(err)),
                },
            };
            let to = from.saturating_add(DECODED_ROWS);
            let decoded = events_in_rows(&batch, from..to);
            self.batch = Some((batch, to));
            match decoded {
                Ok(events) => self.current = events.into_iter(),
                Err(err) => {
                    let err = DataFusionError::External(Box::new(err));
                    return Some(Err(EngineError::Input(err)));
                }
            }
        }
    }
}

/// Every row of `events` with the decoded columns of the `calls` view beside it (`dur_ns`,
/// `prot_names`, `flags_names`, `errno_name`), for a `--where` over rows of every kind. A
/// filter on it reaches the Parquet scans like one on `events`; the decoded columns cost
/// nothing unless a query uses them.
pub fn rows() -> String {
    format!(
        "(SELECT *, CAST({exit} AS BIGINT) - CAST({ts} AS BIGINT) AS {DUR_NS}, prot_names({prot}) \
         AS {PROT_NAMES}, flags_names({syscall}, {flags}) AS {FLAGS_NAMES}, errno_name({errno}) \
         AS {ERRNO_NAME} FROM events)",
        exit = col::TS_EXIT,
        ts = col::TS,
        prot = col::PROT,
        syscall = col::SYSCALL,
        flags = col::FLAGS,
        errno = col::ERRNO,
    )
}

/// The rows of `reader` (one of the inputs `engine` was opened with) for which `predicate` is
/// true (`None`: every row), in the order of the file ([`Engine::sql_in_order`]). The
/// predicate is SQL over the columns of the `events` table and the decoded columns of the
/// `calls` view (`dur_ns`, `prot_names`, `flags_names`, `errno_name`), for rows of every kind. A
/// wrong predicate is an [`EngineError::Query`].
///
/// The columns in `unread` are not read from the files (a large capture decodes faster): they
/// come back as NULL, or 0 in a column that cannot be NULL.
pub fn file_rows<'e>(
    engine: &'e Engine,
    reader: &CaptureReader,
    predicate: Option<&str>,
    unread: &[&str],
) -> Result<FileRows<'e>, EngineError> {
    Ok(FileRows {
        batches: file_batches(engine, reader, predicate, unread)?,
        batch: None,
        current: Vec::new().into_iter(),
    })
}

/// The batches of [`file_rows`], for a caller that decodes them itself (with
/// [`BatchRows`](mmap_format::columns::BatchRows), whose events borrow their strings).
pub fn file_batches<'e>(
    engine: &'e Engine,
    reader: &CaptureReader,
    predicate: Option<&str>,
    unread: &[&str],
) -> Result<Batches<'e>, EngineError> {
    let mut query = format!(
        "SELECT {columns} FROM {rows} WHERE {FILE} = {file}",
        columns = select_list(unread),
        rows = rows(),
        file = literal(&reader.path().display().to_string())
    );
    if let Some(predicate) = predicate {
        let _ = write!(query, " AND ({predicate})");
    }
    engine.sql_in_order(&query)
}

/// Every column of the format's schema, in order; those in `unread` as a constant of the
/// column's type: NULL, or 0 when the column cannot be NULL.
pub fn select_list(unread: &[&str]) -> String {
    let schema = schema::schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            if !unread.contains(&name.as_str()) {
                return name.clone();
            }
            let value = if field.is_nullable() { "NULL" } else { "0" };
            format!("arrow_cast({value}, '{}') AS {name}", field.data_type())
        })
        .collect();
    columns.join(", ")
}
