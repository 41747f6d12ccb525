import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowReplay
import ShadowStore
import ShadowTensor
import Synchronization
import Testing

import class GRDB.Database
import class GRDB.DatabaseQueue
import class GRDB.Row

/// The sidecar between grpc-swift-2 clients and grpc-swift-2 servers (its own HTTP/2 and gRPC
/// code, not ours): what a Swift team's client sees through the sidecar is what it sees
/// directly, every kind of call passes through, and only the calls that can be replayed are
/// mirrored.
extension HTTP2AndGRPCTests {
    @Suite struct GRPCSwiftInteropTests {
        typealias Request = Inference_ModelInferRequest
        typealias Response = Inference_ModelInferResponse

        /// What a grpc-swift client saw of one unary call.
        struct Seen: Equatable {
            var message: Response
            var version: [String]
            var servedBy: [String]
        }

        static func unary(_ client: GRPCClient<HTTP2ClientTransport.Posix>, _ request: Request) async throws -> Seen {
            try await client.unary(
                request: ClientRequest(message: request),
                descriptor: GRPCSwiftPeers.modelInfer,
                serializer: ProtobufSerializer<Request>(),
                deserializer: ProtobufDeserializer<Response>(),
                options: .defaults
            ) { response in
                Seen(
                    message: try response.message,
                    version: Array(response.metadata[stringValues: "x-model-version"]),
                    servedBy: Array(response.trailingMetadata[stringValues: "x-served-by"])
                )
            }
        }

        /// A baseline and a candidate grpc-swift server, and a sidecar in front with every
        /// upstream over h2c and the V2 label scorer.
        static func withPeers(
            candidateFlips: Set<String> = [],
            scorer: ScorerConfiguration = ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label"),
            _ body: (SidecarHarness, _ baseline: ModelService, _ baselinePort: Int, _ candidate: ModelService) async throws -> Void
        ) async throws {
            let baseline = ModelService(version: "1")
            let candidate = ModelService(version: "2", flipped: candidateFlips)
            try await GRPCSwiftPeers.withServer(baseline) { baselinePort in
                try await GRPCSwiftPeers.withServer(candidate) { candidatePort in
                    try await withSidecar(
                        baseline: .port(baselinePort),
                        candidates: [("v2", .port(candidatePort))],
                        configure: GRPCEndToEndTests.grpcRoute(scorer)
                    ) { sidecar, _, _ in
                        try await body(sidecar, baseline, baselinePort, candidate)
                    }
                }
            }
        }

        @Test func unaryCallsAreAnsweredAsDirectAndScoredOnTheirTensors() async throws {
            try await Self.withPeers(candidateFlips: ["req-3", "req-8"]) { sidecar, _, baselinePort, candidate in
                try await GRPCSwiftPeers.withClient(port: sidecar.port) { through in
                    try await GRPCSwiftPeers.withClient(port: baselinePort) { direct in
                        for index in 0..<12 {
                            let request = GRPCSwiftPeers.inferRequest(id: "req-\(index)", values: [Float(index), 0.5])
                            let seen = try await Self.unary(through, request)
                            // Message, initial metadata and trailers as the client sees them direct.
                            #expect(try await seen == Self.unary(direct, request))
                            #expect(seen.version == ["1"] && seen.servedBy == ["grpc-swift 1"])
                        }
                    }
                }
                #expect(try await eventually { candidate.count("ModelInfer") == 12 })
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                defer { try? queue.close() }
                try await queue.read { (db: GRDB.Database) throws in
                    #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE outcome = 'compared'") == 12)
                    #expect(
                        try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE baseline_grpc_status = 0 AND candidate_grpc_status = 0") == 12
                    )
                    // Scored on the decoded label tensor: exactly the two flipped answers diverge.
                    let diverged = try String.fetchAll(db, sql: "SELECT json_extract(request_body, '$.id') FROM pairs WHERE diverged = 1 ORDER BY 1")
                    #expect(diverged == ["req-3", "req-8"])
                    // Raw little-endian FP32 outputs are stored as numbers: 0.5 / 10.
                    let score = try Double.fetchOne(db, sql: "SELECT json_extract(baseline_body, '$.outputs[1].data[1]') FROM pairs LIMIT 1")
                    #expect(abs((score ?? 0) - 0.05) < 1e-6)
                    #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM exchanges WHERE request_body_decoded = 1") == 12)
                }
                // A backtest of this traffic sends none of it, and says why.
                let configuration = sidecar.sidecar.configuration
                let route = configuration.routes[0]
                let source = try PairReader(path: sidecar.databasePath)
                let output = try PairStore(path: sidecar.databasePath + ".replay")
                let client = try await UpstreamClient.make(
                    candidate: route.candidates[0],
                    configuration: configuration,
                    environment: [:],
                    logger: Logger(label: "test")
                )
                let summary = try await Backtest(
                    source: source,
                    output: output,
                    options: Backtest.Options(route: route, candidate: route.candidates[0]),
                    client: client,
                    logger: Logger(label: "test")
                ).run(now: { 0 }, sleep: { _ in }) { _ in }
                await client.shutdown()
                try output.close()
                try source.close()
                #expect(summary.replayed == 0 && summary.skipped == [.grpc: 12])
                #expect(candidate.count("ModelInfer") == 12, "nothing was re-sent")
            }
        }

