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
    reader::{CaptureReader, events_from_batch},
    schema::col,
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
    current: vec::IntoIter<Event<'static>>,
}

impl Iterator for FileRows<'_> {
    type Item = Result<Event<'static>, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(Ok(event));
            }
            let batch: RecordBatch = match self.batches.next()? {
                Ok(batch) => batch,
                Err(err) => return Some(Err(err)),
            };
            match events_from_batch(&batch) {
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

/// Makes every later query of `engine` read each file as one stream, row group after row group,
/// so that rows come back in the order of the file (the scan of a large file is otherwise split
/// in byte ranges read side by side).
pub fn in_file_order(engine: &Engine) -> Result<(), EngineError> {
    engine
        .sql("SET datafusion.execution.target_partitions = 1")?
        .try_for_each(|batch| batch.map(drop))
}

/// The rows of `reader` (one of the inputs `engine` was opened with) for which `predicate` is
/// true (`None`: every row), in the order of the file, once [`in_file_order`] was called. The
/// predicate is SQL over the columns of the `events` table and the decoded columns of the
/// `calls` view (`dur_ns`, `prot_names`, `flags_names`, `errno_name`), for rows of every kind. A
/// wrong predicate is an [`EngineError::Query`].
pub fn file_rows<'e>(
    engine: &'e Engine,
    reader: &CaptureReader,
    predicate: Option<&str>,
) -> Result<FileRows<'e>, EngineError> {
    let mut query = format!(
        "SELECT {columns} FROM {rows} WHERE {FILE} = {file}",
        columns = col::ALL.join(", "),
        rows = rows(),
        file = literal(&reader.path().display().to_string())
    );
    if let Some(predicate) = predicate {
        let _ = write!(query, " AND ({predicate})");
    }
    Ok(FileRows {
        batches: engine.sql(&query)?,
        current: Vec::new().into_iter(),
    })
}
