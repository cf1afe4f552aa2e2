//! The query engine: a DataFusion session over captures.
//!
//! [`Engine::open`] registers the inputs as the table `events` ([`tables`]), the views `calls`,
//! `lifecycle`, `snapshots` and `lost` over it ([`views`]) and the functions that decode raw
//! numbers into names ([`udf`]). [`Engine::sql`] runs a query and hands its results back batch by
//! batch, so output starts before the query ends and memory is bounded by the query, not by the
//! captures: scans stream, and sorts, joins and aggregations that outgrow [`MEMORY_LIMIT`] spill
//! to temporary files.
//!
//! The session runs on its own tokio runtime; callers stay synchronous.

pub mod filter;
pub mod results;
pub mod tables;
pub mod udf;
pub mod views;

use std::io;

use arrow::{array::RecordBatch, datatypes::SchemaRef};
use datafusion::{
    error::DataFusionError,
    execution::{SendableRecordBatchStream, runtime_env::RuntimeEnvBuilder},
    prelude::{SessionConfig, SessionContext},
};
use futures::StreamExt as _;
use mmap_format::reader::CaptureReader;
use tokio::runtime::Runtime;

/// The memory a query may hold before its sorts, joins and aggregations spill to disk.
pub const MEMORY_LIMIT: usize = 1 << 30;

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

/// A query session over a set of captures.
pub struct Engine {
    runtime: Runtime,
    ctx: SessionContext,
}

impl Engine {
    /// A session with `inputs` (already opened and validated) registered.
    pub fn open(inputs: &[CaptureReader]) -> Result<Self, EngineError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .build()
            .map_err(EngineError::Start)?;
        let ctx = session().map_err(EngineError::from_datafusion)?;
        for function in udf::all() {
            ctx.register_udf(function);
        }
        tables::register_events(&ctx, inputs).map_err(EngineError::Input)?;
        runtime
            .block_on(views::register(&ctx))
            .map_err(EngineError::from_datafusion)?;
        Ok(Self { runtime, ctx })
    }

    /// Plans `query` and starts running it.
    pub fn sql(&self, query: &str) -> Result<Batches<'_>, EngineError> {
        let stream = self.runtime.block_on(async {
            let frame = self.ctx.sql(query).await?;
            frame.execute_stream().await
        });
        Ok(Batches {
            runtime: &self.runtime,
            stream: stream.map_err(EngineError::from_datafusion)?,
        })
    }
}

/// A session set up for captures: late materialization of filtered columns, statistics read
/// from each file's footer, bounded memory.
fn session() -> Result<SessionContext, DataFusionError> {
    let mut config = SessionConfig::new().with_information_schema(true);
    let options = config.options_mut();
    // Decode the filter columns first and the rest only for the rows that pass.
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    // Errors can then say where in the query they are.
    options.sql_parser.collect_spans = true;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(MEMORY_LIMIT, 1.0)
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// The results of a query, batch by batch, as it runs.
pub struct Batches<'e> {
    runtime: &'e Runtime,
    stream: SendableRecordBatchStream,
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
        let next = self.runtime.block_on(self.stream.next())?;
        Some(next.map_err(EngineError::from_datafusion))
    }
}
