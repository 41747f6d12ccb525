"""Exports a demo database (two hosts), then checks it with DuckDB and pyarrow against SQLite:
every cell, every column's type and NULLs, the headline SQL, pruning, an idempotent rerun, GZIP
as well as ZSTD pages; then a 1 M-pair synthetic database round-trips.

Usage: check.py SHADOWD_BINARY SHADOWD_BENCH_BINARY"""
import glob
import os
import sqlite3
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq

from fleet import Fleet, connect, pairs_as_exported

bench = sys.argv[2]
fleet = Fleet(sys.argv[1])
work, out, databases, run, arguments = fleet.work, fleet.out, fleet.databases, fleet.run, fleet.export_arguments
failures = []


def same_values(expected, got):
    """Equal rows, floats to a relative 1e-6: SQLite and DuckDB sum doubles in different orders."""
    def close(a, b):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and float in (type(a), type(b)):
            return abs(a - b) <= 1e-6 * max(1, abs(a))
        return a == b
    return len(expected) == len(got) and all(close(a, b) for a, b in zip(expected, got))


con = duckdb.connect()
pairs = f"read_parquet('{out}/pairs/*/*/*.parquet', hive_partitioning=true)"
FIGURES = (
    "count(*), sum(diverged), sum(baseline_latency_us), sum(candidate_latency_us), count(candidate_error), "
    "count(divergence), sum(divergence), count(request_body), sum({len}(request_body)), sum({len}(baseline_body)), "
    "count(segment), min(received_at_us), max(received_at_us)"
)
for host, path in databases:
    with connect(path) as db:
        exported_pairs, columns = pairs_as_exported(db)
        expected = db.execute("SELECT " + FIGURES.format(len="length") .replace("length(request_body)", "length(CAST(request_body AS BLOB))")
                              .replace("length(baseline_body)", "length(CAST(baseline_body AS BLOB))") + " FROM " + exported_pairs).fetchone()
        coverage_expected = db.execute("SELECT count(*), sum(count) FROM coverage").fetchone()
        nulls_expected = {c: db.execute(f"SELECT count(*) - count({c}) FROM {exported_pairs}").fetchone()[0] for c in columns}
    got = con.execute(f"SELECT {FIGURES.format(len='octet_length')} FROM {pairs} WHERE host = ?", [host]).fetchone()
    if not same_values(expected, got):
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

# pyarrow: every cell equals SQLite's, row for row (bodies as bytes, text as str).
def normalise(value):
    return value.encode() if isinstance(value, str) else value


for host, path in databases:
    table = pq.read_table(glob.glob(f"{out}/pairs/*/host={host}/*.parquet")).sort_by([("received_at_us", "ascending"), ("request_id", "ascending")])
    with connect(path) as db:
        cursor = db.execute(f"SELECT * FROM {pairs_as_exported(db)[0]} ORDER BY received_at_us, request_id")
        names = [d[0] for d in cursor.description]
        expected_rows = cursor.fetchall()
    exported = {name: table.column(name).to_pylist() for name in names if name != "received_at"}
    mismatches = [
        f"{host} row {index} {name}: SQLite {row[i]!r} != Parquet {exported[name][index]!r}"
        for index, row in enumerate(expected_rows)
        for i, name in enumerate(names)
        if name in exported and normalise(row[i]) != normalise(exported[name][index])
    ]
    if len(expected_rows) != table.num_rows or mismatches:
        failures.append(f"{host}: {len(expected_rows)} rows in SQLite, {table.num_rows} exported; {len(mismatches)} cells differ: {mismatches[:3]}")

# GZIP pages (the fallback where libzstd is missing) read the same.
gzip_out = os.path.join(work, "export-gzip")
run("export", "--compression", "gzip", "--out-dir", gzip_out, "--db", f"{databases[0][0]}={databases[0][1]}")
gzip_files = glob.glob(f"{gzip_out}/pairs/*/*/*.parquet")
codecs = {pq.ParquetFile(f).metadata.row_group(0).column(0).compression for f in gzip_files}
same_rows = pq.read_table(gzip_files).num_rows == con.execute(f"SELECT count(*) FROM {pairs} WHERE host = ?", [databases[0][0]]).fetchone()[0]
if codecs != {"GZIP"} or not same_rows:
    failures.append(f"--compression gzip: codecs {codecs}, same rows: {same_rows}")

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
headline, failure = fleet.run_headline("Fixtures/sql/headline.duckdb.sql", lambda statement: con.execute(statement).fetchall())
if failure:
    failures.append(failure)

# A second run rewrites today's partitions whole: nothing duplicated.
before = con.execute(f"SELECT count(*) FROM {pairs}").fetchone()[0]
run(*arguments)
after = con.execute(f"SELECT count(*) FROM {pairs}").fetchone()[0]
if before != after:
    failures.append(f"a second export changed the row count: {before} -> {after}")
