//! The Arrow schema of format v1.1 (see docs/FORMAT.md).

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column names, in schema order.
pub mod col {
    pub const KIND: &str = "kind";
    pub const SYSCALL: &str = "syscall";
    pub const TS: &str = "ts";
    pub const TS_EXIT: &str = "ts_exit";
    pub const CPU: &str = "cpu";
    pub const PID: &str = "pid";
    pub const TID: &str = "tid";
    pub const PPID: &str = "ppid";
    pub const UID: &str = "uid";
    pub const GID: &str = "gid";
    pub const COMM: &str = "comm";
    pub const CGROUP_ID: &str = "cgroup_id";
    pub const ADDR: &str = "addr";
    pub const LEN: &str = "len";
    pub const PROT: &str = "prot";
    pub const FLAGS: &str = "flags";
    pub const FD: &str = "fd";
    pub const OFF: &str = "off";
    pub const RET: &str = "ret";
    pub const ERRNO: &str = "errno";
    pub const FILE_DEV: &str = "file_dev";
    pub const FILE_INO: &str = "file_ino";
    pub const FILE_NAME: &str = "file_name";
    // Added by format 1.1.
    pub const SOURCE: &str = "source";
    pub const NEW_ADDR: &str = "new_addr";
    pub const NEW_LEN: &str = "new_len";
    pub const CHILD_PID: &str = "child_pid";
    pub const EXIT_CODE: &str = "exit_code";
    pub const FILE_PATH: &str = "file_path";
    pub const PATH_SOURCE: &str = "path_source";
    pub const PATH_TRUNCATED: &str = "path_truncated";
    pub const FILE_DELETED: &str = "file_deleted";
    pub const FILE_MEMFD: &str = "file_memfd";
    pub const CGROUP_PATH: &str = "cgroup_path";
    pub const PIDNS_INO: &str = "pidns_ino";
    pub const NS_PID: &str = "ns_pid";
    pub const NS_TID: &str = "ns_tid";
    pub const LOST_COUNT: &str = "lost_count";

    /// The columns of format 1.0, in schema order.
    pub const V1_0: [&str; 23] = [
        KIND, SYSCALL, TS, TS_EXIT, CPU, PID, TID, PPID, UID, GID, COMM, CGROUP_ID, ADDR, LEN,
        PROT, FLAGS, FD, OFF, RET, ERRNO, FILE_DEV, FILE_INO, FILE_NAME,
    ];

    /// The columns added by format 1.1, in schema order (after [`V1_0`]).
    pub const ADDED_IN_1_1: [&str; 15] = [
        SOURCE,
        NEW_ADDR,
        NEW_LEN,
        CHILD_PID,
        EXIT_CODE,
        FILE_PATH,
        PATH_SOURCE,
        PATH_TRUNCATED,
        FILE_DELETED,
        FILE_MEMFD,
        CGROUP_PATH,
        PIDNS_INO,
        NS_PID,
        NS_TID,
        LOST_COUNT,
    ];

    /// Every column of the current format version, in schema order.
    pub const ALL: [&str; 38] = concat(V1_0, ADDED_IN_1_1);

    /// `a` then `b` (so the full list is derived from the per-version lists, not kept twice).
    const fn concat(a: [&'static str; 23], b: [&'static str; 15]) -> [&'static str; 38] {
        let mut out = [""; 38];
        let mut i = 0;
        while i < a.len() {
            out[i] = a[i];
            i += 1;
        }
        let mut j = 0;
        while j < b.len() {
            out[a.len() + j] = b[j];
            j += 1;
        }
        out
    }
}

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
    use col::*;
    let dict = dictionary_utf8;
    let ts = timestamp_utc;
    Arc::new(Schema::new(vec![
        Field::new(KIND, dict(), false),
        Field::new(SYSCALL, dict(), true),
        Field::new(TS, ts(), false),
        Field::new(TS_EXIT, ts(), true),
        Field::new(CPU, DataType::UInt32, false),
        Field::new(PID, DataType::UInt32, false),
        Field::new(TID, DataType::UInt32, false),
        Field::new(PPID, DataType::UInt32, false),
        Field::new(UID, DataType::UInt32, false),
        Field::new(GID, DataType::UInt32, false),
        Field::new(COMM, dict(), false),
        Field::new(CGROUP_ID, DataType::UInt64, false),
        Field::new(ADDR, DataType::UInt64, true),
        Field::new(LEN, DataType::UInt64, true),
        Field::new(PROT, DataType::UInt64, true),
        Field::new(FLAGS, DataType::UInt64, true),
        Field::new(FD, DataType::Int32, true),
        Field::new(OFF, DataType::UInt64, true),
        Field::new(RET, DataType::Int64, true),
        Field::new(ERRNO, DataType::Int32, true),
        Field::new(FILE_DEV, DataType::UInt64, true),
        Field::new(FILE_INO, DataType::UInt64, true),
        Field::new(FILE_NAME, dict(), true),
        // Format 1.1.
        Field::new(SOURCE, dict(), true),
        Field::new(NEW_ADDR, DataType::UInt64, true),
        Field::new(NEW_LEN, DataType::UInt64, true),
        Field::new(CHILD_PID, DataType::UInt32, true),
        Field::new(EXIT_CODE, DataType::Int32, true),
        Field::new(FILE_PATH, dict(), true),
        Field::new(PATH_SOURCE, dict(), true),
        Field::new(PATH_TRUNCATED, DataType::Boolean, true),
        Field::new(FILE_DELETED, DataType::Boolean, true),
        Field::new(FILE_MEMFD, DataType::Boolean, true),
        Field::new(CGROUP_PATH, dict(), true),
        Field::new(PIDNS_INO, DataType::UInt32, true),
        Field::new(NS_PID, DataType::UInt32, true),
        Field::new(NS_TID, DataType::UInt32, true),
        Field::new(LOST_COUNT, DataType::UInt64, true),
    ]))
});

/// The schema of the current format version (v1.1), without metadata attached.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Columns added by each minor version of format major 1, oldest first: a file of minor `m`
/// lacks the columns listed for every minor greater than `m`, and the reader fills them with
/// nulls. Every column listed here must be nullable.
///
/// A future 1.2 that adds, say, a `pgoff_pages` column adds `(2, &["pgoff_pages"])` here.
pub const COLUMNS_ADDED_BY_MINOR: &[(u32, &[&str])] = &[(1, &col::ADDED_IN_1_1)];

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
        assert_eq!(split, col::ALL);
    }

    #[test]
    fn every_column_after_1_0_is_listed_by_its_minor() {
        let listed: Vec<&str> = COLUMNS_ADDED_BY_MINOR
            .iter()
            .flat_map(|(_, columns)| columns.iter().copied())
            .collect();
        assert_eq!(listed, col::ALL[col::V1_0.len()..]);
        assert!(
            COLUMNS_ADDED_BY_MINOR
                .iter()
                .all(|(minor, _)| *minor <= crate::FORMAT_MINOR)
        );
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
}
