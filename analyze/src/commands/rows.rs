//! The rows a command walks through one by one (`replay`, `export`, `diff`): a query over the
//! engine whose results come back decoded into [`Event`]s, so that the shared labels
//! ([`crate::labels`]) and the address-space replay ([`crate::replay`]) work on them.

use std::path::PathBuf;

use arrow::{
    array::{Array as _, AsArray as _, BooleanArray, RecordBatch},
    compute::cast,
    datatypes::{DataType, Int64Type},
};
use mmap_format::{
    event::{Event, RowKind},
    reader::{BatchRows, CaptureReader},
    schema::col,
};

use crate::{
    cli::Inputs,
    engine::{
        Batches, Engine, EngineError,
        filter::{RowFilter, timestamp},
    },
    input,
    timespec::Span,
};

/// The column of a [`RowQuery`] that says whether a row matches the filter (all rows are
/// read, only these shown).
pub const SELECTED: &str = "selected";

pub use crate::replay::EFFECT_TIME;

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

/// The captures a command reads, opened, with a query engine over them and their time span.
pub struct Opened {
    pub readers: Vec<CaptureReader>,
    pub engine: Engine,
    pub span: Span,
}

impl Opened {
    pub fn new(paths: &[PathBuf], remote: &crate::cli::Remote) -> anyhow::Result<Self> {
        let readers = input::open(&Inputs {
            paths: paths.to_vec(),
            remote: remote.clone(),
        })?;
        let engine = Engine::open(&readers)?;
        let span = engine.span(&readers)?;
        Ok(Self {
            readers,
            engine,
            span,
        })
    }

    /// The predicate of `filter` (times resolved against these captures).
    pub fn predicate(&self, filter: &RowFilter) -> anyhow::Result<Option<String>> {
        filter.sql(&self.engine, &input::rows(), &self.span)
    }

    /// ` WHERE ...` for `filter` (times resolved against these captures), or nothing.
    pub fn where_clause(&self, filter: &RowFilter) -> anyhow::Result<String> {
        filter.where_clause(&self.engine, &input::rows(), &self.span)
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

/// The rows of every kind but snapshot that pass `where_clause` ([`Opened::where_clause`]), to
/// be read in [`Order::Entry`].
///
/// Only the capture's own columns come out: the decoded columns of [`input::rows`] (names of
/// flags, errno, ...) are there for the filter, and a row decoded into an [`Event`] has no
/// place for them. Left in the output, they were computed for every row and carried through
/// the sort.
pub fn shown(where_clause: &str) -> String {
    format!(
        "SELECT {columns} FROM \
         (SELECT * FROM (SELECT * FROM {decoded} WHERE {kinds}){where_clause})",
        columns = input::select_list(&[]),
        decoded = input::rows(),
        kinds = shown_kinds()
    )
}

/// Every row, with the column [`SELECTED`] true for the rows shown (every kind but snapshot)
/// that match `predicate`, to be read in [`Order::Effect`] (as the replay engine takes them).
/// As in [`shown`], only the capture's own columns and [`SELECTED`] come out.
pub fn all_with_selected(predicate: Option<&str>) -> String {
    let shown = match predicate {
        Some(predicate) => format!("{} AND ({predicate})", shown_kinds()),
        None => shown_kinds(),
    };
    format!(
        "SELECT {columns}, coalesce({shown}, false) AS {SELECTED} FROM {decoded}",
        columns = input::select_list(&[]),
        decoded = input::rows()
    )
}

/// The order rows are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By `ts`, when the call entered the kernel (as `events` and strace show them).
    Entry,
    /// By [`EFFECT_TIME`], then `ts` (as the replay engine takes them).
    Effect,
}

impl Order {
    fn key(self) -> &'static str {
        match self {
            Self::Entry => col::TS,
            Self::Effect => EFFECT_TIME,
        }
    }
}

/// Rows sorted at once, at most (about: a time bucket is not split). Two slices are held at a
/// time, one being handed out while the next is read ([`Sorted`]). When the engine sorted them,
/// 256 Ki rows each kept `replay` of 10 million rows at 513-527 MiB, 16.5-16.9 s, where 512
/// Ki-row slices one at a time took 569-573 MiB and 21.1-22.0 s (and 766-804 MiB, 18.6-19.9 s,
/// read ahead).
const SLICE_ROWS: i64 = 1 << 18;
/// Time buckets counted to cut the capture into slices.
const BUCKETS: i64 = 4096;
/// Rows of a slice past which the engine sorts it instead ([`Slice::engine_sorts`]): a slice is
/// held in memory whole, and one time bucket can hold any number of rows (a capture whose rows
/// share one timestamp is one bucket); the engine's sort spills to disk past its memory limit.
const HELD_ROWS: i64 = 4 * SLICE_ROWS;

