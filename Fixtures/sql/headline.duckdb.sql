-- The report's headline figures over a `shadowd export` directory, in DuckDB:
--   duckdb -c "SET VARIABLE export_dir = '/srv/shadowd-export'; .read Fixtures/sql/headline.duckdb.sql"
-- Every host and day at once (the partitions are columns: filter on date and host to prune).

CREATE OR REPLACE TEMP VIEW pairs AS
SELECT * FROM read_parquet(getvariable('export_dir') || '/pairs/*/*/*.parquet', hive_partitioning = true);
CREATE OR REPLACE TEMP VIEW coverage AS
SELECT * FROM read_parquet(getvariable('export_dir') || '/coverage/*/*/*.parquet', hive_partitioning = true);

-- Divergence rate per route and candidate, with its 95% Wilson score interval.
SELECT route, candidate, n AS compared, diverged, round(p, 4) AS divergence,
       round((p + z * z / (2 * n) - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n), 4) AS ci_low,
       round((p + z * z / (2 * n) + z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n), 4) AS ci_high
FROM (
    SELECT route, candidate, count(*) AS n, sum(diverged) AS diverged, sum(diverged) / count(*) AS p, 1.959964 AS z
    FROM pairs WHERE outcome = 'compared' GROUP BY ALL
)
ORDER BY route, candidate;

-- Latency quantiles per arm (microseconds), answers without errors.
SELECT route, candidate,
       quantile_cont(baseline_latency_us, 0.5) AS baseline_p50, quantile_cont(candidate_latency_us, 0.5) AS candidate_p50,
       quantile_cont(baseline_latency_us, 0.99) AS baseline_p99, quantile_cont(candidate_latency_us, 0.99) AS candidate_p99
FROM pairs WHERE baseline_error IS NULL AND candidate_error IS NULL
GROUP BY ALL ORDER BY ALL;

-- Coverage: what happened to every request, by reason.
SELECT route, candidate, reason, sum(count) AS requests
FROM coverage GROUP BY ALL ORDER BY route, candidate, requests DESC;

-- The paths that differ most often among diverged pairs.
SELECT route, candidate, path, count(*) AS pairs
FROM (
    SELECT route, candidate, unnest(from_json(differing_paths, '["VARCHAR"]')) AS path
    FROM pairs WHERE diverged = 1 AND differing_paths IS NOT NULL
)
GROUP BY ALL ORDER BY pairs DESC LIMIT 20;
