import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowStore
import Synchronization

import class GRDB.DatabaseQueue
import class GRDB.Row

#if canImport(Glibc)
import Glibc
#endif

/// A running sidecar on 127.0.0.1 with a fresh database, for one test.
final class SidecarHarness: Sendable {
    let sidecar: Sidecar
    let port: Int
    let databasePath: String
    let group: ServiceGroup
    private let stopped: Mutex<Bool> = Mutex(false)
    private let finished: AsyncStream<Void>

    init(sidecar: Sidecar, port: Int, databasePath: String, group: ServiceGroup, finished: AsyncStream<Void>) {
        self.sidecar = sidecar
        self.port = port
        self.databasePath = databasePath
        self.group = group
        self.finished = finished
    }

    /// Shadow copies queued or in flight right now.
    var shadowPending: Int { self.sidecar.statistics.snapshot.shadowPending }

    func client() async throws -> HTTPTestClient {
        try await HTTPTestClient.connect(port: self.port)
    }

    /// Graceful shutdown: drains requests and shadow work, flushes the writer. Idempotent.
    func stop() async {
        let first = self.stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        await self.group.triggerGracefulShutdown()
        for await _ in self.finished { break }
    }

    /// Opens the database for checks; call after ``stop()``.
    func openStore() throws -> PairStore {
        try PairStore(path: self.databasePath)
    }
}

/// Keeps the sidecar's log lines (level and message) for a test to read.
struct LogRecorder: LogHandler, Sendable {
    private final class Lines: Sendable {
        let value = Mutex<[(level: Logger.Level, message: String)]>([])
    }
    private let lines = Lines()
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .notice

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        self.lines.value.withLock { $0.append((event.level, event.message.description)) }
    }

    /// The messages logged so far containing `text`.
    func messages(containing text: String) -> [String] {
        self.lines.value.withLock { $0.map(\.message).filter { $0.contains(text) } }
    }
}

/// A fixture that answers with `responder`, or a port where nothing listens (`nil`).
enum Upstream {
    case responder(FixtureServer.Responder)
    case refusing
    /// Something the test started itself (a ``FaultyLink`` in front of a fixture).
    case port(Int)
    /// An HTTPS fixture with this server context.
    case tls(NIOSSLContext, FixtureServer.Responder)
    /// An h2c fixture (a gRPC server); the route's URL must say `h2c://` (``useHTTP2(_:)``).
    case h2c(FixtureServer.Responder)

    func start() async throws -> (port: Int, server: FixtureServer?, reserved: ReservedPort?) {
        switch self {
        case .port(let port):
            return (port, nil, nil)
        case .responder(let responder):
            let server = try await FixtureServer.start(responder: responder)
            return (server.port, server, nil)
        case .tls(let context, let responder):
            let server = try await FixtureServer.start(tls: context, responder: responder)
            return (server.port, server, nil)
        case .h2c(let responder):
            let server = try await FixtureServer.start(http2: true, responder: responder)
            return (server.port, server, nil)
        case .refusing:
            let reserved = try ReservedPort()
            return (reserved.port, nil, reserved)
        }
    }
}

/// A loopback port bound but never listening: connections to it are refused, and no other test
/// can take it over while this value lives (a closed port could be reused by a parallel test).
final class ReservedPort: Sendable {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw FixtureError("cannot reserve a port") }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(self.descriptor) }
}

