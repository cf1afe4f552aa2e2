//! `string_id(a, b, ...)`: the first non-null of its string arguments (as `coalesce`), as a
//! number that stands for that string; `string_of(id)`: the string again.
//!
//! A query that groups by a string column hashes the string of every row. Capture strings
//! (paths, thread names, system calls) are dictionary encoded, and each batch of rows carries its
//! dictionary: `string_id` looks each distinct value of a batch up once, then gives each row the
//! number of its value, so the engine groups by a number; `string_of` turns the few groups'
//! numbers back into strings, to be sorted and shown:
//!
//! ```sql
//! SELECT string_of(f) AS file, n FROM
//!   (SELECT string_id(file_path, file_name, '[anon]') AS f, count(*) AS n FROM calls GROUP BY 1)
//! ORDER BY n DESC, 1
//! ```
//!
//! gives the rows and order of the same query grouped by `coalesce(file_path, file_name,
//! '[anon]')`. On the 10 M-row benchmark capture, `top --group file` spent most of its time over
//! DuckDB's in that hashing (docs/PERFORMANCE.md).
//!
//! The numbers hold within one session (one command): they are given in the order the strings
//! are first seen, so they sort as nothing in particular, and mean nothing to another run.
//! `string_of` of a number not given is an error, never a wrong string.

use std::sync::{Arc, Mutex, PoisonError};

use arrow::{
    array::{Array, ArrayRef, AsArray, StringArray, StringViewArray, UInt32Array},
    buffer::NullBuffer,
    compute::cast,
    datatypes::{DataType, Int32Type, UInt32Type},
};
use datafusion::{
    common::{Column, DFSchema, Result, ScalarValue, exec_err, plan_err, tree_node::Transformed},
    execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation},
    logical_expr::{
        Aggregate, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Projection, ScalarFunctionArgs,
        ScalarUDF, ScalarUDFImpl, Signature, Volatility, expr::ScalarFunction,
    },
    optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule},
};
use rustc_hash::FxHashMap;

/// The SQL name of the function that numbers strings.
pub const NAME: &str = "string_id";
/// The SQL name of the function that gives a number's string back.
pub const STRING_OF: &str = "string_of";

/// Both functions, sharing one numbering.
#[cfg(test)]
fn functions() -> [ScalarUDF; 2] {
    let pool: Arc<dyn MemoryPool> =
        Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default());
    let numbering = Numbering::new(&pool);
    [numbering.string_id(), numbering.string_of(DataType::Utf8)]
}

/// One numbering of strings (one session's), and the functions and rule that use it.
#[derive(Clone, Debug)]
pub struct Numbering {
    strings: Arc<Mutex<Strings>>,
}

impl Numbering {
    /// A numbering whose strings are counted in `pool`, the session's memory: they stay for
    /// the session, so a capture with more distinct strings than the pool holds is an error
    /// ("Resources exhausted", naming the numbering), not unbounded growth.
    pub fn new(pool: &Arc<dyn MemoryPool>) -> Self {
        let memory = MemoryConsumer::new("string_id numbering").register(pool);
        Self {
            strings: Arc::new(Mutex::new(Strings {
                ids: FxHashMap::default(),
                strings: Vec::new(),
                memory,
            })),
        }
    }

    pub fn string_id(&self) -> ScalarUDF {
        ScalarUDF::new_from_impl(StringIds {
            signature: Signature::variadic_any(Volatility::Immutable),
            strings: Arc::clone(&self.strings),
        })
    }

    /// `string_of`, giving its strings as `returns` (a string or dictionary-of-strings type).
    pub fn string_of(&self, returns: DataType) -> ScalarUDF {
        ScalarUDF::new_from_impl(StringOf {
            signature: Signature::user_defined(Volatility::Immutable),
            strings: Arc::clone(&self.strings),
            returns,
        })
    }
}

