//! mmap-bench: what recording costs the traced program, measured the only honest way on a noisy
//! machine: the same loop of mmap/munmap pairs timed without a recorder and with one, in
//! alternating rounds within one run, reported as medians and ratios.
//!
//! Modes per round:
//! - `baseline`: no recorder attached.
//! - `filtered`: the recorder attached with another process as its target, so every call runs the
//!   programs, which only filter (the cost paid by processes you do not record).
//! - `recorded`: the recorder attached with the loop's process as its target: every call is
//!   recorded.
//! - with `--also MODE,...`: `filtered` and `recorded` again with `--attach MODE` for each mode
//!   given (`--exit-only` is `--also tracepoint-exit`); an entry that starts with `--` is
//!   recorder options instead (`--also=--no-batches`).
//! - with `--stacks fp,dwarf`: `recorded` again with `--stacks MODE` for each mode given (the
//!   user call stack of every call, see docs/PERFORMANCE.md for what the loop's stacks are).
//!
//! The loop runs in a fresh `mmap-workload --pairs N --wait-stdin` each time (pinned to this
//! process's CPU), which the recorder attaches to while it waits: the cost any process pays.
//!
//! After every recorded round the capture is opened and its rows counted, so the numbers are for a
//! recorder that really kept every call.
//!
//! With `--compile N`, a varied real workload too: the whole host recorded (no target) while
//! `make -j` builds N generated C files with `cc -O2 -g` (the compiler driver, cc1, as and their
//! libraries: file mappings, anonymous memory, brk, mprotect, fork, exec, exit), for the capture's
//! bytes per row on something other than the loop.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
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
    /// Pin this process, and so the loops it starts, to this CPU; default: the last CPU.
    #[arg(long)]
    bench_cpu: Option<usize>,
    /// Pin the recorder to this CPU; default: CPU 0 (when there are two or more CPUs).
    #[arg(long)]
    recorder_cpu: Option<usize>,
    /// Also compare with other tracers recording the same calls (strace, perf trace, bpftrace,
    /// where installed): the ns per pair the traced loop sees under each, best of --rounds; and
    /// with bpftrace's empty programs on the same syscall tracepoints, the kernel's floor for
    /// any tool that hooks them.
    #[arg(long)]
    compare: bool,
    /// Also print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Also measure recording with call stacks, one mode per entry (`fp`, `dwarf`).
    #[arg(long, value_delimiter = ',')]
    stacks: Vec<String>,
    /// Also record `mmap-workload --flood N` (two threads at full rate, 4 N calls, through the
    /// default ring) once, and report the recorder's peak RSS, rows and records lost: the
    /// recorder's memory at full rate. 0: no flood.
    #[arg(long, default_value_t = 0)]
    flood: u64,
    /// The recorder's `--attach` mode for the filtered, recorded, stacks and --prog-stats runs
    /// (`tracepoint`, `raw-tracepoint`, ...); default: the recorder's own choice.
    #[arg(long, value_name = "MODE")]
    attach: Option<String>,
    /// Also time the filtered and recorded loops with each of these `--attach` modes in every
    /// round, beside the default mode (`tracepoint-exit,tp-btf,tp-btf-exit`, ...). An entry that
    /// starts with `--` is recorder options, separated by spaces, instead of a mode
    /// (`--also=--no-batches,tp-btf-exit`).
    #[arg(long, value_name = "MODE", value_delimiter = ',')]
    also: Vec<String>,
    /// The same as `--also tracepoint-exit` (calls recorded at their exit only, no durations).
    #[arg(long)]
    exit_only: bool,
    /// Also record the whole host while `make -j` compiles N generated C files with `cc -O2 -g`
    /// (needs make and cc), and report the capture's rows, loss and bytes per row. 0: no compile.
    #[arg(long, value_name = "N", default_value_t = 0)]
    compile: u32,
}

/// The recorder options of an `--also` entry: `--attach MODE`, or the entry itself split at
/// spaces when it starts with `--`.
fn also_args(entry: &str) -> Vec<&str> {
    if entry.starts_with("--") {
        entry.split_whitespace().collect()
    } else {
        vec!["--attach", entry]
    }
}

/// The loops timed under one `--also` mode: ns per pair of each round.
#[derive(Default)]
struct AlsoRuns {
    filtered: Vec<f64>,
    recorded: Vec<f64>,
    filtered_t: Vec<f64>,
    recorded_t: Vec<f64>,
    filtered_o: Vec<f64>,
    recorded_o: Vec<f64>,
}

/// What the recorder process used, from `wait4`.
struct Usage {
    /// CPU time (user + system), in ns.
    cpu_ns: f64,
    /// Peak resident set size (`ru_maxrss`), in KiB.
    max_rss_kib: u64,
}

/// One recorded run with stacks: ns per pair, and the capture's bytes, rows, frame rows and
/// distinct stacks.
struct StackRun {
    ns: f64,
    /// Calls (syscall rows) the capture kept.
    calls: u64,
    bytes: u64,
    rows: u64,
    frames: u64,
    stacks: u64,
}

