import NIOCore
import NIOPosix
import Synchronization

/// Replays requests against a server over `concurrency` keep-alive connections.
public struct Replayer: Sendable {
    public let host: String
    public let port: Int
    public let requests: [ReplayRequest]
    public let concurrency: Int

    public init(host: String = "127.0.0.1", port: Int, requests: [ReplayRequest], concurrency: Int) {
        self.host = host
        self.port = port
        self.requests = requests
        self.concurrency = max(1, concurrency)
    }

    /// Sends every request once; a request that fails (connection refused or closed mid-response)
    /// is counted in `failures` and the connection replaced for the next one.
    public func run() async throws -> ReplayOutcome {
        let next = NextIndex()
        return try await withThrowingTaskGroup(of: ReplayOutcome.self) { group in
            for _ in 0..<self.concurrency {
                group.addTask {
                    var outcome = ReplayOutcome()
                    var client: HTTPTestClient?
                    while true {
                        let index = next.take()
                        guard index < self.requests.count else { break }
                        let request = self.requests[index]
                        do {
                            // (Re)connect only when there is a request to send: the server may
                            // close a connection after the last response (shutdown, Connection: close).
                            if client == nil || client?.isActive == false {
                                await client?.close()
                                client = try await HTTPTestClient.connect(host: self.host, port: self.port)
                            }
                            guard let client else { continue }
                            let response = try await client.send(
                                method: request.httpMethod,
                                path: request.path,
                                headers: request.headers.map { ($0.key, $0.value) },
                                body: request.body
                            )
                            outcome.completed += 1
                            outcome.statusCounts[response.status, default: 0] += 1
                            outcome.latencies.append(response.latency)
                        } catch {
                            outcome.failures += 1
                            await client?.close()
                            client = nil
                        }
                    }
                    await client?.close()
                    return outcome
                }
            }
            var total = ReplayOutcome()
            for try await part in group {
                total.completed += part.completed
                total.failures += part.failures
                total.latencies += part.latencies
                for (status, count) in part.statusCounts { total.statusCounts[status, default: 0] += count }
            }
            return total
        }
    }
}

/// What a replay saw from the client side.
public struct ReplayOutcome: Sendable {
    public var completed = 0
    public var failures = 0
    public var statusCounts: [Int: Int] = [:]
    public var latencies: [Duration] = []

    public init() {}
}

private final class NextIndex: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { self.value.add(1, ordering: .relaxed).oldValue }
}
