//! The query engine: a DataFusion session over captures.
//!
//! [`Engine::open`] registers the inputs as the table `events` ([`tables`]), the views `calls`,
//! `lifecycle`, `snapshots` and `lost` over it ([`views`]), the call-stack views `frames` and
//! `stacks` ([`stacks`]) and the functions that decode raw
//! numbers into names ([`udf`]). [`Engine::sql`] runs a query and hands its results back batch by
//! batch, so output starts before the query ends and memory is bounded by the query, not by the
//! captures: scans stream, and sorts, joins and aggregations that outgrow [`MEMORY_LIMIT`] spill
//! to temporary files.
//!
//! The session runs on its own tokio runtime; callers stay synchronous.

pub mod bounded;
pub mod dictcmp;
pub mod filter;
pub mod intern;
pub mod lazy;
pub mod mapped;
pub mod pages;
pub mod results;
pub mod stacks;
pub mod tables;
pub mod udf;
pub mod views;

use std::{
    io::{self, IsTerminal as _},
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant},
};

use arrow::{
    array::RecordBatch,
    datatypes::{DataType, SchemaRef},
};
use datafusion::{
    error::DataFusionError,
    execution::{
        SendableRecordBatchStream, SessionStateBuilder,
        memory_pool::{FairSpillPool, TrackConsumersPool},
        runtime_env::RuntimeEnvBuilder,
    },
    physical_plan::stream::RecordBatchStreamAdapter,
    prelude::{DataFrame, SessionConfig, SessionContext},
};
use futures::StreamExt as _;
use mmap_format::reader::CaptureReader;
use tokio::{
    runtime::Runtime,
    sync::{Semaphore, mpsc},
};

use crate::progress::Progress;

/// How long the results wait for a batch before the progress line is updated.
const PROGRESS_STEP: Duration = Duration::from_millis(250);

/// Set (to anything but `0`), each query's text, time and rows go to stderr as its results end:
/// which of a command's queries takes the time.
pub const LOG_QUERIES_ENV: &str = "MMAP_ANALYZE_LOG_QUERIES";

/// The memory a query may hold before its sorts, joins and aggregations spill to disk.
pub const MEMORY_LIMIT: usize = 768 << 20;

/// Why a query gave no (or not all of its) results.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The query is wrong: it does not parse, names what does not exist, or fails as it runs.
    #[error("{}", one_line(.0))]
    Query(DataFusionError),
    /// An input could not be read.
    #[error("{}", one_line(.0))]
    Input(DataFusionError),
    /// The results could not be written.
    #[error("writing the results: {0}")]
    Output(#[source] io::Error),
    /// The engine could not start.
    #[error("starting the query engine: {0}")]
    Start(#[source] io::Error),
}

impl EngineError {
    /// Sorts an error of DataFusion: reading a file is the input's fault, anything else the
    /// query's.
    fn from_datafusion(err: DataFusionError) -> Self {
        if damaged_input(&err).is_some() {
            return Self::Input(err);
        }
        match err.find_root() {
            DataFusionError::ParquetError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_) => Self::Input(err),
            _ => Self::Query(err),
        }
    }
}

/// One line saying what is wrong: DataFusion's diagnostic with where in the query it is when
/// there is one (`column 'pidd' not found at line 1, column 8; possible column calls.pid`), the
/// parser's message for a syntax error, else DataFusion's message without its backtrace.
fn one_line(err: &DataFusionError) -> String {
    if let Some(damaged) = damaged_input(err) {
        return damaged.to_string();
    }
    if let Some(diagnostic) = err.diagnostic() {
        let mut line = diagnostic.message.clone();
        if let Some(span) = diagnostic.span {
            line.push_str(&format!(
                " at line {}, column {}",
                span.start.line, span.start.column
            ));
        }
        let notes = diagnostic.notes.iter().map(|note| &note.message);
        for extra in notes.chain(diagnostic.helps.iter().map(|help| &help.message)) {
            line.push_str("; ");
            line.push_str(extra);
        }
        return line;
    }
    match err.find_root() {
        DataFusionError::SQL(parser_error, _) => parser_error.to_string(),
        _ => err.strip_backtrace(),
    }
}