/// The program `name` of this workspace, built beside this one (`mmap-workload`, `mmap-analyze`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join(name))
}

/// Times the loop in a fresh `mmap-workload --pairs N --wait-stdin` on this process's CPU: ns
/// per mmap+munmap pair of a 4 KiB anonymous private mapping not touched (the loop),
/// and, with `touched`, of the same loop with each mapping's first byte written once (a page
/// fault, a zeroed page and its freeing in each pair, as a program that maps memory to use it
/// pays). The child warms up, then waits; `attach` gets its pid meanwhile (to start a
/// recorder), the child is let go once `attach` returns, and what `attach` returned (the
/// running recorder) is handed back after both loops.
///
/// The loop runs in a child, not in this process: timed here, under a recorder this process had
/// started, the loop paid either what every separately started process pays or ~250 ns a pair
/// less, even less than with no recorder, one or the other for each recorder instance (see
/// docs/PERFORMANCE.md, 2026-12-04 late).
fn child_loops<T>(
    args: &Args,
    touched: bool,
    attach: impl FnOnce(u32) -> anyhow::Result<T>,
) -> anyhow::Result<(f64, Option<Extra>, T)> {
    let mut cmd = Command::new(sibling("mmap-workload")?);
    cmd.args(["--pairs", &args.calls.to_string(), "--wait-stdin"]);
    if touched {
        cmd.args(["--touched", "--other"]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mmap-workload")?;
    let held = match attach(child.id()) {
        Ok(held) => held,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
    };
    // Closing its stdin starts the timed loops.
    drop(child.stdin.take());
    let out = child
        .wait_with_output()
        .context("waiting for mmap-workload")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("mmap-workload failed: {stderr}");
    }
    let timing = |touched: bool| {
        stderr
            .lines()
            .filter_map(ns_per_pair)
            .find(|&(t, _)| t == touched)
            .map(|(_, ns)| ns)
            .with_context(|| format!("no timing from mmap-workload: {stderr}"))
    };
    let untouched = timing(false)?;
    let extra = if touched {
        let other = stderr
            .lines()
            .find_map(|line| {
                line.strip_prefix("mmap-workload: ")?
                    .split_once(" other calls (getppid), ")?
                    .1
                    .strip_suffix(" ns per call")?
                    .parse()
                    .ok()
            })
            .with_context(|| format!("no getppid timing from mmap-workload: {stderr}"))?;
        Some(Extra {
            touched: timing(true)?,
            other,
        })
    } else {
        None
    };
    Ok((untouched, extra, held))
}

/// The loops a child times after the untouched one: the touched loop (ns per pair) and the
/// getppid loop (ns per call).
#[derive(Clone, Copy)]
struct Extra {
    touched: f64,
    other: f64,
}

/// (touched, ns per pair) of a timing line of `mmap-workload --pairs`.
fn ns_per_pair(line: &str) -> Option<(bool, f64)> {
    let rest = line.strip_prefix("mmap-workload: ")?;
    let (what, ns) = rest.split_once(", ")?;
    let ns = ns.strip_suffix(" ns per pair")?.parse().ok()?;
    Some((what.ends_with(" touched"), ns))
}

/// The recorder's command, pinned to `--recorder-cpu` when given.
fn recorder_command(args: &Args) -> Command {
    let mut cmd = Command::new(&args.recorder);
    if let Some(cpu) = args.recorder_cpu {
        // SAFETY: sched_setaffinity in the forked child touches only a local cpu_set_t.
        unsafe {
            cmd.pre_exec(move || {
                pin_to(cpu);
                Ok(())
            });
        }
    }
    cmd
}

/// Starts the recorder on `target` (without following its children), or on the whole host, and
/// waits until it has attached.
fn start_recorder(
    args: &Args,
    target: Option<u32>,
    out: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<(Recorder, std::thread::JoinHandle<Vec<String>>)> {
    let mut cmd = recorder_command(args);
    cmd.args(["record", "-q", "--force"]);
    if let Some(target) = target {
        cmd.args(["--no-follow", "--pid", &target.to_string()]);
    }
    let mut child = cmd
        .args(
            args.attach
                .iter()
                // An --also mode's own --attach (in `extra`) replaces --attach.
                .filter(|_| !extra.contains(&"--attach"))
                .flat_map(|mode| ["--attach", mode.as_str()]),
        )
        .args(extra)
        .arg("-o")
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", args.recorder.display()))?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut said = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("mmap-recorder: recording ") => break,
            Some(Ok(line)) => said.push(line),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "recorder did not start ({other:?}); it said:\n{}",
                    said.join("\n")
                );
            }
        }
    }
    // Keep reading its stderr in the background so it never blocks on a full pipe.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    Ok((Recorder(Some(child)), rest))
}

