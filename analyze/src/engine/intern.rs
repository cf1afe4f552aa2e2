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
    datatypes::{DataType, Int32Type, UInt32Type},
};
use datafusion::{
    common::{Result, ScalarValue, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use rustc_hash::FxHashMap;

/// The SQL name of the function that numbers strings.
pub const NAME: &str = "string_id";
/// The SQL name of the function that gives a number's string back.
pub const STRING_OF: &str = "string_of";

/// Both functions, sharing one numbering: to register with a session.
pub fn functions() -> [ScalarUDF; 2] {
    let strings = Arc::new(Mutex::new(Strings::default()));
    [
        ScalarUDF::new_from_impl(StringIds {
            signature: Signature::variadic_any(Volatility::Immutable),
            strings: Arc::clone(&strings),
        }),
        ScalarUDF::new_from_impl(StringOf {
            signature: Signature::user_defined(Volatility::Immutable),
            strings,
        }),
    ]
}

/// `string_id(args)`, `string_of(string_id(args))`: the SQL of a grouping key over `args` (the
/// arguments of a `coalesce` of strings, or one string column) and of its string.
pub fn key(args: &str, name: &str) -> (String, String) {
    (
        format!("{NAME}({args}) AS {name}"),
        format!("{STRING_OF}({name}) AS {name}"),
    )
}

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

/// `string_id`, with the numbering it gives (shared by the engine's threads and `string_of`).
#[derive(Debug)]
pub struct StringIds {
    signature: Signature,
    strings: Arc<Mutex<Strings>>,
}

/// Two functions are the same when they share a numbering.
macro_rules! same_by_numbering {
    ($function:ty) => {
        impl PartialEq for $function {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.strings, &other.strings)
            }
        }

        impl Eq for $function {}

        impl std::hash::Hash for $function {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                Arc::as_ptr(&self.strings).hash(state);
            }
        }
    };
}

same_by_numbering!(StringIds);
same_by_numbering!(StringOf);

/// `string_of`: the string of a number `string_id` gave, in the same numbering.
#[derive(Debug)]
pub struct StringOf {
    signature: Signature,
    strings: Arc<Mutex<Strings>>,
}

impl ScalarUDFImpl for StringOf {
    fn name(&self) -> &str {
        STRING_OF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
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
        Ok(ColumnarValue::Array(Arc::new(text) as ArrayRef))
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
}
