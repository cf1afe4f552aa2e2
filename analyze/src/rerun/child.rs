//! The rerun child: `mmap-analyze rerun-child` (hidden), started by `rerun` with a [`Plan`] on its
//! stdin. It opens the files, starts its threads, then makes the calls between two marker calls
//! and sends an [`Outcome`] back on stdout.
//!
//! Between the markers it must make no mapping call of its own: everything it needs (the results,
//! the translation, the buffer /proc/self/maps is read into) is allocated before the first
//! marker, and nothing allocates until /proc/self/maps has been read after the second.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    os::fd::{AsRawFd as _, OwnedFd},
    process::ExitCode,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    protocol::{Call, Done, How, Issued, MARKER_END, MARKER_START, Op, Outcome, Plan, Standin},
    translate::{Resolved, Translation},
};
use crate::replay::{MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MREMAP_DONTUNMAP, MREMAP_FIXED};

const MAP_FIXED: u64 = 0x10;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_LOCKED: u64 = 0x2000;
const MAP_POPULATE: u64 = 0x8000;
const EEXIST: i64 = 17;
/// Room for /proc/self/maps after the calls.
const MAPS_ROOM: usize = 32 << 20;
/// Where calls on memory the replay did not make go when they cannot change anything: the first
/// pages of the address space, below `vm.mmap_min_addr`, are never mapped.
const HOLE: u64 = 0x1000;

/// Reads the plan, makes the calls, writes the outcome.
pub fn run() -> anyhow::Result<ExitCode> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .context("reading the plan")?;
    let plan: Plan = serde_json::from_slice(&input).context("reading the plan")?;
    drop(input);
    let outcome = replay(&plan)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &outcome).context("writing the outcome")?;
    out.flush().context("writing the outcome")?;
    Ok(ExitCode::SUCCESS)
}