/// The optimizer rule that groups by numbers wherever a query groups by a capture string: a
/// `GROUP BY` key that is a dictionary-encoded string column (`comm`, `file_path`, `syscall`,
/// ...), a cast of one to a string, or a `coalesce` of such columns and string literals becomes
/// `string_id(...)`, and a projection above the aggregate gives the strings back
/// (`string_of`), as the same columns of the same types: every query (`sql`, `summary`,
/// `errors`, ...) gets the faster grouping with the same results. `GROUPING SETS`, `ROLLUP` and
/// `CUBE` are left as they are.
#[derive(Debug)]
pub struct GroupByNumber {
    numbering: Numbering,
    string_id: Arc<ScalarUDF>,
}

impl GroupByNumber {
    pub fn new(numbering: &Numbering) -> Self {
        Self {
            numbering: numbering.clone(),
            string_id: Arc::new(numbering.string_id()),
        }
    }

    /// The arguments `string_id` takes in place of the key `expr`, if it is one it numbers.
    fn arguments(expr: &Expr, schema: &DFSchema) -> Option<Vec<Expr>> {
        let dictionary = |expr: &Expr| {
            matches!(expr, Expr::Column(_))
                && expr.get_type(schema).is_ok_and(|t| {
                    matches!(&t, DataType::Dictionary(key, value)
                        if **key == DataType::Int32 && **value == DataType::Utf8)
                })
        };
        let string_literal = |arg: &Expr| match arg {
            Expr::Literal(value, _) => scalar_text(value).is_ok_and(|text| text.is_some()),
            _ => false,
        };
        match expr {
            Expr::Column(_) if dictionary(expr) => Some(vec![expr.clone()]),
            Expr::Cast(cast)
                if dictionary(&cast.expr)
                    && matches!(
                        cast.field.data_type(),
                        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                    ) =>
            {
                Some(vec![(*cast.expr).clone()])
            }
            Expr::ScalarFunction(call) if call.name() == "coalesce" => {
                (call.args.iter().any(dictionary)
                    && call
                        .args
                        .iter()
                        .all(|arg| dictionary(arg) || string_literal(arg)))
                .then(|| call.args.clone())
            }
            // The form the simplifier gives coalesce: `CASE WHEN a IS NOT NULL THEN a WHEN b IS
            // NOT NULL THEN b ELSE 'literal' END`.
            Expr::Case(case) if case.expr.is_none() => {
                let mut args = Vec::with_capacity(case.when_then_expr.len() + 1);
                for (when, then) in &case.when_then_expr {
                    match &**when {
                        Expr::IsNotNull(tested) if **tested == **then && dictionary(then) => {
                            args.push((**then).clone());
                        }
                        _ => return None,
                    }
                }
                match &case.else_expr {
                    Some(other) if string_literal(other) => args.push((**other).clone()),
                    Some(_) => return None,
                    None => {}
                }
                (!args.is_empty()).then_some(args)
            }
            Expr::Alias(alias) => Self::arguments(&alias.expr, schema),
            _ => None,
        }
    }
}

