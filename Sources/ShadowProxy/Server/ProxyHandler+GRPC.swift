import NIOCore
import NIOHTTP1
import ShadowCore

extension ProxyHandler {
    /// A gRPC client expects a gRPC status, not an HTTP error page: HTTP 200, no message, and
    /// `grpc-status` with `grpc-message` in the trailers (UNAVAILABLE for a baseline that
    /// failed, DEADLINE_EXCEEDED for one that timed out).
    func respondGRPC(_ error: SidecarError, close: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "x-request-id", value: self.current.requestID)
        headers.add(name: "x-shadowd-error", value: error.code)
        let head = HTTPResponseHead(version: self.current.clientVersion, status: .ok, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        self.current.routeMetrics?.countResponse(status: Int(error.status.code))
        let status = GRPCSemantics.status(forHTTP: Int(error.status.code))
        let trailers: HTTPHeaders = [
            "grpc-status": String(status.rawValue), "grpc-message": GRPCSemantics.encodeMessage("shadowd: " + error.message),
        ]
        self.finishResponse(context: context, close: close, trailers: trailers)
    }
}
