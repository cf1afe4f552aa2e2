//! The capture metadata, stored as Parquet key-value metadata (all values strings).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{FORMAT_MAJOR, FORMAT_MINOR, FormatError};

/// The metadata keys.
pub mod keys {
    /// Integer, "1".
    pub const FORMAT_MAJOR: &str = "mmap_capture.format_major";
    /// Integer, "0".
    pub const FORMAT_MINOR: &str = "mmap_capture.format_minor";
    pub const RECORDER_VERSION: &str = "mmap_capture.recorder_version";
    pub const HOSTNAME: &str = "mmap_capture.hostname";
    /// `uname -r`.
    pub const KERNEL_RELEASE: &str = "mmap_capture.kernel_release";
    /// `/proc/sys/kernel/random/boot_id`.
    pub const BOOT_ID: &str = "mmap_capture.boot_id";
    /// JSON array of `{"boot_ns", "realtime_ns", "uncertainty_ns"}`.
    pub const CLOCK_ANCHORS: &str = "mmap_capture.clock_anchors";
    /// RFC 3339 UTC with nanoseconds.
    pub const CAPTURE_START: &str = "mmap_capture.capture_start";
    /// RFC 3339 UTC with nanoseconds.
    pub const CAPTURE_END: &str = "mmap_capture.capture_end";
    /// JSON object `{"system_wide", "pids", "command"}`.
    pub const TARGETS: &str = "mmap_capture.targets";
    /// JSON array of strings.
    pub const COMMAND_LINE: &str = "mmap_capture.command_line";
    pub const ATTACH_MODE: &str = "mmap_capture.attach_mode";
    /// JSON object of counters.
    pub const COUNTERS: &str = "mmap_capture.counters";
    /// UUID-like string shared by every segment of one capture (1.1, optional).
    pub const CAPTURE_ID: &str = "mmap_capture.capture_id";
    /// Integer, position of the file among the segments of its capture (1.1, optional).
    pub const SEGMENT_INDEX: &str = "mmap_capture.segment_index";
    /// Integer, bytes (1.1, optional).
    pub const PAGE_SIZE: &str = "mmap_capture.page_size";
    /// "true" when the file was completed by crash recovery (1.1, optional).
    pub const RECOVERED: &str = "mmap_capture.recovered";
    /// JSON object [`super::SegmentLink`]: the segment written before this one in its capture,
    /// with its SHA-256 (1.3, optional; absent in a capture's first segment).
    pub const PREVIOUS_SEGMENT: &str = "mmap_capture.previous_segment";
    /// JSON object [`super::Redaction`]: what `mmap-analyze redact` replaced, and how
    /// (1.3, optional; never the key).
    pub const REDACTION: &str = "mmap_capture.redaction";
    /// JSON array of [`super::Derivation`]: the captures this file was made from, oldest step
    /// first (1.3, optional; absent in what a recorder wrote).
    pub const PROVENANCE: &str = "mmap_capture.provenance";
    /// The oldest `mmap-analyze` version that reads this file, e.g. "0.1.0" (1.3, optional). A
    /// reader that refuses the file's major version names it.
    pub const READ_WITH: &str = "mmap_capture.read_with";
    /// JSON object [`super::StacksConfig`]: the recording took user call stacks, and how
    /// (1.4, optional; absent when it took none).
    pub const STACKS: &str = "mmap_capture.stacks";

    /// The keys of format 1.0, in the order the writer stores them. Every 1.x file has them.
    pub const REQUIRED: [&str; 13] = [
        FORMAT_MAJOR,
        FORMAT_MINOR,
        RECORDER_VERSION,
        HOSTNAME,
        KERNEL_RELEASE,
        BOOT_ID,
        CLOCK_ANCHORS,
        CAPTURE_START,
        CAPTURE_END,
        TARGETS,
        COMMAND_LINE,
        ATTACH_MODE,
        COUNTERS,
    ];

    /// The keys added by formats 1.1 (the first four), 1.3 (the next four) and 1.4 (the last),
    /// in the order the writer stores them (after [`REQUIRED`]). Optional: the writer stores
    /// each only when it is set.
    pub const OPTIONAL: [&str; 9] = [
        CAPTURE_ID,
        SEGMENT_INDEX,
        PAGE_SIZE,
        RECOVERED,
        PREVIOUS_SEGMENT,
        REDACTION,
        PROVENANCE,
        READ_WITH,
        STACKS,
    ];

    /// Every key of the current format version, in the order the writer stores them:
    /// [`REQUIRED`], then [`OPTIONAL`].
    pub const ALL: [&str; REQUIRED.len() + OPTIONAL.len()] = concat(REQUIRED, OPTIONAL);

