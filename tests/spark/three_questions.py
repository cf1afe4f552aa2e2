"""The three questions of `mmap-analyze sql` (calls per system call, top processes by mapped
bytes, failures by errno) asked of another engine over the same captures, as JSON on stdout:

    {"engine": ..., "version": ..., "questions": {NAME: SQL}, "answers": {NAME: [ROW, ...]},
     "checks": {...}, "seconds": {...}}

Each ROW is an object {column: value} with integers as JSON integers. The SQL of the three
questions is the same text for every engine (and for mmap-analyze, which the Rust test
tests/tests/end_to_end/spark.rs runs on the same directory); each engine gets the views it
needs to answer it:

- spark: docs/spark/views.sql through docs/spark/mmap_views.py (the recipe FLEET.md documents),
  PySpark in local mode;
- duckdb, polars: a `calls` view over the same files, with `errno_name` from the errno table of
  views.sql.

Usage: python three_questions.py --engine spark|duckdb|polars DIR [--crafted DIR] [--tree DIR]
                                  [--old DIR]

With spark, --crafted DIR also decodes the crafted values of the captures in that directory
(every name rule: unknown bits, huge page sizes, bit 63, errno numbers without a name), and
--tree DIR reads a host=H/date=D tree (partition columns), and --old DIR asks the three
questions again of files of older format minors only (columns they lack read as NULL).
"""

import argparse
import decimal
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPARK_DOCS = REPO / "docs" / "spark"

QUESTIONS = {
    "calls_per_syscall": "SELECT syscall, count(*) AS calls FROM calls GROUP BY syscall",
    "top_processes_by_mapped_bytes": (
        "SELECT pid, sum(len) AS mapped_bytes FROM calls WHERE syscall = 'mmap' AND ret >= 0 "
        "GROUP BY pid ORDER BY mapped_bytes DESC, pid LIMIT 10"
    ),
    "failures_by_errno": (
        "SELECT errno, errno_name, count(*) AS failures FROM calls WHERE errno IS NOT NULL "
        "GROUP BY errno, errno_name"
    ),
}


