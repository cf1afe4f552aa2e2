//! The `events` table: every row of every input, in the format's current schema, plus the columns
//! that tell the inputs apart.
//!
//! Each file is its own Parquet scan with the full current schema, so a file of an older minor
//! reads the columns it lacks as nulls (DataFusion fills missing nullable columns), and filters
//! and projections reach each file's reader (row-group statistics and page index). The scans
//! are put together with `UNION ALL`; the columns [`CAPTURE_ID`], [`HOST`], [`FILE`], [`DATE`]
//! and the other partition keys of the inputs' paths are constants of each branch, so a filter
//! on them drops whole files at planning time.

use std::{path::Path, sync::Arc};

use datafusion::{
    common::{ScalarValue, tree_node::Transformed},
    datasource::{
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
        physical_plan::parquet::metadata::CachedParquetMetaData,
    },
    error::{DataFusionError, Result},
    execution::{cache::cache_manager::CachedFileMetadataEntry, object_store::ObjectStoreUrl},
    logical_expr::{EmptyRelation, Expr, LogicalPlan, col, lit, utils::split_conjunction},
    optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule},
    prelude::{DataFrame, SessionContext},
};
use mmap_format::{partition, reader::CaptureReader, schema};
use url::Url;

use super::bounded::BoundedTable;

/// Column of `events`: the file's `mmap_capture.capture_id` (NULL in format 1.0 files), shared
/// by every segment of one recording.
pub const CAPTURE_ID: &str = "capture_id";
/// Column of `events`: the file's `mmap_capture.hostname`.
pub const HOST: &str = "host";
/// Column of `events`: the input path as given on the command line.
pub const FILE: &str = "file";

/// Column of `events`: the `date=YYYY-MM-DD` partition directory above the file (Hive-style
/// trees, `record --partition ...date`), NULL when its path has none.
pub const DATE: &str = "date";

/// The name of the table of all rows.
pub const EVENTS: &str = "events";

/// The column of partition key `key` (a `key=value` directory above a file): [`HOST`] and
/// [`DATE`] are their own; another key is lowercased, with every character but ASCII letters,
/// digits and `_` made `_`, and prefixed with `partition_` when that names a column `events`
/// has already.
pub fn partition_column(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if name == HOST || name == DATE {
        return name;
    }
    if name.starts_with(|c: char| c.is_ascii_digit())
        || schema::col::ALL.contains(&name.as_str())
        || [CAPTURE_ID, FILE].contains(&name.as_str())
    {
        name.insert_str(0, "partition_");
    }
    name
}

/// The partition values of `input`'s path, by column ([`partition_column`]); the last of a
/// column named twice.
pub fn partition_values(input: &Path) -> Vec<(String, Option<String>)> {
    let (values, _) = partition::of_path(input);
    let mut by_column: Vec<(String, Option<String>)> = Vec::new();
    for (key, value) in values {
        let column = partition_column(&key);
        by_column.retain(|(c, _)| *c != column);
        by_column.push((column, value));
    }
    by_column
}

/// Registers the rows of `inputs` as the table [`EVENTS`]; returns the partition columns it
/// has besides [`HOST`] and [`DATE`], in the order the inputs first name them.
pub fn register_events(ctx: &SessionContext, inputs: &[CaptureReader]) -> Result<Vec<String>> {
    let partitions: Vec<Vec<(String, Option<String>)>> = inputs
        .iter()
        .map(|input| partition_values(input.path()))
        .collect();
    let mut extra: Vec<String> = Vec::new();
    for (column, _) in partitions.iter().flatten() {
        if column != HOST && column != DATE && !extra.contains(column) {
            extra.push(column.clone());
        }
    }
    let mut union: Option<DataFrame> = None;
    for (input, values) in inputs.iter().zip(&partitions) {
        let file = file_rows(ctx, input, values, &extra)?;
        union = Some(match union {
            Some(rows) => rows.union(file)?,
            None => file,
        });
    }
    let Some(events) = union else {
        return Err(DataFusionError::Plan("no input files".to_owned()));
    };
    ctx.register_table(EVENTS, events.into_view())?;
    Ok(extra)
}

