//! The Arrow schema of format v1.1 (see docs/FORMAT.md), and the columns as values for code
//! that treats every column alike.
//!
//! The columns themselves are described once, in the column table (format/src/columns.rs);
//! [`col`], [`COLUMNS`] and [`COLUMNS_ADDED_BY_MINOR`] come from it.

use std::{
    fmt,
    sync::{Arc, LazyLock},
};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Serialize, Serializer};

pub use crate::columns::{COLUMNS, COLUMNS_BY_MINOR, col};
use crate::event::Event;

/// The time zone of the `ts` and `ts_exit` columns.
pub const TIMEZONE: &str = "UTC";

/// `Dictionary(Int32, Utf8)`, the type of the string columns.
pub fn dictionary_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// `Timestamp(Nanosecond, "UTC")`, the type of the time columns.
pub fn timestamp_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TIMEZONE.into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        COLUMNS.iter().map(Column::arrow_field).collect::<Vec<_>>(),
    ))
});

/// The schema of the current format version (v1.2), without metadata attached.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Columns added by each minor version of format major 1 after 1.0, oldest first: a file of
/// minor `m` lacks the columns listed for every minor greater than `m`, and the reader fills
/// them with nulls. Every column listed here is nullable.
///
/// [`COLUMNS_BY_MINOR`] without the columns of 1.0; the column table makes it (a 1.3 that adds
/// a column adds a group `minor 3` there).
pub const COLUMNS_ADDED_BY_MINOR: &[(u32, &[&str])] = match COLUMNS_BY_MINOR.split_first() {
    Some((_v1_0, added)) => added,
    None => &[],
};

/// One column of the current format version, as the column table describes it.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The column's name in a capture (one of [`col`]); also its header in CSV output.
    pub name: &'static str,
    /// The [`Event`] field that holds it (`ts_ns` for `ts`), or for a derived column the
    /// `Event` method that computes it (`errno`); also its key in JSON output.
    pub field: &'static str,
    /// The minor version of format 1 that added the column (0 for the columns of 1.0).
    pub minor: u32,
    pub nullable: bool,
    pub(crate) data_type: fn() -> DataType,
    pub(crate) get: for<'e> fn(&'e Event<'_>) -> Value<'e>,
}

impl Column {
    /// The Arrow type of the column.
    pub fn data_type(&self) -> DataType {
        (self.data_type)()
    }

    /// The column's field in [`schema()`].
    pub fn arrow_field(&self) -> Field {
        Field::new(self.name, self.data_type(), self.nullable)
    }

    /// The value of this column in `event` (for a derived column, what the writer stores).
    pub fn value<'e>(&self, event: &'e Event<'_>) -> Value<'e> {
        (self.get)(event)
    }

    /// The column named `name`.
    pub fn named(name: &str) -> Option<&'static Self> {
        COLUMNS.iter().find(|column| column.name == name)
    }
}

/// The value of one column in one row ([`Column::value`]). It displays as CSV writes it (null
/// as the empty string, numbers in decimal) and serializes as JSON writes it (null as `null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'e> {
    Null,
    Bool(bool),
    U32(u32),
    U64(u64),
    I32(i32),
    I64(i64),
    /// A string, or the name of a `kind` or `syscall`.
    Str(&'e str),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => Ok(()),
            Self::Bool(value) => value.fmt(f),
            Self::U32(value) => value.fmt(f),
            Self::U64(value) => value.fmt(f),
            Self::I32(value) => value.fmt(f),
            Self::I64(value) => value.fmt(f),
            Self::Str(value) => value.fmt(f),
        }
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Null => serializer.serialize_none(),
            Self::Bool(value) => serializer.serialize_bool(value),
            Self::U32(value) => serializer.serialize_u32(value),
            Self::U64(value) => serializer.serialize_u64(value),
            Self::I32(value) => serializer.serialize_i32(value),
            Self::I64(value) => serializer.serialize_i64(value),
            Self::Str(value) => serializer.serialize_str(value),
        }
    }
}

/// `From` each native column type, and from its `Option` (`None` is [`Value::Null`]).
macro_rules! value_from {
    ($($native:ty => $variant:ident),*) => {$(
        impl From<$native> for Value<'_> {
            fn from(value: $native) -> Self {
                Self::$variant(value)
            }
        }

        impl From<Option<$native>> for Value<'_> {
            fn from(value: Option<$native>) -> Self {
                value.map_or(Self::Null, Self::$variant)
            }
        }
    )*};
}

