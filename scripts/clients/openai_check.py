"""Drives Fixtures/configs/llm.yaml's setup with the official openai client (see ./openai).

Usage: openai_check.py SHADOWD_BINARY"""
import asyncio
import sqlite3
import sys
import zlib

import openai

from common import check_recorded, diverged_share, serve, start, stop_all

shadowd = sys.argv[1]
baseline = start(shadowd, ["fixture-model", "--spec", "Fixtures/models/llm-baseline.yaml", "--port", "0"], r"listening on http://127\.0\.0\.1:")
candidate = start(shadowd, ["fixture-model", "--spec", "Fixtures/models/llm-candidate.yaml", "--port", "0"], r"listening on http://127\.0\.0\.1:")
with open("Fixtures/configs/llm.yaml") as source:
    sidecar, database = serve(shadowd, source.read(), {"127.0.0.1:9001": f"127.0.0.1:{baseline}", "127.0.0.1:9002": f"127.0.0.1:{candidate}"})

PROMPTS = [f"question {n}: tell me about item {n * 7}" for n in range(6)]
failures = []


TOOLS = [{"type": "function", "function": {"name": "search_catalog", "description": "Looks items up.",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}}]


def request_args(prompt, stream, tools=False):
    args = dict(model="assistant", messages=[{"role": "user", "content": prompt}], stream=stream)
    if stream:
        args["stream_options"] = {"include_usage": True}
    if tools:
        args["tools"] = TOOLS
    return args


def summary(result, stream):
    """What a client takes from an answer: the text, how it ended, usage, and for a stream the
    content of every chunk in order."""
    if not stream:
        choice = result.choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        return (choice.message.content, choice.finish_reason, result.usage.prompt_tokens, result.usage.completion_tokens, calls)
    return fold(list(result))


def fold(chunks):
    """A stream as the client assembles it: text, finish reason, usage, the tool calls put back
    together, and every chunk's delta in order."""
    deltas, text, finish, usage, calls = [], "", None, None, {}
    for chunk in chunks:
        if chunk.usage:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if chunk.choices:
            delta = chunk.choices[0].delta
            deltas.append((delta.content, [(c.index, c.id, c.function and c.function.name, c.function and c.function.arguments)
                                            for c in delta.tool_calls or []]))
            text += delta.content or ""
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, ["", "", ""])
                entry[0] = call.id or entry[0]
                entry[1] += (call.function and call.function.name) or ""
                entry[2] += (call.function and call.function.arguments) or ""
            finish = chunk.choices[0].finish_reason or finish
    return (text, finish, usage and usage[0], usage and usage[1], [tuple(calls[i]) for i in sorted(calls)], deltas)


async def async_summary(result, stream):
    if not stream:
        return summary(result, False)
    return fold([chunk async for chunk in result])


def client(port, cls=openai.OpenAI):
    return cls(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test-not-a-secret", max_retries=0)


expected_ids = []
# The sync client, streamed and not, with and without tools: through the sidecar vs straight to
# the baseline.
for tools in (False, True):
    for stream in (False, True):
        for index, prompt in enumerate(PROMPTS):
            request_id = f"sync-{'tools-' if tools else ''}{'stream' if stream else 'plain'}-{index}"
            expected_ids.append(request_id)
            args = request_args(prompt, stream, tools)
            through = summary(client(sidecar).chat.completions.create(**args, extra_headers={"x-request-id": request_id}), stream)
            direct = summary(client(baseline).chat.completions.create(**args), stream)
            if through != direct:
                failures.append(f"{request_id}: through the sidecar {through!r} != direct {direct!r}")
            if tools and not through[4]:
                failures.append(f"{request_id}: no tool call in {through!r}")


async def run_async():
    for tools in (False, True):
        for stream in (False, True):
            for index, prompt in enumerate(PROMPTS):
                request_id = f"async-{'tools-' if tools else ''}{'stream' if stream else 'plain'}-{index}"
                expected_ids.append(request_id)
                args = request_args(prompt, stream, tools)
                through_client, direct_client = client(sidecar, openai.AsyncOpenAI), client(baseline, openai.AsyncOpenAI)
                through = await async_summary(
                    await through_client.chat.completions.create(**args, extra_headers={"x-request-id": request_id}), stream
                )
                direct = await async_summary(await direct_client.chat.completions.create(**args), stream)
                await through_client.close()
                await direct_client.close()
                if through != direct:
                    failures.append(f"{request_id}: through the sidecar {through!r} != direct {direct!r}")


asyncio.run(run_async())

# Every request recorded as a compared pair, priced, with tokens per second for streams.
rows = check_recorded(database, expected_ids, failures)

# The example's candidate answers differently on 15% of prompts: the pairs show it.
sample = 300
with client(sidecar) as sampler:
    for n in range(sample):
        sampler.chat.completions.create(**request_args(f"sampled prompt {n}", False), extra_headers={"x-request-id": f"sample-{n}"})
share = diverged_share(database, "sample-", sample, failures)

# The example stores bodies compressed (storage.bodies: compressed): every streamed answer is, and
# inflated (as the sqlite3 shell's sqlar_uncompress does) it is the event stream the client read.
with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
    stored = db.execute("SELECT candidate_body, candidate_body_zlib FROM pairs WHERE request_id IN (%s)"
                        % ",".join("?" * len(expected_ids)), list(expected_ids)).fetchall()
streams = [(zlib.decompress(body), size) for body, size in stored if size is not None]
if not streams or not all(len(text) == size and text.startswith((b"data: ", b"{")) for text, size in streams):
    failures.append(f"compressed bodies: {len(streams)} of {len(stored)} candidate answers stored compressed and readable")
stop_all()
print(f"openai {openai.__version__}: {len(expected_ids)} requests (sync and async, streamed and not, with and without tools), "
      f"{sum(1 for i in expected_ids if i in rows and rows[i][0] == 'compared')} recorded as compared; "
      f"diverged on {share and round(share * 100, 1)}% of {sample} sampled prompts")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("identical to direct, every pair compared: ok")
