"""The export read by Spark (parquet-mr through PySpark): the same demo fleet as check.py, every
column's Spark type and NULLs, counts and sums equal to SQLite, partition columns, pruning by
host, and Fixtures/sql/headline.spark.sql giving the report's divergence rate and interval.

Usage: check_spark.py SHADOWD_BINARY"""
import sys

from pyspark.sql import SparkSession

from fleet import Fleet, connect, pairs_as_exported

fleet = Fleet(sys.argv[1])
failures = []
spark = (SparkSession.builder.master("local[2]").appName("shadowd-export-check")
         .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
pairs = spark.read.parquet(f"{fleet.out}/pairs")
pairs.createOrReplaceTempView("exported")

EXPECTED_TYPES = {"received_at": "timestamp", "received_at_us": "bigint", "divergence": "double", "route": "string",
                  "request_body": "binary", "diverged": "bigint", "baseline_cost": "double", "host": "string", "date": "date"}
types = dict(pairs.dtypes)
for name, kind in EXPECTED_TYPES.items():
    if types.get(name) != kind:
        failures.append(f"Spark reads {name} as {types.get(name)}, expected {kind}")

FIGURES = ("count(*), sum(diverged), sum(baseline_latency_us), sum(candidate_latency_us), count(candidate_error), count(divergence), "
           "sum({len}(request_body)), sum({len}(baseline_body)), count(segment), min(received_at_us), max(received_at_us)")
for host, path in fleet.databases:
    with connect(path) as db:
        exported_pairs, columns = pairs_as_exported(db)
        expected = db.execute("SELECT " + FIGURES.format(len="length").replace("length(request_body)", "length(CAST(request_body AS BLOB))")
                              .replace("length(baseline_body)", "length(CAST(baseline_body AS BLOB))") + " FROM " + exported_pairs).fetchone()
        nulls = {c: db.execute(f"SELECT count(*) - count({c}) FROM {exported_pairs}").fetchone()[0] for c in columns}
    got = tuple(spark.sql(f"SELECT {FIGURES.format(len='octet_length')} FROM exported WHERE host = '{host}'").first())
    if tuple(expected) != got:
        failures.append(f"{host}: SQLite {expected} != Spark {got}")
    got_nulls = spark.sql("SELECT " + ", ".join(f"count(*) - count({c})" for c in columns) + f" FROM exported WHERE host = '{host}'").first()
    for column, count in zip(columns, got_nulls):
        if nulls[column] != count:
            failures.append(f"{host}.{column}: {nulls[column]} NULLs in SQLite, {count} in Spark")

# A filter on the partition column prunes the other host's directory.
plan = spark.sql("SELECT count(*) FROM exported WHERE host = 'host-a'")._jdf.queryExecution().executedPlan().toString()
if "PartitionFilters: [isnotnull(host" not in plan:
    failures.append(f"no partition filter on host in Spark's plan:\n{plan}")

spark.conf.set("export_dir", fleet.out)
headline, failure = fleet.run_headline("Fixtures/sql/headline.spark.sql", lambda statement: spark.sql(statement).collect())
if failure:
    failures.append(failure)
rate, low, high = headline[4:7]

print(f"spark {spark.version}: {pairs.count()} pairs from {len(fleet.databases)} hosts; {len(EXPECTED_TYPES)} column types, "
      f"every column's NULLs, counts, sums and body bytes checked against SQLite; headline SQL = the report's divergence "
      f"{rate} [{low}, {high}]")
spark.stop()
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("export readable by Spark, equal to the source: ok")
