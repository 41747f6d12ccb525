import CompressNIO
import NIOCore
import ShadowCore

/// Reads a tensor protocol's binary bodies as JSON for the recorder: gRPC messages of KServe V2
/// `ModelInfer` or TF Serving `Predict` (length-prefixed; several messages, as a server stream
/// sends them, become an array), and for KServe V2 the REST binary tensor extension. Anything
/// else, a compressed gRPC message or one that does not decode, is left as it came and compared
/// byte for byte.
public struct TensorBodyDecoder: BodyDecoder {
    public let outputProtocol: OutputProtocol

    /// A decoder for routes whose scorer names `kserve_v2` or `tf_serving`; nil for others.
    public init?(outputProtocol: OutputProtocol) {
        guard outputProtocol == .kserveV2 || outputProtocol == .tfServing else { return nil }
        self.outputProtocol = outputProtocol
    }

    /// A gRPC message, or on a KServe V2 route a binary tensor body (it names its JSON part's
    /// length).
    public func mayDecode(contentType: String?, inferenceHeaderLength: Int?) -> Bool {
        GRPCSemantics.isGRPC(contentType: contentType) || (self.outputProtocol == .kserveV2 && inferenceHeaderLength != nil)
    }

    public func decode(_ body: [UInt8], side: BodySide, framing: BodyFraming) -> [UInt8]? {
        if GRPCSemantics.isGRPC(contentType: framing.contentType) {
            guard let message = self.message(path: framing.path, side: side),
                let messages = GRPCFraming.messages(in: body, encoding: framing.grpcEncoding)
            else { return nil }
            let decoded = messages.compactMap { try? TensorDecoder.decode($0, as: message) }
            guard decoded.count == messages.count, let first = decoded.first else { return nil }
            return Array((decoded.count == 1 ? first : .array(decoded)).serialized.utf8)
        }
        if self.outputProtocol == .kserveV2, let length = framing.inferenceHeaderLength {
            return (try? BinaryTensorExtension.decode(body, headerLength: length)).map { Array($0.serialized.utf8) }
        }
        return nil
    }

    /// The message a gRPC method carries on `side`, by the method's name.
    func message(path: String, side: BodySide) -> TensorDecoder.Message? {
        let method = path.split(separator: "/").last.map(String.init) ?? ""
        switch (self.outputProtocol, method) {
        case (.kserveV2, "ModelInfer"), (.kserveV2, "ModelStreamInfer"):
            return side == .request ? .kserveV2Request : .kserveV2Response
        case (.tfServing, "Predict"):
            return side == .request ? .tfServingRequest : .tfServingResponse
        default:
            return nil
        }
    }
}

/// gRPC's message framing over HTTP/2: each message is a compressed flag (1 byte), a big-endian
/// length (4 bytes) and the message.
public enum GRPCFraming {
    /// A decompressed message may grow to at most this (a compression bomb stops there, and the
    /// pair is compared byte for byte).
    public static let maximumDecompressedBytes = 16 << 20

    /// The messages of a whole body, compressed ones inflated when `encoding` is `gzip` or
    /// `deflate`; nil when the framing is broken or a compressed message cannot be inflated
    /// (another `grpc-encoding`, or bad data: left to byte comparison).
    public static func messages(in body: [UInt8], encoding: String? = nil) -> [[UInt8]]? {
        var messages: [[UInt8]] = []
        var offset = 0
        while offset < body.count {
            guard body.count - offset >= 5, body[offset] <= 1 else { return nil }
            let compressed = body[offset] == 1
            let length = Int(body[offset + 1]) << 24 | Int(body[offset + 2]) << 16 | Int(body[offset + 3]) << 8 | Int(body[offset + 4])
            offset += 5
            guard body.count - offset >= length else { return nil }
            let message = Array(body[offset..<(offset + length)])
            if compressed {
                guard let inflated = Self.inflate(message, encoding: encoding) else { return nil }
                messages.append(inflated)
            } else {
                messages.append(message)
            }
            offset += length
        }
        return messages
    }

    static func inflate(_ message: [UInt8], encoding: String?) -> [UInt8]? {
        let algorithm: CompressionAlgorithm
        switch encoding?.lowercased() {
        case "gzip": algorithm = .gzip()
        case "deflate": algorithm = .zlib()
        default: return nil
        }
        var buffer = ByteBuffer(bytes: message)
        guard let inflated = try? buffer.decompress(with: algorithm, maxSize: Self.maximumDecompressedBytes) else { return nil }
        return Array(inflated.readableBytesView)
    }

    /// One message, framed uncompressed.
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + message
    }
}
