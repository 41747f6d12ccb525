import Foundation
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowStore
import ShadowTensor
import SwiftProtobuf
import Testing

import class GRDB.DatabaseQueue
import class GRDB.Row

/// gRPC over h2c end to end, on real sockets: a gRPC client (HTTP2TestClient) → the sidecar's
/// listener (h2c, told from HTTP/1.1 by the preface) → h2c fixture model servers.
extension HTTP2AndGRPCTests {
    @Suite struct GRPCEndToEndTests {
        /// Every upstream of the test route over h2c, and a scorer.
        static func grpcRoute(_ scorer: ScorerConfiguration) -> (inout Configuration) -> Void {
            { configuration in
                configuration.routes[0].baseline.url.usesHTTP2 = true
                for index in configuration.routes[0].candidates.indices { configuration.routes[0].candidates[index].url.usesHTTP2 = true }
                configuration.routes[0].scorer = scorer
            }
        }

        /// A V2 request's bytes, its tensor in `raw_input_contents` (as Triton's clients send it).
        static func modelInfer(id: String, pixels: [Float]) throws -> [UInt8] {
            var request = GRPCSwiftPeers.inferRequest(id: id, values: pixels)
            request.inputs[0].contents = Inference_InferTensorContents()
            request.rawInputContents = [Data(pixels.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })]
            return Array(try request.serializedData())
        }

