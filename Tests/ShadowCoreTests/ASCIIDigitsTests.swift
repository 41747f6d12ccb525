import PropertyBased
import Testing

@testable import ShadowCore

@Suite struct ASCIIDigitsTests {
    /// The count and value as read one byte at a time.
    static func scalar(_ bytes: [UInt8], from start: Int) -> (count: Int, value: UInt64) {
        var at = start
        var value: UInt64 = 0
        while at < bytes.count, bytes[at] &- 0x30 < 10 {
            value = value &* 10 &+ UInt64(bytes[at] - 0x30)
            at += 1
        }
        return (at - start, value)
    }

    @Test func everyByteEndsARunWhereItShould() {
        // Each byte value after 0 to 7 digits, with every byte value after it too (the bytes
        // behind the first non-digit must not change the answer, carries included).
        for prefix in 0...7 {
            for stop in 0...255 where !(0x30...0x39).contains(stop) {
                for after in [0x00, 0x2F, 0x30, 0x39, 0x3A, 0xFA, 0xFF] {
                    var bytes = (0..<prefix).map { UInt8(0x31 + $0) }
                    bytes.append(UInt8(stop))
                    while bytes.count < 8 { bytes.append(UInt8(after)) }
                    let word = bytes.withUnsafeBufferPointer { ASCIIDigits.word(at: $0.baseAddress!) }
                    #expect(ASCIIDigits.leadingDigits(word) == prefix, "\(bytes)")
                }
            }
        }
    }

    @Test func runsAndValuesMatchAByteAtATime() async {
        await propertyCheck(count: 3_000, input: Gen.int(in: 0...40), Gen.int(in: 0...24), Gen.int(in: 0...3)) { length, digits, form in
            var random = SystemRandomNumberGenerator()
            // Random bytes (digits likelier), then a run of digits at a random place.
            var bytes = (0..<length).map { _ in
                form == 0 ? UInt8.random(in: 0...255, using: &random) : UInt8(0x30 + Int.random(in: 0...10, using: &random))
            }
            let start = bytes.isEmpty ? 0 : Int.random(in: 0...bytes.count, using: &random)
            bytes.insert(contentsOf: (0..<digits).map { _ in UInt8(0x30 + Int.random(in: 0...9, using: &random)) }, at: start)
            let expected = Self.scalar(bytes, from: start)
            let run = bytes.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map { ASCIIDigits.runLength($0, from: start, to: buffer.count) } ?? 0
            }
            #expect(run == expected.count, "\(bytes) from \(start)")
            if expected.count > 0, start + 8 <= bytes.count {
                let count = min(8, expected.count)
                let word = bytes.withUnsafeBufferPointer { ASCIIDigits.word(at: $0.baseAddress! + start) }
                #expect(ASCIIDigits.value(word, count: count) == Self.scalar(Array(bytes[start..<start + count]), from: 0).value)
            }
        }
    }
}
