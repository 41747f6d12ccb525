import Foundation
import ShadowCore

extension TensorDecoder {
    /// One V2 tensor, as a request input or a response output carries it.
    struct KServeTensor {
        var name: String
        var datatype: String
        var shape: [Int64]
        var parameters: [String: Inference_InferParameter]
        var contents: Inference_InferTensorContents?
    }

    static func kserve(_ request: Inference_ModelInferRequest) throws(TensorDecodingError) -> JSONValue {
        let inputs = request.inputs.map {
            KServeTensor(
                name: $0.name,
                datatype: $0.datatype,
                shape: $0.shape,
                parameters: $0.parameters,
                contents: $0.hasContents ? $0.contents : nil
            )
        }
        var members = Self.header(request.modelName, request.modelVersion, request.id, request.parameters)
        members.append(("inputs", try Self.tensors(inputs, raw: request.rawInputContents, message: "ModelInferRequest", field: "raw_input_contents")))
        if !request.outputs.isEmpty {
            let outputs = request.outputs.map { output -> JSONValue in
                var members: [(key: String, value: JSONValue)] = [("name", .string(output.name))]
                if !output.parameters.isEmpty { members.append(("parameters", Self.parameters(output.parameters))) }
                return .object(members)
            }
            members.append(("outputs", .array(outputs)))
        }
        return .object(members)
    }

    static func kserve(_ response: Inference_ModelInferResponse) throws(TensorDecodingError) -> JSONValue {
        let outputs = response.outputs.map {
            KServeTensor(
                name: $0.name,
                datatype: $0.datatype,
                shape: $0.shape,
                parameters: $0.parameters,
                contents: $0.hasContents ? $0.contents : nil
            )
        }
        var members = Self.header(response.modelName, response.modelVersion, response.id, response.parameters)
        members.append(
            ("outputs", try Self.tensors(outputs, raw: response.rawOutputContents, message: "ModelInferResponse", field: "raw_output_contents"))
        )
        return .object(members)
    }

    /// The members a request and a response share: the model, its version, the id, parameters.
    static func header(
        _ modelName: String,
        _ modelVersion: String,
        _ id: String,
        _ parameters: [String: Inference_InferParameter]
    ) -> [(key: String, value: JSONValue)] {
        var members: [(key: String, value: JSONValue)] = [("model_name", .string(modelName))]
        if !modelVersion.isEmpty { members.append(("model_version", .string(modelVersion))) }
        if !id.isEmpty { members.append(("id", .string(id))) }
        if !parameters.isEmpty { members.append(("parameters", Self.parameters(parameters))) }
        return members
    }

    /// The tensors as V2 REST objects; raw buffers, when present, belong to the tensors in order.
    static func tensors(_ tensors: [KServeTensor], raw: [Data], message: String, field: String) throws(TensorDecodingError) -> JSONValue {
        guard raw.isEmpty || raw.count == tensors.count else {
            throw TensorDecodingError(message: message, reason: "\(raw.count) \(field) entries for \(tensors.count) tensors")
        }
        var decoded: [JSONValue] = []
        for (index, tensor) in tensors.enumerated() {
            let data: [JSONValue]
            do {
                data = try Self.data(of: tensor, raw: raw.isEmpty ? nil : raw[index])
            } catch {
                throw TensorDecodingError(message: message, tensor: tensor.name, reason: error.reason)
            }
            var members: [(key: String, value: JSONValue)] = [
                ("name", .string(tensor.name)),
                ("datatype", .string(tensor.datatype)),
                ("shape", .array(tensor.shape.map { .number(Double($0)) })),
            ]
            if !tensor.parameters.isEmpty { members.append(("parameters", Self.parameters(tensor.parameters))) }
            members.append(("data", .array(data)))
            decoded.append(.object(members))
        }
        return .array(decoded)
    }

    /// A tensor's flat elements, from its raw buffer or its typed contents, checked against its
    /// shape.
    static func data(of tensor: KServeTensor, raw: Data?) throws(TensorElements.ReasonError) -> [JSONValue] {
        guard let kind = Self.kind(ofV2: tensor.datatype) else {
            throw TensorElements.ReasonError("unknown datatype \"\(tensor.datatype)\"")
        }
        let values: [JSONValue]
        if let raw {
            values = try TensorElements.decode(raw: raw, as: kind)
        } else if let contents = tensor.contents {
            values = try Self.typed(contents, kind: kind, datatype: tensor.datatype)
        } else {
            values = []
        }
        guard let expected = TensorElements.count(tensor.shape) else {
            throw TensorElements.ReasonError("shape \(tensor.shape) is not a valid shape")
        }
        guard values.count == expected else {
            throw TensorElements.ReasonError("shape \(tensor.shape) holds \(expected) elements, the tensor carries \(values.count)")
        }
        return values
    }

    /// The typed `contents` field that a datatype uses.
    static func typed(
        _ contents: Inference_InferTensorContents,
        kind: TensorElements.Kind,
        datatype: String
    ) throws(TensorElements.ReasonError) -> [JSONValue] {
        switch kind {
        case .bool: return contents.boolContents.map { .bool($0) }
        case .int8, .int16, .int32: return contents.intContents.map { .number(Double($0)) }
        case .int64: return contents.int64Contents.map { .number(Double($0)) }
        case .uint8, .uint16, .uint32: return contents.uintContents.map { .number(Double($0)) }
        case .uint64: return contents.uint64Contents.map { .number(Double($0)) }
        case .fp32: return contents.fp32Contents.map { TensorElements.number(Double($0)) }
        case .fp64: return contents.fp64Contents.map { TensorElements.number($0) }
        case .bytes: return contents.bytesContents.map { TensorElements.bytes($0) }
        case .fp16, .bf16: throw TensorElements.ReasonError("\(datatype) has no typed contents; it travels only in raw form")
        }
    }

    static func kind(ofV2 datatype: String) -> TensorElements.Kind? {
        switch datatype {
        case "BOOL": .bool
        case "UINT8": .uint8
        case "UINT16": .uint16
        case "UINT32": .uint32
        case "UINT64": .uint64
        case "INT8": .int8
        case "INT16": .int16
        case "INT32": .int32
        case "INT64": .int64
        case "FP16": .fp16
        case "BF16": .bf16
        case "FP32": .fp32
        case "FP64": .fp64
        case "BYTES": .bytes
        default: nil
        }
    }

    /// Parameters as a JSON object, keys sorted (protobuf maps have no order).
    static func parameters(_ parameters: [String: Inference_InferParameter]) -> JSONValue {
        .object(
            parameters.sorted { $0.key < $1.key }.map { key, parameter in
                let value: JSONValue =
                    switch parameter.parameterChoice {
                    case .boolParam(let value): .bool(value)
                    case .int64Param(let value): .number(Double(value))
                    case .stringParam(let value): .string(value)
                    case .doubleParam(let value): TensorElements.number(value)
                    case .uint64Param(let value): .number(Double(value))
                    case nil: .null
                    }
                return (key: key, value: value)
            }
        )
    }
}
