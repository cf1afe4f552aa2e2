//! Scalar functions that decode raw numbers into the names people know, usable in any query:
//!
//! - `prot_names(prot)`: `PROT_READ|PROT_WRITE`, `PROT_NONE` for 0;
//! - `flags_names(syscall, flags)`: `MREMAP_*` names for mremap, `MAP_*` names otherwise;
//! - `errno_name(errno)`: `ENOMEM`, NULL for a number without a name.
//!
//! Each takes any integer type (and strings for the system call) and returns NULL for NULL. The
//! names come from the format crate's tables ([`mmap_format::names`]); nothing is copied here.

use std::{collections::HashMap, hash::Hash, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, PrimitiveArray, StringArray, StringBuilder},
    datatypes::{ArrowPrimitiveType, DataType, Int32Type, UInt64Type},
};
use datafusion::{
    common::{Result, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use mmap_format::{event::Syscall, names};

use crate::labels::mremap_flags_names;

/// Every decoding function, to register with a session.
pub fn all() -> Vec<ScalarUDF> {
    Decoder::ALL
        .into_iter()
        .map(|decoder| ScalarUDF::new_from_impl(NameFunction::new(decoder)))
        .collect()
}

/// What a function decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decoder {
    Prot,
    Flags,
    Errno,
}

impl Decoder {
    const ALL: [Self; 3] = [Self::Prot, Self::Flags, Self::Errno];

    /// The SQL name of the function.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Prot => "prot_names",
            Self::Flags => "flags_names",
            Self::Errno => "errno_name",
        }
    }

    /// An expression calling the function with `args`.
    pub fn call(self, args: Vec<Expr>) -> Expr {
        ScalarUDF::new_from_impl(NameFunction::new(self)).call(args)
    }

    /// The types the arguments are cast to, and what each must be to start with.
    const fn parameters(self) -> &'static [(DataType, Accepts)] {
        match self {
            Self::Prot => &[(DataType::UInt64, Accepts::Integer)],
            Self::Flags => &[
                (DataType::Utf8, Accepts::String),
                (DataType::UInt64, Accepts::Integer),
            ],
            Self::Errno => &[(DataType::Int32, Accepts::Integer)],
        }
    }

    /// Decodes one batch of arguments (already cast to [`Decoder::parameters`], a dictionary
    /// of strings left as it is).
    fn decode(self, args: &[ArrayRef]) -> Result<StringArray> {
        Ok(match (self, args) {
            (Self::Prot, [prot]) => {
                name_each(integers::<UInt64Type>(prot)?.iter(), names::prot_names)
            }
            (Self::Flags, [syscall, flags]) => {
                let rows = mremap_rows(syscall)?.into_iter();
                let keys = rows
                    .zip(integers::<UInt64Type>(flags)?)
                    .map(|(is_mremap, flags)| Some((is_mremap.unwrap_or(false), flags?)));
                name_each(keys, |(is_mremap, flags)| flags_names(is_mremap, flags))
            }
            (Self::Errno, [errno]) => integers::<Int32Type>(errno)?
                .iter()
                .map(|errno| errno.and_then(names::errno_name))
                .collect(),
            _ => return plan_err!("{} takes {} arguments", self.name(), args.len()),
        })
    }
}

/// `array` as integers of type `T` (what [`ScalarUDFImpl::coerce_types`] cast it to).
fn integers<T: ArrowPrimitiveType>(array: &ArrayRef) -> Result<&PrimitiveArray<T>> {
    match array.as_primitive_opt::<T>() {
        Some(integers) => Ok(integers),
        None => exec_err!("expected {}, got {}", T::DATA_TYPE, array.data_type()),
    }
}

/// Whether the system call of each row is mremap (NULL for NULL).
fn mremap_rows(syscall: &ArrayRef) -> Result<Vec<Option<bool>>> {
    let mremap = Syscall::Mremap.as_str();
    per_syscall(Decoder::Flags.name(), syscall, |s| s.map(|s| s == mremap))
}

/// `of` each row's system call (`None` for NULL), for `function`. A dictionary (the `syscall`
/// column) is looked at once per distinct value.
pub(crate) fn per_syscall<T: Copy>(
    function: &str,
    syscall: &ArrayRef,
    of: impl Fn(Option<&str>) -> T,
) -> Result<Vec<T>> {
    let strings = |array: &ArrayRef| match array.as_string_opt::<i32>() {
        Some(strings) => Ok(strings.iter().map(&of).collect::<Vec<T>>()),
        None => exec_err!("{function} takes a string, got {}", array.data_type()),
    };
    let Some(dictionary) = syscall.as_dictionary_opt::<Int32Type>() else {
        return strings(syscall);
    };
    let values = strings(dictionary.values())?;
    let null = of(None);
    Ok(dictionary
        .keys()
        .iter()
        .map(|key| {
            key.and_then(|key| usize::try_from(key).ok())
                .and_then(|key| values.get(key).copied())
                .unwrap_or(null)
        })
        .collect())
}

/// The name of each key (NULL for NULL), each distinct key named once: a batch holds few
/// distinct prot or flags values, and naming one allocates.
fn name_each<K: Copy + Eq + Hash>(
    keys: impl Iterator<Item = Option<K>>,
    name: impl Fn(K) -> String,
) -> StringArray {
    let mut known: HashMap<K, String> = HashMap::new();
    let mut names = StringBuilder::new();
    for key in keys {
        match key {
            Some(key) => names.append_value(known.entry(key).or_insert_with(|| name(key))),
            None => names.append_null(),
        }
    }
    names.finish()
}

