//! The writer thread: converts kernel records into rows, compresses and writes them, rotates
//! segments and keeps the crash journal, so that the ring-buffer drain never waits for zstd or
//! the disk.
use std::{
    collections::VecDeque,
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mmap_format::{
    event::Event,
    journal::journal_path,
    metadata::{CaptureMetadata, ClockAnchor, Counters, SegmentLink},
    writer::{CaptureWriter, WriterConfig},
};
use recorder_common::{EventKind, RecordRef, StackRef, stack_mode};

use crate::{
    cgroups::CgroupNames,
    chain::{self, Chain},
    clock,
    convert::fill_event,
    launch::InvokingUser,
    output::{FirstFile, OutDir, Output, segment_name},
    stacks::{RawStack, StackMode, Stacks},
};

/// Everything the writer thread needs.
pub struct SinkSetup {
    pub output: Output,
    /// Where the files are created and removed.
    pub dir: OutDir,
    pub writer: WriterConfig,
    pub flush_interval: Duration,
    pub anchor: ClockAnchor,
    /// The `source` column of rows from the kernel: the attach mode.
    pub source: &'static str,
    /// Metadata common to every segment (capture id, host, targets, ...); the sink fills in
    /// segment index, times and counters.
    pub template: CaptureMetadata,
    pub owner: Option<InvokingUser>,
    /// The first file, created before recording starts so that errors come early.
    pub first: Option<FirstFile>,
    /// Reads the kernel's cumulative counters: each segment's orphan exits and full entry map
    /// are the change from its opening to its closing.
    pub kernel_counters: ReadCounters,
    /// `--stacks`: how the kernel takes the stacks its records carry (`None`: no stacks).
    pub stacks: Option<StackMode>,
}

/// Reads the kernel's cumulative counters (from the writer thread).
pub type ReadCounters = Box<dyn Fn() -> anyhow::Result<Counters> + Send>;

/// How long after midnight an idle segment of the old day is closed (see `maybe_rotate`).
const MIDNIGHT_GRACE_NS: i64 = 1_000_000_000;

/// Messages to the writer thread.
pub enum SinkMsg {
    /// Ring-buffer items, each framed as a native-endian u32 length and the bytes.
    Records(Vec<u8>),
    /// Rows made in user space (snapshots).
    Rows(Vec<Event<'static>>),
    /// Close the last segment (the programs are stopped: the counters are final).
    Finish,
    /// Recording failed before anything was worth keeping: stop without closing the file, which
    /// the sender removes.
    Discard,
}

impl SinkMsg {
    /// The bytes a message holds, about (a snapshot row counts 256).
    pub fn bytes(&self) -> usize {
        match self {
            Self::Records(batch) => batch.len(),
            Self::Rows(rows) => rows.len() * 256,
            Self::Finish | Self::Discard => 0,
        }
    }
}

/// Live numbers, read by the progress display.
#[derive(Default)]
pub struct SinkStats {
    /// Rows written so far.
    pub rows: AtomicU64,
    /// Bytes in the capture files so far (those --keep deleted included).
    pub bytes: AtomicU64,
    /// Bytes sent to the writer thread that it has not taken yet.
    pub queued: AtomicU64,
    /// The segment being written (its `segment_index`).
    pub segment: AtomicU32,
    /// Set by a drain that stopped for want of room ([`Sink::want_room`]): the writer signals
    /// [`Sink::room`] only then.
    room_wanted: AtomicBool,
}

/// What the writer thread did.
#[derive(Debug, Default)]
pub struct SinkReport {
    /// The capture files that remain, oldest first.
    pub files: Vec<PathBuf>,
    /// Rows and bytes written, in every segment (those --keep deleted included).
    pub rows: u64,
    pub bytes: u64,
    /// The segments --keep deleted, and their rows and bytes.
    pub deleted: Deleted,
    pub decode_errors: u64,
    /// With --stacks: what the stacks module did (its frame rows are among `rows`).
    pub stacks: Option<crate::stacks::StackStats>,
}

/// Segments deleted by --keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub segments: usize,
    pub rows: u64,
    pub bytes: u64,
}

impl SinkReport {
    /// Rows in the files that remain.
    pub fn rows_kept(&self) -> u64 {
        self.rows.saturating_sub(self.deleted.rows)
    }

    /// Bytes of the files that remain.
    pub fn bytes_kept(&self) -> u64 {
        self.bytes.saturating_sub(self.deleted.bytes)
    }
}

/// The writer thread has stopped (after an error, which [`Sink::finish`] returns): the drain
/// stops at once instead of queueing records that can no longer be written.
#[derive(Debug, thiserror::Error)]
#[error("the writer thread stopped")]
pub struct WriterStopped;

/// Why a message was not queued.
pub enum NotSent {
    /// The queue is full: the message is given back.
    Full(SinkMsg),
    /// The writer thread has stopped.
    Stopped,
}

/// The writer thread failed to write the capture: the error (the file and the I/O error, such
/// as "writing DIR/x.parquet: No space left on device (os error 28)"), and what is on disk.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct WriteFailed {
    pub error: anyhow::Error,
    /// The segments closed before, complete.
    pub finished: Vec<PathBuf>,
    /// The segment being written, left with its crash journal for `mmap-analyze recover`.
    pub unfinished: Option<PathBuf>,
}

/// `err` as "writing PATH: <the I/O error>" when an I/O error caused it (the Parquet and journal
/// layers wrap it several times), else `err` in the context of writing `path`.
fn write_error(path: &Path, err: impl Into<anyhow::Error>) -> anyhow::Error {
    let err = err.into();
    let io = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<std::io::Error>());
    match io {
        Some(io) => anyhow::anyhow!("writing {}: {io}", path.display()),
        None => err.context(format!("writing {}", path.display())),
    }
}

/// The file name of a segment's path.
fn name_of(path: &Path) -> anyhow::Result<&std::ffi::OsStr> {
    path.file_name()
        .with_context(|| format!("{} does not name a file", path.display()))
}

/// The file name of a segment's crash journal.
fn journal_name(path: &Path) -> anyhow::Result<std::ffi::OsString> {
    Ok(journal_path(Path::new(name_of(path)?)).into_os_string())
}

/// Sending side of the writer thread.
pub struct Sink {
    tx: SyncSender<SinkMsg>,
    handle: JoinHandle<anyhow::Result<SinkReport>>,
    pub stats: Arc<SinkStats>,
    /// Emptied batch buffers the writer gives back.
    spare: Receiver<Vec<u8>>,
    /// Signalled when the writer takes a message after [`Sink::want_room`]: a drain that stopped
    /// at [`QUEUE_BYTES`] reads on at once instead of at its next tick. (Signalled at every
    /// message, it woke the drain ~15,000 times for the 600,000 records of the benchmark loop,
    /// an `eventfd` write, an `epoll_wait` and a batch of ~40 records each time.)
    pub room: Arc<tokio::sync::Notify>,
}

