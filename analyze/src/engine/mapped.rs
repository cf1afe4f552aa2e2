//! `mapped_bytes(syscall, len, new_len, ret, errno)`: the bytes one call added to an address
//! space, usable in any query.
//!
//! It is the length of a successful mmap, the growth (`new_len - len`) of a successful mremap
//! that grew a mapping, and 0 for everything else: failed or unfinished calls (`errno` not NULL,
//! or `ret` NULL), shrinking, unmapping, brk, and rows that are not calls. It is never NULL, so
//! `sum(mapped_bytes(...))` is 0 for a group that mapped nothing.
//!
//! `top --by bytes` sums it per group. The same total as two `sum(...) FILTER (WHERE ...)`
//! (which DataFusion applies as masks, 8-10 % of `top`'s time on the 10 M-row benchmark
//! capture): one pass over five columns, the system call compared once per distinct value of
//! the dictionary.

use std::sync::Arc;

use arrow::{
    array::{Array, ArrayRef, AsArray, UInt64Array},
    buffer::{BooleanBuffer, NullBuffer},
    datatypes::{DataType, UInt64Type},
};
use datafusion::{
    common::{Result, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use mmap_format::event::Syscall;

/// The function, to register with a session.
pub fn function() -> ScalarUDF {
    ScalarUDF::new_from_impl(MappedBytes {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// The SQL name.
pub const NAME: &str = "mapped_bytes";

#[derive(Debug, PartialEq, Eq, Hash)]
struct MappedBytes {
    signature: Signature,
}

/// What a row's system call contributes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Mmap,
    Mremap,
    Other,
}

impl Call {
    fn of(syscall: Option<&str>) -> Self {
        match syscall {
            Some(s) if s == Syscall::Mmap.as_str() => Self::Mmap,
            Some(s) if s == Syscall::Mremap.as_str() => Self::Mremap,
            _ => Self::Other,
        }
    }
}

impl ScalarUDFImpl for MappedBytes {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [syscall, len, new_len, ret, errno] = arg_types else {
            return plan_err!(
                "{NAME} takes 5 arguments (syscall, len, new_len, ret, errno), got {}",
                arg_types.len()
            );
        };
        let syscall = match syscall {
            // Read as it is: each distinct value compared once.
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Utf8 =>
            {
                syscall.clone()
            }
            DataType::Dictionary(_, value) if value.is_string() => DataType::Utf8,
            DataType::Null => DataType::Utf8,
            t if t.is_string() => DataType::Utf8,
            t => return plan_err!("{NAME} takes a string for syscall where it was given {t}"),
        };
        for (name, given) in [("len", len), ("new_len", new_len)] {
            if !given.is_integer() && *given != DataType::Null {
                return plan_err!("{NAME} takes an integer for {name} where it was given {given}");
            }
        }
        // Only whether ret and errno are NULL matters: any type, read as it is.
        Ok(vec![
            syscall,
            DataType::UInt64,
            DataType::UInt64,
            ret.clone(),
            errno.clone(),
        ])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array(
            Arc::new(mapped_bytes(&arrays)?) as ArrayRef
        ))
    }
}

/// One batch (arguments already cast as [`MappedBytes::coerce_types`] says).
fn mapped_bytes(args: &[ArrayRef]) -> Result<UInt64Array> {
    let [syscall, len, new_len, ret, errno] = args else {
        return exec_err!("{NAME} takes 5 arguments, got {}", args.len());
    };
    let (Some(len), Some(new_len)) = (
        len.as_primitive_opt::<UInt64Type>(),
        new_len.as_primitive_opt::<UInt64Type>(),
    ) else {
        return exec_err!(
            "{NAME}: len and new_len must be UInt64, got {} and {}",
            len.data_type(),
            new_len.data_type()
        );
    };
    let calls = super::udf::per_syscall(NAME, syscall, Call::of)?;
    let rows = calls.len();
    // The rows whose call finished without an error and has a length: `ret` not NULL, `errno`
    // NULL, `len` not NULL, 64 rows at a time.
    let all = || BooleanBuffer::new_set(rows);
    let valid = |nulls: Option<NullBuffer>| nulls.map_or_else(all, |n| n.inner().clone());
    let done = &(&valid(ret.logical_nulls()) & &valid(len.logical_nulls()))
        & &!&valid(errno.logical_nulls());
    let grown = valid(new_len.logical_nulls());
    let (lens, new_lens) = (len.values(), new_len.values());
    let bytes = (0..rows).map(|row| {
        // Branch-free: each arm's value masked by whether it applies.
        let mask = |applies: bool| u64::from(applies).wrapping_neg();
        let call = calls[row];
        let mmap = lens[row] & mask(call == Call::Mmap);
        let mremap = new_lens[row].saturating_sub(lens[row])
            & mask(call == Call::Mremap && grown.value(row));
        (mmap | mremap) & mask(done.value(row))
    });
    Ok(UInt64Array::from_iter_values(bytes))
}

#[cfg(test)]
mod tests {
    use arrow::{
        array::{DictionaryArray, Int32Array, Int64Array, StringArray, UInt64Array},
        datatypes::Int32Type,
    };

    use super::*;

    #[test]
    fn counts_successful_mmaps_and_mremap_growth_only() {
        let syscalls = [
            "mmap", "mmap", "mmap", "mremap", "mremap", "munmap", "mmap", "mremap", "mmap",
        ];
        let len = [10, 20, 30, 100, 100, 50, 7, 5, 9];
        let new_len = [
            None,
            None,
            None,
            Some(150),
            Some(40),
            None,
            None,
            None,
            None,
        ];
        // Row 1 failed (errno), row 2 never returned (ret NULL), row 6 has a NULL syscall, row 8
        // a NULL len.
        let ret = [
            Some(1),
            Some(-12),
            None,
            Some(1),
            Some(1),
            Some(0),
            Some(1),
            Some(1),
            Some(1),
        ];
        let errno = [None, Some(12), None, None, None, None, None, None, None];
        let strings: ArrayRef = Arc::new(StringArray::from_iter(
            syscalls
                .iter()
                .enumerate()
                .map(|(row, s)| (row != 6).then_some(*s)),
        ));
        let dictionary: ArrayRef = Arc::new(
            syscalls
                .iter()
                .enumerate()
                .map(|(row, s)| (row != 6).then_some(*s))
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let len: ArrayRef = Arc::new(UInt64Array::from_iter(
            len.iter()
                .enumerate()
                .map(|(row, &l)| (row != 8).then_some(l)),
        ));
        let new_len: ArrayRef = Arc::new(UInt64Array::from(new_len.to_vec()));
        let ret: ArrayRef = Arc::new(Int64Array::from(ret.to_vec()));
        let errno: ArrayRef = Arc::new(Int32Array::from(errno.to_vec()));
        let expected = [10, 0, 0, 50, 0, 0, 0, 0, 0];
        for syscall in [strings, dictionary] {
            let args = [
                syscall,
                len.clone(),
                new_len.clone(),
                ret.clone(),
                errno.clone(),
            ];
            let bytes = mapped_bytes(&args).expect("mapped_bytes");
            assert_eq!(bytes.null_count(), 0);
            assert_eq!(bytes.values().as_ref(), expected);
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let f = function();
        let utf8 = DataType::Utf8;
        assert!(f.coerce_types(&[utf8.clone(), DataType::UInt64]).is_err());
        let strings = vec![utf8.clone(); 5];
        assert!(f.coerce_types(&strings).is_err());
        let ok = [
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(utf8.clone())),
            DataType::Int64,
            DataType::UInt32,
            DataType::Int64,
            DataType::Int32,
        ];
        let cast = f.coerce_types(&ok).expect("coerce");
        assert_eq!(cast[0], ok[0]);
        assert_eq!(cast[1..3], [DataType::UInt64, DataType::UInt64]);
        assert_eq!(cast[3..], ok[3..]);
    }
}
