#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock microseconds since the Unix epoch (record timestamps, persisted states; latencies
/// use the monotonic clock).
public func wallClockMicros() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
}
