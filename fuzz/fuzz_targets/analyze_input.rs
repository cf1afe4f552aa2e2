//! The analyzer's input path on arbitrary bytes: the bytes are written to a file, opened as
//! `mmap-analyze` opens an input (`CaptureReader::open`: checks, footer, metadata, schema) and,
//! when that accepts it, scanned by DataFusion as the analyzer's `events` table is (a
//! `ListingTable` over the one file with the capture schema, the analyzer's Parquet options),
//! with `select count(*)` and a query that decodes every column.
//!
//! Why not the analyzer itself: `mmap-analyze` is a binary crate (no library to link), and its
//! engine is a CLI-sized session (multi-thread runtime, progress lines, 768 MiB pool). This target
//! builds the same scan with the same options on a current-thread runtime, so one run takes
//! milliseconds. A library panic while the query runs is caught, as the analyzer catches one in
//! its scans (see below); any other panic is a crash.

#![no_main]

use std::{path::PathBuf, sync::Arc};

use datafusion::{
    datasource::{
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    prelude::{SessionConfig, SessionContext},
};
use libfuzzer_sys::fuzz_target;
use mmap_format::{guard, reader::CaptureReader, schema};

/// Where each run's bytes go: memory-backed when /dev/shm exists, one file per process.
fn input_path() -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("mmap-fuzz-analyze-{}.parquet", std::process::id()))
}

fn session() -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(1);
    let options = config.options_mut();
    // As analyze/src/engine/mod.rs `session()`.
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.bloom_filter_on_read = false;
    SessionContext::new_with_config(config)
}

/// The scan of analyze/src/engine/tables.rs `parquet_scan`, registered as `events`.
async fn query(path: &std::path::Path) -> datafusion::error::Result<()> {
    let ctx = session();
    let url = url::Url::from_file_path(path)
        .map_err(|()| datafusion::error::DataFusionError::Plan("not a file URL".to_owned()))?;
    let parquet = ctx.state().default_table_options().parquet;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
        .with_file_extension("");
    let config = ListingTableConfig::new(ListingTableUrl::try_new(url, None)?)
        .with_listing_options(options)
        .with_schema(schema::schema());
    ctx.register_table("events", Arc::new(ListingTable::try_new(config)?))?;
    for sql in [
        "select count(*) from events",
        // Every column decoded; the filter goes into the Parquet reader (push-down).
        "select * from events where pid <> 1 or comm like '%a%' order by ts limit 50",
    ] {
        let frame = ctx.sql(sql).await?;
        frame.collect().await?;
    }
    Ok(())
}

fuzz_target!(
    init: {
        // As `mmap-analyze`: library panics inside the format reader are caught errors.
        guard::install_quiet_hook("fuzz analyze_input");
    },
    |data: &[u8]| {
        let path = input_path();
        if std::fs::write(&path, data).is_err() {
            return;
        }
        if CaptureReader::open(&path).is_ok() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime");
            // The analyzer runs each poll of a file's scan inside `guard::catch`
            // (analyze/src/engine/bounded.rs, `Guarded`); this target cannot use that type (it is
            // in the binary crate) and catches around the whole query instead, which also
            // hides a panic of an operator above the scan.
            let _ = guard::catch(|| runtime.block_on(query(&path)));
        }
        let _ = std::fs::remove_file(&path);
    }
);