impl OptimizerRule for GroupByNumber {
    fn name(&self) -> &str {
        "group_by_string_id"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if aggregate
            .group_expr
            .iter()
            .any(|expr| matches!(expr, Expr::GroupingSet(_)))
        {
            return Ok(Transformed::no(plan));
        }
        let input = aggregate.input.schema();
        let mut numbered = Vec::with_capacity(aggregate.group_expr.len());
        let group_expr: Vec<Expr> = aggregate
            .group_expr
            .iter()
            .enumerate()
            .map(|(i, expr)| match Self::arguments(expr, input) {
                Some(args) => {
                    numbered.push(true);
                    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&self.string_id), args))
                        .alias(format!("__string_id_{i}"))
                }
                None => {
                    numbered.push(false);
                    expr.clone()
                }
            })
            .collect();
        if !numbered.contains(&true) {
            return Ok(Transformed::no(plan));
        }
        let grouped = Aggregate::try_new(
            Arc::clone(&aggregate.input),
            group_expr,
            aggregate.aggr_expr.clone(),
        )?;
        let before = Arc::clone(&aggregate.schema);
        let after = Arc::clone(&grouped.schema);
        let columns = (0..before.fields().len())
            .map(|i| {
                let (qualifier, field) = before.qualified_field(i);
                let (new_qualifier, new_field) = after.qualified_field(i);
                let column = Expr::Column(Column::new(new_qualifier.cloned(), new_field.name()));
                if numbered.get(i).copied().unwrap_or(false) {
                    let string_of = self.numbering.string_of(field.data_type().clone());
                    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(string_of), vec![column]))
                        .alias_qualified(qualifier.cloned(), field.name())
                } else if new_qualifier == qualifier && new_field.name() == field.name() {
                    column
                } else {
                    column.alias_qualified(qualifier.cloned(), field.name())
                }
            })
            .collect::<Vec<_>>();
        let projection = Projection::try_new(columns, Arc::new(LogicalPlan::Aggregate(grouped)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

/// The strings numbered so far, in the order they were first seen.
#[derive(Debug)]
pub struct Strings {
    ids: FxHashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
    /// The memory the strings take, in the session's pool.
    memory: MemoryReservation,
}

/// What a string costs besides its bytes: the `Arc`'s counts, the map's entry and control
/// byte, the list's pointer (with the spare capacity both keep, roughly).
const OVERHEAD_PER_STRING: usize = 64;

impl Strings {
    /// The number of `text`, given on first sight.
    fn id(&mut self, text: &str) -> Result<u32> {
        if let Some(&id) = self.ids.get(text) {
            return Ok(id);
        }
        let id = match u32::try_from(self.strings.len()) {
            Ok(id) if id != EMPTY => id,
            _ => return exec_err!("{NAME}: more than 2^32 - 1 distinct strings"),
        };
        self.memory.try_grow(text.len() + OVERHEAD_PER_STRING)?;
        let text: Arc<str> = Arc::from(text);
        self.strings.push(Arc::clone(&text));
        self.ids.insert(text, id);
        Ok(id)
    }

    /// The number of each value of a dictionary ([`EMPTY`] for a NULL value).
    fn dictionary(&mut self, values: &ArrayRef) -> Result<Vec<u32>> {
        let Some(strings) = values.as_string_opt::<i32>() else {
            return exec_err!("{NAME}: a dictionary of {}", values.data_type());
        };
        (0..strings.len())
            .map(|i| match strings.is_valid(i) {
                true => self.id(strings.value(i)),
                false => Ok(EMPTY),
            })
            .collect()
    }

    /// The string numbered `id`.
    pub fn get(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(AsRef::as_ref)
    }
}

/// `string_id`, with the numbering it gives (shared by the engine's threads and `string_of`).
#[derive(Debug)]
pub struct StringIds {
    signature: Signature,
    strings: Arc<Mutex<Strings>>,
}

// Two functions are the same when they share a numbering (and, for `string_of`, give the
// same type).

impl PartialEq for StringIds {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.strings, &other.strings)
    }
}

impl Eq for StringIds {}

impl std::hash::Hash for StringIds {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.strings).hash(state);
    }
}

impl PartialEq for StringOf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.strings, &other.strings) && self.returns == other.returns
    }
}

impl Eq for StringOf {}

impl std::hash::Hash for StringOf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.strings).hash(state);
        self.returns.hash(state);
    }
}

/// `string_of`: the string of a number `string_id` gave, in the same numbering.
#[derive(Debug)]
pub struct StringOf {
    signature: Signature,
    strings: Arc<Mutex<Strings>>,
    /// The type of the strings it gives: the type of the key it stands for.
    returns: DataType,
}

impl ScalarUDFImpl for StringOf {
    fn name(&self) -> &str {
        STRING_OF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [given] if given.is_integer() || *given == DataType::Null => Ok(vec![DataType::UInt32]),
            _ => plan_err!("{STRING_OF} takes one number of {NAME}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{STRING_OF} takes one number");
        };
        let ids = arg.to_array(args.number_rows)?;
        let Some(ids) = ids.as_primitive_opt::<UInt32Type>() else {
            return exec_err!(
                "{STRING_OF} takes a number of {NAME}, not {}",
                ids.data_type()
            );
        };
        let strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        let text = ids
            .iter()
            .map(|id| match id {
                None => Ok(None),
                Some(id) => match strings.get(id) {
                    Some(text) => Ok(Some(text)),
                    None => exec_err!("{STRING_OF}: {id} is not a number {NAME} gave"),
                },
            })
            .collect::<Result<StringArray>>()?;
        let text: ArrayRef = Arc::new(text);
        Ok(ColumnarValue::Array(if self.returns == DataType::Utf8 {
            text
        } else {
            cast(&text, &self.returns)?
        }))
    }
}

