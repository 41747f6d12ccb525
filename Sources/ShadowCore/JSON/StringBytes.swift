/// The bytes inside a JSON string that need a closer look, found eight at a time (SWAR): a
/// quote, a backslash or a control byte (and, for the parser's ASCII fast path, any byte of
/// 0x80 or more). Text answers are mostly such plain runs; byte by byte, the validator's string
/// scan was ~40% of the recorder's scoring thread on them.
enum StringBytes {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The high bit of each of `word`'s bytes that is a quote, a backslash or below 0x20, and of
    /// every byte of 0x80 or more when `nonASCII`. Exact up to and including the lowest flagged
    /// byte (a borrow only starts at a flagged one); bytes above it may be flagged wrongly.
    @inline(__always)
    static func specialBytes(_ word: UInt64, nonASCII: Bool) -> UInt64 {
        let quote = word ^ (Self.ones &* 0x22)
        let backslash = word ^ (Self.ones &* 0x5C)
        let special = ((quote &- Self.ones) & ~quote) | ((backslash &- Self.ones) & ~backslash) | ((word &- Self.ones &* 0x20) & ~word)
        return (nonASCII ? special | word : special) & Self.highs
    }

    /// How many bytes from `start` (before `end`) are neither a quote, a backslash nor a control
    /// byte.
    @inline(__always)
    static func plainRunLength(_ base: UnsafePointer<UInt8>, from start: Int, to end: Int) -> Int {
        var at = start
        while at + 8 <= end {
            let special = Self.specialBytes(ASCIIDigits.word(at: base + at), nonASCII: false)
            if special != 0 { return at - start + special.trailingZeroBitCount / 8 }
            at += 8
        }
        while at < end {
            let byte = base[at]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            at += 1
        }
        return at - start
    }
}
