/// Which requests fall in a route's shadow sample.
///
/// With a sampling key (a user id, say) the decision is a pure function of the key and the
/// route's salt, so the same users are in or out on every host and after every restart, and a
/// different salt gives an independent sample. The hash is pinned here (FNV-1a 64 over
/// `salt`, a 0x1F separator and the key, then the MurmurHash3 64-bit finaliser) and must never
/// change: test vectors in the tests hold it.
public enum Sampler {
    /// The key's position in [0, 1): a request is sampled when it is below the share.
    public static func position(key: some Sequence<UInt8>, salt: String) -> Double {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in salt.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= 0x1F
        hash &*= 0x0000_0100_0000_01B3
        for byte in key {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return Double(hash >> 11) * 0x1.0p-53
    }

    /// Whether a keyed request is in a `percent` (0...100) sample.
    public static func admits(key: some Sequence<UInt8>, salt: String, percent: Double) -> Bool {
        percent >= 100 || Self.position(key: key, salt: salt) * 100 < percent
    }
}
