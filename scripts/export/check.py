"""Exports a demo database (two hosts), then checks it with DuckDB and pyarrow against SQLite.

Usage: check.py SHADOWD_BINARY"""
import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

import duckdb
import pyarrow.parquet as pq

shadowd = sys.argv[1]
work = tempfile.mkdtemp(prefix="shadowd-export-")
failures = []


def run(*arguments, ok=(0,)):
    result = subprocess.run([shadowd, *arguments], capture_output=True, text=True)
    if result.returncode not in ok:
        sys.exit(f"shadowd {' '.join(arguments)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


databases = []
for host in ("host-a", "host-b"):
    path = os.path.join(work, f"{host}.sqlite")
    run("demo", "--db", path, "--requests", "600")
    databases.append((host, path))
out = os.path.join(work, "export")
arguments = ["export", "--out-dir", out]
for host, path in databases:
    arguments += ["--db", f"{host}={path}"]
print(run(*arguments).strip())

con = duckdb.connect()
pairs = f"read_parquet('{out}/pairs/*/*/*.parquet', hive_partitioning=true)"
FIGURES = (
    "count(*), sum(diverged), sum(baseline_latency_us), sum(candidate_latency_us), count(candidate_error), "
    "count(divergence), sum(divergence), count(request_body), sum({len}(request_body)), sum({len}(baseline_body)), "
    "count(segment), min(received_at_us), max(received_at_us)"
)
for host, path in databases:
    with sqlite3.connect(path) as db:
        expected = db.execute("SELECT " + FIGURES.format(len="length") .replace("length(request_body)", "length(CAST(request_body AS BLOB))")
                              .replace("length(baseline_body)", "length(CAST(baseline_body AS BLOB))") + " FROM pairs").fetchone()
        coverage_expected = db.execute("SELECT count(*), sum(count) FROM coverage").fetchone()
        columns = [row[1] for row in db.execute("PRAGMA table_info(pairs)")]
        nulls_expected = {c: db.execute(f"SELECT count(*) - count({c}) FROM pairs").fetchone()[0] for c in columns}
    got = con.execute(f"SELECT {FIGURES.format(len='octet_length')} FROM {pairs} WHERE host = ?", [host]).fetchone()
    # Sums of doubles may differ in the last bits with the order of addition.
    same = all((abs(a - b) <= 1e-9 * max(1, abs(a)) if isinstance(a, float) or isinstance(b, float) else a == b) for a, b in zip(expected, got))
    if not same:
        failures.append(f"{host}: SQLite {expected} != DuckDB {got}")
    got_coverage = con.execute(
        f"SELECT count(*), sum(count) FROM read_parquet('{out}/coverage/*/*/*.parquet', hive_partitioning=true) WHERE host = ?", [host]
    ).fetchone()
    if tuple(got_coverage) != tuple(coverage_expected):
        failures.append(f"{host} coverage: SQLite {coverage_expected} != DuckDB {got_coverage}")
    for column, nulls in nulls_expected.items():
        got_nulls = con.execute(f"SELECT count(*) - count({column}) FROM {pairs} WHERE host = ?", [host]).fetchone()[0]
        if got_nulls != nulls:
            failures.append(f"{host}.{column}: {nulls} NULLs in SQLite, {got_nulls} in the export")

# pyarrow: the schema's types, and every file readable on its own.
files = sorted(glob.glob(f"{out}/pairs/*/*/*.parquet"))
schema = pq.read_schema(files[0])
EXPECTED_TYPES = {"received_at": "timestamp[us, tz=UTC]", "received_at_us": "int64", "divergence": "double", "route": "string",
                  "request_body": "binary", "diverged": "int64", "baseline_cost": "double", "baseline_events": "int64"}
for name, kind in EXPECTED_TYPES.items():
    if str(schema.field(name).type) != kind:
        failures.append(f"pyarrow reads {name} as {schema.field(name).type}, expected {kind}")
rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
statistics = pq.ParquetFile(files[0]).metadata.row_group(0).column(schema.get_field_index("received_at_us")).statistics
if statistics is None or not statistics.has_min_max:
    failures.append("no min/max statistics on received_at_us")

# Partition pruning: a filter on the partition columns reads only that host's files.
plan = con.execute(f"EXPLAIN ANALYZE SELECT count(*) FROM {pairs} WHERE host = 'host-a'").fetchall()
text = "\n".join(str(cell) for row in plan for cell in row)
if "host-b" in text and "Total Files Read: 2" in text:
    failures.append("the host filter did not prune host-b's files")

# Fixtures/sql/headline.duckdb.sql gives the report's divergence rate and Wilson interval.
con.execute(f"SET VARIABLE export_dir = '{out}'")
sql = "\n".join(line for line in open("Fixtures/sql/headline.duckdb.sql").read().splitlines() if not line.strip().startswith("--"))
statements = [statement for statement in sql.split(";") if statement.strip()]
for statement in statements[:2]:
    con.execute(statement)
headline = con.execute(statements[2].replace("FROM pairs WHERE", "FROM pairs WHERE host = 'host-a' AND")).fetchall()
for statement in statements[3:]:
    con.execute(statement).fetchall()
# (exit 3 is a reject verdict: the demo's candidate is built to fail)
report = json.loads(run("report", "--db", databases[0][1], "--format", "json", ok=(0, 3)))
divergence = report["routes"][0]["candidates"][0]["divergence"]
route, candidate, compared, diverged, rate, low, high = headline[0]
if (compared, diverged) != (divergence["compared"], divergence["diverged"]) or abs(rate - divergence["rate"]) > 1e-4 \
        or abs(low - divergence["interval"][0]) > 1e-4 or abs(high - divergence["interval"][1]) > 1e-4:
    failures.append(f"headline SQL {headline[0]} != the report's {divergence['compared']}, {divergence['diverged']}, "
                    f"{divergence['rate']}, {divergence['interval']}")

# A second run rewrites today's partitions whole: nothing duplicated.
before = con.execute(f"SELECT count(*) FROM {pairs}").fetchone()[0]
run(*arguments)
after = con.execute(f"SELECT count(*) FROM {pairs}").fetchone()[0]
if before != after:
    failures.append(f"a second export changed the row count: {before} -> {after}")
leftovers = glob.glob(f"{out}/**/.*.tmp", recursive=True)
if leftovers:
    failures.append(f"temporary files left: {leftovers}")

print(f"duckdb {duckdb.__version__}, pyarrow: {rows} pairs from {len(databases)} hosts in {len(files)} file(s); "
      f"{len(EXPECTED_TYPES)} column types, every column's NULLs, counts, sums and body bytes checked against SQLite; "
      f"headline SQL = the report's divergence {headline[0][4]} [{headline[0][5]}, {headline[0][6]}]")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("export readable by DuckDB and pyarrow, equal to the source: ok")
