/// Parquet's RLE / bit-packing hybrid (the spec's "RLE" encoding), used for definition levels and
/// dictionary indices: a run of 8 or more equal values becomes an RLE run (its length, then the
/// value once); everything else is bit-packed in groups of 8, least significant bit first.
struct RLEHybridEncoder {
    let bitWidth: Int
    private(set) var bytes: [UInt8] = []
    /// Values waiting to be bit-packed; flushed only in multiples of 8 except at the very end,
    /// where the last group is padded with zeros (readers stop at the page's value count).
    private var literals: [UInt32] = []
    private var runValue: UInt32 = 0
    private var runLength = 0

    init(bitWidth: Int) {
        precondition((1...32).contains(bitWidth))
        self.bitWidth = bitWidth
    }

    /// The bit width that holds every value up to `maximum` (at least 1).
    static func bitWidth(forMaximum maximum: UInt32) -> Int {
        max(1, 32 - maximum.leadingZeroBitCount)
    }

    mutating func append(_ value: UInt32) {
        if self.runLength > 0 && value == self.runValue {
            self.runLength += 1
            return
        }
        self.endRun()
        self.runValue = value
        self.runLength = 1
    }

    mutating func append(_ value: UInt32, count: Int) {
        guard count > 0 else { return }
        self.append(value)
        self.runLength += count - 1
    }

    /// Moves the pending run out: long runs as RLE (after topping the literals up to a group
    /// boundary from the run itself), short ones as literals.
    private mutating func endRun() {
        var length = self.runLength
        self.runLength = 0
        guard length > 0 else { return }
        if self.literals.count % 8 != 0 {
            let fill = min(length, 8 - self.literals.count % 8)
            self.literals += repeatElement(self.runValue, count: fill)
            length -= fill
        }
        if length >= 8 {
            self.flushLiterals()
            ThriftCompactWriter.appendVarint(UInt64(length) << 1, to: &self.bytes)
            for byte in 0..<((self.bitWidth + 7) / 8) { self.bytes.append(UInt8(truncatingIfNeeded: self.runValue >> (8 * byte))) }
        } else {
            self.literals += repeatElement(self.runValue, count: length)
        }
    }

    private mutating func flushLiterals() {
        guard !self.literals.isEmpty else { return }
        while self.literals.count % 8 != 0 { self.literals.append(0) }
        ThriftCompactWriter.appendVarint(UInt64(self.literals.count / 8) << 1 | 1, to: &self.bytes)
        var accumulator: UInt64 = 0
        var bits = 0
        for value in self.literals {
            accumulator |= UInt64(value) << bits
            bits += self.bitWidth
            while bits >= 8 {
                self.bytes.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator >>= 8
                bits -= 8
            }
        }
        // 8 values of any width fill whole bytes: nothing is left over.
        self.literals.removeAll(keepingCapacity: true)
    }

    /// The encoded values; the encoder is spent afterwards.
    mutating func finish() -> [UInt8] {
        self.endRun()
        self.flushLiterals()
        return self.bytes
    }
}