value_from!(bool => Bool, u32 => U32, u64 => U64, i32 => I32, i64 => I64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_the_contract_columns_in_order() {
        let schema = schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, col::ALL);
        assert!(schema.metadata().is_empty());
        let mut split = col::V1_0.to_vec();
        split.extend(col::ADDED_IN_1_1);
        split.extend(col::ADDED_IN_1_2);
        split.extend(col::ADDED_IN_1_4);
        assert_eq!(split, col::ALL);
    }

    /// Published versions never change: later minors only add groups after these.
    #[test]
    fn the_columns_of_1_0_and_1_1_are_frozen() {
        assert_eq!(
            col::V1_0,
            [
                "kind",
                "syscall",
                "ts",
                "ts_exit",
                "cpu",
                "pid",
                "tid",
                "ppid",
                "uid",
                "gid",
                "comm",
                "cgroup_id",
                "addr",
                "len",
                "prot",
                "flags",
                "fd",
                "off",
                "ret",
                "errno",
                "file_dev",
                "file_ino",
                "file_name",
            ]
        );
        assert_eq!(
            col::ADDED_IN_1_1,
            [
                "source",
                "new_addr",
                "new_len",
                "child_pid",
                "exit_code",
                "file_path",
                "path_source",
                "path_truncated",
                "file_deleted",
                "file_memfd",
                "cgroup_path",
                "pidns_ino",
                "ns_pid",
                "ns_tid",
                "lost_count",
            ]
        );
    }

    #[test]
    fn every_column_after_1_0_is_listed_by_its_minor() {
        assert_eq!(COLUMNS_BY_MINOR[0], (0, &col::V1_0[..]));
        assert_eq!(COLUMNS_ADDED_BY_MINOR, &COLUMNS_BY_MINOR[1..]);
        let listed: Vec<&str> = COLUMNS_BY_MINOR
            .iter()
            .flat_map(|(_, columns)| columns.iter().copied())
            .collect();
        assert_eq!(listed, col::ALL);
        let minors: Vec<u32> = COLUMNS_BY_MINOR.iter().map(|(minor, _)| *minor).collect();
        assert!(minors.is_sorted_by(|a, b| a < b), "{minors:?}");
        assert!(minors.iter().all(|minor| *minor <= crate::FORMAT_MINOR));
    }

    #[test]
    fn columns_added_by_minors_are_nullable_and_known() {
        let schema = schema();
        for (_, columns) in COLUMNS_ADDED_BY_MINOR {
            for column in *columns {
                let field = schema
                    .field_with_name(column)
                    .expect("fix-up column in the schema");
                assert!(field.is_nullable(), "{column} must be nullable");
            }
        }
    }

    #[test]
    fn columns_describe_the_schema() {
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names, col::ALL);
        for (minor, group) in COLUMNS_BY_MINOR {
            for name in *group {
                let column = Column::named(name).expect("column");
                assert_eq!(column.minor, *minor, "{name}");
                assert_eq!(
                    *schema().field_with_name(name).expect("field"),
                    column.arrow_field()
                );
            }
        }
        let mut fields: Vec<&str> = COLUMNS.iter().map(|c| c.field).collect();
        fields.sort_unstable();
        fields.dedup();
        assert_eq!(
            fields.len(),
            COLUMNS.len(),
            "one Event field or method per column"
        );
        let ts = Column::named(col::TS).expect("ts");
        assert_eq!((ts.field, ts.nullable), ("ts_ns", false));
        assert_eq!(ts.data_type(), timestamp_utc());
        assert_eq!(Column::named(col::ERRNO).expect("errno").field, "errno");
        assert!(Column::named("teleport").is_none());
    }

    #[test]
    fn values_display_as_csv_and_serialize_as_json() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::U32(u32::MAX),
            Value::U64(u64::MAX),
            Value::I32(i32::MIN),
            Value::I64(i64::MIN),
            Value::Str("a \"b\""),
        ];
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        assert_eq!(
            shown,
            [
                "",
                "true",
                "4294967295",
                "18446744073709551615",
                "-2147483648",
                "-9223372036854775808",
                "a \"b\"",
            ]
        );
        assert_eq!(
            serde_json::to_string(&values).expect("json"),
            r#"[null,true,4294967295,18446744073709551615,-2147483648,-9223372036854775808,"a \"b\""]"#
        );
        assert_eq!(Value::from(Some(7_u64)), Value::U64(7));
        assert_eq!(Value::from(None::<i32>), Value::Null);
    }
}