        @Test func aUnaryCallIsAnsweredAsDirectAndRecordedAsDecodedTensors() async throws {
            let baseline = ModelFixture(spec: ModelSpec(name: "classifier", version: "1"))
            let candidate = ModelFixture(spec: ModelSpec(name: "classifier", version: "2", disagreeRate: 0.5))
            let direct = try await baseline.start(grpc: true)
            defer { Task { try? await direct.stop() } }
            try await withSidecar(
                baseline: .h2c(baseline.responder),
                candidates: [("v2", .h2c(candidate.responder))],
                configure: Self.grpcRoute(ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label"))
            ) { sidecar, _, candidates in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let straight = try await HTTP2TestClient.connect(port: direct.port)
                var disagreements = 0
                for index in 0..<40 {
                    let message = try Self.modelInfer(id: "req-\(index)", pixels: [Float(index), 1, 2, 3])
                    let through = try await client.unary(path: ModelFixture.grpcModelInfer, message: message)
                    let expected = try await straight.unary(path: ModelFixture.grpcModelInfer, message: message)
                    // The baseline's answer, byte for byte: messages, status, content type, trailers.
                    #expect(through.status == 200)
                    #expect(through.body == expected.body)
                    #expect(through.grpcStatus == 0)
                    #expect(through.header("content-type") == "application/grpc")
                    #expect(through.trailers.map(\.name) == expected.trailers.map(\.name))
                    let key = candidate.plannedOutcome(forBody: Array(try TensorDecoder.decode(message, as: .kserveV2Request).serialized.utf8))
                    if key == .disagree { disagreements += 1 }
                }
                #expect(try await eventually { (candidates[0]?.requestCount ?? 0) == 40 })
                await client.close()
                await straight.close()
                await sidecar.stop()
                let planned = disagreements
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                try await queue.read { db in
                    let rows = try Row.fetchAll(db, sql: "SELECT * FROM pairs ORDER BY received_at_us")
                    #expect(rows.count == 40)
                    let first = rows[0]
                    // Decoded to the V2 JSON form and stored as TEXT: json_extract works on gRPC traffic.
                    #expect(try String.fetchOne(db, sql: "SELECT typeof(baseline_body) FROM pairs LIMIT 1") == "text")
                    #expect(
                        try String.fetchOne(db, sql: "SELECT json_extract(request_body, '$.inputs[0].datatype') FROM pairs LIMIT 1") == "FP32"
                    )
                    #expect(
                        try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE json_extract(baseline_body, '$.outputs[0].name') = 'label'") == 40
                    )
                    #expect((first["baseline_grpc_status"] as Int?) == 0)
                    #expect((first["candidate_grpc_status"] as Int?) == 0)
                    #expect((first["outcome"] as String?) == "compared")
                    // The label scorer read the decoded tensors: exactly the planned disagreements diverge.
                    #expect(try Int.fetchOne(db, sql: "SELECT sum(diverged) FROM pairs") == planned)
                    #expect(planned > 5 && planned < 35)
                }
                try queue.close()
            }
        }

        @Test func tfServingPredictIsDecodedAndScoredLikeItsRESTForm() async throws {
            let baseline = ModelFixture(spec: ModelSpec(name: "classifier", version: "1", api: .tfServing))
            let candidate = ModelFixture(spec: ModelSpec(name: "classifier", version: "2", disagreeRate: 1, api: .tfServing))
            try await withSidecar(
                baseline: .h2c(baseline.responder),
                candidates: [("v2", .h2c(candidate.responder))],
                configure: Self.grpcRoute(ScorerConfiguration(kind: .json, outputProtocol: .tfServing))
            ) { sidecar, _, candidates in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                var request = Tfserving_PredictRequest()
                request.modelSpec.name = "classifier"
                var tensor = Tfserving_TensorProto()
                tensor.dtype = .dtFloat
                tensor.tensorShape.dim = [ModelFixtureDim.make(1), ModelFixtureDim.make(3)]
                tensor.floatVal = [1, 2, 3]
                request.inputs = ["x": tensor]
                let answer = try await client.unary(path: ModelFixture.grpcPredict, message: Array(try request.serializedData()))
                #expect(answer.grpcStatus == 0)
                let response = try Tfserving_PredictResponse(serializedBytes: answer.messages[0])
                #expect(response.outputs["label"]?.stringVal.count == 1)
                #expect(try await eventually { (candidates[0]?.requestCount ?? 0) == 1 })
                await client.close()
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                try await queue.read { db in
                    let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM pairs"))
                    #expect((row["diverged"] as Int?) == 1, "a candidate that always disagrees")
                    let paths: String = row["differing_paths"]
                    #expect(paths.contains("$.outputs.label[0]"), "\(paths)")
                    // The model versions differ by design and are not compared.
                    #expect(!paths.contains("model_spec"), "\(paths)")
                    #expect(try String.fetchOne(db, sql: "SELECT json_extract(request_body, '$.inputs.x[0][2]') FROM pairs") == "3")
                }
                try queue.close()
            }
        }

        /// The same tensors, once as gRPC messages and once as V2 JSON answers: the scorer gives the
        /// same score and explanation either way.
        @Test func theSameTensorsScoreTheSameOverGRPCAndJSON() async throws {
            let baselineScores: [Float] = [0.1, 0.7, 0.2]
            let candidateScores: [Float] = [0.1, 0.6, 0.3]
            func grpcAnswer(_ scores: [Float]) -> FixtureServer.Responder {
                { _ in
                    var response = Inference_ModelInferResponse()
                    response.modelName = "m"
                    var output = Inference_ModelInferResponse.InferOutputTensor()
                    output.name = "scores"
                    output.datatype = "FP32"
                    output.shape = [Int64(scores.count)]
                    response.outputs = [output]
                    response.rawOutputContents = [Data(scores.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })]
                    return FixtureResponse(
                        headers: [("content-type", "application/grpc")],
                        body: GRPCFraming.frame(Array(try! response.serializedData())),
                        trailers: [("grpc-status", "0")]
                    )
                }
            }
            func jsonAnswer(_ scores: [Float]) -> FixtureServer.Responder {
                let data = scores.map { JSONValue.number(Double($0)) }
                let document = JSONValue.object([
                    ("model_name", .string("m")),
                    (
                        "outputs",
                        .array([
                            .object([
                                ("name", .string("scores")), ("datatype", .string("FP32")), ("shape", .array([.number(Double(scores.count))])),
                                ("data", .array(data)),
                            ])
                        ])
                    ),
                ])
                return { _ in .json(document.serialized) }
            }
            let scorer = ScorerConfiguration(kind: .numeric, outputProtocol: .kserveV2, absoluteTolerance: 0.05)
            var scores: [(Double?, String?)] = []
            for grpc in [true, false] {
                try await withSidecar(
                    baseline: grpc ? .h2c(grpcAnswer(baselineScores)) : .responder(jsonAnswer(baselineScores)),
                    candidates: [("v2", grpc ? .h2c(grpcAnswer(candidateScores)) : .responder(jsonAnswer(candidateScores)))],
                    configure: grpc ? Self.grpcRoute(scorer) : { $0.routes[0].scorer = scorer }
                ) { sidecar, _, candidates in
                    if grpc {
                        let client = try await HTTP2TestClient.connect(port: sidecar.port)
                        _ = try await client.unary(path: ModelFixture.grpcModelInfer, message: try Self.modelInfer(id: "a", pixels: [1]))
                        await client.close()
                    } else {
                        let client = try await sidecar.client()
                        _ = try await client.send(method: .POST, path: "/v2/models/m/infer", body: Array(#"{"inputs":[]}"#.utf8))
                    }
                    #expect(try await eventually { (candidates[0]?.requestCount ?? 0) == 1 })
                    await sidecar.stop()
                    let queue = try DatabaseQueue(path: sidecar.databasePath)
                    let row: (Double?, String?) = try await queue.read { db in
                        let row = try Row.fetchOne(db, sql: "SELECT divergence, explanation FROM pairs")
                        return (row?["divergence"], row?["explanation"])
                    }
                    scores.append(row)
                    try queue.close()
                }
            }
            #expect(scores.count == 2)
            #expect(scores[0].0 != nil && scores[0].0 == scores[1].0, "\(scores)")
            #expect(scores[0].1 == scores[1].1, "\(scores)")
            #expect(scores[0].1?.contains(#""outside_tolerance":2"#) == true, "\(scores)")
        }

        /// A server stream passes through message by message: the client has the first message
        /// while the baseline still holds the second (released only once the client has the
        /// first: a sidecar that buffered the answer would never finish). The messages are recorded
        /// as one array of decoded documents.
        @Test func aServerStreamPassesThroughMessageByMessage() async throws {
            func message(_ label: String) throws -> [UInt8] {
                var response = Inference_ModelInferResponse()
                response.modelName = "m"
                var output = Inference_ModelInferResponse.InferOutputTensor()
                output.name = "label"
                output.datatype = "BYTES"
                output.shape = [1]
                output.contents.bytesContents = [Data(label.utf8)]
                response.outputs = [output]
                return GRPCFraming.frame(Array(try response.serializedData()))
            }
            let gate = FixtureGate()
            let (first, second) = (try message("first"), try message("second"))
            try await withSidecar(
                baseline: .h2c { _ in
                    FixtureResponse(headers: [("content-type", "application/grpc")], mode: .gatedChunks(first: [first], gate: gate, rest: [second]))
                },
                candidates: [("v2", .h2c { _ in FixtureResponse(headers: [("content-type", "application/grpc")], body: first + second) })],
                configure: Self.grpcRoute(ScorerConfiguration(kind: .json, outputProtocol: .kserveV2))
            ) { sidecar, _, candidates in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let answer = try await client.unary(
                    path: "/inference.GRPCInferenceService/ModelStreamInfer",
                    message: try Self.modelInfer(id: "s", pixels: [1]),
                    onFirstBody: { gate.open() }
                )
                #expect(answer.body == first + second)
                #expect(try await eventually { (candidates[0]?.requestCount ?? 0) == 1 })
                await client.close()
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                try await queue.read { db in
                    let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM pairs"))
                    let labels = try String.fetchOne(db, sql: "SELECT json_extract(baseline_body, '$[1].outputs[0].data[0]') FROM pairs")
                    #expect(labels == "second", "both messages, decoded, as an array")
                    #expect((row["diverged"] as Int?) == 0)
                }
                try queue.close()
            }
        }

        /// The V2 REST binary tensor extension over HTTP/1.1: tritonclient's own request body
        /// (`Fixtures/tensors/v2-binary-request.bin`), a baseline answering in binary and a candidate
        /// answering the same tensors as JSON. Both are decoded, so the pair compares equal, and
        /// `json_extract` reads the request's tensors.
        @Test func theBinaryTensorExtensionIsDecodedOverHTTP1() async throws {
            let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/tensors")
            let body = Array(try Data(contentsOf: fixtures.appendingPathComponent("v2-binary-request.bin")))
            let header = #"{"model_name":"m","outputs":[{"name":"scores","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}"#
            let scores: [Float] = [0.25, 0.75]
            let binary = Array(header.utf8) + scores.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
            let json = #"{"model_name":"m","outputs":[{"name":"scores","datatype":"FP32","shape":[2],"data":[0.25,0.75]}]}"#
            try await withSidecar(
                baseline: .responder { _ in
                    FixtureResponse(
                        headers: [("content-type", "application/octet-stream"), ("inference-header-content-length", String(header.utf8.count))],
                        body: binary
                    )
                },
                candidates: [("v2", .responder { _ in .json(json) })],
                configure: { $0.routes[0].scorer = ScorerConfiguration(kind: .json, outputProtocol: .kserveV2) }
            ) { sidecar, _, candidates in
                let client = try await sidecar.client()
                let answer = try await client.send(
                    method: .POST,
                    path: "/v2/models/m/infer",
                    headers: [("content-type", "application/octet-stream"), ("inference-header-content-length", "329")],
                    body: body
                )
                #expect(answer.body == binary, "the client gets the baseline's bytes")
                #expect(try await eventually { (candidates[0]?.requestCount ?? 0) == 1 })
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                try await queue.read { db in
                    let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM pairs"))
                    #expect((row["diverged"] as Int?) == 0, "decoded, not compared as bytes: \(row)")
                    #expect(try String.fetchOne(db, sql: "SELECT json_extract(request_body, '$.inputs[1].data[1]') FROM pairs") == "bc")
                    #expect(try Int.fetchOne(db, sql: "SELECT request_body_decoded FROM exchanges") == 1, "replay must not send it")
                    #expect(try Double.fetchOne(db, sql: "SELECT json_extract(baseline_body, '$.outputs[0].data[1]') FROM pairs") == 0.75)
                }
                try queue.close()
            }
        }

        @Test func aFailingBaselineIsAGRPCStatusNotAnErrorPage() async throws {
            try await withSidecar(baseline: .refusing, configure: Self.grpcRoute(ScorerConfiguration(kind: .exact))) { sidecar, _, _ in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let answer = try await client.unary(path: ModelFixture.grpcModelInfer, message: try Self.modelInfer(id: "x", pixels: [1]))
                #expect(answer.status == 200)
                #expect(answer.grpcStatus == 14, "UNAVAILABLE: \(answer.trailers)")
                #expect(answer.trailer("grpc-message")?.hasPrefix("shadowd: ") == true)
                #expect(answer.body.isEmpty)
                await client.close()
            }
            // A baseline slower than the client's deadline: DEADLINE_EXCEEDED at the deadline (the
            // configured timeout is 30 s; the client's grpc-timeout of 200 ms caps it).
            try await withSidecar(
                baseline: .h2c { _ in FixtureResponse(mode: .hang) },
                configure: Self.grpcRoute(ScorerConfiguration(kind: .exact))
            ) { sidecar, _, _ in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let answer = try await client.unary(
                    path: ModelFixture.grpcModelInfer,
                    message: try Self.modelInfer(id: "x", pixels: [1]),
                    headers: [("grpc-timeout", "200m")]
                )
                #expect(answer.grpcStatus == 4, "DEADLINE_EXCEEDED: \(answer.trailers)")
                await client.close()
            }
        }

        /// A hundred calls at once on one client connection: all answered, every copy recorded or
        /// counted.
        @Test func aHundredStreamsOnOneConnection() async throws {
            let model = ModelFixture(spec: ModelSpec(name: "classifier"))
            try await withSidecar(
                baseline: .h2c(model.responder),
                candidates: [("v2", .h2c(model.responder))],
                configure: Self.grpcRoute(ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label"))
            ) { sidecar, _, _ in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let statuses = try await withThrowingTaskGroup(of: Int?.self) { group in
                    for index in 0..<100 {
                        group.addTask {
                            try await client.unary(
                                path: ModelFixture.grpcModelInfer,
                                message: try Self.modelInfer(id: "\(index)", pixels: [Float(index)])
                            )
                            .grpcStatus
                        }
                    }
                    return try await group.reduce(into: [Int?]()) { $0.append($1) }
                }
                #expect(statuses.count == 100 && statuses.allSatisfy { $0 == 0 })
                await client.close()
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                try await queue.read { db in
                    let recorded = try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") ?? 0
                    let counted = try Int.fetchOne(db, sql: "SELECT sum(count) FROM coverage") ?? 0
                    #expect(counted == 100, "every copy meant is counted under a reason")
                    #expect(recorded == (try Int.fetchOne(db, sql: "SELECT sum(count) FROM coverage WHERE reason = 'compared'") ?? -1))
                    #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT json_extract(request_body, '$.id')) FROM pairs") == recorded)
                }
                try queue.close()
            }
        }
    }
}

enum ModelFixtureDim {
    static func make(_ size: Int64) -> Tfserving_TensorShapeProto.Dim {
        var dimension = Tfserving_TensorShapeProto.Dim()
        dimension.size = size
        return dimension
    }
}
