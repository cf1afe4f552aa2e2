"""The mmap-capture views (views.sql beside this file) in a PySpark session.

    from pyspark.sql import SparkSession
    import mmap_views

    spark = (SparkSession.builder
             .config("spark.sql.legacy.parquet.nanosAsLong", "true")
             .getOrCreate())
    mmap_views.register(spark, "s3a://bucket/captures/")
    spark.sql("SELECT syscall, count(*) FROM calls GROUP BY syscall").show()

`register` runs the statements of views.sql with `mmap_captures` set to the path and the
partition columns found there (`host`, `date` of a host=H/date=D tree), so that the session has
`events`, `calls`, `lifecycle`, `snapshots`, `lost` (as in `mmap-analyze sql`), `mmap_events`
(every row, decoded) and `mmap_errno_names`. Spark 3.5 and 4.x.
"""

from pathlib import Path

VIEWS_SQL = Path(__file__).with_name("views.sql")

# The columns of the capture format (docs/FORMAT.md, format 1.4): any other column of the
# captures' table is a partition column (key=value directories).
FORMAT_COLUMNS = {
    "kind", "syscall", "ts", "ts_exit", "cpu", "pid", "tid", "ppid", "uid", "gid", "comm",
    "cgroup_id", "addr", "len", "prot", "flags", "fd", "off", "ret", "errno", "file_dev",
    "file_ino", "file_name", "source", "new_addr", "new_len", "child_pid", "exit_code",
    "file_path", "path_source", "path_truncated", "file_deleted", "file_memfd", "cgroup_path",
    "pidns_ino", "ns_pid", "ns_tid", "lost_count", "path_lossy", "stack_id", "frame_index",
    "frame_addr", "frame_module", "frame_build_id", "frame_offset", "frame_function",
    "frame_file", "frame_line", "symbol_source",
}  # fmt: skip


def statements(text):
    """The statements of a SQL file: `--` comments dropped, split at `;` that end a line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    parts = "\n".join(lines).split(";\n")
    return [part.strip().rstrip(";") for part in parts if part.strip()]


def register(spark, path, views_sql=VIEWS_SQL):
    """Creates the views over the captures at `path` (a file, a directory, a glob, a URL)."""
    if "'" in path or "${" in path:
        raise ValueError(f"a path with ' or ${{ cannot be substituted into SQL: {path!r}")
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    spark.conf.set("mmap_captures", path)
    partitions = None
    for statement in statements(Path(views_sql).read_text()):
        if partitions is None and "${mmap_partition" in statement:
            partitions = partition_columns(spark)
        spark.sql(statement)


def partition_columns(spark):
    """Sets the views' partition variables from the columns of `mmap_raw` (created before):
    the key=value columns, and a NULL `host` when there is none of that name."""
    names = [c for c in spark.table("mmap_raw").columns if c not in FORMAT_COLUMNS]
    columns = list(names)
    if "host" not in names:
        columns.insert(0, "CAST(NULL AS STRING) AS host")
        names.insert(0, "host")
    spark.conf.set("mmap_partition_columns", ", ".join(columns))
    spark.conf.set("mmap_partition_names", ", ".join(names))
    return names
