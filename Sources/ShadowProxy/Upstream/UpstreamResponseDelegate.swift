import NIOCore
import NIOHTTP1
import ShadowCore

/// Receives one upstream response, part by part, on the event loop of the call.
///
/// The seam between the connection pool and its two users: the client-facing baseline
/// forwarder and the shadow call that records a candidate's answer.
protocol UpstreamResponseDelegate: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ buffer: ByteBuffer)
    /// The answer ended, with its trailers when it had any (gRPC's `grpc-status` travels there).
    func upstreamEnd(trailers: HTTPHeaders?)
    /// The call failed; no further parts follow (a head may already have been delivered).
    func upstreamFailed(_ error: ArmError)
    /// The upstream connection finished a read burst: a good moment to flush downstream.
    func upstreamReadComplete()
    /// The upstream can take more request bytes again (connected, or its socket drained).
    func upstreamWritable()
}

extension UpstreamResponseDelegate {
    /// Callers that send whole requests at once have nothing to resume.
    func upstreamWritable() {}
}
