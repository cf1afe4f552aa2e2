//! The questions that need the history of each region, answered by replaying the address
//! spaces ([`crate::replay`]): memory made executable after it was anonymous or writable, and
//! anonymous mappings still in place at the end (leak candidates).
//!
//! SQL picks the candidates first (executable mprotect calls; processes whose anonymous mmaps
//! add up to more than the leak threshold), with the command line's row filter, so a capture
//! without candidates is not replayed at all. The replay then reads only the rows of those
//! processes and of their ancestors (a fork copies the parent's map), from the engine, sorted by
//! the time they take effect.

use std::collections::{BTreeMap, HashMap, HashSet};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    reader::CaptureReader,
};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    Example, Finding, Severity, Thresholds,
    checks::{anon_mmap, pid_predicate},
    query::{Columns, PROCESSES, ROWS, Scope},
};
use crate::{
    commands::rows::{Order, Sorted},
    input, labels,
    replay::{self, Backing, DEFAULT_PAGE_SIZE, MREMAP_DONTUNMAP, PROT_WRITE, Replay, SetBy},
};

/// Successful mprotect calls that make memory executable.
fn exec_mprotect() -> String {
    "syscall = 'mprotect' AND (prot & 4) <> 0 AND errno IS NULL AND ret IS NOT NULL".to_owned()
}

/// Rows listed one by one in a predicate before it falls back to listing processes.
const MAX_LISTED_ROWS: usize = 50;

/// Every question of this module.
pub fn evaluate(
    scope: &Scope<'_>,
    readers: &[CaptureReader],
    options: &Thresholds,
) -> anyhow::Result<Vec<Finding>> {
    let candidates = mprotect_candidates(scope)?;
    let parents = parents(scope)?;
    let mut pids: HashSet<u32> = candidates.iter().map(|c| c.pid).collect();
    // Replayed for the exec-after-write question in any case.
    let replayed = lineage(&parents, &pids);
    let leak_pids = leak_candidates(scope, options.leak.0, &replayed)?;
    pids.extend(leak_pids.keys());
    let mut history = History::new(page_size(readers), candidates);
    if !pids.is_empty() {
        history.replay(scope, &lineage(&parents, &pids))?;
    }
    Ok(vec![
        history.exec_after_write(scope),
        history.leaks(scope, &leak_pids, options),
    ])
}

fn page_size(readers: &[CaptureReader]) -> u64 {
    readers
        .iter()
        .find_map(|r| r.metadata().page_size)
        .map_or(DEFAULT_PAGE_SIZE, u64::from)
}

/// An executable mprotect call the filter selects, identified by its row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    pid: u32,
    tid: u32,
    ts: i64,
    addr: u64,
}

fn mprotect_candidates(scope: &Scope<'_>) -> anyhow::Result<FxHashSet<CallKey>> {
    let query = format!(
        "SELECT pid, tid, CAST(ts AS BIGINT) AS ts, addr FROM calls{}",
        scope.where_clause(&exec_mprotect())
    );
    let mut keys = FxHashSet::default();
    for batch in scope.batches(&query)? {
        let rows = Columns::new(&batch);
        for row in 0..batch.num_rows() {
            if let (Some(pid), Some(tid), Some(ts), Some(addr)) = (
                rows.u32("pid", row),
                rows.u32("tid", row),
                rows.i64("ts", row),
                rows.u64("addr", row),
            ) {
                keys.insert(CallKey { pid, tid, ts, addr });
            }
        }
    }
    Ok(keys)
}

