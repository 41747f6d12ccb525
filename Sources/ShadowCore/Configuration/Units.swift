/// Parsing of the human units used in config files and on the command line.
public enum Units {
    /// `250ms`, `2s`, `1.5s`, `1m`, `1h`, `500us`; a bare number is milliseconds.
    public static func parseDuration(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces()
        let suffixes: [(String, Double)] = [("us", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
            return .nanoseconds(Int64(value * scale * 1e9))
        }
        guard let milliseconds = Double(trimmed), milliseconds.isFinite, milliseconds >= 0 else { return nil }
        return .nanoseconds(Int64(milliseconds * 1e6))
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