        @Test func tfServingPredictFromGRPCSwiftIsAnsweredAsDirect() async throws {
            let scorer = ScorerConfiguration(kind: .numeric, outputProtocol: .tfServing, output: "scores")
            try await Self.withPeers(scorer: scorer) { sidecar, _, baselinePort, candidate in
                var request = Tfserving_PredictRequest()
                request.modelSpec.name = "regressor"
                var input = Tfserving_TensorProto()
                input.dtype = .dtFloat
                input.floatVal = [1, 2, 3]
                input.tensorShape.dim = [ModelFixtureDim.make(3)]
                request.inputs["x"] = input
                func predict(_ client: GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Tfserving_PredictResponse {
                    try await client.unary(
                        request: ClientRequest(message: request),
                        descriptor: GRPCSwiftPeers.predict,
                        serializer: ProtobufSerializer<Tfserving_PredictRequest>(),
                        deserializer: ProtobufDeserializer<Tfserving_PredictResponse>(),
                        options: .defaults
                    ) { try $0.message }
                }
                let through = try await GRPCSwiftPeers.withClient(port: sidecar.port, predict)
                #expect(try await through == GRPCSwiftPeers.withClient(port: baselinePort, predict))
                #expect(through.outputs["scores"]?.floatVal == [2, 4, 6])
                #expect(try await eventually { candidate.count("Predict") == 1 })
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                defer { try? queue.close() }
                try await queue.read { (db: GRDB.Database) throws in
                    // Recorded in TF Serving's REST form and scored on the named output.
                    let row = try #require(
                        try Row.fetchOne(
                            db,
                            sql:
                                "SELECT json_extract(request_body, '$.model_spec.name') AS name, json_extract(baseline_body, '$.outputs.scores') AS scores, diverged FROM pairs"
                        )
                    )
                    #expect(row["name"] as String? == "regressor")
                    #expect(row["scores"] as String? == "[2,4,6]")
                    #expect(row["diverged"] as Int? == 0)
                }
            }
        }

        /// One request, a stream of answers: mirrored, passed through message by message, and
        /// the two arms' messages compared as a sequence.
        @Test func aServerStreamIsPassedThroughAndMirrored() async throws {
            try await Self.withPeers(candidateFlips: ["s/2"]) { sidecar, _, baselinePort, candidate in
                func split(_ client: GRPCClient<HTTP2ClientTransport.Posix>) async throws -> [Response] {
                    try await client.serverStreaming(
                        request: ClientRequest(message: GRPCSwiftPeers.inferRequest(id: "s", values: [1, 2, 3, 4])),
                        descriptor: GRPCSwiftPeers.split,
                        serializer: ProtobufSerializer<Request>(),
                        deserializer: ProtobufDeserializer<Response>(),
                        options: .defaults
                    ) { response in
                        var messages: [Response] = []
                        for try await message in response.messages { messages.append(message) }
                        return messages
                    }
                }
                let through = try await GRPCSwiftPeers.withClient(port: sidecar.port, split)
                #expect(through.count == 4)
                #expect(try await through == GRPCSwiftPeers.withClient(port: baselinePort, split))
                #expect(try await eventually { candidate.count("Split") == 1 })
                await sidecar.stop()
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                defer { try? queue.close() }
                try await queue.read { (db: GRDB.Database) throws in
                    let row = try #require(try Row.fetchOne(db, sql: "SELECT outcome, diverged FROM pairs"))
                    #expect(row["outcome"] as String? == "compared")
                    #expect(row["diverged"] as Int? == 1, "the third message of four differs")
                }
            }
        }