/// The processes that may have more than `leak` bytes of anonymous mmaps (that the filter
/// selects) still mapped at the end, with their names; the replay then judges them. A superset
/// of the leaks, found by aggregates instead of a replay, in two steps:
///
/// - Loose: the processes alive at the end whose anonymous mmaps (and mremaps) add up to more
///   than `leak`, whatever was unmapped since. A process in `replayed` (replayed for another
///   question) stays a candidate: its replay costs nothing more.
/// - Tight, for the other loose candidates only (a process that maps and unmaps the same memory
///   a million times is not replayed for nothing): per start address, the newest mapping counts
///   when no unmapping at that address is newer; its length is bounded by the largest mapped
///   there. This aggregate has a group per address mapped: millions on a large capture.
///
/// A process whose last row is its exit (an exit newer than every other row of it, and than the
/// fork that made a process of that pid) has nothing mapped at the end: the replay would drop it.
/// Exits are read without the row filter, as the replay reads them.
fn leak_candidates(
    scope: &Scope<'_>,
    leak: u64,
    replayed: &HashSet<u32>,
) -> anyhow::Result<HashMap<u32, String>> {
    let succeeded = "errno IS NULL AND ret IS NOT NULL";
    // Anonymous mmaps and mremaps, read in one scan (a UNION ALL of the two read the capture
    // twice): a mremap maps `new_len` bytes at `ret`.
    let maps = format!("({}) OR (syscall = 'mremap' AND {succeeded})", anon_mmap());
    let maps_where = scope.where_clause(&maps);
    let mapped_len = "CASE WHEN syscall = 'mremap' THEN new_len ELSE len END";
    let loose = format!(
        "WITH kept AS (\
           SELECT pid, last_value(CAST(comm AS VARCHAR) ORDER BY ts) AS comm FROM calls{maps_where} \
           GROUP BY pid HAVING sum(CAST({mapped_len} AS DECIMAL(38, 0))) > {leak}), \
         {ends} \
         SELECT kept.pid, kept.comm FROM kept {alive}",
        ends = ENDS,
        alive = ALIVE_AT_END,
    );
    let mut pids = pid_names(scope, &loose)?;
    let mut tighten: Vec<String> = pids
        .keys()
        .filter(|pid| !replayed.contains(pid))
        .map(u32::to_string)
        .collect();
    if tighten.is_empty() {
        return Ok(pids);
    }
    tighten.sort_unstable();
    let only = format!(" AND pid IN ({})", tighten.join(", "));
    let mmaps = scope.where_clause(&anon_mmap());
    let mremaps = scope.where_clause(&format!("syscall = 'mremap' AND {succeeded}"));
    let tight = format!(
        "WITH changes AS (\
           SELECT pid, CAST(comm AS VARCHAR) AS comm, CAST(ret AS BIGINT UNSIGNED) AS start, ts, \
             len, true AS maps FROM calls{mmaps}{only} \
           UNION ALL \
           SELECT pid, CAST(comm AS VARCHAR), CAST(ret AS BIGINT UNSIGNED), ts, new_len, true \
             FROM calls{mremaps}{only} \
           UNION ALL \
           SELECT pid, CAST(comm AS VARCHAR), addr, ts, len, false FROM calls \
             WHERE syscall IN ('munmap', 'mremap') AND {succeeded}{only}), \
         starts AS (\
           SELECT pid, max(ts) FILTER (WHERE maps) AS mapped, \
             max(ts) FILTER (WHERE NOT maps) AS unmapped, max(len) FILTER (WHERE maps) AS len \
           FROM changes GROUP BY pid, start), \
         kept AS (\
           SELECT pid FROM starts \
           WHERE mapped >= unmapped OR mapped IS NOT NULL AND unmapped IS NULL \
           GROUP BY pid HAVING sum(CAST(len AS DECIMAL(38, 0))) > {leak}) \
         SELECT pid FROM kept",
    );
    let mut kept = HashSet::new();
    for batch in scope.batches(&tight)? {
        let rows = Columns::new(&batch);
        kept.extend((0..batch.num_rows()).filter_map(|row| rows.u32("pid", row)));
    }
    pids.retain(|pid, _| replayed.contains(pid) || kept.contains(pid));
    Ok(pids)
}

