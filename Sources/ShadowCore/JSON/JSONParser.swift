/// A strict RFC 8259 JSON parser over UTF-8 bytes with a nesting limit.
///
/// Written here rather than taken from Foundation because scoring needs a bounded depth (a
/// 10,000-deep document must fail cleanly, not overflow the stack) and must reject NaN and
/// Infinity the same way on every platform.
public struct JSONParser: Sendable {
    /// Why a document could not be parsed.
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public let offset: Int
        public var description: String { "\(self.message) at byte \(self.offset)" }
    }

    public let maximumDepth: Int

    public init(maximumDepth: Int = 512) {
        self.maximumDepth = maximumDepth
    }

    /// Parses one JSON document; trailing non-space bytes are an error.
    public func parse(_ bytes: some Collection<UInt8>) throws(JSONParser.Error) -> JSONValue {
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { buffer throws(JSONParser.Error) -> JSONValue in
            var cursor = Cursor(bytes: buffer, maximumDepth: self.maximumDepth)
            cursor.skipWhitespace()
            let value = try cursor.parseValue(depth: 0)
            cursor.skipWhitespace()
            guard cursor.index == buffer.count else { throw cursor.error("unexpected data after the document") }
            return value
        }
    }

    /// Parses a document given as text.
    public func parse(_ text: String) throws(JSONParser.Error) -> JSONValue {
        try self.parse(Array(text.utf8))
    }
}

