/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// For tests that wait on a condition (a count, a state) instead of sleeping a fixed time.
public func eventually(within timeout: Duration = .seconds(15), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(10))
    }
    return true
}
