/// Parsing of the human units used in config files and on the command line.
public enum Units {
    /// `250ms`, `2s`, `1.5s`, `1m`, `1h`, `500us`; a bare number is milliseconds.
    public static func parseDuration(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces()
        let suffixes: [(String, Double)] = [("us", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)) else { return nil }
            return Self.duration(seconds: value * scale)
        }
        return Double(trimmed).flatMap { Self.duration(seconds: $0 / 1000) }
    }

    /// nil for negative, infinite or NaN values and for ones beyond what `Duration` holds in
    /// nanoseconds (~292 years): `Int64(_:)` would trap on those (found by the config fuzzer).
    private static func duration(seconds: Double) -> Duration? {
        let nanoseconds = seconds * 1e9
        guard nanoseconds.isFinite, nanoseconds >= 0, nanoseconds < 9.2e18 else { return nil }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// `65536`, `64KiB`, `64KB`, `10MiB`, `1GiB` (KB and KiB both mean 1024).
    public static func parseByteCount(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let suffixes: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count).trimmingSpaces()), value >= 0, value.isFinite else { return nil }
            let bytes = value * Double(scale)
            return bytes < Double(Int.max) ? Int(bytes) : nil
        }
        return Int(trimmed).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// `x` with exactly `decimals` digits after the point (no Foundation in the core).
    public static func fixed(_ x: Double, decimals: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "n/a" : (x > 0 ? "∞" : "-∞") }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(x) * scale).rounded()
        guard scaled < 9e15 else { return "\(x)" }
        let whole = Int64(scaled)
        let sign = x < 0 && whole != 0 ? "-" : ""
        guard decimals > 0 else { return "\(sign)\(whole)" }
        let divisor = Int64(scale)
        let fraction = String(whole % divisor)
        return "\(sign)\(whole / divisor).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }

    /// A share as a percentage: `0.0512` → `5.12%`.
    public static func formatPercent(_ share: Double, decimals: Int = 2) -> String {
        "\(Self.fixed(share * 100, decimals: decimals))%"
    }

    /// Microseconds for people: `850µs`, `12.3ms`, `2.50s`.
    public static func formatMicros(_ micros: Double) -> String {
        let magnitude = abs(micros)
        if magnitude < 1_000 { return "\(Self.fixed(micros, decimals: 0))µs" }
        if magnitude < 1_000_000 { return "\(Self.fixed(micros / 1_000, decimals: magnitude < 10_000 ? 2 : 1))ms" }
        return "\(Self.fixed(micros / 1_000_000, decimals: 2))s"
    }

    /// A duration for people, as ``formatMicros(_:)``.
    public static func format(_ duration: Duration) -> String {
        Self.formatMicros(Double(duration.microseconds))
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension Duration {
    /// Whole microseconds, rounded toward zero.
    public var microseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
