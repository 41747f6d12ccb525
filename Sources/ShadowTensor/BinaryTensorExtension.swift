import ShadowCore

/// The KServe/Triton binary tensor data extension of the V2 REST protocol: a body is a JSON
/// header of `Inference-Header-Content-Length` bytes followed by raw tensor buffers, one for
/// each tensor whose `parameters.binary_data_size` says how many bytes it takes, in order.
///
/// ``decode(_:headerLength:)`` returns the document as if the tensors had been sent as JSON:
/// each binary tensor gets its `data` (flat, row-major) and loses `binary_data_size`, so a pair
/// where one side answered in binary and the other in JSON compares equal when the tensors are.
public enum BinaryTensorExtension {
    /// The header that gives the JSON part's length.
    public static let headerName = "inference-header-content-length"

    public static func decode(_ body: [UInt8], headerLength: Int) throws(TensorDecodingError) -> JSONValue {
        let message = "binary tensor body"
        guard headerLength >= 0, headerLength <= body.count else {
            throw TensorDecodingError(
                message: message,
                reason: "Inference-Header-Content-Length is \(headerLength), the body has \(body.count) bytes"
            )
        }
        let header: JSONValue
        do {
            header = try JSONParser().parse(body[0..<headerLength])
        } catch {
            throw TensorDecodingError(message: message, reason: "its JSON header does not parse: \(error)")
        }
        guard case .object(var members) = header else {
            throw TensorDecodingError(message: message, reason: "its JSON header is not an object")
        }
        var offset = headerLength
        for (index, member) in members.enumerated() where member.key == "inputs" || member.key == "outputs" {
            guard case .array(let tensors) = member.value else { continue }
            var decoded: [JSONValue] = []
            for tensor in tensors {
                let (value, used) = try Self.attach(tensor, body: body, at: offset, message: message)
                decoded.append(value)
                offset += used
            }
            members[index].value = .array(decoded)
        }
        guard offset == body.count else {
            throw TensorDecodingError(message: message, reason: "\(body.count - offset) bytes follow the last binary tensor")
        }
        return .object(members)
    }

    /// One tensor with its binary buffer decoded into `data`, and the bytes it took.
    static func attach(_ tensor: JSONValue, body: [UInt8], at offset: Int, message: String) throws(TensorDecodingError) -> (JSONValue, Int) {
        guard case .object(var members) = tensor,
            case .object(var parameters)? = tensor["parameters"],
            let sizeIndex = parameters.firstIndex(where: { $0.key == "binary_data_size" })
        else { return (tensor, 0) }
        let name: String? = if case .string(let name)? = tensor["name"] { name } else { nil }
        guard case .number(let size) = parameters[sizeIndex].value, size >= 0, size == size.rounded(), size <= Double(body.count - offset) else {
            throw TensorDecodingError(
                message: message,
                tensor: name,
                reason: "binary_data_size \(parameters[sizeIndex].value.serialized) does not fit the \(body.count - offset) bytes left"
            )
        }
        guard case .string(let datatype)? = tensor["datatype"], let kind = TensorDecoder.kind(ofV2: datatype) else {
            throw TensorDecodingError(message: message, tensor: name, reason: "a binary tensor needs a known datatype")
        }
        let length = Int(size)
        let data: [JSONValue]
        do {
            data = try TensorElements.decode(raw: body[offset..<(offset + length)], as: kind)
        } catch {
            throw TensorDecodingError(message: message, tensor: name, reason: error.reason)
        }
        if case .array(let shape)? = tensor["shape"] {
            let dimensions = shape.compactMap { value -> Int64? in
                guard case .number(let dimension) = value else { return nil }
                return Int64(exactly: dimension)
            }
            if dimensions.count == shape.count, let expected = TensorElements.count(dimensions), expected != data.count {
                throw TensorDecodingError(
                    message: message,
                    tensor: name,
                    reason: "shape \(dimensions) holds \(expected) elements, the binary data carries \(data.count)"
                )
            }
        }
        parameters.remove(at: sizeIndex)
        members.removeAll { $0.key == "parameters" || $0.key == "data" }
        if !parameters.isEmpty { members.append(("parameters", .object(parameters))) }
        members.append(("data", .array(data)))
        return (.object(members), length)
    }
}
