#!/usr/bin/env python3
"""Analyzer benchmark: mmap-analyze beside DuckDB, same questions, same files, same run.

Usage (from the repository root, with the test venv's python, which has duckdb):

    $(VENV)/bin/python tests/bench/analyze.py --bin target/release \
        --capture target/bench/gen.parquet --capture target/bench/gen/ [--reps 3]

For every capture and every question it runs `mmap-analyze ...` (stdout to /dev/null) and a
DuckDB query in a fresh Python process, alternately, REPS times each, and reports the median
wall time and the median peak RSS (GNU time's %M of the child). mmap-analyze's time is
the whole process (start, open, query, print); DuckDB's is the query alone, measured inside its
process after `import duckdb` (so interpreter start and import, ~0.1 s, count against us, not
against DuckDB); DuckDB's RSS includes the Python interpreter (~40 MiB). When the DuckDB command
line tool is there too (PyPI's `duckdb-cli`, in the venv of `make venv`), the same queries also
run as a whole `duckdb -c` process beside ours: the same shape as our command, start to exit.

Questions: summary, `top --by bytes --group file`, an `sql` group-by with a filter, `events
--pid P --limit 100`, `maps --pid P --at T`, `latency`, every row as CSV (`sql ... --format csv
-o FILE`, DuckDB's `COPY ... TO`), each beside the DuckDB query that computes the same table.
P is the process with the most rows, T four fifths into the capture.
Then the commands DuckDB has no counterpart for (errors, findings, replay, export, report):
their time and peak RSS alone. A command the analyzer does not have is skipped with a note.
Prints a Markdown table (also to --out).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# DuckDB's side of each question. {src} is the read_parquet(...) of the capture.
DUCK_CALLS = "(SELECT * FROM {src} WHERE kind = 'syscall')"

# Where the commands that write a file write it (removed after each run).
SCRATCH = "/tmp/mmap-analyze-bench.out"


def duck_src(capture: Path) -> str:
    if capture.is_dir():
        return f"read_parquet('{capture}/*.parquet', union_by_name = true)"
    return f"read_parquet('{capture}')"


def questions(pid: int, at_ns: int, at_rfc: str):
    """(name, mmap-analyze arguments after the capture, DuckDB queries) for each question."""
    dur = "(epoch_ns(ts_exit) - epoch_ns(ts))"
    sql = (
        "SELECT comm, count(*) AS calls, sum(len) AS bytes FROM calls "
        "WHERE syscall = 'mmap' AND len >= 1048576 GROUP BY comm ORDER BY bytes DESC"
    )
    return [
        (
            "summary",
            ["summary"],
            [
                # What the summary prints: counts by kind and syscall, failures, bytes mapped,
                # loss, time range, the busiest processes.
                "SELECT kind, syscall, count(*), count(*) FILTER (WHERE ret BETWEEN -4095 AND -1),"
                " sum(len) FILTER (WHERE syscall = 'mmap' AND NOT ret BETWEEN -4095 AND -1),"
                " sum(lost_count), min(ts), max(ts_exit) FROM {src} GROUP BY ALL",
                "SELECT pid, any_value(comm), count(*) AS calls,"
                " sum(len) FILTER (WHERE syscall = 'mmap' AND NOT ret BETWEEN -4095 AND -1)"
                " FROM {src} WHERE kind = 'syscall' GROUP BY pid ORDER BY calls DESC LIMIT 10",
                "SELECT cpu, ts, ts_exit, lost_count FROM {src} WHERE kind = 'lost' ORDER BY ts",
            ],
        ),
        (
            "top --by bytes --group file",
            ["top", "--by", "bytes", "--group", "file"],
            [
                # The table `top` prints: per file, calls of every syscall, failures, bytes
                # mapped (an mmap's length, an mremap's growth) and time in the calls.
                "SELECT coalesce(file_path, file_name, '[anon]') AS f, count(*), count(errno),"
                " sum(CASE WHEN errno IS NOT NULL OR ret IS NULL THEN 0"
                " WHEN syscall = 'mmap' THEN len"
                " WHEN syscall = 'mremap' AND new_len > len THEN new_len - len ELSE 0 END)"
                f" AS bytes, sum({dur}) FROM {DUCK_CALLS} GROUP BY f ORDER BY bytes DESC LIMIT 20"
            ],
        ),
        (
            "sql group-by with filter",
            ["sql", sql],
            [sql.replace("FROM calls", "FROM " + DUCK_CALLS)],
        ),
        (
            f"events --pid {pid} --limit 100",
            ["events", "--pid", str(pid), "--limit", "100"],
            [
                f"SELECT * FROM {{src}} WHERE (pid = {pid} OR (kind = 'fork' AND child_pid = {pid}))"
                " AND kind <> 'snapshot' LIMIT 100"
            ],
        ),
        (
            f"maps --pid {pid} --at +80%",
            ["maps", "--pid", str(pid), "--at", at_rfc],
            [
                # The rows the replay needs, in time order (DuckDB does not replay them).
                f"SELECT * FROM {{src}} WHERE pid = {pid} AND ts <= TIMESTAMPTZ '{at_rfc}' "
                "ORDER BY ts"
            ],
        ),
        (
            "latency",
            ["latency"],
            [
                f"SELECT syscall, quantile_cont({dur}, [0.5, 0.9, 0.99, 0.999]), max({dur}),"
                f" histogram(floor(log2(greatest({dur}, 1)))) FROM {DUCK_CALLS} GROUP BY syscall"
            ],
        ),
        (
            "all rows as CSV",
            # The capture's own columns (not the inputs' names that `events` adds), every row,
            # to a file. DuckDB writes times to the microsecond, we to the nanosecond.
            [
                "sql",
                "SELECT * EXCLUDE (capture_id, host, file, date) FROM events",
                "--format",
                "csv",
                "-o",
                SCRATCH,
            ],
            [f"COPY (SELECT * FROM {{src}}) TO '{SCRATCH}' (HEADER)"],
        ),
        # Commands DuckDB has no counterpart for: time and peak RSS only.
        ("errors", ["errors"], None),
        ("findings", ["findings"], None),
        ("replay", ["replay"], None),
        ("export --format chrome-trace", ["export", "--format", "chrome-trace", "-o", SCRATCH], None),
        ("report", ["report", "-o", SCRATCH], None),
    ]


# Peak RSS is read by GNU time when it is there: a child forked from this (large) Python
# process and exec'ed keeps this process's peak as its own `ru_maxrss` floor (the kernel carries
# the peak across exec), so `wait4` alone reports ~100 MiB for any command; time's own child is
# forked from time, a small process.
GNU_TIME = "/usr/bin/time"
RSS_FILE = "/tmp/mmap-analyze-bench.rss"


def run_measured(argv, stdout=subprocess.DEVNULL):
    """(wall seconds, peak RSS in MiB, stdout text or None, exit status) of one child."""
    timed = os.access(GNU_TIME, os.X_OK)
    if timed:
        argv = [GNU_TIME, "-f", "%M", "-o", RSS_FILE, *argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
    out = proc.stdout.read() if stdout == subprocess.PIPE else None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(f"bench: {' '.join(argv)} failed ({proc.returncode}): {err.decode()[-2000:]}\n")
    rss = usage.ru_maxrss / 1024
    if timed:
        try:
            rss = int(Path(RSS_FILE).read_text().split()[-1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
    return wall, rss, out, proc.returncode


DUCK_CHILD = """
import sys, time, duckdb
con = duckdb.connect()
con.sql("SET enable_progress_bar = false")
start = time.perf_counter()
for q in sys.argv[1:]:
    con.sql(q).fetchall()