/// The capture that could not be read, when reading it is what failed.
fn damaged_input(err: &DataFusionError) -> Option<&bounded::DamagedInput> {
    match err.find_root() {
        DataFusionError::External(inner) => inner.downcast_ref(),
        _ => None,
    }
}

/// A query session over a set of captures.
pub struct Engine {
    runtime: Runtime,
    ctx: SessionContext,
    /// The cores the session may use (DataFusion's count, its default `target_partitions`),
    /// whatever the session's own number of partitions ([`small_input`]).
    cores: usize,
    /// The inputs are small ([`small_input`]): every query, in-order scans too, is planned as
    /// one partition.
    small: bool,
    /// The session's tables (which hold the session until the engine is dropped).
    tables: Arc<lazy::Tables>,
    /// What is queried, for the progress line: "1 file", "12 files".
    what: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tables.release();
    }
}

impl Engine {
    /// A session with `inputs` (already opened and validated) registered.
    pub fn open(inputs: &[CaptureReader]) -> Result<Self, EngineError> {
        // I/O: s3:// inputs are read over the network by the session's object store.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(EngineError::Start)?;
        let ctx = session().map_err(EngineError::from_datafusion)?;
        let cores = partitions_of(&ctx);
        let small = small_input(&ctx, inputs);
        if small {
            ctx.state_ref()
                .write()
                .config_mut()
                .options_mut()
                .execution
                .target_partitions = 1;
        }
        let tables = lazy::Tables::install(&ctx).map_err(EngineError::from_datafusion)?;
        let numbering = intern::Numbering::new(&ctx.runtime_env().memory_pool);
        for function in udf::all().into_iter().chain([
            mapped::function(),
            numbering.string_id(),
            numbering.string_of(DataType::Utf8),
        ]) {
            ctx.register_udf(function);
        }
        ctx.add_optimizer_rule(Arc::new(intern::GroupByNumber::new(&numbering)));
        crate::input::remote::register(&ctx, inputs)
            .map_err(|err| EngineError::Input(DataFusionError::External(err.into())))?;
        let partitions = tables::register_events(&ctx, inputs).map_err(EngineError::Input)?;
        runtime
            .block_on(async {
                for input in inputs.iter().filter(|input| !input.is_remote()) {
                    tables::share_footer(&ctx, input).await?;
                }
                Ok(())
            })
            .map_err(EngineError::from_datafusion)?;
        views::define(&tables, &partitions);
        stacks::define(&ctx, &tables, &partitions);
        let what = match inputs.len() {
            1 => "1 file".to_owned(),
            n => format!("{n} files"),
        };
        Ok(Self {
            runtime,
            ctx,
            cores,
            small,
            tables,
            what,
        })
    }

    /// Plans `query` (a `SET` or `CREATE VIEW` takes effect here), with late materialization
    /// (decoding the filter's columns first, the others only for the rows that pass) on only
    /// when the query picks rows by an id ([`filter::picks_by_id`]). It pays when a filter keeps
    /// few rows (`events --pid 42` on 10 million rows: 0.13 s with it, 0.97 s without) and
    /// costs when it keeps many (a group-by over the mmap calls: 0.6-0.9 s with it, 0.33-0.66 s
    /// without), because the reader then builds and intersects selections of most rows.
    async fn plan(&self, query: &str) -> Result<DataFrame, DataFusionError> {
        Ok(self.plan_scan(query, false).await?.0)
    }

