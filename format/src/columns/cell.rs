//! The Arrow types a column can have ("storages"): how the writer builds one and the reader
//! reads one, and which Rust values go in it ([`Cell`]: `T` in a required column, `Option<T>`
//! in a nullable one).
//!
//! The column table (`super`) gives every column a Rust type and one of the storages here; the
//! code it generates only calls [`Cell`], [`read_column`] and the two writer layouts [`Dense`]
//! and [`Sparse`]. A new column of an existing type needs nothing here.

use std::{borrow::Cow, hash::BuildHasher as _, marker::PhantomData, sync::Arc};

use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, DictionaryArray, Int32Array, PrimitiveArray,
    RecordBatch, StringArray,
    builder::{BooleanBuilder, Int32Builder, PrimitiveBuilder, StringBuilder},
    cast::AsArray,
    new_empty_array, new_null_array,
    types::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type},
};
use arrow_schema::DataType;
use hashbrown::HashTable;

use crate::{
    FormatError,
    event::{RowKind, Syscall},
    schema::{TIMEZONE, Value, dictionary_utf8, timestamp_utc},
};

/// An Arrow type a column can have.
pub(crate) trait Storage {
    /// Builds one row group's values.
    type Builder: ColumnBuilder;
    /// One batch's values, ready to be read by row.
    type Reader<'b>;
    /// The Arrow type of the column.
    fn data_type() -> DataType;
    /// An empty builder for about `rows` rows.
    fn builder(rows: usize) -> Self::Builder;
    /// The values of `array`; a decode error naming the column `name` when the array has
    /// another type.
    fn reader<'b>(array: &'b ArrayRef, name: &'static str)
    -> Result<Self::Reader<'b>, FormatError>;
}

/// A Rust value held in a column of Arrow type `S`.
pub(crate) trait Cell<S: Storage>: Sized {
    /// `Option<_>` values are nullable, the others required.
    const NULLABLE: bool;

    /// Refuses a value the writer must not store (the `Other` kind and syscall, which are only
    /// read). The writer checks every column of a row before it appends any.
    fn check(&self) -> Result<(), FormatError> {
        Ok(())
    }

    fn is_null(&self) -> bool;

    /// Appends a value that passed [`Cell::check`].
    fn append(&self, builder: &mut S::Builder) -> Result<(), FormatError>;

    /// The value, for code that treats every column alike ([`crate::schema::Column::value`]).
    fn value(&self) -> Value<'_>;
}

/// A Rust value read from a column of Arrow type `S` whose arrays live for `'b`: text borrows
/// from them, so a row is decoded without copying its strings.
pub(crate) trait Read<'b, S: Storage>: Sized {
    /// The value of row `row`.
    fn read(reader: &S::Reader<'b>, row: usize) -> Result<Self, FormatError>;
}

/// The builder of one column.
pub(crate) trait ColumnBuilder {
    fn append_nulls(&mut self, n: usize);
    /// The values so far, as one array; the builder is left empty.
    fn finish(&mut self) -> Result<ArrayRef, FormatError>;
}

/// The column `name` of `batch`, ready to read values of type `C`: missing, of another type,
/// or with nulls when `C` is not nullable, it is a decode error.
pub(crate) fn read_column<'b, S: Storage, C: Cell<S>>(
    batch: &'b RecordBatch,
    name: &'static str,
) -> Result<S::Reader<'b>, FormatError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| FormatError::decode(name, "missing from the batch"))?;
    if !C::NULLABLE && column.null_count() > 0 {
        return Err(FormatError::decode(
            name,
            format_args!("{} nulls in a non-null column", column.null_count()),
        ));
    }
    S::reader(column, name)
}

fn unexpected_type(array: &ArrayRef, name: &str) -> FormatError {
    FormatError::decode(name, format_args!("unexpected type {}", array.data_type()))
}