    /// `a` then `b` (so the full list is derived from the per-version lists, not kept twice).
    const fn concat<const A: usize, const B: usize, const N: usize>(
        a: [&'static str; A],
        b: [&'static str; B],
    ) -> [&'static str; N] {
        assert!(A + B == N);
        let mut out = [""; N];
        let mut i = 0;
        while i < A {
            out[i] = a[i];
            i += 1;
        }
        while i < N {
            out[i] = b[i - A];
            i += 1;
        }
        out
    }
}

/// A format version: the major refuses, the minors are additive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatVersion {
    pub major: u32,
    pub minor: u32,
}

impl FormatVersion {
    /// The version this crate writes.
    pub const CURRENT: Self = Self {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
    };

    /// Whether this crate reads files of this version (any minor of its major).
    pub const fn is_supported(&self) -> bool {
        self.major == FORMAT_MAJOR
    }
}

impl Default for FormatVersion {
    fn default() -> Self {
        Self::CURRENT
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A pair of readings of CLOCK_BOOTTIME and CLOCK_REALTIME taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAnchor {
    /// CLOCK_BOOTTIME, ns (what `bpf_ktime_get_boot_ns()` returns).
    pub boot_ns: u64,
    /// CLOCK_REALTIME, ns since the Unix epoch.
    pub realtime_ns: i64,
    /// How far apart the two readings may be, ns.
    pub uncertainty_ns: u64,
}

impl ClockAnchor {
    /// Converts a CLOCK_BOOTTIME reading to wall-clock ns since the Unix epoch:
    /// `boot_ns + (realtime_ns - self.boot_ns)`, saturating at the ends of `i64`.
    pub fn boot_to_wall_ns(&self, boot_ns: u64) -> i64 {
        let wall = i128::from(boot_ns) + i128::from(self.realtime_ns) - i128::from(self.boot_ns);
        i64::try_from(wall).unwrap_or(if wall < 0 { i64::MIN } else { i64::MAX })
    }
}

/// What the recorder was asked to record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub system_wide: bool,
    pub pids: Vec<u32>,
    /// The command the recorder started and recorded, if any.
    pub command: Option<Vec<String>>,
    /// Thread names (`comm`) recorded (1.1; `[]` when absent).
    #[serde(default)]
    pub comms: Vec<String>,
    /// cgroup v2 paths recorded (1.1; `[]` when absent).
    #[serde(default)]
    pub cgroups: Vec<String>,
    /// Whether children of the target processes were recorded too (1.1; `false` when absent).
    #[serde(default)]
    pub follow_forks: bool,
}

/// Event counts of the recorder, kernel and user side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Rows written.
    pub emitted: u64,
    /// Events dropped in the kernel because the ring buffer was full.
    pub lost_ringbuf_full: u64,
    /// Syscall exits seen without their entry (e.g. calls in progress when recording started).
    pub orphan_exits: u64,
    /// Syscall entries dropped because their in-flight state could not be kept (the in-flight
    /// map was full; since task-local storage, the kernel could not allocate it).
    pub entry_map_full: u64,
    /// Ring buffer records that user space could not decode.
    pub decode_errors: u64,
    /// New processes of the targets that were not followed because the kernel side's map of
    /// followed processes was full: their system calls are not recorded (1.2; 0 when absent).
    #[serde(default)]
    pub follow_map_full: u64,
}

impl Counters {
    /// Events lost: `lost_ringbuf_full + entry_map_full + decode_errors`.
    pub fn lost(&self) -> u64 {
        self.lost_ringbuf_full
            .saturating_add(self.entry_map_full)
            .saturating_add(self.decode_errors)
    }
}

/// A link of the segment chain: the segment written before this one (1.3). A reader checks the
/// previous file's bytes against `sha256`, so a changed, missing, swapped or extra segment shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentLink {
    /// The previous segment's file name (no directory), as the recorder wrote it.
    pub file: String,
    pub segment_index: u32,
    /// SHA-256 of the previous segment's whole file, 64 lowercase hex digits.
    pub sha256: String,
    /// The previous segment's size, bytes.
    pub bytes: u64,
    /// The previous segment's rows.
    pub rows: u64,
}

