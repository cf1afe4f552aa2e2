//! From the capture to the [`Plan`]: the recorded calls of one process in the order they were
//! made, the files that stand for the mapped ones, and what the capture cannot tell.

use std::{
    collections::{HashMap, hash_map::Entry},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use mmap_format::{
    event::{Event, RowKind, Syscall},
    reader::CaptureReader,
    schema::col,
};
use serde::Serialize;

use super::{
    FilesFrom,
    protocol::{Call, Op, Plan, PlanFile, Standin},
};
use crate::{
    engine::{
        Engine,
        filter::{literal, timestamp},
    },
    input, labels,
    loss::{LossWindow, LossWindows},
    replay::{self, MAP_ANONYMOUS, MAP_SHARED, MAP_SHARED_VALIDATE, PROT_WRITE, Replay},
};

/// Regions at or above this are not the process's own (the vsyscall page).
const USER_TOP: u64 = 1 << 56;

/// The most threads `--threads` starts.
const MAX_THREADS: usize = 1024;

/// A recorded call, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    pub seq: usize,
    #[serde(skip)]
    pub ts: i64,
    pub time: String,
    pub tid: u32,
    pub syscall: &'static str,
    pub addr: Option<u64>,
    pub len: Option<u64>,
    pub prot: Option<u64>,
    pub flags: Option<u64>,
    pub off: Option<u64>,
    pub new_addr: Option<u64>,
    pub new_len: Option<u64>,
    pub ret: Option<i64>,
    /// ns from entry to exit.
    #[serde(skip)]
    pub dur_ns: Option<u64>,
}

/// A recorded file and what stands for it in the rerun.
#[derive(Clone, Debug, Serialize)]
pub struct FileUse {
    pub dev: Option<u64>,
    pub ino: Option<u64>,
    /// The recorded path (escaped when shown).
    pub recorded: Option<String>,
    /// Bytes the recorded mappings need (the highest offset + length, in whole pages).
    pub size: u64,
    pub used: PathBuf,
    /// `temporary` (a sparse file made for the rerun) or `real` (the recorded path).
    pub kind: &'static str,
    /// Why the recorded path was not used, with `--files real`.
    pub why: Option<String>,
}

/// Everything read from the capture.
pub struct Prepared {
    pub plan: Plan,
    pub recorded: Vec<Recorded>,
    pub files: Vec<FileUse>,
    /// The syscall rows, in the order they take effect: what `maps` replays.
    pub rows: Vec<Event<'static>>,
    pub comm: Option<String>,
    pub notes: Vec<String>,
    pub loss_windows: LossWindows,
    /// Recorded file -> index into `files`.
    keys: HashMap<FileKey, u32>,
    /// Holds the temporary files until the rerun is over.
    pub _dir: Option<tempfile::TempDir>,
}

/// The options that shape the plan.
pub struct Options {
    pub pid: u32,
    pub until: Option<i64>,
    pub threads: bool,
    pub same_addresses: bool,
    pub speed: Option<f64>,
    pub files: FilesFrom,
    pub allow_shared_write: bool,
    pub page_size: u64,
    /// `--populate-limit`.
    pub populate_limit: Option<u64>,
}

