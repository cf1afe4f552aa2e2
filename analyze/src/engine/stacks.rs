//! User call stacks (format 1.4) in SQL: the views `frames` and `stacks` over `events`, and the
//! function `folded_name` that makes a frame's name fit a flame-graph line.
//!
//! | view     | rows                                   | columns                                      |
//! |----------|----------------------------------------|----------------------------------------------|
//! | `frames` | `frame` rows: one per frame of a stack | `stack_id`, `frame_index`, `frame_*`, `name` |
//! | `stacks` | one per stack and input file           | `stack_id`, `frames`, `folded`, ...          |
//!
//! A `syscall` row's `stack_id` names its stack; ids are unique within one recording
//! (`capture_id`), and each segment holds the frames of every stack its calls use, so `calls`
//! joins `stacks` (or `frames`) on `capture_id` and `stack_id` (a stack used in two segments has
//! a row in each: join on `file` too, or group the stacks by `capture_id, stack_id` first).

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use arrow::{
    array::{Array as _, ArrayRef, AsArray as _, RecordBatch, StringBuilder},
    compute::cast,
    datatypes::{DataType, UInt64Type},
};
use datafusion::{
    common::{Result, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
    prelude::SessionContext,
};
use mmap_format::{event::RowKind, schema::col};
use serde::Serialize;

use super::{
    Engine, EngineError,
    lazy::Tables,
    tables::{CAPTURE_ID, DATE, EVENTS, FILE, HOST},
};

/// The view of frame rows.
pub const FRAMES: &str = "frames";
/// The view of stacks, one row per stack and input file.
pub const STACKS: &str = "stacks";
/// The SQL function that escapes a frame name for a folded line ([`folded_name`]).
pub const FOLDED_NAME: &str = "folded_name";
/// What a folded line shows for a stack whose frame rows are not in the inputs (a recording
/// killed before its segment's frame rows were written).
pub const FRAMES_MISSING: &str = "[frames missing]";

/// A frame's name as one frame of a folded line (`main;outer;inner;mmap 123`): `;` (which would
/// split the frame) written `\u{3b}`, control characters (a newline would end the line, an
/// escape sequence would reach the terminal) written as visible escapes such as `\n` or
/// `\u{1b}`. Other text, spaces included, is kept: flame-graph tools take the count after the
/// last space.
pub fn folded_name(name: &str) -> Cow<'_, str> {
    if !name.chars().any(|c| c == ';' || c.is_control()) {
        return Cow::Borrowed(name);
    }
    let mut escaped = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if c == ';' {
            escaped.push_str("\\u{3b}");
        } else if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// The format's frame columns (1.4), in schema order: the first columns of `frames`.
pub const FRAME_COLUMNS: [&str; 10] = [
    col::STACK_ID,
    col::FRAME_INDEX,
    col::FRAME_ADDR,
    col::FRAME_MODULE,
    col::FRAME_BUILD_ID,
    col::FRAME_OFFSET,
    col::FRAME_FUNCTION,
    col::FRAME_FILE,
    col::FRAME_LINE,
    col::SYMBOL_SOURCE,
];

/// The `name` column of `frames`: the function, else `MODULE+0xOFFSET` (the module's file name),
/// else `0xADDR`.
const NAME: &str = "coalesce(\
     nullif(frame_function, ''), \
     regexp_replace(frame_module, '^.*/', '') || '+0x' || to_hex(frame_offset), \
     '0x' || to_hex(frame_addr))";

/// Registers `folded_name` and defines the views `frames` and `stacks` over `events`
/// (registered before), which has the partition columns `partitions` besides `host` and `date`.
pub fn define(ctx: &SessionContext, tables: &Tables, partitions: &[String]) {
    ctx.register_udf(ScalarUDF::new_from_impl(FoldedName::new()));
    // Quoted: a partition column may be named like an SQL keyword (`order=1/`).
    let input: Vec<String> = [CAPTURE_ID, HOST, FILE, DATE]
        .into_iter()
        .chain(partitions.iter().map(String::as_str))
        .map(|name| format!("\"{name}\""))
        .collect();
    let input = input.join(", ");
    let frames = format!(
        "SELECT {columns}, {NAME} AS name, {pid}, {comm}, {source}, \
         {input} FROM {EVENTS} WHERE {kind} = '{frame}'",
        columns = FRAME_COLUMNS.join(", "),
        pid = col::PID,
        comm = col::COMM,
        source = col::SOURCE,
        kind = col::KIND,
        frame = RowKind::Frame.as_str(),
    );
    let stacks = format!(
        "SELECT {stack_id}, min({pid}) AS {pid}, count(*) AS frames, \
         max(CASE WHEN {frame_index} = 0 THEN name END) AS leaf_function, \
         max(CASE WHEN {frame_index} = 1 THEN name END) AS caller_function, \
         string_agg({FOLDED_NAME}(name), ';' ORDER BY {frame_index} DESC) AS folded, \
         min({source}) AS {source}, {input} \
         FROM {FRAMES} GROUP BY {stack_id}, {input}",
        stack_id = col::STACK_ID,
        pid = col::PID,
        frame_index = col::FRAME_INDEX,
        source = col::SOURCE,
    );
    // Planned as views, not run as `CREATE VIEW` (which plans an empty result too).
    for (name, view) in [(FRAMES, frames), (STACKS, stacks)] {
        tables.define(
            name,
            Box::new(move |ctx| {
                let view = view.clone();
                Box::pin(async move { ctx.sql(&view).await })
            }),
        );
    }
}

/// One frame of a stack, as `events --stacks` and `stacks --format json` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Frame {
    pub index: Option<u64>,
    pub addr: Option<u64>,
    pub module: Option<String>,
    pub build_id: Option<String>,
    pub offset: Option<u64>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub symbol_source: Option<String>,
    /// The `name` column of `frames`.
    pub name: String,
}