/// Per process: its last exit, and the last time anything else of it took effect
/// (`ends`); per pid, the last fork that made a process of it (`born`).
const ENDS: &str = "ends AS (\
       SELECT pid, max(ts) FILTER (WHERE kind = 'exit') AS exited, \
         max(coalesce(ts_exit, ts)) FILTER (WHERE kind <> 'exit') AS seen FROM events \
       WHERE kind IN ('syscall', 'snapshot', 'exec', 'exit') GROUP BY pid), \
     born AS (\
       SELECT child_pid AS pid, max(ts) AS born FROM events WHERE kind = 'fork' \
       GROUP BY child_pid)";

/// The rows of `kept` whose process is alive at the end ([`ENDS`]).
const ALIVE_AT_END: &str = "LEFT JOIN ends ON ends.pid = kept.pid \
     LEFT JOIN born ON born.pid = kept.pid \
     WHERE ends.exited IS NULL OR ends.exited <= ends.seen OR ends.exited <= born.born";

/// The `pid` and `comm` columns of the rows of `query`.
fn pid_names(scope: &Scope<'_>, query: &str) -> anyhow::Result<HashMap<u32, String>> {
    let mut pids = HashMap::new();
    for batch in scope.batches(query)? {
        let rows = Columns::new(&batch);
        for row in 0..batch.num_rows() {
            if let Some(pid) = rows.u32("pid", row) {
                pids.insert(pid, rows.string("comm", row).unwrap_or_default());
            }
        }
    }
    Ok(pids)
}

/// The parent of every process a fork row made (one of them, for a pid made more than once).
fn parents(scope: &Scope<'_>) -> anyhow::Result<HashMap<u32, u32>> {
    let query =
        "SELECT pid, child_pid FROM lifecycle WHERE kind = 'fork' AND child_pid IS NOT NULL";
    let mut parent = HashMap::new();
    for batch in scope.batches(query)? {
        let rows = Columns::new(&batch);
        for row in 0..batch.num_rows() {
            if let (Some(pid), Some(child)) = (rows.u32("pid", row), rows.u32("child_pid", row)) {
                parent.insert(child, pid);
            }
        }
    }
    Ok(parent)
}

/// `pids` and every ancestor of theirs that a fork row names.
fn lineage(parent: &HashMap<u32, u32>, pids: &HashSet<u32>) -> HashSet<u32> {
    let mut lineage = pids.clone();
    for &pid in pids {
        let mut pid = pid;
        while let Some(&up) = parent.get(&pid) {
            if !lineage.insert(up) {
                break;
            }
            pid = up;
        }
    }
    lineage
}

/// Why an executable mprotect is a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Anonymous,
    Written,
}

/// A flagged call.
struct Flagged {
    key: CallKey,
    comm: String,
    len: u64,
    prot: u64,
    reason: Reason,
    file: Option<String>,
}

/// The replay and what it found.
struct History {
    candidates: FxHashSet<CallKey>,
    /// Its regions say whether they were writable since they were mapped ([`Region::written`]).
    replay: Replay,
    /// Per process: memory that an mprotect made writable where the replayed map has nothing
    /// (as in a process without a snapshot), until it is mapped, unmapped or moved: an
    /// executable mprotect there later is judged as of memory that was writable.
    unmapped_written: FxHashMap<u32, Ranges>,
    flagged: Vec<Flagged>,
}

impl History {
    fn new(page_size: u64, candidates: FxHashSet<CallKey>) -> Self {
        Self {
            candidates,
            replay: Replay::new(page_size),
            unmapped_written: FxHashMap::default(),
            flagged: Vec::new(),
        }
    }

