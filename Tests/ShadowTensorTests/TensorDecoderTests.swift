import CompressNIO
import Foundation
import NIOCore
import ShadowCore
import ShadowTensor
import SwiftProtobuf
import Testing

/// Decoding checked against messages made by Triton's own Python client (`Fixtures/tensors`,
/// written by `scripts/protos/make-tensor-fixtures` with tritonclient and numpy): its protobuf
/// definitions and its REST binary encoder, independent of ours.
@Suite struct TensorDecoderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/tensors")

    static func fixture(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: Self.fixtures.appendingPathComponent(name)))
    }

    static func json(_ name: String) throws -> JSONValue {
        try JSONParser().parse(try Self.fixture(name))
    }

    @Test func tritonsRawResponseDecodesToTheV2Document() throws {
        let decoded = try TensorDecoder.decode(try Self.fixture("kserve-response-raw.bin"), as: .kserveV2Response)
        let expected = try Self.json("kserve-response-raw.json")
        #expect(decoded == expected, "\(decoded.serialized)")
        // FP32 NaN and infinity survive as protobuf's JSON strings; BYTES that are not UTF-8 as base64.
        #expect(decoded.serialized.contains(#""NaN","Infinity",-1.5"#))
        #expect(decoded.serialized.contains(#"{"base64":"//4="}"#))
    }

    @Test func typedContentsDecodeLikeRawOnes() throws {
        let decoded = try TensorDecoder.decode(try Self.fixture("kserve-request-typed.bin"), as: .kserveV2Request)
        #expect(decoded == (try Self.json("kserve-request-typed.json")), "\(decoded.serialized)")
        // The same tensor sent raw decodes to the same document.
        var request = try Inference_ModelInferRequest(serializedBytes: try Self.fixture("kserve-request-typed.bin"))
        let floats: [Float] = [0.5, 1.25, -3.0, 8.0]
        var raw = [Data(floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })]
        raw.append(Data([Int32(-7), 42].flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }))
        raw.append(Data([6, 0, 0, 0] + Array("héllo".utf8)))
        for index in request.inputs.indices { request.inputs[index].clearContents() }
        request.rawInputContents = raw
        let fromRaw = try TensorDecoder.decode(Array(try request.serializedData()), as: .kserveV2Request)
        #expect(fromRaw == decoded)
    }

    @Test func tritonclientsBinaryRESTBodyDecodesToItsJSONForm() throws {
        let expected = try Self.json("v2-binary-request.json")
        guard case .number(let length)? = expected["inference_header_content_length"], let document = expected["document"] else {
            Issue.record("fixture without its header length")
            return
        }
        let body = try Self.fixture("v2-binary-request.bin")
        let decoded = try BinaryTensorExtension.decode(body, headerLength: Int(length))
        #expect(decoded == document, "\(decoded.serialized)")
        // A body cut short, or with bytes left over, is an error that names what is wrong.
        #expect(throws: TensorDecodingError.self) { try BinaryTensorExtension.decode(Array(body.dropLast(3)), headerLength: Int(length)) }
        #expect(throws: TensorDecodingError.self) { try BinaryTensorExtension.decode(body + [0], headerLength: Int(length)) }
        #expect(throws: TensorDecodingError.self) { try BinaryTensorExtension.decode(body, headerLength: body.count + 1) }
    }

    @Test func malformedMessagesNameTheTensorAndTheFault() throws {
        var response = try Inference_ModelInferResponse(serializedBytes: try Self.fixture("kserve-response-raw.bin"))
        response.rawOutputContents[0] = Data(response.rawOutputContents[0].dropLast(4))
        #expect {
            try TensorDecoder.decode(Array(try response.serializedData()), as: .kserveV2Response)
        } throws: { error in
            (error as? TensorDecodingError)?.description
                == #"ModelInferResponse, tensor "scores": shape [2, 3] holds 6 elements, the tensor carries 5"#
        }
        response.rawOutputContents.removeLast()
        #expect {
            try TensorDecoder.decode(Array(try response.serializedData()), as: .kserveV2Response)
        } throws: { error in
            (error as? TensorDecodingError)?.description == "ModelInferResponse: 7 raw_output_contents entries for 8 tensors"
        }
        #expect {
            try TensorDecoder.decode([0xFF, 0xFF, 0xFF], as: .kserveV2Response)
        } throws: { error in
            (error as? TensorDecodingError)?.reason.hasPrefix("not a valid protobuf message") == true
        }
    }

    @Test func tfServingTensorsNestByShapeFromEveryEncoding() throws {
        var response = Tfserving_PredictResponse()
        response.modelSpec.name = "ranker"
        response.modelSpec.version = Google_Protobuf_Int64Value(7)
        response.modelSpec.signatureName = "serving_default"
        func shape(_ dims: [Int64]) -> Tfserving_TensorShapeProto {
            var shape = Tfserving_TensorShapeProto()
            shape.dim = dims.map { size in
                var dim = Tfserving_TensorShapeProto.Dim()
                dim.size = size
                return dim
            }
            return shape
        }
        var scores = Tfserving_TensorProto()
        scores.dtype = .dtFloat
        scores.tensorShape = shape([2, 2])
        scores.floatVal = [0.25, 0.75, 0.5, 0.5]
        var packed = Tfserving_TensorProto()
        packed.dtype = .dtFloat
        packed.tensorShape = shape([2, 2])
        packed.tensorContent = Data([Float(0.25), 0.75, 0.5, 0.5].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        var filled = Tfserving_TensorProto()
        filled.dtype = .dtInt64
        filled.tensorShape = shape([3])
        filled.int64Val = [9]
        var half = Tfserving_TensorProto()
        half.dtype = .dtHalf
        half.tensorShape = shape([2])
        half.halfVal = [0x3C00, 0xC100]  // 1.0, -2.5
        var label = Tfserving_TensorProto()
        label.dtype = .dtString
        label.stringVal = [Data("dog".utf8)]
        response.outputs = ["scores": scores, "packed": packed, "filled": filled, "half": half, "label": label]
        let decoded = try TensorDecoder.decode(Array(try response.serializedData()), as: .tfServingResponse)
        let expected = try JSONParser().parse(
            #"{"model_spec":{"name":"ranker","version":7,"signature_name":"serving_default"},"outputs":{"filled":[9,9,9],"half":[1,-2.5],"label":"dog","packed":[[0.25,0.75],[0.5,0.5]],"scores":[[0.25,0.75],[0.5,0.5]]}}"#
        )
        #expect(decoded == expected, "\(decoded.serialized)")

        scores.floatVal = [1, 2, 3]
        response.outputs = ["scores": scores]
        #expect {
            try TensorDecoder.decode(Array(try response.serializedData()), as: .tfServingResponse)
        } throws: { error in
            (error as? TensorDecodingError)?.description == #"PredictResponse, tensor "scores": shape [2, 2] holds 4 elements, the tensor carries 3"#
        }
    }

    /// gzip- and deflate-compressed messages (`grpc-encoding`) are inflated for decoding; an
    /// encoding not understood, or a compressed message without one, is left to byte comparison.
    @Test func compressedMessagesAreInflated() throws {
        let message = try Self.fixture("kserve-response-raw.bin")
        let expected = try TensorDecoder.decode(message, as: .kserveV2Response)
        let decoder = try #require(TensorBodyDecoder(outputProtocol: .kserveV2))
        for (encoding, algorithm) in [("gzip", CompressionAlgorithm.gzip()), ("deflate", CompressionAlgorithm.zlib())] {
            var buffer = ByteBuffer(bytes: message)
            let compressed = Array(try buffer.compress(with: algorithm).readableBytesView)
            var framed = GRPCFraming.frame(compressed)
            framed[0] = 1
            let framing = BodyFraming(path: "/inference.GRPCInferenceService/ModelInfer", contentType: "application/grpc", grpcEncoding: encoding)
            let decoded = try #require(decoder.decode(framed, side: .response, framing: framing), "\(encoding)")
            #expect(try JSONParser().parse(decoded) == expected, "\(encoding)")
            var unknown = framing
            unknown.grpcEncoding = "snappy"
            #expect(decoder.decode(framed, side: .response, framing: unknown) == nil)
            unknown.grpcEncoding = nil
            #expect(decoder.decode(framed, side: .response, framing: unknown) == nil)
        }
    }

    /// The recorder asks `mayDecode` before building a framing for `decode`: it must say yes
    /// wherever `decode` would give JSON (gRPC messages, V2 binary tensor bodies) and no for the
    /// JSON bodies that make up most of a tensor route's traffic.
    @Test func mayDecodeSaysYesWhereverDecodeWould() throws {
        let message = try Self.fixture("kserve-response-raw.bin")
        let kserve = try #require(TensorBodyDecoder(outputProtocol: .kserveV2))
        let tfServing = try #require(TensorBodyDecoder(outputProtocol: .tfServing))
        let grpc = BodyFraming(path: "/inference.GRPCInferenceService/ModelInfer", contentType: "application/grpc+proto")
        #expect(kserve.decode(GRPCFraming.frame(message), side: .response, framing: grpc) != nil)
        #expect(kserve.mayDecode(contentType: "application/grpc+proto", inferenceHeaderLength: nil))
        #expect(kserve.mayDecode(contentType: "Application/GRPC", inferenceHeaderLength: nil))
        #expect(tfServing.mayDecode(contentType: "application/grpc", inferenceHeaderLength: nil))

        let header = Array(#"{"outputs":[{"name":"o","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]}"#.utf8)
        let binary = BodyFraming(path: "/v2/models/m/infer", contentType: "application/octet-stream", inferenceHeaderLength: header.count)
        #expect(kserve.decode(header + [0, 0, 0x80, 0x3F], side: .response, framing: binary) != nil)
        #expect(kserve.mayDecode(contentType: "application/octet-stream", inferenceHeaderLength: header.count))
        #expect(!tfServing.mayDecode(contentType: "application/octet-stream", inferenceHeaderLength: header.count))

        for decoder in [kserve, tfServing] {
            #expect(!decoder.mayDecode(contentType: "application/json", inferenceHeaderLength: nil))
            #expect(!decoder.mayDecode(contentType: nil, inferenceHeaderLength: nil))
        }
    }

    @Test func halfAndBfloat16BitPatterns() {
        #expect(TensorDecoderTests.half(0x0001) == 0x1p-24)  // smallest subnormal
        #expect(TensorDecoderTests.half(0x7BFF) == 65504)
        #expect(TensorDecoderTests.half(0xFC00) == -.infinity)
        #expect(TensorDecoderTests.half(0x7E00).isNaN)
    }

    /// A one-element FP16 tensor decoded through the public API.
    static func half(_ bits: UInt16) -> Double {
        var response = Inference_ModelInferResponse()
        var output = Inference_ModelInferResponse.InferOutputTensor()
        output.name = "h"
        output.datatype = "FP16"
        output.shape = [1]
        response.outputs = [output]
        response.rawOutputContents = [Data([UInt8(bits & 0xFF), UInt8(bits >> 8)])]
        guard let decoded = try? TensorDecoder.decode(Array(try! response.serializedData()), as: .kserveV2Response),
            case .array(let outputs)? = decoded["outputs"], case .array(let data)? = outputs.first?["data"]
        else { return -1 }
        switch data.first {
        case .number(let value): return value
        case .string("NaN"): return .nan
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        default: return -1
        }
    }
}
