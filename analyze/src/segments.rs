//! Segments missing from the inputs: a recording to a directory writes segments 0, 1, 2, ... of
//! one capture (the same `capture_id`, each with its `segment_index`); `--keep N` deletes the
//! oldest, and a command line can leave some out. What happened in a missing segment is unknown.
//!
//! Only gaps can be seen: segments after the last one given are not known to exist. Files without
//! a capture id or a segment index (format 1.0) say nothing about their neighbours.

use std::collections::BTreeMap;

use mmap_format::reader::CaptureReader;
use serde::Serialize;

use crate::labels;

/// A run of consecutive segments of one capture that is not among the inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingSegments {
    pub capture_id: String,
    /// The first and last missing `segment_index`.
    pub first_index: u32,
    pub last_index: u32,
    /// Since when the capture is unknown: the end of the segment before them, `None` when they
    /// are the capture's first segments (it started at an unknown time).
    pub unknown_from: Option<String>,
    /// Until when: the start of the segment after them.
    pub unknown_to: String,
    #[serde(skip)]
    pub unknown_from_ns: Option<i64>,
    #[serde(skip)]
    pub unknown_to_ns: i64,
}

impl MissingSegments {
    /// Whether the unknown time starts before `at`.
    pub fn before(&self, at: i64) -> bool {
        self.unknown_from_ns.is_none_or(|from| from < at)
    }

    /// `segments 0-1 of capture c0ffee00 are missing: what happened before TIME is unknown`.
    pub fn sentence(&self) -> String {
        let id: String = self.capture_id.chars().take(8).collect();
        let which = if self.first_index == self.last_index {
            format!("segment {} of capture {id} is", self.first_index)
        } else {
            format!(
                "segments {}-{} of capture {id} are",
                self.first_index, self.last_index
            )
        };
        let when = match &self.unknown_from {
            Some(from) => format!("between {from} and {}", self.unknown_to),
            None => format!("before {}", self.unknown_to),
        };
        format!("{which} missing: what happened {when} is unknown")
    }
}

/// A segment that is among the inputs.
#[derive(Clone, Copy, Debug)]
struct Present {
    start_ns: i64,
    end_ns: i64,
}

/// The runs of segments missing before or between the segments of each capture in `readers`,
/// by capture id, then index.
pub fn missing(readers: &[CaptureReader]) -> Vec<MissingSegments> {
    let mut captures: BTreeMap<&str, BTreeMap<u32, Present>> = BTreeMap::new();
    for reader in readers {
        let meta = reader.metadata();
        if let (Some(id), Some(index)) = (meta.capture_id.as_deref(), meta.segment_index) {
            captures.entry(id).or_default().insert(
                index,
                Present {
                    start_ns: meta.capture_start_ns,
                    end_ns: meta.capture_end_ns,
                },
            );
        }
    }
    let mut gaps = Vec::new();
    for (id, segments) in captures {
        let mut expected = 0_u32;
        let mut previous: Option<Present> = None;
        for (index, segment) in segments {
            if index > expected {
                gaps.push(MissingSegments {
                    capture_id: id.to_owned(),
                    first_index: expected,
                    last_index: index - 1,
                    unknown_from: previous.map(|p| labels::rfc3339_ns(p.end_ns)),
                    unknown_to: labels::rfc3339_ns(segment.start_ns),
                    unknown_from_ns: previous.map(|p| p.end_ns),
                    unknown_to_ns: segment.start_ns,
                });
            }
            expected = index.saturating_add(1);
            previous = Some(segment);
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use mmap_format::{
        metadata::CaptureMetadata,
        writer::{CaptureWriter, WriterConfig},
    };

    use super::*;

    /// An empty segment `index` of capture `id` spanning `[index * 10, index * 10 + 10)` s.
    fn segment(id: &str, index: u32) -> CaptureReader {
        let start = i64::from(index) * 10_000_000_000;
        let meta = CaptureMetadata {
            capture_id: Some(id.to_owned()),
            segment_index: Some(index),
            capture_start_ns: start,
            capture_end_ns: start + 10_000_000_000,
            ..CaptureMetadata::default()
        };
        let writer = CaptureWriter::new(Vec::new(), WriterConfig::default()).expect("writer");
        let bytes = writer.finish(&meta).expect("finish");
        CaptureReader::from_bytes(bytes).expect("read back")
    }

    fn runs(readers: &[CaptureReader]) -> Vec<(String, u32, u32, Option<i64>, i64)> {
        missing(readers)
            .into_iter()
            .map(|m| {
                (
                    m.capture_id,
                    m.first_index,
                    m.last_index,
                    m.unknown_from_ns,
                    m.unknown_to_ns,
                )
            })
            .collect()
    }

    #[test]
    fn gaps_before_and_between_segments_are_found_per_capture() {
        let s = 10_000_000_000;
        assert_eq!(runs(&[segment("a", 0), segment("a", 1)]), []);
        assert_eq!(
            runs(&[segment("a", 2), segment("a", 3)]),
            [("a".to_owned(), 0, 1, None, 2 * s)],
            "--keep removed the first two"
        );
        assert_eq!(
            runs(&[segment("a", 4), segment("b", 1), segment("a", 0)]),
            [
                ("a".to_owned(), 1, 3, Some(s), 4 * s),
                ("b".to_owned(), 0, 0, None, s)
            ]
        );
        let gap = &missing(&[segment("a", 0), segment("a", 2)])[0];
        assert!(gap.before(s + 1) && !gap.before(s));
        assert_eq!(
            gap.sentence(),
            "segment 1 of capture a is missing: what happened between \
             1970-01-01T00:00:10.000000000Z and 1970-01-01T00:00:20.000000000Z is unknown"
        );
    }
}
