import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ShadowCore
import Testing

@testable import ShadowProxy

/// The shadow lane's timeouts on a virtual clock: calls time out in the order they started,
/// finished ones never do, and the queue stays bounded by the calls in flight.
struct TimeoutQueueTests {
    /// Records how a call ended; may start another call when it fails (as a lane does).
    final class Outcome: UpstreamResponseDelegate {
        var failed: ArmError?
        var onFailure: (() -> Void)?
        func upstreamHead(_ head: HTTPResponseHead) {}
        func upstreamBody(_ buffer: ByteBuffer) {}
        func upstreamEnd(trailers: HTTPHeaders?) {}
        func upstreamFailed(_ error: ArmError) {
            self.failed = error
            self.onFailure?()
        }
        func upstreamReadComplete() {}
    }

    static func call() -> (UpstreamCall, Outcome) {
        let outcome = Outcome()
        return (UpstreamCall(delegate: outcome), outcome)
    }

    @Test func callsTimeOutInOrderAndFinishedOnesDoNot() {
        let loop = EmbeddedEventLoop()
        let queue = TimeoutQueue(loop: loop, amount: .seconds(1))
        let calls = (0..<3).map { _ in Self.call() }
        for (call, _) in calls { queue.add(call) }
        loop.advanceTime(by: .milliseconds(500))
        let (late, lateOutcome) = Self.call()
        queue.add(late)
        calls[1].0.complete()
        loop.advanceTime(by: .milliseconds(499))
        #expect(calls.allSatisfy { $0.1.failed == nil })
        loop.advanceTime(by: .milliseconds(1))
        #expect(calls[0].1.failed == .timeout)
        #expect(calls[1].1.failed == nil)
        #expect(calls[2].1.failed == .timeout)
        #expect(lateOutcome.failed == nil)
        loop.advanceTime(by: .milliseconds(500))
        #expect(lateOutcome.failed == .timeout)
        #expect(queue.count == 0)
    }

    @Test func aCallStartedByATimedOutOneIsTimedFromItsOwnStart() {
        let loop = EmbeddedEventLoop()
        let queue = TimeoutQueue(loop: loop, amount: .seconds(1))
        let (first, firstOutcome) = Self.call()
        let (next, nextOutcome) = Self.call()
        firstOutcome.onFailure = { queue.add(next) }
        queue.add(first)
        loop.advanceTime(by: .seconds(1))
        #expect(firstOutcome.failed == .timeout)
        #expect(nextOutcome.failed == nil)
        loop.advanceTime(by: .milliseconds(999))
        #expect(nextOutcome.failed == nil)
        loop.advanceTime(by: .milliseconds(1))
        #expect(nextOutcome.failed == .timeout)
    }

    @Test func finishedCallsBehindALongOneAreSwept() {
        let loop = EmbeddedEventLoop()
        let queue = TimeoutQueue(loop: loop, amount: .seconds(30))
        let (stuck, stuckOutcome) = Self.call()
        queue.add(stuck)
        for _ in 0..<10_000 {
            let (call, _) = Self.call()
            queue.add(call)
            call.complete()
        }
        // One call in flight: the finished ones behind it are swept, not kept for 30 s.
        #expect(queue.count <= 65)
        loop.advanceTime(by: .seconds(30))
        #expect(stuckOutcome.failed == .timeout)
        #expect(queue.count == 0)
    }

    /// A reload can shorten a candidate's timeout: the new, shorter calls are not timed behind
    /// the older, longer ones still in flight.
    @Test func aLaneKeepsAQueuePerTimeoutLength() throws {
        let loop = EmbeddedEventLoop()
        let url = UpstreamURL(host: "127.0.0.1", port: 9)
        let pool = UpstreamPool(
            loop: loop,
            endpoint: try UpstreamEndpoint(url: url, tls: nil, environment: [:]),
            maxIdle: 1,
            statistics: ProxyStatistics(),
            logger: Logger(label: "test")
        )
        let lane = ShadowLane(candidate: CandidateConfiguration(name: "c", url: url), pool: pool, queueCapacity: 1, maxConcurrency: 1)
        let (long, longOutcome) = Self.call()
        let (short, shortOutcome) = Self.call()
        lane.timeouts(after: .seconds(30)).add(long)
        lane.timeouts(after: .seconds(1)).add(short)
        #expect(lane.timeouts(after: .seconds(30)) === lane.timeouts(after: .seconds(30)))
        loop.advanceTime(by: .seconds(1))
        #expect(shortOutcome.failed == .timeout)
        #expect(longOutcome.failed == nil)
        loop.advanceTime(by: .seconds(29))
        #expect(longOutcome.failed == .timeout)
    }
}
