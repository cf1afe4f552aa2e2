//! The rows a command works on: the options every command that reads rows shares (`--pid`,
//! `--comm`, `--syscall`, `--since`, `--until`, `--where`), turned into one SQL predicate that
//! the engine pushes down to the Parquet reader.

use arrow::{
    array::{Array as _, AsArray as _, RecordBatch},
    datatypes::Int64Type,
};
use datafusion::sql::sqlparser::{
    dialect::GenericDialect,
    parser::{Parser, ParserError},
    tokenizer::Token,
};
use mmap_format::{event::Syscall, reader::CaptureReader, schema::col};

use super::{Engine, EngineError};
use crate::{
    cli, output,
    timespec::{Span, TimeSpec},
};

/// Which rows a command reads. Options combine with AND; an option given several times matches
/// any of its values.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RowFilter {
    /// Only rows of this process id (repeat for several).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,

    /// Only rows of threads with exactly this name (repeat for several; the kernel keeps 15
    /// bytes of a name).
    #[arg(long, value_name = "NAME")]
    pub comm: Vec<String>,

    /// Only calls of this system call (repeat for several).
    #[arg(long, value_name = "NAME", value_parser = cli::one_of::<Syscall>(
        Syscall::ALL.map(|s| clap::builder::PossibleValue::new(s.as_str()))))]
    pub syscall: Vec<Syscall>,

    /// Only rows at or after this time (RFC 3339, a time of day, +DURATION from the start,
    /// -DURATION before the end; see `events --help`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<TimeSpec>,

    /// Only rows at or before this time.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<TimeSpec>,

    /// Only rows for which this SQL predicate is true, e.g. "len > 1048576 AND fd = -1". It may
    /// use every column of the `calls` view (docs/ANALYZE.md, "SQL") and the functions
    /// prot_names, flags_names and errno_name.
    #[arg(long = "where", value_name = "SQL")]
    pub predicate: Option<String>,
}

impl RowFilter {
    /// Whether any option narrows the rows.
    pub fn is_set(&self) -> bool {
        !(self.pid.is_empty()
            && self.comm.is_empty()
            && self.syscall.is_empty()
            && self.since.is_none()
            && self.until.is_none()
            && self.predicate.is_none())
    }

    /// The filter as one SQL predicate over `events` or any of its views (`None`: every row).
    /// Times are resolved against `span`; a time outside the capture is warned about.
    pub fn sql(&self, span: &Span) -> anyhow::Result<Option<String>> {
        let mut terms = Vec::new();
        if !self.pid.is_empty() {
            terms.push(in_list(col::PID, self.pid.iter().map(u32::to_string)));
        }
        if !self.comm.is_empty() {
            terms.push(in_list(col::COMM, self.comm.iter().map(|c| literal(c))));
        }
        if !self.syscall.is_empty() {
            let names = self.syscall.iter().map(|s| literal(s.as_str()));
            terms.push(in_list(col::SYSCALL, names));
        }
        for (option, spec, op) in [("--since", self.since, ">="), ("--until", self.until, "<=")] {
            if let Some(spec) = spec {
                let time = spec
                    .resolve(span)
                    .map_err(|err| anyhow::anyhow!("{option} {err}"))?;
                if let Some(warning) = time.warning {
                    output::warn(&format!("{option} {warning}"));
                }
                terms.push(format!(
                    "{} {op} arrow_cast({}, 'Timestamp(Nanosecond, Some(\"UTC\"))')",
                    col::TS,
                    time.ns
                ));
            }
        }
        if let Some(predicate) = &self.predicate {
            terms.push(format!("({})", one_expression(predicate)?));
        }
        Ok((!terms.is_empty()).then(|| terms.join(" AND ")))
    }

    /// `WHERE ...` for [`RowFilter::sql`], or nothing.
    pub fn where_clause(&self, span: &Span) -> anyhow::Result<String> {
        Ok(self
            .sql(span)?
            .map(|predicate| format!(" WHERE {predicate}"))
            .unwrap_or_default())
    }
}

/// A `--where` that is not one SQL expression: a syntax error, or more than an expression
/// (`1=1) OR (1=1` would escape the other filters it is put beside).
#[derive(Debug, thiserror::Error)]
#[error("--where: {0}")]
pub struct WrongPredicate(String);

