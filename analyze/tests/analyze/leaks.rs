//! Where a value survives in a capture file: every place a Parquet file can hold one. Used by
//! the redact tests here and, through `#[path]`, by the end-to-end test on a real recording
//! (tests/tests/end_to_end/derive.rs), so both look in the same places.

use arrow_array::{
    Array, ArrayRef, DictionaryArray, StringArray, UInt32Array,
    cast::AsArray as _,
    types::{Int32Type, UInt32Type},
};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::{
    arrow::arrow_reader::ParquetRecordBatchReaderBuilder,
    file::{
        metadata::{PageIndexPolicy, ParquetMetaDataReader},
        page_index::column_index::ColumnIndexMetaData,
    },
};

/// What is looked for: text anywhere, and ids in the `uid` and `gid` columns.
pub struct Secrets<'a> {
    pub texts: &'a [&'a str],
    pub ids: &'a [u32],
}

/// Every place in the capture `bytes` where a secret survives, one line each (empty: none):
/// the raw bytes; each key and value of the key-value metadata (`ARROW:schema` decoded from
/// base64 too) and `created_by`; the schema's names; each column chunk's statistics; each
/// page's min and max in the column index; every decoded value of every column, and the whole
/// dictionary of each dictionary-encoded column (values no row uses included).
pub fn find(bytes: &[u8], secrets: &Secrets<'_>) -> Vec<String> {
    let mut found = Vec::new();
    let texts: Vec<&[u8]> = secrets.texts.iter().map(|s| s.as_bytes()).collect();
    let has_text = |hay: &[u8]| texts.iter().any(|s| contains(hay, s));
    if has_text(bytes) {
        found.push("raw file bytes".to_owned());
    }
    let data = Bytes::copy_from_slice(bytes);
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(&data)
        .expect("footer and page index read");
    let file = metadata.file_metadata();
    for kv in file.key_value_metadata().into_iter().flatten() {
        let value = kv.value.as_deref().unwrap_or_default();
        if has_text(kv.key.as_bytes()) || has_text(value.as_bytes()) {
            found.push(format!("key-value metadata {}", kv.key));
        }
        if kv.key == "ARROW:schema" {
            let decoded = base64_decode(value);
            assert!(!decoded.is_empty(), "ARROW:schema decodes");
            if has_text(&decoded) {
                found.push("ARROW:schema (decoded)".to_owned());
            }
        }
    }
    if file.created_by().is_some_and(|c| has_text(c.as_bytes())) {
        found.push("created_by".to_owned());
    }
    for column in file.schema_descr().columns() {
        if has_text(column.name().as_bytes()) {
            found.push(format!("schema name {}", column.name()));
        }
    }
    let id_bytes: Vec<[u8; 4]> = secrets.ids.iter().map(|id| id.to_le_bytes()).collect();
    let is_id_column = |name: &str| name == "uid" || name == "gid";
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for (c, chunk) in group.columns().iter().enumerate() {
            let name = chunk.column_descr().name();
            if let Some(stats) = chunk.statistics() {
                for bound in [stats.min_bytes_opt(), stats.max_bytes_opt()]
                    .into_iter()
                    .flatten()
                {
                    if has_text(bound) {
                        found.push(format!("statistics of {name} in row group {g}"));
                    }
                    if is_id_column(name) && id_bytes.iter().any(|id| bound == id) {
                        found.push(format!("id in statistics of {name} in row group {g}"));
                    }
                }
            }
            let index = metadata
                .column_index()
                .and_then(|groups| groups.get(g))
                .and_then(|columns| columns.get(c));
            match index {
                Some(ColumnIndexMetaData::BYTE_ARRAY(pages)) => {
                    let bounds = pages.min_values_iter().chain(pages.max_values_iter());
                    if bounds.flatten().any(&has_text) {
                        found.push(format!("page index of {name} in row group {g}"));
                    }
                }
                Some(ColumnIndexMetaData::INT32(pages)) if is_id_column(name) => {
                    let bounds = pages.min_values_iter().chain(pages.max_values_iter());
                    if bounds
                        .flatten()
                        .any(|b| id_bytes.iter().any(|id| b.to_le_bytes() == *id))
                    {
                        found.push(format!("id in page index of {name} in row group {g}"));
                    }
                }
                _ => {}
            }
        }
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .expect("open rows")
        .build()
        .expect("read rows");
    for batch in reader {
        let batch = batch.expect("decode a batch");
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            for text in strings(column) {
                if has_text(text.as_bytes()) {
                    found.push(format!("value of {name}: {text}"));
                }
            }
            if is_id_column(name)
                && let Some(ids) = column.as_any().downcast_ref::<UInt32Array>()
                && ids.iter().flatten().any(|id| secrets.ids.contains(&id))
            {
                found.push(format!("id in the values of {name}"));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Every string an array holds: its values, and for a dictionary the whole dictionary.
fn strings(column: &ArrayRef) -> Vec<String> {
    match column.data_type() {
        DataType::Utf8 => column
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| a.iter().flatten().map(str::to_owned).collect())
            .unwrap_or_default(),
        DataType::Dictionary(key, _) if **key == DataType::Int32 => {
            let dict: &DictionaryArray<Int32Type> = column.as_dictionary();
            strings(dict.values())
        }
        DataType::Dictionary(key, _) if **key == DataType::UInt32 => {
            let dict: &DictionaryArray<UInt32Type> = column.as_dictionary();
            strings(dict.values())
        }
        _ => Vec::new(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Standard base64 (with or without padding), as `ARROW:schema` is written.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let mut acc = 0_u32;
    let mut bits = 0;
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}
