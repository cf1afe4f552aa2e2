//! What the commands over the `calls` view share: the inputs opened into an engine with the row
//! filter turned into a predicate, the ways to group calls, and the exit status of a query.

use std::{
    io::{self, IsTerminal as _},
    process::ExitCode,
};

use anyhow::anyhow;

use crate::{
    cli::Inputs,
    engine::{Engine, EngineError, filter::RowFilter},
    input,
    output::{self, EXIT_QUERY},
    timespec::Span,
};

/// An engine over the inputs, and the calls a command reads.
pub struct Calls {
    pub engine: Engine,
    /// ` WHERE ...` for the row filter, or nothing.
    where_clause: String,
    /// Whether the row filter narrows the calls.
    filtered: bool,
}

impl Calls {
    /// Opens `inputs` and resolves `filter` (the capture's span is read only when a time needs
    /// it). A --where that is not one valid predicate gives `Ok(Err(message))`, the message
    /// pointing into the predicate.
    fn open(inputs: &Inputs, filter: &RowFilter) -> anyhow::Result<Result<Self, String>> {
        let readers = input::open(inputs)?;
        let engine = Engine::open(&readers)?;
        if let Some(predicate) = &filter.predicate {
            match check_predicate(&engine, predicate) {
                Err(err @ EngineError::Query(_)) => {
                    return Ok(Err(wrong_predicate(&err.to_string())));
                }
                Err(err) => return Err(err.into()),
                Ok(()) => {}
            }
        }
        let span = if filter.since.is_some() || filter.until.is_some() {
            engine.span(&readers)?
        } else {
            Span::of_files(&readers)
        };
        Ok(Ok(Self {
            engine,
            where_clause: filter.where_clause(&span)?,
            filtered: filter.is_set(),
        }))
    }

    /// ` WHERE ...` for the row filter, or nothing: `FROM calls{where_clause}`.
    pub fn where_clause(&self) -> &str {
        &self.where_clause
    }
}

/// Runs a command over the calls of `inputs` that `filter` selects: `write` queries and writes
/// the results and returns how many rows it wrote. The exit status is 0 (with a note on a
/// terminal when the filter matched nothing), 1 for a wrong query (a bad `--where`), else the
/// error's.
pub fn run(
    inputs: &Inputs,
    filter: &RowFilter,
    write: impl FnOnce(&Calls) -> Result<usize, EngineError>,
) -> anyhow::Result<ExitCode> {
    let calls = match Calls::open(inputs, filter)? {
        Ok(calls) => calls,
        Err(message) => {
            return Ok(output::report_error_as(&anyhow!(message), EXIT_QUERY));
        }
    };
    match write(&calls) {
        Ok(rows) => {
            if rows == 0 && calls.filtered && io::stderr().is_terminal() {
                output::note("no calls matched the filter");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ EngineError::Query(_)) => Ok(output::report_error_as(&err.into(), EXIT_QUERY)),
        Err(err) => Err(err.into()),
    }
}

/// Plans `predicate` alone on its own line, so that an error in it (a column that does not
/// exist, a parenthesis that closes more than it opened) can be located in the predicate rather
/// than in the query built around it.
fn check_predicate(engine: &Engine, predicate: &str) -> Result<(), EngineError> {
    let query = format!("SELECT * FROM calls WHERE\n{predicate}\nLIMIT 0");
    engine
        .sql(&query)
        .and_then(|mut batches| batches.try_for_each(|batch| batch.map(drop)))
}

/// The message for a --where that [`check_predicate`] refused: the engine's `message`, its
/// positions (`at line 2, column 7`, `at Line: 2, Column: 7`) replaced by one place in the
/// predicate.
fn wrong_predicate(message: &str) -> String {
    let lower = message.to_lowercase();
    let mut text = String::new();
    let mut place = None;
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(" at line") {
        let start = rest + found;
        let Some((line, column, end)) = position(&lower[start + " at line".len()..]) else {
            text.push_str(&message[rest..start + 1]);
            rest = start + 1;
            continue;
        };
        text.push_str(&message[rest..start]);
        place.get_or_insert(if line <= 2 {
            format!("at column {column} of --where")
        } else {
            "at the end of --where".to_owned()
        });
        rest = start + " at line".len() + end;
    }
    text.push_str(&message[rest..]);
    match place {
        Some(place) => format!("--where: {text} ({place})"),
        None => format!("--where: {text}"),
    }
}

/// ` 2, column 7` or `: 2, column: 7` at the start of `text`: the line, the column and where
/// the position ends in `text`.
fn position(text: &str) -> Option<(u64, u64, usize)> {
    let number = |text: &str| -> Option<(u64, usize)> {
        let skipped = text.len() - text.trim_start_matches([':', ' ']).len();
        let digits = text[skipped..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        let value = text[skipped..skipped + digits].parse().ok()?;
        Some((value, skipped + digits))
    };
    let (line, used) = number(text)?;
    let rest = text[used..].strip_prefix(", column")?;
    let column_at = text.len() - rest.len();
    let (column, used) = number(rest)?;
    Some((line, column, column_at + used))
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
    fn a_wrong_predicate_is_located_in_it() {
        assert_eq!(
            wrong_predicate(
                "column 'lenn' not found at line 2, column 13; possible column calls.len"
            ),
            "--where: column 'lenn' not found; possible column calls.len (at column 13 of --where)"
        );
        assert_eq!(
            wrong_predicate(
                "Expected: end of statement, found: ) at Line: 2, Column: 4 at line 2, column 4"
            ),
            "--where: Expected: end of statement, found: ) (at column 4 of --where)"
        );
        assert_eq!(
            wrong_predicate("Expected: an expression, found: LIMIT at Line: 3, Column: 1"),
            "--where: Expected: an expression, found: LIMIT (at the end of --where)"
        );
        assert_eq!(wrong_predicate("at line x"), "--where: at line x");
    }

    #[test]
    fn groups_share_their_key_columns() {
        assert_eq!(
            key_columns(&[Group::Process, Group::Comm, Group::Syscall]),
            [("pid", "pid"), ("comm", "comm"), ("syscall", "syscall")]
        );
    }
}