/// How many rows make a slice, and how many are held at most ([`SLICE_ROWS`], [`HELD_ROWS`];
/// the tests make them small).
#[derive(Clone, Copy, Debug)]
struct Sizes {
    slice_rows: i64,
    held_rows: i64,
}

const SIZES: Sizes = Sizes {
    slice_rows: SLICE_ROWS,
    held_rows: HELD_ROWS,
};

/// The rows of a query in time order, sorted slice by slice: the rows are counted per time
/// bucket (an aggregate over the time column alone), cut into consecutive time slices of about
/// [`SLICE_ROWS`] rows, and each slice is read with its own query, its time bounds pushed down
/// to the Parquet reader (which skips the row groups outside them). A sort of the whole capture
/// at once would have to merge more than the engine's memory holds; a slice is held in memory,
/// and the first rows come out after the first slice, not after the whole capture.
///
/// A slice is not sorted by the engine (unless it has more than [`HELD_ROWS`] rows,
/// [`Slice::engine_sorts`]): its rows are handed out in the order of their sort key (a column
/// the slice's query adds), batch and row numbers sorted here, without copying a column
/// ([`slice_order`]). The engine's `ORDER BY` copied every column of every row into new
/// batches: 2.0 of the 5.1 s it took to read the 10 M rows of the benchmark capture in order
/// (`findings`, 1,319 processes replayed, the replay itself left out).
///
/// The next slice is read in the background while the rows of the current one are handed
/// out ([`Engine::sql_ahead`]): reading the rows and replaying them overlap.
pub struct Sorted<'e> {
    engine: &'e Engine,
    slices: std::vec::IntoIter<Slice>,
    /// The next slice, running (one that the engine does not sort).
    ahead: Option<Result<Batches<'e>, EngineError>>,
}

/// One time slice's query.
struct Slice {
    query: String,
    /// The query sorts (`ORDER BY`): the slice has more than [`HELD_ROWS`] rows, too many to hold;
    /// its rows are handed out as the engine sorts them, batch by batch.
    engine_sorts: bool,
}

/// The rows of the next slice.
enum Next<'e> {
    /// Read whole, to be handed out in [`slice_order`].
    Held(Vec<RecordBatch>),
    /// Sorted by the engine.
    Streamed(Batches<'e>),
}

/// The column a slice's query adds: the sort key ([`Order::key`]) as nanoseconds.
const ORDER_KEY: &str = "mmap_analyze_order_key";
/// The column a slice's query adds: `ts` as nanoseconds, the second sort key.
const ORDER_TS: &str = "mmap_analyze_order_ts";

impl<'e> Sorted<'e> {
    pub fn new(opened: &'e Opened, query: &str, order: Order) -> anyhow::Result<Self> {
        Self::over(&opened.engine, &opened.span, query, order)
    }

    /// The rows of `query` (over the captures of `engine`, which span `span`) in `order`.
    pub fn over(
        engine: &'e Engine,
        span: &Span,
        query: &str,
        order: Order,
    ) -> anyhow::Result<Self> {
        Self::sized(engine, span, query, order, SIZES)
    }

    fn sized(
        engine: &'e Engine,
        span: &Span,
        query: &str,
        order: Order,
        sizes: Sizes,
    ) -> anyhow::Result<Self> {
        let slices = match span.first_row {
            Some(first) => slice_queries(engine, span, query, order, first, sizes)?,
            None => Vec::new(),
        };
        Ok(Self {
            engine,
            slices: slices.into_iter(),
            ahead: None,
        })
    }

    /// Starts reading the next slice in the background, unless one is being read or the
    /// engine sorts it.
    fn prefetch(&mut self) {
        if self.ahead.is_some()
            || self
                .slices
                .as_slice()
                .first()
                .is_none_or(|slice| slice.engine_sorts)
        {
            return;
        }
        self.ahead = self
            .slices
            .next()
            .map(|slice| self.engine.sql_ahead(&slice.query));
    }
}

