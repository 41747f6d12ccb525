import Foundation
import ShadowCore

/// Element decoding shared by the protocols: little-endian raw buffers by element type, 16-bit
/// floats, and how values that JSON cannot hold are written (protobuf's JSON mapping).
enum TensorElements {
    /// The element types raw buffers carry.
    enum Kind: Sendable {
        case bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, fp16, bf16, fp32, fp64
        /// Length-prefixed elements: a 4-byte little-endian length, then that many bytes.
        case bytes

        /// Bytes per element (nil for `bytes`, whose elements have their own lengths).
        var width: Int? {
            switch self {
            case .bool, .uint8, .int8: 1
            case .uint16, .int16, .fp16, .bf16: 2
            case .uint32, .int32, .fp32: 4
            case .uint64, .int64, .fp64: 8
            case .bytes: nil
            }
        }
    }

    /// A float as JSON: NaN and the infinities become the strings protobuf's JSON mapping uses
    /// (JSON numbers cannot hold them, and a comparison must still see them).
    static func number(_ value: Double) -> JSONValue {
        if value.isNaN { return .string("NaN") }
        if value.isInfinite { return .string(value < 0 ? "-Infinity" : "Infinity") }
        return .number(value)
    }

    /// An IEEE 754 half-precision bit pattern as a Double.
    static func half(_ bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let fraction = Double(bits & 0x03FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24  // subnormal
        case 0x1F: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    /// A bfloat16 bit pattern (the top half of a float32) as a Double.
    static func bfloat16(_ bits: UInt16) -> Double {
        Double(Float(bitPattern: UInt32(bits) << 16))
    }

    /// A BYTES element: a string when it is UTF-8, else `{"base64": …}`, so no byte is lost.
    static func bytes(_ element: some Collection<UInt8>) -> JSONValue {
        let array = Array(element)
        if let text = String(validating: array, as: UTF8.self) { return .string(text) }
        return .object([("base64", .string(Data(array).base64EncodedString()))])
    }

    /// Decodes a row-major little-endian buffer of `kind` elements.
    /// - Throws: a reason (the caller names the tensor) when the buffer is not whole elements.
    static func decode(raw: some Collection<UInt8>, as kind: Kind) throws(ReasonError) -> [JSONValue] {
        let bytes = Array(raw)
        guard let width = kind.width else { return try Self.decodeLengthPrefixed(bytes) }
        guard bytes.count % width == 0 else {
            throw ReasonError("\(bytes.count) bytes are not a whole number of \(width)-byte elements")
        }
        var values: [JSONValue] = []
        values.reserveCapacity(bytes.count / width)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                func load<T: FixedWidthInteger>(_: T.Type) -> T { T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self)) }
                let value: JSONValue
                switch kind {
                case .bool: value = .bool(buffer[offset] != 0)
                case .uint8: value = .number(Double(buffer[offset]))
                case .int8: value = .number(Double(Int8(bitPattern: buffer[offset])))
                case .uint16: value = .number(Double(load(UInt16.self)))
                case .int16: value = .number(Double(load(Int16.self)))
                case .uint32: value = .number(Double(load(UInt32.self)))
                case .int32: value = .number(Double(load(Int32.self)))
                case .uint64: value = .number(Double(load(UInt64.self)))
                case .int64: value = .number(Double(load(Int64.self)))
                case .fp16: value = Self.number(Self.half(load(UInt16.self)))
                case .bf16: value = Self.number(Self.bfloat16(load(UInt16.self)))
                case .fp32: value = Self.number(Double(Float(bitPattern: load(UInt32.self))))
                case .fp64: value = Self.number(Double(bitPattern: load(UInt64.self)))
                case .bytes: value = .null
                }
                values.append(value)
                offset += width
            }
        }
        return values
    }

    /// BYTES in raw form: each element a 4-byte little-endian length and its bytes.
    static func decodeLengthPrefixed(_ bytes: [UInt8]) throws(ReasonError) -> [JSONValue] {
        var values: [JSONValue] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 4 else {
                throw ReasonError("a BYTES element's length prefix is cut short at byte \(offset)")
            }
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            offset += 4
            guard bytes.count - offset >= length else {
                throw ReasonError("a BYTES element at byte \(offset - 4) claims \(length) bytes, \(bytes.count - offset) remain")
            }
            values.append(Self.bytes(bytes[offset..<(offset + length)]))
            offset += length
        }
        return values
    }

    /// The number of elements a shape holds (1 for a scalar's empty shape), or nil when a
    /// dimension is negative or the product overflows.
    static func count(_ shape: [Int64]) -> Int? {
        var total = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: Int(dimension))
            guard !overflow else { return nil }
            total = product
        }
        return total
    }

    /// A reason without its context; the protocol decoders wrap it in a `TensorDecodingError`.
    struct ReasonError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