/// Times both loops (untouched, touched) in a child under a recorder started with `extra`, whose
/// target is the child when `record_loop` (recorded) and another process otherwise (filtered,
/// `--pid 1`); then stops it. (ns per pair, the touched and getppid loops, the recorder's usage.)
fn under_recorder(
    args: &Args,
    out: &std::path::Path,
    record_loop: bool,
    extra: &[&str],
) -> anyhow::Result<(f64, Option<Extra>, Usage)> {
    let (ns, touched, (rec, _)) = child_loops(args, true, |pid| {
        start_recorder(args, Some(if record_loop { pid } else { 1 }), out, extra)
    })?;
    Ok((ns, touched, stop_recorder(rec)?))
}

/// The rows of a recorded round's capture; an error when it holds fewer than the calls of both
/// loops (2 calls a pair each).
fn kept_every_call(args: &Args, out: &std::path::Path, round: usize) -> anyhow::Result<u64> {
    let rows = count_rows(out)?;
    if rows < 4 * args.calls {
        bail!(
            "round {round}: the capture holds {rows} rows for {} calls",
            4 * args.calls
        );
    }
    Ok(rows)
}

/// A running recorder: stopped by [`stop_recorder`], or with SIGINT when dropped (the bench
/// failed while it ran), so that no recorder outlives the bench.
struct Recorder(Option<Child>);

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let _ = interrupt(&child);
        }
    }
}

/// Stops the recorder with SIGINT; returns the CPU time and peak RSS it used.
fn stop_recorder(mut recorder: Recorder) -> anyhow::Result<Usage> {
    match recorder.0.take() {
        Some(child) => interrupt(&child),
        None => bail!("the recorder was stopped already"),
    }
}

/// Sends `child` (a recorder) SIGINT and waits for it to exit; what it used.
fn interrupt(child: &Child) -> anyhow::Result<Usage> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGINT) };
    wait_recorder(pid)
}

/// Waits for the recorder `pid` to exit (successfully); returns what it used.
fn wait_recorder(pid: libc::pid_t) -> anyhow::Result<Usage> {
    let mut status = 0;
    // SAFETY: libc::rusage is plain integers; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes into the two valid locals; the child is ours and not yet reaped.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("recorder exited with status {status:#x}");
    }
    let ns = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    Ok(Usage {
        cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime),
        // KiB on Linux.
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The flood: rows, records lost and the recorder's peak RSS.
struct Flood {
    calls: u64,
    rows: u64,
    lost: u64,
    max_rss_kib: u64,
}

/// Records `mmap-workload --flood n` (the recorder runs it as its command, so the recording
/// ends with it) and reads what the recorder used and the capture holds.
fn flood(args: &Args, out: &std::path::Path, n: u64) -> anyhow::Result<Flood> {
    let workload = sibling("mmap-workload")?;
    let mut cmd = recorder_command(args);
    let child = cmd
        .args(["record", "-q", "--force", "-o"])
        .arg(out)
        .arg("--")
        .arg(&workload)
        .args(["--flood", &n.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.recorder.display()))?;
    let usage = wait_recorder(child.id() as libc::pid_t)?;
    let (rows, lost) = count_rows_lost(out)?;
    Ok(Flood {
        calls: 4 * n,
        rows,
        lost,
        max_rss_kib: usage.max_rss_kib,
    })
}

/// A system-wide recording of a compiler run (`--compile`).
struct Compile {
    files: u32,
    jobs: usize,
    wall_s: f64,
    summary: serde_json::Value,
    bytes: u64,
}

/// Writes `files` C files and a Makefile into `dir`: each file 60 functions that allocate,
/// format, sort and free structs of their own type, enough for cc1's optimizer to work a while.
fn write_sources(dir: &std::path::Path, files: u32) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for i in 0..files {
        let mut src =
            String::from("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n");
        for j in 0..60 {
            let _ = write!(
                src,
                "\nstruct s{j} {{ int a[{n}]; double d; char name[32]; }};\n\
                 static int cmp{j}(const void *x, const void *y) {{ \
                 return ((const struct s{j} *)x)->a[0] - ((const struct s{j} *)y)->a[0]; }}\n\
                 long f{i}_{j}(int n) {{\n\
                 \x20   struct s{j} *v = calloc(n, sizeof *v); long t = 0;\n\
                 \x20   for (int k = 0; k < n; k++) {{ v[k].a[0] = (k * {m}) % 97; \
                 v[k].d = k / {j}.5; snprintf(v[k].name, sizeof v[k].name, \"n%d\", k); }}\n\
                 \x20   qsort(v, n, sizeof *v, cmp{j});\n\
                 \x20   for (int k = 0; k < n; k++) t += v[k].a[0] * (long)v[k].d + \
                 (long)strlen(v[k].name);\n\
                 \x20   free(v); return t;\n}}\n",
                n = j % 7 + 3,
                m = j + 3,
            );
        }
        std::fs::write(dir.join(format!("u{i}.c")), src)?;
    }
    std::fs::write(
        dir.join("Makefile"),
        "OBJS = $(patsubst %.c,%.o,$(wildcard *.c))\nall: $(OBJS)\n%.o: %.c\n\tcc -O2 -g -c $< -o $@\n",
    )?;
    Ok(())
}

