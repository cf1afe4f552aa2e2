//! Boot-time to wall-clock anchors.
//!
//! The kernel stamps records with `bpf_ktime_get_boot_ns` (CLOCK_BOOTTIME: monotonic, counts
//! suspend). An anchor pairs a CLOCK_BOOTTIME reading with a CLOCK_REALTIME reading taken around
//! it, so `wall = boot + (realtime - boottime)`; the uncertainty is half the time the pair took.
use mmap_format::metadata::ClockAnchor;

fn now_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// CLOCK_BOOTTIME now, in ns: the clock of the kernel's record timestamps.
pub fn boot_ns() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME) as u64
}

/// CLOCK_REALTIME now, in ns since the Unix epoch.
pub fn realtime_ns() -> i64 {
    now_ns(libc::CLOCK_REALTIME)
}

/// Takes the tightest of a few realtime/boottime/realtime readings.
pub fn anchor() -> ClockAnchor {
    let mut best: Option<ClockAnchor> = None;
    for _ in 0..5 {
        let before = realtime_ns();
        let boot = boot_ns();
        let after = realtime_ns();
        let spread = (after - before).max(0) as u64;
        let candidate = ClockAnchor {
            boot_ns: boot,
            realtime_ns: before + (after - before) / 2,
            uncertainty_ns: spread.div_ceil(2),
        };
        if best.is_none_or(|b| candidate.uncertainty_ns < b.uncertainty_ns) {
            best = Some(candidate);
        }
    }
    best.unwrap_or(ClockAnchor {
        boot_ns: boot_ns(),
        realtime_ns: realtime_ns(),
        uncertainty_ns: u64::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_converts_boot_time_to_now() {
        let a = anchor();
        assert!(a.uncertainty_ns < 1_000_000, "{a:?}");
        let wall = a.boot_to_wall_ns(boot_ns());
        let now = realtime_ns();
        assert!((now - wall).abs() < 50_000_000, "wall {wall} vs now {now}");
    }
}
