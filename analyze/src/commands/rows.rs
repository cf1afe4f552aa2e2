//! The rows a command walks through one by one (`replay`, `export`, `diff`): a query over the
//! engine whose results come back decoded into [`Event`]s, so that the shared labels
//! ([`crate::labels`]) and the address-space replay ([`crate::replay`]) work on them.

use std::{path::PathBuf, process::ExitCode};

use arrow::array::{Array as _, AsArray as _, BooleanArray, RecordBatch};
use mmap_format::{
    event::{Event, RowKind},
    reader::{CaptureReader, events_from_batch},
    schema::col,
};

use crate::{
    cli::Inputs,
    engine::{Batches, Engine, EngineError, filter::RowFilter},
    input,
    output::{self, EXIT_QUERY},
};

/// The column of a [`RowQuery`] that says whether a row matches the filter (all rows are
/// read, only these shown).
pub const SELECTED: &str = "selected";

/// `events` with the decoded columns of the `calls` view beside its own, so that a `--where`
/// predicate may use either.
const DECODED_EVENTS: &str = "SELECT *, \
     CAST(ts_exit AS BIGINT) - CAST(ts AS BIGINT) AS dur_ns, \
     prot_names(prot) AS prot_names, \
     flags_names(syscall, flags) AS flags_names, \
     errno_name(errno) AS errno_name \
     FROM events";

/// When a row takes effect ([`crate::replay::effect_time`]) in SQL: a call when it returns,
/// any other row at its time. Calls whose exit was not seen sort at their entry.
pub const EFFECT_TIME: &str = "CASE WHEN kind = 'syscall' THEN coalesce(ts_exit, ts) ELSE ts END";

/// The kinds of rows shown as they happen: every kind but snapshot (as `events` shows them).
const SHOWN_KINDS: [RowKind; 5] = [
    RowKind::Syscall,
    RowKind::Fork,
    RowKind::Exec,
    RowKind::Exit,
    RowKind::Lost,
];

fn shown_kinds() -> String {
    let names: Vec<String> = SHOWN_KINDS
        .iter()
        .map(|kind| format!("'{}'", kind.as_str()))
        .collect();
    format!("{} IN ({})", col::KIND, names.join(", "))
}

/// The captures a command reads, opened, with a query engine over them.
pub struct Opened {
    pub readers: Vec<CaptureReader>,
    pub engine: Engine,
}

impl Opened {
    pub fn new(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let readers = input::open(&Inputs {
            paths: paths.to_vec(),
        })?;
        let engine = Engine::open(&readers)?;
        Ok(Self { readers, engine })
    }

    /// The predicate of `filter` (times resolved against these captures).
    pub fn predicate(&self, filter: &RowFilter) -> anyhow::Result<Option<String>> {
        if !filter.is_set() {
            return Ok(None);
        }
        let span = self.engine.span(&self.readers)?;
        filter.sql(&span)
    }

    /// ` WHERE ...` for `filter` (times resolved against these captures), or nothing.
    pub fn where_clause(&self, filter: &RowFilter) -> anyhow::Result<String> {
        if !filter.is_set() {
            return Ok(String::new());
        }
        let span = self.engine.span(&self.readers)?;
        filter.where_clause(&span)
    }

    /// The page size the captures were recorded with (x86_64's when they do not say).
    pub fn page_size(&self) -> u64 {
        self.readers
            .iter()
            .find_map(|reader| reader.metadata().page_size)
            .map(u64::from)
            .unwrap_or(crate::replay::DEFAULT_PAGE_SIZE)
    }
}

/// The rows of every kind but snapshot that pass `where_clause` ([`Opened::where_clause`]), in
/// entry-time order.
pub fn shown_in_time_order(where_clause: &str) -> String {
    format!(
        "SELECT * FROM (SELECT * FROM ({DECODED_EVENTS}) WHERE {}){where_clause} ORDER BY {}",
        shown_kinds(),
        col::TS
    )
}

/// Every row in effect-time order (as the replay engine takes them), with the column
/// [`SELECTED`] true for the rows shown (every kind but snapshot) that match `predicate`.
pub fn all_in_effect_order(predicate: Option<&str>) -> String {
    let shown = match predicate {
        Some(predicate) => format!("{} AND ({predicate})", shown_kinds()),
        None => shown_kinds(),
    };
    format!(
        "SELECT *, coalesce({shown}, false) AS {SELECTED} FROM ({DECODED_EVENTS}) \
         ORDER BY {EFFECT_TIME}, {}",
        col::TS
    )
}

/// One decoded row and whether it is selected ([`SELECTED`]; true when the query has no such
/// column).
pub struct Row {
    pub event: Event<'static>,
    pub selected: bool,
}

/// The results of a query as [`Row`]s, batch by batch.
pub struct Rows<'e> {
    batches: Batches<'e>,
    current: std::vec::IntoIter<Row>,
}

impl<'e> Rows<'e> {
    pub fn new(engine: &'e Engine, query: &str) -> Result<Self, EngineError> {
        Ok(Self {
            batches: engine.sql(query)?,
            current: Vec::new().into_iter(),
        })
    }
}

fn decode(batch: &RecordBatch) -> anyhow::Result<Vec<Row>> {
    let events = events_from_batch(batch)?;
    let selected: Option<&BooleanArray> = batch
        .column_by_name(SELECTED)
        .and_then(|column| column.as_boolean_opt());
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Row {
            event,
            selected: selected.is_none_or(|flags| flags.is_valid(i) && flags.value(i)),
        })
        .collect())
}

impl Iterator for Rows<'_> {
    type Item = anyhow::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(Ok(row));
            }
            let decoded = match self.batches.next()? {
                Ok(batch) => decode(&batch),
                Err(err) => Err(err.into()),
            };
            match decoded {
                Ok(rows) => self.current = rows.into_iter(),
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

/// The exit status of a command: a wrong query (a bad `--where`) is exit status 1 with one line
/// on stderr, any other error is left to the caller (exit status 2).
pub fn exit_code(result: anyhow::Result<()>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) if matches!(err.downcast_ref(), Some(EngineError::Query(_))) => {
            Ok(output::report_error_as(&err, EXIT_QUERY))
        }
        Err(err) => Err(err),
    }
}
