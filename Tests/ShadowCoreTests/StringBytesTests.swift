import PropertyBased
import Testing

@testable import ShadowCore

@Suite struct StringBytesTests {
    static func isSpecial(_ byte: UInt8, nonASCII: Bool) -> Bool {
        byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || (nonASCII && byte >= 0x80)
    }

    @Test(arguments: [false, true])
    func everyByteValueIsJudgedAfterAnyPlainPrefix(nonASCII: Bool) {
        // Each byte value at each place in the word, after plain bytes and before bytes that
        // would start a borrow: the lowest flagged byte must be exactly the first special one.
        for place in 0..<8 {
            for value in 0...255 {
                for after in [0x00, 0x1F, 0x22, 0x5C, 0x7F, 0x80, 0xFF] {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: place)
                    bytes.append(UInt8(value))
                    while bytes.count < 8 { bytes.append(UInt8(after)) }
                    let word = bytes.withUnsafeBufferPointer { ASCIIDigits.word(at: $0.baseAddress!) }
                    let flagged = StringBytes.specialBytes(word, nonASCII: nonASCII)
                    let first = bytes.firstIndex { Self.isSpecial($0, nonASCII: nonASCII) }
                    #expect((flagged == 0 ? nil : flagged.trailingZeroBitCount / 8) == first, "\(bytes)")
                }
            }
        }
    }

    @Test func plainRunsMatchAByteAtATime() async {
        await propertyCheck(count: 3_000, input: Gen.int(in: 0...48), Gen.int(in: 0...3)) { length, form in
            var random = SystemRandomNumberGenerator()
            // Mostly plain text (UTF-8 too), now and then a special byte.
            let bytes = (0..<length).map { _ -> UInt8 in
                switch Int.random(in: 0..<(12 + form * 8), using: &random) {
                case 0: [0x22, 0x5C, 0x00, 0x1F, 0x0A].randomElement(using: &random)!
                case 1: UInt8.random(in: 0x80...0xFF, using: &random)
                default: UInt8.random(in: 0x20...0x7E, using: &random)
                }
            }
            let start = bytes.isEmpty ? 0 : Int.random(in: 0...bytes.count, using: &random)
            var expected = start
            while expected < bytes.count, !Self.isSpecial(bytes[expected], nonASCII: false) { expected += 1 }
            let run = bytes.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map { StringBytes.plainRunLength($0, from: start, to: buffer.count) } ?? 0
            }
            #expect(run == expected - start, "\(bytes) from \(start)")
        }
    }
}
