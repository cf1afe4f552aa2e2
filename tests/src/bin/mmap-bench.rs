//! mmap-bench: what recording costs the traced program, measured the only honest way on a noisy
//! machine: the same loop of mmap/munmap pairs timed without a recorder and with one, in
//! alternating rounds within one run, reported as medians and ratios.
//!
//! Modes per round:
//! - `baseline`: no recorder attached.
//! - `filtered`: the recorder attached with another process as its target, so every call runs the
//!   programs, which only filter (the cost paid by processes you do not record).
//! - `recorded`: the recorder attached with this process as its target: every call is recorded.
//!
//! After every recorded round the capture is opened and its rows counted, so the numbers are for a
//! recorder that really kept every call.
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// The mmap-recorder binary to measure.
    #[arg(long)]
    recorder: PathBuf,
    /// mmap/munmap pairs per measurement.
    #[arg(long, default_value_t = 200_000)]
    calls: u64,
    /// Rounds of (baseline, filtered, recorded).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Directory for the captures.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Also print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// ns per mmap+munmap pair of a 4 KiB anonymous private mapping, touched once.
fn pairs(calls: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: a fresh anonymous mapping, written once and unmapped; no aliasing.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "mmap failed");
            libc::munmap(p, 4096);
        }
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// Starts the recorder on `target` and waits until it has attached.
fn start_recorder(args: &Args, target: u32, out: &std::path::Path) -> anyhow::Result<Child> {
    let mut child = Command::new(&args.recorder)
        .args([
            "record",
            "-q",
            "--force",
            "--pid",
            &target.to_string(),
            "-o",
        ])
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", args.recorder.display()))?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains("recording mmap calls") => {}
        other => bail!("recorder did not start: {other:?}"),
    }
    // Keep reading its stderr in the background so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(child)
}

fn stop_recorder(mut child: Child) -> anyhow::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait()?;
    if !status.success() {
        bail!("recorder exited with {status}");
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let me = std::process::id();
    let out = args.dir.join(format!("mmap-bench-{me}.parquet"));
    // Warm up page tables and caches.
    pairs(args.calls / 10 + 1);
    let (mut base, mut filtered, mut recorded) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        base.push(pairs(args.calls));

        let rec = start_recorder(&args, 1, &out)?;
        filtered.push(pairs(args.calls));
        stop_recorder(rec)?;

        let rec = start_recorder(&args, me, &out)?;
        recorded.push(pairs(args.calls));
        stop_recorder(rec)?;
        let rows = count_rows(&out)?;
        if rows < args.calls {
            bail!(
                "round {round}: the capture holds {rows} rows for {} calls",
                args.calls
            );
        }
        eprintln!(
            "round {}: baseline {:.0} ns, filtered {:.0} ns, recorded {:.0} ns per pair ({rows} rows)",
            round + 1,
            base[round],
            filtered[round],
            recorded[round]
        );
    }
    let _ = std::fs::remove_file(&out);
    let (b, f, r) = (
        median(&mut base),
        median(&mut filtered),
        median(&mut recorded),
    );
    println!(
        "| mode | ns per mmap+munmap pair (median of {}) | added | ratio |",
        args.rounds
    );
    println!("|---|---|---|---|");
    println!("| baseline | {b:.0} | | 1.00 |");
    println!(
        "| filtered (other target) | {f:.0} | {:+.0} ns | {:.2} |",
        f - b,
        f / b
    );
    println!("| recorded | {r:.0} | {:+.0} ns | {:.2} |", r - b, r / b);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "calls": args.calls, "rounds": args.rounds,
                "baseline_ns": b, "filtered_ns": f, "recorded_ns": r,
            })
        );
    }
    Ok(())
}

/// Rows in the capture, as `mmap-analyze summary` (built next to this binary) counts them.
fn count_rows(path: &std::path::Path) -> anyhow::Result<u64> {
    let analyze = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("mmap-analyze");
    let out = Command::new(&analyze)
        .args(["summary", "--format", "json"])
        .arg(path)
        .output()
        .with_context(|| format!("running {}", analyze.display()))?;
    if !out.status.success() {
        bail!("mmap-analyze: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["events"].as_u64().context("events in summary json")
}