/// Records the whole host while `make -j` compiles `files` C files, on the CPUs `allowed` (those
/// of this process before it pinned itself), one job per CPU.
fn compile(
    args: &Args,
    out: &std::path::Path,
    files: u32,
    allowed: libc::cpu_set_t,
) -> anyhow::Result<Compile> {
    let dir = args
        .dir
        .join(format!("mmap-bench-cc-{}", std::process::id()));
    write_sources(&dir, files)?;
    // SAFETY: CPU_COUNT only reads the set.
    let jobs = usize::try_from(unsafe { libc::CPU_COUNT(&allowed) })
        .unwrap_or(1)
        .max(1);
    let (rec, _) = start_recorder(args, None, out, &[])?;
    let start = Instant::now();
    let mut make = Command::new("make");
    make.args(["-s", &format!("-j{jobs}"), "-C"])
        .arg(&dir)
        .stdout(Stdio::null());
    // SAFETY: sched_setaffinity in the forked child only reads a copy of the set.
    unsafe {
        make.pre_exec(move || {
            set_affinity(&allowed);
            Ok(())
        });
    }
    let built = make.output();
    let wall_s = start.elapsed().as_secs_f64();
    stop_recorder(rec)?;
    let _ = std::fs::remove_dir_all(&dir);
    match built {
        Ok(o) if o.status.success() => {}
        Ok(o) => bail!(
            "--compile: make failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => bail!("--compile needs make and cc: running make: {e}"),
    }
    Ok(Compile {
        files,
        jobs,
        wall_s,
        summary: summary_json(out)?,
        bytes: std::fs::metadata(out)?.len(),
    })
}

/// Restricts the calling thread (and what it forks later) to one CPU.
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain bits (all-zero is the empty set); CPU_SET indexes the local
    // set's words with a bounds check.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    };
    set_affinity(&set);
}

/// The CPUs the calling thread may run on.
fn affinity() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity writes only into the local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
        set
    }
}

