import Foundation
import GRDB
import ShadowCore
import Testing

/// `JSONValidator` decides which bodies the recorder stores as TEXT without asking SQLite, so it
/// must never call valid what SQLite's `json_valid` rejects: checked here against the system
/// SQLite on hand-picked edge cases and on thousands of generated and mutated texts.
@Suite struct JSONValidatorTests {
    /// SQLite 3.42–3.44 let `json_valid` accept JSON5; elsewhere (Debian 12's 3.40, and 3.45+)
    /// it accepts RFC 8259 text, and the two must agree exactly.
    static func sqlite() throws -> (queue: DatabaseQueue, exact: Bool) {
        let queue = try DatabaseQueue()
        let version = try queue.read { try String.fetchOne($0, sql: "SELECT sqlite_version()") } ?? ""
        let parts = version.split(separator: ".").compactMap { Int($0) }
        let json5 = parts.count >= 2 && parts[0] == 3 && (42...44).contains(parts[1])
        return (queue, !json5)
    }

    static func sqliteSays(_ text: [UInt8], in db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT json_valid(CAST(? AS TEXT))", arguments: [Data(text)]) ?? false
    }

    @Test func edgeCasesAgreeWithSQLite() throws {
        let valid = [
            "0", "-0", "1.5e10", "-0.25E-3", "1E+2", "\"\"", "\"\\u00e9\\n\\\"\"", "true", " null ", "\t[\r\n]\n", "{}",
            #"{"a":[1,{"b":null}],"c":"é"}"#, "[[[[[]]]]]", #"{"":""}"#, "123456789012345678901234567890",
        ]
        let invalid = [
            "", " ", "01", "-", "1.", ".5", "1.e5", "1e", "+1", "[1,]", "{\"a\":1,}", "{a:1}", "[1 2]", "nul", "nullx", "truefalse",
            "\"a", "\"\u{01}\"", "\"\\x\"", "\"\\u12g4\"", "{\"a\"}", "{\"a\" 1}", "[", "]", "{} {}", "[1]x", "'a'", "NaN", "[1,,2]",
            "\u{0C}1", "1\u{0B}",
        ]
        let (queue, exact) = try Self.sqlite()
        try queue.read { db in
            for text in valid {
                #expect(JSONValidator.isValid(Array(text.utf8)), "\(text)")
                let theirs = try Self.sqliteSays(Array(text.utf8), in: db)
                #expect(theirs, "\(text)")
            }
            for text in invalid {
                #expect(!JSONValidator.isValid(Array(text.utf8)), "\(text)")
                let theirs = try Self.sqliteSays(Array(text.utf8), in: db)
                if exact { #expect(!theirs, "\(text)") }
            }
        }
        // Nothing may follow the value, not even a NUL (SQLite stops reading at one).
        #expect(!JSONValidator.isValid(Array("{}".utf8) + [0] + Array("x".utf8)))
        #expect(JSONValidator.isValid(Array(repeating: UInt8(ascii: "["), count: 1000) + Array(repeating: UInt8(ascii: "]"), count: 1000)))
        #expect(!JSONValidator.isValid(Array(repeating: UInt8(ascii: "["), count: 1001) + Array(repeating: UInt8(ascii: "]"), count: 1001)))
    }

    @Test func generatedAndMutatedTextsAgreeWithSQLite() throws {
        var random = SplitMix64(seed: 20_261_201)
        let (queue, exact) = try Self.sqlite()
        var (accepted, rejected) = (0, 0)
        try queue.read { db in
            for _ in 0..<3000 {
                let text = Array(Self.value(depth: 0, random: &random).utf8)
                #expect(JSONValidator.isValid(text), "\(String(decoding: text, as: UTF8.self))")
                // One to three edits with bytes that matter to JSON's grammar.
                var mutated = text
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    let alphabet = Array(#"{}[]":,.-+eE0123456789 tfnrul\"#.utf8) + [0x0A, 0x09, 0x01]
                    let byte = alphabet.randomElement(using: &random)!
                    let at = Int.random(in: 0...mutated.count, using: &random)
                    switch Int.random(in: 0..<3, using: &random) {
                    case 0: mutated.insert(byte, at: at)
                    case 1 where at < mutated.count: mutated.remove(at: at)
                    default: if at < mutated.count { mutated[at] = byte }
                    }
                }
                let ours = JSONValidator.isValid(mutated)
                let theirs = try Self.sqliteSays(mutated, in: db)
                let shown = String(decoding: mutated, as: UTF8.self)
                if ours { #expect(theirs, "valid to us, not to SQLite: \(shown)") }
                if exact { #expect(ours == theirs, "\(shown): ours \(ours), SQLite \(theirs)") }
                if theirs { accepted += 1 } else { rejected += 1 }
            }
        }
        // The mutations must produce both kinds, or the comparison proves little.
        #expect(accepted > 300 && rejected > 300, "accepted \(accepted), rejected \(rejected)")
    }

    /// A random JSON value, with random whitespace between tokens.
    static func value(depth: Int, random: inout SplitMix64) -> String {
        func space() -> String { ["", "", " ", "\n", "\t ", "\r\n"].randomElement(using: &random)! }
        let kind = depth > 4 ? Int.random(in: 0..<4, using: &random) : Int.random(in: 0..<7, using: &random)
        switch kind {
        case 6:
            // A tensor's data: numbers with bare commas (the validator's fast path), or spaced.
            let numbers = (0..<Int.random(in: 1...12, using: &random)).map { _ in
                ["0", "-0", "7", "-12.5", "3e8", "1.25E-7", "0.5", "-1"].randomElement(using: &random)!
            }
            return "[" + numbers.joined(separator: Bool.random(using: &random) ? "," : ", ") + "]"
        case 0:
            return ["0", "-0", "7", "-12.5", "3e8", "1.25E-7", "100000000000000000000"].randomElement(using: &random)!
        case 1:
            return [#""""#, #""cat""#, #""a\"b\\c\/\b\f\n\r\t""#, #""\u00E9\ud83d\ude00""#, "\"é😀\""].randomElement(using: &random)!
        case 2:
            return ["true", "false", "null"].randomElement(using: &random)!
        case 3:
            return "\"k\(Int.random(in: 0..<100, using: &random))\""
        case 4:
            let items = (0..<Int.random(in: 0...3, using: &random)).map { _ in space() + Self.value(depth: depth + 1, random: &random) + space() }
            return "[" + items.joined(separator: ",") + space() + "]"
        default:
            let members = (0..<Int.random(in: 0...3, using: &random)).map { index in
                space() + "\"m\(index)\"" + space() + ":" + space() + Self.value(depth: depth + 1, random: &random) + space()
            }
            return "{" + members.joined(separator: ",") + space() + "}"
        }
    }
}
