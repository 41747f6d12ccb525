import Foundation
import GRDB
import Logging
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowReplay
import ShadowStore
import Synchronization
import Testing

@testable import ShadowProxy

/// `shadowd replay`: recorded traffic re-sent to a candidate gives the divergence a live shadow
/// run of the same requests recorded; unreplayable requests are counted; a rerun resumes, also
/// after an interruption; `--speed` keeps the recorded gaps (on a virtual clock).
@Suite(.timeLimit(.minutes(2))) struct BacktestTests {
    /// A live shadow run of 120 requests (20% disagreement) and 3 PUTs, copied out of the sidecar.
    struct Live {
        var folder: String
        var path: String
        var configuration: ShadowCore.Configuration
        var route: RouteConfiguration
        var diverged: Int
        var candidate: FixtureServer

        func options(name: String) -> Backtest.Options {
            var candidate = self.route.candidates[0]
            candidate.name = name
            var options = Backtest.Options(route: self.route, candidate: candidate)
            options.maxConsecutiveFailures = 1_000
            return options
        }

        func replay(
            _ options: Backtest.Options,
            into outPath: String,
            now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1_000_000) },
            sleep: @escaping @Sendable (Int64) async throws -> Void = { _ in }
        ) async throws -> Backtest.Summary {
            let source = try PairReader(path: self.path)
            let output = try PairStore(path: outPath)
            let client = try await UpstreamClient.make(
                candidate: options.candidate,
                configuration: self.configuration,
                environment: [:],
                logger: Logger(label: "test")
            )
            defer {
                try? output.close()
                try? source.close()
            }
            do {
                let summary = try await Backtest(source: source, output: output, options: options, client: client, logger: Logger(label: "test"))
                    .run(now: now, sleep: sleep) { _ in }
                await client.shutdown()
                return summary
            } catch {
                await client.shutdown()
                throw error
            }
        }

        func stop() async throws {
            try await self.candidate.stop()
            try? FileManager.default.removeItem(atPath: self.folder)
        }
    }

    static func recordLive() async throws -> Live {
        let baselineSpec = ModelSpec(version: "1")
        let candidate = try await ModelFixture(spec: ModelSpec(version: "2", disagreeRate: 0.2)).start()
        let traffic = ScoringEndToEndTests.requests(for: baselineSpec, count: 120)
        let folder = NSTemporaryDirectory() + "shadowd-backtest-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var live: Live?
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
            let diverged = try #require(try store.candidateSummaries().first).diverged
            try store.close()
            let path = folder + "/live.sqlite"
            try FileManager.default.copyItem(atPath: sidecar.databasePath, toPath: path)
            live = Live(
                folder: folder,
                path: path,
                configuration: sidecar.sidecar.configuration,
                route: sidecar.sidecar.configuration.routes[0],
                diverged: diverged,
                candidate: candidate
            )
        }
        return try #require(live)
    }

    static func requestIDs(_ path: String, table: String = "pairs") async throws -> [String] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try await queue.read { try String.fetchAll($0, sql: "SELECT request_id FROM \(table) ORDER BY received_at_us, request_id") }
    }

    @Test func aReplayedCandidateDivergesAsItDidLiveAndARerunResumes() async throws {
        let live = try await Self.recordLive()
        let outPath = live.folder + "/replay.sqlite"
        let first = try await live.replay(live.options(name: "v3"), into: outPath)
        #expect(first.replayed == 120 && first.skipped == [.methodNotAllowed: 3] && first.stopped == nil, "\(first)")
        let output = try PairStore(path: outPath)
        let replayed = try #require(try output.candidateSummaries().first { $0.candidate == "v3" })
        try output.close()
        #expect(replayed.compared == 120 && replayed.diverged == live.diverged, "replayed \(replayed.diverged), live \(live.diverged)")
        let queue = try DatabaseQueue(path: outPath)
        let sources = try await queue.read { try String.fetchAll($0, sql: "SELECT DISTINCT source FROM pairs") }
        try queue.close()
        #expect(sources == ["replay"])
        let second = try await live.replay(live.options(name: "v3"), into: outPath)
        #expect(second.replayed == 0 && second.alreadyDone == 120, "a rerun resumes: \(second)")
        try await live.stop()
    }

    /// The daemon's redaction applies to replayed answers too: the candidate's answers are
    /// scored on their real values and written with the configured paths hashed.
    @Test func replayedAnswersAreRedactedAsTheDaemonRedacts() async throws {
        let live = try await Self.recordLive()
        let outPath = live.folder + "/replay.sqlite"
        var storage = live.configuration.storage
        storage.redaction = RedactionConfiguration(jsonPaths: ["$.outputs[*].data"])
        var options = live.options(name: "v3")
        options.redactor = Sidecar.redactor(storage, environment: ["SHADOWD_REDACT_KEY": "test-key"], logger: Logger(label: "test"))
        let summary = try await live.replay(options, into: outPath)
        #expect(summary.replayed == 120)
        let output = try PairStore(path: outPath)
        let replayed = try #require(try output.candidateSummaries().first { $0.candidate == "v3" })
        try output.close()
        #expect(replayed.diverged == live.diverged, "scored on the real answers: \(replayed.diverged) vs \(live.diverged)")
        let queue = try DatabaseQueue(path: outPath)
        let data = try await queue.read {
            try String.fetchAll($0, sql: "SELECT json_extract(candidate_body, '$.outputs[0].data') FROM pairs WHERE candidate_body IS NOT NULL")
        }
        try queue.close()
        #expect(data.count == 120 && data.allSatisfy { $0.hasPrefix("hmac-sha256:") }, "\(data.prefix(3))")
        try await live.stop()
    }

    /// `--speed 2x` on a virtual clock that only sleeping moves: each request goes out at its
    /// recorded offset halved. The clock "interrupts" the run (as Ctrl-C cancels it) at the 60th
    /// wait; the rerun replays exactly the rest: nothing lost, nothing sent twice.
    @Test func speedKeepsTheRecordedGapsAndAnInterruptedRunResumesWithoutLossOrDuplicates() async throws {
        let live = try await Self.recordLive()
        let recorded = try await Self.recordedArrivals(live.path)
        let outPath = live.folder + "/replay.sqlite"
        var options = live.options(name: "v3")
        options.pacing = .speed(2)
        let clock = Mutex((now: Int64(5_000_000), wakes: [Int64]()))
        await #expect(throws: CancellationError.self) {
            _ = try await live.replay(
                options,
                into: outPath,
                now: { clock.withLock { $0.now } },
                sleep: { micros in
                    try clock.withLock { state in
                        guard state.wakes.count < 60 else { throw CancellationError() }
                        state.now += micros
                        state.wakes.append(state.now - 5_000_000)
                    }
                }
            )
        }
        let wakes = clock.withLock { $0.wakes }
        // Every wake is a request's due time: its recorded offset from the first request, halved.
        let dues = Set(recorded.map { Int64((Double(max(0, $0 - recorded[0])) / 2).rounded()) })
        #expect(wakes.count == 60 && wakes.allSatisfy(dues.contains), "\(wakes.prefix(5)) vs \(dues.sorted().prefix(5))")
        #expect(wakes == wakes.sorted())
        let afterInterruption = try await Self.requestIDs(outPath)
        #expect(!afterInterruption.isEmpty && afterInterruption.count < 120 && Set(afterInterruption).count == afterInterruption.count)
        let resumed = try await live.replay(live.options(name: "v3"), into: outPath)
        #expect(resumed.alreadyDone == afterInterruption.count && resumed.replayed == 120 - afterInterruption.count, "\(resumed)")
        let all = try await Self.requestIDs(outPath)
        let recordedIDs = try await Self.requestIDs(live.path)
        #expect(all.count == 120 && Set(all).count == 120 && Set(all).isSubset(of: Set(recordedIDs)))
        try await live.stop()
    }

    /// Arrival times of the replayable (POST) requests, in the order replay sends them (by id).
    static func recordedArrivals(_ path: String) async throws -> [Int64] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try await queue.read {
            try Int64.fetchAll($0, sql: "SELECT received_at_us FROM exchanges WHERE method = 'POST' ORDER BY id")
        }
    }
}