/// The kind of value an argument takes before it is cast.
#[derive(Clone, Copy, Debug)]
enum Accepts {
    Integer,
    String,
}

impl Accepts {
    fn admits(self, data_type: &DataType) -> bool {
        match (self, data_type) {
            (_, DataType::Null) => true,
            (Self::Integer, t) => t.is_integer(),
            (Self::String, DataType::Dictionary(_, value)) => value.is_string(),
            (Self::String, t) => t.is_string(),
        }
    }

    const fn describe(self) -> &'static str {
        match self {
            Self::Integer => "an integer",
            Self::String => "a string",
        }
    }
}

/// MREMAP_* names for mremap, MAP_* names for every other row (mmap calls and snapshot lines).
fn flags_names(is_mremap: bool, flags: u64) -> String {
    if is_mremap {
        mremap_flags_names(flags)
    } else {
        names::map_flags_names(flags)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NameFunction {
    decoder: Decoder,
    signature: Signature,
}

impl NameFunction {
    fn new(decoder: Decoder) -> Self {
        Self {
            decoder,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NameFunction {
    fn name(&self) -> &str {
        self.decoder.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let parameters = self.decoder.parameters();
        if arg_types.len() != parameters.len() {
            return plan_err!(
                "{} takes {} argument(s), got {}",
                self.name(),
                parameters.len(),
                arg_types.len()
            );
        }
        let mut cast_to = Vec::with_capacity(parameters.len());
        for (given, (target, accepts)) in arg_types.iter().zip(parameters) {
            if !accepts.admits(given) {
                return plan_err!(
                    "{} takes {} where it was given {given}",
                    self.name(),
                    accepts.describe()
                );
            }
            cast_to.push(match given {
                // Read as it is, each distinct value once, without unpacking every row.
                DataType::Dictionary(key, value)
                    if **key == DataType::Int32 && **value == DataType::Utf8 =>
                {
                    given.clone()
                }
                _ => target.clone(),
            });
        }
        Ok(cast_to)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = self.decoder.decode(&arrays)?;
        Ok(ColumnarValue::Array(Arc::new(names) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{DictionaryArray, Int32Array, UInt64Array};

    use super::*;

    fn decode(decoder: Decoder, args: Vec<ArrayRef>) -> Vec<Option<String>> {
        let names = decoder.decode(&args).expect("decode");
        names.iter().map(|name| name.map(str::to_owned)).collect()
    }

    #[test]
    fn prot_names_decodes_bits_and_keeps_nulls() {
        let prot: ArrayRef = Arc::new(UInt64Array::from(vec![Some(3), Some(0), None]));
        assert_eq!(
            decode(Decoder::Prot, vec![prot]),
            [
                Some("PROT_READ|PROT_WRITE".to_owned()),
                Some("PROT_NONE".to_owned()),
                None
            ]
        );
    }

    #[test]
    fn flags_names_follow_the_system_call() {
        let syscall: ArrayRef = Arc::new(StringArray::from(vec![
            Some("mmap"),
            Some("mremap"),
            None,
            Some("mmap"),
        ]));
        let flags: ArrayRef = Arc::new(UInt64Array::from(vec![Some(0x22), Some(1), Some(1), None]));
        assert_eq!(
            decode(Decoder::Flags, vec![syscall, flags]),
            [
                Some("MAP_PRIVATE|MAP_ANONYMOUS".to_owned()),
                Some("MREMAP_MAYMOVE".to_owned()),
                Some("MAP_SHARED".to_owned()),
                None
            ]
        );
    }

    #[test]
    fn flags_names_read_a_dictionary_of_system_calls() {
        let syscall: ArrayRef = Arc::new(
            vec![Some("mremap"), Some("mmap"), None]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let flags: ArrayRef = Arc::new(UInt64Array::from(vec![3, 3, 0x22]));
        assert_eq!(
            decode(Decoder::Flags, vec![syscall, flags]),
            [
                Some("MREMAP_MAYMOVE|MREMAP_FIXED".to_owned()),
                Some("MAP_SHARED_VALIDATE".to_owned()),
                Some("MAP_PRIVATE|MAP_ANONYMOUS".to_owned())
            ]
        );
    }

    #[test]
    fn flags_names_of_rows_without_a_system_call() {
        // A batch of snapshot rows: the dictionary of system calls is empty.
        let syscall: ArrayRef = Arc::new(
            vec![None::<&str>, None]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let flags: ArrayRef = Arc::new(UInt64Array::from(vec![2, 1]));
        assert_eq!(
            decode(Decoder::Flags, vec![syscall, flags]),
            [
                Some("MAP_PRIVATE".to_owned()),
                Some("MAP_SHARED".to_owned())
            ]
        );
    }

    #[test]
    fn errno_name_is_null_for_unknown_numbers() {
        let errno: ArrayRef = Arc::new(Int32Array::from(vec![Some(12), Some(4000), None]));
        assert_eq!(
            decode(Decoder::Errno, vec![errno]),
            [Some("ENOMEM".to_owned()), None, None]
        );
    }

    #[test]
    fn arguments_of_the_wrong_kind_are_refused() {
        let function = NameFunction::new(Decoder::Prot);
        assert!(function.coerce_types(&[DataType::Utf8]).is_err());
        assert!(function.coerce_types(&[]).is_err());
        assert_eq!(
            function
                .coerce_types(&[DataType::Int64])
                .expect("an integer is taken"),
            [DataType::UInt64]
        );
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(
            NameFunction::new(Decoder::Flags)
                .coerce_types(&[dictionary.clone(), DataType::UInt32])
                .expect("a dictionary of strings is taken"),
            [dictionary, DataType::UInt64]
        );
    }
}
