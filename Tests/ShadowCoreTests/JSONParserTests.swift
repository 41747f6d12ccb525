import Foundation
import PropertyBased
import Testing

@testable import ShadowCore

@Suite struct JSONParserTests {
    @Test(arguments: [
        #"{"a":[1,2.5,-3e2,true,false,null,"x"]}"#,
        #"[]"#, #"{}"#, #""\u00e9\ud83d\ude00\n""#, #"  0  "#, #"{"nested":{"deep":[{"k":"v"}]}}"#,
    ])
    func validDocumentsAgreeWithFoundation(text: String) throws {
        // Checked against an independent reader (Foundation's JSONSerialization), not against
        // the parser itself: what it parsed, and what it serializes back.
        let value = try JSONParser().parse(text)
        let reference = Self.value(try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]))
        #expect(value == reference)
        let reparsed = Self.value(try JSONSerialization.jsonObject(with: Data(value.serialized.utf8), options: [.fragmentsAllowed]))
        #expect(reparsed == reference, "\(value.serialized)")
    }

    /// Foundation's JSON objects as the parser's values (booleans arrive as `__NSCFBoolean`).
    static func value(_ object: Any) -> JSONValue {
        switch object {
        case is NSNull: return .null
        case let string as String: return .string(string)
        case let number as NSNumber:
            if String(describing: type(of: number)).contains("Boolean") { return .bool(number.boolValue) }
            return .number(number.doubleValue)
        case let array as [Any]: return .array(array.map(Self.value))
        case let object as [String: Any]: return .object(object.map { ($0.key, Self.value($0.value)) })
        default: return .string("unexpected \(type(of: object))")
        }
    }

    @Test func stringsAreEscapedExactly() throws {
        let value = JSONValue.string("a\"b\\c\nd\re\tf\u{01}g\u{1F}é😀 end")
        #expect(value.serialized == #""a\"b\\c\nd\re\tf\u0001g\u001fé😀 end""#)
        #expect(JSONValue.object([("k\"", .string(""))]).serialized == #"{"k\"":""}"#)
        #expect(try JSONParser().parse(value.serialized) == value)
    }

    /// Integers print digit by digit without a fraction, everything else in Swift's shortest
    /// round-trip form, and what JSON cannot hold as null.
    @Test func numbersAreWrittenExactly() {
        let cases: [(Double, String)] = [
            (0, "0"), (-0.0, "0"), (7, "7"), (-7, "-7"), (10, "10"), (1_000_000, "1000000"), (-120_034, "-120034"),
            (999_999_999_999_999, "999999999999999"), (1e15, "1000000000000000.0"), (0.5, "0.5"), (-2.25, "-2.25"), (0.1, "0.1"),
            (.nan, "null"), (.infinity, "null"), (-.infinity, "null"),
        ]
        for (number, text) in cases {
            #expect(JSONValue.number(number).serialized == text, "\(number)")
            #expect(JSONValue.format(number) == text, "\(number)")
        }
        #expect(JSONValue.array([.number(1), .number(-1), .bool(true), .null]).serialized == "[1,-1,true,null]")
    }

    /// Numbers parse to exactly the double strtod gives (`Double(String)`), bit for bit, on the
    /// fast path (up to 2^53 and 10^±22) and past it: short and long mantissas, leading zeros in
    /// fractions, exponents of both signs, negative zero, the edges of the fast path.
    @Test func numbersParseAsStrtodParsesThem() async throws {
        let edges = [
            "0", "-0", "-0.0", "0.1", "0.3", "1e22", "1e23", "9007199254740992", "9007199254740993", "-9007199254740993",
            "1.7976931348623157e308", "2.2250738585072014e-308", "4.9e-324", "0.0000000000000000000001", "123456789012345678901234",
            "1E+2", "1e-22", "1e-23", "0.000001", "3.141592653589793", "12345678901234567890", "18446744073709551615",
        ]
        for text in edges {
            guard case .number(let parsed)? = try? JSONParser().parse(text) else {
                Issue.record("\(text) did not parse")
                continue
            }
            #expect(parsed.bitPattern == Double(text)!.bitPattern, "\(text): \(parsed) vs \(Double(text)!)")
        }
        await propertyCheck(
            count: 2_000,
            input: Gen.int(in: 0...25),
            Gen.int(in: 0...25),
            Gen.int(in: -40...40),
            Gen.int(in: 0...3)
        ) { integerDigits, fractionDigits, exponent, form in
            var random = SystemRandomNumberGenerator()
            func digits(_ count: Int) -> String { String((0..<count).map { _ in Character(String(Int.random(in: 0...9, using: &random))) }) }
            var integer = digits(max(1, integerDigits))
            if integer.count > 1, integer.first == "0" { integer = "1" + integer.dropFirst() }
            var text = (form & 1 == 1 ? "-" : "") + integer
            if fractionDigits > 0 { text += "." + digits(fractionDigits) }
            if form & 2 == 2 { text += "e\(exponent)" }
            guard case .number(let parsed)? = try? JSONParser().parse(text) else {
                Issue.record("\(text) did not parse")
                return
            }
            #expect(parsed.bitPattern == Double(text)!.bitPattern, "\(text): \(parsed) vs \(Double(text)!)")
            // Inside a document, with bytes after it: digits are read eight at a time there
            // (a lone number is too short for a word).
            guard case .array(let elements)? = try? JSONParser().parse("[\(text),12345678,\(text)]"),
                elements.count == 3, case .number(let first) = elements[0], case .number(let last) = elements[2]
            else {
                Issue.record("[\(text),…] did not parse")
                return
            }
            #expect(first.bitPattern == Double(text)!.bitPattern, "[\(text),…]: \(first) vs \(Double(text)!)")
            #expect(last.bitPattern == Double(text)!.bitPattern)
        }
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "NaN", "Infinity", "-Infinity", "01", "1.", "\"unterminated", "[1] 2",
        "{\"a\":1,}", "\"\u{01}\"", "\"\\x\"", "\"\\ud800\"", "1e999", "tru", "nul",
    ])
    func invalidDocumentsAreRejected(text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser().parse(text) }
    }

    @Test func deepNestingFailsCleanly() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParser.Error.self) { try JSONParser(maximumDepth: 256).parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: Never.self) { try JSONParser(maximumDepth: 256).parse(ok) }
    }

    @Test func objectEqualityIgnoresKeyOrder() throws {
        #expect(try JSONParser().parse(#"{"a":1,"b":[1,2]}"#) == JSONParser().parse(#"{"b":[1,2],"a":1}"#))
        #expect(try JSONParser().parse(#"{"a":1}"#) != JSONParser().parse(#"{"a":1,"b":2}"#))
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: JSONParser.Error.self) { try JSONParser().parse([0x22, 0xFF, 0xFE, 0x22]) }
    }
}
