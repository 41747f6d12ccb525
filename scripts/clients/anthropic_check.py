"""Drives Fixtures/configs/llm-anthropic.yaml's setup with the official anthropic client (see
./anthropic): a hosted-style baseline over HTTPS (the fixture with a throwaway CA), a
self-hosted candidate over plain HTTP, each with its own key held by the sidecar.

Usage: anthropic_check.py SHADOWD_BINARY"""
import asyncio
import os
import sys

import anthropic

try:  # the HTTP library the client is built on (httpx2 in its 2.x releases)
    import httpx2 as httpx
except ImportError:
    import httpx

from common import check_recorded, diverged_share, logs, serve, start, stop_all, workdir

shadowd = sys.argv[1]
pki = os.path.join(workdir, "pki")
baseline = start(
    shadowd,
    ["fixture-model", "--spec", "Fixtures/models/anthropic-baseline.yaml", "--port", "0", "--tls-generate", pki],
    r"listening on https://127\.0\.0\.1:",
)
candidate = start(shadowd, ["fixture-model", "--spec", "Fixtures/models/anthropic-candidate.yaml", "--port", "0"], r"listening on http://127\.0\.0\.1:")
BASELINE_KEY = "sk-ant-BASELINE-SECRET-7"
CANDIDATE_KEY = "CANDIDATE-SECRET-8"
env = dict(os.environ, ANTHROPIC_API_KEY=BASELINE_KEY, CANDIDATE_API_KEY=CANDIDATE_KEY)
with open("Fixtures/configs/llm-anthropic.yaml") as source:
    sidecar, database = serve(
        shadowd,
        source.read(),
        {"127.0.0.1:9443": f"127.0.0.1:{baseline}", "127.0.0.1:9002": f"127.0.0.1:{candidate}", "/tmp/shadowd-pki/ca.pem": f"{pki}/ca.pem"},
        env=env,
    )

PROMPTS = [f"question {n}: tell me about item {n * 7}" for n in range(6)]
TOOLS = [{"name": "search_catalog", "description": "Looks items up.",
          "input_schema": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}]
failures = []
expected_ids = []


def args(prompt, tools):
    request = dict(model="assistant", max_tokens=256, messages=[{"role": "user", "content": prompt}])
    if tools:
        request["tools"] = TOOLS
    return request


def blocks(message):
    """What a client takes from a message: its blocks, stop reason and usage."""
    content = [(b.type, getattr(b, "text", None), getattr(b, "name", None), getattr(b, "input", None)) for b in message.content]
    return (content, message.stop_reason, message.usage.input_tokens, message.usage.output_tokens)


def through_client(cls=anthropic.Anthropic):
    # The client holds no real key: the sidecar sets the baseline's.
    return cls(base_url=f"http://127.0.0.1:{sidecar}", api_key="client-placeholder", max_retries=0)


def direct_client(cls=anthropic.Anthropic):
    # Straight to the HTTPS fixture, trusting its throwaway CA.
    http = httpx.AsyncClient(verify=f"{pki}/ca.pem") if cls is anthropic.AsyncAnthropic else httpx.Client(verify=f"{pki}/ca.pem")
    return cls(base_url=f"https://127.0.0.1:{baseline}", api_key=BASELINE_KEY, max_retries=0, http_client=http)


def sync_call(client, request, stream, request_id=None):
    headers = {"x-request-id": request_id} if request_id else None
    if not stream:
        return blocks(client.messages.create(**request, extra_headers=headers))
    # The stream helper reads to message_stop and closes: what real applications do.
    with client.messages.stream(**request, extra_headers=headers) as events:
        texts = [text for text in events.text_stream]
        return (texts, blocks(events.get_final_message()))


async def async_call(client, request, stream, request_id=None):
    headers = {"x-request-id": request_id} if request_id else None
    if not stream:
        return blocks(await client.messages.create(**request, extra_headers=headers))
    # Raw events, iterated to message_stop, as a hand-written consumer does.
    events = await client.messages.create(**request, stream=True, extra_headers=headers)
    seen = [(event.type, getattr(getattr(event, "delta", None), "text", None)) async for event in events]
    return seen


for tools in (False, True):
    for stream in (False, True):
        for index, prompt in enumerate(PROMPTS):
            request_id = f"sync-{'tools-' if tools else ''}{'stream' if stream else 'plain'}-{index}"
            expected_ids.append(request_id)
            through = sync_call(through_client(), args(prompt, tools), stream, request_id)
            direct = sync_call(direct_client(), args(prompt, tools), stream)
            if through != direct:
                failures.append(f"{request_id}: through the sidecar {through!r} != direct {direct!r}")


async def run_async():
    for tools in (False, True):
        for stream in (False, True):
            for index, prompt in enumerate(PROMPTS):
                request_id = f"async-{'tools-' if tools else ''}{'stream' if stream else 'plain'}-{index}"
                expected_ids.append(request_id)
                through = await async_call(through_client(anthropic.AsyncAnthropic), args(prompt, tools), stream, request_id)
                direct = await async_call(direct_client(anthropic.AsyncAnthropic), args(prompt, tools), stream)
                if through != direct:
                    failures.append(f"{request_id}: through the sidecar {through!r} != direct {direct!r}")


asyncio.run(run_async())

rows = check_recorded(database, expected_ids, failures, priced=("baseline_cost", "candidate_cost"))

sample = 300
with through_client() as sampler:
    for n in range(sample):
        sampler.messages.create(**args(f"sampled prompt {n}", False), extra_headers={"x-request-id": f"sample-{n}"})
share = diverged_share(database, "sample-", sample, failures)
stop_all()

# The keys the sidecar held appear in no log and no database file.
for secret in (BASELINE_KEY, CANDIDATE_KEY):
    if secret in logs():
        failures.append("a key appears in the logs")
    for suffix in ("", "-wal", "-shm"):
        path = database + suffix
        if os.path.exists(path) and secret.encode() in open(path, "rb").read():
            failures.append(f"a key appears in {os.path.basename(path)}")

print(f"anthropic {anthropic.__version__}: {len(expected_ids)} requests (sync and async, streamed and not, with and without tools) "
      f"to an HTTPS baseline, {sum(1 for i in expected_ids if i in rows and rows[i][0] == 'compared')} recorded as compared; "
      f"diverged on {share and round(share * 100, 1)}% of {sample} sampled prompts")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("identical to direct, every pair compared, no key written: ok")
