import Foundation
import ShadowCore
import SwiftProtobuf

extension TensorDecoder {
    static func tfServing(_ request: Tfserving_PredictRequest) throws(TensorDecodingError) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        if request.hasModelSpec { members.append(("model_spec", Self.modelSpec(request.modelSpec))) }
        members.append(("inputs", try Self.tensorMap(request.inputs, message: "PredictRequest")))
        if !request.outputFilter.isEmpty { members.append(("output_filter", .array(request.outputFilter.map { .string($0) }))) }
        return .object(members)
    }

    static func tfServing(_ response: Tfserving_PredictResponse) throws(TensorDecodingError) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        if response.hasModelSpec { members.append(("model_spec", Self.modelSpec(response.modelSpec))) }
        members.append(("outputs", try Self.tensorMap(response.outputs, message: "PredictResponse")))
        return .object(members)
    }

    static func modelSpec(_ spec: Tfserving_ModelSpec) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("name", .string(spec.name))]
        switch spec.versionChoice {
        case .version(let version): members.append(("version", .number(Double(version.value))))
        case .versionLabel(let label): members.append(("version_label", .string(label)))
        case nil: break
        }
        if !spec.signatureName.isEmpty { members.append(("signature_name", .string(spec.signatureName))) }
        return .object(members)
    }

    /// Named tensors, keys sorted (protobuf maps have no order), each nested by its shape.
    static func tensorMap(_ tensors: [String: Tfserving_TensorProto], message: String) throws(TensorDecodingError) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            do {
                members.append((name, try Self.nested(tensor)))
            } catch {
                throw TensorDecodingError(message: message, tensor: name, reason: error.reason)
            }
        }
        return .object(members)
    }

    /// A TensorProto's elements nested by its shape (a scalar is the bare value).
    static func nested(_ tensor: Tfserving_TensorProto) throws(TensorElements.ReasonError) -> JSONValue {
        let shape = tensor.tensorShape.dim.map(\.size)
        guard !tensor.tensorShape.unknownRank else { throw TensorElements.ReasonError("the tensor's rank is unknown") }
        guard let count = TensorElements.count(shape) else {
            throw TensorElements.ReasonError("shape \(shape) is not a valid shape")
        }
        var values = try Self.elements(of: tensor)
        // TensorFlow's rule: a single typed value fills the whole shape.
        if values.count == 1, count > 1, tensor.tensorContent.isEmpty {
            values = Array(repeating: values[0], count: count)
        }
        guard values.count == count else {
            throw TensorElements.ReasonError("shape \(shape) holds \(count) elements, the tensor carries \(values.count)")
        }
        return Self.nest(values[...], shape: shape[...])
    }

    static func nest(_ values: ArraySlice<JSONValue>, shape: ArraySlice<Int64>) -> JSONValue {
        guard let first = shape.first else { return values.first ?? .null }
        let inner = shape.dropFirst()
        let stride = TensorElements.count(Array(inner)) ?? 0
        return .array(
            (0..<Int(first)).map { index in
                let start = values.startIndex + index * stride
                return Self.nest(values[start..<(start + stride)], shape: inner)
            }
        )
    }

    /// The flat elements, from `tensor_content` or the typed field the dtype uses.
    static func elements(of tensor: Tfserving_TensorProto) throws(TensorElements.ReasonError) -> [JSONValue] {
        let kind: TensorElements.Kind
        switch tensor.dtype {
        case .dtFloat: kind = .fp32
        case .dtDouble: kind = .fp64
        case .dtInt32: kind = .int32
        case .dtInt16: kind = .int16
        case .dtInt8: kind = .int8
        case .dtUint8: kind = .uint8
        case .dtUint16: kind = .uint16
        case .dtUint32: kind = .uint32
        case .dtUint64: kind = .uint64
        case .dtInt64: kind = .int64
        case .dtBool: kind = .bool
        case .dtHalf: kind = .fp16
        case .dtBfloat16: kind = .bf16
        case .dtString: return tensor.stringVal.map { TensorElements.bytes($0) }
        default: throw TensorElements.ReasonError("dtype \(tensor.dtype) is not decoded (compared byte for byte instead)")
        }
        if !tensor.tensorContent.isEmpty { return try TensorElements.decode(raw: tensor.tensorContent, as: kind) }
        switch kind {
        case .fp32: return tensor.floatVal.map { TensorElements.number(Double($0)) }
        case .fp64: return tensor.doubleVal.map { TensorElements.number($0) }
        case .int32, .int16, .int8, .uint8, .uint16: return tensor.intVal.map { .number(Double($0)) }
        case .uint32: return tensor.uint32Val.map { .number(Double($0)) }
        case .uint64: return tensor.uint64Val.map { .number(Double($0)) }
        case .int64: return tensor.int64Val.map { .number(Double($0)) }
        case .bool: return tensor.boolVal.map { .bool($0) }
        case .fp16: return tensor.halfVal.map { TensorElements.number(TensorElements.half(UInt16(truncatingIfNeeded: $0))) }
        case .bf16: return tensor.halfVal.map { TensorElements.number(TensorElements.bfloat16(UInt16(truncatingIfNeeded: $0))) }
        case .bytes: return []
        }
    }
}
