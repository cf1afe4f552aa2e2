//! The writer thread: converts kernel records into rows, compresses and writes them, so that the
//! ring-buffer drain never waits for zstd or the disk.
use std::{
    fs::File,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mmap_format::{
    metadata::{CaptureMetadata, ClockAnchor},
    writer::{CaptureWriter, WriterConfig},
};
use recorder_common::SyscallRecord;

use crate::convert::to_event;

/// Messages to the writer thread.
pub enum SinkMsg {
    Records(Vec<SyscallRecord>),
    /// Close the file with this metadata (the sink adds its own decode-error count).
    Finish(Box<CaptureMetadata>),
}

/// Live numbers, read by the progress display.
#[derive(Default)]
pub struct SinkStats {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
}

/// What the writer thread did.
#[derive(Debug)]
pub struct SinkReport {
    pub rows: u64,
    pub bytes: u64,
    pub decode_errors: u64,
}

/// Sending side of the writer thread.
pub struct Sink {
    tx: SyncSender<SinkMsg>,
    handle: JoinHandle<anyhow::Result<SinkReport>>,
    pub stats: Arc<SinkStats>,
}

/// Batches of records that may wait for the writer before the drain stops reading (and lets the
/// kernel count further records as lost instead of growing memory without bound).
const QUEUE_BATCHES: usize = 4096;

impl Sink {
    pub fn spawn(
        file: File,
        config: WriterConfig,
        anchor: ClockAnchor,
        flush_interval: Duration,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE_BATCHES);
        let stats = Arc::new(SinkStats::default());
        let writer = CaptureWriter::new(file, config).context("starting the capture writer")?;
        let thread_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || write_loop(writer, rx, anchor, flush_interval, &thread_stats))
            .context("spawning the writer thread")?;
        Ok(Self { tx, handle, stats })
    }

    /// Queues records without blocking; gives them back when the queue is full.
    pub fn try_send(&self, records: Vec<SyscallRecord>) -> Result<(), Vec<SyscallRecord>> {
        match self.tx.try_send(SinkMsg::Records(records)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(SinkMsg::Records(r))) => Err(r),
            Err(TrySendError::Disconnected(SinkMsg::Records(r))) => Err(r),
            Err(_) => Err(Vec::new()),
        }
    }

    /// Queues records, waiting for room (used only once recording has stopped).
    pub fn send(&self, records: Vec<SyscallRecord>) -> anyhow::Result<()> {
        self.tx
            .send(SinkMsg::Records(records))
            .map_err(|_| anyhow::anyhow!("the writer thread stopped early"))
    }

    /// Closes the file with `metadata` and waits for the writer thread.
    pub fn finish(self, metadata: CaptureMetadata) -> anyhow::Result<SinkReport> {
        let sent = self.tx.send(SinkMsg::Finish(Box::new(metadata)));
        drop(self.tx);
        let report = self
            .handle
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
        sent.map_err(|_| anyhow::anyhow!("the writer thread stopped before closing the file"))?;
        Ok(report)
    }
}

fn write_loop(
    mut writer: CaptureWriter<File>,
    rx: Receiver<SinkMsg>,
    anchor: ClockAnchor,
    flush_interval: Duration,
    stats: &SinkStats,
) -> anyhow::Result<SinkReport> {
    let mut decode_errors = 0u64;
    let mut unflushed = false;
    let mut last_flush = Instant::now();
    loop {
        let timeout = flush_interval.saturating_sub(last_flush.elapsed());
        match rx.recv_timeout(timeout) {
            Ok(SinkMsg::Records(records)) => {
                for rec in &records {
                    match to_event(rec, &anchor) {
                        Ok(event) => writer.push(&event).context("writing a row")?,
                        Err(_) => decode_errors += 1,
                    }
                }
                unflushed |= !records.is_empty();
                stats.rows.store(writer.rows_written(), Ordering::Relaxed);
            }
            Ok(SinkMsg::Finish(mut metadata)) => {
                metadata.counters.decode_errors += decode_errors;
                let rows = writer.rows_written();
                let file = writer
                    .finish(&metadata)
                    .context("closing the capture file")?;
                file.sync_all().context("syncing the capture file")?;
                let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                stats.bytes.store(bytes, Ordering::Relaxed);
                return Ok(SinkReport {
                    rows,
                    bytes,
                    decode_errors,
                });
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("recording stopped without closing the capture file")
            }
        }
        if last_flush.elapsed() >= flush_interval {
            if unflushed {
                writer
                    .flush()
                    .context("flushing rows to the capture file")?;
                unflushed = false;
            }
            last_flush = Instant::now();
            stats.bytes.store(writer.bytes_written(), Ordering::Relaxed);
        }
    }
}
