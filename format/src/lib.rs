//! The mmap-capture file format: schema, metadata, versioning, writer and reader.
//!
//! A capture is a zstd-compressed Parquet file with one row per event (see docs/FORMAT.md for
//! the on-disk description). [`writer::CaptureWriter`] writes one, [`reader::CaptureReader`]
//! opens and validates one and yields Arrow record batches or [`event::Event`]s.
//!
//! Crash safety: a writer made by [`writer::CaptureWriter::with_journal`] keeps a journal next
//! to the capture ([`journal`]); if the writer dies before
//! [`finish`](writer::CaptureWriter::finish), [`recover::recover`] completes the file with every
//! row group the journal describes.
//!
//! ```
//! use std::borrow::Cow;
//!
//! use mmap_format::{
//!     event::{Event, RowKind, Syscall, sources},
//!     metadata::CaptureMetadata,
//!     reader::CaptureReader,
//!     writer::{CaptureWriter, WriterConfig},
//! };
//!
//! let mut writer = CaptureWriter::new(Vec::new(), WriterConfig::default())?;
//! writer.push(&Event {
//!     kind: RowKind::Syscall,
//!     syscall: Some(Syscall::Mmap),
//!     ts_ns: 1_700_000_000_000_000_000,
//!     ts_exit_ns: Some(1_700_000_000_000_001_000),
//!     cpu: 0, pid: 42, tid: 42, ppid: 1, uid: 1000, gid: 1000,
//!     comm: Cow::Borrowed("demo"),
//!     cgroup_id: 1,
//!     addr: Some(0), len: Some(4096), prot: Some(3), flags: Some(0x22),
//!     fd: Some(-1), off: Some(0), ret: Some(-12),
//!     source: Some(Cow::Borrowed(sources::TRACEPOINT)),
//!     ..Default::default()
//! })?;
//! let bytes = writer.finish(&CaptureMetadata::default())?;
//!
//! let reader = CaptureReader::from_bytes(bytes)?;
//! let events: Vec<_> = reader.events()?.collect::<Result<_, _>>()?;
//! assert_eq!(events[0].errno(), Some(12));
//! # Ok::<(), mmap_format::FormatError>(())
//! ```

mod columns;
pub mod error;
pub mod event;
pub mod guard;
pub mod journal;
pub mod manifest;
pub mod metadata;
pub mod names;
pub mod page_crc;
pub mod pages;
pub mod partition;
pub mod reader;
pub mod recover;
pub mod remote;
pub mod schema;
pub mod writer;

pub use error::FormatError;

/// The format major version this crate writes and reads. A reader refuses other majors.
pub const FORMAT_MAJOR: u32 = 1;
/// The format minor version this crate writes. A reader reads every minor of its major.
pub const FORMAT_MINOR: u32 = 6;
