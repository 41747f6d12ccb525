import Testing

@testable import ShadowCore

@Suite struct RecordQueueTests {
    @Test func refusesBeyondCapacityAndCounts() {
        let queue = RecordQueue<Int>(capacity: 3)
        #expect(queue.offer(1) && queue.offer(2) && queue.offer(3))
        #expect(!queue.offer(4))
        #expect(queue.totals.accepted == 3 && queue.totals.refused == 1)
        #expect(queue.takeAvailable(maximum: 2) == [1, 2])
        #expect(queue.offer(5))
        #expect(queue.depth == 2)
    }

    @Test func batchesWaitForWorkAndEndAfterFinish() async {
        let queue = RecordQueue<Int>(capacity: 100)
        async let first = queue.nextBatch(maximum: 10)
        try? await Task.sleep(for: .milliseconds(20))
        queue.offer(7)
        #expect(await first == [7])
        for value in 0..<15 { queue.offer(value) }
        queue.finish()
        #expect(!queue.offer(99))
        #expect(await queue.nextBatch(maximum: 10)?.count == 10)
        #expect(await queue.nextBatch(maximum: 10)?.count == 5)
        #expect(await queue.nextBatch(maximum: 10) == nil)
    }

    @Test func wakeReturnsAnEmptyBatch() async {
        let queue = RecordQueue<Int>(capacity: 4)
        // A wake before the batch waits is lost (the writer's own waker repeats every second),
        // so the test wakes until the waiting batch returns instead of guessing when it waits.
        let first = await withTaskGroup(of: [Int]??.self) { group in
            group.addTask { .some(await queue.nextBatch(maximum: 10)) }
            group.addTask {
                while !Task.isCancelled {
                    queue.wake()
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return .none
            }
            let first = await group.next()
            group.cancelAll()
            return first
        }
        #expect(first == .some(.some([])))
    }

    @Test func coverageCounterBucketsByMinute() {
        let counter = CoverageCounter()
        counter.add(route: "r", candidate: "c", reason: .queueFull, atMicros: 61_000_000)
        counter.add(route: "r", candidate: "c", reason: .queueFull, atMicros: 119_000_000)
        counter.add(route: "r", candidate: "c", reason: .queueFull, atMicros: 120_000_000)
        let drained = counter.drain()
        #expect(drained[.init(minute: 60, route: "r", candidate: "c", reason: .queueFull)] == 2)
        #expect(drained[.init(minute: 120, route: "r", candidate: "c", reason: .queueFull)] == 1)
        #expect(counter.drain().isEmpty)
        counter.restore(drained)
        #expect(counter.snapshot().values.reduce(0, +) == 3)
    }

    @Test func routesMatchTheLongestPrefix() {
        let baseline = BaselineConfiguration(url: UpstreamURL(host: "127.0.0.1", port: 1))
        let table = RouteTable(routes: [
            RouteConfiguration(name: "all", prefix: "/", baseline: baseline, candidates: []),
            RouteConfiguration(name: "v2", prefix: "/v2/", baseline: baseline, candidates: []),
        ])
        #expect(table.index(for: "/v2/models/x/infer?debug=1") == 1)
        #expect(table.index(for: "/health") == 0)
        #expect(RouteTable(routes: []).index(for: "/") == nil)
    }

    @Test func connectionValuesAndListsAreReadWithoutAllocating() {
        for value in ["keep-alive", " Keep-Alive ", "CLOSE", "close\t"] { #expect(HeaderPolicy.namesNothing(value), "\(value)") }
        for value in ["keep-alive, x-foo", "upgrade", "", "closed"] { #expect(!HeaderPolicy.namesNothing(value), "\(value)") }
        #expect(HeaderPolicy.listContains("deflate, Trailers", "trailers"))
        #expect(HeaderPolicy.listContains("trailers", "trailers"))
        #expect(!HeaderPolicy.listContains("trailersx, deflate", "trailers"))
        #expect(GRPCSemantics.isGRPC(contentType: "Application/GRPC+proto"))
        #expect(GRPCSemantics.isGRPC(contentType: "application/grpc"))
        #expect(!GRPCSemantics.isGRPC(contentType: "application/grp"))
        #expect(!GRPCSemantics.isGRPC(contentType: "application/json"))
        #expect(!GRPCSemantics.isGRPC(contentType: nil))
        let baseline = BaselineConfiguration(url: UpstreamURL(host: "127.0.0.1", port: 1))
        let table = RouteTable(routes: [RouteConfiguration(name: "é", prefix: "/modèle/", baseline: baseline, candidates: [])])
        #expect(table.index(for: "/modèle/x?q=/modèle/") == 0)
        #expect(table.index(for: "/model/x?q=/modèle/") == nil)
    }

    @Test func connectionNominatedHeadersAreCollected() {
        // Names already hop-by-hop (keep-alive) need no second look-up.
        #expect(HeaderPolicy.connectionNominated(["keep-alive, X-Foo", " x-bar "]) == ["x-foo", "x-bar"])
        #expect(HeaderPolicy.connectionNominated([String]()).isEmpty)
        for name in ["Connection", "KEEP-ALIVE", "te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization", "Host", "content-length"] {
            #expect(HeaderPolicy.isHopByHop(name), "\(name)")
        }
        for name in ["X-Request-Id", "Content-Type", "tee", "Authorization"] {
            #expect(!HeaderPolicy.isHopByHop(name), "\(name)")
        }
        #expect(HeaderPolicy.isValidRequestID("abc-123"))
        #expect(!HeaderPolicy.isValidRequestID("has space"))
        #expect(!HeaderPolicy.isValidRequestID(String(repeating: "a", count: 200)))
    }
}