pub fn prepare(
    engine: &Engine,
    readers: &[CaptureReader],
    options: &Options,
) -> anyhow::Result<Prepared> {
    let pid = options.pid;
    let mut predicate = format!(
        "({kind} = {lost} OR {pid_col} = {pid})",
        kind = col::KIND,
        lost = literal(RowKind::Lost.as_str()),
        pid_col = col::PID,
    );
    if let Some(until) = options.until {
        predicate.push_str(&format!(" AND {} <= {}", col::TS, timestamp(until)));
    }
    let mut calls: Vec<(i64, usize, Event<'static>)> = Vec::new();
    let mut loss = LossWindows::default();
    let mut snapshots: Vec<Event<'static>> = Vec::new();
    let mut execs: Vec<i64> = Vec::new();
    let mut seen_pid = false;
    for reader in readers {
        let rows = input::file_rows(engine, reader, Some(&predicate), replay::UNUSED_COLUMNS)?;
        for event in rows {
            let event = event?;
            if event.kind == RowKind::Lost {
                loss.push(LossWindow::from_event(&event));
                continue;
            }
            seen_pid = true;
            match event.kind {
                RowKind::Syscall if event.syscall.is_some_and(|s| s != Syscall::Other) => {
                    calls.push((event.ts_ns, calls.len(), event));
                }
                RowKind::Snapshot => snapshots.push(event),
                RowKind::Exec => execs.push(event.ts_ns),
                _ => {}
            }
        }
    }
    if !seen_pid {
        anyhow::bail!(
            "pid {pid} does not appear in {}",
            match readers {
                [one] => one.path().display().to_string(),
                many => format!("the {} captures", many.len()),
            }
        );
    }
    if calls.is_empty() {
        anyhow::bail!(
            "pid {pid} made no mmap, munmap, mprotect, mremap or brk call in the capture{}",
            if options.until.is_some() {
                " before --until"
            } else {
                ""
            }
        );
    }
    calls.sort_by_key(|(ts, seq, _)| (*ts, *seq));
    let events: Vec<Event<'static>> = calls.into_iter().map(|(_, _, e)| e).collect();
    let first_ts = events[0].ts_ns;
    let last_ts = events
        .iter()
        .map(|e| e.ts_exit_ns.unwrap_or(e.ts_ns))
        .max()
        .unwrap_or(first_ts);

    let mut notes = Vec::new();
    let loss = loss.finish();
    let lost_in_range = loss
        .loss_windows
        .iter()
        .filter(|w| w.from_ns <= last_ts)
        .count();
    if lost_in_range > 0 || loss.loss_window_count > loss.loss_windows.len() as u64 {
        notes.push(format!(
            "the capture lost {} in {}: calls of pid {pid} in them are not replayed, and later \
             calls on memory they made are skipped",
            loss.records_in_words(),
            loss.windows_in_words()
        ));
    }
    let untimed: u64 = readers
        .iter()
        .map(|r| {
            let c = r.metadata().counters;
            c.entry_map_full.saturating_add(c.decode_errors)
        })
        .sum();
    if untimed > 0 {
        notes.push(format!(
            "the recorder dropped {} record{} it cannot place (no room for a call in flight, or \
             undecodable): calls may be missing",
            labels::thousands(untimed),
            labels::plural(untimed)
        ));
    }
    // The process's map before its first call: its last snapshot at or before that call; or,
    // when the snapshot taken after an exec came a little after the loader's first calls, that
    // snapshot less what those calls made.
    let before = snapshots
        .iter()
        .map(|e| e.ts_ns)
        .filter(|ts| *ts <= first_ts)
        .max();
    let after = snapshots
        .iter()
        .map(|e| e.ts_ns)
        .filter(|ts| *ts > first_ts)
        .min()
        .filter(|ts| !execs.iter().any(|exec| (first_ts..*ts).contains(exec)));
    let baseline_ts = before.or(after);
    snapshots.retain(|e| Some(e.ts_ns) == baseline_ts && e.addr.is_some_and(|a| a < USER_TOP));
    snapshots.sort_by_key(|e| e.addr);
    let mut made_before: Vec<(u64, u64)> = match after.filter(|_| before.is_none()) {
        Some(ts) => made_by_calls_until(&events, ts, options.page_size),
        None => Vec::new(),
    };
    if let Some(ts) = baseline_ts {
        made_before.extend(made_while_read(&events, ts, options.page_size));
        made_before.sort_unstable();
    }
    match (before, baseline_ts) {
        (Some(ts), _) => notes.push(format!(
            "the {} regions pid {pid} had before its first call (its snapshot at {}) are made \
             again as stand-ins of the same size, protection and file offset (anonymous memory, \
             or the stand-in files); their contents are not",
            snapshots.len(),
            labels::rfc3339_ns(ts)
        )),
        (None, Some(ts)) => notes.push(format!(
            "pid {pid}'s snapshot was taken at {}, after its first calls: the regions it shows \
             that those calls did not make are made again as stand-ins of the same size, \
             protection and file offset (their contents are not)",
            labels::rfc3339_ns(ts)
        )),
        (None, None) => notes.push(format!(
            "no snapshot of pid {pid} before its first call: the mappings it had before the \
             capture (and those the kernel made at exec) are not known and not re-created; calls \
             on them are skipped"
        )),
    }
    for ts in execs.iter().filter(|ts| **ts > first_ts) {
        notes.push(format!(
            "pid {pid} exec'd a new program at {}: the recording's old mappings went away there, \
             the rerun's stay",
            labels::rfc3339_ns(*ts)
        ));
    }
    let ignored = events.iter().filter(|e| e.ret.is_none()).count();
    if ignored > 0 {
        notes.push(format!(
            "{ignored} call{} ha{} no recorded exit: re-issued, their outcome is not compared",
            labels::plural(ignored as u64),
            if ignored == 1 { "s" } else { "ve" }
        ));
    }

    if options.threads {
        let mut tids: Vec<u32> = events.iter().map(|e| e.tid).collect();
        tids.sort_unstable();
        tids.dedup();
        if tids.len() > MAX_THREADS {
            anyhow::bail!(
                "--threads: pid {pid} has {} recorded threads, more than the {MAX_THREADS} the \
                 rerun starts; without --threads every call is re-issued on one thread, in the \
                 recorded order",
                tids.len()
            );
        }
    }
    let shown: Vec<&Event<'static>> = snapshots.iter().collect();
    let files = Files::collect(&events, &shown, options)?;
    let mut regions: Vec<Standin> = Vec::new();
    for e in &snapshots {
        let Some(region) = replay::snapshot_region(e) else {
            continue;
        };
        let file = match region.backing {
            replay::Backing::File(_) => match files.index_of(e) {
                Some(index) => Some(index),
                None => continue,
            },
            replay::Backing::Anon { .. } => None,
        };
        for (start, end) in subtract((region.start, region.end), &made_before) {
            regions.push(Standin {
                start,
                end,
                prot: region.prot,
                shared: region.shared,
                file,
                off: file.map_or(0, |_| region.off + (start - region.start)),
            });
        }
    }
    let mut threads: HashMap<u32, u32> = HashMap::new();
    let mut ops = Vec::with_capacity(events.len());
    let mut recorded = Vec::with_capacity(events.len());
    let mut heap_base = None;
    for (seq, e) in events.iter().enumerate() {
        let next = threads.len() as u32;
        let thread = if options.threads {
            *threads.entry(e.tid).or_insert(next)
        } else {
            0
        };
        let Some(call) = call_of(e, &files) else {
            continue;
        };
        if let Call::Brk { addr } = call {
            // The break before the first brk call: its result when it only asks (brk(0)).
            if heap_base.is_none() {
                heap_base = e.ret.map(|ret| ret as u64);
                let _ = addr;
            }
        }
        ops.push(Op {
            thread,
            at_ns: u64::try_from(e.ts_ns - first_ts).unwrap_or(0),
            call,
            ret: e.ret,
        });
        recorded.push(Recorded {
            seq,
            ts: e.ts_ns,
            time: labels::rfc3339_ns(e.ts_ns),
            tid: e.tid,
            syscall: e.syscall.map_or("?", Syscall::as_str),
            addr: e.addr,
            len: e.len,
            prot: e.prot,
            flags: e.flags,
            off: e.off,
            new_addr: e.new_addr,
            new_len: e.new_len,
            ret: e.ret,
            dur_ns: e
                .ts_exit_ns
                .and_then(|exit| u64::try_from(exit - e.ts_ns).ok()),
        });
    }
    let first_brk = events.iter().find(|e| e.syscall == Some(Syscall::Brk));
    if first_brk.is_some_and(|e| e.addr.unwrap_or(0) != 0) {
        notes.push(
            "the first brk call asks for a new break: the break before it is not known, so the \
             replayed heap starts at that call's result"
                .to_owned(),
        );
    }
    let comm = events.last().map(|e| e.comm.to_string());
    let mut rows = events;
    rows.sort_by_key(|e| replay::effect_time(e).unwrap_or(e.ts_ns));
    // The snapshot where it takes effect: the map the calls start from (or, taken after the
    // first calls, the map it replaces).
    let mut rows: Vec<Event<'static>> = snapshots.into_iter().chain(rows).collect();
    rows.sort_by_key(|e| replay::effect_time(e).unwrap_or(e.ts_ns));
    rows.shrink_to_fit();
    Ok(Prepared {
        plan: Plan {
            ops,
            files: files
                .uses
                .iter()
                .zip(&files.write)
                .map(|(u, write)| PlanFile {
                    path: u.used.clone(),
                    write: *write,
                })
                .collect(),
            threads: if options.threads {
                threads.len().max(1) as u32
            } else {
                1
            },
            same_addresses: options.same_addresses,
            speed: options.speed,
            page_size: options.page_size,
            heap_base,
            populate_budget: options.populate_limit.unwrap_or_else(populate_budget),
            regions,
        },
        recorded,
        files: files.uses,
        rows,
        comm,
        notes,
        loss_windows: loss,
        keys: files.keys,
        _dir: files.dir,
    })
}

impl Prepared {
    /// The index of the file a replayed region maps.
    pub fn file_index(
        &self,
        dev: Option<u64>,
        ino: Option<u64>,
        path: Option<&str>,
    ) -> Option<u32> {
        let key = match (dev, ino) {
            (Some(dev), Some(ino)) => FileKey::Inode(dev, ino),
            _ => FileKey::Path(path?.to_owned()),
        };
        self.keys.get(&key).copied()
    }
}

/// The ranges the process's successful calls that took effect by `until` left mapped (replayed
/// from nothing, as `maps` would), sorted.
fn made_by_calls_until(events: &[Event<'_>], until: i64, page_size: u64) -> Vec<(u64, u64)> {
    let mut before: Vec<(i64, &Event<'_>)> = events
        .iter()
        .filter_map(|e| {
            replay::effect_time(e)
                .filter(|t| *t <= until)
                .map(|t| (t, e))
        })
        .collect();
    before.sort_by_key(|(t, _)| *t);
    let mut replay = Replay::new(page_size);
    let mut pid = None;
    for (_, e) in before {
        replay.apply(e);
        pid = Some(e.pid);
    }
    let mut ranges: Vec<(u64, u64)> = pid
        .and_then(|pid| replay.process(pid))
        .map(|p| p.map.regions().map(|r| (r.start, r.end)).collect())
        .unwrap_or_default();
    ranges.sort_unstable();
    ranges
}

/// The ranges that mmap calls after `snapshot_ts` got from the kernel without MAP_FIXED
/// (successful, nothing at that range unmapped, moved or mapped over with MAP_FIXED before
/// them): free when each call was made, so a snapshot showing them read the process's map
/// while it was making them (reading /proc/PID/maps takes a while, the process runs on). The
/// snapshot's regions there are not stand-ins: the calls make them again, where a stand-in
/// would take the address (a MAP_FIXED_NOREPLACE would then fail with EEXIST).
fn made_while_read(events: &[Event<'_>], snapshot_ts: i64, page_size: u64) -> Vec<(u64, u64)> {
    let mut later: Vec<(i64, &Event<'_>)> = events
        .iter()
        .filter(|e| e.kind == RowKind::Syscall)
        .filter_map(|e| {
            replay::effect_time(e)
                .filter(|t| *t > snapshot_ts)
                .map(|t| (t, e))
        })
        .collect();
    later.sort_by_key(|(t, _)| *t);
    let page = page_size.max(1);
    let range = |addr: Option<u64>, len: Option<u64>| {
        let (addr, len) = (addr?, len?);
        let end = addr.checked_add(len.checked_next_multiple_of(page)?)?;
        (len > 0).then_some((addr, end))
    };
    let mut touched: Vec<(u64, u64)> = Vec::new();
    let mut made = Vec::new();
    for (_, e) in later {
        let ret = e.ret.filter(|_| e.errno().is_none()).map(|r| r as u64);
        match e.syscall {
            Some(Syscall::Mmap) if e.flags.unwrap_or(0) & libc::MAP_FIXED as u64 != 0 => {
                touched.extend(range(e.addr, e.len));
            }
            Some(Syscall::Mmap) => {
                if let Some((start, end)) = range(ret, e.len)
                    && !touched.iter().any(|&(t0, t1)| t0 < end && start < t1)
                {
                    made.push((start, end));
                }
            }
            Some(Syscall::Munmap) => touched.extend(range(e.addr, e.len)),
            Some(Syscall::Mremap) => {
                touched.extend(range(e.addr, e.len));
                touched.extend(range(ret, e.new_len));
            }
            _ => {}
        }
    }
    made
}

/// `range` less every range of `holes` (sorted by start; they may overlap).
fn subtract(range: (u64, u64), holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = range.0;
    for &(h0, h1) in holes {
        if h1 <= start || h0 >= range.1 {
            continue;
        }
        if h0 > start {
            out.push((start, h0));
        }
        start = start.max(h1);
    }
    if start < range.1 {
        out.push((start, range.1));
    }
    out
}

/// A quarter of the memory available now (MemAvailable in /proc/meminfo), or 1 GiB when it
/// cannot be read: what the rerun may populate or lock.
fn populate_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
    available.map_or(1 << 30, |bytes| bytes / 4)
}

/// The plan's call for a recorded row.
fn call_of(e: &Event<'_>, files: &Files) -> Option<Call> {
    let addr = e.addr.unwrap_or(0);
    let len = e.len.unwrap_or(0);
    Some(match e.syscall? {
        Syscall::Mmap => {
            let flags = e.flags.unwrap_or(0);
            Call::Mmap {
                addr,
                len,
                prot: e.prot.unwrap_or(0),
                flags,
                file: (flags & MAP_ANONYMOUS == 0)
                    .then(|| files.index_of(e))
                    .flatten(),
                off: e.off.unwrap_or(0),
            }
        }
        Syscall::Munmap => Call::Munmap { addr, len },
        Syscall::Mprotect => Call::Mprotect {
            addr,
            len,
            prot: e.prot.unwrap_or(0),
        },
        Syscall::Mremap => Call::Mremap {
            addr,
            old_len: len,
            new_len: e.new_len.unwrap_or(0),
            flags: e.flags.unwrap_or(0),
            new_addr: e.new_addr.unwrap_or(0),
        },
        Syscall::Brk => Call::Brk { addr },
        Syscall::Other => return None,
    })
}

/// A recorded file's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FileKey {
    Inode(u64, u64),
    Path(String),
}

fn file_key(e: &Event<'_>) -> Option<FileKey> {
    match (e.file_dev, e.file_ino) {
        (Some(dev), Some(ino)) => Some(FileKey::Inode(dev, ino)),
        _ => e
            .file_path
            .as_deref()
            .or(e.file_name.as_deref())
            .map(|p| FileKey::Path(p.to_owned())),
    }
}

/// The files that stand for the recorded ones.
struct Files {
    keys: HashMap<FileKey, u32>,
    uses: Vec<FileUse>,
    write: Vec<bool>,
    dir: Option<tempfile::TempDir>,
}

impl Files {
    fn index_of(&self, e: &Event<'_>) -> Option<u32> {
        self.keys.get(&file_key(e)?).copied()
    }

    fn collect(
        events: &[Event<'_>],
        snapshot: &[&Event<'_>],
        options: &Options,
    ) -> anyhow::Result<Self> {
        let page = options.page_size.max(1);
        let mut keys: HashMap<FileKey, u32> = HashMap::new();
        let mut uses: Vec<FileUse> = Vec::new();
        let mut shared_write: Vec<bool> = Vec::new();
        let mapped = events.iter().filter(|e| {
            e.syscall == Some(Syscall::Mmap) && e.flags.unwrap_or(0) & MAP_ANONYMOUS == 0
        });
        let shown = snapshot.iter().copied().filter(|e| {
            replay::snapshot_region(e)
                .is_some_and(|r| matches!(r.backing, replay::Backing::File(_)))
        });
        for e in mapped.chain(shown) {
            let flags = e.flags.unwrap_or(0);
            let Some(key) = file_key(e) else {
                continue;
            };
            let end = e
                .off
                .unwrap_or(0)
                .saturating_add(e.len.unwrap_or(0))
                .checked_next_multiple_of(page)
                .unwrap_or(u64::MAX);
            let shared = matches!(
                flags & MAP_SHARED_VALIDATE,
                MAP_SHARED | MAP_SHARED_VALIDATE
            );
            let writes = shared && e.prot.unwrap_or(0) & PROT_WRITE != 0;
            let index = match keys.entry(key) {
                Entry::Occupied(slot) => *slot.get() as usize,
                Entry::Vacant(slot) => {
                    slot.insert(uses.len() as u32);
                    uses.push(FileUse {
                        dev: e.file_dev,
                        ino: e.file_ino,
                        recorded: e.file_path.as_deref().map(str::to_owned),
                        size: 0,
                        used: PathBuf::new(),
                        kind: "temporary",
                        why: None,
                    });
                    shared_write.push(false);
                    uses.len() - 1
                }
            };
            uses[index].size = uses[index].size.max(end);
            shared_write[index] |= writes;
        }
        // A file's mappings may reach past any sane size only in a hostile capture: sparse
        // files cost nothing, but refuse what no file system holds.
        const MAX_SIZE: u64 = 1 << 50;
        let mut dir = None;
        let mut write = Vec::with_capacity(uses.len());
        for (i, file) in uses.iter_mut().enumerate() {
            if options.files == FilesFrom::Real {
                match real_file(file, shared_write[i], options.allow_shared_write) {
                    Ok(()) => {
                        file.kind = "real";
                        file.used = PathBuf::from(file.recorded.clone().unwrap_or_default());
                        write.push(shared_write[i]);
                        continue;
                    }
                    Err(why) => file.why = Some(why),
                }
            }
            if dir.is_none() {
                dir = Some(
                    tempfile::Builder::new()
                        .prefix("mmap-rerun-")
                        .tempdir()
                        .context("creating a directory for the rerun's files")?,
                );
            }
            let Some(dir) = &dir else {
                continue;
            };
            let name = file
                .recorded
                .as_deref()
                .and_then(|p| Path::new(p).file_name())
                .map(|n| {
                    n.to_string_lossy()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .take(64)
                        .collect::<String>()
                })
                .unwrap_or_default();
            let path = dir.path().join(format!("{i}-{name}"));
            let created = std::fs::File::create_new(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            created
                .set_len(file.size.min(MAX_SIZE))
                .with_context(|| format!("sizing {}", path.display()))?;
            file.used = path;
            write.push(true);
        }
        Ok(Self {
            keys,
            uses,
            write,
            dir,
        })
    }
}

/// Whether the recorded path can stand for itself: an absolute path to a regular file (not a
/// symlink) at least as big as the recorded mappings need, and not mapped shared and writable
/// unless that is allowed.
fn real_file(file: &FileUse, shared_write: bool, allowed: bool) -> Result<(), String> {
    let path = file
        .recorded
        .as_deref()
        .ok_or_else(|| "the capture has no path for it".to_owned())?;
    if !path.starts_with('/') || path.starts_with("/memfd:") {
        return Err("not a path in the file system".to_owned());
    }
    let meta = std::fs::symlink_metadata(path).map_err(|err| format!("{err}"))?;
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link".to_owned());
    }
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() < file.size {
        return Err(format!(
            "{} bytes, the recorded mappings need {}",
            meta.len(),
            file.size
        ));
    }
    if shared_write && !allowed {
        return Err(
            "mapped shared and writable: the rerun would write to it (--allow-shared-write)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Event, RowKind, Syscall, made_while_read, subtract};

    #[test]
    fn regions_the_kernel_gave_after_the_snapshot_were_free_before_it() {
        let call = |ts: i64, syscall: Syscall, addr: u64, len: u64, flags: u64, ret: i64| Event {
            kind: RowKind::Syscall,
            syscall: Some(syscall),
            ts_ns: ts,
            ts_exit_ns: Some(ts + 1),
            addr: Some(addr),
            len: Some(len),
            flags: Some(flags),
            ret: Some(ret),
            ..Event::default()
        };
        let (anon, fixed, noreplace) = (0x22, 0x32, 0x10_0022);
        let events = [
            // Before the snapshot (at 100): not this function's.
            call(50, Syscall::Mmap, 0, 4096, anon, 0x1000),
            // A MAP_FIXED_NOREPLACE the kernel honoured, a page rounded up.
            call(110, Syscall::Mmap, 0x5000, 100, noreplace, 0x5000),
            // Unmapped first, then given again: may have been in the snapshot before.
            call(120, Syscall::Munmap, 0x9000, 4096, 0, 0),
            call(130, Syscall::Mmap, 0, 4096, anon, 0x9000),
            // MAP_FIXED may replace what was there.
            call(140, Syscall::Mmap, 0x20000, 4096, fixed, 0x20000),
            // A failed call made nothing.
            call(150, Syscall::Mmap, 0x30000, 4096, noreplace, -17),
            call(160, Syscall::Mmap, 0, 8192, anon, 0x40000),
        ];
        assert_eq!(
            made_while_read(&events, 100, 4096),
            [(0x5000, 0x6000), (0x40000, 0x42000)]
        );
    }

    #[test]
    fn subtract_leaves_what_no_hole_covers() {
        let holes = [(10, 20), (30, 40)];
        assert_eq!(subtract((0, 50), &holes), [(0, 10), (20, 30), (40, 50)]);
        assert_eq!(subtract((12, 18), &holes), []);
        assert_eq!(subtract((15, 35), &holes), [(20, 30)]);
        assert_eq!(subtract((40, 45), &holes), [(40, 45)]);
        assert_eq!(subtract((0, 5), &[]), [(0, 5)]);
    }
}