/// Where each row's string is in one argument.
enum Source<'a> {
    /// Dictionary keys, and the number of each dictionary value ([`EMPTY`] for a null value).
    Dictionary(&'a arrow::array::Int32Array, Vec<u32>),
    /// Strings read row by row (no dictionary).
    Rows(StringViewArray),
    /// One value for every row.
    Scalar(Option<u32>),
}

impl ScalarUDFImpl for StringIds {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() {
            return plan_err!("{NAME} takes at least one string");
        }
        arg_types
            .iter()
            .map(|given| match given {
                DataType::Dictionary(key, value)
                    if **key == DataType::Int32 && **value == DataType::Utf8 =>
                {
                    Ok(given.clone())
                }
                DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Dictionary(_, _)
                | DataType::Null => Ok(DataType::Utf8View),
                other => plan_err!("{NAME} takes strings, where it was given {other}"),
            })
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let lock = || self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        let mut strings = lock();
        let mut sources = Vec::with_capacity(args.args.len());
        for arg in &args.args {
            sources.push(match arg {
                ColumnarValue::Scalar(value) => Source::Scalar(match scalar_text(value)? {
                    Some(text) => Some(strings.id(text)?),
                    None => None,
                }),
                ColumnarValue::Array(array) => match array.as_dictionary_opt::<Int32Type>() {
                    Some(dictionary) => {
                        let ids = strings.dictionary(dictionary.values())?;
                        Source::Dictionary(dictionary.keys(), ids)
                    }
                    None => Source::Rows(view(array)?),
                },
            });
        }
        // The rows are filled one argument at a time, each argument only for the rows the
        // ones before it left empty. Only strings without a dictionary need the table: the
        // engine's other threads number their batches meanwhile.
        drop(strings);
        let mut ids = vec![EMPTY; rows];
        let mut empty = rows;
        for source in &sources {
            empty = match source {
                Source::Dictionary(keys, numbers) => fill_from_keys(&mut ids, keys, numbers),
                Source::Rows(array) => {
                    let mut table = lock();
                    let mut left = 0;
                    for (row, id) in ids.iter_mut().enumerate() {
                        if *id == EMPTY && array.is_valid(row) {
                            *id = table.id(array.value(row))?;
                        }
                        left += usize::from(*id == EMPTY);
                    }
                    left
                }
                Source::Scalar(Some(number)) => {
                    for id in ids.iter_mut().filter(|id| **id == EMPTY) {
                        *id = *number;
                    }
                    0
                }
                Source::Scalar(None) => empty,
            };
            if empty == 0 {
                break;
            }
        }
        let nulls = (empty > 0).then(|| NullBuffer::from_iter(ids.iter().map(|id| *id != EMPTY)));
        Ok(ColumnarValue::Array(
            Arc::new(UInt32Array::new(ids.into(), nulls)) as ArrayRef,
        ))
    }
}

/// A row no argument has given a string yet: never a number [`Strings::id`] gives.
const EMPTY: u32 = u32::MAX;

/// Gives each row still [`EMPTY`] the number of its dictionary value (`by_key`: EMPTY for a NULL
/// value), where its key is not NULL; the rows left empty.
fn fill_from_keys(ids: &mut [u32], keys: &arrow::array::Int32Array, by_key: &[u32]) -> usize {
    // A key out of range (a NULL row's key may be anything) gives nothing.
    let number = |key: i32| {
        usize::try_from(key)
            .ok()
            .and_then(|k| by_key.get(k))
            .copied()
    };
    let mut left = 0;
    match keys.nulls() {
        None => {
            for (id, &key) in ids.iter_mut().zip(keys.values().iter()) {
                if *id == EMPTY {
                    *id = number(key).unwrap_or(EMPTY);
                }
                left += usize::from(*id == EMPTY);
            }
        }
        Some(nulls) => {
            for ((id, &key), valid) in ids.iter_mut().zip(keys.values().iter()).zip(nulls.iter()) {
                if *id == EMPTY && valid {
                    *id = number(key).unwrap_or(EMPTY);
                }
                left += usize::from(*id == EMPTY);
            }
        }
    }
    left
}

