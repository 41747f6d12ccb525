import Foundation
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// Whatever the candidate does, the client gets the baseline's answer, promptly.
@Suite(.timeLimit(.minutes(3))) struct IsolationTests {
    static let baselineBody = #"{"label":"cat","score":0.9}"#

    enum CandidateFault: String, CaseIterable, Sendable {
        case hangs, refuses, slow, garbage, resetsMidBody, hugeBody, serverError, dropsKeepAliveConnectionsAtRandom

        var upstream: Upstream {
            switch self {
            case .hangs: .responder { _ in FixtureResponse(mode: .hang) }
            case .refuses: .refusing
            case .slow: .responder { _ in .json(#"{"label":"late"}"#, delay: .seconds(5)) }
            case .garbage: .responder { _ in FixtureResponse(mode: .garbage) }
            case .resetsMidBody: .responder { _ in FixtureResponse(body: Array(#"{"label":"#.utf8), mode: .resetMidBody) }
            case .hugeBody: .responder { _ in FixtureResponse(body: [UInt8](repeating: 0x41, count: 10 << 20)) }
            case .serverError: .responder { _ in .json(#"{"error":"boom"}"#, status: 500) }
            case .dropsKeepAliveConnectionsAtRandom:
                .responder { _ in
                    // Answers like the baseline, then closes the connection now, a little later
                    // (while it idles in the pool) or not at all.
                    let moment = Int.random(in: 0..<3)
                    return FixtureResponse(
                        headers: [("content-type", "application/json")],
                        body: Array(IsolationTests.baselineBody.utf8),
                        mode: moment == 2 ? .normal : .normalThenClose(after: .milliseconds(moment * 2))
                    )
                }
            }
        }

        /// What the record must say about the candidate.
        var expectedError: String? {
            switch self {
            case .hangs, .slow: "timeout"
            case .refuses: "refused"
            case .garbage: "invalid_response"
            case .resetsMidBody: "reset"
            case .hugeBody: "too_large"
            case .serverError, .dropsKeepAliveConnectionsAtRandom: nil
            }
        }
    }

    @Test(arguments: CandidateFault.allCases)
    func theClientNeverWaitsForAFailingCandidate(fault: CandidateFault) async throws {
        try await withSidecar(
            baseline: .responder { _ in .json(Self.baselineBody) },
            candidates: [("broken", fault.upstream)],
            configure: { configuration in
                configuration.storage.maxStoredBody = 1 << 20
                // Enough call slots that every copy is in flight at once and ends by its timeout.
                configuration.routes[0].candidates[0].maxConcurrency = 128
                configuration.routes[0].candidates[0].timeout = .seconds(3)
            }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            var slowest = Duration.zero
            for index in 0..<40 {
                let response = try await client.send(
                    method: .POST,
                    path: "/infer",
                    headers: [("x-request-id", "req-\(index)")],
                    body: Array("{}".utf8)
                )
                #expect(response.status == 200)
                #expect(response.text == Self.baselineBody)
                slowest = max(slowest, response.latency)
            }
            // The candidate's timeout is 3 s and the slow one answers after 5 s: a client that
            // waited for the candidate would take at least 3 s. (Not a latency benchmark: the
            // bound only separates "never waits" from "waits", even on a loaded, stalling VM.)
            #expect(slowest < .seconds(2), "a client request took \(slowest)")
            await client.close()
            await sidecar.stop()
            let store = try sidecar.openStore()
            defer { try? store.close() }
            let summary = try #require(try store.candidateSummaries().first)
            #expect(summary.pairs == 40, "every mirrored request is recorded exactly once")
            switch fault {
            case .serverError:
                #expect(summary.diverged == 40, "a 500 against a 200 diverges")
            case .dropsKeepAliveConnectionsAtRandom:
                // A copy sent just as the candidate closed the connection fails as a reset;
                // every other one is compared, and the answers agree.
                let resets = summary.candidateErrors["reset"] ?? 0
                #expect(summary.candidateErrors.keys.allSatisfy { $0 == "reset" }, "\(summary.candidateErrors)")
                #expect(summary.compared + resets == 40 && summary.diverged == 0, "\(summary)")
            default:
                #expect(summary.candidateErrors == [fault.expectedError!: 40])
            }
        }
    }

    @Test func theCandidatesOutputNeverReachesAClientEvenWhenTheBaselineFails() async throws {
        let secret = "CANDIDATE-SECRET-OUTPUT"
        try await withSidecar(baseline: .refusing, candidates: [("c", .responder { _ in .json(#"{"x":"\#(secret)"}"#) })]) { sidecar, _, _ in
            let client = try await sidecar.client()
            let response = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
            #expect(response.status == 502)
            #expect(response.header("content-type") == "application/json")
            #expect(response.text.contains(#""code":"baseline_unreachable""#))
            #expect(!response.text.contains(secret))
            for _ in 0..<5 { _ = try await client.send(path: "/again") }
            await client.close()
            let adminPort = try #require(await sidecar.sidecar.admin?.address.port())
            let admin = try await HTTPTestClient.connect(port: adminPort)
            let readiness = try await admin.send(path: "/readyz")
            await admin.close()
            #expect(readiness.status == 503 && readiness.text.contains("baseline unreachable"))
            await sidecar.stop()
            let store = try sidecar.openStore()
            defer { try? store.close() }
            // The pair is still recorded, with the baseline's failure.
            #expect(try store.coverageTotals()["baseline_error"] == 6)
        }
    }

    @Test func aSlowBaselineGets504() async throws {
        try await withSidecar(
            baseline: .responder { _ in FixtureResponse(mode: .hang) },
            configure: { $0.routes[0].baseline.timeout = .milliseconds(300) }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            let response = try await client.send(path: "/infer")
            #expect(response.status == 504)
            #expect(response.text.contains("baseline_timeout"))
            #expect(response.latency >= .milliseconds(250))
            await client.close()
        }
    }

    @Test func aBaselineResetMidBodyClosesTheClientConnection() async throws {
        try await withSidecar(baseline: .responder { _ in FixtureResponse(body: Array("partial".utf8), mode: .resetMidBody) }) { sidecar, _, _ in
            let client = try await sidecar.client()
            await #expect(throws: (any Error).self) { _ = try await client.send(path: "/infer") }
            await client.close()
        }
    }

    @Test func queueOverflowIsDroppedAndCounted() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json("{}") },
            candidates: [("stuck", .responder { _ in FixtureResponse(mode: .hang) })],
            configure: { configuration in
                configuration.server.threads = 1
                configuration.routes[0].candidates[0].maxConcurrency = 1
                configuration.routes[0].candidates[0].queueCapacity = 2
                // Longer than the test, so the slot never frees up while requests arrive.
                configuration.routes[0].candidates[0].timeout = .seconds(5)
            }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            for _ in 0..<20 {
                #expect(try await client.send(path: "/infer").status == 200)
            }
            await client.close()
            await sidecar.stop()
            let store = try sidecar.openStore()
            defer { try? store.close() }
            let totals = try store.coverageTotals()
            // One call in flight, two queued; every other copy dropped and counted. (On a badly
            // overloaded machine a slot can free early, e.g. a connect timeout: allow a little.)
            let errors = try store.candidateSummaries().first?.candidateErrors ?? [:]
            #expect((15...17).contains(totals["queue_full"] ?? 0), "totals: \(totals), errors: \(errors)")
            // The queued copies wait behind a call as long as their own timeout, so when the hung
            // call ends they may be found past `max_queue_wait` (its default) and expire.
            let waited = (totals["candidate_error"] ?? 0) + (totals["queue_expired"] ?? 0)
            #expect((3...5).contains(waited), "totals: \(totals), errors: \(errors)")
            #expect(totals.values.reduce(0, +) == 20, "every request is accounted for")
        }
    }

    @Test func memoryStaysBoundedWhileTenThousandRequestsPassAHungCandidate() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json(Self.baselineBody) },
            candidates: [("stuck", .responder { _ in FixtureResponse(mode: .hang) })],
            configure: { configuration in
                configuration.routes[0].candidates[0].queueCapacity = 200
                configuration.routes[0].candidates[0].timeout = .seconds(3)
            }
        ) { sidecar, _, _ in
            let requests = (0..<10_000).map { ReplayRequest(method: "POST", path: "/infer/\($0)", body: Array(#"{"inputs":[1,2,3]}"#.utf8)) }
            let warmup = try await Replayer(port: sidecar.port, requests: Array(requests.prefix(500)), concurrency: 8).run()
            #expect(warmup.completed == 500)
            let before = residentMemoryBytes()
            let outcome = try await Replayer(port: sidecar.port, requests: requests, concurrency: 16).run()
            let after = residentMemoryBytes()
            #expect(outcome.completed == 10_000 && outcome.failures == 0)
            #expect(outcome.statusCounts == [200: 10_000])
            let grown = after - before
            #expect(grown < 64 << 20, "resident memory grew by \(grown >> 20) MiB")
            let statistics = sidecar.sidecar.statistics.snapshot
            #expect(statistics.shadowDropped >= 10_000 - 300)
        }
    }
}
