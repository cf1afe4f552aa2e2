//! Recorded addresses to the rerun child's: the recorded ranges the replay made, each with the
//! child address that stands for its start.
//!
//! The child updates it between calls without allocating (a call in the middle of the replayed
//! ones could otherwise make a mapping of its own): the intervals live in one sorted `Vec`
//! reserved for the worst case (each call adds at most two intervals).

use super::protocol::Interval;

/// Where a recorded range is in the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// All of it, in one piece starting at this child address.
    Whole(u64),
    /// None of it was made by the replay.
    Unknown,
    /// Some of it, or all of it in pieces that are not contiguous in the child.
    Partly,
}

#[derive(Debug, Default)]
pub struct Translation {
    /// Sorted by `start`, never overlapping, never empty.
    intervals: Vec<Interval>,
}

impl Translation {
    /// Room for the intervals `calls` calls can make.
    pub fn with_capacity_for(calls: usize) -> Self {
        Self {
            intervals: Vec::with_capacity(calls.saturating_mul(2).saturating_add(16)),
        }
    }

    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// The first interval that ends after `addr`.
    fn first_after(&self, addr: u64) -> usize {
        self.intervals.partition_point(|iv| iv.end <= addr)
    }

    /// Where `[start, start + len)` is in the child; a `len` of 0 asks for the page at `start`.
    pub fn resolve(&self, start: u64, len: u64) -> Resolved {
        let end = start.saturating_add(len.max(1));
        let first = self.first_after(start);
        let Some(head) = self.intervals.get(first).filter(|iv| iv.start < end) else {
            return Resolved::Unknown;
        };
        if head.start > start {
            return Resolved::Partly;
        }
        let mut last = *head;
        for next in &self.intervals[first + 1..] {
            if last.end >= end {
                break;
            }
            let contiguous =
                next.start == last.end && next.child == last.child + (last.end - last.start);
            if !contiguous {
                return Resolved::Partly;
            }
            last = *next;
        }
        if last.end < end {
            return Resolved::Partly;
        }
        Resolved::Whole(head.child + (start - head.start))
    }

    /// Forgets the recorded range `[start, end)`.
    pub fn remove(&mut self, start: u64, end: u64) {
        let mut i = self.first_after(start);
        while let Some(iv) = self.intervals.get(i).copied() {
            if iv.start >= end {
                break;
            }
            let tail = (iv.end > end).then(|| Interval {
                start: end,
                end: iv.end,
                child: iv.child + (end - iv.start),
            });
            if iv.start < start {
                self.intervals[i].end = start;
                if let Some(tail) = tail {
                    self.intervals.insert(i + 1, tail);
                    break;
                }
                i += 1;
            } else if let Some(tail) = tail {
                self.intervals[i] = tail;
                break;
            } else {
                self.intervals.remove(i);
            }
        }
    }

    /// The recorded range `[start, end)` is now at `child` (whatever stood for it before is
    /// forgotten).
    pub fn insert(&mut self, start: u64, end: u64, child: u64) {
        if end <= start {
            return;
        }
        self.remove(start, end);
        let i = self.intervals.partition_point(|iv| iv.start < start);
        self.intervals.insert(i, Interval { start, end, child });
    }

    /// The lowest child address the replay uses.
    pub fn lowest_child(&self) -> Option<u64> {
        self.intervals.iter().map(|iv| iv.child).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start: u64, end: u64, child: u64) -> Interval {
        Interval { start, end, child }
    }

    #[test]
    fn a_range_inside_one_interval_resolves_to_its_offset() {
        let mut t = Translation::with_capacity_for(4);
        t.insert(0x1000, 0x5000, 0x9000);
        assert_eq!(t.resolve(0x2000, 0x1000), Resolved::Whole(0xa000));
        assert_eq!(t.resolve(0x1000, 0x4000), Resolved::Whole(0x9000));
        assert_eq!(t.resolve(0x4000, 0), Resolved::Whole(0xc000));
        assert_eq!(t.resolve(0x5000, 0x1000), Resolved::Unknown);
        assert_eq!(t.resolve(0x0, 0x1000), Resolved::Unknown);
        assert_eq!(t.resolve(0x0, 0x2000), Resolved::Partly);
        assert_eq!(t.resolve(0x4000, 0x2000), Resolved::Partly);
    }

    #[test]
    fn neighbours_resolve_together_only_when_contiguous_in_the_child_too() {
        let mut t = Translation::with_capacity_for(4);
        t.insert(0x1000, 0x2000, 0x9000);
        t.insert(0x2000, 0x3000, 0xa000);
        t.insert(0x3000, 0x4000, 0x20000);
        assert_eq!(t.resolve(0x1000, 0x2000), Resolved::Whole(0x9000));
        assert_eq!(t.resolve(0x1000, 0x3000), Resolved::Partly);
    }

    #[test]
    fn removing_the_middle_splits_and_inserting_over_replaces() {
        let mut t = Translation::with_capacity_for(4);
        t.insert(0x1000, 0x4000, 0x9000);
        t.remove(0x2000, 0x3000);
        assert_eq!(
            t.intervals(),
            [iv(0x1000, 0x2000, 0x9000), iv(0x3000, 0x4000, 0xb000)]
        );
        assert_eq!(t.resolve(0x2000, 0x1000), Resolved::Unknown);
        t.insert(0x1800, 0x3800, 0x50000);
        assert_eq!(
            t.intervals(),
            [
                iv(0x1000, 0x1800, 0x9000),
                iv(0x1800, 0x3800, 0x50000),
                iv(0x3800, 0x4000, 0xb800)
            ]
        );
        t.remove(0, u64::MAX);
        assert!(t.intervals().is_empty());
    }

    #[test]
    fn the_reserved_room_is_never_exceeded() {
        let calls = 100;
        let mut t = Translation::with_capacity_for(calls);
        let room = t.intervals.capacity();
        for i in 0..calls as u64 {
            // Each call inserts one region and splits another.
            t.insert(i * 0x10000, i * 0x10000 + 0x8000, 0x7000_0000 + i * 0x10000);
            if i > 0 {
                let prev = (i - 1) * 0x10000;
                t.remove(prev + 0x2000, prev + 0x3000);
            }
        }
        assert_eq!(t.intervals.capacity(), room);
    }
}
