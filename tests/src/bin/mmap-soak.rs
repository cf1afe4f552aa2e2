//! mmap-soak: the recorder over a long run at a moderate rate (`make soak`, 10 minutes).
//!
//! Records this process (`--pid`, so the count of calls is known exactly) into a rotating segment
//! directory while it makes mmap+munmap pairs at a steady rate, samples the recorder's RSS every
//! few seconds, then stops it with SIGINT and checks:
//! - every segment opens and reads whole (every row decoded);
//! - no record lost (kernel counters and `lost` rows) and every call made is in the capture (as
//!   many mmap and munmap rows of this process as it made calls, or more: its allocator's);
//! - the segments rotated;
//! - memory flat: the recorder's RSS over the last fifth of the run is no more than its RSS over
//!   the first fifth plus a small allowance (a leak of one byte per call would show: the run
//!   makes millions of calls).
//!
//! Prints what it measured; exits 1 when a check fails.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use mmap_format::{
    event::{RowKind, Syscall},
    reader::CaptureReader,
};

#[derive(Debug, Parser)]
struct Args {
    /// The mmap-recorder binary.
    #[arg(long)]
    recorder: PathBuf,
    /// How long to record, in seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// mmap+munmap pairs per second (a moderate, steady rate).
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Segment rotation age, in seconds.
    #[arg(long, default_value_t = 60)]
    rotate_seconds: u64,
    /// Directory for the capture (a fresh subdirectory is made in it, removed when every check
    /// passed, kept for a look otherwise).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// RSS growth allowed between the first and the last fifth of the run, in KiB.
    #[arg(long, default_value_t = 8 * 1024)]
    rss_allowance_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let segs = args.dir.join(format!("mmap-soak-{}", std::process::id()));
    let mut recorder = Command::new(&args.recorder)
        .args(["record", "--pid"])
        .arg(std::process::id().to_string())
        .args(["--rotate-time", &format!("{}s", args.rotate_seconds), "-o"])
        .arg(format!("{}/", segs.display()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the recorder")?;
    let rec_pid = recorder.id();
    // The recorder is attached once it says it is recording; its other lines are passed on.
    let mut lines = BufReader::new(recorder.stderr.take().context("recorder stderr")?).lines();
    loop {
        let Some(line) = lines.next() else {
            bail!("the recorder stopped before it started recording");
        };
        let line = line.context("reading the recorder's stderr")?;
        eprintln!("{line}");
        if line.starts_with("mmap-recorder: recording ") {
            break;
        }
    }
    let forward = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });

    let run = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut calls: u64 = 0;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next_sample = Duration::ZERO;
    while start.elapsed() < run {
        let elapsed = start.elapsed();
        // Paced: as many pairs as the rate allows by now, then a short sleep.
        let due = (elapsed.as_secs_f64() * args.rate as f64) as u64;
        while calls < due {
            mmap_capture_tests::map_unmap(4096, true).context("mmap")?;
            calls += 1;
        }
        if elapsed >= next_sample {
            samples.push((elapsed.as_secs_f64(), rss_kib(rec_pid)?));
            next_sample += Duration::from_secs(5);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill with a pid of our own child.
    unsafe { libc::kill(rec_pid as i32, libc::SIGINT) };
    let status = recorder.wait().context("waiting for the recorder")?;
    let _ = forward.join();

    let mut failures = Vec::new();
    if !status.success() {
        failures.push(format!("the recorder exited with {status}"));
    }
    let (segments, rows, lost) = read_segments(&segs, std::process::id())?;
    println!(
        "mmap-soak: {:.0} s at {} pairs/s: {} mmap+munmap pairs made, {} recorded rows of this \
         process in {} segments, {} records lost",
        run.as_secs_f64(),
        args.rate,
        calls,
        rows,
        segments,
        lost
    );
    if lost != 0 {
        failures.push(format!("{lost} records lost"));
    }
    // The process's own other calls (its allocator, reading /proc) are recorded too.
    if rows < 2 * calls {
        failures.push(format!("{rows} rows for {} calls", 2 * calls));
    }
    let expected_segments = args.seconds / args.rotate_seconds;
    if segments < expected_segments.max(1) as usize {
        failures.push(format!(
            "{segments} segments, expected at least {expected_segments}"
        ));
    }
    let fifth = run.as_secs_f64() / 5.0;
    let first = max_rss(&samples, 0.0, fifth);
    let last = max_rss(&samples, run.as_secs_f64() - fifth, f64::MAX);
    println!(
        "mmap-soak: recorder RSS {} KiB in the first fifth, {} KiB in the last (samples every 5 s: {})",
        first,
        last,
        samples
            .iter()
            .map(|(_, kib)| kib.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    if last > first + args.rss_allowance_kib {
        failures.push(format!(
            "recorder RSS grew from {first} KiB to {last} KiB (allowance {} KiB)",
            args.rss_allowance_kib
        ));
    }
    if failures.is_empty() {
        std::fs::remove_dir_all(&segs).context("removing the capture")?;
        println!("mmap-soak: ok");
        Ok(())
    } else {
        eprintln!("mmap-soak: the capture is kept in {}", segs.display());
        for failure in &failures {
            eprintln!("mmap-soak: FAILED: {failure}");
        }
        std::process::exit(1);
    }
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn max_rss(samples: &[(f64, u64)], from: f64, to: f64) -> u64 {
    samples
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, kib)| *kib)
        .max()
        .unwrap_or(0)
}

/// Segments read whole: (segments, mmap+munmap rows of `pid`, records lost).
fn read_segments(dir: &Path, pid: u32) -> anyhow::Result<(usize, u64, u64)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        // The segments and their journals, not the capture's manifest.
        .filter(|p| !p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    paths.sort();
    if let Some(journal) = paths
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "journal"))
    {
        bail!(
            "{} left behind: a segment was not closed",
            journal.display()
        );
    }
    let (mut rows, mut lost) = (0, 0);
    for path in &paths {
        let reader =
            CaptureReader::open(path).with_context(|| format!("opening {}", path.display()))?;
        lost += reader.metadata().counters.lost();
        for event in reader
            .events()
            .with_context(|| format!("reading {}", path.display()))?
        {
            let event = event.with_context(|| format!("reading {}", path.display()))?;
            match event.kind {
                RowKind::Lost => lost += event.lost_count.unwrap_or(0),
                RowKind::Syscall
                    if event.pid == pid
                        && matches!(event.syscall, Some(Syscall::Mmap | Syscall::Munmap)) =>
                {
                    rows += 1;
                }
                _ => {}
            }
        }
    }
    Ok((paths.len(), rows, lost))
}
