//! `string_id(a, b, ...)`: the first non-null of its string arguments (as `coalesce`), as a
//! number that stands for that string in the query that made it: equal strings, equal numbers.
//!
//! A query that groups by a string column hashes the string of every row. Capture strings
//! (paths, thread names) are dictionary encoded, and each batch of rows carries its dictionary:
//! this function looks each distinct value of a batch up once, then gives each row the number
//! of its value, so the engine groups by a number. The numbers are turned back into the
//! strings afterwards ([`Strings::get`]). On the 10 M-row benchmark capture, `top --group file`
//! (see docs/PERFORMANCE.md) spends most of its time over DuckDB's in that hashing.
//!
//! The numbers belong to one [`StringIds`] (one query's): they mean nothing to another.

use std::sync::{Arc, Mutex, PoisonError};

use arrow::{
    array::{Array, ArrayRef, AsArray, StringViewArray, UInt32Array},
    datatypes::{DataType, Int32Type},
};
use datafusion::{
    common::{Result, ScalarValue, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use rustc_hash::FxHashMap;

/// The SQL name of the function.
pub const NAME: &str = "string_id";

/// The strings numbered so far, in the order they were first seen.
#[derive(Debug, Default)]
pub struct Strings {
    ids: FxHashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Strings {
    /// The number of `text`, given on first sight.
    fn id(&mut self, text: &str) -> Result<u32> {
        if let Some(&id) = self.ids.get(text) {
            return Ok(id);
        }
        let Ok(id) = u32::try_from(self.strings.len()) else {
            return exec_err!("{NAME}: more than 2^32 distinct strings");
        };
        let text: Arc<str> = Arc::from(text);
        self.strings.push(Arc::clone(&text));
        self.ids.insert(text, id);
        Ok(id)
    }

    /// The string numbered `id`.
    pub fn get(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(AsRef::as_ref)
    }
}

/// The function, with the numbering it gives (shared by the engine's threads).
#[derive(Debug)]
pub struct StringIds {
    signature: Signature,
    strings: Arc<Mutex<Strings>>,
}

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

impl StringIds {
    /// The function to register, and the numbering it will fill.
    pub fn function() -> (ScalarUDF, Arc<Mutex<Strings>>) {
        let strings = Arc::new(Mutex::new(Strings::default()));
        let function = Self {
            signature: Signature::variadic_any(Volatility::Immutable),
            strings: Arc::clone(&strings),
        };
        (ScalarUDF::new_from_impl(function), strings)
    }
}

/// Where each row's string is in one argument.
enum Source<'a> {
    /// Dictionary keys, and the number of each dictionary value (None for a null value).
    Dictionary(&'a arrow::array::Int32Array, Vec<Option<u32>>),
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
        let mut strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sources = Vec::with_capacity(args.args.len());
        for arg in &args.args {
            sources.push(match arg {
                ColumnarValue::Scalar(value) => Source::Scalar(match value {
                    ScalarValue::Utf8(text)
                    | ScalarValue::LargeUtf8(text)
                    | ScalarValue::Utf8View(text) => match text {
                        Some(text) => Some(strings.id(text)?),
                        None => None,
                    },
                    ScalarValue::Null => None,
                    other => return exec_err!("{NAME}: unexpected {other:?}"),
                }),
                ColumnarValue::Array(array) => match array.as_dictionary_opt::<Int32Type>() {
                    Some(dictionary) => {
                        let values = dictionary.values();
                        let Some(values) = values.as_string_opt::<i32>() else {
                            return exec_err!("{NAME}: a dictionary of {}", values.data_type());
                        };
                        let ids = (0..values.len())
                            .map(|i| {
                                values
                                    .is_valid(i)
                                    .then(|| strings.id(values.value(i)))
                                    .transpose()
                            })
                            .collect::<Result<Vec<_>>>()?;
                        Source::Dictionary(dictionary.keys(), ids)
                    }
                    None => Source::Rows(view(array)?),
                },
            });
        }
        let mut ids = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut id = None;
            for source in &sources {
                id = match source {
                    Source::Dictionary(keys, ids) => keys
                        .is_valid(row)
                        .then(|| ids.get(keys.value(row) as usize).copied().flatten())
                        .flatten(),
                    Source::Rows(array) => array
                        .is_valid(row)
                        .then(|| strings.id(array.value(row)))
                        .transpose()?,
                    Source::Scalar(id) => *id,
                };
                if id.is_some() {
                    break;
                }
            }
            ids.push(id);
        }
        Ok(ColumnarValue::Array(
            Arc::new(UInt32Array::from(ids)) as ArrayRef
        ))
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

    fn call(function: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> Vec<Option<u32>> {
        let arg_fields = args
            .iter()
            .map(|arg| Arc::new(Field::new("a", arg.data_type(), true)))
            .collect();
        let result = function
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields,
                number_rows: rows,
                return_field: Arc::new(Field::new(NAME, DataType::UInt32, true)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .expect("invoke");
        let ColumnarValue::Array(array) = result else {
            panic!("not an array");
        };
        array
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .iter()
            .collect()
    }

    #[test]
    fn equal_strings_get_equal_numbers_whatever_their_encoding() {
        let (function, strings) = StringIds::function();
        let paths: DictionaryArray<Int32Type> = vec![
            Some("/lib/a.so"),
            None,
            Some("/lib/b.so"),
            None,
            Some("/lib/a.so"),
        ]
        .into_iter()
        .collect();
        let names = StringArray::from(vec![Some("x"), Some("a.so"), None, None, Some("y")]);
        let ids = call(
            &function,
            vec![
                ColumnarValue::Array(Arc::new(paths)),
                ColumnarValue::Array(Arc::new(StringViewArray::from_iter(names.iter()))),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("[anon]".into()))),
            ],
            5,
        );
        // The first non-null of each row, as coalesce picks it.
        let strings = strings.lock().expect("lock");
        let text: Vec<Option<&str>> = ids
            .iter()
            .map(|id| id.and_then(|id| strings.get(id)))
            .collect();
        assert_eq!(
            text,
            [
                Some("/lib/a.so"),
                Some("a.so"),
                Some("/lib/b.so"),
                Some("[anon]"),
                Some("/lib/a.so")
            ]
        );
        assert_eq!(ids[0], ids[4]);
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn a_second_batch_with_another_dictionary_keeps_the_numbers() {
        let (function, strings) = StringIds::function();
        let first: DictionaryArray<Int32Type> = vec!["b", "a"].into_iter().collect();
        let second: DictionaryArray<Int32Type> = vec!["a", "c", "b"].into_iter().collect();
        let one = call(&function, vec![ColumnarValue::Array(Arc::new(first))], 2);
        let two = call(&function, vec![ColumnarValue::Array(Arc::new(second))], 3);
        assert_eq!((one[0], one[1]), (two[2], two[0]));
        assert_eq!(
            strings.lock().expect("lock").get(two[1].expect("c")),
            Some("c")
        );
        // All null: null, as coalesce gives.
        let none: DictionaryArray<Int32Type> = vec![None::<&str>].into_iter().collect();
        assert_eq!(
            call(&function, vec![ColumnarValue::Array(Arc::new(none))], 1),
            [None]
        );
    }
}
