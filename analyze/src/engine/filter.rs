//! The rows a command works on: the options every command that reads rows shares (`--pid`,
//! `--comm`, `--syscall`, `--since`, `--until`, `--where`), turned into one SQL predicate that
//! the engine pushes down to the Parquet reader.

use arrow::{
    array::{Array as _, AsArray as _, RecordBatch},
    datatypes::Int64Type,
};
use datafusion::{
    common::tree_node::TreeNodeRecursion,
    logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator},
    sql::sqlparser::{
        dialect::GenericDialect,
        parser::{Parser, ParserError},
        tokenizer::Token,
    },
};
use mmap_format::{
    event::{RowKind, Syscall},
    reader::CaptureReader,
    schema::col,
};

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

    /// The filter as one SQL predicate over `relation` (`None`: every row): a table or view of
    /// `engine`, or a parenthesized query over one. A `--where` is first planned alone against
    /// `relation` ([`check`]), so an error in it is a [`WrongPredicate`] that says where in the
    /// `--where` it is, not where in the query built around it. Times are resolved against
    /// `span`; a time outside the capture is warned about.
    pub fn sql(
        &self,
        engine: &Engine,
        relation: &str,
        span: &Span,
    ) -> anyhow::Result<Option<String>> {
        let predicate = self.resolve(span)?;
        if let Some(own) = &self.predicate {
            check(engine, relation, own)?;
        }
        Ok(predicate)
    }

    /// ` WHERE ...` for [`RowFilter::sql`], or nothing.
    pub fn where_clause(
        &self,
        engine: &Engine,
        relation: &str,
        span: &Span,
    ) -> anyhow::Result<String> {
        Ok(self
            .sql(engine, relation, span)?
            .map(|predicate| format!(" WHERE {predicate}"))
            .unwrap_or_default())
    }

    /// The filter as one SQL predicate, unchecked against any table.
    fn resolve(&self, span: &Span) -> anyhow::Result<Option<String>> {
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
                terms.push(format!("{} {op} {}", col::TS, timestamp(time.ns)));
            }
        }
        if let Some(predicate) = &self.predicate {
            terms.push(format!("({})", one_expression(predicate)?));
        }
        Ok((!terms.is_empty()).then(|| terms.join(" AND ")))
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

/// Checks that `predicate` is one SQL expression that holds over the rows of `relation`: plans
/// it alone on its own line, so that an error in it (a column that does not exist, a function
/// given the wrong types) is a [`WrongPredicate`] located in the predicate rather than in the
/// query built around it.
pub fn check(engine: &Engine, relation: &str, predicate: &str) -> anyhow::Result<()> {
    let predicate = one_expression(predicate)?;
    let query = format!("SELECT * FROM {relation} WHERE\n{predicate}\nLIMIT 0");
    let planned = engine
        .sql(&query)
        .and_then(|mut batches| batches.try_for_each(|batch| batch.map(drop)));
    match planned {
        Ok(()) => Ok(()),
        Err(err @ EngineError::Query(_)) => Err(WrongPredicate(located(&err.to_string())).into()),
        Err(err) => Err(err.into()),
    }
}

