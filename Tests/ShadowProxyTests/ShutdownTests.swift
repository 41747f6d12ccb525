import Foundation
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Synchronization
import Testing

@testable import ShadowProxy

/// A graceful shutdown finishes what it accepted before it returns.
@Suite(.timeLimit(.minutes(1))) struct ShutdownTests {
    /// A copy still at its candidate when the shutdown begins is waited for, not cut: the test
    /// holds it with a gate, sees the shutdown waiting on it (listener closed, the copy pending,
    /// `stop` not returned), releases it, and the pair is recorded as compared. The drain is woken
    /// by that copy's end: its deadline (the candidate's 120 s timeout plus a second) is far off,
    /// past the suite's time limit.
    @Test func theShutdownWaitsForACopyStillAtItsCandidate() async throws {
        let gate = FixtureGate()
        let answer = #"{"label":"cat"}"#
        try await withSidecar(
            baseline: .responder { _ in .json(answer) },
            candidates: [
                (
                    "held",
                    .responder { _ in
                        var response = FixtureResponse.json(answer)
                        response.gate = gate
                        return response
                    }
                )
            ],
            configure: { $0.routes[0].candidates[0].timeout = .seconds(120) }
        ) { sidecar, _, candidates in
            let client = try await sidecar.client()
            let response = try await client.send(method: .POST, path: "/infer", body: Array("{}".utf8))
            #expect(response.status == 200)
            await client.close()
            #expect(try await eventually { candidates[0]?.requestCount == 1 }, "the copy reached the candidate")

            let stopped = Atomic(false)
            let stopping = Task {
                await sidecar.stop()
                stopped.store(true, ordering: .sequentiallyConsistent)
            }
            let listenerClosed = try await eventually {
                (try? RawConnection(port: sidecar.port, timeout: .seconds(1))) == nil
            }
            #expect(listenerClosed, "the shutdown began: no new connection is accepted")
            #expect(sidecar.shadowPending == 1, "the held copy is still pending")
            let returnedEarly = stopped.load(ordering: .sequentiallyConsistent)
            #expect(!returnedEarly, "stop waits while the copy is held")
            gate.open()
            await stopping.value

            let store = try sidecar.openStore()
            defer { try? store.close() }
            let summary = try #require(try store.candidateSummaries().first)
            #expect(summary.pairs == 1 && summary.compared == 1 && summary.candidateErrors.isEmpty, "\(summary)")
        }
    }
}