print(time.perf_counter() - start)
"""


def duck(queries, src):
    wall, rss, out, code = run_measured(
        [sys.executable, "-c", DUCK_CHILD] + [q.replace("{src}", src) for q in queries],
        stdout=subprocess.PIPE,
    )
    return (float(out.decode().split()[-1]) if code == 0 else float("nan")), rss, code


def duck_cli_binary():
    """The DuckDB command line tool's own binary, or None. PyPI's `duckdb-cli` puts a Python
    wrapper on the PATH (its start, ~20 ms, is not DuckDB's); the binary sits in its package."""
    try:
        import duckdb_cli
    except ImportError:
        return None
    binary = Path(duckdb_cli.__file__).parent / "duckdb"
    return str(binary) if os.access(binary, os.X_OK) else None


def duck_cli(binary, queries, src):
    """(wall seconds, peak RSS in MiB) of `duckdb -c QUERIES` (in memory, no init file), the
    whole process; NaN when it fails."""
    script = ";\n".join(q.replace("{src}", src) for q in queries)
    wall, rss, _, code = run_measured([binary, "-no-init", "-batch", "-c", script])
    return (wall if code == 0 else float("nan")), rss


def version(argv, word):
    """Word `word` of what `argv` prints: the version of a tool."""
    out = subprocess.run(argv, capture_output=True, text=True).stdout.split()
    return out[word] if len(out) > word else "?"


def duck_value(src, query):
    import duckdb

    return duckdb.connect().sql(query.replace("{src}", src)).fetchall()


def has_command(analyze, name):
    return subprocess.run([analyze, name, "--help"], capture_output=True).returncode == 0


def medians(samples):
    """The median wall time and the median peak RSS of (wall, RSS) samples."""
    return statistics.median(w for w, _ in samples), statistics.median(r for _, r in samples)


def human(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release", help="directory of mmap-analyze")
    parser.add_argument("--capture", action="append", required=True, help="file or directory")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", help="run only the questions whose name starts with this")
    parser.add_argument("--out", help="also write the Markdown table here")
    args = parser.parse_args()
    analyze = str(Path(args.bin) / "mmap-analyze")
    cli = duck_cli_binary()
    import duckdb

    tools = f"mmap-analyze {version([analyze, '--version'], 1)}, DuckDB {duckdb.__version__}"
    tools += f", DuckDB CLI {version([cli, '-version'], 0)}" if cli else ", no DuckDB CLI"
    lines = [
        tools,
        "",
        "| capture | question | mmap-analyze wall | peak RSS | DuckDB query | DuckDB peak RSS | ratio "
        "| DuckDB CLI process | its peak RSS | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines))
    for capture in map(Path, args.capture):
        src = duck_src(capture)
        ((pid,),) = duck_value(
            src,
            "SELECT pid FROM {src} WHERE kind = 'syscall' GROUP BY pid "
            "ORDER BY count(*) DESC, pid LIMIT 1",
        )
        ((first, last),) = duck_value(src, "SELECT epoch_ns(min(ts)), epoch_ns(max(ts)) FROM {src}")
        at_ns = first + (last - first) * 4 // 5
        ((at_rfc,),) = duck_value(
            src, f"SELECT strftime(make_timestamp({at_ns // 1000}), '%Y-%m-%dT%H:%M:%S.%fZ')"
        )
        rows = duck_value(src, "SELECT count(*) FROM {src}")[0][0]
        for name, our_args, duck_queries in questions(pid, at_ns, at_rfc):
            if args.only and not name.startswith(args.only):
                continue
            if not has_command(analyze, our_args[0]):
                print(f"| {capture.name} | {name} | (no `{our_args[0]}` command yet) | | | | | | | |")
                continue
            ours, theirs, processes = [], [], []
            for _ in range(args.reps):
                wall, rss, _, code = run_measured([analyze, our_args[0], str(capture), *our_args[1:]])
                ours.append((wall if code == 0 else float("nan"), rss))
                Path(SCRATCH).unlink(missing_ok=True)
                if duck_queries is not None:
                    theirs.append(duck(duck_queries, src)[:2])
                    Path(SCRATCH).unlink(missing_ok=True)
                    if cli:
                        processes.append(duck_cli(cli, duck_queries, src))
                        Path(SCRATCH).unlink(missing_ok=True)
            our_wall, our_rss = medians(ours)

            def beside(samples):
                """A peer's cells: median wall, median peak RSS, our time over its."""
                if not samples:
                    return " | — | — | —"
                wall, rss = medians(samples)
                return f" | {human(wall)} | {rss:.0f} MiB | {our_wall / wall:.2f}"

            line = (
                f"| {capture.name} ({rows / 1e6:.1f}M rows) | {name} | {human(our_wall)} "
                f"| {our_rss:.0f} MiB{beside(theirs)}{beside(processes)} |"
            )
            print(line, flush=True)
            lines.append(line)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
