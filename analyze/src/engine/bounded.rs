//! Strings of a capture cut to the length their source allows, as the rows are read.
//!
//! A capture is untrusted: a crafted file can hold a `comm` of megabytes in a dictionary page of
//! a few bytes, and every later step that copies the value per row (a group key, a table cell, a
//! JSON field) would then hold megabytes per row. The kernel never gives more than 15 bytes of a
//! thread name or 4,096 of a path, so each text column has a bound ([`LIMITS`]: the kernel's
//! limit, times 3 because the recorder stores lossy UTF-8 and one invalid byte becomes the three
//! bytes of U+FFFD). [`BoundedTable`] wraps a file's scan so that every value past its bound is
//! cut (at a character boundary) before any operator sees it, and says so once per file and
//! column on stderr. Dictionary columns are cut in their dictionary, not per row, so the check
//! costs a pass over the distinct values of each batch.
//!
//! The same wrapper makes a file's damage the input's fault: an error from reading it becomes a
//! [`DamagedInput`] naming the file, and each poll of its scan runs inside
//! [`mmap_format::guard::catch`] ([`Guarded`]), so a library panic on its bytes is that error too.
//!
//! Filters pushed into the Parquet reader still see the values as stored; the comparisons
//! DataFusion pushes there (`=`, `IN`, `LIKE` on dictionaries) work on the dictionary's values
//! without copying them per row.

use std::{
    collections::BTreeSet,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use arrow::{
    array::{Array, ArrayRef, AsArray as _, RecordBatch, StringArray},
    datatypes::{DataType, SchemaRef},
    error::ArrowError,
};
use async_trait::async_trait;
use datafusion::{
    catalog::{Session, TableProvider},
    common::{Statistics, config::ConfigOptions, tree_node::TreeNodeRecursion},
    datasource::{TableType, listing::ListingTable},
    error::{DataFusionError, Result},
    execution::{SendableRecordBatchStream, TaskContext},
    logical_expr::{Expr, TableProviderFilterPushDown},
    physical_expr::PhysicalExpr,
    physical_plan::{
        ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
        execution_plan::CardinalityEffect,
        filter_pushdown::{
            ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
        },
        projection::{self, ProjectionExec},
        stream::RecordBatchStreamAdapter,
    },
};
use futures::{Stream, StreamExt as _};
use mmap_format::schema::col;

/// The most bytes a value of each text column can hold, and why.
pub const LIMITS: &[(&str, usize, &str)] = &[
    (col::COMM, 48, "a thread name is at most 15 bytes"),
    (col::FILE_NAME, 768, "a file name is at most 255 bytes"),
    (col::FILE_PATH, 12_288, "a path is at most 4,096 bytes"),
    (col::CGROUP_PATH, 12_288, "a path is at most 4,096 bytes"),
    (col::KIND, 64, "a row kind is a short name"),
    (col::SYSCALL, 64, "a system call is a short name"),
    (col::SOURCE, 64, "a source is a short name"),
    (col::PATH_SOURCE, 64, "a path source is a short name"),
    (col::FRAME_MODULE, 12_288, "a path is at most 4,096 bytes"),
    (col::FRAME_FILE, 12_288, "a path is at most 4,096 bytes"),
    (
        col::FRAME_BUILD_ID,
        512,
        "a build id is a hash of a few dozen bytes, in hex",
    ),
    (
        col::FRAME_FUNCTION,
        65_536,
        "a demangled function name is long, not megabytes",
    ),
    (col::SYMBOL_SOURCE, 64, "a symbol source is a short name"),
];

fn limit_of(column: &str) -> Option<(usize, &'static str)> {
    LIMITS
        .iter()
        .find(|(name, _, _)| *name == column)
        .map(|&(_, limit, why)| (limit, why))
}

/// `table` (the scan of the capture file `file`) with its text values cut to [`LIMITS`].
#[derive(Debug)]
pub struct BoundedTable {
    inner: ListingTable,
    file: Arc<str>,
    /// The page checks its reads make, for a file opened without them
    /// ([`super::pages`]).
    pages: Option<Arc<mmap_format::pages::PageGuard>>,
}

impl BoundedTable {
    pub fn new(
        inner: ListingTable,
        file: impl Into<Arc<str>>,
        pages: Option<Arc<mmap_format::pages::PageGuard>>,
    ) -> Self {
        Self {
            inner,
            file: file.into(),
            pages,
        }
    }
}

#[async_trait]
impl TableProvider for BoundedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Planning reads the file's footer and page index again (DataFusion's own reader,
        // for statistics): damage found there names the file too.
        let scan = Guarded::new(
            self.inner.scan(state, projection, filters, limit),
            Arc::clone(&self.file),
        )
        .await
        .map_err(|e| damaged(&self.file, e))?;
        let scan = match &self.pages {
            Some(pages) => super::pages::guard_reads(scan, pages, state)?,
            None => scan,
        };
        Ok(Arc::new(CutStringsExec::new(scan, Arc::clone(&self.file))))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

/// Passes its input's batches on with every text value cut to [`LIMITS`]. Partitions, order
/// and filter push-down go through it unchanged.
#[derive(Debug)]
pub struct CutStringsExec {
    input: Arc<dyn ExecutionPlan>,
    file: Arc<str>,
}

impl CutStringsExec {
    fn new(input: Arc<dyn ExecutionPlan>, file: Arc<str>) -> Self {
        Self { input, file }
    }
}

impl DisplayAs for CutStringsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CutStringsExec")
    }
}

