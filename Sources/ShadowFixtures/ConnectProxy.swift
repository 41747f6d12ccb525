import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A forward proxy on loopback that opens HTTP `CONNECT` tunnels, as a corporate egress proxy
/// does, for tests of `upstreams.proxy`. It tunnels to loopback targets only, records each
/// target, and can refuse (`403`) or demand credentials (`407`).
public final class ConnectProxy: Sendable {
    public enum Policy: Sendable {
        case allow
        case deny
        case requireCredentials
    }

    public let port: Int
    private let channel: any Channel
    let state: ConnectProxyState

    private init(port: Int, channel: any Channel, state: ConnectProxyState) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    public static func start(
        policy: Policy = .allow,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ConnectProxy {
        let state = ConnectProxyState(policy: policy)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture {
                    try inbound.pipeline.syncOperations.addHandler(ConnectRequestHandler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else { throw FixtureError("proxy did not bind") }
        return ConnectProxy(port: port, channel: channel, state: state)
    }

    /// The `host:port` of every CONNECT received, in order.
    public var targets: [String] { self.state.targets.withLock { $0 } }

    public func stop() async throws {
        for channel in self.state.link.open.withLock({ Array($0.values) }) { channel.close(promise: nil) }
        try await self.channel.close()
    }
}

final class ConnectProxyState: Sendable {
    let policy: ConnectProxy.Policy
    let targets = Mutex<[String]>([])
    let link = LinkState(fault: .none)

    init(policy: ConnectProxy.Policy) {
        self.policy = policy
    }
}

/// Reads one CONNECT request head, then becomes a relay to the target.
final class ConnectRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let state: ConnectProxyState
    private var head = ""

    init(state: ConnectProxyState) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.head += String(buffer: Self.unwrapInboundIn(data))
        guard let end = self.head.range(of: "\r\n\r\n") else { return }
        // By lines of bytes: Swift's String sees "\r\n" as one character.
        let requestLine = self.head[..<end.lowerBound].components(separatedBy: "\r\n")[0]
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[0] == "CONNECT", let colon = parts[1].lastIndex(of: ":"),
            let port = Int(parts[1][parts[1].index(after: colon)...])
        else { return Self.answer(context.channel, "400 Bad Request", close: true) }
        let host = String(parts[1][..<colon])
        self.state.targets.withLock { $0.append(String(parts[1])) }
        switch self.state.policy {
        case .deny: return Self.answer(context.channel, "403 Forbidden", close: true)
        case .requireCredentials: return Self.answer(context.channel, "407 Proxy Authentication Required", close: true)
        case .allow: break
        }
        // Loopback only: tests never send traffic anywhere else.
        guard host == "127.0.0.1" || host == "localhost" else { return Self.answer(context.channel, "403 Forbidden", close: true) }
        let inbound = context.channel
        let state = self.state
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { outbound in
                outbound.eventLoop.makeCompletedFuture {
                    try outbound.pipeline.syncOperations.addHandler(RelayHandler(state: state.link, targetPort: nil, peer: inbound))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let outbound):
                    state.link.register(inbound)
                    state.link.register(outbound)
                    let pipeline = inbound.pipeline.syncOperations
                    try? pipeline.addHandler(RelayHandler(state: state.link, targetPort: nil, peer: outbound))
                    Self.answer(inbound, "200 Connection established", close: false)
                    pipeline.removeHandler(context: context, promise: nil)
                case .failure:
                    Self.answer(inbound, "502 Bad Gateway", close: true)
                }
            }
    }

    private static func answer(_ channel: any Channel, _ status: String, close: Bool) {
        let response = "HTTP/1.1 \(status)\r\nContent-Length: 0\r\n\r\n"
        channel.writeAndFlush(channel.allocator.buffer(string: response)).whenComplete { _ in
            if close { channel.close(promise: nil) }
        }
    }
}
