"""Sends each case to a running sidecar, lints the response with httplint, prints a table.

Usage: probe.py SHADOWD_BINARY HTTPLINT_BINARY (see scripts/conformance/run)."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

shadowd, httplint = sys.argv[1], sys.argv[2]
BASELINE, SIDECAR, ADMIN, DOWN = 28301, 28302, 28303, 28309


def wait_for(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def exchange(port, raw, timeout=5.0):
    """Sends raw bytes, reads until the server closes; returns (bytes, closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(raw)
    data, closed = b"", False
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    sock.close()
    return data, closed


def lint(response):
    out = subprocess.run([httplint, "-n"], input=response, capture_output=True).stdout.decode()
    notes = re.findall(r"\[(GOOD|INFO|WARN|BAD)\] (.*)", out)
    return notes


long_header = "X-Big: " + "b" * 70000
BODY = '{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
CASES = [
    # name, port, request, expected status, must the connection be closed
    ("POST passthrough", SIDECAR, "POST /v2/models/classifier/infer HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
     f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n{BODY}", 200, False),
    ("chunked upload passthrough", SIDECAR, "POST /v2/models/classifier/infer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
     f"{len(BODY) - 10:x}\r\n{BODY[:-10]}\r\n{10:x}\r\n{BODY[-10:]}\r\n0\r\n\r\n", 200, False),
    ("GET readiness passthrough", SIDECAR, "GET /v2/health/ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, False),
    ("no route", SIDECAR, "GET /elsewhere HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404, False),
    ("baseline down", SIDECAR, "GET /down/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 502, False),
    ("CL.TE both present", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400, True),
    ("TE.TE obfuscated coding", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, True),
    ("TE.TE duplicate codings", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, True),
    ("TE with leading space in value", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked , gzip\r\n\r\n0\r\n\r\n", 400, True),
    ("duplicate differing Content-Length", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, True),
    ("negative Content-Length", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, True),
    ("chunk size with garbage", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;x\x00y\r\nabcd\r\n0\r\n\r\n", 400, True),
    ("chunk size overflow", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nabcd\r\n0\r\n\r\n", 400, True),
    ("bare LF line endings", SIDECAR, "GET /v2/x HTTP/1.1\nHost: a\nX-A: b\n\n", 400, True),
    ("obs-fold header", SIDECAR, "GET /v2/x HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400, True),
    ("space before colon", SIDECAR, "GET /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, True),
    ("NUL in header value", SIDECAR, "GET /v2/x HTTP/1.1\r\nHost: a\r\nX-A: o\x00ne\r\n\r\n", 400, True),
    ("absolute-form target", SIDECAR, "GET http://internal/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, True),
    ("authority-form target", SIDECAR, "CONNECT internal:443 HTTP/1.1\r\nHost: internal:443\r\n\r\n", 400, True),
    ("oversized headers", SIDECAR, "GET /v2/x HTTP/1.1\r\nHost: a\r\n" + long_header + "\r\n\r\n", 431, True),
    ("declared body above the limit", SIDECAR, "POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413, True),
    ("admin /healthz", ADMIN, "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, False),
    ("admin /readyz", ADMIN, "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, False),
    ("admin /stats", ADMIN, "GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, False),
    ("admin /metrics", ADMIN, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, False),
]

directory = tempfile.mkdtemp(prefix="shadowd-conformance-")
spec = os.path.join(directory, "baseline.yaml")
with open(spec, "w") as f:
    f.write('name: classifier\nversion: "1"\nlabels: [cat, dog]\n')
config = os.path.join(directory, "shadowd.yaml")
with open(config, "w") as f:
    f.write(f"""server: {{listen: "127.0.0.1:{SIDECAR}"}}
admin: {{listen: "127.0.0.1:{ADMIN}"}}
limits: {{max_request_body: 1MiB, mirror_max_body: 1MiB, max_header_bytes: 16KiB}}
storage: {{path: {directory}/shadow.sqlite}}
routes:
  - {{name: down, prefix: /down/, baseline: {{url: "http://127.0.0.1:{DOWN}"}}}}
  - {{name: models, prefix: /v2/, baseline: {{url: "http://127.0.0.1:{BASELINE}"}}}}
""")
model = subprocess.Popen([shadowd, "fixture-model", "--spec", spec, "--port", str(BASELINE)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
daemon = subprocess.Popen([shadowd, "serve", "--config", config, "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
failures = 0
try:
    for port in (BASELINE, SIDECAR, ADMIN):
        wait_for(port)
    print(f"{'case':36} {'status':>6} {'closed':>6}  httplint (BAD/WARN)   verdict")
    for name, port, request, expected, must_close in CASES:
        raw, closed = exchange(port, request.encode("latin-1"))
        status_line = raw.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        match = re.match(r"HTTP/1\.[01] (\d{3})", status_line)
        status = int(match.group(1)) if match else 0
        notes = lint(raw) if raw else []
        bad = [text for level, text in notes if level == "BAD"]
        warn = [text for level, text in notes if level == "WARN"]
        ok = status == expected and (closed or not must_close) and not bad
        failures += 0 if ok else 1
        print(f"{name:36} {status:>6} {str(closed):>6}  {len(bad)}/{len(warn):<17} {'pass' if ok else 'FAIL'}")
        for text in bad:
            print(f"    BAD: {text}")
    # Every hostile request was refused by the sidecar itself (HostileInputTests prove they never
    # reach an upstream; here the counters show them as rejected).
    served = subprocess.run(["curl", "-s", f"http://127.0.0.1:{ADMIN}/stats"], capture_output=True).stdout.decode()
    print(f"\nsidecar /stats: {served.strip()}")
finally:
    daemon.terminate()
    model.terminate()
    daemon.wait()
    model.wait()
print(f"\n{len(CASES) - failures} of {len(CASES)} cases pass")
sys.exit(1 if failures else 0)
