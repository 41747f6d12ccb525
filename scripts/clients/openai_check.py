"""Drives Fixtures/configs/llm.yaml's setup with the official openai client (see ./openai).

Usage: openai_check.py SHADOWD_BINARY"""
import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import openai

shadowd = sys.argv[1]
workdir = tempfile.mkdtemp(prefix="shadowd-openai-")
children = []


def start(arguments, pattern):
    """Starts shadowd with `arguments`, returns the port its output names after `pattern`."""
    log = open(os.path.join(workdir, f"log-{len(children)}.txt"), "w+")
    process = subprocess.Popen([shadowd] + arguments, stdout=log, stderr=subprocess.STDOUT)
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


baseline = start(["fixture-model", "--spec", "Fixtures/models/llm-baseline.yaml", "--port", "0"], r"listening on http://127\.0\.0\.1:")
candidate = start(["fixture-model", "--spec", "Fixtures/models/llm-candidate.yaml", "--port", "0"], r"listening on http://127\.0\.0\.1:")
with open("Fixtures/configs/llm.yaml") as source:
    config = source.read()
config = config.replace("127.0.0.1:9001", f"127.0.0.1:{baseline}").replace("127.0.0.1:9002", f"127.0.0.1:{candidate}")
config = config.replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0").replace("listen: 127.0.0.1:8081", "listen: 127.0.0.1:0")
config_path = os.path.join(workdir, "llm.yaml")
database = os.path.join(workdir, "llm.sqlite")
with open(config_path, "w") as target:
    target.write(config)
sidecar = start(["serve", "--config", config_path, "--db", database], r"shadow\.listen=\S*?:")

PROMPTS = [f"question {n}: tell me about item {n * 7}" for n in range(6)]
failures = []


def request_args(prompt, stream):
    args = dict(model="assistant", messages=[{"role": "user", "content": prompt}], stream=stream)
    if stream:
        args["stream_options"] = {"include_usage": True}
    return args


def summary(result, stream):
    """What a client takes from an answer: the text, how it ended, usage, and for a stream the
    content of every chunk in order."""
    if not stream:
        choice = result.choices[0]
        return (choice.message.content, choice.finish_reason, result.usage.prompt_tokens, result.usage.completion_tokens, None)
    chunks, text, finish, usage = [], "", None, None
    for chunk in result:
        if chunk.usage:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if chunk.choices:
            delta = chunk.choices[0].delta.content or ""
            chunks.append(delta)
            text += delta
            finish = chunk.choices[0].finish_reason or finish
    return (text, finish, usage and usage[0], usage and usage[1], chunks)


async def async_summary(result, stream):
    if not stream:
        return summary(result, False)
    chunks, text, finish, usage = [], "", None, None
    async for chunk in result:
        if chunk.usage:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if chunk.choices:
            delta = chunk.choices[0].delta.content or ""
            chunks.append(delta)
            text += delta
            finish = chunk.choices[0].finish_reason or finish
    return (text, finish, usage and usage[0], usage and usage[1], chunks)


def client(port, cls=openai.OpenAI):
    return cls(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test-not-a-secret", max_retries=0)


expected_ids = []
# The sync client, streamed and not: through the sidecar vs straight to the baseline.
for stream in (False, True):
    for index, prompt in enumerate(PROMPTS):
        request_id = f"sync-{'stream' if stream else 'plain'}-{index}"
        expected_ids.append(request_id)
        through = summary(client(sidecar).chat.completions.create(**request_args(prompt, stream), extra_headers={"x-request-id": request_id}), stream)
        direct = summary(client(baseline).chat.completions.create(**request_args(prompt, stream)), stream)
        if through != direct:
            failures.append(f"{request_id}: through the sidecar {through!r} != direct {direct!r}")


async def run_async():
    for stream in (False, True):
        for index, prompt in enumerate(PROMPTS):
            request_id = f"async-{'stream' if stream else 'plain'}-{index}"
            expected_ids.append(request_id)
            through_client, direct_client = client(sidecar, openai.AsyncOpenAI), client(baseline, openai.AsyncOpenAI)
            through = await async_summary(
                await through_client.chat.completions.create(**request_args(prompt, stream), extra_headers={"x-request-id": request_id}), stream
            )
            direct = await async_summary(await direct_client.chat.completions.create(**request_args(prompt, stream)), stream)
            await through_client.close()
            await direct_client.close()
            if through != direct:
                failures.append(f"{request_id}: through the sidecar {through!r} != direct {direct!r}")


asyncio.run(run_async())

# Every request recorded as a compared pair, priced, with tokens per second for streams.
rows = {}
for _ in range(200):
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows = {
                row[0]: row[1:]
                for row in db.execute(
                    "SELECT request_id, outcome, baseline_error, baseline_cost, baseline_events, baseline_tokens_per_second FROM pairs"
                )
            }
    except sqlite3.OperationalError:
        pass
    if len(rows) >= len(expected_ids):
        break
    time.sleep(0.05)
for request_id in expected_ids:
    row = rows.get(request_id)
    if row is None:
        failures.append(f"{request_id}: not recorded")
        continue
    outcome, baseline_error, cost, events, tokens_per_second = row
    if outcome != "compared" or baseline_error is not None:
        failures.append(f"{request_id}: outcome {outcome}, baseline_error {baseline_error}")
    if cost is None:
        failures.append(f"{request_id}: baseline_cost is NULL")
    if "stream" in request_id and (not events or not tokens_per_second):
        failures.append(f"{request_id}: events {events}, tokens/s {tokens_per_second}")
stop_all()
streamed = [rows[i][4] for i in expected_ids if "stream" in i and i in rows and rows[i][4]]
print(f"openai {openai.__version__}: {len(expected_ids)} requests (sync and async, streamed and not), "
      f"{sum(1 for i in expected_ids if i in rows and rows[i][0] == 'compared')} recorded as compared")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("identical to direct, every pair compared: ok")
