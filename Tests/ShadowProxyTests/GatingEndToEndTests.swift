import Foundation
import GRDB
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Synchronization
import Testing

@testable import ShadowProxy

/// Sampling, gates, the circuit breaker and the rate cap through a real sidecar.
@Suite(.timeLimit(.minutes(3))) struct GatingEndToEndTests {
    static let answer: FixtureServer.Responder = { _ in .json(#"{"outputs":[{"name":"label","data":["cat"]}]}"#) }

    @Test func aStickyKeyedSampleMinusTheExcludedRequests() async throws {
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("c", .responder(Self.answer))],
            configure: {
                $0.routes[0].samplePercent = 10
                $0.routes[0].sampleKey = .header("X-User-Id")
                $0.routes[0].gates = GateConfiguration(exclude: [GateRule(header: ("X-Shadow-Skip", .equals("1")))])
            }
        ) { sidecar, _, candidates in
            let client = try await HTTPTestClient.connect(port: sidecar.port)
            var expectedIDs: Set<String> = []
            var skippedCount = 0
            for user in 0..<1_000 {
                let skip = user % 7 == 0
                var headers = [("x-user-id", "user-\(user)"), ("x-request-id", "rq-\(user)")]
                if skip { headers.append(("X-Shadow-Skip", "1")) }
                let response = try await client.send(method: .POST, path: "/infer", headers: headers, body: Array("{}".utf8))
                #expect(response.status == 200)
                if skip {
                    skippedCount += 1
                } else if Sampler.admits(key: "user-\(user)".utf8, salt: "models", percent: 10) {
                    expectedIDs.insert("rq-\(user)")
                }
            }
            await client.close()
            await sidecar.stop()
            let expected = expectedIDs
            let skipped = skippedCount
            #expect(expected.count > 60 && expected.count < 130)
            #expect(candidates[0]?.requestCount == expected.count)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                #expect(Set(try String.fetchAll(db, sql: "SELECT request_id FROM pairs")) == expected)
                let reasons = Dictionary(
                    uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT reason, sum(count) AS n FROM coverage GROUP BY reason").map {
                        ($0["reason"] as String, $0["n"] as Int)
                    }
                )
                #expect(reasons["gated"] == skipped)
                #expect(reasons["not_sampled"] == 1_000 - skipped - expected.count)
            }
            try queue.close()
        }
    }

    @Test func aFailingCandidateTripsTheBreakerAndRecoversThroughHalfOpen() async throws {
        let failing = Flag(true)
        let candidate: FixtureServer.Responder = { request in
            failing.value ? .json(#"{"error":"boom"}"#, status: 500) : Self.answer(request)
        }
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("c", .responder(candidate))],
            configure: {
                $0.routes[0].circuitBreaker = CircuitBreakerConfiguration(
                    window: .seconds(30),
                    minCalls: 10,
                    maxErrorRate: 0.5,
                    coolDown: .seconds(8),
                    halfOpenPercent: 100,
                    halfOpenCalls: 5
                )
            }
        ) { sidecar, _, candidates in
            let client = try await HTTPTestClient.connect(port: sidecar.port)
            func send(_ count: Int) async throws {
                for _ in 0..<count {
                    #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200)
                    // Let the candidate's answer reach the breaker before the next copy.
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            // Failing: send until the breaker opens (it needs 10 outcomes in its window), each
            // request only once the one before is recorded: `ShadowCall` gives the breaker its
            // copy's outcome before it finishes the exchange, so the breaker has seen every copy
            // sent so far (a pause instead let a loaded machine send 21 before it opened).
            var sent = 0
            // It was not open before the last of these sends, so it opened no earlier.
            var openedNoEarlierThan = ContinuousClock.now
            while sidecar.sidecar.gating.breakerStates.first?.state != .open, sent < 200 {
                openedNoEarlierThan = ContinuousClock.now
                let before = sidecar.sidecar.shared.records.totals
                try await send(1)
                sent += 1
                #expect(
                    try await eventually {
                        let now = sidecar.sidecar.shared.records.totals
                        return now.accepted + now.refused > before.accepted + before.refused
                    }
                )
            }
            // And no later than now.
            let openedNoLaterThan = ContinuousClock.now
            #expect(sidecar.sidecar.gating.breakerStates.first?.state == .open)
            let metrics = try await HTTPTestClient.connect(port: try #require(await sidecar.sidecar.admin?.address.port()))
            let exposition = String(decoding: try await metrics.send(path: "/metrics").body, as: UTF8.self)
            let stats = String(decoding: try await metrics.send(path: "/stats").body, as: UTF8.self)
            await metrics.close()
            #expect(exposition.contains(#"shadowd_circuit_state{route="models",candidate="c"} 2"#), "\(exposition)")
            #expect(exposition.contains(#"shadowd_circuit_transitions_total{route="models",candidate="c",to="open"} 1"#))
            #expect(stats.contains(#"{"route":"models","candidate":"c","state":"open"}"#), "\(stats)")
            // Copies already on their way when it opened may still arrive: wait until the count
            // holds still for 300 ms (a fixed pause was too short on a loaded machine).
            var calls = candidates[0]?.requestCount ?? 0
            var stillSince = ContinuousClock.now
            while ContinuousClock.now - stillSince < .milliseconds(300) {
                try await Task.sleep(for: .milliseconds(20))
                let now = candidates[0]?.requestCount ?? 0
                if now != calls { (calls, stillSince) = (now, ContinuousClock.now) }
            }
            #expect(calls >= 10 && calls < 20, "mirroring stopped soon after the window filled: \(calls) calls")
            try await send(5)
            // Only within the cool-down is it certainly still open (a loaded machine has taken
            // longer than 4 s to get here, and the next copy went out as a half-open probe).
            let stillOpen = ContinuousClock.now - openedNoEarlierThan < .seconds(8)
            if stillOpen { #expect(candidates[0]?.requestCount == calls, "no copies while open") }

            // Healthy again: after the cool-down, probes go and close it.
            failing.value = false
            try await Task.sleep(until: openedNoLaterThan + .milliseconds(8_100))
            sent = 0
            while sidecar.sidecar.gating.breakerStates.first?.state != .closed, sent < 200 {
                try await send(1)
                sent += 1
            }
            #expect(sidecar.sidecar.gating.breakerStates.first?.state == .closed)
            try await send(10)
            // The last copies go out after the client's answers: wait for them to land.
            #expect(try await eventually { (candidates[0]?.requestCount ?? 0) >= calls + 5 + 10 })
            await client.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let events = try Row.fetchAll(db, sql: "SELECT from_state, to_state, reason FROM gating_events ORDER BY at_us")
                let changes: [String] = events.map { row in
                    let from: String = row["from_state"]
                    let to: String = row["to_state"]
                    return from + "→" + to
                }
                #expect(changes == ["closed→open", "open→half_open", "half_open→closed"])
                #expect((events.first?["reason"] as String?)?.contains("error rate") == true)
                if stillOpen {
                    #expect(try Int.fetchOne(db, sql: "SELECT sum(count) FROM coverage WHERE reason = 'circuit_open'") ?? 0 >= 5)
                }
            }
            try queue.close()
        }
    }

    @Test func theRampAdvancesOnAHealthyCandidateAndFallsBackOnAFailingOne() async throws {
        let failing = Flag(false)
        let candidate: FixtureServer.Responder = { request in
            failing.value ? .json(#"{"error":"boom"}"#, status: 500) : Self.answer(request)
        }
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("c", .responder(candidate))],
            configure: {
                $0.routes[0].ramp = RampConfiguration(
                    stages: [10, 50, 100].map { RampConfiguration.Stage(percent: $0, minDuration: .zero, minPairs: 100) }
                )
                // Loopback latencies are sub-millisecond and jittery: judge them on an absolute bound.
                $0.routes[0].guardrails = GuardrailConfiguration(maxP99Regression: .absolute(.milliseconds(200)), maxErrorRateIncrease: 0.1)
            }
        ) { sidecar, _, _ in
            let client = try await HTTPTestClient.connect(port: sidecar.port)
            func stage() -> Int { sidecar.sidecar.ramp.stages["models"] ?? -1 }
            #expect(stage() == 0)
            var sent = 0
            while stage() < 2, sent < 6_000 {
                _ = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
                sent += 1
            }
            #expect(stage() == 2, "reached 100% after \(sent) requests")
            failing.value = true
            sent = 0
            while stage() == 2, sent < 2_000 {
                _ = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
                sent += 1
            }
            #expect(stage() == 1, "fell back one stage after \(sent) failing requests")
            await client.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT from_state, to_state, reason FROM gating_events WHERE kind = 'ramp' ORDER BY at_us")
                let changes: [String] = rows.map { row in
                    let from: String = row["from_state"]
                    let to: String = row["to_state"]
                    return from + "→" + to
                }
                // Still failing at 50%, it may have fallen further by the time the last pairs landed.
                #expect(Array(changes.prefix(3)) == ["10.0%→50.0%", "50.0%→100.0%", "100.0%→50.0%"])
                #expect(rows.count >= 3 && (rows[2]["reason"] as String).contains("broke at 100%"), "\(rows.map { $0["reason"] as String })")
                #expect(try Int.fetchOne(db, sql: "SELECT stage FROM ramp_state WHERE route = 'models'") ?? 2 <= 1)
            }
            try queue.close()
        }
    }

    @Test func theRateCapHoldsWithinFivePercentOverTenSeconds() async throws {
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("c", .responder(Self.answer))],
            configure: { $0.routes[0].rateLimit = RateLimitConfiguration(perSecond: 50, burst: 25) }
        ) { sidecar, _, candidates in
            let started = ContinuousClock.now
            let deadline = started + .seconds(10)
            let sent = Tally()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let client = try await HTTPTestClient.connect(port: sidecar.port)
                        while ContinuousClock.now < deadline {
                            _ = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
                            sent.add()
                        }
                        await client.close()
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            #expect(try await eventually { sidecar.shadowPending == 0 }, "the last copies landed")
            let mirrored = Double(candidates[0]?.requestCount ?? 0)
            // Never above the rate plus the burst.
            #expect(mirrored <= 50 * seconds + 25, "\(mirrored) mirrored in \(seconds) s")
            // With demand well above the cap, within 5% of it. (A machine too loaded to send
            // three times the cap only gets the bound above and the accounting below.)
            if Double(sent.count) > 3 * 50 * seconds {
                #expect(mirrored >= 0.95 * 50 * seconds, "\(mirrored) mirrored in \(seconds) s")
            }
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let limited = try await queue.read { try Int.fetchOne($0, sql: "SELECT sum(count) FROM coverage WHERE reason = 'rate_limited'") ?? 0 }
            try queue.close()
            #expect(limited + Int(mirrored) == sent.count, "every request mirrored or counted as rate_limited")
        }
    }
}