/// The message for a --where that [`check`] refused: the engine's `message`, its
/// positions (`at line 2, column 7`, `at Line: 2, Column: 7`) replaced by one place in the
/// predicate.
fn located(message: &str) -> String {
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
        Some(place) => format!("{text} ({place})"),
        None => text,
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

/// `column IN (a, b, ...)`.
fn in_list(column: &str, values: impl Iterator<Item = String>) -> String {
    format!("{column} IN ({})", values.collect::<Vec<_>>().join(", "))
}

/// `text` as an SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `ns` since the epoch as an SQL timestamp literal of the type of `ts`.
pub fn timestamp(ns: i64) -> String {
    format!("arrow_cast({ns}, 'Timestamp(Nanosecond, Some(\"UTC\"))')")
}

impl Engine {
    /// Where the captures start and end: the files' metadata, the first row, and the last time
    /// a row records (its `ts`, or its `ts_exit`: a call's exit, the end of a loss window).
    /// Read from the row groups' statistics when every file has them, from one aggregate over
    /// the two columns otherwise.
    pub fn span(&self, inputs: &[CaptureReader]) -> Result<Span, EngineError> {
        let mut span = Span::of_files(inputs);
        let (first, last) = match bounds_from_statistics(inputs) {
            Some(bounds) => bounds,
            None => self.bounds_from_rows()?,
        };
        span.first_row = first;
        if let Some(last) = last {
            span.end = span.end.max(last);
        }
        Ok(span)
    }

    /// The least `ts` and the greatest `ts` or `ts_exit` of the rows of `events`.
    fn bounds_from_rows(&self) -> Result<(Option<i64>, Option<i64>), EngineError> {
        let query = format!(
            "SELECT CAST(min({ts}) AS BIGINT) AS first, \
             CAST(greatest(max({ts}), max({exit})) AS BIGINT) AS last FROM events",
            ts = col::TS,
            exit = col::TS_EXIT,
        );
        let (mut first, mut last) = (None, None);
        for batch in self.sql(&query)? {
            let batch: RecordBatch = batch?;
            let column = |index: usize| {
                let values = batch.column(index).as_primitive::<Int64Type>();
                (!values.is_empty() && values.is_valid(0)).then(|| values.value(0))
            };
            first = first.or(column(0));
            last = last.or(column(1));
        }
        Ok((first, last))
    }
}

/// [`Engine::bounds_from_rows`] from the files' footers, when every file has the statistics.
fn bounds_from_statistics(inputs: &[CaptureReader]) -> Option<(Option<i64>, Option<i64>)> {
    let (mut first, mut last) = (None::<i64>, None::<i64>);
    for reader in inputs {
        let min = reader.min_ts_ns()?;
        if reader.num_rows() > 0 {
            first = Some(first.map_or(min, |first| first.min(min)));
        }
        if let Some(max) = reader.max_time_ns()? {
            last = Some(last.map_or(max, |last| last.max(max)));
        }
    }
    Some((first, last))
}

/// Columns whose equality picks few rows of a capture: a process, a thread, a stack, a file, a
/// thread name, an address.
const ID_COLUMNS: &[&str] = &[
    col::PID,
    col::TID,
    col::PPID,
    col::CHILD_PID,
    col::NS_PID,
    col::NS_TID,
    col::STACK_ID,
    col::FILE_INO,
    col::FILE_PATH,
    col::FILE_NAME,
    col::COMM,
    col::ADDR,
];

/// Whether a filter of `plan` keeps only the rows of some ids: a conjunct `pid = 42`,
/// `comm IN ('java', 'node')`, or an `OR` each side of which does (`pid = 42 OR (kind =
/// 'fork' AND child_pid = 42)`). Such a filter keeps few rows, the case where decoding its
/// columns first pays ([`Engine::plan`]).
pub fn picks_by_id(plan: &LogicalPlan) -> bool {
    let mut found = false;
    // The closure never fails.
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::Filter(filter) => found |= keeps_ids(&filter.predicate),
            // A view's own filter (`lifecycle`: the forks, execs and exits).
            LogicalPlan::TableScan(scan) => {
                if let Some(view) = scan.source.get_logical_plan() {
                    found |= picks_by_id(&view);
                }
            }
            _ => {}
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

fn keeps_ids(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => keeps_ids(left) || keeps_ids(right),
            Operator::Or => keeps_ids(left) && keeps_ids(right),
            Operator::Eq => {
                (id_column(left) && constant(right))
                    || (constant(left) && id_column(right))
                    || (kind_column(left) && rare_kind(right))
                    || (rare_kind(left) && kind_column(right))
            }
            _ => false,
        },
        Expr::InList(list) => {
            !list.negated
                && ((id_column(&list.expr) && list.list.iter().all(constant))
                    || (kind_column(&list.expr) && list.list.iter().all(rare_kind)))
        }
        _ => false,
    }
}

/// The `kind` column.
fn kind_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(column) if column.name == col::KIND)
}

/// A row kind other than `syscall`, the kind of nearly every row: forks, execs, exits, lost
/// windows, frames, snapshots are few beside the calls.
fn rare_kind(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(value, _) => value
            .try_as_str()
            .flatten()
            .is_some_and(|kind| kind != RowKind::Syscall.as_str()),
        _ => false,
    }
}

fn id_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(column) => ID_COLUMNS.contains(&column.name.as_str()),
        Expr::Cast(cast) => id_column(&cast.expr),
        Expr::TryCast(cast) => id_column(&cast.expr),
        _ => false,
    }
}