/// Declares a storage whose values are one Arrow array of native values (numbers, booleans),
/// with its two cells: the native type (required) and its `Option` (nullable).
macro_rules! native_storage {
    ($(
        $(#[$doc:meta])*
        $storage:ident($builder:ty => $array:ty): $native:ty = $data_type:expr, $new:expr;
    )*) => {$(
        $(#[$doc])*
        pub(crate) struct $storage;

        impl Storage for $storage {
            type Builder = $builder;
            type Reader<'b> = &'b $array;

            fn data_type() -> DataType {
                $data_type
            }

            fn builder(rows: usize) -> $builder {
                $new(rows)
            }

            fn reader<'b>(array: &'b ArrayRef, name: &'static str)
            -> Result<&'b $array, FormatError> {
                array
                    .as_any()
                    .downcast_ref::<$array>()
                    .ok_or_else(|| unexpected_type(array, name))
            }
        }

        impl Cell<$storage> for $native {
            const NULLABLE: bool = false;

            fn is_null(&self) -> bool {
                false
            }

            #[inline]
            fn append(&self, builder: &mut $builder) -> Result<(), FormatError> {
                builder.append_value(*self);
                Ok(())
            }

            fn value(&self) -> Value<'_> {
                Value::from(*self)
            }
        }

        impl<'b> Read<'b, $storage> for $native {
            #[inline]
            fn read(reader: &&'b $array, row: usize) -> Result<Self, FormatError> {
                Ok(reader.value(row))
            }
        }

        impl Cell<$storage> for Option<$native> {
            const NULLABLE: bool = true;

            #[inline]
            fn is_null(&self) -> bool {
                self.is_none()
            }

            #[inline]
            fn append(&self, builder: &mut $builder) -> Result<(), FormatError> {
                builder.append_option(*self);
                Ok(())
            }

            fn value(&self) -> Value<'_> {
                Value::from(*self)
            }
        }

        impl<'b> Read<'b, $storage> for Option<$native> {
            #[inline]
            fn read(reader: &&'b $array, row: usize) -> Result<Self, FormatError> {
                Ok(reader.is_valid(row).then(|| reader.value(row)))
            }
        }
    )*};
}

native_storage! {
    /// `UInt32`.
    UInt32(PrimitiveBuilder<UInt32Type> => PrimitiveArray<UInt32Type>): u32
        = DataType::UInt32, PrimitiveBuilder::with_capacity;
    /// `UInt64`.
    UInt64(PrimitiveBuilder<UInt64Type> => PrimitiveArray<UInt64Type>): u64
        = DataType::UInt64, PrimitiveBuilder::with_capacity;
    /// `Int32`.
    Int32(PrimitiveBuilder<Int32Type> => PrimitiveArray<Int32Type>): i32
        = DataType::Int32, PrimitiveBuilder::with_capacity;
    /// `Int64`.
    Int64(PrimitiveBuilder<Int64Type> => PrimitiveArray<Int64Type>): i64
        = DataType::Int64, PrimitiveBuilder::with_capacity;
    /// `Timestamp(Nanosecond, "UTC")`: ns since the Unix epoch.
    Timestamp(
        PrimitiveBuilder<TimestampNanosecondType> => PrimitiveArray<TimestampNanosecondType>
    ): i64 = timestamp_utc(), |rows| PrimitiveBuilder::with_capacity(rows).with_timezone(TIMEZONE);
    /// `Boolean`.
    Boolean(BooleanBuilder => BooleanArray): bool
        = DataType::Boolean, BooleanBuilder::with_capacity;
}

impl<T: ArrowPrimitiveType> ColumnBuilder for PrimitiveBuilder<T> {
    fn append_nulls(&mut self, n: usize) {
        PrimitiveBuilder::append_nulls(self, n);
    }

    fn finish(&mut self) -> Result<ArrayRef, FormatError> {
        Ok(Arc::new(PrimitiveBuilder::finish(self)))
    }
}

impl ColumnBuilder for BooleanBuilder {
    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n);
    }

    fn finish(&mut self) -> Result<ArrayRef, FormatError> {
        Ok(Arc::new(BooleanBuilder::finish(self)))
    }
}

/// `Dictionary(Int32, Utf8)`: text (names, paths), each distinct string stored once per row
/// group.
pub(crate) struct Text;

impl Storage for Text {
    type Builder = TextBuilder;
    type Reader<'b> = DictColumn<'b>;

    fn data_type() -> DataType {
        dictionary_utf8()
    }

    fn builder(rows: usize) -> Self::Builder {
        TextBuilder::with_capacity(rows)
    }

    fn reader<'b>(array: &'b ArrayRef, name: &'static str) -> Result<DictColumn<'b>, FormatError> {
        DictColumn::new(array, name)
    }
}