/// The rows of one capture file with its constant columns: its partition `values`, and NULL
/// for the `extra` partition columns it has no value of.
fn file_rows(
    ctx: &SessionContext,
    input: &CaptureReader,
    values: &[(String, Option<String>)],
    extra: &[String],
) -> Result<DataFrame> {
    let metadata = input.metadata();
    let scan = if input.is_remote() {
        remote_scan(ctx, &input.path().to_string_lossy())?
    } else {
        parquet_scan(ctx, input.path())?
    };
    let bounded = BoundedTable::new(
        scan,
        input.path().display().to_string(),
        input.page_guard().cloned(),
    );
    let scan = ctx.read_table(Arc::new(bounded))?;
    let mut columns: Vec<Expr> = schema::col::ALL.iter().map(|name| col(*name)).collect();
    columns.extend([
        lit(ScalarValue::Utf8(metadata.capture_id.clone())).alias(CAPTURE_ID),
        lit(metadata.hostname.clone()).alias(HOST),
        lit(input.path().display().to_string()).alias(FILE),
    ]);
    let value_of = |column: &str| {
        values
            .iter()
            .find(|(c, _)| c == column)
            .and_then(|(_, v)| v.clone())
    };
    columns.push(lit(ScalarValue::Utf8(value_of(DATE))).alias(DATE));
    for column in extra {
        columns.push(lit(ScalarValue::Utf8(value_of(column))).alias(column.as_str()));
    }
    scan.select(columns)
}

/// Hands DataFusion the footer and page index that opening `input` (a local file) read and
/// checked, so that planning and the scan do not parse them again: on a capture of 10 million
/// rows that is a footer of megabytes, tens of milliseconds a parse. DataFusion keeps it only
/// while the file's size and modification time are those it finds when it reads the file.
pub async fn share_footer(ctx: &SessionContext, input: &CaptureReader) -> Result<()> {
    let absolute = input.path().canonicalize()?;
    let store = ctx
        .runtime_env()
        .object_store(ObjectStoreUrl::local_filesystem())?;
    let location = object_store::path::Path::from_absolute_path(&absolute)
        .map_err(|err| DataFusionError::External(err.into()))?;
    let meta = object_store::ObjectStoreExt::head(&store, &location).await?;
    ctx.runtime_env()
        .cache_manager
        .get_file_metadata_cache()
        .put(
            &location,
            CachedFileMetadataEntry::new(
                meta,
                Arc::new(CachedParquetMetaData::new(input.parquet_metadata())),
            ),
        );
    Ok(())
}

/// A scan of the one file at `path`, read with the current schema.
fn parquet_scan(ctx: &SessionContext, path: &Path) -> Result<ListingTable> {
    // Absolute, without `..` (which a URL path cannot hold); the file exists, it was opened.
    let absolute = path.canonicalize()?;
    // From a URL, not a string: a path with `*`, `?` or `[` in it names one file, not a glob.
    let url = Url::from_file_path(&absolute).map_err(|()| {
        DataFusionError::Plan(format!("{} cannot be read as a URL", absolute.display()))
    })?;
    url_scan(ctx, url)
}

/// A scan of the one object at `url` (`s3://bucket/key`, opened; its store is registered).
fn remote_scan(ctx: &SessionContext, url: &str) -> Result<ListingTable> {
    let url = Url::parse(url).map_err(|err| DataFusionError::Plan(format!("{url}: {err}")))?;
    url_scan(ctx, url)
}

/// A scan of the one file or object at `url`, read with the current schema.
fn url_scan(ctx: &SessionContext, url: Url) -> Result<ListingTable> {
    // The session's Parquet options (filter push-down, page index), not the defaults.
    let mut parquet = ctx.state().default_table_options().parquet;
    // Late materialization is the session's choice per query (`Engine::plan`), not the table's.
    parquet.global.pushdown_filters = false;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
        // The capture is the path given, whatever its name ends with.
        .with_file_extension("");
    let config = ListingTableConfig::new(ListingTableUrl::try_new(url, None)?)
        .with_listing_options(options)
        .with_schema(schema::schema());
    ListingTable::try_new(config)
}

/// An optimizer rule: a filter (or a scan's pushed-down filters) with a conjunct that is the
/// constant false or NULL keeps no row, so its input is not read at all. A filter on a
/// partition column makes such a conjunct in the branch of every file without that partition
/// (`date = '2026-12-01'` is `NULL = '2026-12-01'` there); DataFusion's own rules drop a filter
/// that is entirely false, not `NULL AND comm = 'x'`.
#[derive(Debug, Default)]
pub struct NeverTrue;

/// Whether `expr` is the constant false or NULL.
fn never_true(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Literal(
            ScalarValue::Boolean(None | Some(false)) | ScalarValue::Null,
            _
        )
    )
}

impl OptimizerRule for NeverTrue {
    fn name(&self) -> &str {
        "never_true_conjunct"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let empty = match &plan {
            LogicalPlan::Filter(filter) => split_conjunction(&filter.predicate)
                .into_iter()
                .any(never_true)
                .then(|| Arc::clone(filter.input.schema())),
            LogicalPlan::TableScan(scan) => scan
                .filters
                .iter()
                .flat_map(split_conjunction)
                .any(never_true)
                .then(|| Arc::clone(&scan.projected_schema)),
            _ => None,
        };
        Ok(match empty {
            Some(schema) => Transformed::yes(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema,
            })),
            None => Transformed::no(plan),
        })
    }
}
