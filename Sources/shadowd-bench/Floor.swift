import ArgumentParser
import NIOCore
import NIOHTTP1
import NIOPosix

extension BenchCommand {
    /// `shadowd-bench floor`: serves the minimal SwiftNIO mirroring proxy (``FloorProxy``) until
    /// stopped, so it can be measured beside nginx's `mirror` and shadowd with the same wrk runs:
    /// what NIO allows on one core, without any of shadowd's recording, scoring, timeouts or
    /// accounting.
    struct Floor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve a minimal SwiftNIO mirroring proxy (one event loop, nothing recorded), a reference to measure."
        )

        @Option(help: "Port to listen on, on 127.0.0.1.")
        var port: Int

        @Option(help: "The baseline's port on 127.0.0.1.")
        var baseline: Int

        @Option(help: "The candidate's port on 127.0.0.1.")
        var candidate: Int

        func run() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let loop = group.next()
            let baseline = try SocketAddress(ipAddress: "127.0.0.1", port: self.baseline)
            let candidate = try SocketAddress(ipAddress: "127.0.0.1", port: self.candidate)
            let proxy = NIOLoopBoundBox.makeEmptyBox(valueType: FloorProxy.self, eventLoop: loop)
            try await loop.submit { proxy.value = FloorProxy(loop: loop, baseline: baseline, candidate: candidate) }.get()
            let server = try await ServerBootstrap(group: loop)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        // NIO's optional handlers off, as in shadowd (FACTS §6: they cost 5–8%).
                        try pipeline.configureHTTPServerPipeline(
                            withPipeliningAssistance: false,
                            withErrorHandling: false,
                            withOutboundHeaderValidation: false
                        )
                        try pipeline.addHandler(FloorClientHandler(proxy: proxy.value!))
                    }
                }
                .bind(host: "127.0.0.1", port: self.port)
                .get()
            print("floor proxy on 127.0.0.1:\(server.localAddress?.port ?? self.port)")
            try await server.closeFuture.get()
        }
    }
}
