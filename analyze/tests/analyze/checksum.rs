//! Page checksums: captures carry the CRC-32 of every page (docs/FORMAT.md, "Page checksums"),
//! and the analyzer's scans verify them, so one flipped byte in a page is a damaged file, not
//! wrong rows.

use std::fs;

use bytes::Bytes;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::common::{Fixture, run};

#[test]
fn a_flipped_byte_in_a_page_is_a_damaged_file_and_exit_2() {
    let fx = Fixture::new();
    let bytes = fs::read(&fx.a).expect("read capture A");
    let footer = ParquetMetaDataReader::new()
        .parse_and_finish(&Bytes::from(bytes.clone()))
        .expect("footer");
    // The last byte of a column chunk is the last byte of its last page, never a header.
    let chunk = footer
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "addr");
    let (start, len) = chunk.expect("addr column").byte_range();
    let at = usize::try_from(start + len - 1).expect("offset");
    let mut damaged = bytes;
    damaged[at] ^= 0x01;
    let path = fx.path("damaged.parquet");
    fs::write(&path, &damaged).expect("write");

    for args in [vec!["events"], vec!["events", "--format", "json"]] {
        let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        args.insert(1, path.as_os_str());
        let out = run(&args);
        let stderr = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "mmap-analyze: {}: truncated or damaged Parquet file: ",
                path.display()
            )) && stderr.contains("CRC"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
