//! What the user reads: the line that says what is being recorded, and the final report.
use std::{process::ExitCode, time::Duration};

use mmap_format::metadata::{Counters, Targets};

use super::{config::RecordConfig, drain::Stop};
use crate::{
    output::Output,
    probes::AttachMode,
    sink::{SinkReport, WriteFailed},
};

/// Says what is recorded, where, and how it stops.
pub fn print_start(config: &RecordConfig, mode: AttachMode) {
    let program = config.program();
    let stacks = config
        .stacks
        .as_ref()
        .map(|plan| format!(", stacks: {}", plan.mode.name()))
        .unwrap_or_default();
    say!(
        "mmap-recorder: recording {} into {} (attach: {}{stacks}){}",
        describe_targets(program.as_deref(), config.targets()),
        config.output.path().display(),
        mode.name(),
        if program.is_some() {
            ""
        } else {
            "; Ctrl-C to stop"
        }
    );
}

fn describe_targets(program: Option<&str>, targets: &Targets) -> String {
    if targets.system_wide {
        return "every process".to_owned();
    }
    let mut parts = Vec::new();
    if let Some(program) = program {
        parts.push(program.to_owned());
    }
    if !targets.pids.is_empty() {
        let pids: Vec<String> = targets.pids.iter().map(u32::to_string).collect();
        parts.push(format!("pid {}", pids.join(", ")));
    }
    if !targets.comms.is_empty() {
        parts.push(format!("comm {}", targets.comms.join(", ")));
    }
    if !targets.cgroups.is_empty() {
        parts.push(format!("cgroup {}", targets.cgroups.join(", ")));
    }
    let follow = match (
        targets.follow_forks,
        program.is_some() as usize + targets.pids.len(),
    ) {
        (true, 1) => " and its new child processes",
        (true, 2..) => " and their new child processes",
        _ => "",
    };
    format!("{}{follow}", parts.join(" and "))
}

/// How a finished recording went.
pub struct Report {
    pub stop: Stop,
    /// What the writer thread wrote.
    pub written: SinkReport,
    /// The kernel's final counters and the drain's decode errors.
    pub counters: Counters,
    pub output: Output,
    pub recorded_for: Duration,
    /// (program, runs, total ns) with --prog-stats.
    pub prog_stats: Option<Vec<(&'static str, u64, u64)>>,
}

impl Report {
    pub fn print(&self) {
        let lost = Counters {
            decode_errors: self.counters.decode_errors + self.written.decode_errors,
            ..self.counters
        }
        .lost();
        say!(
            "mmap-recorder: {}, {lost} lost, {} orphan exits, {:.1}s ({})",
            written(&self.output, &self.written),
            self.counters.orphan_exits,
            self.recorded_for.as_secs_f64(),
            match &self.stop {
                Stop::Signal(name) => format!("stopped by {name}"),
                Stop::Duration => "duration reached".to_owned(),
                Stop::TargetsExited => "all targets exited".to_owned(),
                Stop::CommandExited(status) => format!("command exited: {status}"),
            }
        );
        if self.counters.follow_map_full > 0 {
            eprintln!(
                "mmap-recorder: {} new processes were not recorded: the map of followed processes \
                 was full (counted as follow_map_full in the capture)",
                self.counters.follow_map_full
            );
        }
        for (name, runs, ns) in self.prog_stats.iter().flatten() {
            say!(
                "mmap-recorder: program {name}: {runs} runs, {:.0} ns per run",
                *ns as f64 / (*runs).max(1) as f64
            );
        }
    }

    /// The command's status in the shell's convention (its code, or 128 + signal); success
    /// when there is no command.
    pub fn exit_code(&self) -> ExitCode {
        use std::os::unix::process::ExitStatusExt as _;
        let Stop::CommandExited(status) = self.stop else {
            return ExitCode::SUCCESS;
        };
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(code as u8),
            (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
            _ => ExitCode::FAILURE,
        }
    }
}

/// How many records were written where, and their size; with --keep, how many of them are in
/// the segments that remain and how many went with the older ones it deleted.
pub fn written(output: &Output, written: &SinkReport) -> String {
    let size = |bytes| bytesize::ByteSize::b(bytes).display().iec();
    let (dir, deleted) = match output {
        Output::File(path) => {
            return format!(
                "{} records written to {} ({})",
                written.rows,
                path.display(),
                size(written.bytes)
            );
        }
        Output::Dir { dir, .. } => (dir.display(), written.deleted),
    };
    let segments = match written.files.len() {
        1 => "1 segment".to_owned(),
        n => format!("{n} segments"),
    };
    if deleted.segments == 0 {
        return format!(
            "{} records written to {segments} in {dir} ({})",
            written.rows,
            size(written.bytes)
        );
    }
    format!(
        "{} records written, {} kept in {segments} in {dir} ({}), {} deleted ({} older removed \
         by --keep)",
        written.rows,
        written.rows_kept(),
        size(written.bytes_kept()),
        deleted.rows,
        deleted.segments
    )
}

/// What a write error left on disk: the complete files, and the one to recover.
pub fn kept_after_write_error(failed: &WriteFailed) -> String {
    let complete = match failed.finished.as_slice() {
        [] => "no complete capture file".to_owned(),
        [one] => format!("{} is complete", one.display()),
        [first, .., last] => format!(
            "{} complete segments ({} to {})",
            failed.finished.len(),
            first.display(),
            last.display()
        ),
    };
    match &failed.unfinished {
        Some(path) => format!(
            "stopped by a write error; {complete}; {} holds the rows flushed before the error: \
             `mmap-analyze recover {}` completes it (once there is room)",
            path.display(),
            path.display()
        ),
        None => format!("stopped by a write error; {complete}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::sink::Deleted;

    fn dir() -> Output {
        Output::Dir {
            dir: PathBuf::from("web/"),
            rotate_size: None,
            rotate_time: None,
            keep: Some(2),
            partition: Default::default(),
        }
    }

    #[test]
    fn the_report_says_how_many_rows_keep_deleted() {
        let mut sink = SinkReport {
            files: vec![PathBuf::from("a"), PathBuf::from("b")],
            rows: 5000,
            bytes: 4096,
            ..Default::default()
        };
        assert_eq!(
            written(&dir(), &sink),
            "5000 records written to 2 segments in web/ (4.0 KiB)"
        );
        sink.deleted = Deleted {
            segments: 3,
            rows: 3800,
            bytes: 3072,
        };
        assert_eq!(
            written(&dir(), &sink),
            "5000 records written, 1200 kept in 2 segments in web/ (1.0 KiB), 3800 deleted (3 \
             older removed by --keep)"
        );
        sink.files.pop();
        let file = Output::File(PathBuf::from("x.parquet"));
        assert_eq!(
            written(&file, &sink),
            "5000 records written to x.parquet (4.0 KiB)"
        );
    }
}
