//! Writer throughput: push + flush + finish of synthetic rows into a file, in rows/s.
//!
//! ```text
//! cargo run --release -p mmap-format --example bench_writer -- [ROWS] [--v1.1] [--journal]
//!     [--from CAPTURE] [--flush-every N] [--keep FILE] [--runs N]
//! ```
//!
//! Rows look like a busy system's mmap calls (8 comms, a third of them file-backed); the writer
//! flushes every 100 000 rows (`--flush-every`), as the recorder does about once a second under
//! such a load. `--v1.1` also fills the 1.1 columns a tracepoint row has (source, cgroup path,
//! pid namespace); `--from CAPTURE` writes the first ROWS rows of a capture instead (read into
//! memory before the clock starts), so the columns have a real recording's values; `--journal`
//! writes with the crash-safety journal (an fdatasync of each file per row group); `--keep FILE`
//! moves the last run's file to FILE instead of removing it. Prints each of `--runs` runs
//! (default 5) and the best. Under `valgrind --tool=cachegrind`, the instructions of 5 runs less
//! those of 1 are 4 runs' writing, without the set-up (the rows read with `--from`).

use std::{borrow::Cow, error::Error, time::Instant};

use mmap_format::{
    event::{Event, RowKind, Syscall, sources},
    journal::{create, journal_path},
    metadata::CaptureMetadata,
    reader::CaptureReader,
    writer::{CaptureWriter, WriterConfig},
};

const COMMS: [&str; 8] = [
    "nginx", "postgres", "java", "python3", "node", "bash", "sshd", "rustc",
];
const FILES: [&str; 6] = [
    "libc.so.6",
    "ld-linux-x86-64.so.2",
    "libm.so.6",
    "data.bin",
    "libssl.so.3",
    "locale-archive",
];
const CGROUPS: [&str; 5] = [
    "/system.slice/nginx.service",
    "/system.slice/postgresql.service",
    "/user.slice/user-1000.slice/session-1.scope",
    "/system.slice/sshd.service",
    "/kubepods/burstable/pod1234/abcd",
];

fn event(i: u64, v1_1: bool) -> Event<'static> {
    let file = i.is_multiple_of(3).then(|| FILES[(i % 6) as usize]);
    let ts = 1_767_225_600_000_000_000 + i as i64 * 10_000;
    let mut event = Event {
        kind: RowKind::Syscall,
        syscall: Some(Syscall::Mmap),
        ts_ns: ts,
        ts_exit_ns: Some(ts + 1500 + (i % 97) as i64),
        cpu: (i % 2) as u32,
        pid: 1000 + (i % 50) as u32,
        tid: 1000 + (i % 200) as u32,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: Cow::Borrowed(COMMS[(i % 8) as usize]),
        cgroup_id: 0x1234 + i % 5,
        addr: Some(0),
        len: Some(4096 * (1 + i % 64)),
        prot: Some(3),
        flags: Some(if file.is_some() { 0x802 } else { 0x22 }),
        fd: Some(if file.is_some() { 3 } else { -1 }),
        off: Some(0),
        ret: Some(0x7f00_0000_0000 + (i as i64 * 7919 % 1_000_000) * 4096),
        file_dev: file.map(|_| 0x10302),
        file_ino: file.map(|_| 100 + i % 6),
        file_name: file.map(Cow::Borrowed),
        ..Default::default()
    };
    if v1_1 {
        event.source = Some(Cow::Borrowed(sources::TRACEPOINT));
        event.cgroup_path = Some(Cow::Borrowed(CGROUPS[(i % 5) as usize]));
        event.pidns_ino = Some(4_026_531_836);
        event.ns_pid = Some(event.pid);
        event.ns_tid = Some(event.tid);
    }
    event
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    // ROWS: the first number that is not a flag's value.
    let takes_value = ["--from", "--flush-every", "--keep", "--runs"];
    let mut rows: u64 = (0..args.len())
        .filter(|&i| i == 0 || !takes_value.contains(&args[i - 1].as_str()))
        .find_map(|i| args[i].parse().ok())
        .unwrap_or(2_000_000);
    let v1_1 = args.iter().any(|a| a == "--v1.1");
    let journaled = args.iter().any(|a| a == "--journal");
    let flush_every: u64 = value("--flush-every").map_or(Ok(100_000), |n| n.parse())?;
    let runs: u32 = value("--runs").map_or(Ok(5), |n| n.parse())?;
    let from: Option<Vec<Event<'static>>> = match value("--from") {
        Some(capture) => {
            let reader = CaptureReader::open(capture.as_ref())?;
            let events = reader
                .events()?
                .take(usize::try_from(rows)?)
                .collect::<Result<Vec<_>, _>>()?;
            rows = events.len() as u64;
            Some(events)
        }
        None => None,
    };
    let path = std::env::temp_dir().join("mmap-format-bench.parquet");
    let mut best = f64::MAX;
    for run in 0..runs {
        let start = Instant::now();
        let mut writer = if journaled {
            let (file, journal) = create(&path)?;
            CaptureWriter::with_journal(
                file,
                journal,
                WriterConfig::default(),
                &CaptureMetadata::default(),
            )?
        } else {
            CaptureWriter::new(std::fs::File::create(&path)?, WriterConfig::default())?
        };
        for i in 0..rows {
            match &from {
                Some(events) => writer.push(&events[i as usize])?,
                None => writer.push(&event(i, v1_1))?,
            }
            if i % flush_every == flush_every - 1 {
                writer.flush()?;
            }
        }
        let file = writer.finish(&CaptureMetadata::default())?;
        let secs = start.elapsed().as_secs_f64();
        let bytes = file.metadata()?.len();
        best = best.min(secs);
        println!(
            "run {run}: {rows} rows in {secs:.3} s = {:.0} rows/s, {bytes} bytes",
            rows as f64 / secs
        );
    }
    println!("best: {:.0} rows/s", rows as f64 / best);
    if let Some(keep) = value("--keep") {
        // The last run's file, to look at its column chunks (sizes, encodings).
        std::fs::rename(&path, keep)?;
    } else {
        std::fs::remove_file(&path)?;
    }
    if journaled {
        std::fs::remove_file(journal_path(&path))?;
    }
    Ok(())
}