/// Row groups after which a segment stops being cut by the flush timer (Parquet's limit is
/// 32,767): a directory capture starts a new segment, a single file is flushed only when
/// `row_group_rows` rows are buffered, with a warning.
const ROW_GROUP_SOFT_LIMIT: usize = 30_000;

/// Bytes of kernel records read from the ring that the writer has not taken yet (the drain's
/// batches waiting to be queued and the writer's queue): past this the drain stops reading, the
/// ring fills and the kernel counts what no longer fits (in-band `lost` rows), instead of memory
/// growing with the backlog. With the batch the writer is converting and the one the drain is
/// filling, user space holds at most `QUEUE_BYTES + 2 * (BATCH_BYTES + BATCH_SLACK)` of records.
pub const QUEUE_BYTES: usize = 4 << 20;

/// Bytes of ring items framed into one batch for the writer.
pub const BATCH_BYTES: usize = 512 << 10;

/// Room past [`BATCH_BYTES`] in a batch's buffer: the item that crosses it (a record with a
/// path and a DWARF stack copy is at most ~20 KiB) fits without growing the buffer.
pub const BATCH_SLACK: usize = 64 << 10;

/// Messages that fit in the writer's queue: the byte bound is [`QUEUE_BYTES`]; this one bounds
/// the end of a recording, when the drain empties the ring waiting for room instead of stopping.
const QUEUE_MESSAGES: usize = QUEUE_BYTES / BATCH_BYTES;

/// Emptied batch buffers kept for reuse (the drain takes them back instead of allocating, and
/// faulting in, a fresh half megabyte for every batch).
const SPARE_BUFFERS: usize = 4;

/// Appends one ring-buffer item to a batch of frames.
pub fn push_frame(batch: &mut Vec<u8>, item: &[u8]) {
    batch.extend_from_slice(&(item.len() as u32).to_ne_bytes());
    batch.extend_from_slice(item);
}

/// The items of a batch of frames.
fn frames(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_ne_bytes(*len) as usize;
        let (item, tail) = tail.split_at_checked(len)?;
        rest = tail;
        Some(item)
    })
}

