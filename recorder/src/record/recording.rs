//! A recording in its phases, as retis runs a collection (init, register probes, start, stop):
//! [`Recording::set_up`] loads and attaches, [`Recording::start`] starts the writer, turns
//! recording on and starts snapshots and the command, [`Recording::run`] drains until something
//! stops it, and [`Recording::finish`] shuts down in order and reports.
use std::{os::fd::OwnedFd, path::Path, time::Instant};

use anyhow::Context as _;
use tokio::runtime::Runtime;

use super::{
    config::RecordConfig,
    drain::{Drain, Signals, Stop, Watch},
    progress::{self, Progress},
    report::{self, Report},
};
use crate::{
    btf, clock, launch,
    output::{FirstFile, OutDir, Output, Provisional},
    probes::{self, AttachMode, Probes},
    sink::{Sink, SinkReport, SinkSetup, WriteFailed, WriterStopped},
    snapshot,
};

/// One recording, from the loaded programs to the closed capture.
pub struct Recording {
    config: RecordConfig,
    probes: Probes,
    mode: AttachMode,
    drain: Drain,
    watch: Watch,
    signals: Signals,
    /// The kernel measures the programs' run time while this is open (--prog-stats).
    run_time_stats: Option<OwnedFd>,
    /// The first capture file, from set-up until the writer takes it at the start.
    first: Option<FirstFile>,
    /// What set-up created at the output: removed unless the capture gets a row.
    created: Provisional,
    /// The directory the capture's files go in, held open.
    dir: OutDir,
    /// The writer thread, from the start until finish closes it.
    sink: Option<Sink>,
    /// The live progress line, from the start (on a terminal, without --quiet).
    progress: Option<Progress>,
    started: Instant,
    /// Dropped last: the drain's and the watch's descriptors are registered with it.
    runtime: Runtime,
}

impl Recording {
    /// Set-up: completes what a killed recorder left at the output, creates the first file (so
    /// that a bad path fails before anything is loaded), loads the programs with the targets and
    /// attaches them, with recording still off. An error here leaves nothing behind.
    pub fn set_up(mut config: RecordConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let in_runtime = runtime.enter();
        let signals = Signals::catch()?;
        drop(in_runtime);
        let owner = config.user.as_ref();
        config.output.recover_leftovers(owner);
        let (first, created, dir) =
            config
                .output
                .create_first(&config.template, config.force, owner)?;
        let offsets = btf::kernel_offsets(Path::new(btf::VMLINUX_BTF))?;
        let mut probes = Probes::load(
            &config.kernel_config(),
            &offsets,
            config.ring_bytes,
            config.follow_map_size,
        )?;
        for &pid in &config.targets().pids {
            probes.add_target(pid)?;
        }
        for comm in &config.targets().comms {
            probes.add_comm(comm)?;
        }
        let in_runtime = runtime.enter();
        let drain = Drain::new(probes.take_ring()?)?;
        let watch = Watch::new(&config.targets().pids, config.duration)?;
        drop(in_runtime);
        let run_time_stats = if config.prog_stats {
            let enabled = probes::enable_run_time_stats();
            Some(enabled.context("enabling BPF run-time statistics")?)
        } else {
            None
        };
        let mode = probes.attach_chosen(config.attach, config.tracefs)?;
        config.template.attach_mode = mode.name().to_owned();
        Ok(Self {
            config,
            probes,
            mode,
            drain,
            watch,
            signals,
            run_time_stats,
            first: Some(first),
            created,
            dir,
            sink: None,
            progress: None,
            started: Instant::now(),
            runtime,
        })
    }

    /// Start: the writer thread takes the first file, recording is turned on (every program is
    /// attached), the targets that already run are snapshotted, and the command starts last,
    /// once everything that can fail has been done (a held child is never left behind by an
    /// early error). From here on, [`Self::finish`] closes the capture whatever happens (or
    /// removes it, when nothing was recorded).
    pub fn start(&mut self) -> anyhow::Result<()> {
        let anchor = clock::anchor();
        self.config.template.clock_anchors = vec![anchor];
        let kernel_counters = self.probes.shared_counters();
        let sink = Sink::spawn(SinkSetup {
            output: self.config.output.clone(),
            dir: self.dir.clone(),
            writer: self.config.writer.clone(),
            flush_interval: self.config.flush_interval,
            anchor,
            source: self.mode.name(),
            template: self.config.template.clone(),
            owner: self.config.user.clone(),
            first: self.first.take(),
            kernel_counters: Box::new(move || Ok(kernel_counters.read()?)),
            stacks: self.config.stacks.as_ref().map(|plan| plan.mode.into()),
        })?;
        let sink = self.sink.insert(sink);
        // Calls' records wait in per-CPU batches when the flush program runs here (the
        // drain flushes them at every tick); without it each goes to the ring on its own.
        if !self.config.no_batches {
            self.probes.enable_batches();
        }
        // From here on a call is recorded whole, or (already in progress) counted as an orphan
        // exit.
        self.probes.set_recording(true)?;
        if self.config.progress {
            let segmented = matches!(self.config.output, Output::Dir { .. });
            self.progress = Some(Progress::new(Instant::now(), segmented));
        }
        // Snapshots after recording is on: a change made between the two is both in the
        // snapshot and a row after it, which replay handles.
        let pids = snapshot::start_pids(self.config.targets());
        self.drain
            .snapshot(pids, snapshot::Reason::Start, sink, true)?;
        report::print_start(&self.config, self.mode);
        self.start_command()?;
        self.started = Instant::now();
        Ok(())
    }