/// Starts the upstreams and a sidecar in front of them, runs `body`, then shuts everything down.
func withSidecar(
    baseline: Upstream,
    candidates: [(name: String, upstream: Upstream)] = [],
    configure: (inout Configuration) -> Void = { _ in },
    log: LogRecorder? = nil,
    environment: [String: String] = [:],
    _ body: (SidecarHarness, _ baseline: FixtureServer?, _ candidates: [FixtureServer?]) async throws -> Void
) async throws {
    let directory = NSTemporaryDirectory() + "shadowd-proxy-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (baselinePort, baselineServer, baselineReserved) = try await baseline.start()
    var reserved: [ReservedPort] = baselineReserved.map { [$0] } ?? []
    var candidateServers: [FixtureServer?] = []
    var candidateConfigurations: [CandidateConfiguration] = []
    for (name, upstream) in candidates {
        let (port, server, reservedPort) = try await upstream.start()
        candidateServers.append(server)
        if let reservedPort { reserved.append(reservedPort) }
        // Generous timeouts: a loaded CI machine (every suite at once on two cores) has stalled a
        // test for over 5 s, and a timeout there is a wrong outcome. Tests about timeouts set their own.
        candidateConfigurations.append(
            CandidateConfiguration(
                name: name,
                url: UpstreamURL(host: "127.0.0.1", port: port),
                version: "\(name)-v",
                timeout: .seconds(30),
                // A full parallel run loads both cores: a connect (through a test proxy, with a
                // TLS handshake) can take seconds. Tests about connect timeouts set their own.
                connectTimeout: .seconds(10)
            )
        )
    }
    var configuration = Configuration(
        server: ServerConfiguration(listen: HostPort(host: "127.0.0.1", port: 0), drainTimeout: .seconds(5)),
        admin: AdminConfiguration(listen: HostPort(host: "127.0.0.1", port: 0)),
        storage: StorageConfiguration(path: directory + "/shadow.sqlite", flushInterval: .milliseconds(10)),
        routes: [
            RouteConfiguration(
                name: "models",
                prefix: "/",
                baseline: BaselineConfiguration(
                    url: UpstreamURL(host: "127.0.0.1", port: baselinePort),
                    version: "base-v",
                    timeout: .seconds(30),
                    connectTimeout: .seconds(10)
                ),
                candidates: candidateConfigurations
            )
        ],
        revision: "test"
    )
    configure(&configuration)
    var logger = log.map { recorder in Logger(label: "test") { _ in recorder } } ?? Logger(label: "test")
    logger.logLevel = log == nil ? .warning : .notice
    let sidecar = try await Sidecar(configuration: configuration, logger: logger, environment: environment)
    let group = ServiceGroup(services: sidecar.services, logger: logger)
    let (finished, signal) = AsyncStream<Void>.makeStream()
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask {
            defer { signal.yield() }
            try await group.run()
        }
        guard let port = await sidecar.proxy.address.port() else { throw FixtureError("sidecar did not bind") }
        let harness = SidecarHarness(sidecar: sidecar, port: port, databasePath: configuration.storage.path, group: group, finished: finished)
        do {
            try await body(harness, baselineServer, candidateServers)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
        try await tasks.waitForAll()
    }
    try await sidecar.shutdown()
    try await baselineServer?.stop()
    for server in candidateServers { try await server?.stop() }
    withExtendedLifetime(reserved) {}
}

/// Sends raw bytes on a fresh TCP connection and reads until the server closes it (or `timeout`).
/// Returns what the server sent and whether it closed the connection.
func rawExchange(port: Int, _ request: [UInt8], timeout: Duration = .seconds(30)) async -> (response: String, closed: Bool) {
    await offPool {
        guard let connection = try? RawConnection(port: port, timeout: timeout) else { return ("connect failed", false) }
        connection.send(request)
        return connection.blockingReceiveUntilClosed()
    }
}

/// Runs a blocking call (a socket read with a timeout) on its own thread: on the test pool's
/// two threads, two tests blocked in reads would stall every other test's awaits for seconds.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

/// A client TCP connection driven byte by byte: for uploads sent in pieces and clients that
/// leave halfway.
final class RawConnection {
    let descriptor: Int32
    private var open = true