impl Sink {
    pub fn spawn(setup: SinkSetup) -> anyhow::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE_MESSAGES);
        let (spare_tx, spare) = sync_channel(SPARE_BUFFERS);
        let stats = Arc::new(SinkStats::default());
        let room = Arc::new(tokio::sync::Notify::new());
        let queue = Queue {
            rx,
            stats: Arc::clone(&stats),
            spare: spare_tx,
            room: Arc::clone(&room),
        };
        let mut state = Writer::new(setup)?;
        let handle = std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || state.run(&queue))
            .context("spawning the writer thread")?;
        Ok(Self {
            tx,
            handle,
            stats,
            spare,
            room,
        })
    }

    /// An empty buffer for a batch: one the writer gave back, or a new one of
    /// [`BATCH_BYTES`] + [`BATCH_SLACK`].
    pub fn batch_buffer(&self) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH_BYTES + BATCH_SLACK))
    }

    /// Asks the writer to signal [`Sink::room`] when it next takes a message.
    pub fn want_room(&self) {
        self.stats.room_wanted.store(true, Ordering::Release);
    }

    /// Bytes queued for the writer thread that it has not taken yet.
    pub fn queued_bytes(&self) -> usize {
        usize::try_from(self.stats.queued.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Queues a message without blocking; gives it back when the queue is full.
    pub fn try_send(&self, msg: SinkMsg) -> Result<(), NotSent> {
        // Counted before it is sent: the writer may take it (and subtract) at once.
        let bytes = msg.bytes() as u64;
        self.stats.queued.fetch_add(bytes, Ordering::Relaxed);
        self.tx.try_send(msg).map_err(|err| {
            self.stats.queued.fetch_sub(bytes, Ordering::Relaxed);
            match err {
                TrySendError::Full(msg) => NotSent::Full(msg),
                TrySendError::Disconnected(_) => NotSent::Stopped,
            }
        })
    }

    /// Queues a message, waiting for room (used once recording has stopped, and for rare
    /// messages). Fails with [`WriterStopped`] when the writer thread has stopped.
    pub fn send(&self, msg: SinkMsg) -> anyhow::Result<()> {
        let bytes = msg.bytes() as u64;
        self.stats.queued.fetch_add(bytes, Ordering::Relaxed);
        self.tx.send(msg).map_err(|_| {
            self.stats.queued.fetch_sub(bytes, Ordering::Relaxed);
            WriterStopped.into()
        })
    }

    /// Whether the writer thread has stopped on its own (it stops early only after an error).
    pub fn stopped(&self) -> bool {
        self.handle.is_finished()
    }

    /// Closes the last segment and waits for the writer thread.
    pub fn finish(self) -> anyhow::Result<SinkReport> {
        self.stop(SinkMsg::Finish)
    }

    /// Stops the writer thread without closing the file (the caller removes it).
    pub fn discard(self) -> anyhow::Result<SinkReport> {
        self.stop(SinkMsg::Discard)
    }

    fn stop(self, last: SinkMsg) -> anyhow::Result<SinkReport> {
        let sent = self.tx.send(last);
        drop(self.tx);
        let report = self
            .handle
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
        sent.map_err(|_| anyhow::anyhow!("the writer thread stopped before closing the file"))?;
        Ok(report)
    }
}

/// The writer thread's end of the queue.
struct Queue {
    rx: Receiver<SinkMsg>,
    stats: Arc<SinkStats>,
    spare: SyncSender<Vec<u8>>,
    room: Arc<tokio::sync::Notify>,
}

/// The segment being written.
struct Segment {
    path: PathBuf,
    /// The directory it is in (the capture's, or a partition directory below it).
    dir: OutDir,
    /// Its name in the manifest: its path from the capture's directory.
    listed_as: String,
    /// The same file as the writer's, to see whether it was removed.
    file: File,
    index: u32,
    writer: CaptureWriter<File>,
    start_ns: i64,
    opened: Instant,
    unflushed: bool,
    warned_row_groups: bool,
    /// The segment finished before this one, with its SHA-256 (`previous_segment`).
    previous: Option<SegmentLink>,
}

/// A closed segment that is still on disk.
struct Closed {
    path: PathBuf,
    dir: OutDir,
    listed_as: String,
    rows: u64,
    bytes: u64,
}

struct Writer {
    setup: SinkSetup,
    current: Option<Segment>,
    next_first: Option<FirstFile>,
    next_index: u32,
    /// What the writer counts itself, since the start: the kernel's records it received
    /// (`emitted`), the loss they report (`lost_ringbuf_full`) and those it could not decode.
    own: Counters,
    /// The capture's cumulative counters when the last segment was closed (zero before): a
    /// segment's counters are the change since, so that they add up to the capture's.
    at_last_close: Counters,
    cgroups: CgroupNames,
    files: Vec<Closed>,
    /// A segment whose closing failed (and its directory): left with its journal.
    unfinished: Option<(PathBuf, OutDir)>,
    /// The manifest of a directory capture (`None` for a single file: no chain, no manifest).
    chain: Option<Chain>,
    /// The last segment finished, for the next one's `previous_segment`.
    last_link: Option<SegmentLink>,
    /// Partitioned by date: the UTC day of the `date=` directory of the segment being written,
    /// or of the last one.
    day: Option<String>,
    /// Partitioned by date: snapshot rows of a later day than [`Self::day`], held until a row
    /// from the ring at least as late as them arrives (or the recording ends). Snapshots are
    /// taken when the drain reads an exec, so they can be ahead of records still in the ring:
    /// written at once, they would start the new day's segment before those older rows.
    held: VecDeque<Vec<Event<'static>>>,
    rows: u64,
    bytes: u64,
    deleted: Deleted,
    /// With `--stacks`: follows every row, interns each call's stack, names the frames.
    stacks: Option<Stacks>,
    /// The frames of the fp stack being interned (the ring's bytes are not u64-aligned).
    frames: Vec<u64>,
}

/// The raw stack of a record for [`Stacks::intern`], its fp frames copied into `frames`.
fn raw_stack<'a>(stack: &StackRef<'a>, frames: &'a mut Vec<u64>) -> Option<RawStack<'a>> {
    let head = &stack.head;
    match head.mode {
        stack_mode::FP => {
            frames.clear();
            frames.extend(stack.frames());
            Some(RawStack::Fp {
                frames,
                leaf_ret: head.leaf_ret,
            })
        }
        stack_mode::DWARF => Some(RawStack::Dwarf {
            ip: head.ip,
            sp: head.sp,
            bp: head.bp,
            stack: stack.data,
        }),
        _ => None,
    }
}

/// `a - b`, field by field.
fn sub(a: Counters, b: Counters) -> Counters {
    Counters {
        emitted: a.emitted.saturating_sub(b.emitted),
        lost_ringbuf_full: a.lost_ringbuf_full.saturating_sub(b.lost_ringbuf_full),
        orphan_exits: a.orphan_exits.saturating_sub(b.orphan_exits),
        entry_map_full: a.entry_map_full.saturating_sub(b.entry_map_full),
        decode_errors: a.decode_errors.saturating_sub(b.decode_errors),
        follow_map_full: a.follow_map_full.saturating_sub(b.follow_map_full),
    }
}

impl Writer {
    fn new(mut setup: SinkSetup) -> anyhow::Result<Self> {
        let first = setup.first.take();
        let stacks = setup.stacks.map(Stacks::new);
        let chain = match &setup.output {
            Output::Dir { .. } => Chain::new(&setup.template, &segment_name(&setup.template, 0)),
            Output::File(_) => None,
        };
        let mut writer = Self {
            setup,
            current: None,
            next_first: first,
            next_index: 0,
            own: Counters::default(),
            at_last_close: Counters::default(),
            cgroups: CgroupNames::new(),
            files: Vec::new(),
            unfinished: None,
            chain,
            last_link: None,
            day: None,
            held: VecDeque::new(),
            rows: 0,
            bytes: 0,
            deleted: Deleted::default(),
            stacks,
            frames: Vec::new(),
        };
        // The first segment exists from the start, so a capture always has a file.
        writer.open_segment(None)?;
        Ok(writer)
    }

    /// Writes until told to finish; after an error, stops at once and leaves the segment being
    /// written with its journal (nothing more can be written to it safely).
    fn run(&mut self, queue: &Queue) -> anyhow::Result<SinkReport> {
        self.write_until_told(queue).map_err(|error| {
            let unfinished = self
                .current
                .take()
                .map(|seg| (seg.path, seg.dir))
                .or_else(|| self.unfinished.take())
                // Removed while recording: its journal can complete nothing any more.
                .filter(|(path, dir)| {
                    let there = path.exists();
                    if !there && let Ok(journal) = journal_name(path) {
                        let _ = dir.remove(&journal);
                    }
                    there
                })
                .map(|(path, _)| path);
            let finished = self.files.drain(..).map(|closed| closed.path).collect();
            WriteFailed {
                error,
                finished,
                unfinished,
            }
            .into()
        })
    }

    fn write_until_told(&mut self, queue: &Queue) -> anyhow::Result<SinkReport> {
        let stats = &*queue.stats;
        let flush_interval = self.setup.flush_interval;
        let mut last_flush = Instant::now();
        loop {
            let timeout = flush_interval.saturating_sub(last_flush.elapsed());
            match queue.rx.recv_timeout(timeout) {
                Ok(msg) => {
                    stats
                        .queued
                        .fetch_sub(msg.bytes() as u64, Ordering::Relaxed);
                    if stats.room_wanted.load(Ordering::Relaxed)
                        && stats.room_wanted.swap(false, Ordering::AcqRel)
                    {
                        queue.room.notify_one();
                    }
                    match msg {
                        SinkMsg::Records(mut batch) => {
                            self.write_records(&batch)?;
                            // Back to the drain for reuse (dropped when enough are spare).
                            batch.clear();
                            let _ = queue.spare.try_send(batch);
                        }
                        SinkMsg::Rows(rows) => self.write_snapshot(rows)?,
                        SinkMsg::Finish => {
                            self.release_held(i64::MAX)?;
                            self.finish()?;
                            self.publish(stats);
                            return Ok(self.report());
                        }
                        SinkMsg::Discard => {
                            self.current = None;
                            return Ok(self.report());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("recording stopped without closing the capture file")
                }
            }
            if last_flush.elapsed() >= flush_interval {
                self.flush()?;
                last_flush = Instant::now();
                // Free pages inside the heap go back to the kernel (glibc returns only the top
                // of the heap by itself): the writer's allocations come and go with each row
                // group, and without this the heap's holes stay resident and grow over a long
                // flood.
                // SAFETY: malloc_trim only releases free memory of the allocator; it takes the
                // allocator's own locks.
                unsafe { libc::malloc_trim(0) };
            }
            self.maybe_rotate()?;
            self.publish(stats);
        }
    }

    fn report(&mut self) -> SinkReport {
        SinkReport {
            files: self.files.drain(..).map(|closed| closed.path).collect(),
            rows: self.rows,
            bytes: self.bytes,
            deleted: self.deleted,
            decode_errors: self.own.decode_errors,
            stacks: self.stacks.as_ref().map(Stacks::stats),
        }
    }

    /// Live numbers for the progress line.
    fn publish(&self, stats: &SinkStats) {
        stats.rows.store(self.rows, Ordering::Relaxed);
        let current = self.current.as_ref();
        let bytes = self.bytes + current.map_or(0, |seg| seg.writer.bytes_written());
        stats.bytes.store(bytes, Ordering::Relaxed);
        let segment = current.map_or(self.next_index.saturating_sub(1), |seg| seg.index);
        stats.segment.store(segment, Ordering::Relaxed);
    }

    /// Every --flush-interval: the current counters go to the journal with the rows buffered
    /// since the last flush.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.current.is_none() {
            return Ok(());
        }
        let Some(meta) = self.segment_metadata(self.counters()?) else {
            return Ok(());
        };
        let Some(seg) = self.current.as_mut() else {
            return Ok(());
        };
        // Removed while recording (rm, or its directory removed): writing on would only fill
        // a file that nobody can open again.
        let links = seg.file.metadata().map_err(|e| write_error(&seg.path, e))?;
        if links.nlink() == 0 {
            anyhow::bail!(
                "writing {}: the file was removed while recording",
                seg.path.display()
            );
        }
        seg.writer.set_metadata(&meta);
        if seg.unflushed && seg.writer.row_groups() < ROW_GROUP_SOFT_LIMIT {
            seg.writer.flush().map_err(|e| write_error(&seg.path, e))?;
            seg.unflushed = false;
        }
        Ok(())
    }

    /// Closes the last segment. Counts since the last one closed need a segment to be in: when
    /// none is open (a rotation just closed one), an empty one is opened for them.
    fn finish(&mut self) -> anyhow::Result<()> {
        if self.current.is_none() && self.counters()? != self.at_last_close {
            self.open_segment(None)?;
        }
        self.close_segment()?;
        if let Some(chain) = self.chain.as_mut() {
            chain.manifest.complete = true;
        }
        self.write_manifest();
        Ok(())
    }

    /// Replaces the manifest of a directory capture with what is known now. A failure is said
    /// and the recording goes on: the segments are whole without it (`verify` will miss it),
    /// and the next finished segment tries again.
    fn write_manifest(&self) {
        if let Some(chain) = &self.chain
            && let Err(err) = chain.write(&self.setup.dir, self.setup.owner.as_ref())
        {
            say!("\nmmap-recorder: warning: the capture's manifest was not updated: {err:#}");
        }
    }

    fn write_records(&mut self, batch: &[u8]) -> anyhow::Result<()> {
        let anchor = self.setup.anchor;
        let source = self.setup.source;
        for item in frames(batch).flat_map(recorder_common::batch_items) {
            let Some(rec) = RecordRef::decode(item) else {
                self.own.emitted += 1;
                self.own.decode_errors += 1;
                continue;
            };
            // In-band loss reports are not records the kernel counts as emitted; the user-space
            // ones for loss still pending at the end are not from the ring at all.
            if rec.head.event == EventKind::Lost as u16 {
                self.own.lost_ringbuf_full += rec.head.args[0];
            } else {
                self.own.emitted += 1;
            }
            // Filled in place: see `fill_event`.
            let mut event = Event::default();
            match fill_event(&mut event, &rec, &anchor, source) {
                Ok(()) => {
                    self.release_held(event.ts_ns)?;
                    // Borrowed from the name cache: no allocation per row.
                    let cgroup = match event.cgroup_id {
                        0 => None,
                        id => self.cgroups.name(id),
                    };
                    event.cgroup_path = cgroup.as_deref().map(std::borrow::Cow::Borrowed);
                    if self.stacks.is_some() {
                        // The segment the row goes in is chosen first: a stack is listed in the
                        // segment that is open when it is interned.
                        self.close_for_new_day(event.ts_ns)?;
                    }
                    if let Some(stacks) = self.stacks.as_mut() {
                        // The stack was taken with the mappings as they were before the call:
                        // interned before the call's own row changes them.
                        if let Some(stack) = &rec.stack
                            && let Some(raw) = raw_stack(stack, &mut self.frames)
                        {
                            event.stack_id = stacks.intern(&event, raw);
                        }
                        stacks.observe(&event);
                    }
                    self.push(&event)?;
                }
                Err(_) => self.own.decode_errors += 1,
            }
        }
        Ok(())
    }

    /// Partitioned by day: a row of a later day than the segment's starts a new segment (in
    /// the new day's directory), so that a segment never holds two days.
    fn close_for_new_day(&mut self, ts_ns: i64) -> anyhow::Result<()> {
        if self.current.is_some() && self.later_day(ts_ns) {
            self.close_segment()?;
        }
        Ok(())
    }

    /// Whether `ts_ns` is of a later day than the segment being written (or the last one),
    /// partitioned by date.
    fn later_day(&self, ts_ns: i64) -> bool {
        match (&self.setup.output, &self.day) {
            (Output::Dir { partition, .. }, Some(day)) => partition.day_of(ts_ns) > *day,
            _ => false,
        }
    }

    /// Rows a snapshot made: written now, or held while they are of a later day than the
    /// rows written so far (see [`Self::held`]).
    fn write_snapshot(&mut self, rows: Vec<Event<'static>>) -> anyhow::Result<()> {
        let ahead = rows.first().is_some_and(|row| self.later_day(row.ts_ns));
        if ahead || !self.held.is_empty() {
            self.held.push_back(rows);
            return Ok(());
        }
        self.push_snapshot(&rows)
    }

    fn push_snapshot(&mut self, rows: &[Event<'_>]) -> anyhow::Result<()> {
        for row in rows {
            if let Some(stacks) = self.stacks.as_mut() {
                stacks.observe(row);
            }
            self.push(row)?;
        }
        Ok(())
    }

    /// Writes the held snapshots taken no later than `ts_ns`, in order.
    fn release_held(&mut self, ts_ns: i64) -> anyhow::Result<()> {
        while self
            .held
            .front()
            .is_some_and(|rows| rows.first().is_none_or(|row| row.ts_ns <= ts_ns))
        {
            if let Some(rows) = self.held.pop_front() {
                self.push_snapshot(&rows)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, event: &Event<'_>) -> anyhow::Result<()> {
        self.close_for_new_day(event.ts_ns)?;
        if self.current.is_none() {
            self.open_segment(Some(event.ts_ns))?;
        }
        let seg = self.current.as_mut().context("no open segment")?;
        seg.writer
            .push(event)
            .map_err(|e| write_error(&seg.path, e))?;
        seg.unflushed = true;
        self.rows += 1;
        Ok(())
    }

    /// The capture's cumulative counters now: the kernel's orphan exits, full entry map and full
    /// follow map, and the writer's own counts.
    fn counters(&self) -> anyhow::Result<Counters> {
        let kernel = (self.setup.kernel_counters)().context("reading the kernel's counters")?;
        Ok(Counters {
            orphan_exits: kernel.orphan_exits,
            entry_map_full: kernel.entry_map_full,
            follow_map_full: kernel.follow_map_full,
            ..self.own
        })
    }

    /// Metadata of the current segment as of now, given the capture's `counters` now: the
    /// segment's own counters are the change since the last segment was closed.
    fn segment_metadata(&self, counters: Counters) -> Option<CaptureMetadata> {
        let seg = self.current.as_ref()?;
        let mut meta = self.setup.template.clone();
        meta.segment_index = Some(seg.index);
        meta.capture_start_ns = seg.start_ns;
        meta.capture_end_ns = clock::realtime_ns();
        meta.counters = sub(counters, self.at_last_close);
        meta.previous_segment = seg.previous.clone();
        Some(meta)
    }

    /// Opens the next segment; `first_row_ns` is the time of the row it is opened for (`None`:
    /// the capture's first segment, opened at the start).
    fn open_segment(&mut self, first_row_ns: Option<i64>) -> anyhow::Result<()> {
        let index = self.next_index;
        let owner = self.setup.owner.as_ref();
        let start_ns = if index == 0 {
            self.setup.template.capture_start_ns
        } else {
            clock::realtime_ns()
        };
        // Where it goes: the day of its first row. Not the clock's: rows reach the writer a
        // little after they were made (more under load), and a segment opened just after
        // midnight for rows of the day before belongs in that day's directory.
        let place_ns = first_row_ns.unwrap_or(start_ns);
        let (path, file, dir) = match self.next_first.take() {
            Some(first) => first,
            None => {
                let (path, parts) =
                    self.setup
                        .output
                        .segment_path(&self.setup.template, index, place_ns);
                let (dir, _) = self.setup.dir.subdir(&parts, owner)?;
                let file = dir.create(name_of(&path)?, false, owner)?;
                (path, file, dir)
            }
        };
        // A journal left there (one recovery could not complete) is replaced.
        let journal = match dir.create(&journal_name(&path)?, true, owner) {
            Ok(journal) => journal,
            Err(err) => {
                // Still empty, and without a journal nothing could complete it.
                let _ = dir.remove(name_of(&path)?);
                return Err(err.context("creating the crash journal"));
            }
        };
        let watched = file.try_clone().map_err(|e| write_error(&path, e))?;
        // The journal's directory entry must survive a crash too.
        dir.sync().map_err(|e| write_error(&path, e))?;
        let listed_as = chain::listed_name(&self.setup.dir, &dir, name_of(&path)?);
        let day = match &self.setup.output {
            Output::Dir { partition, .. } if partition.by_date() => {
                Some(partition.day_of(place_ns))
            }
            _ => None,
        };
        self.day = day;
        let mut meta = self.setup.template.clone();
        meta.segment_index = Some(index);
        meta.capture_start_ns = start_ns;
        meta.capture_end_ns = start_ns;
        // In the journal from the start, so a recovered segment keeps its link too.
        meta.previous_segment = self.last_link.clone();
        let writer = CaptureWriter::with_journal(file, journal, self.setup.writer.clone(), &meta)
            .map_err(|e| write_error(&path, e))?;
        self.current = Some(Segment {
            path,
            dir,
            listed_as,
            file: watched,
            index,
            writer,
            start_ns,
            opened: Instant::now(),
            unflushed: false,
            warned_row_groups: false,
            previous: self.last_link.clone(),
        });
        self.next_index = index + 1;
        Ok(())
    }

    fn close_segment(&mut self) -> anyhow::Result<()> {
        if self.current.is_none() {
            return Ok(());
        }
        let counters = self.counters()?;
        let Some(meta) = self.segment_metadata(counters) else {
            return Ok(());
        };
        let Some(mut seg) = self.current.take() else {
            return Ok(());
        };
        // Each segment holds the frames of every stack its rows refer to: it reads alone.
        if let Some(stacks) = self.stacks.as_mut() {
            for row in stacks.take_frame_rows() {
                if let Err(err) = seg.writer.push(&row) {
                    let err = write_error(&seg.path, err);
                    self.unfinished = Some((seg.path, seg.dir));
                    return Err(err);
                }
                self.rows += 1;
            }
        }
        let rows = seg.writer.rows_written();
        let closed = seg
            .writer
            .finish(&meta)
            .and_then(|file| Ok(file.sync_all().map(|()| file)?));
        let file = match closed {
            Ok(file) => file,
            Err(err) => {
                let err = write_error(&seg.path, err);
                self.unfinished = Some((seg.path, seg.dir));
                return Err(err);
            }
        };
        self.at_last_close = counters;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.bytes += bytes;
        let _ = seg.dir.remove(&journal_name(&seg.path)?);
        // Read back and hashed here, on the writer thread (the drain never waits for it), from
        // what is on disk: the link and the manifest vouch for the file as it is.
        // A segment that cannot be read back is said, not fatal: the next one then has no link
        // and the manifest does not list it, which `verify` reports.
        let hashed = match self.chain {
            Some(_) => {
                let name = name_of(&seg.path)?;
                match chain::hash_segment(&seg.dir, name, &seg.listed_as, &meta, rows) {
                    Ok(segment) => Some(segment),
                    Err(err) => {
                        say!(
                            "\nmmap-recorder: warning: {} was not hashed for the segment chain: \
                             {err:#}",
                            seg.path.display()
                        );
                        self.last_link = None;
                        None
                    }
                }
            }
            None => None,
        };
        self.files.push(Closed {
            path: seg.path,
            dir: seg.dir,
            listed_as: seg.listed_as,
            rows,
            bytes,
        });
        if let (Some(chain), Some(segment)) = (self.chain.as_mut(), hashed) {
            self.last_link = Some(chain::link_to(&segment));
            chain.finished(segment);
        }
        self.enforce_keep();
        self.write_manifest();
        Ok(())
    }

    fn maybe_rotate(&mut self) -> anyhow::Result<()> {
        if let (Output::File(path), Some(seg)) = (&self.setup.output, self.current.as_mut())
            && seg.writer.row_groups() >= ROW_GROUP_SOFT_LIMIT
            && !seg.warned_row_groups
        {
            seg.warned_row_groups = true;
            say!(
                "\nmmap-recorder: {} holds {ROW_GROUP_SOFT_LIMIT} row groups; from now on rows are \
                 written every {} rows, not every --flush-interval (use -o DIR/ with \
                 --rotate-time for long captures)",
                path.display(),
                self.setup.writer.row_group_rows
            );
        }
        let Output::Dir {
            rotate_size,
            rotate_time,
            partition,
            ..
        } = &self.setup.output
        else {
            return Ok(());
        };
        let Some(seg) = self.current.as_ref() else {
            return Ok(());
        };
        if seg.writer.rows_written() == 0 {
            return Ok(());
        }
        // Bytes written so far plus an estimate of the rows still buffered in the writer.
        let size = seg.writer.bytes_written() + seg.writer.rows_buffered() as u64 * 24;
        let by_size = rotate_size.is_some_and(|max| size >= max);
        let by_time = rotate_time.is_some_and(|max| seg.opened.elapsed() >= max);
        let by_row_groups = seg.writer.row_groups() >= ROW_GROUP_SOFT_LIMIT;
        // Midnight UTC passed a while ago and no row of the new day came to close the segment
        // (an idle recording). The grace lets the rows of the old day still on their way in
        // arrive first; one that comes later still goes in its own day's directory (in a
        // segment of its own).
        let by_day = self.day.as_ref().is_some_and(|day| {
            partition.day_of(clock::realtime_ns().saturating_sub(MIDNIGHT_GRACE_NS)) > *day
        });
        if by_size || by_time || by_row_groups || by_day {
            self.close_segment()?;
        }
        Ok(())
    }

    /// With `--keep N`, removes the oldest closed segments beyond N.
    fn enforce_keep(&mut self) {
        let Output::Dir {
            keep: Some(keep), ..
        } = &self.setup.output
        else {
            return;
        };
        while self.files.len() > *keep {
            let oldest = self.files.remove(0);
            let removed = oldest
                .path
                .file_name()
                .is_some_and(|name| oldest.dir.remove(name).is_ok());
            if removed {
                if let Some(chain) = self.chain.as_mut() {
                    chain.removed(&oldest.listed_as);
                }
                self.deleted.segments += 1;
                self.deleted.rows += oldest.rows;
                self.deleted.bytes += oldest.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use mmap_format::{metadata::ClockAnchor, reader::CaptureReader};
    use recorder_common::RecordHeader;

    use super::*;

    fn frame(batch: &mut Vec<u8>, event: EventKind, arg0: u64) {
        let head = RecordHeader {
            event: event as u16,
            args: [arg0, 4096, 3, 0x22, u32::MAX.into(), 0],
            ..Default::default()
        };
        push_frame(batch, &head.to_bytes());
    }

    /// A writer into a segment directory whose kernel counters the test sets.
    fn writer(dir: &Path, kernel: &Arc<Mutex<Counters>>) -> Writer {
        writer_with(dir, kernel, crate::output::Partitioning::default(), 0)
    }

    /// [`writer`], partitioned, for a capture that starts at `start_ns`.
    fn writer_with(
        dir: &Path,
        kernel: &Arc<Mutex<Counters>>,
        partition: crate::output::Partitioning,
        start_ns: i64,
    ) -> Writer {
        Writer::new(setup(dir, kernel, partition, start_ns)).expect("writer")
    }

    fn setup(
        dir: &Path,
        kernel: &Arc<Mutex<Counters>>,
        partition: crate::output::Partitioning,
        start_ns: i64,
    ) -> SinkSetup {
        let kernel = Arc::clone(kernel);
        SinkSetup {
            dir: OutDir::open_existing(dir).expect("open dir"),
            output: Output::Dir {
                dir: dir.to_path_buf(),
                rotate_size: None,
                rotate_time: None,
                keep: None,
                partition,
            },
            writer: WriterConfig::default(),
            flush_interval: Duration::from_secs(1),
            anchor: ClockAnchor {
                boot_ns: 0,
                realtime_ns: 1_700_000_000_000_000_000,
                uncertainty_ns: 0,
            },
            source: "tracepoint",
            template: CaptureMetadata {
                capture_id: Some("0123abcd".to_owned()),
                hostname: "web/1".to_owned(),
                capture_start_ns: start_ns,
                ..Default::default()
            },
            owner: None,
            first: None,
            kernel_counters: Box::new(move || {
                Ok(*kernel.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
            }),
            stacks: None,
        }
    }

    /// The writer signals `room` when it takes a message after the drain asked
    /// ([`Sink::want_room`]), once, and not otherwise (signalled at every message, it woke the
    /// drain thousands of times a second under load).
    #[test]
    fn the_writer_signals_room_once_and_only_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let sink = Sink::spawn(setup(
            dir.path(),
            &kernel,
            crate::output::Partitioning::default(),
            0,
        ))
        .expect("spawn");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let send_and_wait_until_taken = |sink: &Sink| {
            let mut batch = Vec::new();
            frame(&mut batch, EventKind::Mmap, 0x1000);
            assert!(sink.try_send(SinkMsg::Records(batch)).is_ok(), "queue full");
            let deadline = Instant::now() + Duration::from_secs(10);
            while sink.queued_bytes() > 0 {
                assert!(Instant::now() < deadline, "the writer took nothing");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let signalled = |sink: &Sink| {
            runtime
                .block_on(async {
                    tokio::time::timeout(Duration::from_millis(200), sink.room.notified()).await
                })
                .is_ok()
        };

        send_and_wait_until_taken(&sink);
        assert!(!signalled(&sink), "signalled though the drain did not ask");
        sink.want_room();
        send_and_wait_until_taken(&sink);
        assert!(signalled(&sink), "asked, and not signalled");
        send_and_wait_until_taken(&sink);
        assert!(!signalled(&sink), "signalled twice for one wish");
        let report = sink.finish().expect("finish");
        assert_eq!(report.rows, 3);
    }

    #[test]
    fn each_segment_counts_its_own_and_they_add_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let mut writer = writer(dir.path(), &kernel);
        let set_orphans = |n| kernel.lock().expect("lock").orphan_exits = n;

        // Segment 0: two calls, a loss window of 5, an undecodable frame and an unknown kind.
        let mut batch = Vec::new();
        frame(&mut batch, EventKind::Mmap, 0x1000);
        frame(&mut batch, EventKind::Munmap, 0x1000);
        frame(&mut batch, EventKind::Lost, 5);
        push_frame(&mut batch, b"short");
        let mut unknown = RecordHeader::default().to_bytes();
        unknown[0] = 99;
        push_frame(&mut batch, &unknown);
        writer.write_records(&batch).expect("write");
        set_orphans(3);
        kernel.lock().expect("lock").follow_map_full = 2;
        writer.close_segment().expect("rotate");
        // Segment 1: one call.
        let mut batch = Vec::new();
        frame(&mut batch, EventKind::Brk, 0);
        writer.write_records(&batch).expect("write");
        set_orphans(4);
        writer.close_segment().expect("rotate");
        // Orphans after the last rotation, and no row to open a segment: one opens for them.
        set_orphans(6);
        writer.finish().expect("finish");
        let report = writer.report();

        let counters: Vec<Counters> = report
            .files
            .iter()
            .map(|f| CaptureReader::open(f).expect("open").metadata().counters)
            .collect();
        let expected = [
            Counters {
                emitted: 4,
                lost_ringbuf_full: 5,
                orphan_exits: 3,
                entry_map_full: 0,
                decode_errors: 2,
                follow_map_full: 2,
            },
            Counters {
                emitted: 1,
                orphan_exits: 1,
                ..Default::default()
            },
            Counters {
                orphan_exits: 2,
                ..Default::default()
            },
        ];
        assert_eq!(counters, expected);
        assert_eq!(report.rows, 4, "mmap, munmap, lost, brk");
        assert_eq!(report.decode_errors, 2);
    }

    /// Each finished segment is hashed: the next one links to it, the manifest lists it, and
    /// the manifest says when the recording closed its last segment.
    #[test]
    fn finished_segments_are_chained_and_listed_in_the_manifest() {
        use mmap_format::manifest::{Manifest, manifest_name};

        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let mut writer = writer(dir.path(), &kernel);
        let manifest_path = dir
            .path()
            .join(manifest_name(&segment_name(&writer.setup.template, 0)).expect("a segment name"));
        let read_manifest =
            || Manifest::parse(&std::fs::read(&manifest_path).expect("manifest")).expect("parse");
        for calls in [2, 1] {
            let mut batch = Vec::new();
            for _ in 0..calls {
                frame(&mut batch, EventKind::Mmap, 0x1000);
            }
            writer.write_records(&batch).expect("write");
            writer.close_segment().expect("rotate");
            assert!(!read_manifest().complete);
        }
        let mut batch = Vec::new();
        frame(&mut batch, EventKind::Brk, 0);
        writer.write_records(&batch).expect("write");
        writer.finish().expect("finish");
        let files = writer.report().files;
        assert_eq!(files.len(), 3);

        let manifest = read_manifest();
        assert!(manifest.complete);
        assert_eq!(manifest.capture_id, "0123abcd");
        assert_eq!(manifest.segments.len(), 3);
        for (index, (path, listed)) in files.iter().zip(&manifest.segments).enumerate() {
            let (sha256, bytes) = chain::sha256_of(&File::open(path).expect("open")).expect("hash");
            assert_eq!(listed.segment_index, index as u32);
            assert_eq!(
                (listed.sha256.as_str(), listed.bytes),
                (sha256.as_str(), bytes)
            );
            assert_eq!(Path::new(&listed.file), name_of(path).expect("name"));
            let meta = CaptureReader::open(path).expect("open").metadata().clone();
            assert_eq!(listed.rows, [2, 1, 1][index]);
            match index {
                0 => assert_eq!(meta.previous_segment, None),
                _ => assert_eq!(
                    meta.previous_segment,
                    Some(chain::link_to(&manifest.segments[index - 1]))
                ),
            }
        }
    }

    /// `--partition host,date`: segments go in `host=H/date=D/` below the directory (the host
    /// escaped), the manifest stays in the directory and names them by their path from there,
    /// and a row of the next day starts a segment in the next day's directory.
    #[test]
    fn partitioned_segments_change_directory_at_midnight() {
        use mmap_format::{
            manifest::{Manifest, manifest_name},
            partition::PartitionKey,
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let now = clock::realtime_ns();
        let day_ns = 86_400 * 1_000_000_000_i64;
        // The clock, as the partitioning sees it, is 2 s before the next midnight.
        let next_midnight = (now / day_ns + 1) * day_ns;
        let offset = next_midnight - 2_000_000_000 - now;
        let partition = crate::output::Partitioning {
            keys: vec![PartitionKey::Host, PartitionKey::Date],
            clock_offset_ns: offset,
        };
        let mut writer = writer_with(dir.path(), &kernel, partition, now);
        let row = |ts_ns| Event {
            ts_ns,
            ..Default::default()
        };
        // Before midnight (as shifted), then 3 s later: after it.
        writer.push(&row(now)).expect("push");
        writer.push(&row(now + 1_000_000_000)).expect("push");
        writer.push(&row(now + 3_000_000_000)).expect("push");
        writer.finish().expect("finish");
        let files = writer.report().files;
        let before = mmap_format::partition::date_of(next_midnight - 1);
        let after = mmap_format::partition::date_of(next_midnight);
        let relative: Vec<String> = files
            .iter()
            .map(|f| {
                f.strip_prefix(dir.path())
                    .expect("below the directory")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(relative.len(), 2, "{relative:?}");
        assert!(
            relative[0].starts_with(&format!("host=web%2F1/date={before}/mmap-")),
            "{relative:?}"
        );
        assert!(
            relative[1].starts_with(&format!("host=web%2F1/date={after}/mmap-")),
            "{relative:?}"
        );
        let rows: Vec<u64> = files
            .iter()
            .map(|f| CaptureReader::open(f).expect("open").num_rows())
            .collect();
        assert_eq!(rows, [2, 1]);
        let manifest_path = dir
            .path()
            .join(manifest_name(&segment_name(&writer.setup.template, 0)).expect("a segment name"));
        let manifest =
            Manifest::parse(&std::fs::read(&manifest_path).expect("manifest")).expect("parse");
        assert!(manifest.complete);
        let listed: Vec<&str> = manifest.segments.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(listed, relative);
        let second = CaptureReader::open(&files[1]).expect("open");
        assert_eq!(
            second
                .metadata()
                .previous_segment
                .as_ref()
                .map(|l| l.file.as_str()),
            Some(relative[0].as_str())
        );
    }

    /// Rows reach the writer after the clock passed midnight: a segment opened then (after a
    /// rotation) for rows of the day before goes in that day's directory, and a snapshot taken
    /// after midnight waits for the ring's older rows, so that no row of the old day follows
    /// the new day's first row into the new day's segment.
    #[test]
    fn rows_that_arrive_after_midnight_go_in_their_own_days_directory() {
        use mmap_format::{
            event::RowKind::{self, Snapshot, Syscall},
            partition::{PartitionKey, date_of},
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let now = clock::realtime_ns();
        let day_ns = 86_400 * 1_000_000_000_i64;
        // The clock, as the partitioning sees it, is 2 s after a midnight.
        let midnight = (now / day_ns + 1) * day_ns;
        let offset = midnight + 2_000_000_000 - now;
        let partition = crate::output::Partitioning {
            keys: vec![PartitionKey::Date],
            clock_offset_ns: offset,
        };
        let mut writer = writer_with(dir.path(), &kernel, partition, now - 3_000_000_000);
        // Ring records made `before_ns` before the (shifted) midnight.
        let anchor = writer.setup.anchor.realtime_ns;
        let records = |before_ns: &[i64]| {
            let mut batch = Vec::new();
            for ns in before_ns {
                let head = RecordHeader {
                    event: EventKind::Brk as u16,
                    ts_enter_ns: (midnight - offset - ns - anchor) as u64,
                    ..Default::default()
                };
                push_frame(&mut batch, &head.to_bytes());
            }
            batch
        };
        let snapshot = |ts_ns| {
            vec![Event {
                ts_ns,
                kind: Snapshot,
                ..Default::default()
            }]
        };
        writer
            .write_records(&records(&[900_000_000]))
            .expect("write");
        // A rotation by size, at a clock already past midnight.
        writer.close_segment().expect("rotate");
        // An exec read now: its snapshot is of the new day, the ring's next rows of the old.
        writer
            .write_snapshot(snapshot(midnight - offset + 1_500_000_000))
            .expect("snapshot");
        writer
            .write_records(&records(&[800_000_000, 300_000_000]))
            .expect("write");
        // The ring catches up: its first row of the new day lets the snapshot out.
        writer
            .write_records(&records(&[-1_600_000_000, -1_700_000_000]))
            .expect("write");
        writer.finish().expect("finish");

        let before = format!("date={}", date_of(midnight - 1));
        let after = format!("date={}", date_of(midnight));
        let files = writer.report().files;
        let placed: Vec<(String, Vec<RowKind>)> = files
            .iter()
            .map(|f| {
                let day = f
                    .parent()
                    .and_then(Path::file_name)
                    .expect("a date directory")
                    .to_string_lossy()
                    .into_owned();
                let rows = CaptureReader::open(f)
                    .expect("open")
                    .events()
                    .expect("read");
                (day, rows.map(|e| e.expect("row").kind).collect())
            })
            .collect();
        assert_eq!(
            placed,
            [
                (before.clone(), vec![Syscall]),
                (before, vec![Syscall, Syscall]),
                (after, vec![Snapshot, Syscall, Syscall]),
            ]
        );
    }

    /// An mmap record of this process whose fp stack is `frames` (and a path, which the stack
    /// follows).
    fn frame_with_stack(batch: &mut Vec<u8>, frames: &[u64], leaf_ret: u64) {
        use recorder_common::{StackHeader, record_flags, stack_offset};
        let path = b"lib.so\0";
        let head = RecordHeader {
            event: EventKind::Mmap as u16,
            flags: record_flags::HAS_STACK,
            tgid: std::process::id(),
            tid: std::process::id(),
            args: [0, 4096, 3, 0x22, u32::MAX.into(), 0],
            ret: 0x7f00_0000_0000,
            path_len: path.len() as u16,
            ..Default::default()
        };
        let mut item = head.to_bytes().to_vec();
        item.extend_from_slice(path);
        item.resize(stack_offset(path.len()), 0);
        let stack = StackHeader {
            mode: stack_mode::FP,
            len: (frames.len() * 8) as u32,
            ip: frames[0],
            sp: 0x7ffc_0000_0000,
            bp: 0,
            leaf_ret,
        };
        item.extend_from_slice(&stack.to_bytes());
        for frame in frames {
            item.extend_from_slice(&frame.to_ne_bytes());
        }
        push_frame(batch, &item);
    }

    #[inline(never)]
    fn a_caller() -> u64 {
        std::hint::black_box(a_caller as *const () as u64)
    }

    /// With --stacks: a call with a stack gets a stack id, one without none; each segment holds
    /// the frame rows of the stacks its rows use (a stack used in two segments is in both, with
    /// the same id), and frame rows take the identity of the first call with the stack.
    #[test]
    fn stacks_get_ids_and_each_segment_holds_the_frames_it_uses() {
        use mmap_format::event::RowKind;

        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let mut setup = setup(
            dir.path(),
            &kernel,
            crate::output::Partitioning::default(),
            0,
        );
        setup.stacks = Some(StackMode::Fp);
        let mut writer = Writer::new(setup).expect("writer");
        // Addresses inside this test binary: frame 0 and a return address.
        let frames = [
            a_caller() + 4,
            frames_round_trip_and_stop_at_a_torn_frame as *const () as u64 + 8,
        ];
        let leaf_ret = a_caller() + 1;

        let mut batch = Vec::new();
        frame_with_stack(&mut batch, &frames, leaf_ret);
        frame(&mut batch, EventKind::Munmap, 0x1000);
        writer.write_records(&batch).expect("write");
        writer.close_segment().expect("rotate");
        let mut batch = Vec::new();
        frame_with_stack(&mut batch, &frames, leaf_ret);
        writer.write_records(&batch).expect("write");
        writer.finish().expect("finish");
        let files = writer.report().files;
        assert_eq!(files.len(), 2);

        let mut ids = Vec::new();
        for file in &files {
            let rows: Vec<Event<'static>> = CaptureReader::open(file)
                .expect("open")
                .events()
                .expect("rows")
                .map(|row| row.expect("row"))
                .collect();
            let calls: Vec<&Event> = rows.iter().filter(|r| r.kind == RowKind::Syscall).collect();
            let with_stack: Vec<u64> = calls.iter().filter_map(|r| r.stack_id).collect();
            assert_eq!(
                with_stack.len(),
                1,
                "{}: the mmap row has a stack",
                file.display()
            );
            assert!(
                calls
                    .iter()
                    .all(|r| r.stack_id.is_none() || r.len == Some(4096)),
                "only the call with a stack has an id"
            );
            let id = with_stack[0];
            let frame_rows: Vec<&Event> =
                rows.iter().filter(|r| r.kind == RowKind::Frame).collect();
            assert!(!frame_rows.is_empty(), "{}: frame rows", file.display());
            for row in &frame_rows {
                assert_eq!(row.stack_id, Some(id));
                assert_eq!(row.pid, std::process::id());
                assert_eq!(row.source.as_deref(), Some("stack_fp"));
            }
            let first = frame_rows
                .iter()
                .find(|r| r.frame_index == Some(0))
                .expect("frame 0");
            assert_eq!(first.frame_addr, Some(frames[0]), "frame 0 is the ip");
            ids.push(id);
        }
        assert_eq!(
            ids[0], ids[1],
            "the same stack keeps its id across segments"
        );
    }

    /// Partitioned by day: a call of the next day starts the next day's segment before its
    /// stack is interned, so its frame rows are in the segment that holds it.
    #[test]
    fn a_stack_of_a_new_day_has_its_frames_in_the_new_days_segment() {
        use mmap_format::{event::RowKind, partition::PartitionKey};

        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(Mutex::new(Counters::default()));
        let day_ns = 86_400 * 1_000_000_000_i64;
        let partition = crate::output::Partitioning {
            keys: vec![PartitionKey::Date],
            clock_offset_ns: 0,
        };
        // The capture starts a day before the calls (the anchor puts boot time 0 at
        // 1_700_000_000 s).
        let mut setup = setup(
            dir.path(),
            &kernel,
            partition,
            1_700_000_000_000_000_000 - day_ns,
        );
        setup.stacks = Some(StackMode::Fp);
        let mut writer = Writer::new(setup).expect("writer");
        let mut batch = Vec::new();
        frame_with_stack(&mut batch, &[a_caller() + 4], 0);
        writer.write_records(&batch).expect("write");
        writer.finish().expect("finish");
        let files = writer.report().files;
        assert_eq!(files.len(), 2, "{files:?}");
        for (index, file) in files.iter().enumerate() {
            let kinds: Vec<RowKind> = CaptureReader::open(file)
                .expect("open")
                .events()
                .expect("rows")
                .map(|row| row.expect("row").kind)
                .collect();
            match index {
                0 => assert!(kinds.is_empty(), "the day before holds nothing: {kinds:?}"),
                _ => assert!(
                    kinds.contains(&RowKind::Syscall) && kinds.contains(&RowKind::Frame),
                    "{kinds:?}"
                ),
            }
        }
    }

    #[test]
    fn frames_round_trip_and_stop_at_a_torn_frame() {
        let mut batch = Vec::new();
        push_frame(&mut batch, b"abc");
        push_frame(&mut batch, b"");
        push_frame(&mut batch, b"defgh");
        let items: Vec<&[u8]> = frames(&batch).collect();
        assert_eq!(items, vec![&b"abc"[..], b"", b"defgh"]);
        batch.truncate(batch.len() - 2);
        assert_eq!(frames(&batch).count(), 2);
    }
}
