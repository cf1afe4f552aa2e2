//! The running part of a recording: the ring-buffer drain, which moves kernel records to the
//! writer thread (and snapshots a process as soon as its exec is read), and the loop that drives
//! it until something stops the recording.
use std::{
    collections::VecDeque,
    os::fd::{FromRawFd as _, OwnedFd},
    process::ExitStatus,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use recorder_common::{EventKind, LossWindow, RECORD_HEADER, RecordHeader, RecordRef};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{Signal, SignalKind, signal},
};

use super::progress::{self, Progress};
use crate::{
    cgroups::CgroupNames,
    clock,
    probes::Probes,
    ring::Ring,
    sink::{self, BATCH_BYTES, NotSent, QUEUE_BYTES, Sink, SinkMsg, WriterStopped},
    snapshot,
};

/// How often the drain reads the ring buffer when the kernel has not forced a wakeup.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// The signals that stop a recording, caught from the start of set-up on: one that arrives
/// while the programs load or the first file is made waits for the drain (which then stops at
/// once) instead of killing the recorder with a half-made capture.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    /// Catches SIGINT, SIGTERM and SIGHUP (inside a tokio runtime).
    pub fn catch() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }
}

/// Why recording stopped.
pub enum Stop {
    Signal(&'static str),
    Duration,
    TargetsExited,
    CommandExited(ExitStatus),
}

/// Reads the ring buffer into batches for the writer thread, and snapshots a process as soon as
/// its exec is read.
pub struct Drain {
    ring: AsyncFd<Ring>,
    batch: Vec<u8>,
    /// Messages the writer could not take yet, oldest first.
    waiting: VecDeque<SinkMsg>,
    waiting_bytes: usize,
    /// Whether anything went to the writer yet: a recording that fails before that keeps
    /// nothing.
    queued_any: bool,
    /// Records read from the ring so far (the progress line's rate).
    records_read: u64,
    cgroups: CgroupNames,
}

impl Drain {
    /// Watches the ring (inside a tokio runtime).
    pub fn new(ring: Ring) -> anyhow::Result<Self> {
        Ok(Self {
            // SAFETY: the ring buffer owns its descriptor, which stays open as long as the
            // AsyncFd (its owner) lives.
            ring: unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(|err| err.into_parts().1)
                .context("watching the ring buffer")?,
            batch: Vec::new(),
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            queued_any: false,
            records_read: 0,
            cgroups: CgroupNames::new(),
        })
    }

    /// Whether any row or record was handed on to the writer.
    pub fn queued_any(&self) -> bool {
        self.queued_any
    }

    /// Snapshots each process now and queues its rows (a process that exited already has
    /// nothing left to snapshot).
    pub fn snapshot(
        &mut self,
        pids: impl IntoIterator<Item = u32>,
        reason: snapshot::Reason,
        sink: &Sink,
        wait: bool,
    ) -> anyhow::Result<()> {
        let now = clock::realtime_ns();
        for pid in pids {
            if let Ok(rows) = snapshot::take(pid, reason, now, &mut self.cgroups) {
                self.queue(SinkMsg::Rows(rows));
                self.send_waiting(sink, wait)?;
            }
        }
        Ok(())
    }

    /// Whether the records read and not yet taken by the writer (waiting here or in its queue)
    /// have reached [`QUEUE_BYTES`]: while recording, the drain then leaves records in the ring
    /// (where the kernel counts what no longer fits) until the writer takes some.
    fn behind(&self, sink: &Sink) -> bool {
        self.waiting_bytes.saturating_add(sink.queued_bytes()) >= QUEUE_BYTES
    }