    /// [`Engine::plan`]; for a scan read in order (`in_order`) that picks rows by an id, the
    /// file is cut into [`SELECTIVE_SPLIT`] times as many partitions as the session has (the
    /// number is returned with the plan). Such a scan decodes most of the file for few rows,
    /// and more partitions than cores keep the cores busier: `maps --pid 1000 --at` four fifths
    /// into 10 M rows took 1.7-2.1 s with 2 partitions, as long with 4, 1.4-1.7 s with 8 and no
    /// less with 16 or 32 (the cause was not isolated). Each partition decodes results ahead
    /// of the one being read, which only a selective scan can afford ([`IN_ORDER_AHEAD_KIB`]).
    /// Small inputs ([`small_input`]) are not cut: their scan is one partition, as every query
    /// of theirs is.
    async fn plan_scan(
        &self,
        query: &str,
        in_order: bool,
    ) -> Result<(DataFrame, usize), DataFusionError> {
        let plan = self.ctx.state().create_logical_plan(query).await?;
        let late = filter::picks_by_id(&plan);
        let state = self.ctx.state_ref();
        // The session's own number of partitions, given back after an in-order plan.
        let planned = {
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            options.execution.parquet.pushdown_filters = late;
            options.execution.target_partitions.max(1)
        };
        if !(in_order && late) || self.small {
            return Ok((self.ctx.execute_logical_plan(plan).await?, planned));
        }
        let cores = self.cores();
        let partitions = cores
            .saturating_mul(SELECTIVE_SPLIT)
            .min(SELECTIVE_PARTITIONS_MAX)
            .max(cores);
        let set = |partitions| {
            state
                .write()
                .config_mut()
                .options_mut()
                .execution
                .target_partitions = partitions;
        };
        // The frame keeps the session's settings as they are now; later queries get the
        // session's own number back.
        set(partitions);
        let frame = self.ctx.execute_logical_plan(plan).await;
        set(planned);
        Ok((frame?, partitions))
    }

    /// The cores the session may use: an in-order scan runs as many of its partitions at a
    /// time, and one that picks rows by an id is cut into [`SELECTIVE_SPLIT`] times as many,
    /// whatever the session's number of partitions.
    fn cores(&self) -> usize {
        self.cores
    }

