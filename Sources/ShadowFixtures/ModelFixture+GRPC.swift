import Foundation
import ShadowCore
import ShadowTensor
import SwiftProtobuf

extension ModelFixture {
    /// The gRPC methods the fixture serves over h2c: KServe V2 `ModelInfer` and TF Serving
    /// `Predict`, answering the same label and probabilities as the REST endpoints for the same
    /// input tensors (the input is keyed by its decoded JSON form).
    public static let grpcModelInfer = "/inference.GRPCInferenceService/ModelInfer"
    public static let grpcPredict = "/tensorflow.serving.PredictionService/Predict"

    func respondGRPC(to request: FixtureRequest) -> FixtureResponse {
        let message: TensorDecoder.Message
        switch request.uri {
        case Self.grpcModelInfer: message = .kserveV2Request
        case Self.grpcPredict: message = .tfServingRequest
        default: return Self.grpcError(12, "unknown method \(request.uri.prefix(100))")
        }
        guard let frames = GRPCFraming.messages(in: request.body, encoding: request.header("grpc-encoding")), frames.count == 1 else {
            return Self.grpcError(13, "expected one message (uncompressed, gzip or deflate)")
        }
        let document: JSONValue
        do {
            document = try TensorDecoder.decode(frames[0], as: message)
        } catch {
            return Self.grpcError(3, "\(error)")
        }
        let inputs = document["inputs"] ?? .null
        let key = Self.key(inputs, seed: self.spec.seed)
        let delay = self.latency(key)
        switch self.plannedOutcome(forKey: key) {
        case .hang: return FixtureResponse(mode: .hang)
        case .garbage: return FixtureResponse(delay: delay, mode: .garbage)
        case .error:
            var failure = Self.grpcError(13, "injected failure")
            failure.delay = delay
            return failure
        case .agree, .disagree: break
        }
        let (label, probabilities) = self.predict(key)
        let reply: [UInt8]
        do {
            reply =
                try message == .kserveV2Request
                ? self.modelInferResponse(id: document["id"], label: label, probabilities: probabilities)
                : self.predictResponse(label: label, probabilities: probabilities)
        } catch {
            return Self.grpcError(13, "\(error)")
        }
        return FixtureResponse(
            headers: [("content-type", "application/grpc")],
            body: GRPCFraming.frame(reply),
            delay: delay,
            trailers: [("grpc-status", "0")]
        )
    }

    func modelInferResponse(id: JSONValue?, label: String, probabilities: [Double]) throws -> [UInt8] {
        var response = Inference_ModelInferResponse()
        response.modelName = self.spec.name
        response.modelVersion = self.spec.version
        if case .string(let id)? = id { response.id = id }
        var labelTensor = Inference_ModelInferResponse.InferOutputTensor()
        labelTensor.name = "label"
        labelTensor.datatype = "BYTES"
        labelTensor.shape = [1]
        var probabilityTensor = Inference_ModelInferResponse.InferOutputTensor()
        probabilityTensor.name = "probabilities"
        probabilityTensor.datatype = "FP32"
        probabilityTensor.shape = [Int64(probabilities.count)]
        response.outputs = [labelTensor, probabilityTensor]
        // Raw little-endian contents, as Triton answers.
        let length = UInt32(label.utf8.count)
        let labelBytes = withUnsafeBytes(of: length.littleEndian, Array.init) + Array(label.utf8)
        let floats = probabilities.flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) }
        response.rawOutputContents = [Data(labelBytes), Data(floats)]
        return Array(try response.serializedData())
    }

    func predictResponse(label: String, probabilities: [Double]) throws -> [UInt8] {
        var response = Tfserving_PredictResponse()
        response.modelSpec.name = self.spec.name
        response.modelSpec.version = Google_Protobuf_Int64Value(Int64(self.spec.version) ?? 1)
        response.modelSpec.signatureName = "serving_default"
        var labels = Tfserving_TensorProto()
        labels.dtype = .dtString
        labels.tensorShape.dim = [Self.dimension(1)]
        labels.stringVal = [Data(label.utf8)]
        var scores = Tfserving_TensorProto()
        scores.dtype = .dtFloat
        scores.tensorShape.dim = [Self.dimension(1), Self.dimension(Int64(probabilities.count))]
        scores.floatVal = probabilities.map { Float($0) }
        response.outputs = ["label": labels, "probabilities": scores]
        return Array(try response.serializedData())
    }

    static func dimension(_ size: Int64) -> Tfserving_TensorShapeProto.Dim {
        var dimension = Tfserving_TensorShapeProto.Dim()
        dimension.size = size
        return dimension
    }

    /// A gRPC error answer: HTTP 200, no message, the status in the trailers.
    static func grpcError(_ status: Int, _ message: String) -> FixtureResponse {
        FixtureResponse(
            headers: [("content-type", "application/grpc")],
            trailers: [("grpc-status", String(status)), ("grpc-message", GRPCSemantics.encodeMessage(message))]
        )
    }
}
