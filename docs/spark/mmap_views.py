"""The mmap-capture views (views.sql beside this file) in a PySpark session.

    from pyspark.sql import SparkSession
    import mmap_views

    spark = (SparkSession.builder
             .config("spark.sql.legacy.parquet.nanosAsLong", "true")
             .getOrCreate())
    mmap_views.register(spark, "s3a://bucket/captures/")
    spark.sql("SELECT syscall, count(*) FROM calls GROUP BY syscall").show()

`register` runs the statements of views.sql with `mmap_captures` set to the path, so that the
session has `events`, `calls`, `lifecycle`, `snapshots`, `lost` (as in `mmap-analyze sql`),
`mmap_events` (every row, decoded) and `mmap_errno_names`.
"""

from pathlib import Path

VIEWS_SQL = Path(__file__).with_name("views.sql")


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
    for statement in statements(Path(views_sql).read_text()):
        spark.sql(statement)
