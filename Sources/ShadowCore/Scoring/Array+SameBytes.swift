#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Array where Element == UInt8 {
    /// Byte equality by `memcmp`: `==` on `[UInt8]` compares element by element, and the scoring
    /// thread compares every candidate answer with the baseline's (~6% of it for 1 KiB answers).
    public func hasSameBytes(as other: [UInt8]) -> Bool {
        guard self.count == other.count else { return false }
        return self.withUnsafeBytes { left in
            other.withUnsafeBytes { right in left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0 }
        }
    }
}
