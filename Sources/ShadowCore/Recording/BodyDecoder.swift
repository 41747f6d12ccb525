/// Turns a body in a binary wire format into JSON text, so the scorers read it and `sqlite3`
/// users can `json_extract` it: gRPC tensor messages, the V2 REST binary tensor extension. Runs
/// in the recorder's scoring stage, never on the event loop.
public protocol BodyDecoder: Sendable {
    /// Whether a body with these header values can be one ``decode(_:side:framing:)`` turns
    /// into JSON: asked first, so the JSON bodies of a tensor route (most of them) cost no
    /// ``BodyFraming`` copy and no call.
    func mayDecode(contentType: String?, inferenceHeaderLength: Int?) -> Bool

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
    /// Replaces every whole body its decoder understands by JSON text (the sizes stay the wire
    /// sizes); a body cut at the storage cap is left as it is. The record is written to only
    /// where a body was decoded: most bodies on a tensor route are JSON already, and a write to
    /// a record still shared with its batch would copy all its fields for nothing.
    public mutating func decodeBodies() {
        guard let decoder = self.bodyDecoder else { return }
        func decoded(_ body: CapturedBody, _ side: BodySide, _ framing: BodyFraming) -> CapturedBody? {
            guard !body.bytes.isEmpty, !body.truncated, let json = decoder.decode(body.bytes, side: side, framing: framing) else { return nil }
            var decoded = CapturedBody(bytes: json, totalBytes: body.totalBytes)
            decoded.isDecoded = true
            return decoded
        }
        func framing(_ arm: ArmResult) -> BodyFraming {
            BodyFraming(
                path: self.path,
                contentType: arm.contentType,
                inferenceHeaderLength: arm.inferenceHeaderLength,
                grpcEncoding: arm.grpcEncoding
            )
        }
        if decoder.mayDecode(contentType: self.requestContentType, inferenceHeaderLength: self.requestInferenceHeaderLength) {
            let request = BodyFraming(
                path: self.path,
                contentType: self.requestContentType,
                inferenceHeaderLength: self.requestInferenceHeaderLength,
                grpcEncoding: self.requestGRPCEncoding
            )
            if let body = decoded(self.requestBody, .request, request) { self.requestBody = body }
        }
        // The fields are read one by one: handing an arm to a function copies all of it.
        if decoder.mayDecode(contentType: self.baseline.contentType, inferenceHeaderLength: self.baseline.inferenceHeaderLength),
            let body = decoded(self.baseline.body, .response, framing(self.baseline))
        {
            self.baseline.body = body
        }
        for index in self.candidates.indices
        where decoder.mayDecode(
            contentType: self.candidates[index].result.contentType,
            inferenceHeaderLength: self.candidates[index].result.inferenceHeaderLength
        ) {
            if let body = decoded(self.candidates[index].result.body, .response, framing(self.candidates[index].result)) {
                self.candidates[index].result.body = body
            }
        }
    }
}