/// `predicate` when it parses as exactly one SQL expression.
fn one_expression(predicate: &str) -> Result<&str, WrongPredicate> {
    let dialect = GenericDialect {};
    let wrong = |err: ParserError| WrongPredicate(err.to_string());
    let mut parser = Parser::new(&dialect)
        .try_with_sql(predicate)
        .map_err(wrong)?;
    parser.parse_expr().map_err(wrong)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(WrongPredicate(format!(
            "not one expression: it goes on with {} at column {}",
            next.token, next.span.start.column
        )));
    }
    Ok(predicate)
}

/// `column IN (a, b, ...)`.
fn in_list(column: &str, values: impl Iterator<Item = String>) -> String {
    format!("{column} IN ({})", values.collect::<Vec<_>>().join(", "))
}

/// `text` as an SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Engine {
    /// Where the captures start and end: the files' metadata, the first row, and the last time
    /// a row takes effect ([`crate::replay::effect_time`]: a system call's exit, any other row's
    /// time), from one aggregate over three columns instead of a read of every row.
    pub fn span(&self, inputs: &[CaptureReader]) -> Result<Span, EngineError> {
        let mut span = Span::of_files(inputs);
        let query = format!(
            "SELECT CAST(min({ts}) AS BIGINT) AS first, CAST(max(CASE WHEN {kind} = 'syscall' \
             THEN coalesce({exit}, {ts}) ELSE {ts} END) AS BIGINT) AS last FROM events",
            ts = col::TS,
            exit = col::TS_EXIT,
            kind = col::KIND,
        );
        for batch in self.sql(&query)? {
            let batch: RecordBatch = batch?;
            let column = |index: usize| {
                let values = batch.column(index).as_primitive::<Int64Type>();
                (!values.is_empty() && values.is_valid(0)).then(|| values.value(0))
            };
            if let Some(first) = column(0) {
                span.first_row = Some(first);
            }
            if let Some(last) = column(1) {
                span.end = span.end.max(last);
            }
        }
        Ok(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            capture_start: 1_000,
            first_row: Some(2_000),
            end: 10_000,
        }
    }

    #[test]
    fn no_option_is_no_predicate() {
        let filter = RowFilter::default();
        assert!(!filter.is_set());
        assert_eq!(filter.sql(&span()).expect("resolves"), None);
        assert_eq!(filter.where_clause(&span()).expect("resolves"), "");
    }

    #[test]
    fn a_predicate_is_one_expression() {
        let filter = |predicate: &str| RowFilter {
            predicate: Some(predicate.to_owned()),
            ..RowFilter::default()
        };
        let sql = |predicate: &str| filter(predicate).sql(&span());
        assert_eq!(
            sql("len > 1 AND comm = ')'").expect("one expression"),
            Some("(len > 1 AND comm = ')')".to_owned())
        );
        for wrong in ["1=1) OR (1=1", "len >", "len > 1; DROP TABLE x", ""] {
            let err = sql(wrong).expect_err(wrong);
            assert!(
                err.downcast_ref::<WrongPredicate>().is_some(),
                "{wrong}: {err}"
            );
            assert!(err.to_string().starts_with("--where: "), "{err}");
        }
    }

    #[test]
    fn options_combine_with_and_and_values_with_in() {
        let filter = RowFilter {
            pid: vec![1, 2],
            comm: vec!["it's".to_owned()],
            syscall: vec![Syscall::Mmap, Syscall::Munmap],
            since: Some(TimeSpec::AfterStart(500)),
            until: Some(TimeSpec::Absolute(9_000)),
            predicate: Some("len > 4096 OR fd = -1".to_owned()),
        };
        assert!(filter.is_set());
        let ts = |op: &str, ns: i64| {
            format!("ts {op} arrow_cast({ns}, 'Timestamp(Nanosecond, Some(\"UTC\"))')")
        };
        assert_eq!(
            filter.sql(&span()).expect("resolves"),
            Some(format!(
                "pid IN (1, 2) AND comm IN ('it''s') AND syscall IN ('mmap', 'munmap') AND {} \
                 AND {} AND (len > 4096 OR fd = -1)",
                ts(">=", 2_500),
                ts("<=", 9_000)
            ))
        );
    }
}