        /// A stream of requests (client-streaming) and a conversation (bidirectional, each
        /// message sent only after the answer to the one before) pass through to the baseline
        /// untouched, and no candidate ever gets a copy: each is counted as `client_streaming`.
        @Test func clientStreamsAndConversationsPassThroughAndAreNotMirrored() async throws {
            try await Self.withPeers { sidecar, baseline, _, candidate in
                try await GRPCSwiftPeers.withClient(port: sidecar.port) { client in
                    let sum = try await client.clientStreaming(
                        request: StreamingClientRequest<Request> { writer in
                            for value in [1, 2, 3] as [Float] { try await writer.write(GRPCSwiftPeers.inferRequest(id: "part", values: [value])) }
                        },
                        descriptor: GRPCSwiftPeers.collect,
                        serializer: ProtobufSerializer<Request>(),
                        deserializer: ProtobufDeserializer<Response>(),
                        options: .defaults
                    ) { try $0.message }
                    #expect(GRPCSwiftPeers.label(sum) == "cat" && sum.id == "sum", "1 + 2 + 3 = 6 is even")

                    let (answers, answered) = AsyncStream<Void>.makeStream()
                    let labels = try await client.bidirectionalStreaming(
                        request: StreamingClientRequest<Request> { writer in
                            var turns = answers.makeAsyncIterator()
                            for value in [1, 2, 5] as [Float] {
                                try await writer.write(GRPCSwiftPeers.inferRequest(id: "turn-\(Int(value))", values: [value]))
                                // The next turn waits for this one's answer, through the sidecar.
                                guard await turns.next() != nil else { return }
                            }
                        },
                        descriptor: GRPCSwiftPeers.chat,
                        serializer: ProtobufSerializer<Request>(),
                        deserializer: ProtobufDeserializer<Response>(),
                        options: .defaults
                    ) { response in
                        var labels: [String] = []
                        for try await message in response.messages {
                            labels.append(GRPCSwiftPeers.label(message))
                            answered.yield()
                        }
                        answered.finish()
                        return labels
                    }
                    #expect(labels == ["dog", "cat", "dog"])
                }
                #expect(baseline.count("Collect") == 1 && baseline.count("Chat") == 1)
                await sidecar.stop()
                #expect(candidate.count("Collect") == 0 && candidate.count("Chat") == 0, "never mirrored")
                let queue = try DatabaseQueue(path: sidecar.databasePath)
                defer { try? queue.close() }
                try await queue.read { (db: GRDB.Database) throws in
                    #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") == 0)
                    #expect(try Int.fetchOne(db, sql: "SELECT sum(count) FROM coverage WHERE reason = 'client_streaming'") == 2)
                }
            }
        }

        /// An upstream that allows two streams per connection: six calls at once through the
        /// sidecar are all at the upstream together (it holds them until the test lets go), so
        /// the sidecar opened more connections instead of queueing behind the first.
        @Test func anUpstreamsStreamLimitOpensMoreConnections() async throws {
            let gate = FixtureGate()
            let baseline = ModelService(version: "1", gate: gate)
            try await GRPCSwiftPeers.withServer(baseline, maxConcurrentStreams: 2) { port in
                try await withSidecar(baseline: .port(port), configure: GRPCEndToEndTests.grpcRoute(ScorerConfiguration(kind: .exact))) {
                    sidecar,
                    _,
                    _ in
                    try await GRPCSwiftPeers.withClient(port: sidecar.port) { client in
                        try await withThrowingTaskGroup(of: String.self) { calls in
                            for index in 0..<6 {
                                calls.addTask {
                                    let seen = try await Self.unary(client, GRPCSwiftPeers.inferRequest(id: "held-\(index)", values: [Float(index)]))
                                    return seen.message.id
                                }
                            }
                            let allHeld = try await eventually { baseline.inFlight.withLock { $0 } == 6 }
                            #expect(allHeld, "\(baseline.inFlight.withLock { $0 }) of 6 calls reached the upstream")
                            gate.open()
                            var answered: Set<String> = []
                            for try await id in calls { answered.insert(id) }
                            #expect(answered == Set((0..<6).map { "held-\($0)" }))
                        }
                    }
                }
            }
        }

        /// An `h2c://` URL that points at an HTTP/1.1 server: the copy fails at connect as an
        /// invalid response, named in the log, and the client is not touched.
        @Test func anH2CURLOnAnHTTP1ServerIsNamed() async throws {
            let baseline = ModelService(version: "1")
            let log = LogRecorder()
            try await GRPCSwiftPeers.withServer(baseline) { port in
                try await withSidecar(
                    baseline: .port(port),
                    candidates: [("http1", .responder { _ in .json("{}") })],
                    configure: GRPCEndToEndTests.grpcRoute(ScorerConfiguration(kind: .exact)),
                    log: log
                ) { sidecar, _, candidates in
                    try await GRPCSwiftPeers.withClient(port: sidecar.port) { client in
                        let seen = try await Self.unary(client, GRPCSwiftPeers.inferRequest(id: "one", values: [2]))
                        #expect(GRPCSwiftPeers.label(seen.message) == "cat")
                    }
                    #expect(try await eventually { sidecar.shadowPending == 0 })
                    await sidecar.stop()
                    #expect(candidates[0]?.requestCount == 0, "the preface is no HTTP/1.1 request")
                    let queue = try DatabaseQueue(path: sidecar.databasePath)
                    defer { try? queue.close() }
                    let error = try await queue.read { try String.fetchOne($0, sql: "SELECT candidate_error FROM pairs") }
                    #expect(error == "invalid_response")
                    #expect(!log.messages(containing: "cannot connect to upstream").isEmpty, "the operator is told")
                }
            }
        }
    }
}
