//! The `events` table: every row of every input, in the format's current schema, plus the columns
//! that tell the inputs apart.
//!
//! Each file is its own Parquet scan with the full current schema, so a file of an older minor
//! reads the columns it lacks as nulls (DataFusion fills missing nullable columns), and filters
//! and projections reach each file's reader (row-group statistics and page index). The scans
//! are put together with `UNION ALL`; the columns [`CAPTURE_ID`], [`HOST`] and [`FILE`] are
//! constants of each branch, so a filter on them drops whole files at planning time.

use std::{path::Path, sync::Arc};

use datafusion::{
    common::ScalarValue,
    datasource::{
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    error::{DataFusionError, Result},
    logical_expr::{Expr, col, lit},
    prelude::{DataFrame, SessionContext},
};
use mmap_format::{reader::CaptureReader, schema};
use url::Url;

use super::bounded::BoundedTable;

/// Column of `events`: the file's `mmap_capture.capture_id` (NULL in format 1.0 files), shared
/// by every segment of one recording.
pub const CAPTURE_ID: &str = "capture_id";
/// Column of `events`: the file's `mmap_capture.hostname`.
pub const HOST: &str = "host";
/// Column of `events`: the input path as given on the command line.
pub const FILE: &str = "file";

/// The name of the table of all rows.
pub const EVENTS: &str = "events";

/// Registers the rows of `inputs` as the table [`EVENTS`].
pub fn register_events(ctx: &SessionContext, inputs: &[CaptureReader]) -> Result<()> {
    let mut union: Option<DataFrame> = None;
    for input in inputs {
        let file = file_rows(ctx, input)?;
        union = Some(match union {
            Some(rows) => rows.union(file)?,
            None => file,
        });
    }
    let Some(events) = union else {
        return Err(DataFusionError::Plan("no input files".to_owned()));
    };
    ctx.register_table(EVENTS, events.into_view())?;
    Ok(())
}

/// The rows of one capture file with its constant columns.
fn file_rows(ctx: &SessionContext, input: &CaptureReader) -> Result<DataFrame> {
    let metadata = input.metadata();
    let scan = if input.is_remote() {
        remote_scan(ctx, &input.path().to_string_lossy())?
    } else {
        parquet_scan(ctx, input.path())?
    };
    let bounded = BoundedTable::new(scan, input.path().display().to_string());
    let scan = ctx.read_table(Arc::new(bounded))?;
    let mut columns: Vec<Expr> = schema::col::ALL.iter().map(|name| col(*name)).collect();
    columns.extend([
        lit(ScalarValue::Utf8(metadata.capture_id.clone())).alias(CAPTURE_ID),
        lit(metadata.hostname.clone()).alias(HOST),
        lit(input.path().display().to_string()).alias(FILE),
    ]);
    scan.select(columns)
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
    let parquet = ctx.state().default_table_options().parquet;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
        // The capture is the path given, whatever its name ends with.
        .with_file_extension("");
    let config = ListingTableConfig::new(ListingTableUrl::try_new(url, None)?)
        .with_listing_options(options)
        .with_schema(schema::schema());
    ListingTable::try_new(config)
}