/// What `mmap-analyze redact` did to a capture (1.3). Never holds the key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// How pseudonyms are made: "hmac-sha256".
    pub method: String,
    /// Identifies the key without revealing it: the first 16 hex digits of
    /// HMAC-SHA256(key, "mmap-capture key id"). Two captures redacted with the same `key_id`
    /// have the same pseudonyms for the same values, so they can be joined.
    pub key_id: String,
    /// What was done to each kind of value, e.g. `{"paths": "dirs", "comm": "hash",
    /// "ids": "hash", "hostname": "hash", "cgroups": "hash", "inodes": "keep"}`.
    pub fields: std::collections::BTreeMap<String, String>,
    /// The tool that redacted, e.g. "mmap-analyze 0.1.0".
    pub tool: String,
}

/// How a recording took user call stacks (1.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StacksConfig {
    /// "fp" (the kernel walked frame pointers) or "dwarf" (a copy of the top of the user stack,
    /// unwound in user space from DWARF call-frame information).
    pub mode: String,
    /// The system calls whose rows have stacks, e.g. `["mmap", "munmap"]`.
    pub syscalls: Vec<String>,
    /// The most frames kept per stack.
    pub max_frames: u32,
    /// "dwarf": the most bytes of user stack copied per call; 0 for "fp".
    #[serde(default)]
    pub stack_bytes: u32,
}

/// One step that made this file from other captures (1.3): an extract, a pack or a redaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    /// "extract", "pack" or "redact".
    pub operation: String,
    /// e.g. "mmap-analyze 0.1.0".
    pub tool: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The input files, in the order they were read.
    pub parents: Vec<ParentFile>,
    /// The selection an extract applied, as given (`--where`, `--pid`, ...); empty otherwise.
    #[serde(default)]
    pub selection: Vec<String>,
}

/// An input file of a [`Derivation`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentFile {
    /// The file name without its directory; empty when the step hid it (`redact`: a name
    /// can tell what the capture was meant to hide).
    #[serde(default)]
    pub file: String,
    pub capture_id: Option<String>,
    pub segment_index: Option<u32>,
    /// SHA-256 of the whole input file, 64 lowercase hex digits.
    pub sha256: String,
    pub bytes: u64,
    pub rows: u64,
}

/// Everything a capture says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureMetadata {
    /// The writer stores [`FormatVersion::CURRENT`] whatever this says; a reader reports the
    /// file's version.
    pub format_version: FormatVersion,
    pub recorder_version: String,
    pub hostname: String,
    pub kernel_release: String,
    pub boot_id: String,
    /// The first converts boot time to wall time; later ones (e.g. one taken at the end) let a
    /// reader check the drift.
    pub clock_anchors: Vec<ClockAnchor>,
    /// Wall-clock ns since the Unix epoch.
    pub capture_start_ns: i64,
    /// Wall-clock ns since the Unix epoch.
    pub capture_end_ns: i64,
    pub targets: Targets,
    /// The recorder's argv.
    pub command_line: Vec<String>,
    /// How the recorder attached: "tracepoint", "raw_tracepoint", "kprobe" or "fentry".
    pub attach_mode: String,
    /// For a segment, the kernel counter deltas from the segment's opening to its closing.
    pub counters: Counters,
    /// Shared by every segment of one capture (1.1; `None` in 1.0 files).
    pub capture_id: Option<String>,
    /// The file's position among the segments of its capture, 0 for the first or only one
    /// (1.1; `None` in 1.0 files).
    pub segment_index: Option<u32>,
    /// Page size of the recording machine, bytes (1.1; `None` in 1.0 files).
    pub page_size: Option<u32>,
    /// The file was completed by crash recovery ([`crate::recover::recover`]) rather than by
    /// its writer (1.1; `false` in 1.0 files).
    pub recovered: bool,
    /// The segment before this one in its capture (1.3; `None` for a first segment and in
    /// older files).
    pub previous_segment: Option<SegmentLink>,
    /// What was redacted, when the file is a redacted copy (1.3).
    pub redaction: Option<Redaction>,
    /// How the file was made from other captures, oldest step first (1.3; `[]` for a
    /// recording).
    pub provenance: Vec<Derivation>,
    /// The oldest `mmap-analyze` version that reads the file (1.3; `None` in older files;
    /// [`Default`] sets [`READS_WITH`]).
    pub read_with: Option<String>,
    /// How the recording took user call stacks (1.4; `None` when it took none and in older
    /// files).
    pub stacks: Option<StacksConfig>,
}

/// The oldest `mmap-analyze` release that reads what this crate writes: the writer stores it in
/// [`keys::READ_WITH`], so a reader too old for a later major can say which version to get.
pub const READS_WITH: &str = "0.1.0";