    /// Starts `-- COMMAND` held, makes it a target and watches it, then lets it exec.
    fn start_command(&mut self) -> anyhow::Result<()> {
        let Some(program) = self.config.program() else {
            return Ok(());
        };
        let user = self.config.command_user.as_ref();
        say!(
            "mmap-recorder: running {program} as {}",
            launch::describe_runner(user)
        );
        let pending = launch::spawn_held(&self.config.command, user)?;
        self.probes.add_target(pending.pid)?;
        let in_runtime = self.runtime.enter();
        self.watch.add_command(pending.pid)?;
        drop(in_runtime);
        pending.release(&program)?;
        Ok(())
    }

    /// Run: drains the ring buffer until a signal, the duration or the targets' exit stops the
    /// recording.
    pub fn run(&mut self) -> anyhow::Result<Stop> {
        let sink = self
            .sink
            .as_ref()
            .context("the recording has not started")?;
        let progress = self.progress.as_mut();
        self.runtime.block_on(self.drain.drive(
            sink,
            &self.probes,
            &self.watch,
            &mut self.signals,
            progress,
        ))
    }

    /// Finish, in the explicit shutdown order: stop producing (recording off, then detach the
    /// programs), drain what is left and the pending loss, read the counters, close the writer,
    /// report. It runs after an error of start or run too, so that what was recorded is kept,
    /// and then returns that error; when nothing was recorded yet, the capture is removed.
    pub fn finish(mut self, stopped: anyhow::Result<Stop>) -> anyhow::Result<Report> {
        let Some(sink) = self.sink.take() else {
            // Not started: nothing was written, and set-up's file is removed on drop.
            return Err(stopped
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("never started")));
        };
        let recorded_for = self.started.elapsed();
        let prog_stats = self.run_time_stats.take().map(|enabled| {
            let stats = self.probes.program_stats();
            drop(enabled);
            stats
        });
        let switched_off = self.probes.set_recording(false);
        self.probes.detach();
        if self.progress.is_some() {
            progress::clear();
        }
        let stopped = match stopped {
            Err(err) if !self.drain.queued_any() => {
                // Failed before the first row: nothing worth keeping. The writer lets go of the
                // file, and `created` removes it (and its journal and directory) on drop.
                let discarded = sink.discard();
                return Err(match (err.is::<WriterStopped>(), discarded) {
                    (true, Err(writer)) => writer,
                    (_, _) => err,
                });
            }
            stopped => stopped,
        };
        self.created.keep();
        let drained = switched_off
            .map_err(anyhow::Error::from)
            .and_then(|()| self.drain.read_rest(&sink, &self.probes))
            .and_then(|()| Ok(self.probes.counters()?));
        let written = sink.finish();
        let (stop, counters) = match stopped.and_then(|stop| Ok((stop, drained?))) {
            Ok(done) => done,
            // The writer stopped on an error of its own (a full disk, a removed output): that
            // error is the one to report.
            Err(err) if err.is::<WriterStopped>() && written.is_err() => {
                return Err(self.kept_after_write_error(written));
            }
            Err(err) => {
                self.say_what_was_kept(&written);
                return Err(err);
            }
        };
        let written = match written {
            Ok(written) => written,
            Err(err) => return Err(self.kept_after_write_error(Err(err))),
        };
        Ok(Report {
            stop,
            written,
            counters,
            output: self.config.output,
            recorded_for,
            prog_stats,
        })
    }

    /// After the writer's own error: says what is on disk, and returns that error.
    fn kept_after_write_error(&self, written: anyhow::Result<SinkReport>) -> anyhow::Error {
        let err = match written {
            Ok(_) => return anyhow::anyhow!("the writer thread stopped without an error"),
            Err(err) => err,
        };
        if let Some(failed) = err.downcast_ref::<WriteFailed>() {
            say!("mmap-recorder: {}", report::kept_after_write_error(failed));
        }
        err
    }

    /// After an error: what the closed capture holds, or why closing failed too.
    fn say_what_was_kept(&self, written: &anyhow::Result<SinkReport>) {
        match written {
            Ok(written) => say!(
                "mmap-recorder: stopped by an error; {}",
                report::written(&self.config.output, written)
            ),
            Err(err) => {
                say!("mmap-recorder: closing the capture failed too: {err:#}");
                if let Some(failed) = err.downcast_ref::<WriteFailed>() {
                    say!("mmap-recorder: {}", report::kept_after_write_error(failed));
                }
            }
        }
    }
}
