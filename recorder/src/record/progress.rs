//! The live progress line on stderr: how long, how many records, the rate over the last second
//! (not an average since the start, which a start snapshot or a quiet start would skew), what
//! is lost, queued for the writer and written, and the segment being written.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use bytesize::ByteSize;

/// The span the rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The numbers of one progress line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Numbers {
    /// Records read from the kernel since recording was turned on (not snapshot rows).
    pub records_read: u64,
    /// Rows written (snapshot rows included).
    pub rows: u64,
    /// Records lost so far.
    pub lost: u64,
    /// Bytes waiting for the writer thread.
    pub queued_bytes: u64,
    /// Bytes in the capture files.
    pub written_bytes: u64,
    /// The segment being written.
    pub segment: u32,
}

/// The progress line's state: the start and the recent samples of the records read.
pub struct Progress {
    started: Instant,
    /// (when, records read), oldest first: the newest sample at least [`RATE_WINDOW`] old and
    /// every later one.
    samples: VecDeque<(Instant, u64)>,
    /// A directory output: the line names the segment.
    segmented: bool,
}

impl Progress {
    /// Starts counting when recording is turned on, with no records read.
    pub fn new(started: Instant, segmented: bool) -> Self {
        Self {
            started,
            samples: VecDeque::from([(started, 0)]),
            segmented,
        }
    }

    /// Records read per second over the last second (since the start during the first one).
    fn rate(&mut self, now: Instant, records_read: u64) -> f64 {
        while self
            .samples
            .get(1)
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let rate = match self.samples.front() {
            Some(&(at, read)) if now > at => {
                records_read.saturating_sub(read) as f64 / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.samples.push_back((now, records_read));
        rate
    }

    /// The line for `numbers` at `now`.
    pub fn line(&mut self, now: Instant, numbers: &Numbers) -> String {
        let secs = now.saturating_duration_since(self.started).as_secs_f64();
        let rate = self.rate(now, numbers.records_read);
        let segment = if self.segmented {
            format!("  segment {}", numbers.segment)
        } else {
            String::new()
        };
        format!(
            "recording {secs:>6.1}s  {:>10} records  {rate:>9.0}/s  {} lost  {} queued  {} \
             written{segment}",
            numbers.rows,
            numbers.lost,
            ByteSize::b(numbers.queued_bytes).display().iec(),
            ByteSize::b(numbers.written_bytes).display().iec(),
        )
    }
}

/// Draws `line` over the previous one.
pub fn show(line: &str) {
    say_part!("\r\x1b[2K{line}");
}

/// Clears the progress line before the final report.
pub fn clear() {
    say_part!("\r\x1b[2K");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_rate_is_over_the_last_second_not_since_the_start() {
        let t0 = Instant::now();
        let mut progress = Progress::new(t0, false);
        // The first half second: 500 records, 1000/s (not 500 over a near-zero time).
        assert_eq!(progress.rate(t0 + 500 * MS, 500), 1000.0);
        assert_eq!(progress.rate(t0 + 1000 * MS, 3000), 3000.0);
        // From here on, the last second only: (6000 - 500) records in 1.0 s.
        assert_eq!(progress.rate(t0 + 1500 * MS, 6000), 5500.0);
        // A quiet second after a busy one: the rate falls to zero.
        assert_eq!(progress.rate(t0 + 2000 * MS, 6000), 3000.0);
        assert_eq!(progress.rate(t0 + 2500 * MS, 6000), 0.0);
        assert_eq!(progress.rate(t0 + 3000 * MS, 6000), 0.0);
        // A late tick (a stalled drain): measured over the time that really passed.
        assert_eq!(progress.rate(t0 + 5000 * MS, 10_000), 2000.0);
        // Old samples are dropped, not kept for the whole recording.
        assert!(progress.samples.len() <= 3, "{:?}", progress.samples);
    }

    #[test]
    fn the_rate_at_the_start_is_zero_not_infinite() {
        let t0 = Instant::now();
        let mut progress = Progress::new(t0, false);
        assert_eq!(progress.rate(t0, 100), 0.0);
    }

    #[test]
    fn the_line_shows_queued_and_written_bytes_and_the_segment_of_a_directory() {
        let t0 = Instant::now();
        let numbers = Numbers {
            records_read: 4000,
            rows: 4321,
            lost: 7,
            queued_bytes: 3 << 20,
            written_bytes: 1536,
            segment: 4,
        };
        let line = Progress::new(t0, true).line(t0 + 2000 * MS, &numbers);
        assert_eq!(
            line,
            "recording    2.0s        4321 records       2000/s  7 lost  3.0 MiB queued  1.5 KiB \
             written  segment 4"
        );
        let line = Progress::new(t0, false).line(t0 + 2000 * MS, &numbers);
        assert!(line.ends_with("1.5 KiB written"), "{line}");
        // Nothing written yet says so, in bytes.
        let nothing = Numbers::default();
        let line = Progress::new(t0, false).line(t0 + 100 * MS, &nothing);
        assert!(line.contains("0 B queued  0 B written"), "{line}");
    }
}