/// The string of a constant argument (None for NULL).
fn scalar_text(value: &ScalarValue) -> Result<Option<&str>> {
    match value {
        ScalarValue::Utf8(text) | ScalarValue::LargeUtf8(text) | ScalarValue::Utf8View(text) => {
            Ok(text.as_deref())
        }
        ScalarValue::Dictionary(_, value) => scalar_text(value),
        ScalarValue::Null => Ok(None),
        other => exec_err!("{NAME}: unexpected {other:?}"),
    }
}

/// `array` (coerced to Utf8View by [`StringIds::coerce_types`]) as a view array.
fn view(array: &ArrayRef) -> Result<StringViewArray> {
    match array.as_string_view_opt() {
        Some(view) => Ok(view.clone()),
        None => exec_err!("{NAME}: unexpected {}", array.data_type()),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{DictionaryArray, StringArray};
    use datafusion::{arrow::datatypes::Field, config::ConfigOptions};

    use super::*;

    fn invoke(function: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> Result<ArrayRef> {
        let arg_fields = args
            .iter()
            .map(|arg| Arc::new(Field::new("a", arg.data_type(), true)))
            .collect();
        let result = function.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new(
                "r",
                function.return_type(&[]).expect("return type"),
                true,
            )),
            config_options: Arc::new(ConfigOptions::default()),
        })?;
        result.to_array(rows)
    }

    fn ids(function: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> Vec<Option<u32>> {
        let array = invoke(function, args, rows).expect("string_id");
        array.as_primitive::<UInt32Type>().iter().collect()
    }

    fn strings(string_of: &ScalarUDF, ids: &[Option<u32>]) -> Result<Vec<Option<String>>> {
        let array = invoke(
            string_of,
            vec![ColumnarValue::Array(Arc::new(UInt32Array::from(
                ids.to_vec(),
            )))],
            ids.len(),
        )?;
        Ok(array
            .as_string::<i32>()
            .iter()
            .map(|text| text.map(str::to_owned))
            .collect())
    }

    fn dictionary(values: &[Option<&str>]) -> ColumnarValue {
        let array: DictionaryArray<Int32Type> = values.iter().copied().collect();
        ColumnarValue::Array(Arc::new(array))
    }

    #[test]
    fn equal_strings_get_equal_numbers_whatever_their_encoding() {
        let [string_id, string_of] = functions();
        let paths = dictionary(&[
            Some("/lib/a.so"),
            None,
            Some("/lib/b.so"),
            None,
            Some("/lib/a.so"),
        ]);
        let names = StringViewArray::from_iter(
            StringArray::from(vec![Some("x"), Some("a.so"), None, None, Some("y")]).iter(),
        );
        let given = ids(
            &string_id,
            vec![
                paths,
                ColumnarValue::Array(Arc::new(names)),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("[anon]".into()))),
            ],
            5,
        );
        // The first non-null of each row, as coalesce picks it.
        assert_eq!(
            strings(&string_of, &given).expect("string_of"),
            ["/lib/a.so", "a.so", "/lib/b.so", "[anon]", "/lib/a.so"].map(|s| Some(s.to_owned()))
        );
        assert_eq!(given[0], given[4]);
        assert_ne!(given[0], given[2]);
    }

    #[test]
    fn a_second_batch_with_another_dictionary_keeps_the_numbers() {
        let [string_id, string_of] = functions();
        let one = ids(&string_id, vec![dictionary(&[Some("b"), Some("a")])], 2);
        let two = ids(
            &string_id,
            vec![dictionary(&[Some("a"), Some("c"), Some("b")])],
            3,
        );
        assert_eq!((one[0], one[1]), (two[2], two[0]));
        assert_eq!(
            strings(&string_of, &[two[1]]).expect("string_of"),
            [Some("c".to_owned())]
        );
        // All null: null, as coalesce gives, and back.
        let none = ids(&string_id, vec![dictionary(&[None])], 1);
        assert_eq!(none, [None]);
        assert_eq!(strings(&string_of, &none).expect("string_of"), [None]);
    }

    #[test]
    fn batches_sharing_one_dictionary_are_numbered_by_their_own_keys() {
        let [string_id, string_of] = functions();
        // As Parquet's reader gives them: every batch of a column chunk holds the same values
        // array, with its own keys (a NULL row's key may be anything, here out of range).
        let values: ArrayRef = Arc::new(StringArray::from(vec![Some("/a"), None, Some("/b")]));
        let batch = |keys: Vec<Option<i32>>| {
            let keys = arrow::array::Int32Array::from(keys);
            let keys = match keys.nulls() {
                Some(nulls) => arrow::array::Int32Array::new(
                    keys.values()
                        .iter()
                        .zip(nulls.iter())
                        .map(|(k, valid)| if valid { *k } else { 99 })
                        .collect(),
                    Some(nulls.clone()),
                ),
                None => keys,
            };
            let dictionary = DictionaryArray::<Int32Type>::try_new(keys, Arc::clone(&values))
                .expect("dictionary");
            vec![
                ColumnarValue::Array(Arc::new(dictionary)),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("[anon]".into()))),
            ]
        };
        let names = |given: &[Option<u32>]| {
            strings(&string_of, given)
                .expect("string_of")
                .into_iter()
                .map(|s| s.expect("a string"))
                .collect::<Vec<_>>()
        };
        let one = ids(&string_id, batch(vec![Some(0), Some(2), None]), 3);
        let two = ids(&string_id, batch(vec![Some(2), Some(1), Some(0), None]), 4);
        assert_eq!(names(&one), ["/a", "/b", "[anon]"]);
        assert_eq!(names(&two), ["/b", "[anon]", "/a", "[anon]"]);
        assert_eq!((one[0], one[1]), (two[2], two[0]));
    }

    #[test]
    fn a_number_not_given_is_an_error() {
        let [string_id, string_of] = functions();
        let given = ids(&string_id, vec![dictionary(&[Some("a")])], 1);
        let wrong = given[0].map(|id| id + 1);
        let err = strings(&string_of, &[wrong]).expect_err("an unknown number");
        assert!(
            err.to_string().contains("is not a number string_id gave"),
            "{err}"
        );
        // Another session's numbering does not know it either.
        let [_, other] = functions();
        assert!(strings(&other, &given).is_err());
    }

    #[test]
    fn strings_beyond_the_memory_pool_are_an_error_naming_the_numbering() {
        let pool: Arc<dyn MemoryPool> = Arc::new(
            datafusion::execution::memory_pool::GreedyMemoryPool::new(4096),
        );
        let numbering = Numbering::new(&pool);
        let string_id = numbering.string_id();
        // Ten distinct 100-byte strings fit; the same strings again take nothing more.
        let short: Vec<String> = (0..10).map(|i| format!("{i:0>100}")).collect();
        let batch = || dictionary(&short.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>());
        ids(&string_id, vec![batch()], short.len());
        let used = pool.reserved();
        assert_eq!(used, 10 * (100 + OVERHEAD_PER_STRING));
        ids(&string_id, vec![batch()], short.len());
        assert_eq!(pool.reserved(), used);
        // Forty more do not: an error, not growth past the pool.
        let long: Vec<String> = (10..50).map(|i| format!("{i:0>100}")).collect();
        let err = invoke(
            &string_id,
            vec![dictionary(
                &long.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>(),
            )],
            long.len(),
        )
        .expect_err("past the pool");
        let message = err.to_string();
        assert!(
            message.contains("Resources exhausted") && message.contains("string_id numbering"),
            "{message}"
        );
        assert!(pool.reserved() <= 4096);
    }
}