impl Default for CaptureMetadata {
    /// The current format version and [`READS_WITH`], everything else empty or zero.
    fn default() -> Self {
        Self {
            format_version: FormatVersion::CURRENT,
            recorder_version: String::new(),
            hostname: String::new(),
            kernel_release: String::new(),
            boot_id: String::new(),
            clock_anchors: Vec::new(),
            capture_start_ns: 0,
            capture_end_ns: 0,
            targets: Targets::default(),
            command_line: Vec::new(),
            attach_mode: String::new(),
            counters: Counters::default(),
            capture_id: None,
            segment_index: None,
            page_size: None,
            recovered: false,
            previous_segment: None,
            redaction: None,
            provenance: Vec::new(),
            read_with: Some(READS_WITH.to_owned()),
            stacks: None,
        }
    }
}

impl CaptureMetadata {
    /// The first clock anchor, the one that converts boot time to wall time.
    pub fn clock_anchor(&self) -> Option<&ClockAnchor> {
        self.clock_anchors.first()
    }

    /// The key-value pairs, in the order of [`keys::ALL`]: every key of [`keys::REQUIRED`], then
    /// those of [`keys::OPTIONAL`] that are set (`recovered` only when true).
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        // One value per key, in the order of the key lists (a missing one does not compile).
        let values: [String; keys::REQUIRED.len()] = [
            self.format_version.major.to_string(),
            self.format_version.minor.to_string(),
            self.recorder_version.clone(),
            self.hostname.clone(),
            self.kernel_release.clone(),
            self.boot_id.clone(),
            to_json(&self.clock_anchors),
            format_rfc3339_ns(self.capture_start_ns),
            format_rfc3339_ns(self.capture_end_ns),
            to_json(&self.targets),
            to_json(&self.command_line),
            self.attach_mode.clone(),
            to_json(&self.counters),
        ];
        let optional: [Option<String>; keys::OPTIONAL.len()] = [
            self.capture_id.clone(),
            self.segment_index.map(|i| i.to_string()),
            self.page_size.map(|size| size.to_string()),
            self.recovered.then(|| "true".to_owned()),
            self.previous_segment.as_ref().map(to_json),
            self.redaction.as_ref().map(to_json),
            (!self.provenance.is_empty()).then(|| to_json(&self.provenance)),
            self.read_with.clone(),
            self.stacks.as_ref().map(to_json),
        ];
        let required = keys::REQUIRED.iter().zip(values.map(Some));
        required
            .chain(keys::OPTIONAL.iter().zip(optional))
            .filter_map(|(key, value)| Some(((*key).to_owned(), value?)))
            .collect()
    }

    /// Parses the key-value pairs. Requires every key of format 1.0 (all 1.x files have them),
    /// takes the keys of 1.1 when present, and refuses a major version other than
    /// [`FORMAT_MAJOR`]; ignores unknown keys. When a key appears twice, the first wins.
    pub fn from_key_values(kv: &[(String, String)]) -> Result<Self, FormatError> {
        let find = |key: &str| -> Option<&str> {
            kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        };
        let get = |key: &str| -> Result<&str, FormatError> {
            find(key).ok_or_else(|| FormatError::bad_metadata(key, "missing"))
        };
        // The names the readers copy into every row (host, capture id) or print in a line are
        // refused past what the kernel or the recorder can produce: a crafted file could
        // otherwise make each row megabytes long.
        let short = |key: &str, value: &str| -> Result<String, FormatError> {
            let limit = short_limit(key);
            if value.len() > limit {
                return Err(FormatError::bad_metadata(
                    key,
                    format_args!("{} bytes long; it is at most {limit}", value.len()),
                ));
            }
            Ok(value.to_owned())
        };
        let format_version = FormatVersion {
            major: parse_u32(keys::FORMAT_MAJOR, get(keys::FORMAT_MAJOR)?)?,
            minor: parse_u32(keys::FORMAT_MINOR, get(keys::FORMAT_MINOR)?)?,
        };
        if !format_version.is_supported() {
            return Err(FormatError::UnsupportedVersion {
                path: None,
                major: format_version.major,
                minor: format_version.minor,
                read_with: find(keys::READ_WITH).map(str::to_owned),
            });
        }
        Ok(Self {
            format_version,
            recorder_version: short(keys::RECORDER_VERSION, get(keys::RECORDER_VERSION)?)?,
            hostname: short(keys::HOSTNAME, get(keys::HOSTNAME)?)?,
            kernel_release: short(keys::KERNEL_RELEASE, get(keys::KERNEL_RELEASE)?)?,
            boot_id: short(keys::BOOT_ID, get(keys::BOOT_ID)?)?,
            clock_anchors: from_json(keys::CLOCK_ANCHORS, get(keys::CLOCK_ANCHORS)?)?,
            capture_start_ns: parse_rfc3339_ns(keys::CAPTURE_START, get(keys::CAPTURE_START)?)?,
            capture_end_ns: parse_rfc3339_ns(keys::CAPTURE_END, get(keys::CAPTURE_END)?)?,
            targets: from_json(keys::TARGETS, get(keys::TARGETS)?)?,
            command_line: from_json(keys::COMMAND_LINE, get(keys::COMMAND_LINE)?)?,
            attach_mode: short(keys::ATTACH_MODE, get(keys::ATTACH_MODE)?)?,
            counters: from_json(keys::COUNTERS, get(keys::COUNTERS)?)?,
            capture_id: find(keys::CAPTURE_ID)
                .map(|v| short(keys::CAPTURE_ID, v))
                .transpose()?,
            segment_index: find(keys::SEGMENT_INDEX)
                .map(|v| parse_u32(keys::SEGMENT_INDEX, v))
                .transpose()?,
            page_size: find(keys::PAGE_SIZE)
                .map(|v| parse_u32(keys::PAGE_SIZE, v))
                .transpose()?,
            recovered: find(keys::RECOVERED)
                .map(|v| parse_bool(keys::RECOVERED, v))
                .transpose()?
                .unwrap_or(false),
            previous_segment: find(keys::PREVIOUS_SEGMENT)
                .map(|v| from_json(keys::PREVIOUS_SEGMENT, v))
                .transpose()?,
            redaction: find(keys::REDACTION)
                .map(|v| from_json(keys::REDACTION, v))
                .transpose()?,
            provenance: find(keys::PROVENANCE)
                .map(|v| from_json(keys::PROVENANCE, v))
                .transpose()?
                .unwrap_or_default(),
            read_with: find(keys::READ_WITH)
                .map(|v| short(keys::READ_WITH, v))
                .transpose()?,
            stacks: find(keys::STACKS)
                .map(|v| from_json(keys::STACKS, v))
                .transpose()?,
        })
    }
}