    /// Replays every row of the processes of `lineage`, in the order they take effect.
    fn replay(&mut self, scope: &Scope<'_>, lineage: &HashSet<u32>) -> anyhow::Result<()> {
        let list: Vec<String> = lineage.iter().map(u32::to_string).collect();
        let list = list.join(", ");
        let columns = input::select_list(replay::UNUSED_COLUMNS);
        // A system call takes effect when it returns; one whose exit was not seen changes
        // nothing (the replay skips it). Sorted one time slice at a time: one sort of the rows
        // of hundreds of processes outgrew the engine's memory.
        let query = format!(
            "SELECT {columns} FROM events \
             WHERE kind IN ('syscall', 'snapshot', 'exec', 'exit') AND pid IN ({list}) \
                OR kind = 'fork' AND child_pid IN ({list})"
        );
        Sorted::over(scope.engine, &scope.span, &query, Order::Effect)?.for_each(|event, _| {
            self.apply(event);
            Ok(())
        })
    }

    /// Judges a candidate executable mprotect against the map as it was before the call, then
    /// replays the row.
    fn apply(&mut self, e: &Event<'_>) {
        match e.kind {
            RowKind::Syscall if e.ret.is_some() && e.errno().is_none() => self.call(e),
            RowKind::Fork => {
                if let Some(child) = e.child_pid {
                    match self.unmapped_written.get(&e.pid).cloned() {
                        Some(ranges) => self.unmapped_written.insert(child, ranges),
                        None => self.unmapped_written.remove(&child),
                    };
                }
            }
            RowKind::Exec | RowKind::Exit => {
                self.unmapped_written.remove(&e.pid);
            }
            _ => {}
        }
        self.replay.apply(e);
    }

    /// A successful call, before the replay applies it.
    fn call(&mut self, e: &Event<'_>) {
        let (Some(addr), Some(ret)) = (e.addr, e.ret) else {
            return;
        };
        let range = |start: u64, len: Option<u64>| self.replay.range(start, len.unwrap_or(0));
        let unmapped = self.unmapped_written.get_mut(&e.pid);
        match e.syscall {
            Some(Syscall::Mprotect) => {
                let (start, end) = range(addr, e.len);
                let key = CallKey {
                    pid: e.pid,
                    tid: e.tid,
                    ts: e.ts_ns,
                    addr,
                };
                if self.candidates.contains(&key) {
                    self.judge(e, key, start, end);
                }
                if e.prot.unwrap_or(0) & PROT_WRITE != 0 {
                    self.note_unmapped_written(e.pid, start, end);
                }
            }
            Some(Syscall::Mmap) => {
                if let Some(ranges) = unmapped {
                    let (start, end) = range(ret as u64, e.len);
                    ranges.remove(start, end);
                }
            }
            Some(Syscall::Munmap) => {
                if let Some(ranges) = unmapped {
                    let (start, end) = range(addr, e.len);
                    ranges.remove(start, end);
                }
            }
            Some(Syscall::Mremap) => {
                if let Some(ranges) = unmapped {
                    let (old, old_end) = range(addr, e.len);
                    let (new, new_end) = range(ret as u64, e.new_len);
                    let moved = ranges.intersects(old, old_end);
                    if e.flags.unwrap_or(0) & MREMAP_DONTUNMAP == 0 {
                        ranges.remove(old, old_end);
                    }
                    ranges.remove(new, new_end);
                    if moved {
                        ranges.insert(new, new_end);
                    }
                }
            }
            Some(Syscall::Brk | Syscall::Other) | None => {}
        }
    }

    /// Keeps the parts of `[start, end)`, made writable, that the replayed map does not have.
    fn note_unmapped_written(&mut self, pid: u32, start: u64, end: u64) {
        let mut gaps = Vec::new();
        let mut at = start;
        if let Some(process) = self.replay.process(pid) {
            for region in process.map.overlapping(start, end) {
                if region.start > at {
                    gaps.push((at, region.start));
                }
                at = at.max(region.end);
            }
        }
        if at < end {
            gaps.push((at, end));
        }
        if gaps.is_empty() {
            return;
        }
        let ranges = self.unmapped_written.entry(pid).or_default();
        for (start, end) in gaps {
            ranges.insert(start, end);
        }
    }

