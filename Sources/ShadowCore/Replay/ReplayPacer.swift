/// When each replayed request is due, from its recorded arrival time: as fast as the
/// concurrency allows, at a flat rate, or at the recorded pace scaled (`--speed 2x` keeps the
/// production traffic's shape, twice as fast). Pure: times in, times out.
public struct ReplayPacer: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        case unpaced
        /// Requests per second, evenly spaced.
        case rate(Double)
        /// The recorded inter-arrival times divided by this factor.
        case speed(Double)
    }

    public let mode: Mode
    private var firstRecorded: Int64?
    private var sent = 0

    public init(_ mode: Mode) {
        self.mode = mode
    }

    /// Microseconds after the replay's start at which the next request is due (0: at once).
    /// - Parameter recordedMicros: when the request originally arrived.
    public mutating func due(recordedMicros: Int64) -> Int64 {
        defer { self.sent += 1 }
        switch self.mode {
        case .unpaced:
            return 0
        case .rate(let perSecond):
            return Int64((Double(self.sent) / perSecond * 1_000_000).rounded())
        case .speed(let factor):
            let first = self.firstRecorded ?? recordedMicros
            self.firstRecorded = first
            return Int64((Double(max(0, recordedMicros - first)) / factor).rounded())
        }
    }

    /// Parses `2x`, `0.5x` (a speed) or `100/s` (a rate).
    public static func parse(speed: String?, rate: String?) -> Mode? {
        if let speed {
            guard speed.hasSuffix("x"), let factor = Double(speed.dropLast()), factor > 0, factor.isFinite else { return nil }
            return .speed(factor)
        }
        if let rate {
            let number = rate.hasSuffix("/s") ? String(rate.dropLast(2)) : rate
            guard let perSecond = Double(number), perSecond > 0, perSecond.isFinite else { return nil }
            return .rate(perSecond)
        }
        return .unpaced
    }
}