    /// Moves everything readable now to the writer. While recording (`wait` not set) it stops
    /// when the writer is [`Self::behind`]. With `wait` (the end: the programs are detached) it
    /// never stops before the ring is empty, waiting for room in the writer's queue instead:
    /// the ring may hold the in-band loss reports, and a loss report left unread would be loss
    /// the capture never counts (the kernel resets its pending window once it is in the ring).
    fn read_all(&mut self, sink: &Sink, wait: bool) -> anyhow::Result<()> {
        loop {
            self.send_waiting(sink, wait)?;
            if !wait && self.behind(sink) {
                sink.want_room();
                // The writer may have taken a message before it saw the wish: look again.
                if self.behind(sink) {
                    return Ok(());
                }
            }
            if self.batch.capacity() == 0 {
                self.batch = sink.batch_buffer();
            }
            let execs = self.read_batch();
            if self.batch.is_empty() {
                return Ok(());
            }
            let full = self.batch.len() >= BATCH_BYTES;
            let batch = std::mem::take(&mut self.batch);
            self.queue(SinkMsg::Records(batch));
            self.snapshot(execs, snapshot::Reason::Exec, sink, wait)?;
            self.send_waiting(sink, wait)?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Frames ring items into the batch until it is full or the ring is empty; returns the
    /// processes whose exec was read.
    fn read_batch(&mut self) -> Vec<u32> {
        let mut execs = Vec::new();
        let ring = self.ring.get_mut();
        while self.batch.len() < BATCH_BYTES {
            let Some(item) = ring.next() else { break };
            // Only an exec needs a look inside here (the writer thread decodes the rest, and
            // counts what it cannot).
            if item.len() >= RECORD_HEADER
                && u16::from_ne_bytes([item[0], item[1]]) == EventKind::Exec as u16
                && let Some(rec) = RecordRef::decode(item)
            {
                execs.push(rec.head.tgid);
            }
            sink::push_frame(&mut self.batch, item);
            self.records_read += recorder_common::batch_items(item).count() as u64;
        }
        execs
    }

    /// After the programs are detached: moves everything left in the ring to the writer, then
    /// the records left in the CPUs' batches, then the loss windows the kernel had not reported
    /// in-band yet.
    pub fn read_rest(&mut self, sink: &Sink, probes: &Probes) -> anyhow::Result<()> {
        self.read_all(sink, true)?;
        let mut tail = Vec::new();
        for item in probes.waiting_batches()? {
            sink::push_frame(&mut tail, &item);
            self.records_read += (item.len() / RECORD_HEADER) as u64;
        }
        for (cpu, window) in probes.pending_loss()? {
            sink::push_frame(&mut tail, &loss_record(cpu, window));
        }
        if !tail.is_empty() {
            sink.send(SinkMsg::Records(tail))?;
        }
        Ok(())
    }

    fn queue(&mut self, msg: SinkMsg) {
        self.waiting_bytes += msg.bytes();
        self.waiting.push_back(msg);
        self.queued_any = true;
    }

    fn send_waiting(&mut self, sink: &Sink, wait: bool) -> anyhow::Result<()> {
        while let Some(msg) = self.waiting.pop_front() {
            let bytes = msg.bytes();
            if wait {
                sink.send(msg)?;
            } else {
                match sink.try_send(msg) {
                    Ok(()) => {}
                    Err(NotSent::Full(msg)) => {
                        // The queue is full: the writer takes a message soon, and signals.
                        sink.want_room();
                        self.waiting.push_front(msg);
                        return Ok(());
                    }
                    Err(NotSent::Stopped) => return Err(WriterStopped.into()),
                }
            }
            self.waiting_bytes -= bytes;
        }
        Ok(())
    }

    /// Redraws the progress line.
    fn show_progress(
        &self,
        progress: &mut Progress,
        sink: &Sink,
        probes: &Probes,
    ) -> anyhow::Result<()> {
        let stats = &sink.stats;
        let numbers = progress::Numbers {
            records_read: self.records_read,
            rows: stats.rows.load(Ordering::Relaxed),
            lost: probes.counters()?.lost(),
            queued_bytes: self.waiting_bytes as u64 + stats.queued.load(Ordering::Relaxed),
            written_bytes: stats.bytes.load(Ordering::Relaxed),
            segment: stats.segment.load(Ordering::Relaxed),
        };
        progress::show(&progress.line(Instant::now(), &numbers));
        Ok(())
    }

    /// Drains until a signal, the duration or the targets' exit stops the recording; redraws
    /// the `progress` line twice a second.
    pub async fn drive(
        &mut self,
        sink: &Sink,
        probes: &Probes,
        watch: &Watch,
        signals: &mut Signals,
        mut progress: Option<&mut Progress>,
    ) -> anyhow::Result<Stop> {
        let Signals {
            int: sigint,
            term: sigterm,
            hup: sighup,
        } = signals;
        let mut tick = tokio::time::interval(DRAIN_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress_tick = tokio::time::interval(PROGRESS_INTERVAL);
        let deadline = watch.duration.map(|d| tokio::time::Instant::now() + d);
        let mut signals_seen = 0u32;
        loop {
            // The writer stops early only after an error (a full disk, a removed output):
            // recording stops at once, and finish reports that error.
            if sink.stopped() {
                return Err(WriterStopped.into());
            }
            tokio::select! {
                _ = tick.tick() => {
                    // A CPU's last records wait in its batch until it fills: sent now. (A
                    // failure leaves them there, for the next tick or the end.)
                    let _ = probes.flush_batches();
                    self.read_all(sink, false)?;
                }
                // The writer took a message: a drain that had stopped at QUEUE_BYTES reads on.
                _ = sink.room.notified() => self.read_all(sink, false)?,
                guard = self.ring.readable() => {
                    let mut guard = guard.context("ring buffer readiness")?;
                    guard.clear_ready();
                    drop(guard);
                    self.read_all(sink, false)?;
                }
                _ = sigint.recv() => {
                    signals_seen += 1;
                    // With a command, the terminal's Ctrl-C reached it too: keep recording until
                    // it exits; a second signal stops at once.
                    if watch.command.is_none() || signals_seen > 1 {
                        return Ok(Stop::Signal("SIGINT"));
                    }
                }
                _ = sigterm.recv() => {
                    signals_seen += 1;
                    if !forward_first(watch.command, libc::SIGTERM, signals_seen) {
                        return Ok(Stop::Signal("SIGTERM"));
                    }
                }
                // The terminal went away: as SIGTERM (instead of dying with the capture
                // unfinished).
                _ = sighup.recv() => {
                    signals_seen += 1;
                    if !forward_first(watch.command, libc::SIGHUP, signals_seen) {
                        return Ok(Stop::Signal("SIGHUP"));
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    return Ok(Stop::Duration);
                }
                _ = watch.all_exited() => return watch.exited(),
                _ = progress_tick.tick(), if progress.is_some() => {
                    if let Some(progress) = progress.as_deref_mut() {
                        self.show_progress(progress, sink, probes)?;
                    }
                }
            }
        }
    }
}

/// The first SIGTERM or SIGHUP goes on to the command, whose exit then ends the recording;
/// returns whether it did (false: no command, or a later signal, which stops at once).
fn forward_first(command: Option<u32>, signo: libc::c_int, signals_seen: u32) -> bool {
    match command {
        Some(pid) if signals_seen == 1 => {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, signo) };
            true
        }
        _ => false,
    }
}

/// A `Lost` record for a loss window still pending in the kernel at the end.
fn loss_record(cpu: u32, window: LossWindow) -> [u8; RECORD_HEADER] {
    RecordHeader {
        event: EventKind::Lost as u16,
        cpu,
        ts_enter_ns: window.first_ns,
        ts_exit_ns: window.last_ns,
        args: [window.count, 0, 0, 0, 0, 0],
        ..Default::default()
    }
    .to_bytes()
}

/// The processes whose exit ends the recording (the --pid targets and the command), and its
/// duration.
pub struct Watch {
    pidfds: Vec<AsyncFd<OwnedFd>>,
    /// The command's pid, once started: reaped at the end, its status the recorder's.
    command: Option<u32>,
    duration: Option<Duration>,
}

impl Watch {
    /// Watches the --pid targets (inside a tokio runtime); a target that is gone already is an
    /// error.
    pub fn new(pids: &[u32], duration: Option<Duration>) -> anyhow::Result<Self> {
        Ok(Self {
            pidfds: pids
                .iter()
                .map(|&pid| pidfd(pid))
                .collect::<Result<_, _>>()?,
            command: None,
            duration,
        })
    }

    /// Watches the started command too.
    pub fn add_command(&mut self, pid: u32) -> anyhow::Result<()> {
        self.pidfds.push(pidfd(pid)?);
        self.command = Some(pid);
        Ok(())
    }

    /// Resolves when every watched process has exited (never when there are none).
    async fn all_exited(&self) {
        if self.pidfds.is_empty() {
            std::future::pending::<()>().await;
        }
        for fd in &self.pidfds {
            let _ = fd.readable().await;
        }
    }

    /// The stop once all have exited: the command's status if there is one.
    fn exited(&self) -> anyhow::Result<Stop> {
        Ok(match self.command {
            Some(pid) => Stop::CommandExited(reap(pid)?),
            None => Stop::TargetsExited,
        })
    }
}

/// A pidfd that becomes readable when the process exits.
fn pidfd(pid: u32) -> anyhow::Result<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("pidfd_open({pid})"));
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open as long as it lives.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .context("watching a target process")
}

/// Waits for an exited child and returns its status.
fn reap(pid: u32) -> anyhow::Result<ExitStatus> {
    use std::os::unix::process::ExitStatusExt as _;
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid local.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("waiting for the command");
    }
    Ok(ExitStatus::from_raw(status))
}
