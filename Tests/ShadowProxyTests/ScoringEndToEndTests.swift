import Foundation
import GRDB
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// Scorers through the sidecar, against fixture models whose disagreement is known by construction.
@Suite(.timeLimit(.minutes(3))) struct ScoringEndToEndTests {
    static func requests(for spec: ModelSpec, count: Int) -> [ReplayRequest] {
        (0..<count).map { index in
            let value = Double(index) * 0.37
            switch spec.api {
            case .kserveV2:
                return ReplayRequest(
                    method: "POST",
                    path: "/v2/models/\(spec.name)/infer",
                    body: Array(#"{"id":"\#(index)","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[\#(value)]}]}"#.utf8)
                )
            case .tfServing:
                return ReplayRequest(method: "POST", path: "/v1/models/\(spec.name):predict", body: Array(#"{"instances":[[\#(value), 1.0]]}"#.utf8))
            case .openAI:
                return ReplayRequest(
                    method: "POST",
                    path: "/v1/chat/completions",
                    body: Array(#"{"model":"m","messages":[{"role":"user","content":"describe picture \#(index)"}]}"#.utf8)
                )
            case .anthropic:
                // Every other request streamed: both forms are reassembled and scored alike.
                return ReplayRequest(
                    method: "POST",
                    path: "/v1/messages",
                    body: Array(
                        #"{"model":"m","max_tokens":64,"stream":\#(index % 2 == 0),"messages":[{"role":"user","content":"describe picture \#(index)"}]}"#
                            .utf8
                    )
                )
            }
        }
    }

    @Test(arguments: [
        (ModelSpec.API.kserveV2, ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label")),
        (ModelSpec.API.kserveV2, ScorerConfiguration(kind: .json, outputProtocol: .kserveV2)),
        (ModelSpec.API.tfServing, ScorerConfiguration(kind: .label, outputProtocol: .tfServing)),
        (ModelSpec.API.tfServing, ScorerConfiguration(kind: .distribution, outputProtocol: .tfServing)),
        (ModelSpec.API.openAI, ScorerConfiguration(kind: .text, outputProtocol: .openAI)),
        (ModelSpec.API.openAI, ScorerConfiguration(kind: .json, outputProtocol: .openAI, ignorePaths: ["$.usage", "$.model"])),
        (ModelSpec.API.anthropic, ScorerConfiguration(kind: .text, outputProtocol: .anthropic)),
    ])
    func divergenceMatchesTheInjectedRate(api: ModelSpec.API, scorer: ScorerConfiguration) async throws {
        let baselineSpec = ModelSpec(version: "1", api: api)
        let candidateSpec = ModelSpec(version: "2", disagreeRate: 0.2, api: api)
        let candidate = ModelFixture(spec: candidateSpec)
        let traffic = Self.requests(for: baselineSpec, count: 300)
        let expected = traffic.filter { candidate.plannedOutcome(forBody: $0.body) == .disagree }.count
        #expect(expected > 30 && expected < 100)
        try await withSidecar(
            baseline: .responder(ModelFixture(spec: baselineSpec).responder),
            candidates: [("next", .responder(candidate.responder))],
            configure: { $0.routes[0].scorer = scorer }
        ) { sidecar, _, _ in
            let outcome = try await Replayer(port: sidecar.port, requests: traffic, concurrency: 4).run()
            #expect(outcome.statusCounts == [200: 300])
            await sidecar.stop()
            let store = try sidecar.openStore()
            defer { try? store.close() }
            let summary = try #require(try store.candidateSummaries().first)
            #expect(summary.compared == 300)
            #expect(summary.diverged == expected, "\(api) with \(scorer.kind): \(summary.diverged) diverged, \(expected) disagree by construction")
        }
    }

    @Test func anAATestOnADeterministicModelShowsNoDivergence() async throws {
        let model = ModelFixture(spec: ModelSpec(version: "1"))
        try await withSidecar(
            baseline: .responder(model.responder),
            configure: { configuration in
                configuration.routes[0].scorer = ScorerConfiguration(kind: .json, outputProtocol: .kserveV2)
                configuration.routes[0].noiseFloor = NoiseFloorConfiguration(samplePercent: 100)
            }
        ) { sidecar, baseline, _ in
            _ = try await Replayer(port: sidecar.port, requests: ReplayRequest.generated(count: 200), concurrency: 4).run()
            await sidecar.stop()
            // With no replica URL, the copies go to the baseline itself a second time.
            #expect(baseline?.requestCount == 400)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            try await queue.read { (db: Database) throws in
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE candidate = 'aa-replica'") == 200)
                #expect(try Int.fetchOne(db, sql: "SELECT sum(diverged) FROM pairs WHERE candidate = 'aa-replica'") == 0)
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM noise_floor") == 0)
            }
        }
    }

    @Test func anAATestFindsInjectedNoiseAndTheCandidateIsScoredAboveIt() async throws {
        let noiseRate = 0.1
        let noisy = ModelFixture(spec: ModelSpec(version: "1", noiseRate: noiseRate))
        let challenger = ModelFixture(spec: ModelSpec(version: "2", disagreeRate: 0.1, noiseRate: noiseRate))
        let replica = try await noisy.start()
        let traffic = ReplayRequest.generated(count: 1_000)
        try await withSidecar(
            baseline: .responder(noisy.responder),
            candidates: [("next", .responder(challenger.responder))],
            configure: { configuration in
                configuration.server.threads = 1
                configuration.storage.batchSize = 20
                configuration.routes[0].scorer = ScorerConfiguration(kind: .json, outputProtocol: .kserveV2)
                configuration.routes[0].noiseFloor = NoiseFloorConfiguration(
                    replica: UpstreamURL(host: "127.0.0.1", port: replica.port),
                    maxDisagreement: 0.02,
                    minPairs: 100,
                    autoIgnore: true
                )
            }
        ) { sidecar, _, _ in
            // Learn the noise floor first, then measure the candidate against it.
            _ = try await Replayer(port: sidecar.port, requests: Array(traffic.prefix(400)), concurrency: 2).run()
            // Every A/A pair of the first phase written (the noise floor is refreshed with them).
            let learning = try DatabaseQueue(path: sidecar.databasePath)
            _ = try await waitForRows(learning, count: 400, sql: "SELECT 1 FROM pairs WHERE candidate = 'aa-replica'", within: .seconds(30))
            try learning.close()
            _ = try await Replayer(port: sidecar.port, requests: Array(traffic.dropFirst(400)), concurrency: 2).run()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            try await queue.read { (db: Database) throws in
                // A/A divergence at the injected rate: two calls differ unless neither was jittered.
                let aaRate = try Double.fetchOne(db, sql: "SELECT avg(diverged) FROM pairs WHERE candidate = 'aa-replica'") ?? 0
                let expected = 1 - (1 - noiseRate) * (1 - noiseRate)
                let sigma = (expected * (1 - expected) / 1_000).squareRoot()
                #expect(abs(aaRate - expected) < 4 * sigma, "A/A rate \(aaRate), expected \(expected)")
                let noisyPaths = try String.fetchAll(db, sql: "SELECT path FROM noise_floor WHERE rate > 0.02")
                #expect(noisyPaths.contains("$.outputs[1].data[0]"), "noisy paths: \(noisyPaths)")
                #expect(!noisyPaths.contains("$.outputs[0].data[0]"), "the label is not noise")
                // After the noise floor is known, the candidate diverges only where it really disagrees.
                let late =
                    try Double.fetchOne(
                        db,
                        sql:
                            "SELECT avg(diverged) FROM pairs WHERE candidate = 'next' AND request_id IN (SELECT request_id FROM pairs ORDER BY received_at_us DESC LIMIT 1200)"
                    ) ?? 0
                // The challenger disagrees on 10% of labels: that stays (an empty or all-ignoring
                // scorer would pass an upper bound alone), the noise does not (it would add ~19%).
                #expect(late > 0.06 && late < 0.16, "candidate divergence above the noise floor: \(late)")
            }
        }
        try await replica.stop()
    }
}