/// Restricts the calling thread (and what it forks later) to `set`.
fn set_affinity(set: &libc::cpu_set_t) {
    // SAFETY: sched_setaffinity only reads the set.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) };
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    // The CPUs this process may use before it pins itself: the compile runs on all of them.
    let allowed = affinity();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 {
        args.bench_cpu.get_or_insert(cpus - 1);
        args.recorder_cpu.get_or_insert(0);
    }
    if let Some(cpu) = args.bench_cpu {
        pin_to(cpu);
    }
    let me = std::process::id();
    let out = args.dir.join(format!("mmap-bench-{me}.parquet"));
    let (mut base, mut filtered, mut recorded) = (vec![], vec![], vec![]);
    // The same three modes with the page touched, timed right after the untouched loop under
    // the same recorder.
    let (mut base_t, mut filtered_t, mut recorded_t) = (vec![], vec![], vec![]);
    // And the getppid loop after them (ns per call).
    let (mut base_o, mut filtered_o, mut recorded_o) = (vec![], vec![], vec![]);
    // With --also: filtered and recorded with each mode, untouched and page touched.
    if args.exit_only && !args.also.iter().any(|m| m == "tracepoint-exit") {
        args.also.push("tracepoint-exit".to_owned());
    }
    let mut also: Vec<AlsoRuns> = args.also.iter().map(|_| AlsoRuns::default()).collect();
    // Recorder CPU time: of a run that records nothing (start-up, attach, detach, idle drain),
    // and (CPU, rows) of each recording run.
    let (mut idle_cpu, mut recorded_cpu) = (Vec::new(), Vec::<(f64, u64)>::new());
    let mut recorded_bytes = Vec::new();
    // Peak RSS of the recorder in each recorded round, KiB.
    let mut recorded_rss = Vec::new();
    let mut with_stacks: Vec<Vec<StackRun>> = args.stacks.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        // Rotate the order of the modes so no mode always runs first.
        let modes = 3 + 2 * also.len();
        for mode in (0..modes).map(|i| (i + round) % modes) {
            match mode {
                0 => {
                    let (ns, touched, ()) = child_loops(&args, true, |_| Ok(()))?;
                    base.push(ns);
                    base_t.extend(touched.map(|e| e.touched));
                    base_o.extend(touched.map(|e| e.other));
                }
                1 => {
                    let (ns, touched, usage) = under_recorder(&args, &out, false, &[])?;
                    filtered.push(ns);
                    filtered_t.extend(touched.map(|e| e.touched));
                    filtered_o.extend(touched.map(|e| e.other));
                    idle_cpu.push(usage.cpu_ns);
                }
                3.. => {
                    let k = (mode - 3) / 2;
                    let record = (mode - 3) % 2 == 1;
                    let extra = also_args(&args.also[k]);
                    let (ns, touched, _) = under_recorder(&args, &out, record, &extra)?;
                    let runs = &mut also[k];
                    if record {
                        runs.recorded.push(ns);
                        runs.recorded_t.extend(touched.map(|e| e.touched));
                        runs.recorded_o.extend(touched.map(|e| e.other));
                        kept_every_call(&args, &out, round)?;
                    } else {
                        runs.filtered.push(ns);
                        runs.filtered_t.extend(touched.map(|e| e.touched));
                        runs.filtered_o.extend(touched.map(|e| e.other));
                    }
                }
                2 => {
                    let (ns, touched, usage) = under_recorder(&args, &out, true, &[])?;
                    recorded.push(ns);
                    recorded_t.extend(touched.map(|e| e.touched));
                    recorded_o.extend(touched.map(|e| e.other));
                    recorded_rss.push(usage.max_rss_kib as f64);
                    let rows = kept_every_call(&args, &out, round)?;
                    recorded_cpu.push((usage.cpu_ns, rows));
                    recorded_bytes.push(std::fs::metadata(&out)?.len() as f64 / rows as f64);
                }
            }
        }
        for (mode, runs) in args.stacks.iter().zip(&mut with_stacks) {
            let (ns, _, (rec, _)) = child_loops(&args, false, |pid| {
                start_recorder(&args, Some(pid), &out, &["--stacks", mode])
            })?;
            stop_recorder(rec)?;
            // Not a failure here: at this rate a mode may lose records (counted in the capture);
            // the table says how many calls it kept.
            let (frames, stacks, calls) = count_frames(&out)?;
            let rows = count_rows(&out)?;
            runs.push(StackRun {
                ns,
                calls,
                bytes: std::fs::metadata(&out)?.len(),
                rows,
                frames,
                stacks,
            });
            eprintln!("round {}: --stacks {mode}: {ns:.0} ns per pair", round + 1);
        }
        for (mode, runs) in args.also.iter().zip(&also) {
            eprintln!(
                "round {}: {}: filtered {:.0} ns, recorded {:.0} ns per pair; page touched: \
                 {:.0}, {:.0} ns",
                round + 1,
                also_args(mode).join(" "),
                runs.filtered[round],
                runs.recorded[round],
                runs.filtered_t[round],
                runs.recorded_t[round],
            );
        }
        eprintln!(
            "round {}: baseline {:.0} ns, filtered {:.0} ns, recorded {:.0} ns per pair; page \
             touched: {:.0}, {:.0}, {:.0} ns",
            round + 1,
            base[round],
            filtered[round],
            recorded[round],
            base_t[round],
            filtered_t[round],
            recorded_t[round],
        );
    }
    // One more recorded run with the kernel's own accounting of each program's run time
    // (outside the timed rounds: the accounting itself costs two clock reads per run).
    let (_, _, (rec, stderr)) = child_loops(&args, false, |pid| {
        start_recorder(&args, Some(pid), &out, &["--prog-stats"])
    })?;
    stop_recorder(rec)?;
    let prog_lines: Vec<String> = stderr
        .join()
        .map_err(|_| anyhow::anyhow!("stderr reader panicked"))?
        .into_iter()
        .filter(|l| l.contains(" ns per run"))
        .collect();
    let flooded = match args.flood {
        0 => None,
        n => Some(flood(&args, &out, n)?),
    };
    let compiled = match args.compile {
        0 => None,
        n => Some(compile(&args, &out, n, allowed)?),
    };
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(format!("{}.journal", out.display()));
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max_rss = recorded_rss.iter().copied().fold(0.0, f64::max);
    let rss = median(&mut recorded_rss);
    let (bm, fm, rm) = (min(&base), min(&filtered), min(&recorded));
    let (b, f, r) = (
        median(&mut base),
        median(&mut filtered),
        median(&mut recorded),
    );
    let (btm, ftm, rtm) = (min(&base_t), min(&filtered_t), min(&recorded_t));
    let (bt, ft, rt) = (
        median(&mut base_t),
        median(&mut filtered_t),
        median(&mut recorded_t),
    );
    let idle = median(&mut idle_cpu);
    let mut per_record: Vec<f64> = recorded_cpu
        .iter()
        .map(|&(cpu, rows)| (cpu - idle).max(0.0) / rows.max(1) as f64)
        .collect();
    let c = median(&mut per_record);
    let mib = |kib: f64| kib / 1024.0;
    println!(
        "| mode | median ns per mmap+munmap pair | added | ratio | min ns | added (min) | \
         recorder peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!("| baseline | {b:.0} | | 1.00 | {bm:.0} | | |");
    println!(
        "| filtered (other target) | {f:.0} | {:+.0} | {:.2} | {fm:.0} | {:+.0} | |",
        f - b,
        f / b,
        fm - bm
    );
    println!(
        "| recorded | {r:.0} | {:+.0} | {:.2} | {rm:.0} | {:+.0} | {:.1} MiB (median; max {:.1}) |",
        r - b,
        r / b,
        rm - bm,
        mib(rss),
        mib(max_rss)
    );
    println!("| baseline, page touched | {bt:.0} | | 1.00 | {btm:.0} | | |");
    for (mode, m, mm) in [("filtered", ft, ftm), ("recorded", rt, rtm)] {
        println!(
            "| {mode}, page touched | {m:.0} | {:+.0} | {:.2} | {mm:.0} | {:+.0} | |",
            m - bt,
            m / bt,
            mm - btm
        );
    }
    // The --also rows, against the same baselines: (label, runs, baseline, baseline min).
    let mut also_json = serde_json::Map::new();
    for (mode, runs) in args.also.iter().zip(&mut also) {
        let mut json = serde_json::Map::new();
        for (label, key, runs, base_ns, base_min) in [
            ("filtered", "filtered_ns", &mut runs.filtered, b, bm),
            ("recorded", "recorded_ns", &mut runs.recorded, b, bm),
            (
                "filtered, page touched",
                "filtered_touched_ns",
                &mut runs.filtered_t,
                bt,
                btm,
            ),
            (
                "recorded, page touched",
                "recorded_touched_ns",
                &mut runs.recorded_t,
                bt,
                btm,
            ),
        ] {
            let least = min(runs);
            let m = median(runs);
            println!(
                "| {label}, `{}` | {m:.0} | {:+.0} | {:.2} | {least:.0} | {:+.0} | |",
                also_args(mode).join(" "),
                m - base_ns,
                m / base_ns,
                least - base_min
            );
            json.insert(key.to_owned(), m.into());
        }
        also_json.insert(mode.clone(), json.into());
    }
    if let Some(fl) = &flooded {
        println!(
            "| recorded flood: 2 threads, {} calls (`mmap-workload --flood {}`) | | | | | | \
             {:.1} MiB ({} rows, {} lost) |",
            fl.calls,
            args.flood,
            mib(fl.max_rss_kib as f64),
            fl.rows,
            fl.lost
        );
    }
    for (mode, runs) in args.stacks.iter().zip(&mut with_stacks) {
        let mut ns: Vec<f64> = runs.iter().map(|r| r.ns).collect();
        let s = median(&mut ns);
        let kept = runs.iter().map(|r| r.calls).min().unwrap_or(0);
        println!(
            "| recorded, --stacks {mode} (least kept: {kept} of {} calls) | {s:.0} | {:+.0} | \
             {:.2} | {:.0} | {:+.0} |",
            2 * args.calls,
            s - b,
            s / b,
            min(&ns),
            min(&ns) - bm
        );
    }
    // The getppid loop: what each mode costs the system calls it does not record.
    println!();
    println!("| mode | getppid, median ns per call | added |");
    println!("|---|---|---|");
    let bo = median(&mut base_o);
    println!("| baseline | {bo:.1} | |");
    let mut other_json = serde_json::json!({ "baseline_ns": bo });
    let default_mode = args.attach.as_deref().unwrap_or("default");
    let mut other_rows: Vec<(String, &mut Vec<f64>)> = vec![
        (format!("filtered, `{default_mode}`"), &mut filtered_o),
        (format!("recorded, `{default_mode}`"), &mut recorded_o),
    ];
    for (mode, runs) in args.also.iter().zip(&mut also) {
        let shown = also_args(mode).join(" ");
        other_rows.push((format!("filtered, `{shown}`"), &mut runs.filtered_o));
        other_rows.push((format!("recorded, `{shown}`"), &mut runs.recorded_o));
    }
    for (label, runs) in other_rows {
        let m = median(runs);
        println!("| {label} | {m:.1} | {:+.1} |", m - bo);
        other_json[label.replace('`', "")] = m.into();
    }
    println!();
    println!(
        "Bytes on disk per row: {:.2} without stacks (median).",
        median(&mut recorded_bytes)
    );
    for (mode, runs) in args.stacks.iter().zip(&with_stacks) {
        if let Some(last) = runs.last() {
            let calls = last.rows.saturating_sub(last.frames).max(1);
            println!(
                "- --stacks {mode}: {:.2} bytes per call row, frame rows included ({} bytes, {} \
                 calls, {} distinct stacks, {:.1} frames per stack)",
                last.bytes as f64 / calls as f64,
                last.bytes,
                calls,
                last.stacks,
                last.frames as f64 / last.stacks.max(1) as f64
            );
        }
    }
    if let Some(cc) = &compiled {
        let s = &cc.summary;
        let rows = s["events"].as_u64().unwrap_or(0);
        let kind = |k: &str| s["by_kind"][k].as_u64().unwrap_or(0);
        let lifecycle = kind("fork") + kind("exec") + kind("exit");
        println!(
            "- the whole host recorded while `make -j{}` compiled {} generated C files \
             (`cc -O2 -g`, {:.1} s): {rows} rows ({} calls, {lifecycle} fork/exec/exit, {} \
             snapshot rows: the address spaces of the processes running at the start and after \
             each exec) from {} processes, {} lost, {} bytes: {:.2} bytes per row",
            cc.jobs,
            cc.files,
            cc.wall_s,
            kind("syscall"),
            kind("snapshot"),
            s["processes"].as_u64().unwrap_or(0),
            s["lost"].as_u64().unwrap_or(0),
            cc.bytes,
            cc.bytes as f64 / rows.max(1) as f64
        );
    }
    println!();
    println!(
        "{} rounds of {} pairs. Recorder process CPU (user + system) per record written, beyond \
         what a run that records nothing costs ({:.2} s: start-up, attach, detach): {c:.0} ns \
         (median).",
        args.rounds,
        args.calls,
        idle / 1e9
    );
    println!();
    println!("Kernel time per program run (BPF run-time statistics, one recorded run):");
    println!();
    for line in &prog_lines {
        println!("- {}", line.trim_start_matches("mmap-recorder: "));
    }
    if args.compare {
        compare(&args)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "calls": args.calls, "rounds": args.rounds,
                "baseline_ns": b, "filtered_ns": f, "recorded_ns": r,
                "baseline_min_ns": bm, "filtered_min_ns": fm, "recorded_min_ns": rm,
                "touched": {
                    "baseline_ns": bt, "filtered_ns": ft, "recorded_ns": rt,
                    "baseline_min_ns": btm, "filtered_min_ns": ftm, "recorded_min_ns": rtm,
                },
                "also": also_json,
                "getppid": other_json,
                "recorder_cpu_ns_per_record": c,
                "recorder_max_rss_kib": rss, "recorder_max_rss_kib_max": max_rss,
                "flood": flooded.as_ref().map(|fl| serde_json::json!({
                    "calls": fl.calls, "rows": fl.rows, "lost": fl.lost,
                    "recorder_max_rss_kib": fl.max_rss_kib,
                })),
                "compile": compiled.as_ref().map(|cc| serde_json::json!({
                    "files": cc.files, "jobs": cc.jobs, "wall_s": cc.wall_s,
                    "rows": cc.summary["events"], "by_kind": cc.summary["by_kind"],
                    "lost": cc.summary["lost"], "bytes": cc.bytes,
                })),
            })
        );
    }
    Ok(())
}

