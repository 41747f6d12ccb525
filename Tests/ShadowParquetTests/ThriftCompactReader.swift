/// A Thrift compact-protocol reader written from the protocol's spec, separately from the
/// writer, so the footer and page headers are checked by code that shares nothing with them.
enum ThriftValue: Equatable {
    case int(Int64)
    case bool(Bool)
    case double(Double)
    case binary([UInt8])
    case list([ThriftValue])
    case `struct`([Int16: ThriftValue])

    var int: Int64? { if case .int(let value) = self { value } else { nil } }
    var binary: [UInt8]? { if case .binary(let value) = self { value } else { nil } }
    var list: [ThriftValue]? { if case .list(let value) = self { value } else { nil } }
    var fields: [Int16: ThriftValue]? { if case .struct(let value) = self { value } else { nil } }
    var string: String? { self.binary.map { String(decoding: $0, as: UTF8.self) } }

    subscript(_ id: Int16) -> ThriftValue? { self.fields?[id] }
}

struct ThriftError: Error, CustomStringConvertible {
    let description: String
}

struct ThriftCompactReader {
    let bytes: [UInt8]
    var position: Int

    init(_ bytes: [UInt8], at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    mutating func byte() throws -> UInt8 {
        guard self.position < self.bytes.count else { throw ThriftError(description: "read past the end at \(self.position)") }
        defer { self.position += 1 }
        return self.bytes[self.position]
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.byte()
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            guard shift < 64 else { throw ThriftError(description: "varint too long") }
        }
    }

    mutating func zigzag() throws -> Int64 {
        let raw = try self.varint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    mutating func readStruct() throws -> ThriftValue {
        var fields: [Int16: ThriftValue] = [:]
        var lastID: Int16 = 0
        while true {
            let header = try self.byte()
            if header == 0 { return .struct(fields) }
            let delta = Int16(header >> 4)
            let id = delta == 0 ? Int16(try self.zigzag()) : lastID + delta
            guard id > lastID else { throw ThriftError(description: "field \(id) after \(lastID): ids must ascend") }
            lastID = id
            fields[id] = try self.value(type: header & 0x0F)
        }
    }

    private mutating func value(type: UInt8) throws -> ThriftValue {
        switch type {
        case 1: return .bool(true)
        case 2: return .bool(false)
        case 3: return .int(Int64(Int8(bitPattern: try self.byte())))
        case 4, 5, 6: return .int(try self.zigzag())
        case 7:
            var bits: UInt64 = 0
            for index in 0..<8 { bits |= UInt64(try self.byte()) << (8 * index) }
            return .double(Double(bitPattern: bits))
        case 8:
            let length = Int(try self.varint())
            guard self.position + length <= self.bytes.count else { throw ThriftError(description: "binary past the end") }
            defer { self.position += length }
            return .binary(Array(self.bytes[self.position..<self.position + length]))
        case 9, 10:
            let header = try self.byte()
            let count = header >> 4 == 15 ? Int(try self.varint()) : Int(header >> 4)
            let element = header & 0x0F
            return .list(
                try (0..<count).map { _ in
                    // Booleans in a list are a byte each.
                    element == 1 || element == 2 ? .bool(try self.byte() == 1) : try self.value(type: element)
                }
            )
        case 12: return try self.readStruct()
        default: throw ThriftError(description: "unsupported compact type \(type)")
        }
    }
}
