//! `mmap-recorder record`, in phases that each read alone:
//!
//! 1. [`args`]: the command line as clap parses it;
//! 2. [`config`]: the options checked against each other and the machine, before any work;
//! 3. [`recording`]: set-up (load, attach), start (writer, snapshots, command), run (the
//!    [`drain`] until something stops it), finish (shut down in order, close the capture);
//! 4. [`report`]: what the user reads.
use std::process::ExitCode;

mod args;
mod config;
mod drain;
mod recording;
mod report;

pub use args::RecordArgs;

use self::{config::RecordConfig, recording::Recording};

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let config = RecordConfig::check(args)?;
    let mut recording = Recording::set_up(config)?;
    let stopped = recording.start().and_then(|()| recording.run());
    let report = recording.finish(stopped)?;
    report.print();
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use mmap_format::{event::RowKind, journal::journal_path, reader::CaptureReader};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RecordArgs,
    }

    /// The command cannot start (no such program): that is found out at its release, after the
    /// writer started, and the capture is still closed with what was recorded (the start
    /// snapshot) before the error is returned.
    #[test]
    #[ignore = "needs root"]
    fn an_error_after_the_writer_started_still_closes_the_capture() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("capture.parquet");
        let own_pid = std::process::id().to_string();
        let cli = Cli::try_parse_from([
            "record".as_ref(),
            "-o".as_ref(),
            path.as_os_str(),
            "--pid".as_ref(),
            own_pid.as_ref(),
            "--quiet".as_ref(),
            "--".as_ref(),
            dir.path().join("no-such-program").as_os_str(),
        ])
        .expect("arguments");
        let err = run(cli.args).expect_err("the command cannot start");
        assert!(format!("{err:#}").contains("cannot start"), "{err:#}");
        assert!(!journal_path(&path).exists(), "the capture was not closed");
        let reader = CaptureReader::open(&path).expect("a complete capture");
        let snapshots = reader
            .events()
            .expect("rows")
            .filter(|row| row.as_ref().is_ok_and(|row| row.kind == RowKind::Snapshot))
            .count();
        assert!(snapshots > 0, "the start snapshot is in the capture");
    }
}
