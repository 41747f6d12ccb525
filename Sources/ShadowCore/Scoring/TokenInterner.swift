#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns whitespace-separated tokens into small integers without building a `String` per token:
/// an open-addressing table over FNV-1a hashes of the UTF-8 bytes.
///
/// The text scorer's measures (edit distance, Jaccard) then work on integers only.
struct TokenInterner {
    private var storage: [UInt8] = []
    /// Each token's place in `storage`, its length and its first 8 bytes (most tokens are that
    /// short, so comparing two is one integer comparison).
    private var spans: [(start: Int, count: Int, head: UInt64)] = []
    private var table: [Int32] = Array(repeating: -1, count: 1024)

    /// Distinct tokens seen so far.
    var count: Int { self.spans.count }

    /// The ids of the text's tokens, lowercased (ASCII fast path, Unicode otherwise) when asked.
    mutating func tokenIDs(_ text: String, normalize: Bool) -> [Int32] {
        var text = text
        if let ids = self.scan(text, lowercaseASCII: normalize) { return ids }
        // Non-ASCII text to normalise: Unicode lowercasing first, then the byte scan as is.
        text = text.lowercased()
        return self.scan(text, lowercaseASCII: false) ?? []
    }

    /// One pass over the bytes: split on ASCII whitespace, lowercase ASCII letters and hash each
    /// token as it goes. Returns `nil` when lowercasing meets a non-ASCII byte.
    private mutating func scan(_ text: String, lowercaseASCII: Bool) -> [Int32]? {
        var text = text
        return text.withUTF8 { bytes -> [Int32]? in
            var ids: [Int32] = []
            ids.reserveCapacity(bytes.count / 5)
            var scratch = [UInt8](repeating: 0, count: 64)
            var start = -1
            var lowered = false
            for index in 0...bytes.count {
                let byte: UInt8 = index < bytes.count ? bytes[index] : 0x20
                if byte == 0x20 || byte &- 0x09 < 5 {
                    guard start >= 0 else { continue }
                    let token = UnsafeBufferPointer(rebasing: bytes[start..<index])
                    if lowered {
                        // Rare: a token with capitals, compared in its lowercased form.
                        if scratch.count < token.count { scratch = [UInt8](repeating: 0, count: token.count) }
                        let id = scratch.withUnsafeMutableBufferPointer { buffer -> Int32 in
                            for (offset, raw) in token.enumerated() { buffer[offset] = raw &- 0x41 < 26 ? raw | 0x20 : raw }
                            return self.intern(UnsafeBufferPointer(rebasing: buffer[0..<token.count]), readable: buffer.count)
                        }
                        ids.append(id)
                    } else {
                        ids.append(self.intern(token, readable: bytes.count - start))
                    }
                    start = -1
                    lowered = false
                    continue
                }
                if start < 0 { start = index }
                if lowercaseASCII {
                    if byte >= 0x80 { return nil }
                    if byte &- 0x41 < 26 { lowered = true }
                }
            }
            return ids
        }
    }

    /// Up to the first 8 bytes as a little-endian integer, zero-padded. With 8 readable bytes
    /// (the token sits inside a larger buffer) it is one load and a mask.
    @inline(__always)
    static func word(_ bytes: UnsafePointer<UInt8>, _ count: Int, readable: Int) -> UInt64 {
        var word: UInt64 = 0
        if readable >= 8 {
            memcpy(&word, bytes, 8)
            return count >= 8 ? word : word & ((1 << UInt64(8 * count)) &- 1)
        }
        for offset in 0..<min(count, 8) { word |= UInt64(bytes[offset]) << UInt64(8 * offset) }
        return word
    }

    /// A word-at-a-time hash (multiply and fold per 8 bytes): a token costs one or two multiplies
    /// instead of one per byte.
    @inline(__always)
    static func hash(_ bytes: UnsafePointer<UInt8>, _ count: Int, head: UInt64, readable: Int) -> UInt64 {
        var hash = (UInt64(count) &* 0x9E37_79B9_7F4A_7C15 ^ head) &* 0xBF58_476D_1CE4_E5B9
        var offset = 8
        while offset < count {
            let word = Self.word(bytes + offset, min(8, count - offset), readable: readable - offset)
            hash = (hash ^ (hash >> 31) ^ word) &* 0xBF58_476D_1CE4_E5B9
            offset += 8
        }
        return hash ^ (hash >> 31)
    }

    /// - Parameter readable: bytes readable from the token's start (at least its length).
    private mutating func intern(_ token: UnsafeBufferPointer<UInt8>, readable: Int) -> Int32 {
        if self.spans.count * 2 >= self.table.count { self.grow() }
        let base = token.baseAddress!
        let head = Self.word(base, token.count, readable: readable)
        let mask = self.table.count - 1
        var slot = Int(truncatingIfNeeded: Self.hash(base, token.count, head: head, readable: readable)) & mask
        while true {
            let id = self.table[slot]
            if id < 0 {
                let newID = Int32(self.spans.count)
                self.spans.append((self.storage.count, token.count, head))
                self.storage.append(contentsOf: token)
                self.table[slot] = newID
                return newID
            }
            let span = self.spans[Int(id)]
            if span.count == token.count, span.head == head {
                if span.count <= 8 { return id }
                let equal = self.storage.withUnsafeBufferPointer { storage in
                    memcmp(storage.baseAddress! + span.start + 8, base + 8, span.count - 8) == 0
                }
                if equal { return id }
            }
            slot = (slot + 1) & mask
        }
    }

    private mutating func grow() {
        var table = [Int32](repeating: -1, count: self.table.count * 2)
        let mask = table.count - 1
        self.storage.withUnsafeBufferPointer { storage in
            for (id, span) in self.spans.enumerated() {
                let readable = storage.count - span.start
                var slot =
                    Int(truncatingIfNeeded: Self.hash(storage.baseAddress! + span.start, span.count, head: span.head, readable: readable)) & mask
                while table[slot] >= 0 { slot = (slot + 1) & mask }
                table[slot] = Int32(id)
            }
        }
        self.table = table
    }
}
