import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import ShadowFixtures
import ShadowTensor
import Synchronization

/// gRPC peers from grpc-swift-2, an implementation independent of the sidecar's HTTP/2 code:
/// servers that stand in for Triton and TF Serving, and the client a Swift team would use.
enum GRPCSwiftPeers {
    static let modelInfer = MethodDescriptor(fullyQualifiedService: "inference.GRPCInferenceService", method: "ModelInfer")
    static let predict = MethodDescriptor(fullyQualifiedService: "tensorflow.serving.PredictionService", method: "Predict")
    /// Test methods of every other kind, on V2 messages: one request → a stream of answers, a
    /// stream → one answer, and a conversation.
    static let split = MethodDescriptor(fullyQualifiedService: "shadowd.test.Streams", method: "Split")
    static let collect = MethodDescriptor(fullyQualifiedService: "shadowd.test.Streams", method: "Collect")
    static let chat = MethodDescriptor(fullyQualifiedService: "shadowd.test.Streams", method: "Chat")

    /// A V2 request with one FP32 input, and `id` naming it.
    static func inferRequest(id: String, values: [Float]) -> Inference_ModelInferRequest {
        var request = Inference_ModelInferRequest()
        request.modelName = "classifier"
        request.id = id
        var input = Inference_ModelInferRequest.InferInputTensor()
        input.name = "pixels"
        input.datatype = "FP32"
        input.shape = [1, Int64(values.count)]
        input.contents.fp32Contents = values
        request.inputs = [input]
        return request
    }

    /// A V2 answer as Triton sends it, every output in `raw_output_contents`: a BYTES `label`
    /// (each element a 4-byte little-endian length and its bytes) and FP32 `scores`.
    static func inferResponse(id: String, version: String, label: String, scores: [Float]) -> Inference_ModelInferResponse {
        var response = Inference_ModelInferResponse()
        response.modelName = "classifier"
        response.modelVersion = version
        response.id = id
        var labelTensor = Inference_ModelInferResponse.InferOutputTensor()
        labelTensor.name = "label"
        labelTensor.datatype = "BYTES"
        labelTensor.shape = [1]
        var scoreTensor = Inference_ModelInferResponse.InferOutputTensor()
        scoreTensor.name = "scores"
        scoreTensor.datatype = "FP32"
        scoreTensor.shape = [1, Int64(scores.count)]
        response.outputs = [labelTensor, scoreTensor]
        let labelBytes = withUnsafeBytes(of: UInt32(label.utf8.count).littleEndian, Array.init) + Array(label.utf8)
        response.rawOutputContents = [Data(labelBytes), Data(scores.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })]
        return response
    }

    /// The label of an answer made by ``inferResponse(id:version:label:scores:)``.
    static func label(_ response: Inference_ModelInferResponse) -> String {
        String(decoding: (response.rawOutputContents.first ?? Data()).dropFirst(4), as: UTF8.self)
    }

    /// Runs a plaintext (h2c) or TLS grpc-swift server on a loopback port for the length of `body`.
    static func withServer<Result: Sendable>(
        _ service: ModelService,
        security: HTTP2ServerTransport.Posix.TransportSecurity = .plaintext,
        maxConcurrentStreams: Int? = nil,
        _ body: (_ port: Int) async throws -> Result
    ) async throws -> Result {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.http2.maxConcurrentStreams = maxConcurrentStreams
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: security, config: config)
        let server = GRPCServer(transport: transport, services: [service])
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await server.serve() }
            do {
                guard let port = try await transport.listeningAddress.ipv4?.port else { throw FixtureError("the gRPC server did not bind") }
                let result = try await body(port)
                server.beginGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                tasks.cancelAll()
                throw error
            }
        }
    }

    /// Runs a grpc-swift client of `port` (h2c) for the length of `body`.
    static func withClient<Result: Sendable>(
        port: Int,
        _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        let client = GRPCClient(transport: transport)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await client.runConnections() }
            do {
                let result = try await body(client)
                client.beginGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                tasks.cancelAll()
                throw error
            }
        }
    }
}

/// A deterministic model behind grpc-swift: every method of ``GRPCSwiftPeers``. It answers `cat`
/// for an even first input and `dog` for an odd one, except for the request ids in `flipped`;
/// initial metadata names its version and trailing metadata carries a served-by field.
final class ModelService: RegistrableRPCService {
    let version: String
    let flipped: Set<String>
    /// When set, `ModelInfer` answers only once the test opens it.
    let gate: FixtureGate?
    /// Calls received, by method name.
    let calls = Mutex<[String: Int]>([:])
    /// `ModelInfer` calls being handled now.
    let inFlight = Mutex(0)

