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
    private var spans: [(start: Int, count: Int)] = []
    private var table: [Int32] = Array(repeating: -1, count: 1024)

    /// Distinct tokens seen so far.
    var count: Int { self.spans.count }

    /// The ids of the text's tokens, lowercased (ASCII fast path, Unicode otherwise) when asked.
    mutating func tokenIDs(_ text: String, normalize: Bool) -> [Int32] {
        var utf8 = Array(text.utf8)
        if normalize {
            if utf8.allSatisfy({ $0 < 0x80 }) {
                for index in utf8.indices where (0x41...0x5A).contains(utf8[index]) { utf8[index] |= 0x20 }
            } else {
                utf8 = Array(text.lowercased().utf8)
            }
        }
        var ids: [Int32] = []
        ids.reserveCapacity(utf8.count / 5)
        utf8.withUnsafeBufferPointer { bytes in
            var start = -1
            for index in 0...bytes.count {
                let byte: UInt8 = index < bytes.count ? bytes[index] : 0x20
                if byte == 0x20 || (0x09...0x0D).contains(byte) {
                    if start >= 0 {
                        ids.append(self.intern(UnsafeBufferPointer(rebasing: bytes[start..<index])))
                        start = -1
                    }
                } else if start < 0 {
                    start = index
                }
            }
        }
        return ids
    }

    private mutating func intern(_ token: UnsafeBufferPointer<UInt8>) -> Int32 {
        if self.spans.count * 2 >= self.table.count { self.grow() }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in token {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        let mask = self.table.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let id = self.table[slot]
            if id < 0 {
                let newID = Int32(self.spans.count)
                self.spans.append((self.storage.count, token.count))
                self.storage.append(contentsOf: token)
                self.table[slot] = newID
                return newID
            }
            let span = self.spans[Int(id)]
            if span.count == token.count {
                let equal = self.storage.withUnsafeBufferPointer { storage in
                    memcmp(storage.baseAddress! + span.start, token.baseAddress!, span.count) == 0
                }
                if equal { return id }
            }
            slot = (slot + 1) & mask
        }
    }

    private mutating func grow() {
        var table = [Int32](repeating: -1, count: self.table.count * 2)
        let mask = table.count - 1
        for (id, span) in self.spans.enumerated() {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in self.storage[span.start..<(span.start + span.count)] {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01B3
            }
            var slot = Int(truncatingIfNeeded: hash) & mask
            while table[slot] >= 0 { slot = (slot + 1) & mask }
            table[slot] = Int32(id)
        }
        self.table = table
    }
}
