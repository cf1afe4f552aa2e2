"""Opens a capture with independent readers (pyarrow, DuckDB, Polars) and prints what each saw
as JSON: row count, column types, and (pyarrow) the capture's key-value metadata keys. pyarrow
reads with page checksum verification, so a page whose CRC does not match fails the check."""
import json
import sys

import duckdb
import polars as pl
import pyarrow.parquet as pq

path = sys.argv[1]
out = {}

# With page checksum verification: the writer stores a CRC-32 in every page header.
table = pq.read_table(path, page_checksum_verification=True)
meta = pq.read_metadata(path).metadata or {}
out["pyarrow"] = {
    "rows": table.num_rows,
    "types": {f.name: str(f.type) for f in table.schema},
    "metadata": {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"mmap_capture.")},
}

con = duckdb.connect()
rows = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0]
types = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()}
out["duckdb"] = {"rows": rows, "types": types}

df = pl.read_parquet(path)
out["polars"] = {"rows": df.height, "types": {name: str(t) for name, t in df.schema.items()}}

print(json.dumps(out))