fn constant(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(..) => true,
        Expr::Cast(cast) => constant(&cast.expr),
        Expr::TryCast(cast) => constant(&cast.expr),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(query: &str) -> bool {
        let schema = arrow::datatypes::Schema::new(
            [col::PID, col::CHILD_PID, col::LEN]
                .map(|name| {
                    arrow::datatypes::Field::new(name, arrow::datatypes::DataType::UInt32, true)
                })
                .into_iter()
                .chain([
                    arrow::datatypes::Field::new(col::KIND, arrow::datatypes::DataType::Utf8, true),
                    arrow::datatypes::Field::new(col::COMM, arrow::datatypes::DataType::Utf8, true),
                ])
                .collect::<Vec<_>>(),
        );
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_batch("t", RecordBatch::new_empty(std::sync::Arc::new(schema)))
            .expect("table");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime
            .block_on(ctx.sql("CREATE VIEW forks AS SELECT * FROM t WHERE kind = 'fork'"))
            .expect("view");
        let plan = runtime
            .block_on(ctx.state().create_logical_plan(query))
            .expect("plan");
        picks_by_id(&plan)
    }

    #[test]
    fn late_materialization_is_for_filters_that_pick_ids() {
        assert!(picks("SELECT * FROM t WHERE pid = 42"));
        assert!(picks("SELECT * FROM t WHERE 42 = pid AND len > 5"));
        assert!(picks(
            "SELECT * FROM t WHERE (pid = 42 OR (kind = 'fork' AND child_pid = 42)) \
             AND kind <> 'snapshot'"
        ));
        assert!(picks(
            "SELECT count(*) FROM t WHERE comm IN ('java', 'node')"
        ));
        assert!(picks(
            "SELECT * FROM (SELECT * FROM t WHERE pid = 1) s WHERE len > 0"
        ));
        assert!(!picks("SELECT * FROM t"));
        assert!(!picks(
            "SELECT * FROM t WHERE kind = 'syscall' AND len >= 1048576"
        ));
        assert!(!picks("SELECT * FROM t WHERE pid = 42 OR len > 5"));
        assert!(!picks("SELECT * FROM t WHERE pid <> 42"));
        assert!(!picks("SELECT * FROM t WHERE pid NOT IN (1, 2)"));
        assert!(!picks("SELECT * FROM t WHERE pid = child_pid"));
        // The forks, the lost windows and one process (`maps`' first pass).
        assert!(picks(
            "SELECT * FROM t WHERE kind IN ('fork', 'lost') OR pid = 42"
        ));
        assert!(picks("SELECT * FROM t WHERE kind = 'exec'"));
        assert!(picks("SELECT count(*) FROM forks"));
        assert!(!picks("SELECT * FROM t WHERE kind = 'syscall'"));
        assert!(!picks("SELECT * FROM t WHERE kind IN ('fork', 'syscall')"));
    }

    fn span() -> Span {
        Span {
            capture_start: 1_000,
            first_row: Some(2_000),
            end: 10_000,
        }
    }

    #[test]
    fn a_wrong_predicate_is_located_in_it() {
        assert_eq!(
            located("column 'lenn' not found at line 2, column 13; possible column calls.len"),
            "column 'lenn' not found; possible column calls.len (at column 13 of --where)"
        );
        assert_eq!(
            located(
                "Expected: end of statement, found: ) at Line: 2, Column: 4 at line 2, column 4"
            ),
            "Expected: end of statement, found: ) (at column 4 of --where)"
        );
        assert_eq!(
            located("Expected: an expression, found: LIMIT at Line: 3, Column: 1"),
            "Expected: an expression, found: LIMIT (at the end of --where)"
        );
        assert_eq!(located("at line x"), "at line x");
    }

    #[test]
    fn no_option_is_no_predicate() {
        let filter = RowFilter::default();
        assert!(!filter.is_set());
        assert_eq!(filter.resolve(&span()).expect("resolves"), None);
    }

    #[test]
    fn a_predicate_is_one_expression() {
        let filter = |predicate: &str| RowFilter {
            predicate: Some(predicate.to_owned()),
            ..RowFilter::default()
        };
        let sql = |predicate: &str| filter(predicate).resolve(&span());
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
            filter.resolve(&span()).expect("resolves"),
            Some(format!(
                "pid IN (1, 2) AND comm IN ('it''s') AND syscall IN ('mmap', 'munmap') AND {} \
                 AND {} AND (len > 4096 OR fd = -1)",
                ts(">=", 2_500),
                ts("<=", 9_000)
            ))
        );
    }
}
