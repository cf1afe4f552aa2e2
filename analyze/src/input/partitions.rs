//! Hive-style partition trees among the inputs (`DIR/host=H/date=YYYY-MM-DD/*.parquet`): the
//! values a path gives must agree with the file ([`check`]), and a `--where` on partition
//! columns alone leaves out the files it rules out before they are even opened ([`prune`]).

use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

use arrow::{
    array::{Array as _, ArrayRef, AsArray as _, RecordBatch, StringArray},
    datatypes::{DataType, Field, Schema},
};
use datafusion::{
    common::{DFSchema, Result},
    logical_expr::{Expr, utils::split_conjunction},
    prelude::SessionContext,
};
use mmap_format::{partition, reader::CaptureReader, schema};

use crate::{
    engine::{
        tables::{self, CAPTURE_ID, DATE, FILE, HOST},
        udf, views,
    },
    table,
};

/// A file's path must agree with its metadata: a `host=` directory names the host the capture
/// records, a `date=` directory a day (`YYYY-MM-DD`). One line naming the file otherwise.
pub fn check(readers: &[CaptureReader]) -> anyhow::Result<()> {
    for reader in readers {
        let path = reader.path();
        for (column, value) in tables::partition_values(path) {
            let Some(value) = value else { continue };
            if column == HOST && value != reader.metadata().hostname {
                anyhow::bail!(
                    "{}: its directory says host={} but the capture was recorded on host {:?}; \
                     a partition directory must agree with the files in it",
                    path.display(),
                    table::visible(&value),
                    table::visible(&reader.metadata().hostname)
                );
            }
            if column == DATE && !partition::is_date(&value) {
                anyhow::bail!(
                    "{}: its directory says date={}, which is not a day (YYYY-MM-DD)",
                    path.display(),
                    table::visible(&value)
                );
            }
        }
    }
    Ok(())
}

/// Leaves out of `files` those whose partition values make `predicate` (a `--where`) false or
/// NULL: each conjunct (`a AND b AND ...`) that uses partition columns only is evaluated on
/// the values of each file's path. `host` comes from the metadata, so a conjunct on it is used
/// only for the files whose path has a `host=` directory. Returns how many were left out;
/// whatever cannot be decided this way (a conjunct that does not plan, or an error) leaves the
/// files in, for the query to filter.
pub fn prune(files: &mut Vec<PathBuf>, predicate: &str) -> usize {
    let values: Vec<Vec<(String, Option<String>)>> =
        files.iter().map(|f| tables::partition_values(f)).collect();
    if values.iter().all(Vec::is_empty) {
        return 0;
    }
    let keep = match kept(&values, predicate) {
        Ok(keep) => keep,
        Err(_) => return 0,
    };
    let before = files.len();
    let mut flags = keep.into_iter();
    files.retain(|_| flags.next().unwrap_or(true));
    before - files.len()
}

/// For each file's partition `values`, whether the partition-only conjuncts of `predicate`
/// keep it.
fn kept(values: &[Vec<(String, Option<String>)>], predicate: &str) -> Result<Vec<bool>> {
    let mut columns: Vec<String> = vec![HOST.to_owned(), DATE.to_owned()];
    for (column, _) in values.iter().flatten() {
        if !columns.contains(column) {
            columns.push(column.clone());
        }
    }
    let ctx = SessionContext::new();
    for function in udf::all() {
        ctx.register_udf(function);
    }
    // Every column a --where may name, so that it plans; the partition columns are Utf8.
    let mut fields: Vec<Field> = schema::schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend([CAPTURE_ID, FILE].map(|c| Field::new(c, DataType::Utf8, true)));
    fields.extend(
        views::DERIVED
            .iter()
            .map(|(c, t)| Field::new(*c, t.clone(), true)),
    );
    fields.extend(columns.iter().map(|c| Field::new(c, DataType::Utf8, true)));
    let all = DFSchema::try_from(Schema::new(fields))?;
    let expr = ctx.parse_sql_expr(predicate, &all)?;

    let partition_schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|column| {
            let array: StringArray = values
                .iter()
                .map(|file| {
                    file.iter()
                        .find(|(c, _)| c == column)
                        .and_then(|(_, v)| v.clone())
                })
                .collect();
            Arc::new(array) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&partition_schema), arrays)?;
    let partition_df = DFSchema::try_from(partition_schema.as_ref().clone())?;
    let names: BTreeSet<&str> = columns.iter().map(String::as_str).collect();

    let mut keep = vec![true; values.len()];
    for conjunct in split_conjunction(&expr) {
        let refs = conjunct.column_refs();
        if refs.is_empty() || !refs.iter().all(|c| names.contains(c.name.as_str())) {
            continue;
        }
        let uses_host = refs.iter().any(|c| c.name == HOST);
        let Ok(result) = evaluate(&ctx, conjunct, &partition_df, &batch) else {
            continue;
        };
        for (i, file) in values.iter().enumerate() {
            // The host of a file without a host= directory is known only once it is opened.
            let host_known = file.iter().any(|(c, v)| c == HOST && v.is_some());
            if uses_host && !host_known {
                continue;
            }
            if !(result.is_valid(i) && result.value(i)) {
                keep[i] = false;
            }
        }
    }
    Ok(keep)
}

/// `conjunct` on each row of `batch`.
fn evaluate(
    ctx: &SessionContext,
    conjunct: &Expr,
    schema: &DFSchema,
    batch: &RecordBatch,
) -> Result<arrow::array::BooleanArray> {
    let physical = ctx.create_physical_expr(conjunct.clone(), schema)?;
    let value = physical.evaluate(batch)?.into_array(batch.num_rows())?;
    match value.data_type() {
        DataType::Boolean => Ok(value.as_boolean().clone()),
        other => Err(datafusion::error::DataFusionError::Plan(format!(
            "not a condition: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<PathBuf> {
        [
            "t/host=a/date=2026-12-01/1.parquet",
            "t/host=a/date=2026-12-02/2.parquet",
            "t/date=2026-12-01/3.parquet",
            "t/4.parquet",
        ]
        .map(PathBuf::from)
        .to_vec()
    }

    /// The files `predicate` keeps, by their number.
    fn kept_by(predicate: &str) -> Vec<String> {
        let mut files = files();
        prune(&mut files, predicate);
        files
            .iter()
            .map(|f| {
                f.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn only_conjuncts_on_partition_columns_prune_and_only_what_they_know() {
        assert_eq!(kept_by("date = '2026-12-01'"), ["1", "3"]);
        assert_eq!(kept_by("date = '2026-12-01' AND len > 5"), ["1", "3"]);
        assert_eq!(kept_by("date >= '2026-12-02' OR date IS NULL"), ["2", "4"]);
        // Not a partition-only conjunct: decided by the query, not here.
        assert_eq!(
            kept_by("date = '2026-12-01' OR len > 5"),
            ["1", "2", "3", "4"]
        );
        // host is known from the path only where it has host=.
        assert_eq!(kept_by("host = 'b'"), ["3", "4"]);
        assert_eq!(kept_by("host = 'a' AND date = '2026-12-02'"), ["2"]);
        // What does not plan leaves every file in, for the query to report.
        assert_eq!(kept_by("no_such_column = 1"), ["1", "2", "3", "4"]);
        assert_eq!(kept_by("date = "), ["1", "2", "3", "4"]);
        assert_eq!(kept_by("prot_names(prot) = 'x'"), ["1", "2", "3", "4"]);
    }
}