impl Cell<Text> for Cow<'_, str> {
    const NULLABLE: bool = false;

    fn is_null(&self) -> bool {
        false
    }

    #[inline]
    fn append(&self, builder: &mut TextBuilder) -> Result<(), FormatError> {
        builder.append(self)
    }

    fn value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl<'b> Read<'b, Text> for Cow<'b, str> {
    #[inline]
    fn read(reader: &DictColumn<'b>, row: usize) -> Result<Self, FormatError> {
        Ok(Cow::Borrowed(reader.str(row).unwrap_or_default()))
    }
}

impl Cell<Text> for Option<Cow<'_, str>> {
    const NULLABLE: bool = true;

    #[inline]
    fn is_null(&self) -> bool {
        self.is_none()
    }

    #[inline]
    fn append(&self, builder: &mut TextBuilder) -> Result<(), FormatError> {
        match self {
            Some(value) => builder.append(value),
            None => {
                builder.keys.append_null();
                Ok(())
            }
        }
    }

    fn value(&self) -> Value<'_> {
        self.as_deref().map_or(Value::Null, Value::Str)
    }
}

impl<'b> Read<'b, Text> for Option<Cow<'b, str>> {
    #[inline]
    fn read(reader: &DictColumn<'b>, row: usize) -> Result<Self, FormatError> {
        Ok(reader.str(row).map(Cow::Borrowed))
    }
}

/// The builder of a [`Text`] column: the batch's distinct strings, each once, and a key per
/// row. A string equal to the one appended last (a thread's name row after row, the
/// recording's source, a process's cgroup) takes its key after one comparison; another is
/// looked up by its hash (foldhash, seeded per builder: the strings come from the traced
/// processes). Arrow's `StringDictionaryBuilder` hashes every row, and Parquet's dictionary
/// encoder then hashes the value again; this halves the hashing on a recording's rows.
pub(crate) struct TextBuilder {
    keys: Int32Builder,
    values: StringBuilder,
    /// The keys of `values`, by the hash of their text.
    index: HashTable<i32>,
    hasher: foldhash::fast::RandomState,
    /// The key appended last, if not null.
    last: Option<i32>,
}

impl TextBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            keys: Int32Builder::with_capacity(rows),
            values: StringBuilder::with_capacity(256, 4096),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            last: None,
        }
    }

    /// The text of dictionary value `key`.
    fn text(values: &StringBuilder, key: i32) -> &[u8] {
        let offsets = values.offsets_slice();
        let key = key as usize;
        &values.values_slice()[offsets[key] as usize..offsets[key + 1] as usize]
    }

    #[inline]
    fn append(&mut self, value: &str) -> Result<(), FormatError> {
        let bytes = value.as_bytes();
        if let Some(last) = self.last
            && Self::text(&self.values, last) == bytes
        {
            self.keys.append_value(last);
            return Ok(());
        }
        let key = self.intern(bytes, value)?;
        self.last = Some(key);
        self.keys.append_value(key);
        Ok(())
    }

    fn intern(&mut self, bytes: &[u8], value: &str) -> Result<i32, FormatError> {
        let hash = self.hasher.hash_one(bytes);
        let values = &self.values;
        if let Some(&key) = self
            .index
            .find(hash, |&key| Self::text(values, key) == bytes)
        {
            return Ok(key);
        }
        let key = i32::try_from(self.values.offsets_slice().len() - 1).map_err(|_| {
            FormatError::InvalidEvent("more distinct strings in a column than Int32 keys".into())
        })?;
        self.values.append_value(value);
        let (values, hasher) = (&self.values, &self.hasher);
        self.index
            .insert_unique(hash, key, |&key| hasher.hash_one(Self::text(values, key)));
        Ok(key)
    }
}

impl ColumnBuilder for TextBuilder {
    fn append_nulls(&mut self, n: usize) {
        self.keys.append_nulls(n);
    }

    fn finish(&mut self) -> Result<ArrayRef, FormatError> {
        self.index.clear();
        self.last = None;
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            Arc::new(self.values.finish()),
        )?))
    }
}

/// A `Dictionary(Int32, Utf8)` column being read.
pub(crate) struct DictColumn<'b> {
    array: &'b DictionaryArray<Int32Type>,
    values: &'b StringArray,
}

