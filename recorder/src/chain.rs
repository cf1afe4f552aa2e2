//! The integrity of a capture directory (docs/FORMAT.md, "Integrity: the segment chain and the
//! manifest"): each finished segment is read back and hashed (SHA-256) on the writer thread;
//! the next segment carries the result as its `previous_segment` link, and the capture's
//! manifest lists every finished segment. Single-file captures have neither.

use std::{
    ffi::{OsStr, OsString},
    fs::File,
    path::Path,
};

use anyhow::Context as _;
use mmap_format::{
    manifest::{MAX_MANIFEST_BYTES, Manifest, ManifestSegment, manifest_name},
    metadata::{CaptureMetadata, SegmentLink, format_rfc3339_ns},
};

use crate::{launch::InvokingUser, output::OutDir};

/// SHA-256 of everything `file` holds from its start (64 lowercase hex digits), and its length.
pub fn sha256_of(file: &File) -> std::io::Result<(String, u64)> {
    mmap_format::manifest::sha256_of(file, |_| ())
}

/// The finished segment `name` in `dir`, read back and hashed, as a manifest entry that names
/// it `listed_as` (its path from the capture's directory); `meta` is the metadata it was closed
/// with and `rows` its rows.
pub fn hash_segment(
    dir: &OutDir,
    name: &OsStr,
    listed_as: &str,
    meta: &CaptureMetadata,
    rows: u64,
) -> anyhow::Result<ManifestSegment> {
    let path = dir.path_of(name);
    let file = dir.open_read(name)?;
    let (sha256, bytes) =
        sha256_of(&file).with_context(|| format!("reading back {}", path.display()))?;
    Ok(ManifestSegment {
        file: listed_as.to_owned(),
        segment_index: meta.segment_index.unwrap_or(0),
        sha256,
        bytes,
        rows,
        start: format_rfc3339_ns(meta.capture_start_ns),
        end: format_rfc3339_ns(meta.capture_end_ns),
        recovered: meta.recovered,
    })
}

/// How the manifest in `dir` names the file `name` of `in_dir` (`dir` itself or a partition
/// directory below it): its path from `dir`, `/`-separated.
pub fn listed_name(dir: &OutDir, in_dir: &OutDir, name: &OsStr) -> String {
    let full = in_dir.path_of(name);
    full.strip_prefix(dir.path())
        .unwrap_or(Path::new(name))
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The link that the segment after `segment` carries.
pub fn link_to(segment: &ManifestSegment) -> SegmentLink {
    SegmentLink {
        file: segment.file.clone(),
        segment_index: segment.segment_index,
        sha256: segment.sha256.clone(),
        bytes: segment.bytes,
        rows: segment.rows,
    }
}

/// The manifest of the capture being recorded to a directory.
pub struct Chain {
    /// Its file name in the capture directory.
    name: OsString,
    pub manifest: Manifest,
}

impl Chain {
    /// The manifest of the capture whose first segment is named `first_segment`; `None` when
    /// the capture has no id or the name is not a segment's.
    pub fn new(template: &CaptureMetadata, first_segment: &str) -> Option<Self> {
        Some(Self {
            name: manifest_name(first_segment)?.into(),
            manifest: Manifest::new(template.capture_id.as_deref()?),
        })
    }

    /// A segment was finished: listed.
    pub fn finished(&mut self, segment: ManifestSegment) {
        self.manifest.insert(segment);
    }

    /// `--keep` removed the segment listed as `file`: no longer listed, counted.
    pub fn removed(&mut self, file: &str) {
        let before = self.manifest.segments.len();
        self.manifest.segments.retain(|s| s.file != file);
        if self.manifest.segments.len() < before {
            self.manifest.removed_by_keep += 1;
        }
    }

    /// Replaces the manifest on disk.
    pub fn write(&self, dir: &OutDir, owner: Option<&InvokingUser>) -> anyhow::Result<()> {
        dir.write_atomic(&self.name, &self.manifest.to_bytes(), owner)
    }
}

/// Crash recovery completed the segment `name` of `in_dir` (with `meta` and `rows`), the
/// capture directory `dir` or one of its partition directories: it is hashed and added to its
/// capture's manifest (in `dir`), which is created if the recorder was killed before it
/// finished any segment. A manifest of another capture under that name is left as it is.
pub fn record_recovered(
    dir: &OutDir,
    in_dir: &OutDir,
    name: &OsStr,
    meta: &CaptureMetadata,
    rows: u64,
    owner: Option<&InvokingUser>,
) -> anyhow::Result<()> {
    let text = name.to_string_lossy();
    let (Some(manifest_file), Some(capture_id)) =
        (manifest_name(&text), meta.capture_id.as_deref())
    else {
        return Ok(());
    };
    let manifest_file = OsString::from(manifest_file);
    let mut manifest = match dir.read_small(&manifest_file, MAX_MANIFEST_BYTES)? {
        Some(bytes) => Manifest::parse(&bytes).with_context(|| {
            format!(
                "{} is not a manifest",
                dir.path_of(&manifest_file).display()
            )
        })?,
        None => Manifest::new(capture_id),
    };
    if manifest.capture_id != capture_id {
        anyhow::bail!(
            "{} belongs to another capture",
            dir.path_of(&manifest_file).display()
        );
    }
    let listed_as = listed_name(dir, in_dir, name);
    manifest.insert(hash_segment(in_dir, name, &listed_as, meta, rows)?);
    dir.write_atomic(&manifest_file, &manifest.to_bytes(), owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_file_is_the_standard_one() {
        let mut file = tempfile::tempfile().expect("tempfile");
        std::io::Write::write_all(&mut file, b"abc").expect("write");
        let file = {
            use std::io::Seek as _;
            file.rewind().expect("rewind");
            file
        };
        assert_eq!(
            sha256_of(&file).expect("hash"),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned(),
                3
            )
        );
    }
}
