import NIOCore
import NIOHTTP1
import NIOPosix
import ShadowCore

/// Keep-alive connections to one upstream from one event loop.
///
/// Touched only on its loop (no locks, no futures on the reuse path). Idle connections are reused
/// last-in first-out so the warmest socket goes first; ones idle longer than `maxIdleTime` are
/// closed rather than reused, which keeps clear of upstream keep-alive timeouts (a request sent on
/// a connection the server is closing would fail, and inference POSTs are never retried).
final class UpstreamPool {
    let loop: any EventLoop
    let target: UpstreamURL
    private let address: SocketAddress
    private let maxIdle: Int
    private let maxIdleTime: TimeAmount
    private var idle: [UpstreamConnection] = []
    private var all: [ObjectIdentifier: UpstreamConnection] = [:]
    /// After a refused connect, calls within this window fail as `refused` without a new
    /// attempt (nil: always try, as for the baseline, whose recovery must be seen at once).
    private let refusalBackoff: TimeAmount?
    private var refusedUntil: NIODeadline?

    /// How long a candidate that refused a connection is not asked again: a refusing candidate
    /// then costs a queued failure per copy instead of a connect system call (measured: −14%
    /// req/s for the client path without it).
    static let candidateRefusalBackoff = TimeAmount.milliseconds(100)

    init(
        loop: any EventLoop,
        target: UpstreamURL,
        address: SocketAddress,
        maxIdle: Int,
        maxIdleTime: TimeAmount = .seconds(4),
        refusalBackoff: TimeAmount? = nil
    ) {
        self.loop = loop
        self.target = target
        self.address = address
        self.maxIdle = maxIdle
        self.maxIdleTime = maxIdleTime
        self.refusalBackoff = refusalBackoff
    }

    /// Runs `call` on an idle connection, or on a new one once connected. The request's parts
    /// may be written to the call before or after.
    func execute(_ call: UpstreamCall, connectTimeout: TimeAmount) {
        let now = NIODeadline.now()
        while let connection = self.idle.popLast() {
            if connection.isClosed || !connection.channel.isActive { continue }
            if now - connection.idleSince > self.maxIdleTime {
                connection.close()
                continue
            }
            connection.start(call, inReadBurst: true)
            return
        }
        if let until = self.refusedUntil, now < until {
            // Fail on the next loop turn, not re-entrantly inside the caller's start.
            self.loop.assumeIsolated().execute { call.fail(.refused) }
            return
        }
        let bootstrap = ClientBootstrap(group: self.loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No outbound header validation: every forwarded field was parsed from the
                    // client by llhttp (no CR, LF or NUL can survive that) and the ones the
                    // sidecar adds are its own or validated (request ids); checking each header
                    // again cost ~5% of the event loop.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
        bootstrap.connect(to: self.address).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
                    channel.close(promise: nil)
                    call.fail(.refused)
                    return
                }
                self.refusedUntil = nil
                let connection = UpstreamConnection(channel: channel, handler: handler, pool: self)
                self.all[ObjectIdentifier(connection)] = connection
                if call.finished {
                    // Timed out or cancelled while connecting: keep the fresh connection for the next call.
                    self.release(connection)
                } else if !channel.isActive {
                    call.fail(.reset)
                } else {
                    connection.start(call, inReadBurst: false)
                }
            case .failure(let error):
                let kind = Self.classify(error)
                if kind == .refused, let backoff = self.refusalBackoff { self.refusedUntil = .now() + backoff }
                call.fail(kind)
            }
        }
    }

    static func classify(_ error: any Error) -> ArmError {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return .connectTimeout }
        return .refused
    }

    func release(_ connection: UpstreamConnection) {
        guard !connection.isClosed else { return }
        if self.idle.count >= self.maxIdle {
            connection.close()
            return
        }
        connection.idleSince = .now()
        self.idle.append(connection)
    }

    func forget(_ connection: UpstreamConnection) {
        self.all.removeValue(forKey: ObjectIdentifier(connection))
        self.idle.removeAll { $0 === connection }
    }

    /// Closes every connection (shutdown).
    func closeAll() {
        for connection in self.all.values { connection.close() }
        self.idle.removeAll()
    }
}
