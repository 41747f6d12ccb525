/// One column's values of the current row group: definition levels, PLAIN-encoded values, a
/// dictionary while the column's values repeat enough to pay for one, and the statistics engines
/// use to skip row groups.
struct ParquetColumnBuffer {
    let column: ParquetColumn
    private(set) var definitionLevels: [UInt8] = []
    private(set) var values: [UInt8] = []
    /// Distinct values and each one's index (fixed-width values by their bits, byte arrays by
    /// their bytes); `dictionaryFull` once the column has more distinct values than a dictionary
    /// should hold, and the chunk is written PLAIN.
    private var fixedDictionary: [UInt64: UInt32] = [:]
    private var bytesDictionary: [DictionaryKey: UInt32] = [:]
    private var dictionaryFull = false
    private(set) var dictionaryValues: [UInt8] = []
    private(set) var indices: [UInt32] = []
    static let maxDictionaryEntries = 1 << 15
    static let maxDictionaryBytes = 1 << 20
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
            self.appendFixed(UInt64(bitPattern: number))
        case (.double(let number), .double):
            self.appendFixed(number.bitPattern)
        case (.int(let number), .double):
            return try self.append(.double(Double(number)))
        case (.bytes(let bytes), .string), (.bytes(let bytes), .bytes):
            self.appendBytes(bytes)
            if bytes.count > Self.maxStatisticBytes { self.binaryStatistics = false }
        default:
            throw ParquetError("column \(self.column.name) (\(self.column.kind)) cannot hold \(value)")
        }
        self.definitionLevels.append(1)
        self.track(value)
    }

    private mutating func appendFixed(_ bits: UInt64) {
        withUnsafeBytes(of: bits.littleEndian) { self.values += $0 }
        guard !self.dictionaryFull else { return }
        if let index = self.fixedDictionary[bits] { return self.indices.append(index) }
        guard self.admitsEntry(bytes: 8) else { return }
        let index = UInt32(self.fixedDictionary.count)
        self.fixedDictionary[bits] = index
        withUnsafeBytes(of: bits.littleEndian) { self.dictionaryValues += $0 }
        self.indices.append(index)
    }

    private mutating func appendBytes(_ bytes: [UInt8]) {
        withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { self.values += $0 }
        self.values += bytes
        guard !self.dictionaryFull else { return }
        let key = DictionaryKey(bytes: bytes)
        if let index = self.bytesDictionary[key] { return self.indices.append(index) }
        guard self.admitsEntry(bytes: 4 + bytes.count) else { return }
        let index = UInt32(self.bytesDictionary.count)
        self.bytesDictionary[key] = index
        withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { self.dictionaryValues += $0 }
        self.dictionaryValues += bytes
        self.indices.append(index)
    }

    /// Whether one more entry fits; when not, the dictionary is given up for this row group.
    private mutating func admitsEntry(bytes: Int) -> Bool {
        let entries = self.fixedDictionary.count + self.bytesDictionary.count
        if entries < Self.maxDictionaryEntries && self.dictionaryValues.count + bytes <= Self.maxDictionaryBytes { return true }
        self.dictionaryFull = true
        self.fixedDictionary = [:]
        self.bytesDictionary = [:]
        self.dictionaryValues = []
        self.indices = []
        return false
    }

    /// The dictionary and its indices, when the chunk is smaller that way than PLAIN.
    var dictionaryEncoding: (entries: Int, values: [UInt8], indices: [UInt8])? {
        let entries = self.fixedDictionary.count + self.bytesDictionary.count
        guard !self.dictionaryFull, entries > 0 else { return nil }
        var encoder = RLEHybridEncoder(bitWidth: RLEHybridEncoder.bitWidth(forMaximum: UInt32(entries - 1)))
        // Estimated before encoding: bit-packed indices cost at most this.
        guard self.dictionaryValues.count + (self.indices.count * encoder.bitWidth + 7) / 8 < self.values.count else { return nil }
        for index in self.indices { encoder.append(index) }
        return (entries, self.dictionaryValues, [UInt8(encoder.bitWidth)] + encoder.finish())
    }

    private mutating func track(_ value: ParquetValue) {
        if case .double(let number) = value, number.isNaN { return }
        if case .bytes = value, !self.binaryStatistics { return }
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

    /// The definition levels in the RLE/bit-packing hybrid (bit width 1), with the 4-byte length
    /// prefix a v1 data page puts before them.
    var encodedDefinitionLevels: [UInt8] {
        var encoder = RLEHybridEncoder(bitWidth: 1)
        for level in self.definitionLevels { encoder.append(UInt32(level)) }
        let levels = encoder.finish()
        return withUnsafeBytes(of: UInt32(levels.count).littleEndian) { Array($0) } + levels
    }

    /// Bytes held, for bounding a row group's memory.
    var bufferedBytes: Int { self.values.count + self.definitionLevels.count + self.dictionaryValues.count + 4 * self.indices.count }
}

/// A byte array as a dictionary key, hashed as one block of memory (the default `[UInt8]` hash
/// feeds the hasher a byte at a time, which made hashing most of an export's time).
private struct DictionaryKey: Hashable {
    let bytes: [UInt8]

    func hash(into hasher: inout Hasher) {
        self.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