    /// Plans `query` and starts running it.
    pub fn sql(&self, query: &str) -> Result<Batches<'_>, EngineError> {
        let stream = self.runtime.block_on(async {
            let frame = self.plan(query).await?;
            frame.execute_stream().await
        });
        Ok(self.results(query, stream.map_err(EngineError::from_datafusion)?))
    }

    fn results(&self, query: &str, stream: SendableRecordBatchStream) -> Batches<'_> {
        let log = std::env::var_os(LOG_QUERIES_ENV)
            .is_some_and(|value| !value.is_empty() && value != "0")
            .then(|| (query.to_owned(), Instant::now()));
        Batches {
            runtime: &self.runtime,
            stream,
            progress: Progress::new(format!("querying {}", self.what), None),
            rows: 0,
            log,
        }
    }
    /// Like [`Engine::sql`], but the query runs at once in the background, to its end: its
    /// rows are read while the caller still works on something else (the slice before it, in
    /// [`crate::commands::rows::Sorted`]), and held until they are asked for. For a query
    /// whose results are small enough to hold (a slice of [`crate::commands::rows::Sorted`]).
    pub fn sql_ahead(&self, query: &str) -> Result<Batches<'_>, EngineError> {
        let (schema, frame) = self.frame(query)?;
        let mut stream = self
            .runtime
            .block_on(frame.execute_stream())
            .map_err(EngineError::from_datafusion)?;
        let (sender, mut receiver) = mpsc::unbounded_channel();
        // The task ends at the end of the results, or when they are dropped.
        self.runtime.spawn(async move {
            while let Some(batch) = stream.next().await {
                if sender.send(batch).is_err() {
                    break;
                }
            }
        });
        let batches = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        Ok(self.batches(query, schema, batches))
    }

    /// `query` planned, and the schema of its results.
    fn frame(&self, query: &str) -> Result<(SchemaRef, DataFrame), EngineError> {
        self.runtime
            .block_on(async {
                let frame = self.plan(query).await?;
                Ok((Arc::clone(frame.schema().inner()), frame))
            })
            .map_err(EngineError::from_datafusion)
    }

    /// [`Engine::frame`] for [`Engine::sql_in_order`], with the number of partitions its scan
    /// is cut into ([`Engine::plan_scan`]).
    fn frame_in_order(&self, query: &str) -> Result<(SchemaRef, DataFrame, usize), EngineError> {
        self.runtime
            .block_on(async {
                let (frame, partitions) = self.plan_scan(query, true).await?;
                Ok((Arc::clone(frame.schema().inner()), frame, partitions))
            })
            .map_err(EngineError::from_datafusion)
    }

    /// The results of a query whose batches `stream` hands out.
    fn batches(
        &self,
        query: &str,
        schema: SchemaRef,
        stream: impl futures::Stream<Item = Result<RecordBatch, DataFusionError>> + Send + 'static,
    ) -> Batches<'_> {
        self.results(
            query,
            Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        )
    }

    /// Like [`Engine::sql`], for a scan of one file whose rows must come back in the order of
    /// the file. The session is first set so that a partition keeps the order of its rows
    /// ([`IN_ORDER`]; the settings stay for later queries); the partitions then run side by
    /// side, one per core at a time and in the order of the file, and their batches are handed
    /// back partition after partition, so the order of the file is kept while every core
    /// decodes. The partitions decode at most [`IN_ORDER_AHEAD_KIB`] ahead of the one being
    /// read.
    pub fn sql_in_order(&self, query: &str) -> Result<Batches<'_>, EngineError> {
        for setting in IN_ORDER {
            self.sql(setting)?.try_for_each(|batch| batch.map(drop))?;
        }
        let (schema, frame, partitions) = self.frame_in_order(query)?;
        let ahead = (IN_ORDER_AHEAD_KIB / u32::try_from(partitions).unwrap_or(u32::MAX))
            .clamp(1, PARTITION_AHEAD_KIB);
        let streams = self
            .runtime
            .block_on(frame.execute_stream_partitioned())
            .map_err(EngineError::from_datafusion)?;
        let running = Arc::new(Semaphore::new(self.cores()));
        let mut receivers = Vec::with_capacity(streams.len());
        let mut partitions = Vec::with_capacity(streams.len());
        for stream in streams {
            let (sender, receiver) = mpsc::unbounded_channel();
            partitions.push((stream, sender));
            receivers.push(receiver);
        }
        // The partitions start in order, as many at a time as the session has cores, each
        // when one before it has ended: a reader that stops early (`events
        // --limit`) has the first ones decoded first, not all of them at once, and the later
        // ones never start. A partition waits only for partitions before it, which the reader
        // reads first, so the partition being read always runs.
        self.runtime.spawn(async move {
            for (mut stream, sender) in partitions {
                let Ok(running) = Arc::clone(&running).acquire_owned().await else {
                    break;
                };
                if sender.is_closed() {
                    // The results were dropped.
                    break;
                }
                let budget = Arc::new(Semaphore::new(ahead as usize));
                // The task ends at the end of its partition, or when the results are dropped.
                tokio::spawn(async move {
                    let _running = running;
                    while let Some(batch) = stream.next().await {
                        let kib = match &batch {
                            Ok(batch) => batch.get_array_memory_size() / 1024 + 1,
                            Err(_) => 1,
                        };
                        let cost = u32::try_from(kib).unwrap_or(u32::MAX).min(ahead);
                        let Ok(permit) = Arc::clone(&budget).acquire_many_owned(cost).await else {
                            break;
                        };
                        if sender.send((batch, permit)).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        // A batch's permit is given back as it is handed out.
        let batches = futures::stream::iter(receivers).flat_map(|receiver| {
            futures::stream::unfold(receiver, |mut receiver| async move {
                let (batch, _permit) = receiver.recv().await?;
                Some((batch, receiver))
            })
        });
        Ok(self.batches(query, schema, batches))
    }
}

/// Settings under which each partition of a file scan reads its rows in the order of the file:
/// the file is split into byte ranges (whatever its size, so small captures take the same path
/// as large ones), each read in order by its own partition (an idle partition does not steal
/// another's ranges), and no step deals rows out to other partitions.
const IN_ORDER: [&str; 3] = [
    "SET datafusion.optimizer.enable_round_robin_repartition = false",
    "SET datafusion.optimizer.repartition_file_min_size = 0",
    "SET datafusion.execution.enable_file_stream_work_stealing = false",
];

/// How much memory (KiB of batches) a partition of [`Engine::sql_in_order`] may decode ahead of
/// the one being read, at most.
const PARTITION_AHEAD_KIB: u32 = 64 * 1024;

/// How much memory (KiB of batches) all partitions of [`Engine::sql_in_order`] together may
/// decode ahead: 64 MiB each for up to 8 partitions (the 2 of a full scan, or the 8 of a
/// selective one, on two cores), less each beyond. The partitions of a selective scan
/// ([`SELECTIVE_SPLIT`]) need the full share to run side by side: `maps --pid 1000 --at` with 8
/// partitions of 16 or 32 MiB each was no faster than with 2 partitions, as they stalled on
/// their shares (a batch counts the capacity of its buffers and the whole dictionaries of its
/// string columns, megabytes for a few rows).
const IN_ORDER_AHEAD_KIB: u32 = 8 * PARTITION_AHEAD_KIB;

/// How many partitions per core an in-order scan that picks rows by an id is cut into
/// ([`Engine::plan_scan`]).
const SELECTIVE_SPLIT: usize = 4;

/// At most this many partitions for such a scan, whatever the number of cores: each may hold a
/// row group's column chunks while it decodes.
const SELECTIVE_PARTITIONS_MAX: usize = 16;

/// A session set up for captures: late materialization of filtered columns, statistics read
/// from each file's footer, bounded memory.
fn session() -> Result<SessionContext, DataFusionError> {
    let mut config = SessionConfig::new().with_information_schema(true);
    let options = config.options_mut();
    // Late materialization is chosen per query (`Engine::plan`); when on, the cheapest and
    // most selective filters run first.
    options.execution.parquet.pushdown_filters = false;
    options.execution.parquet.reorder_filters = true;
    // Errors can then say where in the query they are.
    options.sql_parser.collect_spans = true;
    // The format writes no bloom filters; looking for them costs a read per row group.
    options.execution.parquet.bloom_filter_on_read = false;
    // A `min`/`max` beside an aggregate of an expression gives wrong answers with it on:
    // DataFusion 55 builds the scan's dynamic filter from the aggregates of plain columns
    // alone, so `min(ts), max(coalesce(ts_exit, ts))` skipped the row groups after the first
    // and the end of a capture came out too early (apache/datafusion#24816, fixed after 55).
    options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    // Fair, not greedy: a sort that spills keeps only its share, so the merge after it (which
    // cannot spill) still finds memory; a greedy pool let two sorts take it all and the merge
    // of a window query over 10 M rows failed.
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(MEMORY_LIMIT),
        NonZeroUsize::new(5).expect("not zero"),
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(dictcmp::DictCompare))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.add_optimizer_rule(Arc::new(tables::NeverTrue));
    Ok(ctx)
}

/// The partitions a query of `ctx`'s session is planned with (`target_partitions`).
fn partitions_of(ctx: &SessionContext) -> usize {
    ctx.state_ref()
        .read()
        .config()
        .options()
        .execution
        .target_partitions
        .max(1)
}

/// Whether `inputs` are so small together that a query plans better as one partition: less
/// than the size under which DataFusion reads a file as one partition anyway
/// (`repartition_file_min_size`, 1 MiB), by the row groups' compressed bytes. Fanning the rows
/// of such a scan out to every core and merging them again costs more than it saves: a query
/// over a 268 KiB recording (38 K rows) planned as one partition took 0.5-1.2 ms less (`top`
/// 17.9 → 16.8 ms, the `sql` group-by 14.0 → 13.1, `latency` 16.6 → 15.9, `summary` 17.9 →
/// 17.4) and about 2 ms less CPU, where 2 MB of 800 K rows took 15 ms more (docs/PERFORMANCE.md,
/// stop 57). A scan read in order that picks rows by an id is one partition too, not cut finer
/// than the cores ([`Engine::plan_scan`]): on that recording `events --pid P --limit 100` took
/// 1.0-3.0 ms less, all of P's 37,850 rows as text 5 ms less, `extract --pid` 1.4-3 ms less,
/// `maps` within a millisecond either way (-0.9 to +1.2 ms), each with 3-9 ms less CPU
/// (docs/PERFORMANCE.md, stop 58).
fn small_input(ctx: &SessionContext, inputs: &[CaptureReader]) -> bool {
    let limit = ctx
        .state_ref()
        .read()
        .config()
        .options()
        .optimizer
        .repartition_file_min_size;
    // The sizes are the file's claims: a hostile one can only choose the partitions.
    let mut bytes: u64 = 0;
    for input in inputs {
        for group in input.parquet_metadata().row_groups() {
            bytes = bytes.saturating_add(u64::try_from(group.compressed_size()).unwrap_or(0));
        }
    }
    usize::try_from(bytes).is_ok_and(|bytes| bytes < limit)
}

/// The results of a query, batch by batch, as it runs.
pub struct Batches<'e> {
    runtime: &'e Runtime,
    stream: SendableRecordBatchStream,
    /// Shown on a terminal while a query takes more than a second.
    progress: Progress,
    /// Rows handed out so far.
    rows: u64,
    /// With [`LOG_QUERIES_ENV`] set: the query and when it started, logged when the results
    /// are dropped (the time includes the caller's, between batches).
    log: Option<(String, Instant)>,
}

impl Drop for Batches<'_> {
    fn drop(&mut self) {
        if let Some((query, started)) = &self.log {
            let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!(
                "mmap-analyze: query: {:.3} s, {} rows: {}",
                started.elapsed().as_secs_f64(),
                self.rows,
                results::escape(&query)
            );
        }
    }
}

impl Batches<'_> {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<RecordBatch, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Waits for the next batch in short steps, so the progress line appears (and moves)
        // while an aggregation or sort works for seconds before its first batch.
        let next = loop {
            // The timer is made inside the runtime, which drives it.
            let stream = &mut self.stream;
            let step = async { tokio::time::timeout(PROGRESS_STEP, stream.next()).await };
            match self.runtime.block_on(step) {
                Ok(next) => break next,
                Err(_elapsed) => self.progress.update(self.rows),
            }
        };
        match next {
            Some(Ok(batch)) => {
                self.rows += batch.num_rows() as u64;
                if io::stdout().is_terminal() {
                    // The results on the same terminal show the progress themselves; a line
                    // redrawn between them would garble them.
                    self.progress.stop();
                } else {
                    self.progress.update(self.rows);
                }
                Some(Ok(batch))
            }
            Some(Err(err)) => {
                self.progress.finish();
                Some(Err(EngineError::from_datafusion(err)))
            }
            None => {
                self.progress.finish();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use mmap_format::{
        event::{Event, RowKind, Syscall},
        metadata::CaptureMetadata,
        writer::WriterConfig,
    };

    use super::*;
    use crate::input;

    /// 40 row groups of 50 calls, of processes 7 and 8 in turn, times rising: a file an
    /// in-order scan by pid cuts into more partitions than there are cores.
    fn capture(dir: &tempfile::TempDir) -> CaptureReader {
        let config = WriterConfig {
            row_group_rows: 50,
            ..WriterConfig::default()
        };
        let events: Vec<Event<'_>> = (0..2_000_u32)
            .map(|i| Event {
                kind: RowKind::Syscall,
                syscall: Some(Syscall::Mmap),
                ts_ns: 1_000 + i64::from(i),
                ts_exit_ns: Some(1_001 + i64::from(i)),
                pid: 7 + (i % 2),
                tid: 7 + (i % 2),
                comm: Cow::Borrowed("a"),
                ret: Some(0x1000),
                ..Event::default()
            })
            .collect();
        input::capture_file(
            dir,
            "two-processes.parquet",
            config,
            &CaptureMetadata::default(),
            &events,
        )
    }

    /// Every batch of `query` (a `SET` gives none).
    fn all(engine: &Engine, query: &str) -> Vec<RecordBatch> {
        engine
            .sql(query)
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn times(rows: impl Iterator<Item = Result<Event<'static>, EngineError>>) -> Vec<i64> {
        rows.map(|row| row.expect("row").ts_ns).collect()
    }

    /// A text value longer than its bound is cut even when a query renames its column in a
    /// plan of one partition, where the projection sits right on the cut
    /// ([`bounded::CutStringsExec`]).
    #[test]
    fn a_renamed_column_is_cut_in_a_plan_of_one_partition() {
        let dir = tempfile::tempdir().expect("temp dir");
        let long = "c".repeat(1_000);
        let events = [Event {
            kind: RowKind::Syscall,
            syscall: Some(Syscall::Mmap),
            ts_ns: 1_000,
            pid: 7,
            tid: 7,
            comm: Cow::Borrowed(long.as_str()),
            ..Event::default()
        }];
        let reader = input::capture_file(
            &dir,
            "long-name.parquet",
            WriterConfig::default(),
            &CaptureMetadata::default(),
            &events,
        );
        let engine = Engine::open(std::slice::from_ref(&reader)).expect("engine");
        all(&engine, "SET datafusion.execution.target_partitions = 1");
        for query in [
            "SELECT comm AS name FROM events",
            "SELECT comm AS name, pid FROM events WHERE pid = 7",
        ] {
            let batches = all(&engine, query);
            let name = arrow::compute::cast(batches[0].column(0), &DataType::Utf8).expect("cast");
            let name = name.as_any().downcast_ref::<arrow::array::StringArray>();
            assert_eq!(name.expect("text").value(0).len(), 48, "{query}");
        }
    }

    /// A capture smaller than the size under which DataFusion reads a file as one partition is
    /// planned as one partition (no rows dealt out to the cores and merged again), with the
    /// same answer; so is its scan in order by pid, which the rows of a larger file cut finer
    /// than the cores (the next test). The engine still knows the session's cores.
    #[test]
    fn a_small_capture_is_planned_as_one_partition() {
        let dir = tempfile::tempdir().expect("temp dir");
        let reader = capture(&dir);
        let inputs = std::slice::from_ref(&reader);
        let engine = Engine::open(inputs).expect("engine");
        assert!(engine.small);
        assert_eq!(partitions_of(&engine.ctx), 1);
        let session = session().expect("session");
        assert_eq!(engine.cores(), partitions_of(&session));
        let by_pid = format!(
            "SELECT ts FROM events WHERE file = '{}' AND pid IN (7)",
            reader.path().display()
        );
        let (_, _, partitions) = engine.frame_in_order(&by_pid).expect("plan");
        assert_eq!(partitions, 1);
        let want: Vec<i64> = (0..2_000).step_by(2).map(|i| 1_000 + i).collect();
        let rows = input::file_rows(&engine, &reader, Some("pid IN (7)"), &[]).expect("rows");
        assert_eq!(times(rows), want);
        // The same capture is not small where every file is split.
        session
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .optimizer
            .repartition_file_min_size = 0;
        assert!(!small_input(&session, inputs));

        let text = |engine: &Engine, query: &str| -> String {
            arrow::util::pretty::pretty_format_batches(&all(engine, query))
                .expect("format")
                .to_string()
        };
        let query = "SELECT pid, count(*) AS n FROM events GROUP BY pid ORDER BY pid";
        let plan = text(&engine, &format!("EXPLAIN {query}"));
        assert!(!plan.contains("RepartitionExec"), "{plan}");
        let spread = Engine::open(inputs).expect("engine");
        all(&spread, "SET datafusion.execution.target_partitions = 2");
        assert!(text(&spread, &format!("EXPLAIN {query}")).contains("RepartitionExec"));
        assert_eq!(text(&engine, query), text(&spread, query));
    }

    /// The partitions of an in-order scan start one per core at a time: the rows still come back
    /// in the order of the file, whole, and a reader that stops early leaves the engine usable
    /// (a later partition waiting for a core does not keep the results alive).
    #[test]
    fn partitions_started_in_turn_give_the_file_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let reader = capture(&dir);
        let mut engine = Engine::open(std::slice::from_ref(&reader)).expect("engine");
        // As on a 2-core machine, whatever this one has, for a file large enough to be split.
        engine.cores = 2;
        engine.small = false;
        let query = format!(
            "SELECT ts FROM events WHERE file = '{}' AND pid IN (7)",
            reader.path().display()
        );
        let (_, _, partitions) = engine.frame_in_order(&query).expect("plan");
        assert!(
            partitions > engine.cores(),
            "{partitions} partitions for {} cores: the scan is not cut finer than the cores",
            engine.cores()
        );

        let want: Vec<i64> = (0..2_000).step_by(2).map(|i| 1_000 + i).collect();
        let all = input::file_rows(&engine, &reader, Some("pid IN (7)"), &[]).expect("rows");
        assert_eq!(times(all), want);

        let first = input::file_rows(&engine, &reader, Some("pid IN (7)"), &[]).expect("rows");
        assert_eq!(times(first.take(3)), want[..3]);
        let again = input::file_rows(&engine, &reader, Some("pid IN (8)"), &[]).expect("rows");
        let odd: Vec<i64> = (1..2_000).step_by(2).map(|i| 1_000 + i).collect();
        assert_eq!(times(again), odd);
    }
}