/// One query per time slice of `query`'s rows, in order.
fn slice_queries(
    engine: &Engine,
    span: &Span,
    query: &str,
    order: Order,
    first: i64,
    sizes: Sizes,
) -> anyhow::Result<Vec<Slice>> {
    let key = order.key();
    // Every row takes effect between the first entry and the span's end.
    let width = (span.end.saturating_sub(first) / BUCKETS).saturating_add(1);
    let histogram = format!(
        "SELECT CAST((CAST({key} AS BIGINT) - {first}) / {width} AS BIGINT) AS bucket, \
         count(*) AS n FROM ({query}) GROUP BY 1 ORDER BY 1"
    );
    // Each slice's upper bound and rows.
    let mut bounds = Vec::new();
    let mut rows = 0;
    for batch in engine.sql(&histogram)? {
        let batch = batch?;
        let buckets = cast(batch.column(0), &DataType::Int64)?;
        let counts = cast(batch.column(1), &DataType::Int64)?;
        let (buckets, counts) = (
            buckets.as_primitive::<Int64Type>(),
            counts.as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            rows += counts.value(i);
            if rows >= sizes.slice_rows {
                let end = buckets.value(i).saturating_add(1);
                bounds.push((Some(first.saturating_add(end.saturating_mul(width))), rows));
                rows = 0;
            }
        }
    }
    // The first slice has no lower bound and the last no upper bound: no row is left out.
    let mut queries = Vec::new();
    let mut lower: Option<i64> = None;
    for (upper, rows) in bounds.into_iter().chain([(None, rows)]) {
        let mut terms = Vec::new();
        if let Some(lower) = lower {
            terms.push(format!("{key} >= {}", timestamp(lower)));
            if order == Order::Effect {
                // The same bound on the columns the effect time is one of: the reader skips the
                // row groups before the slice (the bound on the expression alone reaches no
                // statistics, and every slice read the capture from its start).
                terms.push(format!(
                    "({} >= {lower} OR {} >= {lower})",
                    col::TS_EXIT,
                    col::TS,
                    lower = timestamp(lower)
                ));
            }
        }
        if let Some(upper) = upper {
            terms.push(format!("{key} < {}", timestamp(upper)));
            if order == Order::Effect {
                // A row takes effect at or after its entry: this bound reaches the reader.
                terms.push(format!("{} < {}", col::TS, timestamp(upper)));
            }
        }
        let filter = if terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", terms.join(" AND "))
        };
        let engine_sorts = rows > sizes.held_rows;
        let query = if engine_sorts {
            format!(
                "SELECT * FROM ({query}){filter} ORDER BY {key}, {}",
                col::TS
            )
        } else {
            format!(
                "SELECT *, CAST({key} AS BIGINT) AS {ORDER_KEY}, CAST({ts} AS BIGINT) AS \
                 {ORDER_TS} FROM ({query}){filter}",
                ts = col::TS
            )
        };
        queries.push(Slice {
            query,
            engine_sorts,
        });
        lower = upper;
    }
    Ok(queries)
}

