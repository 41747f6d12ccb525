/// Whether bytes are one JSON text as RFC 8259 defines it, without building a value: the
/// recorder's way to tell which bodies can be stored as TEXT, off the writer's thread.
///
/// It is deliberately no more lenient than SQLite's `json_valid` (Debian 12's 3.40 and later,
/// which accept RFC 8259 text, some also JSON5): only the four RFC whitespace bytes, no leading
/// zeros, control bytes escaped in strings, nesting at most ``maximumDepth`` (SQLite allows
/// 2,000), and nothing after the value, not even a NUL. Where it says `false` the writer still
/// asks SQLite, so it decides only the common case, never a different answer.
public enum JSONValidator {
    /// Deeper texts are reported invalid (and left to SQLite to judge).
    public static let maximumDepth = 1000

    public static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { Self.isValid($0) }
    }

    public static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var scanner = Scanner(bytes: bytes)
        return scanner.document()
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0
        /// Open containers, innermost last: true for an object.
        var open: [Bool] = []

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        var current: UInt8? { self.at < self.bytes.count ? self.bytes[self.at] : nil }

        mutating func skipSpace() {
            while let byte = self.current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { self.at += 1 }
        }

        /// A value, then either the end or a separator, iteratively (no recursion to overflow).
        mutating func document() -> Bool {
            self.skipSpace()
            while true {
                // Expecting a value.
                guard let byte = self.current else { return false }
                switch byte {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    guard self.open.count < JSONValidator.maximumDepth else { return false }
                    let isObject = byte == UInt8(ascii: "{")
                    self.at += 1
                    self.skipSpace()
                    if self.current == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                        self.at += 1
                    } else {
                        self.open.append(isObject)
                        if isObject, !self.key() { return false }
                        continue
                    }
                case UInt8(ascii: "\""):
                    guard self.string() else { return false }
                case UInt8(ascii: "t"):
                    guard self.literal("true") else { return false }
                case UInt8(ascii: "f"):
                    guard self.literal("false") else { return false }
                case UInt8(ascii: "n"):
                    guard self.literal("null") else { return false }
                default:
                    guard self.number() else { return false }
                    // Tensor data: in an array, the numbers after this one, scanned in a loop of
                    // their own (most of a tensor body's bytes are such runs).
                    if self.open.last == false, !self.numberRun() { return false }
                }
                // After a value: close containers, or a comma and the next member.
                while true {
                    self.skipSpace()
                    guard let isObject = self.open.last else {
                        return self.at == self.bytes.count
                    }
                    guard let byte = self.current else { return false }
                    if byte == UInt8(ascii: ",") {
                        self.at += 1
                        self.skipSpace()
                        if isObject, !self.key() { return false }
                        break
                    }
                    guard byte == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return false }
                    self.at += 1
                    self.open.removeLast()
                }
            }
        }

        /// A member name and its colon; leaves the scanner before the member's value.
        mutating func key() -> Bool {
            guard self.current == UInt8(ascii: "\""), self.string() else { return false }
            self.skipSpace()
            guard self.current == UInt8(ascii: ":") else { return false }
            self.at += 1
            self.skipSpace()
            return true
        }

        /// From the opening quote past the closing one. The hot loop of a body's validation, so
        /// it indexes the buffer directly, and skips plain runs eight bytes at a time.
        mutating func string() -> Bool {
            guard let base = self.bytes.baseAddress else { return false }
            let end = self.bytes.count
            var at = self.at + 1
            while at < end {
                at += StringBytes.plainRunLength(base, from: at, to: end)
                guard at < end else { return false }
                let byte = base[at]
                at += 1
                if byte == UInt8(ascii: "\"") {
                    self.at = at
                    return true
                }
                if byte < 0x20 { return false }
                guard byte == UInt8(ascii: "\\") else { continue }
                guard at < end else { return false }
                let escaped = base[at]
                at += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                    UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    guard end - at >= 4 else { return false }
                    for offset in 0..<4 where !Self.isHex(base[at + offset]) { return false }
                    at += 4
                default:
                    return false
                }
            }
            return false
        }

        static func isHex(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. Tensor bodies are mostly
        /// numbers, so like ``string()`` it indexes the buffer directly.
        mutating func number() -> Bool {
            guard let base = self.bytes.baseAddress else { return false }
            let end = self.bytes.count
            var at = self.at
            /// One or more digits from `at`.
            func digits(_ at: inout Int) -> Bool {
                let count = ASCIIDigits.runLength(base, from: at, to: end)
                at += count
                return count > 0
            }
            if at < end, base[at] == UInt8(ascii: "-") { at += 1 }
            if at < end, base[at] == UInt8(ascii: "0") {
                at += 1
            } else if !digits(&at) {
                return false
            }
            if at < end, base[at] == UInt8(ascii: ".") {
                at += 1
                guard digits(&at) else { return false }
            }
            if at < end, base[at] | 0x20 == UInt8(ascii: "e") {
                at += 1
                if at < end, base[at] == UInt8(ascii: "+") || base[at] == UInt8(ascii: "-") { at += 1 }
                guard digits(&at) else { return false }
            }
            self.at = at
            return true
        }

        /// After a number in an array: the `,number` pairs that follow with nothing between
        /// them, as the general loop would read them. Stops before anything else; false at a
        /// malformed number.
        mutating func numberRun() -> Bool {
            guard let base = self.bytes.baseAddress else { return true }
            let end = self.bytes.count
            while self.at + 1 < end, base[self.at] == UInt8(ascii: ","),
                base[self.at + 1] &- 0x30 < 10 || base[self.at + 1] == UInt8(ascii: "-")
            {
                self.at += 1
                guard self.number() else { return false }
            }
            return true
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard self.bytes.count - self.at >= count else { return false }
            for offset in 0..<count where self.bytes[self.at + offset] != word.utf8Start[offset] { return false }
            self.at += count
            return true
        }
    }
}