def plain(value):
    """A JSON-able value: Decimal and numpy integers as int."""
    if isinstance(value, decimal.Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"not an integer: {value}")
        return int(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def rows_of(records):
    return [{key: plain(value) for key, value in record.items()} for record in records]


def errno_table():
    """(number, name) pairs from the VALUES list of mmap_errno_names in views.sql."""
    text = (SPARK_DOCS / "views.sql").read_text()
    block = text.split("CREATE OR REPLACE TEMPORARY VIEW mmap_errno_names", 1)[1].split(";", 1)[0]
    pairs = [(int(n), name) for n, name in re.findall(r"\((\d+), '([A-Z0-9_]+)'\)", block)]
    if len(pairs) < 100:
        raise SystemExit("views.sql: the errno table was not found")
    return pairs


NAMES_SQL = (
    "SELECT DISTINCT syscall, prot, prot_names, flags, flags_names, errno, errno_name FROM calls"
)


def spark(directory, crafted=None, tree=None, old=None):
    sys.path.insert(0, str(SPARK_DOCS))
    import mmap_views
    from pyspark.sql import SparkSession

    seconds = {}
    start = time.monotonic()
    session = (
        SparkSession.builder.master("local[2]")
        .appName("mmap-capture three questions")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    seconds["session"] = time.monotonic() - start
    start = time.monotonic()
    mmap_views.register(session, str(directory))

    def run(sql):
        return rows_of(row.asDict() for row in session.sql(sql).collect())

    answers = {name: run(sql) for name, sql in QUESTIONS.items()}
    seconds["questions"] = time.monotonic() - start
    start = time.monotonic()
    checks = {
        # Exact times: nanoseconds as BIGINT; the TIMESTAMPs as microseconds.
        "times": run(
            "SELECT count(*) AS calls, min(ts_ns) AS first_ns, max(ts_exit_ns) AS last_ns, "
            "sum(dur_ns) AS dur_ns, unix_micros(min(ts)) AS first_us, "
            "unix_micros(max(ts_exit)) AS last_us FROM calls"
        ),
        # The decoded names, beside the numbers they decode.
        "call_names": run(NAMES_SQL),
        "snapshot_names": run(
            "SELECT DISTINCT prot, prot_names, flags, flags_names FROM snapshots"
        ),
        "kinds": run(
            "SELECT 'calls' AS view, count(*) AS n FROM calls UNION ALL "
            "SELECT 'lifecycle', count(*) FROM lifecycle UNION ALL "
            "SELECT 'snapshots', count(*) FROM snapshots UNION ALL "
            "SELECT 'lost', count(*) FROM lost UNION ALL "
            "SELECT 'events', count(*) FROM events"
        ),
        "files": run("SELECT count(DISTINCT file) AS files FROM events"),
        "errno_names": run("SELECT errno_number, errno_name FROM mmap_errno_names"),
        # The format's columns as views.sql declares them and as mmap_views.py knows them.
        "raw_columns": session.table("mmap_raw").columns,
        "format_columns": sorted(mmap_views.FORMAT_COLUMNS),
    }
    if crafted is not None:
        mmap_views.register(session, str(crafted))
        checks["crafted_names"] = run(NAMES_SQL)
    if old is not None:
        mmap_views.register(session, str(old))
        checks["old_answers"] = {name: run(sql) for name, sql in QUESTIONS.items()}
    if tree is not None:
        mmap_views.register(session, str(tree))
        checks["tree"] = run(
            "SELECT host, CAST(date AS STRING) AS date, syscall, count(*) AS calls FROM calls "
            "GROUP BY host, date, syscall"
        )
    seconds["checks"] = time.monotonic() - start
    version = session.version
    session.stop()
    return version, answers, checks, seconds


def duckdb_engine(directory, **_spark_only):
    import duckdb

    start = time.monotonic()
    con = duckdb.connect()
    con.execute("CREATE TABLE errno_names (errno_number INTEGER, errno_name VARCHAR)")
    con.executemany("INSERT INTO errno_names VALUES (?, ?)", errno_table())
    glob = str(Path(directory) / "*.parquet").replace("'", "''")
    con.execute(
        "CREATE VIEW calls AS SELECT c.*, n.errno_name "
        f"FROM read_parquet('{glob}', union_by_name = true) c "
        "LEFT JOIN errno_names n ON c.errno = n.errno_number WHERE c.kind = 'syscall'"
    )

    def run(sql):
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return rows_of(dict(zip(names, row)) for row in cursor.fetchall())

    answers = {name: run(sql) for name, sql in QUESTIONS.items()}
    return duckdb.__version__, answers, {}, {"questions": time.monotonic() - start}


def polars_engine(directory, **_spark_only):
    import polars as pl

    start = time.monotonic()
    numbers, names = zip(*errno_table())
    errno_names = pl.DataFrame(
        {"errno": pl.Series(numbers, dtype=pl.Int32), "errno_name": list(names)}
    ).lazy()
    events = pl.scan_parquet(str(Path(directory) / "*.parquet"), missing_columns="insert")
    calls = events.filter(pl.col("kind") == "syscall").join(
        errno_names, on="errno", how="left"
    )
    ctx = pl.SQLContext(calls=calls)

    def run(sql):
        return rows_of(ctx.execute(sql).collect().to_dicts())

    answers = {name: run(sql) for name, sql in QUESTIONS.items()}
    return pl.__version__, answers, {}, {"questions": time.monotonic() - start}


ENGINES = {"spark": spark, "duckdb": duckdb_engine, "polars": polars_engine}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--crafted", type=Path)
    parser.add_argument("--tree", type=Path)
    parser.add_argument("--old", type=Path)
    args = parser.parse_args()
    version, answers, checks, seconds = ENGINES[args.engine](
        args.directory, crafted=args.crafted, tree=args.tree, old=args.old
    )
    json.dump(
        {
            "engine": args.engine,
            "version": version,
            "questions": QUESTIONS,
            "answers": answers,
            "checks": checks,
            "seconds": seconds,
        },
        sys.stdout,
        default=str,
    )
    print()


if __name__ == "__main__":
    main()