    /// `timeout` bounds each receive: a test that waits for the server to close must not take a
    /// busy machine's slowness (a full parallel run) for a connection left open.
    init(port: Int, timeout: Duration = .seconds(30)) throws {
        self.descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(self.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(self.descriptor)
            throw FixtureError("cannot connect to port \(port)")
        }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { self.hangUp() }

    /// Closes the connection (a client leaving).
    func hangUp() {
        guard self.open else { return }
        self.open = false
        close(self.descriptor)
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func send(_ text: String) { self.send(Array(text.utf8)) }

    /// Sends and says whether all of it went (false once the peer has closed).
    func sendChecked(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Reads whatever arrives next (at most `limit` bytes); empty when the peer closed.
    func receiveSome(limit: Int = 4096) async -> [UInt8] {
        let box = UncheckedBox(self)
        return await offPool { box.value.blockingReceiveSome(limit: limit) }
    }

    /// Reads until the peer closes (or the receive timeout); says whether it closed.
    func receiveUntilClosed() async -> (response: String, closed: Bool) {
        let box = UncheckedBox(self)
        return await offPool { box.value.blockingReceiveUntilClosed() }
    }

    private func blockingReceiveSome(limit: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: limit)
        let count = recv(self.descriptor, &buffer, limit, 0)
        return count > 0 ? Array(buffer[0..<count]) : []
    }

    fileprivate func blockingReceiveUntilClosed() -> (response: String, closed: Bool) {
        let (bytes, closed) = self.blockingReceiveBytesUntilClosed()
        return (String(decoding: bytes, as: UTF8.self), closed)
    }

    /// As ``receiveUntilClosed()``, the bytes as they came (binary protocols).
    func receiveBytesUntilClosed() async -> (bytes: [UInt8], closed: Bool) {
        let box = UncheckedBox(self)
        return await offPool { box.value.blockingReceiveBytesUntilClosed() }
    }

    fileprivate func blockingReceiveBytesUntilClosed() -> (bytes: [UInt8], closed: Bool) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(self.descriptor, &buffer, buffer.count, 0)
            if count == 0 { return (received, true) }
            if count < 0 { return (received, errno == ECONNRESET) }
            received.append(contentsOf: buffer[0..<count])
        }
    }
}

/// A client sending a byte at a time on its own thread (so blocking sends never hold a thread of
/// the test pool) until `bytes` are out or ``Dribbler/stop()``.
final class Dribbler: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let sent = Atomic<Int>(0)
    private let finished = DispatchSemaphore(value: 0)

    fileprivate init(_ connection: RawConnection, every interval: Duration, bytes: Int, piece: @escaping @Sendable (Int) -> [UInt8]) {
        let box = UncheckedBox(connection)
        Thread.detachNewThread { [self] in
            for index in 0..<bytes where !self.stopped.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: Double(interval.components.attoseconds) / 1e18 + Double(interval.components.seconds))
                guard !self.stopped.load(ordering: .relaxed), box.value.sendChecked(piece(index)) else { break }
                self.sent.add(1, ordering: .relaxed)
            }
            self.finished.signal()
        }
    }

    /// Stops and returns how many pieces went out.
    func stop() -> Int {
        self.stopped.store(true, ordering: .relaxed)
        self.finished.wait()
        return self.sent.load(ordering: .relaxed)
    }
}

/// Starts a ``Dribbler`` (one byte `"a"` per piece unless `piece` says otherwise).
func dribble(
    _ connection: RawConnection,
    every interval: Duration,
    bytes: Int,
    piece: @escaping @Sendable (Int) -> [UInt8] = { _ in [UInt8(ascii: "a")] }
) -> Dribbler {
    Dribbler(connection, every: interval, bytes: bytes, piece: piece)
}

/// Hands a non-Sendable value to one other thread that alone uses it meanwhile.
private final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Polls the database (every 10 ms, as a second reader beside the running writer) until `sql`
/// returns at least `count` rows, and returns them; throws when they did not come in `timeout`.
func waitForRows(_ queue: DatabaseQueue, count: Int, sql: String, within timeout: Duration = .seconds(10)) async throws -> [Row] {
    let deadline = ContinuousClock.now + timeout
    while true {
        let rows = try queue.read { try Row.fetchAll($0, sql: sql) }
        if rows.count >= count { return rows }
        guard ContinuousClock.now < deadline else { throw FixtureError("\(rows.count) of \(count) rows for \(sql) within \(timeout)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// The first row of ``waitForRows(_:count:sql:within:)``.
func waitForRow(_ queue: DatabaseQueue, sql: String, within timeout: Duration = .seconds(10)) async throws -> Row {
    try await waitForRows(queue, count: 1, sql: sql, within: timeout)[0]
}

/// Deterministic pseudo-random bytes.
func randomBytes(_ count: Int, seed: UInt64 = 42) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}
