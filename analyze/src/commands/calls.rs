//! What the commands over the `calls` view share: the inputs opened into an engine with the row
//! filter turned into a predicate, and the ways to group calls.

use std::{
    io::{self, IsTerminal as _},
    process::ExitCode,
};

use mmap_format::{event::sources, reader::CaptureReader};

use crate::{
    cli::Inputs,
    engine::{Engine, EngineError, filter::RowFilter},
    input, output,
    timespec::Span,
};

/// An engine over the inputs, and the calls a command reads.
pub struct Calls {
    pub engine: Engine,
    /// ` WHERE ...` for the row filter, or nothing.
    where_clause: String,
    /// Whether the row filter narrows the calls.
    filtered: bool,
    /// Input files recorded with `--attach tracepoint-exit`, whose calls have no duration.
    exit_only_files: usize,
}

impl Calls {
    /// Opens `inputs` and resolves `filter` (the capture's span is read only when a time needs
    /// it). A --where that is not one valid predicate over `calls` is a
    /// [`crate::engine::filter::WrongPredicate`] that points into it.
    fn open(inputs: &Inputs, filter: &RowFilter) -> anyhow::Result<Self> {
        Self::over(&input::open(inputs)?, filter)
    }

    /// [`Calls::open`] for inputs already opened.
    pub fn over(readers: &[CaptureReader], filter: &RowFilter) -> anyhow::Result<Self> {
        let engine = Engine::open(readers)?;
        let span = if filter.since.is_some() || filter.until.is_some() {
            engine.span(readers)?
        } else {
            Span::of_files(readers)
        };
        let where_clause = filter.where_clause(&engine, "calls", &span)?;
        let exit_only_files = readers
            .iter()
            .filter(|r| sources::exit_only(&r.metadata().attach_mode))
            .count();
        Ok(Self {
            engine,
            where_clause,
            filtered: filter.is_set(),
            exit_only_files,
        })
    }

    /// Says on stderr that calls of files recorded at their exit only have no duration (for the
    /// commands about durations).
    pub fn note_exit_only(&self) {
        if self.exit_only_files > 0 {
            output::note(&format!(
                "{} input file(s) recorded with --attach tracepoint-exit: their calls have no \
                 duration",
                self.exit_only_files
            ));
        }
    }

    /// Whether the row filter narrows the calls.
    pub fn filtered(&self) -> bool {
        self.filtered
    }

    /// ` WHERE ...` for the row filter, or nothing: `FROM calls{where_clause}`.
    pub fn where_clause(&self) -> &str {
        &self.where_clause
    }
}

/// Runs a command over the calls of `inputs` that `filter` selects: `write` queries and writes
/// the results and returns how many rows it wrote. On a terminal, a filter that matched nothing
/// is noted.
pub fn run(
    inputs: &Inputs,
    filter: &RowFilter,
    write: impl FnOnce(&Calls) -> Result<usize, EngineError>,
) -> anyhow::Result<ExitCode> {
    let calls = Calls::open(inputs, filter)?;
    let rows = write(&calls)?;
    if rows == 0 && calls.filtered && io::stderr().is_terminal() {
        output::note("no calls matched the filter");
    }
    Ok(ExitCode::SUCCESS)
}

/// How calls are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Group {
    /// By process: pid and thread name (`comm`) together.
    Process,
    /// By thread name (`comm`), across processes.
    Comm,
    /// By mapped file: `file_path`, else `file_name`, else `[anon]` (anonymous mmaps and the
    /// calls that name no file: munmap, mprotect, brk, most mremaps).
    File,
    /// By system call.
    Syscall,
    /// By cgroup: `cgroup_path`, else the cgroup id.
    Cgroup,
}

impl Group {
    /// The `(SQL expression, column name)` of each column of the group's key.
    pub fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Process => &[("pid", "pid"), ("comm", "comm")],
            Self::Comm => &[("comm", "comm")],
            Self::File => &[("coalesce(file_path, file_name, '[anon]')", "file")],
            Self::Syscall => &[("syscall", "syscall")],
            Self::Cgroup => &[(
                "coalesce(cgroup_path, CAST(cgroup_id AS VARCHAR))",
                "cgroup",
            )],
        }
    }
}

/// The key columns of `groups` (each once, in order): `(SQL expression, column name)`.
pub fn key_columns(groups: &[Group]) -> Vec<(&'static str, &'static str)> {
    let mut columns: Vec<(&str, &str)> = Vec::new();
    for column in groups.iter().flat_map(|group| group.columns()) {
        if !columns.contains(column) {
            columns.push(*column);
        }
    }
    columns
}

/// `expr AS name, ...` for a SELECT list.
pub fn select_list(columns: &[(&str, &str)]) -> String {
    columns
        .iter()
        .map(|(expr, name)| format!("{expr} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `expr, ...` for a GROUP BY list.
pub fn group_list(columns: &[(&str, &str)]) -> String {
    columns
        .iter()
        .map(|(expr, _)| *expr)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_their_key_columns() {
        assert_eq!(
            key_columns(&[Group::Process, Group::Comm, Group::Syscall]),
            [("pid", "pid"), ("comm", "comm"), ("syscall", "syscall")]
        );
    }
}