/// Rows in the capture, as `mmap-analyze summary` (built next to this binary) counts them.
fn count_rows(path: &std::path::Path) -> anyhow::Result<u64> {
    count_rows_lost(path).map(|(rows, _)| rows)
}

/// (rows, records lost) of a capture, as `mmap-analyze summary` counts them.
fn count_rows_lost(path: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let v = summary_json(path)?;
    let rows = v["events"].as_u64().context("events in summary json")?;
    Ok((rows, v["lost"].as_u64().unwrap_or(0)))
}

/// `mmap-analyze summary --format json` (built next to this binary) of a capture.
fn summary_json(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let analyze = sibling("mmap-analyze")?;
    let out = Command::new(&analyze)
        .args(["summary", "--format", "json"])
        .arg(path)
        .output()
        .with_context(|| format!("running {}", analyze.display()))?;
    if !out.status.success() {
        bail!("mmap-analyze: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// (frame rows, distinct stacks, syscall rows) of a capture, by `mmap-analyze sql`.
fn count_frames(path: &std::path::Path) -> anyhow::Result<(u64, u64, u64)> {
    let analyze = sibling("mmap-analyze")?;
    let out = Command::new(&analyze)
        .arg("sql")
        .arg(path)
        .arg(
            "SELECT count(*) FILTER (WHERE kind = 'frame') AS frames, \
             count(DISTINCT stack_id) AS stacks, \
             count(*) FILTER (WHERE kind = 'syscall') AS calls FROM events",
        )
        .args(["--format", "json"])
        .output()
        .with_context(|| format!("running {}", analyze.display()))?;
    if !out.status.success() {
        bail!("mmap-analyze sql: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let get = |k: &str| v[k].as_u64().with_context(|| format!("{k} in sql json"));
    Ok((get("frames")?, get("stacks")?, get("calls")?))
}

/// ns per pair that `mmap-workload --pairs N` reports for itself when run under `wrapper`.
/// With `joined`, the workload's command line goes to the wrapper as one argument (`bpftrace -c
/// CMD`, which splits it at spaces: the workload's path must have none), not as the arguments
/// after it.
fn workload_under(wrapper: &[String], joined: bool, calls: u64) -> anyhow::Result<f64> {
    let mut argv: Vec<String> = wrapper.to_vec();
    let workload = [
        sibling("mmap-workload")?.display().to_string(),
        "--pairs".into(),
        calls.to_string(),
    ];
    if joined {
        argv.push(workload.join(" "));
    } else {
        argv.extend(workload);
    }
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv[0]))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{} failed: {stderr}", argv.join(" "));
    }
    stderr
        .lines()
        .find_map(|l| ns_per_pair(l).map(|(_, ns)| ns))
        .with_context(|| format!("no timing from the workload: {stderr}"))
}

/// The same loop under each tracer, recording mmap and munmap (and the rest of the family where
/// the tool takes a list).
fn compare(args: &Args) -> anyhow::Result<()> {
    let dir = &args.dir;
    let capture = dir.join(format!("mmap-bench-compare-{}.parquet", std::process::id()));
    let perf_out = dir.join(format!("mmap-bench-{}.perf", std::process::id()));
    let recorder = |options: &[&str]| -> Vec<String> {
        let mut argv = vec![args.recorder.display().to_string(), "record".into()];
        argv.extend(options.iter().map(|o| o.to_string()));
        argv.extend(["-q", "--force", "-o"].map(String::from));
        argv.push(capture.display().to_string());
        argv.push("--".into());
        argv
    };
    let family = "mmap,munmap,mprotect,mremap,brk";
    let calls = family.split(',');
    // perf record: every entry and exit tracepoint of the family, each event a sample.
    let tracepoints: Vec<String> = calls
        .clone()
        .flat_map(|c| {
            [
                format!("syscalls:sys_enter_{c}"),
                format!("syscalls:sys_exit_{c}"),
            ]
        })
        .collect();
    // bpftrace: entry and exit paired per thread of the command, one line per call (pid, tid,
    // call, result, duration), as a script user would write it.
    let probes = |side: &str| {
        calls
            .clone()
            .map(|c| format!("tracepoint:syscalls:sys_{side}_{c}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let script = format!(
        "{} /pid == cpid/ {{ @start[tid] = nsecs; }} {} /@start[tid]/ {{ printf(\"%d %d %s %ld \
         %ld\\n\", pid, tid, probe, args->ret, nsecs - @start[tid]); delete(@start[tid]); }}",
        probes("enter"),
        probes("exit")
    );
    // (name, wrapper, whether the command goes to it as one argument)
    let tools: Vec<(&str, Vec<String>, bool)> = vec![
        ("none", vec![], false),
        (
            "bpftrace, empty programs on the same syscall tracepoints (the kernel's floor)",
            vec![
                "bpftrace".into(),
                "-q".into(),
                "-e".into(),
                format!("{},{} {{ }}", probes("enter"), probes("exit")),
                "-c".into(),
            ],
            true,
        ),
        ("mmap-recorder (this tool)", recorder(&[]), false),
        (
            "mmap-recorder --attach tp-btf-exit",
            recorder(&["--attach", "tp-btf-exit"]),
            false,
        ),
        (
            "strace -f",
            vec![
                "strace".into(),
                "-f".into(),
                "-qq".into(),
                "-e".into(),
                format!("trace={family}"),
                "-o".into(),
                "/dev/null".into(),
            ],
            false,
        ),
        (
            "perf trace",
            vec![
                "perf".into(),
                "trace".into(),
                "-e".into(),
                family.into(),
                "-o".into(),
                perf_out.display().to_string(),
                "--".into(),
            ],
            false,
        ),
        (
            "perf record (the family's syscall tracepoints)",
            vec![
                "perf".into(),
                "record".into(),
                "-q".into(),
                "-e".into(),
                tracepoints.join(","),
                "-o".into(),
                perf_out.display().to_string(),
                "--".into(),
            ],
            false,
        ),
        (
            "bpftrace (entry and exit paired, a line per call)",
            vec![
                "bpftrace".into(),
                "-q".into(),
                "-o".into(),
                "/dev/null".into(),
                "-e".into(),
                script,
                "-c".into(),
            ],
            true,
        ),
    ];
    println!();
    println!(
        "Under other tracers (the loop's own ns per mmap+munmap pair, best of {}):",
        args.rounds
    );
    println!();
    println!("| tracer | ns per pair | added |");
    println!("|---|---|---|");
    let mut base = None;
    for (name, wrapper, joined) in tools {
        if let Some(tool) = wrapper.first()
            && Command::new(tool).arg("--version").output().is_err()
        {
            println!("| {name} | not installed | |");
            continue;
        }
        let mut best = f64::INFINITY;
        for _ in 0..args.rounds {
            match workload_under(&wrapper, joined, args.calls) {
                Ok(ns) => best = best.min(ns),
                Err(e) => {
                    eprintln!("{name}: {e:#}");
                    break;
                }
            }
        }
        if !best.is_finite() {
            println!("| {name} | failed | |");
            continue;
        }
        let b = *base.get_or_insert(best);
        println!("| {name} | {best:.0} | {:+.0} |", best - b);
    }
    let _ = std::fs::remove_file(&capture);
    let _ = std::fs::remove_file(format!("{}.journal", capture.display()));
    let _ = std::fs::remove_file(&perf_out);
    Ok(())
}
