/// Hash functions whose output is pinned across processes, machines and releases.
///
/// Swift's `Hasher` is seeded per process, so anything persisted or compared across restarts
/// (config revisions, sampling decisions) uses these instead.
public enum StableHash {
    /// 64-bit FNV-1a.
    public static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// 64-bit FNV-1a of the UTF-8 text, as 16 lowercase hex digits.
    public static func fnv1a64Hex(_ text: String) -> String {
        let hex = String(self.fnv1a64(text.utf8), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