    /// Flags the executable mprotect of `[start, end)` when the replayed map has anonymous
    /// memory there, or memory that was writable since it was mapped.
    fn judge(&mut self, e: &Event<'_>, key: CallKey, start: u64, end: u64) {
        let Some(process) = self.replay.process(e.pid) else {
            return;
        };
        let regions: Vec<_> = process.map.overlapping(start, end).collect();
        let anonymous = regions
            .iter()
            .any(|r| matches!(r.backing, Backing::Anon { .. }));
        let written = regions.iter().any(|r| r.written)
            || self
                .unmapped_written
                .get(&e.pid)
                .is_some_and(|ranges| ranges.intersects(start, end));
        let reason = if anonymous {
            Reason::Anonymous
        } else if written {
            Reason::Written
        } else {
            return;
        };
        let file = regions
            .iter()
            .find_map(|r| r.file().and_then(|f| f.path.as_deref().map(str::to_owned)));
        self.flagged.push(Flagged {
            key,
            comm: e.comm.to_string(),
            len: e.len.unwrap_or(0),
            prot: e.prot.unwrap_or(0),
            reason,
            file,
        });
    }

    fn exec_after_write(&self, scope: &Scope<'_>) -> Finding {
        let mut flagged: Vec<&Flagged> = self.flagged.iter().collect();
        flagged.sort_by_key(|f| (f.key.ts, f.key.pid));
        let pids: HashSet<u32> = flagged.iter().map(|f| f.key.pid).collect();
        let (predicate, exact) = self.flagged_predicate(&flagged);
        let examples = flagged
            .iter()
            .take(scope.examples)
            .map(|f| Example {
                pid: f.key.pid,
                comm: f.comm.clone(),
                ts_ns: f.key.ts,
                what: Syscall::Mprotect.as_str().to_owned(),
                addr: Some(f.key.addr),
                len: Some(f.len),
                prot: Some(mmap_format::names::prot_names(f.prot)),
                file: f.file.clone(),
                detail: Some(
                    match f.reason {
                        Reason::Anonymous => "anonymous memory",
                        Reason::Written => "was writable",
                    }
                    .to_owned(),
                ),
            })
            .collect();
        Finding {
            id: "exec-after-write",
            severity: Severity::High,
            title: "mprotect making anonymous memory, or memory that was writable, executable"
                .to_owned(),
            count: flagged.len() as u64,
            unit: ROWS,
            processes: pids.len() as u64,
            view: "calls",
            predicate,
            exact,
            note: Some(
                "found by replaying each address space; an mprotect of memory the capture \
                 never saw mapped is judged only when an earlier mprotect made it writable"
                    .to_owned(),
            ),
            examples,
        }
    }

    /// The executable mprotect calls of the flagged (pid, address) pairs, and whether that
    /// selects exactly the flagged calls among the candidates.
    fn flagged_predicate(&self, flagged: &[&Flagged]) -> (String, bool) {
        let mut by_pid: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for f in flagged {
            let addrs = by_pid.entry(f.key.pid).or_default();
            if !addrs.contains(&f.key.addr) {
                addrs.push(f.key.addr);
            }
        }
        let pairs: usize = by_pid.values().map(Vec::len).sum();
        if flagged.is_empty() || pairs > MAX_LISTED_ROWS {
            let pids: Vec<u32> = by_pid.keys().copied().collect();
            let (predicate, _, _) = pid_predicate(&exec_mprotect(), &pids, "");
            return (predicate, flagged.is_empty());
        }
        let terms: Vec<String> = by_pid
            .iter()
            .map(|(pid, addrs)| {
                let addrs: Vec<String> = addrs.iter().map(u64::to_string).collect();
                format!("pid = {pid} AND addr IN ({})", addrs.join(", "))
            })
            .collect();
        let selected = self
            .candidates
            .iter()
            .filter(|c| by_pid.get(&c.pid).is_some_and(|a| a.contains(&c.addr)))
            .count();
        (
            format!("{} AND ({})", exec_mprotect(), terms.join(" OR ")),
            selected == flagged.len(),
        )
    }