impl<'b> DictColumn<'b> {
    fn new(column: &'b ArrayRef, name: &'static str) -> Result<Self, FormatError> {
        let array = column
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| unexpected_type(column, name))?;
        let values = array
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| unexpected_type(column, name))?;
        Ok(Self { array, values })
    }

    /// The dictionary index of a row, `None` when the row is null.
    fn key(&self, row: usize) -> Option<usize> {
        if self.array.is_null(row) {
            return None;
        }
        usize::try_from(self.array.keys().value(row)).ok()
    }

    fn str(&self, row: usize) -> Option<&'b str> {
        let key = self.key(row)?;
        (key < self.values.len() && self.values.is_valid(key)).then(|| self.values.value(key))
    }

    /// Maps every dictionary value; `None` for null values.
    fn map_values<T>(&self, f: impl Fn(&str) -> T) -> Vec<Option<T>> {
        (0..self.values.len())
            .map(|i| self.values.is_valid(i).then(|| f(self.values.value(i))))
            .collect()
    }
}

/// An enum stored by name (the `kind` and `syscall` columns).
pub(crate) trait Named: Copy + 'static {
    /// Every value this version writes, in dictionary order.
    const ALL: &'static [Self];
    /// Why `Other` (a name read from a newer file) cannot be written.
    const NOT_WRITABLE: &'static str;
    fn as_str(self) -> &'static str;
    /// The position in [`Named::ALL`]; `None` for `Other`.
    fn index(self) -> Option<usize>;
    /// A known value, or `Other` for any other name.
    fn from_name(name: &str) -> Self;
}

/// [`Named`] from the enum's own `ALL`, `as_str`, `index` and `from_name`.
macro_rules! named {
    ($($enum:ident: $not_writable:literal;)*) => {$(
        impl Named for $enum {
            const ALL: &'static [Self] = &$enum::ALL;
            const NOT_WRITABLE: &'static str = $not_writable;

            fn as_str(self) -> &'static str {
                $enum::as_str(self)
            }

            fn index(self) -> Option<usize> {
                $enum::index(self)
            }

            fn from_name(name: &str) -> Self {
                $enum::from_name(name)
            }
        }
    )*};
}

named! {
    RowKind: "row kind Other (a kind read from a newer file) cannot be written";
    Syscall: "syscall Other (a syscall read from a newer file) cannot be written";
}

/// `Dictionary(Int32, Utf8)` over the fixed list of an enum's names ([`Named::ALL`]): the
/// writer appends an integer, with no string hashing; the reader names each dictionary value
/// once per batch, and a name this version does not know (from a newer minor) reads as
/// `Other`.
pub(crate) struct Names<E>(PhantomData<E>);

impl<E: Named> Storage for Names<E> {
    type Builder = FixedDictionary;
    type Reader<'b> = NamesReader<'b, E>;

    fn data_type() -> DataType {
        dictionary_utf8()
    }

    fn builder(rows: usize) -> FixedDictionary {
        let names: Vec<&str> = E::ALL.iter().map(|e| e.as_str()).collect();
        FixedDictionary {
            keys: Int32Builder::with_capacity(rows),
            values: Arc::new(StringArray::from(names)),
        }
    }

    fn reader<'b>(
        array: &'b ArrayRef,
        name: &'static str,
    ) -> Result<NamesReader<'b, E>, FormatError> {
        let column = DictColumn::new(array, name)?;
        let names = column.map_values(E::from_name);
        Ok(NamesReader {
            column,
            names,
            name,
        })
    }
}

/// The index of `value` in [`Named::ALL`], or the error for `Other`.
fn index<E: Named>(value: E) -> Result<i32, FormatError> {
    let index = value
        .index()
        .ok_or_else(|| FormatError::InvalidEvent(E::NOT_WRITABLE.to_owned()))?;
    // The enums have a handful of variants: the index always fits.
    Ok(index as i32)
}

impl<E: Named> Cell<Names<E>> for E {
    const NULLABLE: bool = false;

    fn check(&self) -> Result<(), FormatError> {
        index(*self).map(drop)
    }

    fn is_null(&self) -> bool {
        false
    }

    #[inline]
    fn append(&self, builder: &mut FixedDictionary) -> Result<(), FormatError> {
        builder.keys.append_value(index(*self)?);
        Ok(())
    }

    fn value(&self) -> Value<'_> {
        Value::Str(self.as_str())
    }
}

