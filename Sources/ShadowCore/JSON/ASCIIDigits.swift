/// Runs of ASCII digits read eight bytes at a time (SWAR): tensor answers are mostly numbers, and
/// a loop over one digit at a time was the largest share of both the JSON validator and the parser
/// on the recorder's scoring thread.
enum ASCIIDigits {
    /// The eight bytes at `pointer`, the first in the lowest byte.
    @inline(__always)
    static func word(at pointer: UnsafePointer<UInt8>) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(pointer).loadUnaligned(as: UInt64.self))
    }

    /// How many of `word`'s bytes, from the lowest, are ASCII digits before the first other byte
    /// (0 to 8).
    @inline(__always)
    static func leadingDigits(_ word: UInt64) -> Int {
        // A digit's high nibble is 3, and adding 6 leaves it 3 (0x39 + 6 = 0x3F; 0x3A + 6 =
        // 0x40). Only a byte of 0xFA or more carries into the next one, and that byte is itself
        // flagged, so every byte up to and including the first flagged one is judged right.
        let high = (word & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030
        let carried = ((word &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030
        return (high | carried).trailingZeroBitCount / 8
    }

    /// The number of ASCII digits in `base[from..<end]` from `from` on.
    @inline(__always)
    static func runLength(_ base: UnsafePointer<UInt8>, from start: Int, to end: Int) -> Int {
        // Most runs in model answers are short ("1.5", "0.7"): the first two bytes one by one,
        // then words.
        var at = start
        guard at < end, base[at] &- 0x30 < 10 else { return 0 }
        at += 1
        guard at < end, base[at] &- 0x30 < 10 else { return 1 }
        at += 1
        while at + 8 <= end {
            let count = Self.leadingDigits(Self.word(at: base + at))
            at += count
            if count < 8 { return at - start }
        }
        while at < end, base[at] &- 0x30 < 10 { at += 1 }
        return at - start
    }

    /// The value of the first `count` bytes of `word` (1 to 8, all digits, the first the most
    /// significant).
    @inline(__always)
    static func value(_ word: UInt64, count: Int) -> UInt64 {
        // Shifted up so the digits fill the top bytes (the bytes below read as leading zeros),
        // then pairs, fours and eights of digits combined by three multiplications.
        var value = (word << UInt64(64 - 8 * count)) & 0x0F0F_0F0F_0F0F_0F0F
        value = (value &* 2561) >> 8
        value = ((value & 0x00FF_00FF_00FF_00FF) &* 6_553_601) >> 16
        return ((value & 0x0000_FFFF_0000_FFFF) &* 42_949_672_960_001) >> 32
    }

    /// 10^0 … 10^8.
    static let powers: [UInt64] = [1, 10, 100, 1000, 10000, 100_000, 1_000_000, 10_000_000, 100_000_000]
}
