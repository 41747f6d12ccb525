"""Shared by the real-client checks: start shadowd processes, wait for recorded pairs."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

workdir = tempfile.mkdtemp(prefix="shadowd-client-")
children = []
failures = []


def check(condition, message):
    """Notes `message` as a failure unless `condition` holds (the check goes on)."""
    if not condition:
        failures.append(message)


def finish(label):
    """Prints the failures and the processes' output and exits 1, or prints `label: ok`."""
    if failures:
        print("\n".join(failures))
        print(logs()[-3000:])
        sys.exit(1)
    print(f"{label}: ok")


def start(shadowd, arguments, pattern, env=None):
    """Starts shadowd with `arguments`, returns the port its output names after `pattern`."""
    log = open(os.path.join(workdir, f"log-{len(children)}.txt"), "w+")
    process = subprocess.Popen([shadowd] + arguments, stdout=log, stderr=subprocess.STDOUT, env=env)
    children.append(process)
    for _ in range(600):
        log.seek(0)
        found = re.search(pattern + r"(\d+)", log.read())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    sys.exit(f"shadowd {' '.join(arguments)} did not start:\n{log.read()[-2000:]}")


def stop_all():
    for process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in children:
        process.wait(timeout=30)


def logs():
    """Everything the started processes printed."""
    text = ""
    for name in sorted(os.listdir(workdir)):
        if name.startswith("log-"):
            with open(os.path.join(workdir, name)) as log:
                text += log.read()
    return text


def serve(shadowd, config_text, replacements, env=None, name="config"):
    """Writes `config_text` with `replacements` and loopback port 0 listeners, starts
    `shadowd serve` on it; returns (sidecar port, database path). `name` keeps two sidecars'
    files apart."""
    for old, new in replacements.items():
        config_text = config_text.replace(old, new)
    config_text = config_text.replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0").replace("listen: 127.0.0.1:8081", "listen: 127.0.0.1:0")
    config_path = os.path.join(workdir, f"{name}.yaml")
    database = os.path.join(workdir, f"{name}.sqlite")
    with open(config_path, "w") as target:
        target.write(config_text)
    port = start(shadowd, ["serve", "--config", config_path, "--db", database], r"shadow\.listen=\S*?:", env=env)
    return port, database


def query(database, sql, until, attempts=200):
    """Runs `sql` read-only until `until(rows)` holds (the writer batches), returns the rows."""
    rows = []
    for _ in range(attempts):
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                rows = db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            pass
        if until(rows):
            break
        time.sleep(0.05)
    return rows


def check_recorded(database, expected_ids, failures, priced=("baseline_cost",)):
    """Every request recorded as a compared pair, priced (each column in `priced`), with events
    and tokens per second for streams; returns the rows by request id."""
    found = query(
        database,
        "SELECT request_id, outcome, baseline_error, baseline_events, baseline_tokens_per_second, "
        + ", ".join(priced) + " FROM pairs",
        lambda rows: len(rows) >= len(expected_ids),
    )
    rows = {row[0]: row[1:] for row in found}
    for request_id in expected_ids:
        row = rows.get(request_id)
        if row is None:
            failures.append(f"{request_id}: not recorded")
            continue
        outcome, baseline_error, events, tokens_per_second, *costs = row
        if outcome != "compared" or baseline_error is not None:
            failures.append(f"{request_id}: outcome {outcome}, baseline_error {baseline_error}")
        for column, cost in zip(priced, costs):
            if cost is None:
                failures.append(f"{request_id}: {column} is NULL")
        if "stream" in request_id and (not events or not tokens_per_second):
            failures.append(f"{request_id}: events {events}, tokens/s {tokens_per_second}")
    return rows


def diverged_share(database, prefix, sample, failures, expected=(0.09, 0.21)):
    """The share of `sample` compared pairs with ids starting `prefix` that diverged."""
    counts = query(
        database,
        f"SELECT count(*), sum(diverged) FROM pairs WHERE request_id LIKE '{prefix}%' AND outcome = 'compared'",
        lambda rows: rows and rows[0][0] == sample,
    )
    share = counts[0][1] / counts[0][0] if counts and counts[0][0] == sample else None
    if share is None or not expected[0] <= share <= expected[1]:
        failures.append(f"diverged share of {sample} sampled prompts: {share} (the candidate disagrees on 15%)")
    return share
