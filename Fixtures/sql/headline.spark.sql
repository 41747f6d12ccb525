-- The report's headline figures over a `shadowd export` directory, in Spark SQL:
--   spark-sql --conf export_dir=/srv/shadowd-export -f Fixtures/sql/headline.spark.sql
-- (from PySpark: spark.conf.set("export_dir", ...), then each statement through spark.sql).
-- The date=/host= directories become `date` and `host` columns: filter on them to prune.

CREATE OR REPLACE TEMPORARY VIEW pairs USING parquet OPTIONS (path '${export_dir}/pairs');
CREATE OR REPLACE TEMPORARY VIEW coverage USING parquet OPTIONS (path '${export_dir}/coverage');

-- Divergence rate per route and candidate, with its 95% Wilson score interval.
SELECT route, candidate, n AS compared, diverged, round(p, 4) AS divergence,
       round((p + z * z / (2 * n) - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n), 4) AS ci_low,
       round((p + z * z / (2 * n) + z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n), 4) AS ci_high
FROM (
    SELECT route, candidate, count(*) AS n, sum(diverged) AS diverged, sum(diverged) / count(*) AS p, 1.959964D AS z
    FROM pairs WHERE outcome = 'compared' GROUP BY ALL
)
ORDER BY route, candidate;

-- Latency quantiles per arm (microseconds), answers without errors.
SELECT route, candidate,
       percentile(baseline_latency_us, 0.5) AS baseline_p50, percentile(candidate_latency_us, 0.5) AS candidate_p50,
       percentile(baseline_latency_us, 0.99) AS baseline_p99, percentile(candidate_latency_us, 0.99) AS candidate_p99
FROM pairs WHERE baseline_error IS NULL AND candidate_error IS NULL
GROUP BY ALL ORDER BY ALL;

-- Coverage: what happened to every request, by reason.
SELECT route, candidate, reason, sum(count) AS requests
FROM coverage GROUP BY ALL ORDER BY route, candidate, requests DESC;

-- The paths that differ most often among diverged pairs.
SELECT route, candidate, path, count(*) AS pairs
FROM (
    SELECT route, candidate, explode(from_json(differing_paths, 'array<string>')) AS path
    FROM pairs WHERE diverged = 1 AND differing_paths IS NOT NULL
)
GROUP BY ALL ORDER BY pairs DESC LIMIT 20;
