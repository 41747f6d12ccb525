import ShadowStore

#if canImport(Glibc)
import Glibc
#endif

/// The sidecar's two clocks, read in one place: the wall clock for what is recorded or shown
/// (timestamps, `Date` headers, coverage minutes), the monotonic one for what is timed (breaker
/// cool-downs, rate windows, systemd's `MONOTONIC_USEC`). Latencies on the event loop use
/// `NIODeadline`, which reads the same monotonic clock.
enum SidecarClock {
    /// Microseconds since the Unix epoch, as the store records them.
    static func wallMicros() -> Int64 {
        wallClockMicros()
    }

    /// `CLOCK_MONOTONIC` in nanoseconds: never steps back when the wall clock is set.
    static func monotonicNanos() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// `CLOCK_MONOTONIC` in microseconds, as systemd's `RELOADING=1` wants it in `MONOTONIC_USEC`.
    static func monotonicMicros() -> Int64 {
        Int64(self.monotonicNanos() / 1000)
    }
}