leftovers = glob.glob(f"{out}/**/.*.tmp", recursive=True)
if leftovers:
    failures.append(f"temporary files left: {leftovers}")

# An A/B experiment's exposures (with or without a pair) and outcomes export too.
ab = os.path.join(work, "ab.sqlite")
run("demo", "--db", ab, "ab", "--users", "1500")
ab_out = os.path.join(work, "export-ab")
run("export", "--db", f"ab={ab}", "--out-dir", ab_out)
with sqlite3.connect(ab) as db:
    expected_ab = (db.execute("SELECT count(*), count(arm), sum(fallback) FROM exchanges WHERE experiment IS NOT NULL").fetchone(),
                   db.execute("SELECT count(*), count(DISTINCT event_id), sum(value) FROM outcomes").fetchone(),
                   db.execute("SELECT count(*), count(arm) FROM pairs").fetchone())
got_ab = (con.execute(f"SELECT count(*), count(arm), sum(fallback) FROM read_parquet('{ab_out}/exposures/*/*/*.parquet')").fetchone(),
          con.execute(f"SELECT count(*), count(DISTINCT event_id), sum(value) FROM read_parquet('{ab_out}/outcomes/*/*/*.parquet')").fetchone(),
          con.execute(f"SELECT count(*), count(arm) FROM read_parquet('{ab_out}/pairs/*/*/*.parquet')").fetchone())
if not all(same_values(e, g) for e, g in zip(expected_ab, got_ab)) or expected_ab[0][1] == 0:
    failures.append(f"experiment export: SQLite {expected_ab} != DuckDB {got_ab}")
print(f"experiment: {got_ab[0][0]} exposures, {got_ab[1][0]} outcomes, {got_ab[2][1]} enrolled pairs exported equal to SQLite")

# 1 M pairs (the report benchmark's synthetic database): counts, sums and NULLs equal, row groups
# in time order with statistics that let engines skip them.
million = os.path.join(work, "million.sqlite")
subprocess.run([bench, "generate", "--pairs", "1000000", "--db", million], check=True)
million_out = os.path.join(work, "export-million")
run("export", "--db", f"big={million}", "--out-dir", million_out, "--from", "2020-01-01T00:00:00Z", "--to", "2040-01-01T00:00:00Z")
BIG = ("count(*), sum(diverged), sum(baseline_latency_us), sum(candidate_latency_us), count(candidate_error), count(divergence), "
       "sum(divergence), sum({len}(baseline_body)), sum({len}(candidate_body)), count(differing_paths), count(DISTINCT segment)")
with sqlite3.connect(million) as db:
    expected_big = db.execute("SELECT " + BIG.format(len="length").replace("length(baseline_body)", "length(CAST(baseline_body AS BLOB))")
                              .replace("length(candidate_body)", "length(CAST(candidate_body AS BLOB))") + " FROM pairs").fetchone()
big = f"read_parquet('{million_out}/pairs/*/*/*.parquet', hive_partitioning=true)"
got_big = con.execute(f"SELECT {BIG.format(len='octet_length')} FROM {big}").fetchone()
if not same_values(expected_big, got_big):
    failures.append(f"1M pairs: SQLite {expected_big} != DuckDB {got_big}")
million_files = sorted(glob.glob(f"{million_out}/pairs/*/*/*.parquet"))
bounds = []
for f in million_files:
    metadata = pq.ParquetFile(f).metadata
    index = pq.read_schema(f).get_field_index("received_at_us")
    bounds += [(metadata.row_group(g).column(index).statistics.min, metadata.row_group(g).column(index).statistics.max) for g in range(metadata.num_row_groups)]
bounds.sort()
if len(bounds) < 2 or any(left[1] >= right[0] for left, right in zip(bounds, bounds[1:])):
    failures.append(f"1M pairs: row groups' received_at_us ranges overlap or are missing: {bounds[:4]}")
sqlite_bytes = os.path.getsize(million)
parquet_bytes = sum(os.path.getsize(f) for f in million_files)
print(f"1M pairs: {len(bounds)} row groups in {len(million_files)} file(s); {parquet_bytes / 1e6:.1f} MB of Parquet for {sqlite_bytes / 1e6:.0f} MB of SQLite; sums equal")

print(f"duckdb {duckdb.__version__}, pyarrow: {rows} pairs from {len(databases)} hosts in {len(files)} file(s); "
      f"{len(EXPECTED_TYPES)} column types, every column's NULLs, counts, sums and body bytes checked against SQLite; "
      f"headline SQL = the report's divergence {headline[4]} [{headline[5]}, {headline[6]}]")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("export readable by DuckDB and pyarrow, equal to the source: ok")
