//! The page checks of a capture opened without them ([`CaptureReader::open_deferred`]), made
//! on the bytes the engine's Parquet reader fetches, before it decodes them.
//!
//! Opening a capture of millions of rows used to walk every page header of the file
//! ([`mmap_format::pages`]), a third of a short question's time. Now each file's scan reads
//! through [`GuardedReader`], which hands every range it fetched to the file's
//! [`PageGuard`]: a column chunk is walked (in the fetched bytes, when it was fetched whole)
//! the first time a query reads any of it. A page that declares more memory than a capture's
//! pages hold is refused before any reader allocates it, as before, and a query that reads no
//! page of it (`count(*)`, answered from the footer) no longer pays for, or fails on, it.
//!
//! [`CaptureReader::open_deferred`]: mmap_format::reader::CaptureReader::open_deferred

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use datafusion::{
    catalog::Session,
    common::tree_node::{Transformed, TreeNode as _},
    datasource::{
        listing::PartitionedFile,
        physical_plan::{
            FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
            parquet::DefaultParquetFileReaderFactory,
        },
        source::DataSourceExec,
    },
    error::{DataFusionError, Result},
    physical_plan::{ExecutionPlan, metrics::ExecutionPlanMetricsSet},
};
use futures::{FutureExt as _, future::BoxFuture};
use mmap_format::{FormatError, pages::PageGuard};
use parquet::{
    arrow::{arrow_reader::ArrowReaderOptions, async_reader::AsyncFileReader},
    errors::ParquetError,
    file::metadata::ParquetMetaData,
};

/// `plan` (the scan of one capture file) with every Parquet read of it checked by `guard`.
/// A scan of another kind than Parquet files is refused: its reads could not be checked.
pub fn guard_reads(
    plan: Arc<dyn ExecutionPlan>,
    guard: &Arc<PageGuard>,
    state: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some((config, source)) = exec.downcast_to_file_source::<ParquetSource>() else {
            return Err(DataFusionError::Internal(
                "a scan of a capture that is not a Parquet scan: its page checks cannot be made"
                    .to_owned(),
            ));
        };
        let inner = match source.parquet_file_reader_factory() {
            Some(factory) => Arc::clone(factory),
            None => Arc::new(DefaultParquetFileReaderFactory::new(
                state.runtime_env().object_store(&config.object_store_url)?,
            )),
        };
        let source =
            source
                .clone()
                .with_parquet_file_reader_factory(Arc::new(GuardedReaderFactory {
                    inner,
                    guard: Arc::clone(guard),
                }));
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .build();
        let exec = exec.clone().with_data_source(Arc::new(config));
        Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>))
    })
    .map(|transformed| transformed.data)
}

/// Makes the readers of one capture file's scan: DataFusion's own, each wrapped in a
/// [`GuardedReader`].
#[derive(Debug)]
struct GuardedReaderFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
    guard: Arc<PageGuard>,
}

impl ParquetFileReaderFactory for GuardedReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(GuardedReader {
            inner,
            guard: Arc::clone(&self.guard),
        }))
    }
}

/// A reader of a capture file that checks the pages of what it fetched before it returns it,
/// and reads with the footer the checks are made against (the one the capture was opened
/// with), not one read again from the file.
struct GuardedReader {
    inner: Box<dyn AsyncFileReader + Send>,
    guard: Arc<PageGuard>,
}

/// The error of a failed check, for the reader: the [`FormatError`] itself, which the scan's
/// error ([`super::bounded`]) finds and says as the opening of the file would.
fn refused(err: FormatError) -> ParquetError {
    ParquetError::External(Box::new(err))
}

/// What a failed page check (of [`GuardedReader`]) found, when `err` is one.
pub fn page_damage(err: &DataFusionError) -> Option<&str> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.find_root());
    while let Some(err) = source {
        if let Some(FormatError::Truncated { detail, .. }) = err.downcast_ref::<FormatError>() {
            return Some(detail);
        }
        source = err.source();
    }
    None
}

impl AsyncFileReader for GuardedReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let bytes = self.inner.get_bytes(range.clone()).await?;
            self.guard.check_fetched(range, &bytes).map_err(refused)?;
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let fetched = self.inner.get_byte_ranges(ranges.clone()).await?;
            for (range, bytes) in ranges.into_iter().zip(&fetched) {
                self.guard.check_fetched(range, bytes).map_err(refused)?;
            }
            Ok(fetched)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let metadata = Arc::clone(self.guard.metadata());
        async move { Ok(metadata) }.boxed()
    }
}
