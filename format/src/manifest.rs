//! The manifest of a capture directory (1.3): one small JSON file per capture that lists every
//! finished segment with its SHA-256, size and rows, so that a missing, extra, changed or
//! renamed segment shows without trusting the segments themselves.
//!
//! The recorder writes it next to the segments as `mmap-<start>-<id>.manifest.json` (the
//! segment name without its index, see [`manifest_name`]) and replaces it, atomically, each time
//! a segment is finished. docs/FORMAT.md ("Integrity: the segment chain and the manifest")
//! specifies it for other tools.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// SHA-256 of everything `input` yields, as 64 lowercase hex digits (the form of the chain, the
/// manifest and provenance), and how many bytes that was; `progress` is told the size of each
/// block read.
pub fn sha256_of(mut input: impl Read, mut progress: impl FnMut(u64)) -> io::Result<(String, u64)> {
    /// The hasher, telling `progress` what goes through it.
    struct Counted<'a, F: FnMut(u64)>(&'a mut Sha256, &'a mut F);
    impl<F: FnMut(u64)> Write for Counted<'_, F> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            (self.1)(buf.len() as u64);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = Sha256::new();
    let bytes = io::copy(&mut input, &mut Counted(&mut hasher, &mut progress))?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The value of [`Manifest::kind`].
pub const MANIFEST_KIND: &str = "mmap-capture manifest";

/// The manifest version this crate writes ([`Manifest::version`]).
pub const MANIFEST_VERSION: u32 = 1;

/// How a manifest's name ends.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The largest manifest a reader takes: about 300 bytes a segment, so far more than any
/// recording writes (a crafted one is refused rather than read into memory).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The manifest of one capture's segments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_KIND`].
    pub kind: String,
    /// [`MANIFEST_VERSION`]; a reader refuses a version it does not know.
    pub version: u32,
    /// The `capture_id` of every segment listed.
    pub capture_id: String,
    /// True once the recording ended normally and closed its last segment; false while it runs
    /// (and after a crash: the segment being written then is not listed until recovery at the
    /// next start completes it).
    pub complete: bool,
    /// Segments that `--keep` removed, the oldest of the capture: their indices are below the
    /// first listed one. 0 without `--keep`.
    #[serde(default)]
    pub removed_by_keep: u64,
    /// The segments on disk, by `segment_index`.
    pub segments: Vec<ManifestSegment>,
}

/// One finished segment in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSegment {
    /// The file name (no directory).
    pub file: String,
    pub segment_index: u32,
    /// SHA-256 of the whole file, 64 lowercase hex digits.
    pub sha256: String,
    /// The file's size, bytes.
    pub bytes: u64,
    /// Rows in the file (its footer's count).
    pub rows: u64,
    /// The segment's `capture_start` and `capture_end` metadata values (RFC 3339 UTC).
    pub start: String,
    pub end: String,
    /// The segment was completed by crash recovery.
    #[serde(default)]
    pub recovered: bool,
}

/// Why a manifest was not read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a manifest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not an mmap-capture manifest (kind {0:?})")]
    Kind(String),
    #[error("manifest version {0} is not supported (this reader knows {MANIFEST_VERSION})")]
    Version(u32),
    #[error("{0} bytes long; a manifest is at most {MAX_MANIFEST_BYTES}")]
    TooLong(u64),
}

impl Manifest {
    /// An empty manifest of capture `capture_id`.
    pub fn new(capture_id: &str) -> Self {
        Self {
            kind: MANIFEST_KIND.to_owned(),
            version: MANIFEST_VERSION,
            capture_id: capture_id.to_owned(),
            complete: false,
            removed_by_keep: 0,
            segments: Vec::new(),
        }
    }

    /// Parses and checks the kind and version.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLong(bytes.len() as u64));
        }
        let manifest: Self = serde_json::from_slice(bytes)?;
        if manifest.kind != MANIFEST_KIND {
            return Err(ManifestError::Kind(
                manifest.kind.chars().take(64).collect(),
            ));
        }
        if manifest.version != MANIFEST_VERSION {
            return Err(ManifestError::Version(manifest.version));
        }
        Ok(manifest)
    }

    /// The manifest as written: pretty-printed JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Adds `segment`, replacing an entry of the same index, and keeps the list by index.
    pub fn insert(&mut self, segment: ManifestSegment) {
        self.segments
            .retain(|s| s.segment_index != segment.segment_index);
        self.segments.push(segment);
        self.segments.sort_by_key(|s| s.segment_index);
    }
}

/// The manifest's name for the segment file `segment` (`mmap-<start>-<id>-<index>.parquet` →
/// `mmap-<start>-<id>.manifest.json`); `None` when `segment` is not named as the recorder names
/// segments.
pub fn manifest_name(segment: &str) -> Option<String> {
    let stem = segment.strip_suffix(".parquet")?;
    let (capture, index) = stem.rsplit_once('-')?;
    let named = capture.starts_with("mmap-")
        && index.len() >= 5
        && index.bytes().all(|b| b.is_ascii_digit());
    named.then(|| format!("{capture}{MANIFEST_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_segments() {
        assert_eq!(
            manifest_name("mmap-20251127T065301Z-1a2b3c4d-00007.parquet").as_deref(),
            Some("mmap-20251127T065301Z-1a2b3c4d.manifest.json")
        );
        for other in ["x.parquet", "mmap-a-7.parquet", "mmap-a-00007.json"] {
            assert_eq!(manifest_name(other), None, "{other}");
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let mut manifest = Manifest::new("c0ffee");
        for index in [1, 0, 1] {
            manifest.insert(ManifestSegment {
                file: format!("f{index}"),
                segment_index: index,
                sha256: "00".repeat(32),
                bytes: 10,
                rows: 1,
                start: "2026-01-01T00:00:00Z".into(),
                end: "2026-01-01T00:00:01Z".into(),
                recovered: false,
            });
        }
        assert_eq!(manifest.segments.len(), 2);
        let back = Manifest::parse(&manifest.to_bytes()).expect("parse");
        assert_eq!(back, manifest);
        let other = Manifest {
            kind: "x".into(),
            ..manifest.clone()
        };
        assert!(matches!(
            Manifest::parse(&other.to_bytes()),
            Err(ManifestError::Kind(_))
        ));
        let newer = Manifest {
            version: 2,
            ..manifest
        };
        assert!(matches!(
            Manifest::parse(&newer.to_bytes()),
            Err(ManifestError::Version(2))
        ));
        assert!(Manifest::parse(b"garbage").is_err());
    }
}