    /// Live processes whose anonymous mmaps still mapped at the end add up to more than the
    /// threshold.
    fn leaks(
        &self,
        scope: &Scope<'_>,
        candidates: &HashMap<u32, String>,
        options: &Thresholds,
    ) -> Finding {
        let mut leaks = Vec::new();
        for (&pid, comm) in candidates {
            let Some(process) = self.replay.process(pid) else {
                continue;
            };
            let kept: Vec<_> = process
                .map
                .regions()
                .filter(|r| matches!(r.backing, Backing::Anon { name: None }))
                .filter(|r| matches!(r.set_by, SetBy::Mmap | SetBy::Mprotect | SetBy::Mremap))
                .collect();
            let bytes: u64 = kept.iter().map(|r| r.len()).sum();
            if bytes <= options.leak.0 {
                continue;
            }
            let since = kept.iter().map(|r| r.since).min().unwrap_or(0);
            let largest = kept.iter().max_by_key(|r| r.len());
            leaks.push(Example {
                pid,
                comm: comm.clone(),
                ts_ns: since,
                what: "process".to_owned(),
                addr: largest.map(|r| r.start),
                len: Some(bytes),
                prot: None,
                file: None,
                detail: Some(format!(
                    "{} region{} still mapped at the end, the largest {}",
                    kept.len(),
                    labels::plural(kept.len() as u64),
                    labels::human_bytes(largest.map_or(0, |r| r.len()))
                )),
            });
        }
        leaks.sort_by_key(|example| (example.ts_ns, example.pid));
        let pids: Vec<u32> = leaks.iter().map(|example| example.pid).collect();
        let (predicate, _, note) = pid_predicate(
            &anon_mmap(),
            &pids,
            "a candidate, not a proof: anonymous memory mapped during the capture by a process \
             still alive at its end and never unmapped; the predicate shows every anonymous \
             mmap of those processes",
        );
        Finding {
            id: "leak-candidate",
            severity: Severity::Low,
            title: format!(
                "live processes with more than {} of anonymous mmaps never unmapped",
                options.leak
            ),
            count: pids.len() as u64,
            unit: PROCESSES,
            processes: pids.len() as u64,
            view: "calls",
            predicate,
            exact: pids.is_empty(),
            note: Some(note),
            examples: leaks.into_iter().take(scope.examples).collect(),
        }
    }
}