    init(version: String, flipped: Set<String> = [], gate: FixtureGate? = nil) {
        self.version = version
        self.flipped = flipped
        self.gate = gate
    }

    func count(_ method: String) -> Int { self.calls.withLock { $0[method, default: 0] } }

    private func answer(_ request: Inference_ModelInferRequest) -> Inference_ModelInferResponse {
        let values = request.inputs.first?.contents.fp32Contents ?? []
        var even = Int(values.first ?? 0) % 2 == 0
        if self.flipped.contains(request.id) { even.toggle() }
        return GRPCSwiftPeers.inferResponse(id: request.id, version: self.version, label: even ? "cat" : "dog", scores: values.map { $0 / 10 })
    }

    private func counted(_ method: MethodDescriptor) {
        self.calls.withLock { $0[method.method, default: 0] += 1 }
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let request = ProtobufDeserializer<Inference_ModelInferRequest>()
        let response = ProtobufSerializer<Inference_ModelInferResponse>()
        let metadata: Metadata = ["x-model-version": "\(self.version)"]
        let trailers: Metadata = ["x-served-by": "grpc-swift \(self.version)"]
        router.registerHandler(forMethod: GRPCSwiftPeers.modelInfer, deserializer: request, serializer: response) { stream, _ in
            self.counted(GRPCSwiftPeers.modelInfer)
            let single = try await ServerRequest(stream: stream)
            if let gate = self.gate {
                self.inFlight.withLock { $0 += 1 }
                await withCheckedContinuation { continuation in gate.whenOpen { continuation.resume() } }
                self.inFlight.withLock { $0 -= 1 }
            }
            return StreamingServerResponse(
                single: ServerResponse(message: self.answer(single.message), metadata: metadata, trailingMetadata: trailers)
            )
        }
        router.registerHandler(
            forMethod: GRPCSwiftPeers.predict,
            deserializer: ProtobufDeserializer<Tfserving_PredictRequest>(),
            serializer: ProtobufSerializer<Tfserving_PredictResponse>()
        ) { stream, _ in
            self.counted(GRPCSwiftPeers.predict)
            let single = try await ServerRequest(stream: stream)
            var answer = Tfserving_PredictResponse()
            answer.modelSpec = single.message.modelSpec
            var scores = Tfserving_TensorProto()
            scores.dtype = .dtFloat
            scores.floatVal = (single.message.inputs["x"]?.floatVal ?? []).map { $0 * 2 }
            scores.tensorShape = single.message.inputs["x"]?.tensorShape ?? Tfserving_TensorShapeProto()
            answer.outputs["scores"] = scores
            return StreamingServerResponse(single: ServerResponse(message: answer, metadata: metadata, trailingMetadata: trailers))
        }
        router.registerHandler(forMethod: GRPCSwiftPeers.split, deserializer: request, serializer: response) { stream, _ in
            self.counted(GRPCSwiftPeers.split)
            let single = try await ServerRequest(stream: stream)
            return StreamingServerResponse(metadata: metadata) { writer in
                for (index, value) in (single.message.inputs.first?.contents.fp32Contents ?? []).enumerated() {
                    try await writer.write(self.answer(GRPCSwiftPeers.inferRequest(id: "\(single.message.id)/\(index)", values: [value])))
                }
                return trailers
            }
        }
        router.registerHandler(forMethod: GRPCSwiftPeers.collect, deserializer: request, serializer: response) { stream, _ in
            self.counted(GRPCSwiftPeers.collect)
            var values: [Float] = []
            for try await message in stream.messages { values += message.inputs.first?.contents.fp32Contents ?? [] }
            let sum = values.reduce(0, +)
            return StreamingServerResponse(
                single: ServerResponse(message: self.answer(GRPCSwiftPeers.inferRequest(id: "sum", values: [sum])), metadata: metadata)
            )
        }
        router.registerHandler(forMethod: GRPCSwiftPeers.chat, deserializer: request, serializer: response) { stream, _ in
            self.counted(GRPCSwiftPeers.chat)
            return StreamingServerResponse(metadata: metadata) { writer in
                // One answer per message, written as each arrives: the client waits for it
                // before sending the next, so the call is a conversation, not a batch.
                for try await message in stream.messages { try await writer.write(self.answer(message)) }
                return trailers
            }
        }
    }
}