impl<'b, E: Named> Read<'b, Names<E>> for E {
    fn read(reader: &NamesReader<'b, E>, row: usize) -> Result<Self, FormatError> {
        reader
            .get(row)
            .ok_or_else(|| FormatError::decode(reader.name, format_args!("row {row}: no value")))
    }
}

impl<E: Named> Cell<Names<E>> for Option<E> {
    const NULLABLE: bool = true;

    fn check(&self) -> Result<(), FormatError> {
        self.map_or(Ok(()), |value| index(value).map(drop))
    }

    #[inline]
    fn is_null(&self) -> bool {
        self.is_none()
    }

    #[inline]
    fn append(&self, builder: &mut FixedDictionary) -> Result<(), FormatError> {
        builder.keys.append_option(self.map(index).transpose()?);
        Ok(())
    }

    fn value(&self) -> Value<'_> {
        self.map_or(Value::Null, |value| Value::Str(value.as_str()))
    }
}

impl<'b, E: Named> Read<'b, Names<E>> for Option<E> {
    fn read(reader: &NamesReader<'b, E>, row: usize) -> Result<Self, FormatError> {
        Ok(reader.get(row))
    }
}

/// The builder of a [`Names`] column: dictionary keys over a dictionary made once.
pub(crate) struct FixedDictionary {
    keys: Int32Builder,
    values: ArrayRef,
}

impl ColumnBuilder for FixedDictionary {
    fn append_nulls(&mut self, n: usize) {
        self.keys.append_nulls(n);
    }

    fn finish(&mut self) -> Result<ArrayRef, FormatError> {
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            Arc::clone(&self.values),
        )?))
    }
}

/// A [`Names`] column being read, its dictionary already named.
pub(crate) struct NamesReader<'b, E> {
    column: DictColumn<'b>,
    /// One per dictionary value.
    names: Vec<Option<E>>,
    name: &'static str,
}

impl<E: Named> NamesReader<'_, E> {
    fn get(&self, row: usize) -> Option<E> {
        let key = self.column.key(row)?;
        self.names.get(key).copied().flatten()
    }
}

/// A column built row by row: the columns of format 1.0, set in most rows.
pub(crate) struct Dense<S: Storage>(S::Builder);

impl<S: Storage> Dense<S> {
    pub(crate) fn new(rows: usize) -> Self {
        Self(S::builder(rows))
    }

    #[inline]
    pub(crate) fn append<C: Cell<S>>(&mut self, value: &C) -> Result<(), FormatError> {
        value.append(&mut self.0)
    }

    /// The row group's column; the builder is left empty.
    pub(crate) fn finish(&mut self, _: &mut NullArrays) -> Result<ArrayRef, FormatError> {
        self.0.finish()
    }
}

/// A column that is null in most rows (the columns added after 1.0, which describe rarer row
/// kinds or optional facts): while it has only nulls, appending a row is counting it, and the
/// row group's array is a shared all-null one ([`NullArrays`]). The first value of a row group
/// starts a builder (with the nulls so far), which is dropped when the row group is finished.
pub(crate) struct Sparse<S: Storage> {
    builder: Option<S::Builder>,
    /// Rows appended while `builder` is `None`.
    nulls: usize,
    /// Capacity of a new builder.
    rows: usize,
}

impl<S: Storage> Sparse<S> {
    pub(crate) fn new(rows: usize) -> Self {
        Self {
            builder: None,
            nulls: 0,
            rows,
        }
    }

    /// Appends a value; a null while the column has only nulls is counted and nothing more (the
    /// common case, kept inline).
    #[inline(always)]
    pub(crate) fn append<C: Cell<S>>(&mut self, value: &C) -> Result<(), FormatError> {
        match &mut self.builder {
            // A column with values in this row group (in a recording, `source` and the
            // pid-namespace and cgroup columns of every row): the value goes straight in.
            Some(builder) => value.append(builder),
            None if value.is_null() => {
                self.nulls += 1;
                Ok(())
            }
            None => self.start_builder(value),
        }
    }

    /// The row group's first value: a builder with the nulls so far, then the value.
    #[cold]
    fn start_builder<C: Cell<S>>(&mut self, value: &C) -> Result<(), FormatError> {
        let mut builder = S::builder(self.rows);
        builder.append_nulls(self.nulls);
        value.append(self.builder.insert(builder))
    }

