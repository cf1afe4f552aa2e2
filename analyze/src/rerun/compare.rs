//! The rerun against the recording: each call's outcome, latency per system call, and the
//! address space the replayed calls left.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{
    plan::{Prepared, Recorded},
    protocol::{Done, How, Issued, Outcome},
};
use crate::{
    labels,
    replay::{Backing, Region, Replay},
};

/// How one call compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Same,
    Differs,
    /// Not issued (see `why`).
    Skipped,
    /// The capture has no result for it.
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct CallJson {
    #[serde(flatten)]
    pub recorded_call: CallRow,
    /// The arguments the child passed, those of the call's system call only.
    pub issued: Option<serde_json::Value>,
    pub ret: Option<i64>,
    pub outcome: Verdict,
    pub why: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CallRow {
    pub seq: usize,
    pub tid: u32,
    pub syscall: &'static str,
    pub recorded: Recorded,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub seq: usize,
    pub time: String,
    pub tid: u32,
    pub syscall: &'static str,
    pub recorded_ret: Option<i64>,
    pub rerun_ret: i64,
    pub why: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub recorded: usize,
    pub issued: usize,
    pub skipped: usize,
    pub same: usize,
    pub differ: usize,
    /// Issued, but the capture has no result to compare with.
    pub unknown: usize,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub syscall: &'static str,
    pub calls: usize,
    pub recorded_p50_ns: Option<u64>,
    pub recorded_p99_ns: Option<u64>,
    pub rerun_p50_ns: Option<u64>,
    pub rerun_p99_ns: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Elsewhere {
    pub seq: usize,
    pub recorded: String,
    pub rerun: String,
}

#[derive(Debug, Default, Serialize)]
pub struct SameAddresses {
    pub requested: usize,
    pub placed: usize,
    pub elsewhere: Vec<Elsewhere>,
}

/// A region in recorded addresses, as the comparison sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub start: String,
    pub end: String,
    #[serde(skip)]
    pub start_ns: u64,
    #[serde(skip)]
    pub end_ns: u64,
    pub perms: String,
    /// File offset (file-backed regions only).
    pub off: Option<u64>,
    /// The recorded file (its path), for file-backed regions.
    pub file: Option<String>,
    #[serde(skip)]
    file_index: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Space {
    pub matched: bool,
    /// Regions the replayed calls left, in both.
    pub regions: usize,
    pub only_recorded: Vec<Piece>,
    pub only_rerun: Vec<Piece>,
}

/// Compares the calls one by one.
pub fn calls(prepared: &Prepared, outcome: &Outcome) -> (Counts, Vec<Difference>, Vec<CallJson>) {
    let rec_base = prepared.plan.heap_base;
    let mut counts = Counts {
        recorded: prepared.recorded.len(),
        ..Counts::default()
    };
    let mut differences = Vec::new();
    let mut list = Vec::with_capacity(prepared.recorded.len());
    for (rec, done) in prepared.recorded.iter().zip(&outcome.done) {
        let (verdict, why) = verdict(rec, done, rec_base, outcome.heap_base);
        match verdict {
            Verdict::Same => counts.same += 1,
            Verdict::Differs => counts.differ += 1,
            Verdict::Skipped => counts.skipped += 1,
            Verdict::Unknown => counts.unknown += 1,
        }
        if done.how.issued() {
            counts.issued += 1;
        }
        if let (Verdict::Differs, Some(why)) = (verdict, &why) {
            differences.push(Difference {
                seq: rec.seq,
                time: rec.time.clone(),
                tid: rec.tid,
                syscall: rec.syscall,
                recorded_ret: rec.ret,
                rerun_ret: done.ret,
                why: why.clone(),
            });
        }
        let why = why.or_else(|| done.how.why().map(str::to_owned));
        list.push(CallJson {
            recorded_call: CallRow {
                seq: rec.seq,
                tid: rec.tid,
                syscall: rec.syscall,
                recorded: rec.clone(),
            },
            issued: done
                .how
                .issued()
                .then(|| issued_json(rec.syscall, &done.issued)),
            ret: done.how.issued().then_some(done.ret),
            outcome: verdict,
            why,
        });
    }
    (counts, differences, list)
}

/// The arguments `syscall` takes, as the child passed them.
fn issued_json(syscall: &str, i: &Issued) -> serde_json::Value {
    use serde_json::json;
    match syscall {
        "mmap" => json!({"addr": i.addr, "len": i.len, "prot": i.prot, "flags": i.flags,
                         "fd": i.fd, "off": i.off}),
        "munmap" => json!({"addr": i.addr, "len": i.len}),
        "mprotect" => json!({"addr": i.addr, "len": i.len, "prot": i.prot}),
        "mremap" => json!({"addr": i.addr, "len": i.len, "new_len": i.new_len,
                           "flags": i.flags, "new_addr": i.new_addr}),
        _ => json!({"addr": i.addr}),
    }
}

fn failed(ret: i64) -> Option<i32> {
    (-4095..0).contains(&ret).then(|| (-ret) as i32)
}

fn result_words(ret: i64) -> String {
    match failed(ret) {
        Some(errno) => labels::errno_label(errno),
        None => "success".to_owned(),
    }
}

fn verdict(
    rec: &Recorded,
    done: &Done,
    rec_base: Option<u64>,
    child_base: u64,
) -> (Verdict, Option<String>) {
    if !done.how.issued() {
        return (Verdict::Skipped, done.how.why().map(str::to_owned));
    }
    let Some(recorded) = rec.ret else {
        return (Verdict::Unknown, None);
    };
    if rec.syscall == "brk" {
        let (Some(base), false) = (rec_base, failed(done.ret).is_some()) else {
            return (Verdict::Unknown, None);
        };
        let rec_size = (recorded as u64).wrapping_sub(base) as i64;
        let rerun_size = (done.ret as u64).wrapping_sub(child_base) as i64;
        if rec_size == rerun_size {
            return (Verdict::Same, None);
        }
        return (
            Verdict::Differs,
            Some(format!(
                "the break ended {rerun_size} bytes from the heap's start, recorded {rec_size}"
            )),
        );
    }
    match (failed(recorded), failed(done.ret)) {
        (None, None) => (Verdict::Same, None),
        (Some(a), Some(b)) if a == b => (Verdict::Same, None),
        _ => (
            Verdict::Differs,
            Some(format!(
                "recorded {}, rerun {}",
                result_words(recorded),
                result_words(done.ret)
            )),
        ),
    }
}

/// Where `--same-addresses` got the recorded address and where it did not.
pub fn same_addresses(prepared: &Prepared, outcome: &Outcome) -> SameAddresses {
    let mut same = SameAddresses::default();
    for (rec, done) in prepared.recorded.iter().zip(&outcome.done) {
        match done.how {
            How::SameAddress => {
                same.requested += 1;
                same.placed += 1;
            }
            How::Elsewhere => {
                same.requested += 1;
                same.elsewhere.push(Elsewhere {
                    seq: rec.seq,
                    recorded: rec.ret.map_or_else(String::new, |r| labels::hex(r as u64)),
                    rerun: if failed(done.ret).is_some() {
                        result_words(done.ret)
                    } else {
                        labels::hex(done.ret as u64)
                    },
                });
            }
            _ => {}
        }
    }
    same
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// p50 and p99 per system call, recorded beside rerun (issued calls only).
pub fn latency(prepared: &Prepared, outcome: &Outcome) -> Vec<Latency> {
    let mut by: BTreeMap<&'static str, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for (rec, done) in prepared.recorded.iter().zip(&outcome.done) {
        if !done.how.issued() {
            continue;
        }
        let entry = by.entry(rec.syscall).or_default();
        if let Some(d) = rec.dur_ns {
            entry.0.push(d);
        }
        entry.1.push(done.dur_ns);
    }
    by.into_iter()
        .map(|(syscall, (mut recorded, mut rerun))| {
            recorded.sort_unstable();
            rerun.sort_unstable();
            Latency {
                syscall,
                calls: rerun.len(),
                recorded_p50_ns: percentile(&recorded, 50.0),
                recorded_p99_ns: percentile(&recorded, 99.0),
                rerun_p50_ns: percentile(&rerun, 50.0),
                rerun_p99_ns: percentile(&rerun, 99.0),
            }
        })
        .collect()
}

/// The regions the recorded calls made (replayed as `maps` does, from the calls alone) against
/// the child's /proc/self/maps where it stands for recorded memory.
pub fn space(prepared: &Prepared, outcome: &Outcome, page_size: u64) -> Space {
    let mut replay = Replay::new(page_size);
    for row in &prepared.rows {
        replay.apply(row);
    }
    let pid = prepared.rows.first().map_or(0, |r| r.pid);
    let expected: Vec<Piece> = replay
        .process(pid)
        .map(|p| p.map.merged())
        .unwrap_or_default()
        .iter()
        .map(|region| piece_of_region(prepared, region))
        .collect();
    let actual = merge(rerun_pieces(prepared, outcome));
    let expected = merge(expected);
    let only_recorded: Vec<Piece> = expected
        .iter()
        .filter(|p| !actual.contains(p))
        .cloned()
        .collect();
    let only_rerun: Vec<Piece> = actual
        .iter()
        .filter(|p| !expected.contains(p))
        .cloned()
        .collect();
    Space {
        matched: only_recorded.is_empty() && only_rerun.is_empty(),
        regions: expected.len() - only_recorded.len(),
        only_recorded,
        only_rerun,
    }
}

fn piece(
    start: u64,
    end: u64,
    perms: String,
    off: Option<u64>,
    file: Option<(u32, String)>,
) -> Piece {
    Piece {
        start: labels::hex(start),
        end: labels::hex(end),
        start_ns: start,
        end_ns: end,
        perms,
        off: file.as_ref().and(off),
        file_index: file.as_ref().map(|f| f.0),
        file: file.map(|f| f.1),
    }
}

fn file_label(prepared: &Prepared, index: u32) -> String {
    prepared
        .files
        .get(index as usize)
        .and_then(|f| f.recorded.clone())
        .unwrap_or_else(|| format!("file {index}"))
}

fn piece_of_region(prepared: &Prepared, region: &Region) -> Piece {
    let file = match &region.backing {
        Backing::File(file) => prepared
            .file_index(file.dev, file.ino, file.path.as_deref())
            .map(|i| (i, file_label(prepared, i))),
        Backing::Anon { .. } => None,
    };
    piece(
        region.start,
        region.end,
        region.perms(),
        Some(region.off),
        file,
    )
}

/// The child's regions that stand for recorded memory, in recorded addresses.
fn rerun_pieces(prepared: &Prepared, outcome: &Outcome) -> Vec<Piece> {
    let mut by_inode: HashMap<(u64, u64, u64), u32> = HashMap::new();
    for (i, file) in prepared.files.iter().enumerate() {
        if let Ok(meta) = std::fs::metadata(&file.used) {
            use std::os::unix::fs::MetadataExt as _;
            let dev = meta.dev();
            by_inode.insert(
                (
                    u64::from(libc::major(dev)),
                    u64::from(libc::minor(dev)),
                    meta.ino(),
                ),
                i as u32,
            );
        }
    }
    let mut pieces = Vec::new();
    for line in outcome.maps.lines() {
        let Some(line) = MapsLine::parse(line) else {
            continue;
        };
        let file = by_inode.get(&(line.major, line.minor, line.ino)).copied();
        for iv in &outcome.intervals {
            let child_end = iv.child + (iv.end - iv.start);
            let (s, e) = (line.start.max(iv.child), line.end.min(child_end));
            if s >= e {
                continue;
            }
            let start = iv.start + (s - iv.child);
            let off = line.off + (s - line.start);
            pieces.push(piece(
                start,
                start + (e - s),
                line.perms.clone(),
                Some(off),
                file.map(|i| (i, file_label(prepared, i))),
            ));
        }
    }
    pieces
}

/// Sorted, with neighbours that /proc would show as one region joined.
fn merge(mut pieces: Vec<Piece>) -> Vec<Piece> {
    pieces.sort_by_key(|p| p.start_ns);
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        if let Some(last) = out.last_mut() {
            let contiguous_off = match (last.off, p.off) {
                (Some(a), Some(b)) => a + (last.end_ns - last.start_ns) == b,
                (None, None) => true,
                _ => false,
            };
            if last.end_ns == p.start_ns
                && last.perms == p.perms
                && last.file_index == p.file_index
                && contiguous_off
            {
                last.end_ns = p.end_ns;
                last.end = p.end.clone();
                continue;
            }
        }
        out.push(p);
    }
    out
}

struct MapsLine {
    start: u64,
    end: u64,
    perms: String,
    off: u64,
    major: u64,
    minor: u64,
    ino: u64,
}

impl MapsLine {
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_ascii_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?.to_owned();
        let off = u64::from_str_radix(fields.next()?, 16).ok()?;
        let (major, minor) = fields.next()?.split_once(':')?;
        let ino = fields.next()?.parse().ok()?;
        Some(Self {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            perms,
            off,
            major: u64::from_str_radix(major, 16).ok()?,
            minor: u64::from_str_radix(minor, 16).ok()?,
            ino,
        })
    }
}