/// A flag the test flips while a responder on another thread reads it.
final class Flag: Sendable {
    private let state: Mutex<Bool>
    init(_ value: Bool) { self.state = Mutex(value) }
    var value: Bool {
        get { self.state.withLock { $0 } }
        set { self.state.withLock { $0 = newValue } }
    }
}

/// A counter shared by concurrent clients.
final class Tally: Sendable {
    private let state = Atomic<Int>(0)
    func add() { self.state.add(1, ordering: .relaxed) }
    var count: Int { self.state.load(ordering: .relaxed) }
}

@Suite struct GatingReloadTests {
    @Test func aReloadKeepsUnchangedBreakersAndCapsAndResetsChangedOnes() async throws {
        try await withSidecar(
            baseline: .responder(GatingEndToEndTests.answer),
            candidates: [("c", .responder(GatingEndToEndTests.answer))],
            configure: {
                $0.routes[0].circuitBreaker = CircuitBreakerConfiguration(minCalls: 5)
                $0.routes[0].rateLimit = RateLimitConfiguration(perSecond: 10)
            }
        ) { sidecar, _, _ in
            let registry = sidecar.sidecar.gating
            let breaker = try #require(registry.breaker(route: "models", candidate: "c", configuration: CircuitBreakerConfiguration(minCalls: 5)))
            var configuration = sidecar.sidecar.configuration
            configuration.routes[0].circuitBreaker = CircuitBreakerConfiguration(minCalls: 5)
            configuration.routes[0].rateLimit = RateLimitConfiguration(perSecond: 10)
            configuration.routes[0].samplePercent = 50
            try await sidecar.sidecar.apply(configuration)
            #expect(registry.breaker(route: "models", candidate: "c", configuration: CircuitBreakerConfiguration(minCalls: 5)) === breaker)
            configuration.routes[0].circuitBreaker = CircuitBreakerConfiguration(minCalls: 50)
            try await sidecar.sidecar.apply(configuration)
            let changed = registry.breaker(route: "models", candidate: "c", configuration: CircuitBreakerConfiguration(minCalls: 50))
            #expect(changed !== breaker && changed?.configuration.minCalls == 50)
            configuration.routes[0].circuitBreaker = nil
            try await sidecar.sidecar.apply(configuration)
            #expect(registry.breakerStates.isEmpty)
            await sidecar.stop()
        }
    }

