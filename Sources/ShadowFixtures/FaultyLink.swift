import NIOCore
import NIOPosix
import Synchronization

/// A TCP relay on loopback that puts a server "far away": it forwards bytes both ways and, on
/// command, delays them, swallows them (a partition: connections open but nothing gets through)
/// or resets every connection. For tests and benchmarks of a candidate on another host without
/// root or `netem` (the kernel here has no `sch_netem`).
public final class FaultyLink: Sendable {
    /// What the link does to traffic now.
    public enum Fault: Sendable, Equatable {
        /// Bytes pass at once.
        case none
        /// Every chunk is delivered this much later, each way (order kept).
        case delay(Duration)
        /// Nothing passes either way; new connections are accepted and hang (a partition).
        case blackhole
        /// Every connection, open or new, is reset.
        case reset
    }

    public let port: Int
    private let channel: any Channel
    let state: LinkState

    private init(port: Int, channel: any Channel, state: LinkState) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    /// Listens on `127.0.0.1:0` and relays every connection to `127.0.0.1:targetPort`.
    public static func start(
        targetPort: Int,
        fault: Fault = .none,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> FaultyLink {
        let state = LinkState(fault: fault)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture {
                    try inbound.pipeline.syncOperations.addHandler(RelayHandler(state: state, targetPort: targetPort))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else { throw FixtureError("faulty link did not bind") }
        return FaultyLink(port: port, channel: channel, state: state)
    }

    /// Changes what the link does, for open connections too.
    public func set(_ fault: Fault) {
        self.state.fault.withLock { $0 = fault }
        if fault == .reset {
            for channel in self.state.open.withLock({ Array($0.values) }) { channel.close(promise: nil) }
        }
    }

    /// Connections relayed so far.
    public var connectionCount: Int { self.state.accepted.load(ordering: .relaxed) }

    /// Stops listening and closes every relayed connection.
    public func stop() async throws {
        for channel in self.state.open.withLock({ Array($0.values) }) { channel.close(promise: nil) }
        try await self.channel.close()
    }
}

/// The link's fault and its open channels, shared by every relay.
final class LinkState: Sendable {
    let fault: Mutex<FaultyLink.Fault>
    let open = Mutex<[ObjectIdentifier: any Channel]>([:])
    let accepted = Atomic<Int>(0)

    init(fault: FaultyLink.Fault) {
        self.fault = Mutex(fault)
    }

    func register(_ channel: any Channel) {
        self.open.withLock { $0[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { _ in _ = self.open.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    }
}

/// One side of a relayed connection: what it reads goes to its peer, through the link's fault.
final class RelayHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let state: LinkState
    private let targetPort: Int?
    private let peer = Mutex<(any Channel)?>(nil)

    /// The accepted side (connects out to `targetPort`), or the outbound side (`targetPort` nil)
    /// relaying to `peer`.
    init(state: LinkState, targetPort: Int?, peer: (any Channel)? = nil) {
        self.state = state
        self.targetPort = targetPort
        self.peer.withLock { $0 = peer }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.state.register(context.channel)
        guard let targetPort else { return }
        self.state.accepted.add(1, ordering: .relaxed)
        if self.state.fault.withLock({ $0 }) == .reset {
            context.close(promise: nil)
            return
        }
        let inbound = context.channel
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { outbound in
                outbound.eventLoop.makeCompletedFuture {
                    try outbound.pipeline.syncOperations.addHandler(RelayHandler(state: self.state, targetPort: nil, peer: inbound))
                }
            }
            .connect(host: "127.0.0.1", port: targetPort)
            .whenComplete { result in
                switch result {
                case .success(let outbound):
                    self.peer.withLock { $0 = outbound }
                    inbound.setOption(.autoRead, value: true).whenComplete { _ in inbound.read() }
                case .failure:
                    inbound.close(promise: nil)
                }
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        guard let peer = self.peer.withLock({ $0 }) else { return }
        switch self.state.fault.withLock({ $0 }) {
        case .none:
            peer.writeAndFlush(buffer, promise: nil)
        case .delay(let delay):
            let nanos = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
            context.eventLoop.scheduleTask(in: .nanoseconds(nanos)) { peer.writeAndFlush(buffer, promise: nil) }
        case .blackhole:
            break
        case .reset:
            context.close(promise: nil)
            peer.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A partition keeps the other side hanging; otherwise a close travels through.
        guard self.state.fault.withLock({ $0 }) != .blackhole else { return }
        self.peer.withLock { $0 }?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