impl Sorted<'_> {
    /// Calls `f` with every row, in order, and whether it is selected ([`SELECTED`]; true when
    /// the query has no such column). A row's strings borrow from the batch it came in: no
    /// row is copied, and only one is decoded at a time.
    pub fn for_each(
        mut self,
        mut f: impl FnMut(&Event<'_>, bool) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while let Some(next) = self.next_slice()? {
            match next {
                Next::Held(batches) => {
                    let rows = batches
                        .iter()
                        .map(BatchRows::new)
                        .collect::<Result<Vec<_>, _>>()?;
                    let selected: Vec<_> = batches.iter().map(selected_column).collect();
                    // slice_order numbers rows of these batches only.
                    for (batch, row) in slice_order(&batches)? {
                        f(&rows[batch].row(row)?, is_selected(selected[batch], row))?;
                    }
                }
                Next::Streamed(batches) => {
                    for batch in batches {
                        let batch = batch?;
                        let rows = BatchRows::new(&batch)?;
                        let selected = selected_column(&batch);
                        for row in 0..rows.len() {
                            f(&rows.row(row)?, is_selected(selected, row))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The next slice's rows (the one after it starts being read as this one is handed out).
    fn next_slice(&mut self) -> anyhow::Result<Option<Next<'_>>> {
        self.prefetch();
        if let Some(ahead) = self.ahead.take() {
            let batches = ahead?;
            self.prefetch();
            return Ok(Some(Next::Held(batches.collect::<Result<Vec<_>, _>>()?)));
        }
        match self.slices.next() {
            Some(slice) => Ok(Some(Next::Streamed(self.engine.sql(&slice.query)?))),
            None => Ok(None),
        }
    }
}

/// The [`SELECTED`] column of a batch, if the query has one.
fn selected_column(batch: &RecordBatch) -> Option<&BooleanArray> {
    batch
        .column_by_name(SELECTED)
        .and_then(|column| column.as_boolean_opt())
}

/// Whether row `row` is selected (true when the query has no [`SELECTED`] column).
fn is_selected(selected: Option<&BooleanArray>, row: usize) -> bool {
    selected.is_none_or(|flags| flags.is_valid(row) && flags.value(row))
}

/// The rows of a slice's batches in order, as (batch, row) numbers: by [`ORDER_KEY`], then
/// [`ORDER_TS`] (NULLs last, as `ORDER BY` puts them), then as read.
fn slice_order(batches: &[RecordBatch]) -> anyhow::Result<Vec<(usize, usize)>> {
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut keys: Vec<(i64, i64, u32, u32)> = Vec::with_capacity(rows);
    for (b, batch) in batches.iter().enumerate() {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|column| column.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| anyhow::anyhow!("internal error: a slice without {name}"))
        };
        let (key, ts) = (column(ORDER_KEY)?, column(ORDER_TS)?);
        let at = |values: &arrow::array::Int64Array, row: usize| {
            if values.is_null(row) {
                i64::MAX
            } else {
                values.value(row)
            }
        };
        let b = u32::try_from(b)?;
        for row in 0..batch.num_rows() {
            keys.push((at(key, row), at(ts, row), b, u32::try_from(row)?));
        }
    }
    // Rows come mostly in time order already: the stable sort merges the runs it finds (the
    // keys are all different, so it orders them as an unstable sort would).
    keys.sort();
    Ok(keys
        .into_iter()
        .map(|(_, _, batch, row)| (batch as usize, row as usize))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use mmap_format::{
        event::Syscall,
        metadata::CaptureMetadata,
        writer::{CaptureWriter, WriterConfig},
    };

    use super::*;

    /// Rows of 5 processes whose exits come in another order than their entries, and snapshot
    /// rows between them, a row every µs but a burst of 100 within 400 ns (a few time buckets:
    /// slices there are larger); no two rows share their (effect time, ts).
    fn rows() -> Vec<Event<'static>> {
        (0..600_i64)
            .map(|i| {
                let ts = if (300..400).contains(&i) {
                    300_000 + 4 * (i - 300)
                } else {
                    1_000 * i
                };
                if i % 7 == 0 {
                    Event {
                        kind: RowKind::Snapshot,
                        ts_ns: ts + 3,
                        pid: 1,
                        addr: Some(0x1000),
                        len: Some(0x1000),
                        ..Event::default()
                    }
                } else {
                    Event {
                        kind: RowKind::Syscall,
                        syscall: Some(Syscall::Munmap),
                        ts_ns: ts,
                        // Up to 4.5 rows later: the effect order is not the entry order.
                        ts_exit_ns: (i % 5 != 0).then_some(ts + 4_500 - 1_000 * (i % 5) + i % 3),
                        pid: u32::try_from(i % 5).expect("pid"),
                        comm: Cow::Borrowed("p"),
                        addr: Some(u64::try_from(i).expect("addr")),
                        ret: Some(0),
                        ..Event::default()
                    }
                }
            })
            .collect()
    }

    /// `(effect time, ts)` of every row `Sorted` hands out.
    fn read(engine: &Engine, span: &Span, order: Order, sizes: Sizes) -> Vec<(i64, i64)> {
        let query = format!("SELECT {} FROM events", input::select_list(&[]));
        let mut out = Vec::new();
        Sorted::sized(engine, span, &query, order, sizes)
            .expect("slices")
            .for_each(|e, selected| {
                assert!(selected);
                let key = match order {
                    Order::Entry => e.ts_ns,
                    Order::Effect => crate::replay::effect_time(e).unwrap_or(e.ts_ns),
                };
                out.push((key, e.ts_ns));
                Ok(())
            })
            .expect("rows");
        out
    }

    /// Slices held and sorted here, slices sorted by the engine, and both mixed hand out every
    /// row once, in order.
    #[test]
    fn slices_held_or_sorted_by_the_engine_give_every_row_in_order() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("rows.parquet");
        let mut writer = CaptureWriter::new(Vec::new(), WriterConfig::default()).expect("writer");
        for row in rows() {
            writer.push(&row).expect("push");
        }
        let meta = CaptureMetadata::default();
        std::fs::write(&path, writer.finish(&meta).expect("finish")).expect("write");
        let readers = [CaptureReader::open(&path).expect("read back")];
        let engine = Engine::open(&readers).expect("engine");
        let span = engine.span(&readers).expect("span");
        for order in [Order::Entry, Order::Effect] {
            let mut expected: Vec<(i64, i64)> = rows()
                .iter()
                .map(|e| match order {
                    Order::Entry => (e.ts_ns, e.ts_ns),
                    Order::Effect => (crate::replay::effect_time(e).unwrap_or(e.ts_ns), e.ts_ns),
                })
                .collect();
            expected.sort_unstable();
            for (slice_rows, held_rows) in [(1 << 18, 1 << 20), (50, 1 << 20), (50, 0), (50, 60)] {
                let sizes = Sizes {
                    slice_rows,
                    held_rows,
                };
                assert_eq!(
                    read(&engine, &span, order, sizes),
                    expected,
                    "{order:?} {sizes:?}"
                );
            }
        }
    }
}
