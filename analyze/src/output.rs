//! Standard output and the one-line error report.
//!
//! Output goes through a buffered, locked stdout. A reader that goes away (`mmap-analyze ... | head`)
//! makes a write fail with `BrokenPipe`; that is a normal end, not an error, so it exits 0 silently.

use std::{
    io::{self, BufWriter, StdoutLock, Write},
    process::ExitCode,
};

use mmap_format::FormatError;
use serde::Serialize;

use crate::engine::{EngineError, filter::WrongPredicate};

/// Exit status for every other error: usage errors (clap uses 2 too), unreadable or invalid
/// inputs.
pub const EXIT_ERROR: u8 = 2;

/// Buffered, locked standard output.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Writes `value` as one pretty-printed JSON object and a newline.
pub fn write_json_pretty(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}
/// Exit status when a query or a `--where` is wrong (the inputs were fine).
pub const EXIT_QUERY: u8 = 1;

/// Prints `mmap-analyze: <message>` as one line on stderr and returns exit status 1 when the
/// query (or `--where`) is wrong, else 2, or returns 0 without printing anything when the error
/// is a broken pipe on stdout.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    let wrong_query = err.chain().any(|cause| {
        cause.is::<WrongPredicate>() || matches!(cause.downcast_ref(), Some(EngineError::Query(_)))
    });
    report_error_as(err, if wrong_query { EXIT_QUERY } else { EXIT_ERROR })
}

/// [`report_error`] with exit status `code`.
fn report_error_as(err: &anyhow::Error, code: u8) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    // A capture error is printed exactly as the format library words it (it names the path);
    // anything else with its chain of causes.
    let message = match err.downcast_ref::<FormatError>() {
        Some(format_err) => format_err.to_string(),
        None => format!("{err:#}"),
    };
    // Whatever the message, it stays one line.
    let message = crate::table::visible(&message.split_whitespace().collect::<Vec<_>>().join(" "))
        .into_owned();
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "mmap-analyze: {message}");
    ExitCode::from(code)
}

/// Prints `mmap-analyze: note: <message>` as one line on stderr.
pub fn note(message: &str) {
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(
        io::stderr().lock(),
        "mmap-analyze: note: {}",
        crate::table::visible(message)
    );
}

/// Prints `mmap-analyze: warning: <message>` as one line on stderr.
pub fn warn(message: &str) {
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(
        io::stderr().lock(),
        "mmap-analyze: warning: {}",
        crate::table::visible(message)
    );
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Turns a CSV error into the I/O error underneath when there is one, so a broken pipe is seen.
pub fn csv_to_io(err: csv::Error) -> io::Error {
    if err.is_io_error() {
        match err.into_kind() {
            csv::ErrorKind::Io(io_err) => io_err,
            other => io::Error::other(format!("{other:?}")),
        }
    } else {
        io::Error::other(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_through_context() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&err));
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(&err));
    }

    #[test]
    fn csv_io_error_keeps_its_kind() {
        let err = csv::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(csv_to_io(err).kind(), io::ErrorKind::BrokenPipe);
    }
}
