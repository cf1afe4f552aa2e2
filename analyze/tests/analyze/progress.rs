//! Progress on stderr: on a terminal only, and cleared before the command ends.

use std::process::Command;

use super::common::{self, Fixture};

/// Runs `mmap-analyze ARGS > out` under `script`, which gives it a terminal for stderr, and
/// returns what the terminal showed.
fn on_a_terminal(fx: &Fixture, args: &str) -> String {
    let shown = fx.path("terminal.txt");
    let command = format!(
        "{} {args} > {}",
        common::bin(),
        fx.path("out.txt").display()
    );
    let status = Command::new("script")
        .args(["--quiet", "--return", "--command", &command])
        .arg(&shown)
        .env("MMAP_ANALYZE_PROGRESS_DELAY_MS", "0")
        // indicatif draws nothing on a terminal without TERM (or TERM=dumb).
        .env("TERM", "xterm")
        .status()
        .expect("run script (util-linux)");
    assert!(status.success(), "{command}: {status}");
    std::fs::read_to_string(&shown).expect("read what the terminal showed")
}

#[test]
fn a_query_shows_progress_on_a_terminal_and_clears_it() {
    let fx = Fixture::new();
    let capture = &fx.a;
    // A cross join that takes a few steps of the progress line.
    let query = "SELECT count(DISTINCT a.len + b.pid + c.tid) FROM events a, events b, events c";
    let shown = on_a_terminal(&fx, &format!("sql {} '{query}'", capture.display()));
    assert!(
        shown.contains("mmap-analyze: querying 1 file: "),
        "no progress line: {shown:?}"
    );
    // The line is erased at the end (ESC [2K after a carriage return).
    assert!(
        shown.contains("\r\u{1b}[2K"),
        "the line is not cleared: {shown:?}"
    );
    let out = std::fs::read_to_string(fx.path("out.txt")).expect("read the results");
    assert!(out.starts_with("count(DISTINCT"), "{out}");

    // Without a terminal (every other test), stderr stays empty.
    let output = common::run(["sql".as_ref(), capture.as_os_str(), query.as_ref()]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
