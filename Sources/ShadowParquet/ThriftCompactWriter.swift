/// The Thrift compact protocol, as far as a Parquet footer and page headers need it: structs of
/// i32, i64, binary, bool, lists and nested structs (https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md).
struct ThriftCompactWriter {
    private(set) var bytes: [UInt8] = []
    /// The last field id of each open struct (field headers are deltas from it).
    private var lastFieldIDs: [Int16] = [0]

    enum CompactType: UInt8 {
        case booleanTrue = 1
        case booleanFalse = 2
        case i32 = 5
        case i64 = 6
        case binary = 8
        case list = 9
        case `struct` = 12
    }

    private mutating func fieldHeader(_ id: Int16, _ type: CompactType) {
        let delta = id - self.lastFieldIDs[self.lastFieldIDs.count - 1]
        if delta > 0 && delta <= 15 {
            self.bytes.append(UInt8(delta) << 4 | type.rawValue)
        } else {
            self.bytes.append(type.rawValue)
            self.varint(Self.zigzag(Int64(id)))
        }
        self.lastFieldIDs[self.lastFieldIDs.count - 1] = id
    }

    mutating func varint(_ value: UInt64) {
        Self.appendVarint(value, to: &self.bytes)
    }

    /// ULEB128, as Thrift's compact protocol and Parquet's RLE hybrid both write it.
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    mutating func i32(_ id: Int16, _ value: Int32) {
        self.fieldHeader(id, .i32)
        self.varint(Self.zigzag(Int64(value)))
    }

    mutating func i64(_ id: Int16, _ value: Int64) {
        self.fieldHeader(id, .i64)
        self.varint(Self.zigzag(value))
    }

    mutating func bool(_ id: Int16, _ value: Bool) {
        self.fieldHeader(id, value ? .booleanTrue : .booleanFalse)
    }

    mutating func binary(_ id: Int16, _ value: [UInt8]) {
        self.fieldHeader(id, .binary)
        self.varint(UInt64(value.count))
        self.bytes += value
    }

    mutating func string(_ id: Int16, _ value: String) {
        self.binary(id, Array(value.utf8))
    }

    /// A nested struct field; `body` writes its fields.
    mutating func `struct`(_ id: Int16, _ body: (inout ThriftCompactWriter) -> Void) {
        self.fieldHeader(id, .struct)
        self.structBody(body)
    }

    private mutating func structBody(_ body: (inout ThriftCompactWriter) -> Void) {
        self.lastFieldIDs.append(0)
        body(&self)
        self.bytes.append(0)  // stop
        self.lastFieldIDs.removeLast()
    }

    private mutating func listHeader(_ id: Int16, count: Int, element: CompactType) {
        self.fieldHeader(id, .list)
        if count < 15 {
            self.bytes.append(UInt8(count) << 4 | element.rawValue)
        } else {
            self.bytes.append(0xF0 | element.rawValue)
            self.varint(UInt64(count))
        }
    }

    mutating func list(_ id: Int16, i32 values: [Int32]) {
        self.listHeader(id, count: values.count, element: .i32)
        for value in values { self.varint(Self.zigzag(Int64(value))) }
    }

    mutating func list(_ id: Int16, strings values: [String]) {
        self.listHeader(id, count: values.count, element: .binary)
        for value in values {
            self.varint(UInt64(value.utf8.count))
            self.bytes += Array(value.utf8)
        }
    }

    mutating func list<T>(_ id: Int16, structs values: [T], _ body: (inout ThriftCompactWriter, T) -> Void) {
        self.listHeader(id, count: values.count, element: .struct)
        for value in values { self.structBody { body(&$0, value) } }
    }

    /// A top-level struct (a page header, the footer).
    static func message(_ body: (inout ThriftCompactWriter) -> Void) -> [UInt8] {
        var writer = ThriftCompactWriter()
        body(&writer)
        writer.bytes.append(0)
        return writer.bytes
    }
}
