import Foundation
import GRDB
import Logging
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowReplay
import ShadowStore
import Testing

@testable import ShadowProxy

/// `shadowd replay`: recorded traffic re-sent to a candidate gives the divergence a live shadow
/// run of the same requests recorded; unreplayable requests are counted; a rerun resumes.
@Suite(.timeLimit(.minutes(2))) struct BacktestTests {
    @Test func aReplayedCandidateDivergesAsItDidLiveAndARerunResumes() async throws {
        let baselineSpec = ModelSpec(version: "1")
        let candidateSpec = ModelSpec(version: "2", disagreeRate: 0.2)
        let candidate = try await ModelFixture(spec: candidateSpec).start()
        let traffic = ScoringEndToEndTests.requests(for: baselineSpec, count: 120)
        var routeConfiguration: RouteConfiguration?
        var configuration: ShadowCore.Configuration?
        var livePath = ""
        var liveDiverged = 0
        let folder = NSTemporaryDirectory() + "shadowd-backtest-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await withSidecar(
            baseline: .responder(ModelFixture(spec: baselineSpec).responder),
            candidates: [("live", .port(candidate.port))],
            configure: { $0.routes[0].scorer = ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label") }
        ) { sidecar, _, _ in
            let outcome = try await Replayer(port: sidecar.port, requests: traffic, concurrency: 4).run()
            #expect(outcome.statusCounts == [200: 120])
            // Requests a replay must not repeat: a PUT (not an allowed method).
            let client = try await sidecar.client()
            for _ in 0..<3 { _ = try await client.send(method: .PUT, path: "/v2/models/classifier/infer", body: Array("{}".utf8)) }
            await client.close()
            await sidecar.stop()
            let store = try sidecar.openStore()
            liveDiverged = try #require(try store.candidateSummaries().first).diverged
            try store.close()
            livePath = folder + "/live.sqlite"
            try FileManager.default.copyItem(atPath: sidecar.databasePath, toPath: livePath)
            configuration = sidecar.sidecar.configuration
            routeConfiguration = sidecar.sidecar.configuration.routes[0]
        }
        var replayCandidate = try #require(routeConfiguration).candidates[0]
        replayCandidate.name = "v3"
        var options = Backtest.Options(route: try #require(routeConfiguration), candidate: replayCandidate)
        options.maxConsecutiveFailures = 1_000
        let outPath = folder + "/replay.sqlite"
        func replay() async throws -> Backtest.Summary {
            let source = try PairReader(path: livePath)
            let output = try PairStore(path: outPath)
            let client = try await UpstreamClient.make(
                candidate: replayCandidate,
                configuration: try #require(configuration),
                environment: [:],
                logger: Logger(label: "test")
            )
            let summary = try await Backtest(source: source, output: output, options: options, client: client, logger: Logger(label: "test")).run(
                now: { Int64(Date().timeIntervalSince1970 * 1_000_000) },
                sleep: { _ in }
            ) { _ in }
            await client.shutdown()
            try output.close()
            try source.close()
            return summary
        }
        let first = try await replay()
        #expect(first.replayed == 120 && first.skipped == [.methodNotAllowed: 3] && first.stopped == nil, "\(first)")
        let output = try PairStore(path: outPath)
        let replayed = try #require(try output.candidateSummaries().first { $0.candidate == "v3" })
        try output.close()
        #expect(replayed.compared == 120 && replayed.diverged == liveDiverged, "replayed \(replayed.diverged), live \(liveDiverged)")
        let queue = try DatabaseQueue(path: outPath)
        let sources = try await queue.read { try String.fetchAll($0, sql: "SELECT DISTINCT source FROM pairs") }
        try queue.close()
        #expect(sources == ["replay"])
        let second = try await replay()
        #expect(second.replayed == 0 && second.alreadyDone == 120, "a rerun resumes: \(second)")
        try await candidate.stop()
    }
}
