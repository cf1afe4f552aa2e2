//! `define_columns!`: what the column table yields.
//!
//! From one table (`super`), in schema order:
//! - `col`: the name of every column, and the names each group adds (`col::V1_0`, ...);
//! - `COLUMNS` and `COLUMNS_BY_MINOR`: every column as a [`crate::schema::Column`] (name, Event
//!   field, minor, Arrow field, value), for the schema, the fix-up table and code that treats
//!   every column alike;
//! - `Event`: one field per stored column, with its `Default` and `into_owned`;
//! - `Builders`: the writer's builder of every column (create, append, finish);
//! - `BatchRows`: the reader's decoding of a record batch into events.
//!
//! Every piece names the column's Rust type and storage once, so a column that misses one is a
//! compile error, not a run-time one.
//!
//! A row of the table is either a stored column, `NAME "name" => /// docs pub field: Type as
//! Storage;` (an `Event` field), or a derived one, `NAME "name" => fn method: Type as Storage;`
//! (written from `Event::method()`, not read back).

macro_rules! define_columns {
    ($(
        $(#[doc = $group_doc:literal])*
        $GROUP:ident = minor $minor:literal, $layout:ident {$(
            $NAME:ident $name:literal =>
                $( $(#[doc = $doc:literal])* pub $field:ident )?
                $( fn $method:ident )?
                : $ty:ty as $storage:ty;
        )*}
    )*) => {
        /// Column names, in schema order.
        pub mod col {
            $($(
                pub const $NAME: &str = $name;
            )*)*

            $(
                $(#[doc = $group_doc])*
                pub const $GROUP: [&str; [$($NAME),*].len()] = [$($NAME),*];
            )*

            /// Every column of the current format version, in schema order.
            pub const ALL: [&str; [$($($NAME),*),*].len()] = [$($($NAME,)*)*];
        }

        /// Every column of the current format version, in schema order.
        pub static COLUMNS: [Column; col::ALL.len()] = Event::COLUMNS;

        /// The columns each minor version of format major 1 added, oldest first (minor 0: the
        /// columns of 1.0).
        pub const COLUMNS_BY_MINOR: &[(u32, &[&str])] = &[$(($minor, &col::$GROUP)),*];

        impl<'a> Event<'a> {
            /// [`COLUMNS`], where the column types (which name `'a`) can be written.
            const COLUMNS: [Column; col::ALL.len()] = [$($(
                Column {
                    name: col::$NAME,
                    field: stringify!($($field)? $($method)?),
                    minor: $minor,
                    nullable: <$ty as Cell<$storage>>::NULLABLE,
                    data_type: <$storage as Storage>::data_type,
                    get: $(|e| Cell::<$storage>::value(&e.$field))?
                        $(|e| Value::from(e.$method()))?,
                },
            )*)*];
        }

        /// One row of a capture. The strings borrow when writing (no allocation per row) and
        /// are owned when reading.
        ///
        /// Which columns each [`RowKind`] fills is described in docs/FORMAT.md; the others are
        /// `None`. Build rows with struct update syntax, `Event { kind, ts_ns,
        /// ..Default::default() }`: fields added by later minor versions then need no change
        /// at the call site.
        ///
        /// The fields are declared by the column table (format/src/columns.rs), one per
        /// column; the `errno` column is derived from `ret` ([`Event::errno`]).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Event<'a> {$($($(
            $(#[doc = $doc])*
            pub $field: $ty,
        )?)*)*}

        impl Default for Event<'_> {
            /// A `syscall` row with no syscall, every number 0, every string empty, every
            /// option `None`.
            fn default() -> Self {
                Self {$($($(
                    $field: Default::default(),
                )?)*)*}
            }
        }

        impl Event<'_> {
            /// Copies the borrowed strings, if any.
            pub fn into_owned(self) -> Event<'static> {
                Event {$($($(
                    $field: IntoStatic::into_static(self.$field),
                )?)*)*}
            }
        }

        /// The writer's builder of every column, in schema order.
        pub(crate) struct Builders {
            $($(
                $($field)? $($method)?: $layout<$storage>,
            )*)*
            /// Shared by the sparse columns without a value in a row group.
            nulls: NullArrays,
        }

        impl Builders {
            pub(crate) fn new(rows: usize) -> Self {
                Self {
                    $($(
                        $($field)? $($method)?: $layout::new(rows),
                    )*)*
                    nulls: NullArrays::default(),
                }
            }

            /// Appends one row. Every value is checked first (only an `Other` kind or syscall
            /// fails), so a refused row leaves nothing behind; appending can then fail only on
            /// dictionary key overflow, which `MAX_ROW_GROUP_ROWS` rules out.
            #[inline]
            pub(crate) fn append(&mut self, e: &Event<'_>) -> Result<(), FormatError> {
                $($(
                    Cell::<$storage>::check($(&e.$field)? $(&e.$method())?)?;
                )*)*
                $($(
                    self.$($field)? $($method)?.append($(&e.$field)? $(&e.$method())?)?;
                )*)*
                Ok(())
            }

            /// The buffered columns, in schema order; the builders are left empty.
            pub(crate) fn finish(&mut self) -> Result<Vec<ArrayRef>, FormatError> {
                let nulls = &mut self.nulls;
                Ok(vec![$($(
                    self.$($field)? $($method)?.finish(nulls)?,
                )*)*])
            }
        }

        /// One batch of the current schema, read row by row into events whose strings borrow
        /// from it (the derived columns are not read). Decoding a row at a time keeps it in
        /// the cache while it is used; a whole batch of events is megabytes.
        pub struct BatchRows<'a> {
            $($($(
                $field: <$storage as Storage>::Reader<'a>,
            )?)*)*
            rows: usize,
        }

        impl<'a> BatchRows<'a> {
            /// Checks that every column is there, with its type.
            pub fn new(batch: &'a RecordBatch) -> Result<Self, FormatError> {
                Ok(Self {
                    $($($(
                        $field: read_column::<$storage, $ty>(batch, col::$NAME)?,
                    )?)*)*
                    rows: batch.num_rows(),
                })
            }

            /// The number of rows.
            pub fn len(&self) -> usize {
                self.rows
            }

            /// Whether the batch has no row.
            pub fn is_empty(&self) -> bool {
                self.rows == 0
            }

            /// Row `row` (below [`BatchRows::len`]).
            #[inline]
            pub fn row(&self, row: usize) -> Result<Event<'a>, FormatError> {
                Ok(Event {$($($(
                    $field: <$ty as Read<'a, $storage>>::read(&self.$field, row)?,
                )?)*)*})
            }
        }
    };
}
