/// Turns a body in a binary wire format into JSON text, so the scorers read it and `sqlite3`
/// users can `json_extract` it: gRPC tensor messages, the V2 REST binary tensor extension. Runs
/// in the recorder's scoring stage, never on the event loop.
public protocol BodyDecoder: Sendable {
    /// JSON text for `body`, or nil to keep the bytes as they came (compared byte for byte).
    func decode(_ body: [UInt8], side: BodySide, framing: BodyFraming) -> [UInt8]?
}

/// Which way a body travelled.
public enum BodySide: Sendable {
    case request
    case response
}

/// What the headers said about a body.
public struct BodyFraming: Sendable, Equatable {
    /// The request's path (a gRPC method, e.g. `/inference.GRPCInferenceService/ModelInfer`).
    public var path: String
    public var contentType: String?
    /// `Inference-Header-Content-Length`: the JSON part of a V2 binary tensor body.
    public var inferenceHeaderLength: Int?
    /// `grpc-encoding`: how compressed gRPC messages of the body are compressed.
    public var grpcEncoding: String?

    public init(path: String, contentType: String?, inferenceHeaderLength: Int? = nil, grpcEncoding: String? = nil) {
        self.path = path
        self.contentType = contentType
        self.inferenceHeaderLength = inferenceHeaderLength
        self.grpcEncoding = grpcEncoding
    }
}

extension ExchangeRecord {
    /// The record with every whole body its decoder understands replaced by JSON text (the
    /// sizes stay the wire sizes). A body cut at the storage cap is left as it is.
    public func decodingBodies() -> ExchangeRecord {
        guard let decoder = self.bodyDecoder else { return self }
        var record = self
        func decode(_ body: inout CapturedBody, _ side: BodySide, _ framing: BodyFraming) {
            guard !body.bytes.isEmpty, !body.truncated, let json = decoder.decode(body.bytes, side: side, framing: framing) else { return }
            body = CapturedBody(bytes: json, totalBytes: body.totalBytes)
            body.isDecoded = true
        }
        let request = BodyFraming(
            path: self.path,
            contentType: self.requestContentType,
            inferenceHeaderLength: self.requestInferenceHeaderLength,
            grpcEncoding: self.requestGRPCEncoding
        )
        decode(&record.requestBody, .request, request)
        func response(_ arm: ArmResult) -> BodyFraming {
            BodyFraming(
                path: self.path,
                contentType: arm.contentType,
                inferenceHeaderLength: arm.inferenceHeaderLength,
                grpcEncoding: arm.grpcEncoding
            )
        }
        decode(&record.baseline.body, .response, response(self.baseline))
        for index in record.candidates.indices {
            decode(&record.candidates[index].result.body, .response, response(self.candidates[index].result))
        }
        return record
    }
}
