//! Hive-style partitioned capture trees: `DIR/host=H/date=YYYY-MM-DD/mmap-...parquet`.
//!
//! A partition directory is named `key=value`, the value escaped as Hive escapes it (so Spark,
//! Trino and DuckDB read the same values): the characters Hive escapes, `%` among them, and a
//! leading `.` (a hidden directory), become `%XX` (two uppercase hex digits of the byte). An
//! empty value is Hive's `__HIVE_DEFAULT_PARTITION__` (NULL). The recorder writes them
//! (`record --partition host,date`); the analyzer reads the values of a file's path as columns.
//! docs/FORMAT.md ("Partitioned directories") specifies it.

use std::path::{Component, Path};

/// The name Hive gives a partition whose value is NULL or empty.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The keys the recorder partitions by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionKey {
    /// The host name as the capture's metadata records it (`mmap_capture.hostname`).
    Host,
    /// The UTC day a segment starts, `YYYY-MM-DD`.
    Date,
}

impl PartitionKey {
    /// Every key.
    pub const ALL: [Self; 2] = [Self::Host, Self::Date];

    /// The key as it appears in a directory name and as a column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Date => "date",
        }
    }
}

impl std::str::FromStr for PartitionKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|key| key.as_str() == s)
            .ok_or_else(|| format!("unknown partition key {s:?} (the keys are host and date)"))
    }
}

/// Whether Hive escapes `c` in a partition value (its `FileUtils.charToEscape`).
fn hive_escapes(c: char) -> bool {
    c.is_ascii_control()
        || matches!(
            c,
            '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
        )
}

/// `value` made safe for one path component, as Hive escapes it, plus a leading `.` (so no
/// value makes `.`, `..` or a hidden directory). Empty: [`DEFAULT_PARTITION`].
pub fn escape_value(value: &str) -> String {
    if value.is_empty() {
        return DEFAULT_PARTITION.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        if hive_escapes(c) || (i == 0 && c == '.') {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The directory name of `key` = `value`.
pub fn dir_name(key: PartitionKey, value: &str) -> String {
    format!("{}={}", key.as_str(), escape_value(value))
}

/// The value a partition directory names, `%XX` decoded; `None` for [`DEFAULT_PARTITION`].
/// A `%` not followed by two hex digits stays as it is (as Hive reads it); bytes that do not
/// make UTF-8 are replaced with U+FFFD.
pub fn unescape_value(text: &str) -> Option<String> {
    if text == DEFAULT_PARTITION {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `key=value` of a directory name: the key (not empty, no `%`) and the value, unescaped
/// (`None` for [`DEFAULT_PARTITION`]). Anything else is not a partition directory.
pub fn parse_dir_name(name: &str) -> Option<(String, Option<String>)> {
    let (key, value) = name.split_once('=')?;
    if key.is_empty() || key.contains('%') || key.starts_with('.') {
        return None;
    }
    Some((key.to_owned(), unescape_value(value)))
}

/// The partition values of a file's path: the `key=value` directories right above the file,
/// outermost first, and the directory above them (the root of the tree: where a recording's
/// manifest is). A file with no partition directory above it has none, and its own directory as
/// the root.
pub fn of_path(path: &Path) -> (Vec<(String, Option<String>)>, &Path) {
    let mut values = Vec::new();
    let mut root = path.parent().unwrap_or(Path::new(""));
    while let Some(Component::Normal(name)) = root.components().next_back()
        && let Some(pair) = name.to_str().and_then(parse_dir_name)
    {
        values.push(pair);
        root = root.parent().unwrap_or(Path::new(""));
    }
    values.reverse();
    (values, root)
}

/// The UTC day of `ns` (nanoseconds since the epoch), `YYYY-MM-DD`.
pub fn date_of(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d")
        .to_string()
}

/// Whether `text` is a day as [`date_of`] writes it.
pub fn is_date(text: &str) -> bool {
    text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_hive_does_and_read_back() {
        for (value, dir) in [
            ("web-01", "web-01"),
            ("a/b", "a%2Fb"),
            ("k=v", "k%3Dv"),
            ("50%", "50%25"),
            (".hidden", "%2Ehidden"),
            ("..", "%2E."),
            ("a.b", "a.b"),
            ("tab\there\n", "tab%09here%0A"),
            ("", DEFAULT_PARTITION),
            ("hôte", "hôte"),
        ] {
            assert_eq!(escape_value(value), dir, "{value:?}");
            let back = unescape_value(dir);
            assert_eq!(back.as_deref(), (!value.is_empty()).then_some(value));
        }
        assert_eq!(unescape_value("100%"), Some("100%".to_owned()));
        assert_eq!(unescape_value("%zz"), Some("%zz".to_owned()));
    }

    #[test]
    fn a_path_gives_its_partitions_and_its_root() {
        let path = Path::new("/data/rec/host=web%2F1/date=2026-12-01/mmap-x-00000.parquet");
        let (values, root) = of_path(path);
        assert_eq!(
            values,
            [
                ("host".to_owned(), Some("web/1".to_owned())),
                ("date".to_owned(), Some("2026-12-01".to_owned()))
            ]
        );
        assert_eq!(root, Path::new("/data/rec"));
        let (values, root) = of_path(Path::new("rec/x.parquet"));
        assert!(values.is_empty());
        assert_eq!(root, Path::new("rec"));
        let (values, root) = of_path(Path::new("x.parquet"));
        assert!(values.is_empty());
        assert_eq!(root, Path::new(""));
        // Only the directories right above the file.
        let (values, _) = of_path(Path::new("a=1/plain/b=2/x.parquet"));
        assert_eq!(values, [("b".to_owned(), Some("2".to_owned()))]);
        assert_eq!(parse_dir_name("=x"), None);
        assert_eq!(parse_dir_name("plain"), None);
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date_of(1_764_633_599_999_999_999), "2025-12-01");
        assert_eq!(date_of(1_764_633_600_000_000_000), "2025-12-02");
        assert!(is_date("2026-12-01"));
        assert!(!is_date("2026-13-01") && !is_date("20261201") && !is_date("2026-12-1"));
    }
}
