//! The one error type of this crate.
//!
//! Every variant prints as one line. Variants that concern a capture file name its path first,
//! `"{path}: ..."`, so a command-line tool can print the error as it is.

use std::path::{Path, PathBuf};

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

/// Errors of the capture writer, the reader and the metadata codec.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The path does not exist.
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },

    /// The file has 0 bytes (e.g. a recorder that was killed before its first row group).
    #[error("{}: empty file (0 bytes), not a capture", .path.display())]
    Empty { path: PathBuf },

    /// The file does not start with the Parquet magic `PAR1`.
    #[error("{}: not a Parquet file (no PAR1 magic)", .path.display())]
    NotParquet { path: PathBuf },

    /// The file starts like Parquet but its end or its footer cannot be read, or its data pages
    /// cannot be decoded. A capture cut short (a recorder killed before closing its file, a copy
    /// that did not finish) ends up here.
    #[error("{}: truncated or damaged Parquet file: {detail}", .path.display())]
    Truncated { path: PathBuf, detail: String },

    /// A valid Parquet file without the `mmap_capture.format_major` key.
    #[error("{}: Parquet file without mmap-capture metadata (not a capture)", .path.display())]
    NotACapture { path: PathBuf },

    /// A capture of a format major version this reader does not read.
    #[error(
        "{}capture format {major}.{minor} is not supported by this reader (supports {supported}.x){}",
        path_prefix(.path.as_deref()),
        read_with_hint(.read_with.as_deref()),
        supported = crate::FORMAT_MAJOR
    )]
    UnsupportedVersion {
        /// The file, when the metadata came from one.
        path: Option<PathBuf>,
        major: u32,
        minor: u32,
        /// The `mmap-analyze` version the file says reads it (`mmap_capture.read_with`), when
        /// it looks like a version number.
        read_with: Option<String>,
    },

    /// A capture metadata key is missing or its value does not parse.
    #[error(
        "{}bad metadata value for {key}: {detail}",
        path_prefix(.path.as_deref())
    )]
    BadMetadata {
        /// The file, when the metadata came from one.
        path: Option<PathBuf>,
        key: String,
        detail: String,
    },

    /// The file's schema lacks a column of its format version, or has one of the wrong type.
    #[error("{}: bad capture schema: {detail}", .path.display())]
    BadSchema { path: PathBuf, detail: String },

    /// A record batch handed to [`crate::reader::events_from_batch`] does not have the current
    /// schema (missing column, wrong type, null in a non-null column). Unknown `kind` and
    /// `syscall` names are not errors: they decode as `Other`.
    #[error(
        "{}cannot decode column {column}: {detail}",
        path_prefix(.path.as_deref())
    )]
    Decode {
        /// The file, when the batch came from [`crate::reader::CaptureReader::events`].
        path: Option<PathBuf>,
        column: String,
        detail: String,
    },

    /// An I/O error on a named file other than "not found".
    #[error("{}: {source}", .path.display())]
    FileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The writer configuration is unusable (e.g. 0 rows per row group, a bad zstd level).
    #[error("invalid writer configuration: {0}")]
    InvalidConfig(String),

    /// An event the writer cannot store (e.g. [`crate::event::RowKind::Other`]). Nothing of
    /// it was written.
    #[error("cannot write event: {0}")]
    InvalidEvent(String),

    /// [`crate::recover::recover`] on a capture that has a valid footer: there is nothing to
    /// recover. A stale journal next to it has been removed.
    #[error("{}: capture is complete (it has a valid footer); nothing to recover", .path.display())]
    AlreadyComplete { path: PathBuf },

    /// [`crate::recover::recover`] on a capture without a footer and without a journal.
    #[error(
        "{}: no footer, and no journal next to it ({}); nothing to recover from",
        .path.display(),
        .journal.display()
    )]
    NoJournal { path: PathBuf, journal: PathBuf },

    /// A journal that recovery cannot use at all (bad header, no complete first frame, a
    /// capture file that does not match it). A torn or corrupt frame after a good one is not
    /// an error: recovery uses the frames before it.
    #[error("{}: unusable journal: {detail}", .path.display())]
    BadJournal { path: PathBuf, detail: String },

    /// An I/O error of the writer's sink.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// An error of the Parquet library (writer side).
    #[error("Parquet error: {}", one_line(&.0.to_string()))]
    Parquet(#[from] ParquetError),

    /// An error of the Arrow library (writer side).
    #[error("Arrow error: {}", one_line(&.0.to_string()))]
    Arrow(#[from] ArrowError),
}

impl FormatError {
    /// Attaches a path to the errors that can be produced without one.
    pub(crate) fn with_path(mut self, file: &Path) -> Self {
        if let Self::UnsupportedVersion { path, .. }
        | Self::BadMetadata { path, .. }
        | Self::Decode { path, .. } = &mut self
        {
            path.get_or_insert_with(|| file.to_path_buf());
        }
        self
    }

    pub(crate) fn bad_metadata(key: &str, detail: impl std::fmt::Display) -> Self {
        Self::BadMetadata {
            path: None,
            key: key.to_owned(),
            detail: one_line(&detail.to_string()),
        }
    }

    pub(crate) fn decode(column: &str, detail: impl std::fmt::Display) -> Self {
        Self::Decode {
            path: None,
            column: column.to_owned(),
            detail: one_line(&detail.to_string()),
        }
    }
}

/// "; it is read by mmap-analyze V or later" when the file names a plausible version (the value
/// comes from an untrusted file: only short strings of digits, letters, `.`, `-` and `+` are
/// printed).
fn read_with_hint(version: Option<&str>) -> String {
    match version {
        Some(v)
            if !v.is_empty()
                && v.len() <= 32
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c)) =>
        {
            format!("; the file says mmap-analyze {v} or later reads it")
        }
        _ => String::new(),
    }
}

fn path_prefix(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("{}: ", path.display()),
        None => String::new(),
    }
}

/// Joins the lines of a library message so that every error prints as one line.
pub(crate) fn one_line(message: &str) -> String {
    if message.contains(['\n', '\r']) {
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        message.to_owned()
    }
}
