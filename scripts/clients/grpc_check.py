"""Drives tritonclient (gRPC) and grpcio through shadowd; see scripts/clients/grpc."""
import concurrent.futures
import os
import subprocess
import sys

import grpc
import numpy as np
import tritonclient.grpc as triton
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

shadowd = sys.argv[1]
check = common.check


# TF Serving's messages from the repository's own .proto, through a descriptor set (no generated
# Python module, so any protobuf runtime version reads it).
protos = "Sources/ShadowTensor/Protos"
descriptor_set = os.path.join(common.workdir, "tf.pb")
include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
if protoc.main(["protoc", f"-I{protos}", f"-I{include}", "--include_imports", f"--descriptor_set_out={descriptor_set}", f"{protos}/tf_serving.proto"]):
    sys.exit("protoc failed on tf_serving.proto")
pool = descriptor_pool.DescriptorPool()
for file in descriptor_pb2.FileDescriptorSet.FromString(open(descriptor_set, "rb").read()).file:
    pool.Add(file)
PredictRequest = message_factory.GetMessageClass(pool.FindMessageTypeByName("tfserving.PredictRequest"))
PredictResponse = message_factory.GetMessageClass(pool.FindMessageTypeByName("tfserving.PredictResponse"))

try:
    baseline = common.start(shadowd, ["fixture-model", "--grpc", "--spec", "Fixtures/models/baseline.yaml", "--port", "0"], r"listening on h2c://127\.0\.0\.1:")
    candidate = common.start(shadowd, ["fixture-model", "--grpc", "--spec", "Fixtures/models/candidate.yaml", "--port", "0"], r"listening on h2c://127\.0\.0\.1:")
    config = open("Fixtures/configs/grpc.yaml").read()
    port, database = common.serve(shadowd, config, {"127.0.0.1:9001": f"127.0.0.1:{baseline}", "127.0.0.1:9002": f"127.0.0.1:{candidate}"})

    # 1. tritonclient: KServe V2 ModelInfer, as Triton's users call it.
    def infer(client, index):
        tensor = triton.InferInput("pixels", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array([[index, 0.5, 2, 4]], dtype=np.float32))
        result = client.infer("classifier", [tensor], request_id=f"triton-{index}")
        return result.as_numpy("label").tolist(), result.as_numpy("probabilities").tolist(), result.get_response().id

    through = triton.InferenceServerClient(f"127.0.0.1:{port}")
    direct = triton.InferenceServerClient(f"127.0.0.1:{baseline}")
    for index in range(40):
        check(infer(through, index) == infer(direct, index), f"tritonclient call {index}: the answer through the sidecar differs from direct")
    with concurrent.futures.ThreadPoolExecutor(32) as calls:
        concurrent_answers = list(calls.map(lambda index: infer(through, index), range(40, 104)))
    check(all(answer[2] == f"triton-{40 + n}" for n, answer in enumerate(concurrent_answers)), "concurrent tritonclient calls got the wrong answers")

    # 2. grpcio: TF Serving Predict, with a deadline (grpc-timeout) on each call.
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    direct_channel = grpc.insecure_channel(f"127.0.0.1:{baseline}")
    def predict(on, index):
        call = on.unary_unary("/tensorflow.serving.PredictionService/Predict", request_serializer=PredictRequest.SerializeToString, response_deserializer=PredictResponse.FromString)
        request = PredictRequest()
        request.model_spec.name = "classifier"
        tensor = request.inputs["x"]
        tensor.dtype = 1  # DT_FLOAT
        tensor.tensor_shape.dim.add(size=1)
        tensor.tensor_shape.dim.add(size=3)
        tensor.float_val.extend([index, 1.5, -2])
        return call(request, timeout=10).SerializeToString(deterministic=True)
    for index in range(20):
        check(predict(channel, index) == predict(direct_channel, index), f"grpcio Predict {index}: the answer through the sidecar differs from direct")
    # 3. grpcio with gzip-compressed requests: passed through untouched, decoded for the record.
    compressed = grpc.insecure_channel(f"127.0.0.1:{port}", compression=grpc.Compression.Gzip)
    direct_compressed = grpc.insecure_channel(f"127.0.0.1:{baseline}", compression=grpc.Compression.Gzip)
    for index in range(100, 110):
        check(predict(compressed, index) == predict(direct_compressed, index), f"grpcio gzip Predict {index}: the answer through the sidecar differs from direct")

    kserve = common.query(database, "SELECT count(*) FROM pairs WHERE route = 'kserve'", lambda rows: rows and rows[0][0] >= 104)
    check(kserve and kserve[0][0] == 104, f"kserve: {kserve} pairs recorded, expected 104")
    tf = common.query(database, "SELECT count(*) FROM pairs WHERE route = 'tf-serving'", lambda rows: rows and rows[0][0] >= 30)
    check(tf and tf[0][0] == 30, f"tf-serving: {tf} pairs recorded, expected 30")
    gzipped = common.query(database, "SELECT count(*) FROM pairs WHERE route = 'tf-serving' AND json_extract(request_body, '$.inputs.x[0][0]') >= 100", lambda rows: rows and rows[0][0] >= 10)
    check(gzipped and gzipped[0][0] == 10, f"gzip-compressed requests recorded decoded: {gzipped}")
    decoded = common.query(database, "SELECT count(*) FROM pairs WHERE route = 'kserve' AND json_extract(request_body, '$.id') LIKE 'triton-%' AND json_extract(baseline_body, '$.outputs[0].name') = 'label' AND baseline_grpc_status = 0", lambda rows: rows and rows[0][0] >= 104)
    check(decoded and decoded[0][0] == 104, f"kserve pairs with decoded tensors and grpc status 0: {decoded}")
    outcomes = common.query(database, "SELECT outcome, count(*) FROM pairs GROUP BY 1", lambda rows: True)
    compared = sum(count for outcome, count in outcomes if outcome == "compared")
    check(compared >= 100, f"compared pairs: {outcomes}")
    diverged = common.query(database, "SELECT sum(diverged) FROM pairs WHERE route = 'kserve'", lambda rows: True)[0][0] or 0
    check(0 < diverged < 40, f"the candidate disagrees on about 10% of inputs; {diverged} of 104 diverged")
    print(f"grpc clients: 104 tritonclient ModelInfer + 30 grpcio Predict calls (10 gzip-compressed), equal to direct; {compared} compared, {diverged} diverged (kserve)")
finally:
    common.stop_all()

common.finish("grpc clients")
