"""grpcio (gRPC's C core) on both sides of shadowd, the upstreams over TLS; see scripts/clients/grpc.

The baseline and the candidate are grpcio servers with certificates made here by openssl, reached
at https:// URLs: the sidecar must agree to HTTP/2 with them by ALPN. A grpcio client calls
through the sidecar over h2c: unary calls (mirrored and compared), a client stream and a
bidirectional conversation (passed through, never mirrored, counted as client_streaming).
"""
import concurrent.futures
import os
import subprocess
import sys
import threading

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

shadowd = sys.argv[1]
check = common.check


def openssl(*arguments):
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, cwd=common.workdir)


# A CA and a server certificate for 127.0.0.1.
openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=shadowd test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
with open(os.path.join(common.workdir, "san.ext"), "w") as ext:
    ext.write("subjectAltName=IP:127.0.0.1\n")
openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
        "-out", "server.pem")
read = lambda name: open(os.path.join(common.workdir, name), "rb").read()  # noqa: E731
credentials = grpc.ssl_server_credentials([(read("server.key"), read("server.pem"))])

SERVICE = "shadowd.test.Echo"


def start_server(version, calls):
    """A grpcio server: Unary echoes `version:` + the request; Collect joins a client stream;
    Chat answers each message of a conversation as it comes."""
    lock = threading.Lock()

    def count(method):
        with lock:
            calls[method] = calls.get(method, 0) + 1

    def unary(request, context):
        count("Unary")
        context.set_trailing_metadata((("x-served-by", version),))
        return version.encode() + b":" + request

    def collect(requests, context):
        count("Collect")
        return b"+".join(requests)

    def chat(requests, context):
        count("Chat")
        for request in requests:
            yield b"re:" + request

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    })
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


baseline_calls, candidate_calls = {}, {}
baseline, baseline_port = start_server("v1", baseline_calls)
candidate, candidate_port = start_server("v2", candidate_calls)
config = f"""
server:
  listen: 127.0.0.1:8080
admin:
  listen: 127.0.0.1:8081
storage:
  path: unused.sqlite
routes:
  - name: echo
    prefix: /{SERVICE}/
    baseline:
      url: https://127.0.0.1:{baseline_port}
      tls:
        ca_file: {common.workdir}/ca.pem
    candidates:
      - name: v2
        url: https://127.0.0.1:{candidate_port}
        tls:
          ca_file: {common.workdir}/ca.pem
    scorer:
      kind: exact
"""
try:
    port, database = common.serve(shadowd, config, {}, name="tls")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    unary = channel.unary_unary(f"/{SERVICE}/Unary")
    for index in range(20):
        answer, call = unary.with_call(f"req-{index}".encode(), timeout=10)
        check(answer == f"v1:req-{index}".encode(), f"unary {index}: {answer!r}")
        check(dict(call.trailing_metadata()).get("x-served-by") == "v1", f"unary {index}: trailers {call.trailing_metadata()}")
    collect = channel.stream_unary(f"/{SERVICE}/Collect")
    joined = collect(iter([b"a", b"b", b"c"]), timeout=10)
    check(joined == b"a+b+c", f"client stream: {joined!r}")

    # A conversation: each message is sent only after the answer to the one before.
    turns = []
    ready = threading.Semaphore(1)

    def messages():
        for word in [b"one", b"two", b"three"]:
            ready.acquire()
            yield word

    chat = channel.stream_stream(f"/{SERVICE}/Chat")
    for answer in chat(messages(), timeout=10):
        turns.append(answer)
        ready.release()
    check(turns == [b"re:one", b"re:two", b"re:three"], f"conversation: {turns}")

    pairs = common.query(database, "SELECT count(*) FROM pairs WHERE outcome = 'compared'", lambda rows: rows and rows[0][0] >= 20)
    check(pairs and pairs[0][0] == 20, f"unary pairs compared: {pairs}")
    diverged = common.query(database, "SELECT count(*) FROM pairs WHERE diverged = 1 AND baseline_grpc_status = 0 AND candidate_grpc_status = 0", lambda rows: rows and rows[0][0] >= 20)
    check(diverged and diverged[0][0] == 20, f"v1 and v2 answers differ on every call: {diverged}")
    streaming = common.query(database, "SELECT sum(count) FROM coverage WHERE reason = 'client_streaming'", lambda rows: rows and (rows[0][0] or 0) >= 2)
    check(streaming and streaming[0][0] == 2, f"request streams counted as client_streaming: {streaming}")
    check(baseline_calls == {"Unary": 20, "Collect": 1, "Chat": 1}, f"baseline calls: {baseline_calls}")
    check(candidate_calls == {"Unary": 20}, f"candidate calls (copies of unary calls only): {candidate_calls}")
    print(f"grpc over TLS: 20 unary calls, a client stream and a conversation through the sidecar to grpcio TLS servers (h2 by ALPN); baseline {baseline_calls}, candidate {candidate_calls}")
finally:
    common.stop_all()
    baseline.stop(None)
    candidate.stop(None)

common.finish("grpc over TLS")