impl ExecutionPlan for CutStringsExec {
    fn name(&self) -> &str {
        "CutStringsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input, Arc::clone(&self.file)))),
            _ => Err(DataFusionError::Internal(
                "CutStringsExec has one child".to_owned(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = mmap_format::guard::catch(|| self.input.execute(partition, context))
            .unwrap_or_else(|panic| Err(panicked(&self.file, panic)))
            .map_err(|e| damaged(&self.file, e))?;
        let schema = input.schema();
        let file = Arc::clone(&self.file);
        let batches = Guarded::new(input, Arc::clone(&file)).map(move |batch| {
            batch
                .map_err(|e| damaged(&file, e))
                .and_then(|b| cut_batch(b, &file))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        input_stats.first().map(Arc::clone).ok_or_else(|| {
            DataFusionError::Internal("CutStringsExec: no input statistics".to_owned())
        })
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        // The projection goes into the scan (so unread columns are not decoded); the cut stays
        // above it. Only a projection of columns under their own names: the cut knows a
        // column's bound by its name, so a renamed column (`frame_function AS function`) or an
        // expression of one would pass through uncut. A plan of one partition puts such a
        // projection right above the cut (with more, a repartition stands between them).
        if !projection::all_alias_free_columns(projection.expr()) {
            return Ok(None);
        }
        Ok(self
            .input
            .try_swapping_with_projection(projection)?
            .map(|input| Arc::new(Self::new(input, Arc::clone(&self.file))) as _))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}

/// The file's bytes do not decode (a damaged page, a footer that lies about its pages): the
/// input's fault, not the query's, and the message names the file as the format library's
/// errors do.
#[derive(Debug, thiserror::Error)]
#[error("{file}: truncated or damaged Parquet file: {detail}")]
pub struct DamagedInput {
    pub file: Arc<str>,
    pub detail: String,
}

/// `err`, from the scan of `file`, as a [`DamagedInput`] when it comes from reading the file
/// (Parquet, Arrow decoding, I/O); an error of the query (a pushed-down filter that fails,
/// memory) passes unchanged.
fn damaged(file: &Arc<str>, err: DataFusionError) -> DataFusionError {
    let from_file = reading_failed(&err);
    if !from_file {
        return err;
    }
    let detail = match super::pages::page_damage(&err) {
        Some(detail) => detail.to_owned(),
        None => err.find_root().strip_backtrace(),
    };
    DataFusionError::External(Box::new(DamagedInput {
        file: Arc::clone(file),
        detail: detail.split_whitespace().collect::<Vec<_>>().join(" "),
    }))
}

/// Whether `err` comes from reading a file (Parquet, Arrow decoding, I/O), not from the query.
fn reading_failed(err: &DataFusionError) -> bool {
    match err.find_root() {
        DataFusionError::ParquetError(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_) => true,
        DataFusionError::ArrowError(arrow, _) => matches!(
            arrow.as_ref(),
            ArrowError::ParquetError(_) | ArrowError::IoError(..) | ArrowError::ExternalError(_)
        ),
        _ => false,
    }
}

/// The error for a panic of the Parquet reader on the bytes of `file` (arrow and parquet
/// assert on some malformed input, as `mmap_format::guard` says).
fn panicked(file: &Arc<str>, panic: String) -> DataFusionError {
    DataFusionError::External(Box::new(DamagedInput {
        file: Arc::clone(file),
        detail: panic,
    }))
}

/// A future or stream over the scan of `file`, each poll run inside
/// [`mmap_format::guard::catch`]: a library panic on the file's bytes becomes a
/// [`DamagedInput`] error instead of unwinding through the engine (where a panic on a runtime
/// thread ends a partition early, or the whole process), and nothing is polled after it.
struct Guarded<T> {
    inner: T,
    file: Arc<str>,
    failed: bool,
}

impl<T> Guarded<T> {
    fn new(inner: T, file: Arc<str>) -> Self {
        Self {
            inner,
            file,
            failed: false,
        }
    }
}

impl<F, V> Future for Guarded<Pin<Box<F>>>
where
    F: Future<Output = Result<V>> + ?Sized,
{
    type Output = Result<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(Err(DataFusionError::Internal(
                "polled after a panic".to_owned(),
            )));
        }
        mmap_format::guard::catch(|| this.inner.as_mut().poll(cx)).unwrap_or_else(|panic| {
            this.failed = true;
            Poll::Ready(Err(panicked(&this.file, panic)))
        })
    }
}

impl Stream for Guarded<SendableRecordBatchStream> {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        mmap_format::guard::catch(|| this.inner.poll_next_unpin(cx)).unwrap_or_else(|panic| {
            this.failed = true;
            Poll::Ready(Some(Err(panicked(&this.file, panic))))
        })
    }
}

/// `batch` with every value of a bounded column cut to its limit (the batch itself when none
/// is too long).
pub fn cut_batch(batch: RecordBatch, file: &str) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (i, field) in schema.fields().iter().enumerate() {
        let Some((limit, why)) = limit_of(field.name()) else {
            continue;
        };
        if let Some(cut) = cut_array(batch.column(i), limit) {
            note(file, field.name(), limit, why);
            columns.get_or_insert_with(|| batch.columns().to_vec())[i] = cut;
        }
    }
    match columns {
        Some(columns) => Ok(RecordBatch::try_new(schema, columns)?),
        None => Ok(batch),
    }
}

/// `array` with its values cut to `limit` bytes, or `None` when none is longer.
fn cut_array(array: &ArrayRef, limit: usize) -> Option<ArrayRef> {
    if let Some(dictionary) = array.as_any_dictionary_opt() {
        let values = cut_array(dictionary.values(), limit)?;
        return Some(dictionary.with_values(values));
    }
    // The table schema reads every text column as a dictionary of Utf8 (or Utf8).
    match array.data_type() {
        DataType::Utf8 => cut_strings(array.as_string::<i32>(), limit),
        _ => None,
    }
}

fn cut_strings(strings: &StringArray, limit: usize) -> Option<ArrayRef> {
    // The offsets alone say whether any value is too long.
    let too_long = strings
        .offsets()
        .windows(2)
        .any(|w| usize::try_from(w[1] - w[0]).unwrap_or(usize::MAX) > limit);
    if !too_long {
        return None;
    }
    let cut: StringArray = strings
        .iter()
        .map(|v| v.map(|s| cut_str(s, limit)))
        .collect();
    Some(Arc::new(cut))
}

/// The longest start of `s` of at most `limit` bytes that ends at a character boundary.
fn cut_str(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Says once per file and column that values were cut.
fn note(file: &str, column: &str, limit: usize, why: &str) {
    static SAID: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if said.insert((file.to_owned(), column.to_owned())) {
        eprintln!(
            "mmap-analyze: note: {}: {column} values longer than {limit} bytes were cut to \
             {limit} ({why}; the file was not written by the recorder as it is)",
            crate::table::visible(file)
        );
    }
}

#[cfg(test)]
mod tests {
    use arrow::{
        array::{DictionaryArray, StringArray},
        datatypes::{Field, Int32Type, Schema},
    };

    use super::*;

    #[test]
    fn a_long_dictionary_value_is_cut_in_the_dictionary_and_the_keys_stay() {
        let long = format!("{}é", "a".repeat(47)); // 49 bytes; the cut falls inside the é
        let values = StringArray::from(vec!["java", long.as_str()]);
        let keys = arrow::array::Int32Array::from(vec![0, 1, 1, 0]);
        let comm = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).expect("dict");
        let schema = Arc::new(Schema::new(vec![Field::new(
            col::COMM,
            comm.data_type().clone(),
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(comm)]).expect("batch");
        let cut = cut_batch(batch, "test.parquet").expect("cut");
        let comm = cut.column(0).as_dictionary::<Int32Type>();
        let values = comm.values().as_string::<i32>();
        assert_eq!(values.value(0), "java");
        assert_eq!(values.value(1), "a".repeat(47));
        assert_eq!(comm.keys().values().to_vec(), vec![0, 1, 1, 0]);
    }

    #[test]
    fn values_within_their_bound_leave_the_batch_as_it_was() {
        let path = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        let schema = Arc::new(Schema::new(vec![Field::new(
            col::FILE_PATH,
            DataType::Utf8,
            true,
        )]));
        let column: ArrayRef = Arc::new(StringArray::from(vec![Some(path), None]));
        let batch = RecordBatch::try_new(schema, vec![Arc::clone(&column)]).expect("batch");
        let out = cut_batch(batch, "test.parquet").expect("cut");
        assert!(Arc::ptr_eq(out.column(0), &column));
    }

    #[test]
    fn every_text_column_of_the_format_has_a_bound() {
        let schema = mmap_format::schema::schema();
        for field in schema.fields() {
            let text = match field.data_type() {
                DataType::Dictionary(_, value) => value.as_ref() == &DataType::Utf8,
                other => other == &DataType::Utf8,
            };
            assert_eq!(
                text,
                limit_of(field.name()).is_some(),
                "column {} needs a bound in LIMITS",
                field.name()
            );
        }
    }
}