impl Frame {
    /// `#1 inner (src/app.c:12)`, or `#1 libapp.so+0x1a2b` when not named.
    pub fn line(&self) -> String {
        let mut line = format!("#{} {}", self.index.unwrap_or(0), self.name);
        match (&self.file, self.line) {
            (Some(file), Some(number)) => line.push_str(&format!(" ({file}:{number})")),
            (Some(file), None) => line.push_str(&format!(" ({file})")),
            _ => {}
        }
        line
    }
}

/// The frames of every stack of the inputs, innermost first, by recording (`capture_id`) and
/// stack id.
pub type StackFrames = HashMap<(Option<String>, u64), Vec<Frame>>;

/// Reads every frame of the inputs of `engine` (a stack in several segments once).
pub fn frames(engine: &Engine) -> Result<StackFrames, EngineError> {
    let query = format!(
        "SELECT DISTINCT {CAPTURE_ID}, {columns}, name FROM {FRAMES} \
         WHERE {stack_id} IS NOT NULL ORDER BY {CAPTURE_ID}, {stack_id}, {frame_index}",
        columns = FRAME_COLUMNS.join(", "),
        stack_id = col::STACK_ID,
        frame_index = col::FRAME_INDEX,
    );
    let mut stacks = StackFrames::new();
    for batch in engine.sql(&query)? {
        let batch = batch?;
        let capture = text_column(&batch, 0)?;
        let stack = u64_column(&batch, 1)?;
        let [index, addr] = [u64_column(&batch, 2)?, u64_column(&batch, 3)?];
        let [module, build_id] = [text_column(&batch, 4)?, text_column(&batch, 5)?];
        let offset = u64_column(&batch, 6)?;
        let [function, file] = [text_column(&batch, 7)?, text_column(&batch, 8)?];
        let line = u64_column(&batch, 9)?;
        let [symbol_source, name] = [text_column(&batch, 10)?, text_column(&batch, 11)?];
        for row in 0..batch.num_rows() {
            let Some(stack) = stack[row] else { continue };
            stacks
                .entry((capture[row].clone(), stack))
                .or_default()
                .push(Frame {
                    index: index[row],
                    addr: addr[row],
                    module: module[row].clone(),
                    build_id: build_id[row].clone(),
                    offset: offset[row],
                    function: function[row].clone(),
                    file: file[row].clone(),
                    line: line[row],
                    symbol_source: symbol_source[row].clone(),
                    name: name[row].clone().unwrap_or_default(),
                });
        }
    }
    Ok(stacks)
}

fn arrow_error(err: arrow::error::ArrowError) -> EngineError {
    EngineError::Query(err.into())
}

/// Column `i` of `batch` as unsigned integers (NULL: None).
pub fn u64_column(batch: &RecordBatch, i: usize) -> Result<Vec<Option<u64>>, EngineError> {
    let array = cast(batch.column(i), &DataType::UInt64).map_err(arrow_error)?;
    Ok(array.as_primitive::<UInt64Type>().iter().collect())
}

/// Column `i` of `batch` as text (NULL: None).
pub fn text_column(batch: &RecordBatch, i: usize) -> Result<Vec<Option<String>>, EngineError> {
    let array = cast(batch.column(i), &DataType::Utf8).map_err(arrow_error)?;
    Ok(array
        .as_string::<i32>()
        .iter()
        .map(|text| text.map(str::to_owned))
        .collect())
}

/// `folded_name(text)`: [`folded_name`] of each value, NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FoldedName {
    signature: Signature,
}

impl FoldedName {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FoldedName {
    fn name(&self) -> &str {
        FOLDED_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [given] if given.is_null() || is_text(given) => Ok(vec![DataType::Utf8]),
            [given] => plan_err!("{FOLDED_NAME} takes text where it was given {given}"),
            _ => plan_err!("{FOLDED_NAME} takes 1 argument, got {}", arg_types.len()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [names] = arrays.as_slice() else {
            return exec_err!("{FOLDED_NAME} takes 1 argument");
        };
        let Some(names) = names.as_string_opt::<i32>() else {
            return exec_err!("{FOLDED_NAME}: expected text, got {}", names.data_type());
        };
        let mut escaped = StringBuilder::with_capacity(names.len(), names.value_data().len());
        for name in names {
            match name {
                Some(name) => escaped.append_value(folded_name(name)),
                None => escaped.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(escaped.finish()) as ArrayRef))
    }
}

/// Whether a value of `data_type` is text (or a dictionary of text).
fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folded_name_keeps_one_frame_on_one_line() {
        assert_eq!(
            folded_name("std::vector<int>::push_back"),
            "std::vector<int>::push_back"
        );
        assert_eq!(
            folded_name("operator new(unsigned long)"),
            "operator new(unsigned long)"
        );
        assert_eq!(folded_name("a;b"), "a\\u{3b}b");
        assert_eq!(folded_name("x\ny\u{1b}[2J"), "x\\ny\\u{1b}[2J");
    }
}