private struct Cursor {
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    func error(_ message: String) -> JSONParser.Error {
        JSONParser.Error(message: message, offset: self.index)
    }

    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString, value: JSONValue) throws(JSONParser.Error) -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.error("truncated literal") }
        for offset in 0..<count where self.bytes[self.index + offset] != literal.utf8Start[offset] {
            throw self.error("invalid literal")
        }
        self.index += count
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONParser.Error) -> JSONValue {
        guard depth <= self.maximumDepth else { throw self.error("nesting deeper than \(self.maximumDepth)") }
        guard self.index < self.bytes.count else { throw self.error("unexpected end of document") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"): return try self.parseObject(depth: depth)
        case UInt8(ascii: "["): return try self.parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"): return try self.expect("true", value: .bool(true))
        case UInt8(ascii: "f"): return try self.expect("false", value: .bool(false))
        case UInt8(ascii: "n"): return try self.expect("null", value: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try self.parseNumber()
        default: throw self.error("unexpected character")
        }
    }

    mutating func parseObject(depth: Int) throws(JSONParser.Error) -> JSONValue {
        self.index += 1
        var members: [(key: String, value: JSONValue)] = []
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            return .object(members)
        }
        while true {
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                throw self.error("expected a member name")
            }
            let key = try self.parseString()
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                throw self.error("expected ':'")
            }
            self.index += 1
            self.skipWhitespace()
            members.append((key, try self.parseValue(depth: depth + 1)))
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.error("unterminated object") }
            let byte = self.bytes[self.index]
            self.index += 1
            if byte == UInt8(ascii: "}") { return .object(members) }
            guard byte == UInt8(ascii: ",") else { throw self.error("expected ',' or '}'") }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParser.Error) -> JSONValue {
        self.index += 1
        var elements: [JSONValue] = []
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            return .array(elements)
        }
        while true {
            self.skipWhitespace()
            elements.append(try self.parseValue(depth: depth + 1))
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.error("unterminated array") }
            let byte = self.bytes[self.index]
            self.index += 1
            if byte == UInt8(ascii: "]") { return .array(elements) }
            guard byte == UInt8(ascii: ",") else { throw self.error("expected ',' or ']'") }
        }
    }

    mutating func parseNumber() throws(JSONParser.Error) -> JSONValue {
        let start = self.index
        let negative = self.bytes[self.index] == UInt8(ascii: "-")
        if negative { self.index += 1 }
        // The digits are gathered into an integer as they are checked: most numbers in model
        // answers (scores, tensors) have few enough of them for the fast path below.
        var mantissa: UInt64 = 0
        var exact = true
        let digitsStart = self.index
        self.gatherDigits(into: &mantissa, exact: &exact)
        guard self.index > digitsStart else { throw self.error("invalid number") }
        if self.bytes[digitsStart] == UInt8(ascii: "0"), self.index - digitsStart > 1 {
            throw self.error("leading zero in number")
        }
        var scale = 0
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ".") {
            self.index += 1
            let fractionStart = self.index
            self.gatherDigits(into: &mantissa, exact: &exact)
            guard self.index > fractionStart else { throw self.error("invalid fraction") }
            scale = self.index - fractionStart
        }
        var exponent = 0
        if self.index < self.bytes.count, self.bytes[self.index] | 0x20 == UInt8(ascii: "e") {
            self.index += 1
            var exponentNegative = false
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-") {
                exponentNegative = self.bytes[self.index] == UInt8(ascii: "-")
                self.index += 1
            }
            let exponentStart = self.index
            var magnitude: UInt64 = 0
            self.gatherDigits(into: &magnitude, exact: &exact)
            guard self.index > exponentStart else { throw self.error("invalid exponent") }
            exponent = magnitude > 1_000 ? 1_000 : Int(magnitude)
            if exponentNegative { exponent = -exponent }
        }
        // Clinger's fast path: an integer of at most 2^53 and a power of ten of at most 10^22 are
        // both exact doubles, so one IEEE multiplication or division rounds correctly, as
        // strtod would (`Double(String)` took most of the parse of a tensor answer).
        let power = exponent - scale
        if exact, mantissa <= 1 << 53, (-22...22).contains(power) {
            let magnitude = power < 0 ? Double(mantissa) / Self.powersOfTen[-power] : Double(mantissa) * Self.powersOfTen[power]
            return .number(negative ? -magnitude : magnitude)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw self.error("number out of range") }
        return .number(value)
    }

    /// 10^0 … 10^22, each exact as a double.
    static let powersOfTen: [Double] = (0...22).map { exponent in (0..<exponent).reduce(1.0) { value, _ in value * 10 } }

    /// Skips digits, appending them to `value` while it cannot overflow; `exact` becomes false
    /// when one did not fit.
    mutating func gatherDigits(into value: inout UInt64, exact: inout Bool) {
        // Eight at a time while the value stays below 10^11, so that eight more digits cannot
        // overflow it; the rest one by one. A run of one digit ("1.5") is read as one.
        guard let base = self.bytes.baseAddress else { return }
        while self.index + 8 <= self.bytes.count, value < 100_000_000_000, base[self.index + 1] &- 0x30 < 10 {
            let word = ASCIIDigits.word(at: base + self.index)
            let count = ASCIIDigits.leadingDigits(word)
            guard count > 0 else { return }
            value = value * ASCIIDigits.powers[count] + ASCIIDigits.value(word, count: count)
            self.index += count
            if count < 8 { return }
        }
        while self.index < self.bytes.count {
            let digit = self.bytes[self.index] &- UInt8(ascii: "0")
            guard digit < 10 else { return }
            if value <= 0x1999_9999_9999_9998 {
                value = value * 10 + UInt64(digit)
            } else {
                exact = false
            }
            self.index += 1
        }
    }

    mutating func parseString() throws(JSONParser.Error) -> String {
        self.index += 1
        let start = self.index
        // Fast path: no escapes. ASCII needs no validation (and skips the generic validating
        // initialiser, which costs a runtime metadata lookup per call).
        var ascii = true
        // Eight bytes at a time while none is a quote, a backslash, a control or non-ASCII byte
        // (SWAR: "has a zero byte" tests on the word), the common case for long text values.
        let base = self.bytes.baseAddress!
        while self.index + 8 <= self.bytes.count {
            if StringBytes.specialBytes(ASCIIDigits.word(at: base + self.index), nonASCII: true) != 0 { break }
            self.index += 8
        }
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: self.bytes[start..<self.index])
                self.index += 1
                if ascii { return String(decoding: slice, as: UTF8.self) }
                guard let text = String(validating: slice, as: UTF8.self) else { throw self.error("invalid UTF-8 in string") }
                return text
            }
            ascii = ascii && byte < 0x80
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw self.error("control character in string") }
            self.index += 1
        }
        var scalars = Array(UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]))
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            self.index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: scalars, as: UTF8.self) else { throw self.error("invalid UTF-8 in string") }
                return text
            case UInt8(ascii: "\\"):
                guard self.index < self.bytes.count else { throw self.error("unterminated escape") }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try self.parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard self.index + 1 < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                            self.bytes[self.index + 1] == UInt8(ascii: "u")
                        else { throw self.error("unpaired surrogate") }
                        self.index += 2
                        let low = try self.parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw self.error("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw self.error("invalid unicode escape") }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw self.error("invalid escape")
                }
            default:
                guard byte >= 0x20 else { throw self.error("control character in string") }
                scalars.append(byte)
            }
        }
        throw self.error("unterminated string")
    }

    mutating func parseHex4() throws(JSONParser.Error) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.error("truncated unicode escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            self.index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.error("invalid unicode escape")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}