/// A set of address ranges `[start, end)`, kept disjoint and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Nothing there that overlaps or touches [start, end] (most inserts): one lookup.
        if self
            .0
            .range(..=end)
            .next_back()
            .is_none_or(|(_, &e)| e < start)
        {
            self.0.insert(start, end);
            return;
        }
        // Absorb every range that overlaps or touches [start, end).
        if let Some((&s, &e)) = self.0.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
        }
        let inside: Vec<u64> = self.0.range(start..=end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some(e) = self.0.remove(&s) {
                end = end.max(e);
            }
        }
        self.0.insert(start, end);
    }

    fn remove(&mut self, start: u64, end: u64) {
        // Nothing there (most removes): one lookup.
        if !self.intersects(start, end) {
            return;
        }
        let first = match self.0.range(..start).next_back() {
            Some((&s, &e)) if e > start => s,
            _ => start,
        };
        let touched: Vec<(u64, u64)> = self.0.range(first..end).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in touched {
            self.0.remove(&s);
            if s < start {
                self.0.insert(s, start);
            }
            if e > end {
                self.0.insert(end, e);
            }
        }
    }

    fn intersects(&self, start: u64, end: u64) -> bool {
        // The last range that starts before `end` is the only one that can reach past `start`.
        start < end
            && self
                .0
                .range(..end)
                .next_back()
                .is_some_and(|(_, &e)| e > start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(syscall: Syscall, ts: i64, addr: u64, len: u64, prot: Option<u64>) -> Event<'static> {
        Event {
            kind: RowKind::Syscall,
            syscall: Some(syscall),
            ts_ns: ts,
            ts_exit_ns: Some(ts + 1),
            pid: 7,
            tid: 7,
            comm: std::borrow::Cow::Borrowed("t"),
            addr: Some(addr),
            len: Some(len),
            prot,
            ret: Some(0),
            ..Default::default()
        }
    }

    /// Executable mprotects of a process the replay has no map for (no snapshot): memory an
    /// mprotect made writable is judged as written until it is unmapped; other memory is not
    /// judged.
    #[test]
    fn memory_made_writable_outside_the_map_counts_until_unmapped() {
        let (a, b, c) = (0x10_000, 0x20_000, 0x30_000);
        let rows = [
            call(Syscall::Mprotect, 10, a, 4096, Some(0x3)),
            call(Syscall::Mprotect, 20, a, 4096, Some(0x5)),
            call(Syscall::Mprotect, 30, b, 4096, Some(0x5)),
            call(Syscall::Mprotect, 40, c, 4096, Some(0x3)),
            call(Syscall::Munmap, 50, c, 4096, None),
            call(Syscall::Mprotect, 60, c, 4096, Some(0x5)),
        ];
        let candidates = rows
            .iter()
            .filter(|e| e.prot == Some(0x5))
            .map(|e| CallKey {
                pid: e.pid,
                tid: e.tid,
                ts: e.ts_ns,
                addr: e.addr.unwrap_or(0),
            })
            .collect();
        let mut history = History::new(4096, candidates);
        for row in &rows {
            history.apply(row);
        }
        let flagged: Vec<(i64, Reason)> = history
            .flagged
            .iter()
            .map(|f| (f.key.ts, f.reason))
            .collect();
        assert_eq!(flagged, vec![(20, Reason::Written)]);
    }

    #[test]
    fn ranges_merge_split_and_intersect() {
        let mut ranges = Ranges::default();
        ranges.insert(10, 20);
        ranges.insert(20, 30);
        ranges.insert(40, 50);
        assert_eq!(ranges.0, BTreeMap::from([(10, 30), (40, 50)]));
        ranges.insert(25, 45);
        assert_eq!(ranges.0, BTreeMap::from([(10, 50)]));
        ranges.remove(15, 20);
        assert_eq!(ranges.0, BTreeMap::from([(10, 15), (20, 50)]));
        assert!(ranges.intersects(14, 16));
        assert!(!ranges.intersects(15, 20));
        assert!(ranges.intersects(0, 11));
        assert!(!ranges.intersects(50, 60));
        ranges.remove(60, 70);
        ranges.insert(50, 55);
        ranges.insert(5, 10);
        ranges.insert(70, 80);
        assert_eq!(ranges.0, BTreeMap::from([(5, 15), (20, 55), (70, 80)]));
        ranges.remove(0, 100);
        assert!(ranges.0.is_empty());
    }

    /// Random inserts and removes against a set of unit cells: the ranges always hold exactly
    /// the cells, disjoint and merged (no two ranges touch).
    #[test]
    fn ranges_match_a_set_of_cells() {
        let mut ranges = Ranges::default();
        let mut cells = [false; 64];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..20_000 {
            let start = next(64);
            let end = start + next(12);
            let end = end.min(64);
            let insert = next(3) != 0;
            if insert {
                ranges.insert(start, end);
            } else {
                ranges.remove(start, end);
            }
            for cell in &mut cells[start as usize..end as usize] {
                *cell = insert;
            }
            let mut expected = BTreeMap::new();
            let mut open: Option<u64> = None;
            for (i, &set) in cells.iter().enumerate().chain([(64, &false)]) {
                match (set, open) {
                    (true, None) => open = Some(i as u64),
                    (false, Some(s)) => {
                        expected.insert(s, i as u64);
                        open = None;
                    }
                    _ => {}
                }
            }
            assert_eq!(ranges.0, expected, "step {step}: [{start}, {end})");
        }
    }
}