fn replay(plan: &Plan) -> anyhow::Result<Outcome> {
    let files = plan
        .files
        .iter()
        .map(|file| open(&file.path, file.write))
        .collect::<anyhow::Result<Vec<OwnedFd>>>()?;
    let fds: Vec<i64> = files.iter().map(|fd| i64::from(fd.as_raw_fd())).collect();
    let mut maps = File::open("/proc/self/maps").context("opening /proc/self/maps")?;
    let mut text = vec![0u8; MAPS_ROOM];
    let lowest = read_into(&mut maps, &mut text)
        .ok()
        .and_then(|n| lowest_mapping(&text[..n]))
        .unwrap_or(0x10000);
    let mut maps = File::open("/proc/self/maps").context("opening /proc/self/maps")?;

    let state = Mutex::new(State {
        translation: Translation::with_capacity_for(plan.ops.len() + plan.regions.len()),
        done: vec![Done::default(); plan.ops.len()],
        fds,
        page: plan.page_size.max(1),
        same_addresses: plan.same_addresses,
        rec_heap_base: plan.heap_base,
        // Read just before the first call, when nothing allocates any more.
        heap_base: 0,
        rec_heap_end: None,
        hole_limit: lowest,
        populate_left: plan.populate_budget,
        unpopulated: false,
    });
    let standins_failed = match state.lock() {
        Ok(mut state) => state.make_standins(&plan.regions),
        Err(_) => Vec::new(),
    };
    let threads = plan.threads.max(1) as usize;
    let mut per_thread: Vec<Vec<usize>> = vec![Vec::new(); threads];
    for (i, op) in plan.ops.iter().enumerate() {
        per_thread[(op.thread as usize).min(threads - 1)].push(i);
    }
    let next = AtomicUsize::new(0);
    let ready = AtomicUsize::new(0);
    let go = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let pacing = Pacing {
        speed: plan.speed,
        start: Instant::now(),
    };
    let mut read = Ok(0);
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|scope| {
        let workers: Vec<_> = per_thread[1..]
            .iter()
            .map(|mine| {
                let (state, next, ready, go, finished, ops) =
                    (&state, &next, &ready, &go, &finished, &plan.ops);
                scope.spawn(move || {
                    // What a new thread maps for itself (its signal stack as it starts, its
                    // malloc arena at its first allocation) is mapped before the first marker:
                    // the main thread waits for every worker to get here.
                    drop(std::hint::black_box(Box::new(0u64)));
                    ready.fetch_add(1, Ordering::Release);
                    while !go.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    run_ops(mine, ops, state, next, &pacing);
                    // Leave only after /proc/self/maps is read: a thread's end unmaps things.
                    while !finished.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        while ready.load(Ordering::Acquire) < workers.len() {
            std::thread::yield_now();
        }
        // The child's break now, after its last allocation: the base of the replayed heap.
        let heap_base = raw(libc::SYS_brk, [0; 6]) as u64;
        if let Ok(mut state) = state.lock() {
            state.heap_base = heap_base;
        }
        marker(MARKER_START);
        go.store(true, Ordering::Release);
        let start = Instant::now();
        run_ops(&per_thread[0], &plan.ops, &state, &next, &pacing);
        while next.load(Ordering::Acquire) < plan.ops.len() {
            std::thread::yield_now();
        }
        elapsed = start.elapsed();
        marker(MARKER_END);
        read = read_into(&mut maps, &mut text);
        finished.store(true, Ordering::Release);
        drop(workers);
    });
    let len = read.context("reading /proc/self/maps")?;
    let state = state
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a replay thread panicked"))?;
    let heap_base = state.heap_base;
    Ok(Outcome {
        pid: std::process::id(),
        done: state.done,
        maps: String::from_utf8_lossy(&text[..len]).into_owned(),
        intervals: state.translation.intervals().to_vec(),
        heap_base,
        elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        standins_failed,
    })
}

/// When each call is due.
#[derive(Clone, Copy)]
struct Pacing {
    speed: Option<f64>,
    start: Instant,
}

impl Pacing {
    fn wait(&self, op: &Op) {
        let Some(speed) = self.speed else {
            return;
        };
        let due = self.start + Duration::from_secs_f64(op.at_ns as f64 / 1e9 / speed);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Makes the calls `mine` (indexes into `ops`, in order), each when all before it are done.
fn run_ops(mine: &[usize], ops: &[Op], state: &Mutex<State>, next: &AtomicUsize, pacing: &Pacing) {
    for &i in mine {
        let mut spins = 0u32;
        while next.load(Ordering::Acquire) != i {
            spins += 1;
            if spins < 200 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        pacing.wait(&ops[i]);
        if let Ok(mut state) = state.lock() {
            let done = state.execute(&ops[i]);
            state.done[i] = done;
        }
        next.store(i + 1, Ordering::Release);
    }
}

fn open(path: &std::path::Path, write: bool) -> anyhow::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(file.into())
}

/// Reads all of `file` into `buf` without allocating; fails when it does not fit.
fn read_into(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(std::io::Error::other(
                "/proc/self/maps is larger than 32 MiB",
            ));
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// The start of the first line of /proc/self/maps.
fn lowest_mapping(text: &[u8]) -> Option<u64> {
    let line = text.split(|b| *b == b'-').next()?;
    u64::from_str_radix(std::str::from_utf8(line).ok()?, 16).ok()
}

/// The marker call: mmap of length 0 at `addr`, which fails with EINVAL.
fn marker(addr: u64) {
    let flags = MAP_PRIVATE | MAP_ANONYMOUS;
    raw(libc::SYS_mmap, [addr, 0, 0, flags, u64::MAX, 0]);
}

/// A raw system call: its result, or -errno.
fn raw(nr: libc::c_long, a: [u64; 6]) -> i64 {
    // SAFETY: the replay's calls only map, unmap, protect or move memory the replay made (or
    // ranges the child never maps, where they fail or change nothing); no memory of this
    // process is read or written through their results.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if ret == -1 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        ret
    }
}

fn failed(ret: i64) -> bool {
    (-4095..0).contains(&ret)
}

/// The replay's state, shared by its threads (one call at a time).
struct State {
    translation: Translation,
    done: Vec<Done>,
    fds: Vec<i64>,
    page: u64,
    same_addresses: bool,
    rec_heap_base: Option<u64>,
    heap_base: u64,
    /// The end of the replayed heap, recorded.
    rec_heap_end: Option<u64>,
    /// Below this the child has no mapping of its own.
    hole_limit: u64,
    /// Bytes that may still be populated or locked.
    populate_left: u64,
    /// The call being made had MAP_POPULATE or MAP_LOCKED left out.
    unpopulated: bool,
}

impl State {
    fn page_up(&self, len: u64) -> u64 {
        len.checked_next_multiple_of(self.page).unwrap_or(u64::MAX)
    }

    /// An address where `[addr, addr + len)` changes nothing in the child: in the unmapped first
    /// pages, with the recorded address's offset in its page (so an unaligned address is still
    /// refused for being unaligned).
    fn hole(&self, addr: u64, len: u64) -> Option<u64> {
        let at = HOLE + addr % self.page;
        let limit = self
            .translation
            .lowest_child()
            .map_or(self.hole_limit, |low| low.min(self.hole_limit));
        (at.checked_add(self.page_up(len))? <= limit).then_some(at)
    }

    /// Maps a stand-in for each region of the snapshot (before the first marker): each run of
    /// neighbouring regions in one reservation, so that they stay neighbours; returns the ones
    /// that could not be made, with -errno.
    fn make_standins(&mut self, regions: &[Standin]) -> Vec<(usize, i64)> {
        let mut failed_ones = Vec::new();
        let mut i = 0;
        while i < regions.len() {
            let mut j = i + 1;
            while j < regions.len() && regions[j].start == regions[j - 1].end {
                j += 1;
            }
            let (start, end) = (regions[i].start, regions[j - 1].end);
            let reserve = |addr: u64, extra: u64| {
                raw(
                    libc::SYS_mmap,
                    [
                        addr,
                        end - start,
                        0,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra,
                        u64::MAX,
                        0,
                    ],
                )
            };
            let mut base = if self.same_addresses {
                reserve(start, MAP_FIXED_NOREPLACE)
            } else {
                -1
            };
            if failed(base) {
                base = reserve(0, 0);
            }
            if failed(base) {
                failed_ones.extend((i..j).map(|k| (k, base)));
                i = j;
                continue;
            }
            let base = base as u64;
            for (k, region) in regions.iter().enumerate().take(j).skip(i) {
                let at = base + (region.start - start);
                let len = region.end - region.start;
                let (fd, off, kind) = match region.file.and_then(|f| self.fds.get(f as usize)) {
                    Some(fd) => (*fd as u64, region.off, 0),
                    None => (u64::MAX, 0, MAP_ANONYMOUS),
                };
                let sharing = if region.shared {
                    MAP_SHARED
                } else {
                    MAP_PRIVATE
                };
                let flags = MAP_FIXED | MAP_NORESERVE | sharing | kind;
                let ret = raw(libc::SYS_mmap, [at, len, region.prot, flags, fd, off]);
                if failed(ret) {
                    raw(libc::SYS_munmap, [at, len, 0, 0, 0, 0]);
                    failed_ones.push((k, ret));
                } else {
                    self.translation.insert(region.start, region.end, at);
                }
            }
            i = j;
        }
        failed_ones
    }

    /// Where the recorded `[addr, addr + len)` is in the child. An unaligned `addr` (which the
    /// kernel refuses with EINVAL) resolves by the page it lies in, with its offset in that page:
    /// the call is still refused for being unaligned, at the address that stands for it.
    fn resolve(&self, addr: u64, len: u64) -> Resolved {
        let offset = addr % self.page;
        match self
            .translation
            .resolve(addr - offset, self.page_up(len.saturating_add(offset)))
        {
            Resolved::Whole(child) => Resolved::Whole(child + offset),
            other => other,
        }
    }

    /// Where a munmap, mprotect or mremap of the recorded `[addr, addr + len)` goes in the
    /// child: the range the replay made for it, or (for a call that failed when recorded) a
    /// range the child never maps; else why it is skipped.
    fn place(&self, addr: u64, len: u64, recorded_ok: bool) -> Result<(u64, How), How> {
        match self.resolve(addr, len) {
            Resolved::Whole(child) => Ok((child, How::Issued)),
            Resolved::Unknown if !recorded_ok => self
                .hole(addr, len)
                .map(|at| (at, How::IssuedOnHole))
                .ok_or(How::SkippedUnknownMemory),
            Resolved::Unknown => Err(How::SkippedUnknownMemory),
            Resolved::Partly => Err(How::SkippedPartly),
        }
    }

    fn execute(&mut self, op: &Op) -> Done {
        let recorded_ok = op.ret.is_some_and(|ret| !failed(ret));
        let start = Instant::now();
        let (how, issued, ret) = match op.call {
            Call::Mmap {
                addr,
                len,
                prot,
                flags,
                file,
                off,
            } => self.mmap(op, addr, len, prot, flags, file, off),
            Call::Munmap { addr, len } => {
                self.range_call(libc::SYS_munmap, addr, len, 0, recorded_ok)
            }
            Call::Mprotect { addr, len, prot } => {
                self.range_call(libc::SYS_mprotect, addr, len, prot, recorded_ok)
            }
            Call::Mremap {
                addr,
                old_len,
                new_len,
                flags,
                new_addr,
            } => self.mremap(op, addr, old_len, new_len, flags, new_addr),
            Call::Brk { addr } => self.brk(op, addr),
        };
        let dur_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Done {
            how,
            issued,
            ret,
            dur_ns,
            unpopulated: std::mem::take(&mut self.unpopulated),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the arguments of mmap")]
    fn mmap(
        &mut self,
        op: &Op,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        file: Option<u32>,
        off: u64,
    ) -> (How, Issued, i64) {
        let recorded_ok = op.ret.is_some_and(|ret| !failed(ret));
        let fd = if flags & MAP_ANONYMOUS != 0 {
            -1
        } else {
            file.and_then(|i| self.fds.get(i as usize).copied())
                .unwrap_or(-1)
        };
        let plen = self.page_up(len);
        let mut flags = flags;
        if flags & (MAP_POPULATE | MAP_LOCKED) != 0 {
            match self.populate_left.checked_sub(plen) {
                Some(left) => self.populate_left = left,
                None => {
                    flags &= !(MAP_POPULATE | MAP_LOCKED);
                    self.unpopulated = true;
                }
            }
        }
        let mut issued = Issued {
            addr,
            len,
            prot,
            flags,
            fd,
            off,
            ..Issued::default()
        };
        let call = |issued: &Issued| {
            raw(
                libc::SYS_mmap,
                [
                    issued.addr,
                    issued.len,
                    issued.prot,
                    issued.flags,
                    issued.fd as u64,
                    issued.off,
                ],
            )
        };
        let fixed = flags & MAP_FIXED != 0;
        let noreplace = flags & MAP_FIXED_NOREPLACE != 0;
        let resolved = self.translation.resolve(addr, plen);
        let (how, ret) = if fixed && !addr.is_multiple_of(self.page) {
            match self.hole(addr, len) {
                Some(at) => {
                    issued.addr = at;
                    (How::IssuedOnHole, call(&issued))
                }
                None => return (How::SkippedUnknownMemory, issued, 0),
            }
        } else if fixed || noreplace {
            if let Resolved::Whole(child) = resolved {
                issued.addr = child;
                (How::Issued, call(&issued))
            } else {
                // Never replace what the child did not make for the replay.
                issued.flags = (flags & !MAP_FIXED) | MAP_FIXED_NOREPLACE;
                let ret = call(&issued);
                if ret == -EEXIST && recorded_ok {
                    issued.flags = flags & !(MAP_FIXED | MAP_FIXED_NOREPLACE);
                    (How::FixedElsewhere, call(&issued))
                } else if fixed {
                    (How::FixedNoReplace, ret)
                } else {
                    (How::Issued, ret)
                }
            }
        } else {
            if let Resolved::Whole(child) = resolved {
                issued.addr = child;
            }
            match op.ret.filter(|_| self.same_addresses && recorded_ok) {
                Some(target)
                    if self.translation.resolve(target as u64, plen) == Resolved::Unknown =>
                {
                    let hint = issued.addr;
                    issued.addr = target as u64;
                    issued.flags = flags | MAP_FIXED_NOREPLACE;
                    let ret = call(&issued);
                    if failed(ret) {
                        issued.addr = hint;
                        issued.flags = flags;
                        (How::Elsewhere, call(&issued))
                    } else {
                        (How::SameAddress, ret)
                    }
                }
                _ => (How::Issued, call(&issued)),
            }
        };
        if let (false, Some(recorded)) = (failed(ret), op.ret.filter(|_| recorded_ok)) {
            let recorded = recorded as u64;
            self.translation
                .insert(recorded, recorded.saturating_add(plen), ret as u64);
        }
        (how, issued, ret)
    }

    /// munmap or mprotect.
    fn range_call(
        &mut self,
        nr: libc::c_long,
        addr: u64,
        len: u64,
        prot: u64,
        recorded_ok: bool,
    ) -> (How, Issued, i64) {
        let plen = self.page_up(len);
        let mut issued = Issued {
            addr,
            len,
            prot,
            ..Issued::default()
        };
        let how = match self.place(addr, len, recorded_ok) {
            Ok((at, how)) => {
                issued.addr = at;
                how
            }
            Err(skipped) => return (skipped, issued, 0),
        };
        let ret = raw(nr, [issued.addr, issued.len, issued.prot, 0, 0, 0]);
        // Gone in the child, whatever the recording says.
        if nr == libc::SYS_munmap && how == How::Issued && !failed(ret) {
            self.translation.remove(addr, addr.saturating_add(plen));
        }
        (how, issued, ret)
    }

    fn mremap(
        &mut self,
        op: &Op,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> (How, Issued, i64) {
        let recorded_ok = op.ret.is_some_and(|ret| !failed(ret));
        let mut issued = Issued {
            addr,
            len: old_len,
            flags,
            new_addr,
            new_len,
            ..Issued::default()
        };
        let (old_plen, new_plen) = (self.page_up(old_len), self.page_up(new_len));
        if flags & MREMAP_FIXED != 0 {
            match self.translation.resolve(new_addr, new_plen) {
                Resolved::Whole(child) => issued.new_addr = child,
                _ => return (How::SkippedRemapTarget, issued, 0),
            }
        }
        let how = match self.place(addr, old_len, recorded_ok) {
            Ok((at, how)) => {
                issued.addr = at;
                how
            }
            Err(skipped) => return (skipped, issued, 0),
        };
        let ret = raw(
            libc::SYS_mremap,
            [
                issued.addr,
                issued.len,
                issued.new_len,
                issued.flags,
                issued.new_addr,
                0,
            ],
        );
        // What the child did, whatever the recording says: the old range went away in the
        // child, and the new one stands for the recorded result when there is one.
        if how == How::Issued && !failed(ret) {
            if flags & MREMAP_DONTUNMAP == 0 && old_len != 0 {
                self.translation.remove(addr, addr.saturating_add(old_plen));
            }
            if let Some(recorded) = op.ret.filter(|_| recorded_ok) {
                let recorded = recorded as u64;
                self.translation
                    .insert(recorded, recorded.saturating_add(new_plen), ret as u64);
            }
        }
        (how, issued, ret)
    }

    fn brk(&mut self, op: &Op, addr: u64) -> (How, Issued, i64) {
        let mut issued = Issued {
            addr,
            ..Issued::default()
        };
        if addr != 0 {
            match self.rec_heap_base.filter(|base| addr >= *base) {
                Some(base) => issued.addr = self.heap_base + (addr - base),
                None => return (How::SkippedBrkBelow, issued, 0),
            }
        }
        let ret = raw(libc::SYS_brk, [issued.addr, 0, 0, 0, 0, 0]);
        // The replayed heap: recorded [base, break) is the child's [base, break) while both
        // breaks are the same distance from their bases.
        if let (Some(base), Some(recorded)) = (self.rec_heap_base, op.ret) {
            let (rec_start, child_start) = (self.page_up(base), self.page_up(self.heap_base));
            let rec_end = self.page_up(recorded as u64).max(rec_start);
            let child_end = self.page_up(ret as u64).max(child_start);
            if rec_end - rec_start == child_end - child_start {
                let old_end = self.rec_heap_end.unwrap_or(rec_start).max(rec_start);
                self.translation.remove(rec_start, old_end.max(rec_end));
                self.translation.insert(rec_start, rec_end, child_start);
                self.rec_heap_end = Some(rec_end);
            }
        }
        (How::Issued, issued, ret)
    }
}
