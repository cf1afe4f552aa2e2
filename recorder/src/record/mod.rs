//! `mmap-recorder record`, in phases that each read alone:
//!
//! 1. [`args`]: the command line as clap parses it;
//! 2. [`config`]: the options checked against each other and the machine, before any work;
//! 3. [`recording`]: set-up (load, attach), start (writer, recording on, snapshots, command),
//!    run (the [`drain`] until something stops it, with the [`progress`] line), finish (shut
//!    down in order, close the capture, or remove it when it failed before its first row);
//! 4. [`report`]: what the user reads.
use std::process::ExitCode;

mod args;
mod config;
mod drain;
mod progress;
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
    use std::{ffi::OsStr, path::Path};

    use clap::Parser;
    use mmap_format::{event::RowKind, journal::journal_path, reader::CaptureReader};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RecordArgs,
    }

    /// `record ARGS -o OUTPUT -- sh ARG`, with an argument longer than exec accepts (E2BIG):
    /// a command that passes the check before the start and fails only at its exec, after the
    /// writer started.
    fn args_with_a_command_exec_refuses(args: &[&str], output: &Path) -> RecordArgs {
        let too_long = "x".repeat(256 << 10);
        let mut argv: Vec<&OsStr> = ["record", "-q", "-o"].map(OsStr::new).to_vec();
        argv.push(output.as_os_str());
        argv.extend(args.iter().map(OsStr::new));
        argv.extend(["--", "sh", &too_long].map(OsStr::new));
        Cli::try_parse_from(argv).expect("arguments").args
    }

    /// The command cannot start (exec refuses it): that is found out at its release, after the
    /// writer started, and the capture is still closed with what was recorded (the start
    /// snapshot) before the error is returned.
    #[test]
    #[ignore = "needs root"]
    fn an_error_after_the_writer_started_still_closes_the_capture() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("capture.parquet");
        let own_pid = std::process::id().to_string();
        let args = args_with_a_command_exec_refuses(&["--pid", &own_pid], &path);
        let err = run(args).expect_err("the command cannot start");
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

    /// The same failure with the command as the only target: nothing was recorded yet, so the
    /// file, its journal and the directories the recorder made are all removed.
    #[test]
    #[ignore = "needs root"]
    fn a_failure_before_the_first_row_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        for output in [dir.path().join("e.parquet"), dir.path().join("new/dir/")] {
            let args = args_with_a_command_exec_refuses(&[], &output);
            let err = run(args).expect_err("the command cannot start");
            assert!(format!("{err:#}").contains("cannot start sh"), "{err:#}");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .expect("read_dir")
                .map(|entry| entry.expect("entry").path())
                .collect();
            assert!(
                left.is_empty(),
                "{}: left behind {left:?}",
                output.display()
            );
        }
    }
}

/// `record --stacks` end to end through the writer (root).
#[cfg(test)]
mod stack_tests;
