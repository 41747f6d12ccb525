import Foundation
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowStore
import ShadowTensor
import Testing

extension HTTP2AndGRPCTests {
    /// `IsolationTests` over h2c: whatever a gRPC candidate does, the gRPC client gets the
    /// baseline's answer (messages and trailers), and the candidate's failure is recorded by kind.
    @Suite(.timeLimit(.minutes(3))) struct GRPCIsolationTests {
        static let answer = GRPCFraming.frame(Array("baseline-answer".utf8))

        /// Faults that end by themselves (refused at once, or by the timeout) are not gated; the
        /// others are held by this gate until the client has every answer.
        let gate = FixtureGate()

        enum CandidateFault: String, CaseIterable, Sendable {
            case hangs, refuses, slow, resetsStream, goesAway, garbage, answersAGRPCError

            func upstream(_ gate: FixtureGate) -> Upstream {
                switch self {
                case .hangs: return .h2c { _ in FixtureResponse(mode: .hang) }
                case .refuses: return .refusing
                case .slow:
                    return .h2c { _ in
                        FixtureResponse(headers: [("content-type", "application/grpc")], body: GRPCIsolationTests.answer, delay: .seconds(20))
                    }
                case .resetsStream: return .h2c { _ in FixtureResponse(mode: .closeImmediately, gate: gate) }
                case .goesAway: return .h2c { _ in FixtureResponse(mode: .goAway, gate: gate) }
                case .garbage: return .h2c { _ in FixtureResponse(mode: .garbage, gate: gate) }
                case .answersAGRPCError:
                    return .h2c { _ in
                        FixtureResponse(headers: [("content-type", "application/grpc")], gate: gate, trailers: [("grpc-status", "13")])
                    }
                }
            }

            var isGated: Bool { ![.hangs, .refuses, .slow].contains(self) }

            /// What the record says of the candidate: an error kind, or (answered) nil.
            var expectedError: String? {
                switch self {
                case .hangs, .slow: "timeout"
                case .refuses: "refused"
                case .resetsStream, .goesAway, .garbage: "reset"
                case .answersAGRPCError: nil
                }
            }
        }

        @Test(arguments: CandidateFault.allCases)
        func theGRPCClientNeverWaitsForAFailingCandidate(fault: CandidateFault) async throws {
            let calls = 20
            try await withSidecar(
                baseline: .h2c { _ in
                    FixtureResponse(headers: [("content-type", "application/grpc")], body: Self.answer, trailers: [("grpc-status", "0")])
                },
                candidates: [("broken", fault.upstream(self.gate))],
                configure: { configuration in
                    GRPCEndToEndTests.grpcRoute(ScorerConfiguration(kind: .exact))(&configuration)
                    configuration.routes[0].candidates[0].maxConcurrency = 128
                    configuration.routes[0].candidates[0].timeout = fault.isGated ? .seconds(120) : .seconds(4)
                }
            ) { sidecar, _, _ in
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                var slowest = Duration.zero
                for index in 0..<calls {
                    let response = try await client.unary(path: "/inference.GRPCInferenceService/ModelInfer", message: Array("call-\(index)".utf8))
                    #expect(response.body == Self.answer)
                    #expect(response.grpcStatus == 0)
                    slowest = max(slowest, response.latency)
                }
                if fault.isGated {
                    // Order, not a clock: every answer reached the client while every copy was held.
                    #expect(sidecar.shadowPending == calls, "copies still held")
                    self.gate.open()
                } else if fault != .refuses {
                    #expect(slowest < .seconds(4), "a client call took \(slowest)")
                }
                await client.close()
                await sidecar.stop()
                let store = try sidecar.openStore()
                defer { try? store.close() }
                let summary = try #require(try store.candidateSummaries().first)
                #expect(summary.pairs == calls, "every mirrored call is recorded exactly once")
                if let expected = fault.expectedError {
                    #expect(summary.candidateErrors == [expected: calls], "\(summary.candidateErrors)")
                } else {
                    #expect(summary.diverged == calls, "a gRPC error against an OK diverges")
                }
            }
        }
    }
}