    /// The row group's column; the builder is dropped.
    pub(crate) fn finish(&mut self, null_arrays: &mut NullArrays) -> Result<ArrayRef, FormatError> {
        let nulls = std::mem::take(&mut self.nulls);
        match self.builder.take() {
            Some(mut builder) => builder.finish(),
            None => null_arrays.array(&S::data_type(), nulls),
        }
    }
}

/// All-null arrays of the [`Sparse`] column types, built over one shared zeroed buffer and one
/// shared null bitmap: a row group in which a column has no value allocates nothing for it.
#[derive(Default)]
pub(crate) struct NullArrays {
    /// 8 zero bytes per row: the values of any column type (at most 64 bits wide).
    zeros: Buffer,
    /// All null, as long as `zeros` has rows.
    nulls: Option<NullBuffer>,
}

impl NullArrays {
    fn array(&mut self, data_type: &DataType, rows: usize) -> Result<ArrayRef, FormatError> {
        let nulls = match &self.nulls {
            Some(nulls) if nulls.len() >= rows => nulls.slice(0, rows),
            _ => {
                let capacity = rows.next_power_of_two();
                self.zeros = Buffer::from_vec(vec![0_u64; capacity]);
                let nulls = NullBuffer::new_null(capacity);
                self.nulls = Some(nulls.clone());
                nulls.slice(0, rows)
            }
        };
        let zeros = &self.zeros;
        // `zeros` holds 8 bytes per row, 8-aligned: every slice below is in bounds and aligned.
        Ok(match data_type {
            DataType::UInt64 => Arc::new(PrimitiveArray::<UInt64Type>::new(
                ScalarBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::UInt32 => Arc::new(PrimitiveArray::<UInt32Type>::new(
                ScalarBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::Int32 => Arc::new(Int32Array::new(
                ScalarBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::Boolean => Arc::new(BooleanArray::new(
                BooleanBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::Dictionary(_, values) => Arc::new(DictionaryArray::<Int32Type>::try_new(
                Int32Array::new(ScalarBuffer::new(zeros.clone(), 0, rows), Some(nulls)),
                new_empty_array(values),
            )?),
            other => new_null_array(other, rows),
        })
    }
}

/// The same value, owning its strings (for [`crate::event::Event::into_owned`]).
pub(crate) trait IntoStatic {
    type Static;
    fn into_static(self) -> Self::Static;
}

impl IntoStatic for Cow<'_, str> {
    type Static = Cow<'static, str>;

    fn into_static(self) -> Cow<'static, str> {
        Cow::Owned(self.into_owned())
    }
}

impl<T: IntoStatic> IntoStatic for Option<T> {
    type Static = Option<T::Static>;

    fn into_static(self) -> Self::Static {
        self.map(T::into_static)
    }
}

/// Types without borrows are their own static form.
macro_rules! into_static_is_identity {
    ($($t:ty),*) => {$(
        impl IntoStatic for $t {
            type Static = $t;

            fn into_static(self) -> $t {
                self
            }
        }
    )*};
}

into_static_is_identity!(u32, u64, i32, i64, bool, RowKind, Syscall);

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder's dictionary holds each distinct string once, in first-seen order, and every
    /// row reads back its own string, whether it repeats the last one, an earlier one, or is
    /// null; a finished builder starts over.
    #[test]
    fn text_builder_keys_each_row_to_its_string() {
        let rows = [
            Some("nginx"),
            Some("nginx"),
            None,
            Some("nginx"),
            Some("bash"),
            Some("nginx"),
            Some(""),
            Some("bash"),
            Some("bash"),
            None,
            Some("ngin"),
        ];
        let mut builder = Text::builder(4);
        for _ in 0..2 {
            for row in rows {
                Cell::<Text>::append(&row.map(Cow::Borrowed), &mut builder).expect("append");
            }
            let array = builder.finish().expect("finish");
            let column = DictColumn::new(&array, "test").expect("a text column");
            let read: Vec<_> = (0..rows.len()).map(|row| column.str(row)).collect();
            assert_eq!(read, rows);
            let values: Vec<_> = (0..column.values.len())
                .map(|i| column.values.value(i))
                .collect();
            assert_eq!(values, ["nginx", "bash", "", "ngin"]);
        }
    }
}