    /// A request in flight when a reload lands finishes under the configuration it started
    /// with: held at the baseline by a gate across the reload, it is still mirrored and
    /// recorded with the old revision and baseline version; the next request gets the new ones.
    @Test func aRequestInFlightAcrossAReloadKeepsTheOldConfiguration() async throws {
        let gate = FixtureGate()
        let held: FixtureServer.Responder = { request in
            request.uri == "/held"
                ? FixtureResponse(
                    headers: [("content-type", "application/json")],
                    mode: .gatedChunks(first: [], gate: gate, rest: [Array("{}".utf8)])
                )
                : .json("{}")
        }
        try await withSidecar(baseline: .responder(held), candidates: [("c", .responder { _ in .json("{}") })]) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            async let inFlight = client.send(method: .POST, path: "/held", body: Array("{}".utf8))
            #expect(try await eventually(within: .seconds(10)) { baseline?.requestCount == 1 && candidates[0]?.requestCount == 1 })
            var configuration = sidecar.sidecar.configuration
            configuration.revision = "second"
            configuration.routes[0].baseline.version = "base-v2"
            configuration.routes[0].samplePercent = 0
            try await sidecar.sidecar.apply(configuration)
            gate.open()
            #expect(try await inFlight.status == 200)
            let other = try await sidecar.client()
            #expect(try await other.send(method: .POST, path: "/after", body: Array("{}".utf8)).status == 200)
            await other.close()
            await client.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            let rows = try queue.read { try Row.fetchAll($0, sql: "SELECT path, config_revision, baseline_version FROM exchanges") }
            #expect(rows.count == 1 && rows[0]["path"] as String? == "/held", "only the in-flight request was mirrored")
            #expect(rows.first?["config_revision"] as String? == "test" && rows.first?["baseline_version"] as String? == "base-v")
            #expect(try sidecar.openStore().coverageTotals()["not_sampled"] == 1, "the next request met the new 0% sample")
        }
    }

    /// A spent daily budget stays spent across a reload that leaves the cap as it was (another
    /// key changed), and starts afresh when the cap itself changes: by behaviour, not identity.
    @Test func aReloadKeepsASpentBudgetUnlessTheCapChanged() async throws {
        try await withSidecar(
            baseline: .responder(GatingEndToEndTests.answer),
            candidates: [("c", .responder(GatingEndToEndTests.answer))],
            configure: { $0.routes[0].rateLimit = RateLimitConfiguration(dailyRequests: 5) }
        ) { sidecar, _, candidates in
            let client = try await sidecar.client()
            func send(_ count: Int) async throws {
                for _ in 0..<count { #expect(try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8)).status == 200) }
                #expect(try await eventually { sidecar.shadowPending == 0 })
            }
            try await send(7)
            #expect(candidates[0]?.requestCount == 5, "the budget of 5 is spent")
            var configuration = sidecar.sidecar.configuration
            configuration.routes[0].rateLimit = RateLimitConfiguration(dailyRequests: 5)
            configuration.routes[0].scorer = ScorerConfiguration(kind: .exact)
            try await sidecar.sidecar.apply(configuration)
            try await send(3)
            #expect(candidates[0]?.requestCount == 5, "still spent after a reload that kept the cap")
            configuration.routes[0].rateLimit = RateLimitConfiguration(dailyRequests: 6)
            try await sidecar.sidecar.apply(configuration)
            try await send(3)
            #expect(candidates[0]?.requestCount == 8, "a new cap of 6 starts afresh")
            await client.close()
            await sidecar.stop()
            let totals = try sidecar.openStore().coverageTotals()
            #expect(totals["budget_exhausted"] == 2 + 3 && totals["compared"] == 8, "\(totals)")
        }
    }

    /// A paid LLM candidate priced per token: its answers' token cost counts against the route's
    /// daily cost budget once known, so copies stop (`budget_exhausted`) when the day's spend is
    /// reached, though each copy's up-front price is zero.
    @Test func aTokenPricedCandidateIsCappedByTheDailyCostBudget() async throws {
        let answer: FixtureServer.Responder = { _ in
            .json(
                #"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":400}}"#
            )
        }
        try await withSidecar(
            baseline: .responder(answer),
            candidates: [("paid", .responder(answer))],
            configure: { configuration in
                configuration.routes[0].scorer = ScorerConfiguration(kind: .text, outputProtocol: .openAI)
                // 400 completion tokens at 1.0 per 1k: 0.4 a call; the day allows 1.0.
                configuration.routes[0].candidates[0].cost = CostConfiguration(per1kCompletionTokens: 1.0)
                configuration.routes[0].rateLimit = RateLimitConfiguration(dailyCost: 1.0)
            }
        ) { sidecar, _, candidates in
            let client = try await sidecar.client()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            // One at a time, each written (and charged) before the next is sent.
            for _ in 1...5 {
                #expect(try await client.send(method: .POST, path: "/v1/chat", body: Array("{}".utf8)).status == 200)
                #expect(try await eventually { sidecar.shadowPending == 0 })
                let mirrored = candidates[0]?.requestCount ?? 0
                if mirrored > 0 { _ = try await waitForRows(queue, count: mirrored, sql: "SELECT 1 FROM pairs WHERE candidate_cost IS NOT NULL") }
            }
            try queue.close()
            #expect(candidates[0]?.requestCount == 3, "0.4 + 0.4 + 0.4 reaches 1.0 on the third; nothing after")
            await client.close()
            await sidecar.stop()
            let totals = try sidecar.openStore().coverageTotals()
            #expect(totals["budget_exhausted"] == 2 && totals["compared"] == 3, "\(totals)")
        }
    }
}
