/// One column's values of the current row group: definition levels, PLAIN-encoded values and
/// the statistics engines use to skip row groups.
struct ParquetColumnBuffer {
    let column: ParquetColumn
    private(set) var definitionLevels: [UInt8] = []
    private(set) var values: [UInt8] = []
    private(set) var nullCount: Int64 = 0
    private var minimum: ParquetValue = .null
    private var maximum: ParquetValue = .null
    /// Byte arrays longer than this get no min/max (a body is no use for skipping).
    static let maxStatisticBytes = 64
    private var binaryStatistics = true

    init(_ column: ParquetColumn) {
        self.column = column
    }

    var rowCount: Int { self.definitionLevels.count }

    mutating func append(_ value: ParquetValue) throws(ParquetError) {
        switch (value, self.column.kind) {
        case (.null, _):
            self.definitionLevels.append(0)
            self.nullCount += 1
            return
        case (.int(let number), .int64), (.int(let number), .timestampMicros):
            withUnsafeBytes(of: number.littleEndian) { self.values += $0 }
        case (.double(let number), .double):
            withUnsafeBytes(of: number.bitPattern.littleEndian) { self.values += $0 }
        case (.int(let number), .double):
            return try self.append(.double(Double(number)))
        case (.bytes(let bytes), .string), (.bytes(let bytes), .bytes):
            withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { self.values += $0 }
            self.values += bytes
            if bytes.count > Self.maxStatisticBytes { self.binaryStatistics = false }
        default:
            throw ParquetError("column \(self.column.name) (\(self.column.kind)) cannot hold \(value)")
        }
        self.definitionLevels.append(1)
        self.track(value)
    }

    private mutating func track(_ value: ParquetValue) {
        if case .double(let number) = value, number.isNaN { return }
        if self.minimum == .null || Self.less(value, self.minimum) { self.minimum = value }
        if self.maximum == .null || Self.less(self.maximum, value) { self.maximum = value }
    }

    private static func less(_ left: ParquetValue, _ right: ParquetValue) -> Bool {
        switch (left, right) {
        case (.int(let a), .int(let b)): a < b
        case (.double(let a), .double(let b)): a < b
        // Unsigned byte-wise, as the spec orders BYTE_ARRAY statistics.
        case (.bytes(let a), .bytes(let b)): a.lexicographicallyPrecedes(b)
        default: false
        }
    }

    /// PLAIN encoding of a statistic, or nil when there is none to give.
    func statistic(_ value: ParquetValue) -> [UInt8]? {
        switch value {
        case .null: return nil
        case .int(let number): return withUnsafeBytes(of: number.littleEndian) { Array($0) }
        case .double(let number): return withUnsafeBytes(of: number.bitPattern.littleEndian) { Array($0) }
        case .bytes(let bytes): return self.binaryStatistics ? bytes : nil
        }
    }

    var statistics: (minimum: [UInt8]?, maximum: [UInt8]?, nullCount: Int64) {
        (self.statistic(self.minimum), self.statistic(self.maximum), self.nullCount)
    }

    /// The definition levels in the RLE/bit-packing hybrid (bit width 1, RLE runs only), with
    /// the 4-byte length prefix a v1 data page puts before them.
    var encodedDefinitionLevels: [UInt8] {
        var runs: [UInt8] = []
        var index = 0
        while index < self.definitionLevels.count {
            let value = self.definitionLevels[index]
            var end = index + 1
            while end < self.definitionLevels.count && self.definitionLevels[end] == value { end += 1 }
            // An RLE run: its length shifted left once (the low bit 0 says RLE), then the value.
            ThriftCompactWriter.appendVarint(UInt64(end - index) << 1, to: &runs)
            runs.append(value)
            index = end
        }
        return withUnsafeBytes(of: UInt32(runs.count).littleEndian) { Array($0) } + runs
    }

    /// Bytes held, for bounding a row group's memory.
    var bufferedBytes: Int { self.values.count + self.definitionLevels.count }
}