/// The most bytes a short metadata value may hold: a host name or kernel release is at most 64
/// bytes in the kernel (`__NEW_UTS_LEN`), and lossy UTF-8 makes one byte up to three; the other
/// values are identifiers the recorder writes (a UUID, a version, a mode name).
fn short_limit(key: &str) -> usize {
    match key {
        keys::HOSTNAME | keys::KERNEL_RELEASE => 3 * 64,
        _ => 128,
    }
}

/// Formats ns since the Unix epoch as RFC 3339 UTC with 9 fraction digits,
/// e.g. `2026-11-27T06:01:13.123456789Z`.
pub fn format_rfc3339_ns(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses an RFC 3339 time (any offset, any number of fraction digits) into ns since the Unix
/// epoch.
pub fn parse_rfc3339_ns(key: &str, value: &str) -> Result<i64, FormatError> {
    let time = DateTime::parse_from_rfc3339(value)
        .map_err(|e| FormatError::bad_metadata(key, format_args!("{value:?}: {e}")))?;
    time.timestamp_nanos_opt().ok_or_else(|| {
        FormatError::bad_metadata(key, format_args!("{value:?}: out of the range of i64 ns"))
    })
}

fn parse_u32(key: &str, value: &str) -> Result<u32, FormatError> {
    value
        .trim()
        .parse()
        .map_err(|e| FormatError::bad_metadata(key, format_args!("{value:?}: {e}")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, FormatError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(FormatError::bad_metadata(
            key,
            format_args!("{value:?}: expected \"true\" or \"false\""),
        )),
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // The metadata types are plain structs of integers, strings and vectors: serializing them to
    // a string cannot fail, but there is no need to panic should it ever do.
    serde_json::to_string(value).unwrap_or_else(|e| format!("\"unserializable: {e}\""))
}

fn from_json<T: DeserializeOwned>(key: &str, value: &str) -> Result<T, FormatError> {
    serde_json::from_str(value).map_err(|e| FormatError::bad_metadata(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CaptureMetadata {
        CaptureMetadata {
            format_version: FormatVersion::CURRENT,
            recorder_version: "0.1.0".into(),
            hostname: "host-a".into(),
            kernel_release: "6.12.0-test".into(),
            boot_id: "c0ffee00-0000-4000-8000-000000000001".into(),
            clock_anchors: vec![
                ClockAnchor {
                    boot_ns: 1_000,
                    realtime_ns: 1_700_000_000_000_000_000,
                    uncertainty_ns: 250,
                },
                ClockAnchor {
                    boot_ns: u64::MAX,
                    realtime_ns: i64::MIN,
                    uncertainty_ns: 0,
                },
            ],
            capture_start_ns: 1_700_000_000_123_456_789,
            capture_end_ns: 1_700_000_060_000_000_001,
            targets: Targets {
                system_wide: false,
                pids: vec![1, 4_294_967_295],
                command: Some(vec!["sh".into(), "-c".into(), "echo \"hi\"\n".into()]),
                comms: vec!["nginx".into()],
                cgroups: vec!["/system.slice/a.service".into()],
                follow_forks: true,
            },
            command_line: vec!["mmap-recorder".into(), "--".into(), "ünïcode".into()],
            attach_mode: "tracepoint".into(),
            counters: Counters {
                emitted: 12,
                lost_ringbuf_full: 1,
                orphan_exits: 2,
                entry_map_full: 3,
                decode_errors: u64::MAX,
                follow_map_full: 4,
            },
            capture_id: Some("0b0e5a1c-7d8e-4f00-9a6b-1c2d3e4f5a6b".into()),
            segment_index: Some(u32::MAX),
            page_size: Some(4096),
            recovered: true,
            previous_segment: Some(SegmentLink {
                file: "mmap-20231114T221320-0b0e5a1c-000041.parquet".into(),
                segment_index: 41,
                sha256: "ab".repeat(32),
                bytes: 1 << 26,
                rows: 1_000_000,
            }),
            redaction: Some(Redaction {
                method: "hmac-sha256".into(),
                key_id: "0123456789abcdef".into(),
                fields: [("paths", "dirs"), ("comm", "hash")]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into(),
                tool: "mmap-analyze 0.1.0".into(),
            }),
            provenance: vec![Derivation {
                operation: "extract".into(),
                tool: "mmap-analyze 0.1.0".into(),
                at: "2023-11-15T00:00:00Z".into(),
                parents: vec![ParentFile {
                    file: "capture.parquet".into(),
                    capture_id: Some("0b0e5a1c-7d8e-4f00-9a6b-1c2d3e4f5a6b".into()),
                    segment_index: Some(0),
                    sha256: "cd".repeat(32),
                    bytes: 4096,
                    rows: 12,
                }],
                selection: vec!["--pid".into(), "42".into()],
            }],
            read_with: Some(READS_WITH.into()),
            stacks: Some(StacksConfig {
                mode: "dwarf".into(),
                syscalls: vec!["mmap".into(), "brk".into()],
                max_frames: 127,
                stack_bytes: 8192,
            }),
        }
    }

    #[test]
    fn key_values_round_trip() {
        let metadata = sample();
        let kv = metadata.to_key_values();
        assert_eq!(kv.len(), keys::ALL.len());
        let kv_keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kv_keys, keys::ALL);
        let back = CaptureMetadata::from_key_values(&kv).expect("parse what we wrote");
        assert_eq!(back, metadata);
    }

    #[test]
    fn optional_keys_are_written_only_when_set() {
        let metadata = CaptureMetadata {
            recovered: false,
            capture_id: None,
            segment_index: None,
            page_size: None,
            previous_segment: None,
            redaction: None,
            provenance: Vec::new(),
            read_with: None,
            stacks: None,
            ..sample()
        };
        let kv = metadata.to_key_values();
        let kv_keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kv_keys, keys::REQUIRED);
        assert_eq!(
            CaptureMetadata::from_key_values(&kv).expect("parse"),
            metadata
        );

        let metadata = CaptureMetadata {
            segment_index: Some(0),
            ..metadata
        };
        let kv = metadata.to_key_values();
        assert_eq!(kv.len(), keys::REQUIRED.len() + 1);
        assert_eq!(kv[13], (keys::SEGMENT_INDEX.to_owned(), "0".to_owned()));
        assert_eq!(
            CaptureMetadata::from_key_values(&kv).expect("parse"),
            metadata
        );
    }

    /// A 1.0 file's metadata: no 1.1 keys, targets without the 1.1 fields.
    #[test]
    fn keys_of_1_0_read_with_1_1_fields_absent() {
        let mut kv: Vec<(String, String)> = sample()
            .to_key_values()
            .into_iter()
            .filter(|(k, _)| keys::REQUIRED.contains(&k.as_str()))
            .collect();
        for (key, value) in &mut kv {
            if key == keys::TARGETS {
                *value = r#"{"system_wide":true,"pids":[7],"command":null}"#.into();
            }
            if key == keys::FORMAT_MINOR {
                *value = "0".into();
            }
        }
        let back = CaptureMetadata::from_key_values(&kv).expect("1.0 keys parse");
        assert_eq!(back.format_version, FormatVersion { major: 1, minor: 0 });
        assert_eq!(
            back.targets,
            Targets {
                system_wide: true,
                pids: vec![7],
                command: None,
                comms: vec![],
                cgroups: vec![],
                follow_forks: false,
            }
        );
        assert_eq!(
            (
                back.capture_id,
                back.segment_index,
                back.page_size,
                back.recovered
            ),
            (None, None, None, false)
        );
    }

    #[test]
    fn names_copied_into_rows_are_refused_past_their_kernel_limit() {
        for (key, limit) in [
            (keys::HOSTNAME, 192),
            (keys::KERNEL_RELEASE, 192),
            (keys::CAPTURE_ID, 128),
            (keys::BOOT_ID, 128),
        ] {
            for (len, ok) in [(limit, true), (limit + 1, false), (1 << 20, false)] {
                let mut kv = sample().to_key_values();
                for (k, v) in &mut kv {
                    if k == key {
                        *v = "h".repeat(len);
                    }
                }
                let parsed = CaptureMetadata::from_key_values(&kv);
                assert_eq!(parsed.is_ok(), ok, "{key} of {len} bytes: {parsed:?}");
                if let Err(err) = parsed {
                    assert!(
                        err.to_string().contains(&format!("{len} bytes long")),
                        "{err}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_optional_values_name_the_key() {
        for (key, value) in [
            (keys::SEGMENT_INDEX, "-1"),
            (keys::PAGE_SIZE, "4k"),
            (keys::RECOVERED, "yes"),
        ] {
            let mut kv = sample().to_key_values();
            for (k, v) in &mut kv {
                if k == key {
                    *v = value.into();
                }
            }
            let err = CaptureMetadata::from_key_values(&kv).expect_err("bad value");
            assert!(
                matches!(&err, FormatError::BadMetadata { key: k, .. } if k == key),
                "{err:?}"
            );
        }
        let mut kv = sample().to_key_values();
        kv.retain(|(k, _)| k != keys::RECOVERED);
        kv.push((keys::RECOVERED.to_owned(), "false".to_owned()));
        assert!(
            !CaptureMetadata::from_key_values(&kv)
                .expect("parse")
                .recovered
        );
    }

    #[test]
    fn encodings_are_the_documented_ones() {
        let kv = sample().to_key_values();
        let get = |key: &str| {
            kv.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .expect("key present")
        };
        assert_eq!(get(keys::FORMAT_MAJOR), "1");
        assert_eq!(get(keys::FORMAT_MINOR), "6");
        assert_eq!(
            get(keys::STACKS),
            r#"{"mode":"dwarf","syscalls":["mmap","brk"],"max_frames":127,"stack_bytes":8192}"#
        );
        assert_eq!(get(keys::CAPTURE_START), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(get(keys::CAPTURE_END), "2023-11-14T22:14:20.000000001Z");
        assert_eq!(
            get(keys::CLOCK_ANCHORS),
            r#"[{"boot_ns":1000,"realtime_ns":1700000000000000000,"uncertainty_ns":250},{"boot_ns":18446744073709551615,"realtime_ns":-9223372036854775808,"uncertainty_ns":0}]"#
        );
        assert_eq!(
            get(keys::TARGETS),
            r#"{"system_wide":false,"pids":[1,4294967295],"command":["sh","-c","echo \"hi\"\n"],"comms":["nginx"],"cgroups":["/system.slice/a.service"],"follow_forks":true}"#
        );
        assert_eq!(
            get(keys::CAPTURE_ID),
            "0b0e5a1c-7d8e-4f00-9a6b-1c2d3e4f5a6b"
        );
        assert_eq!(get(keys::SEGMENT_INDEX), "4294967295");
        assert_eq!(get(keys::PAGE_SIZE), "4096");
        assert_eq!(get(keys::RECOVERED), "true");
        assert_eq!(
            get(keys::COUNTERS),
            r#"{"emitted":12,"lost_ringbuf_full":1,"orphan_exits":2,"entry_map_full":3,"decode_errors":18446744073709551615,"follow_map_full":4}"#
        );
        let no_command = Targets {
            system_wide: true,
            ..Targets::default()
        };
        assert_eq!(
            to_json(&no_command),
            r#"{"system_wide":true,"pids":[],"command":null,"comms":[],"cgroups":[],"follow_forks":false}"#
        );
    }

    #[test]
    fn unknown_keys_are_ignored_and_first_duplicate_wins() {
        let mut kv = vec![("x.other".to_owned(), "whatever".to_owned())];
        kv.extend(sample().to_key_values());
        kv.push((keys::HOSTNAME.to_owned(), "second".to_owned()));
        let back = CaptureMetadata::from_key_values(&kv).expect("parse");
        assert_eq!(back.hostname, "host-a");
    }

    #[test]
    fn newer_minor_parses_and_other_major_refuses() {
        let mut kv = sample().to_key_values();
        kv[1].1 = "7".into();
        let back = CaptureMetadata::from_key_values(&kv).expect("minor 7 reads");
        assert_eq!(back.format_version, FormatVersion { major: 1, minor: 7 });

        kv[0].1 = "2".into();
        let err = CaptureMetadata::from_key_values(&kv).expect_err("major 2 refused");
        assert!(matches!(
            err,
            FormatError::UnsupportedVersion {
                major: 2,
                minor: 7,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "capture format 2.7 is not supported by this reader (supports 1.x); \
             the file says mmap-analyze 0.1.0 or later reads it"
        );

        // The version named comes from the file: anything but a short version-like string is
        // left out, so a crafted file cannot print escapes or pages of text through it.
        for hostile in ["0.9\u{1b}]0;owned\u{7}", "", &"9".repeat(33)] {
            let mut kv = kv.clone();
            kv.retain(|(k, _)| k != keys::READ_WITH);
            kv.push((keys::READ_WITH.into(), hostile.into()));
            let err = CaptureMetadata::from_key_values(&kv).expect_err("major 2 refused");
            assert_eq!(
                err.to_string(),
                "capture format 2.7 is not supported by this reader (supports 1.x)"
            );
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut kv = sample().to_key_values();
        kv[7].1 = "yesterday".into();
        let err = CaptureMetadata::from_key_values(&kv).expect_err("bad time");
        let message = err.to_string();
        assert!(
            message.starts_with("bad metadata value for mmap_capture.capture_start: \"yesterday\""),
            "{message}"
        );

        let mut kv = sample().to_key_values();
        kv[12].1 = "{\"emitted\": 1}".into();
        let err = CaptureMetadata::from_key_values(&kv).expect_err("counters incomplete");
        assert!(matches!(&err, FormatError::BadMetadata { key, .. } if key == keys::COUNTERS));
        assert!(!err.to_string().contains('\n'));

        let kv: Vec<_> = sample()
            .to_key_values()
            .into_iter()
            .filter(|(k, _)| k != keys::BOOT_ID)
            .collect();
        let err = CaptureMetadata::from_key_values(&kv).expect_err("boot id missing");
        assert_eq!(
            err.to_string(),
            "bad metadata value for mmap_capture.boot_id: missing"
        );
    }

    #[test]
    fn rfc3339_accepts_offsets_and_short_fractions() {
        assert_eq!(
            parse_rfc3339_ns("k", "1970-01-01T01:00:00.5+01:00").expect("parse"),
            500_000_000
        );
        assert_eq!(format_rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn clock_anchor_converts_boot_time() {
        let anchor = ClockAnchor {
            boot_ns: 5_000_000_000,
            realtime_ns: 1_700_000_000_000_000_000,
            uncertainty_ns: 100,
        };
        assert_eq!(
            anchor.boot_to_wall_ns(5_000_000_000),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            anchor.boot_to_wall_ns(6_500_000_001),
            1_700_000_001_500_000_001
        );
        assert_eq!(
            anchor.boot_to_wall_ns(4_000_000_000),
            1_699_999_999_000_000_000
        );
        let far = ClockAnchor {
            boot_ns: 0,
            realtime_ns: i64::MAX,
            uncertainty_ns: 0,
        };
        assert_eq!(far.boot_to_wall_ns(u64::MAX), i64::MAX);
    }

    #[test]
    fn counters_lost() {
        let counters = Counters {
            emitted: 100,
            lost_ringbuf_full: 1,
            orphan_exits: 50,
            entry_map_full: 2,
            decode_errors: 3,
            follow_map_full: 7,
        };
        assert_eq!(
            counters.lost(),
            6,
            "unfollowed processes are not lost records"
        );
    }

    /// 1.0 and 1.1 counters have no `follow_map_full`: it reads as 0.
    #[test]
    fn counters_of_older_minors_read_follow_map_full_as_0() {
        let old = r#"{"emitted":1,"lost_ringbuf_full":2,"orphan_exits":3,"entry_map_full":4,"decode_errors":5}"#;
        let counters: Counters = from_json(keys::COUNTERS, old).expect("1.1 counters");
        assert_eq!(counters.follow_map_full, 0);
        assert_eq!(counters.decode_errors, 5);
    }
}
