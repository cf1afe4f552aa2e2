//! Progress on stderr for work that takes more than a second, and only when stderr is a
//! terminal: scripts and pipes see nothing, and a quick command never flickers.
//!
//! The line says what is being done, for how long, and how far it got (rows so far, with a
//! percentage when the total is known). It is cleared when the work ends, so the command's own
//! output and messages follow on a clean line.

use std::{
    io::{self, IsTerminal as _},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work shorter than this shows no progress.
const DELAY: Duration = Duration::from_secs(1);
/// Sets the delay in ms instead of [`DELAY`] (the tests use 0 to see the line without a slow
/// query).
const DELAY_ENV: &str = "MMAP_ANALYZE_PROGRESS_DELAY_MS";
/// How often the line is redrawn at most.
const REFRESH_HZ: u8 = 4;

/// A progress line that appears once the work has taken [`DELAY`].
pub struct Progress {
    started: Instant,
    delay: Duration,
    what: String,
    /// Rows in all, when known.
    total: Option<u64>,
    /// False when stderr is not a terminal: nothing is ever drawn.
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress of `what` (e.g. "querying 3 files"), out of `total` rows when known.
    pub fn new(what: impl Into<String>, total: Option<u64>) -> Self {
        let delay = std::env::var(DELAY_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(DELAY, Duration::from_millis);
        Self {
            started: Instant::now(),
            delay,
            what: what.into(),
            total,
            enabled: io::stderr().is_terminal(),
            bar: None,
        }
    }

    /// Says that `done` rows are done so far; draws the line once the delay has passed.
    pub fn update(&mut self, done: u64) {
        if !self.enabled || self.started.elapsed() < self.delay {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                let bar = bar(&self.what, self.total).with_elapsed(self.started.elapsed());
                bar.set_position(done);
                // Drawn at once when it appears (a manual tick does nothing once the steady
                // tick runs), then redrawn by the steady tick so the time moves on.
                bar.tick();
                bar.enable_steady_tick(Duration::from_millis(1000 / u64::from(REFRESH_HZ)));
                self.bar = Some(bar);
            }
        }
    }

    /// Clears the line and draws no more.
    pub fn stop(&mut self) {
        self.enabled = false;
        self.finish();
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn bar(what: &str, total: Option<u64>) -> ProgressBar {
    let template = if total.is_some() {
        "mmap-analyze: {msg}: {elapsed} {wide_bar} {percent}% ({human_pos}/{human_len} rows)"
    } else {
        "mmap-analyze: {msg}: {elapsed} {spinner} {human_pos} rows so far"
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner());
    let target = ProgressDrawTarget::stderr_with_hz(REFRESH_HZ);
    ProgressBar::with_draw_target(total, target)
        .with_style(style)
        .with_message(crate::table::visible(what).into_owned())
}
