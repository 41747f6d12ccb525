import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowStore
import Synchronization

extension ShadowdCommand {
    /// Everything on built-in fixtures: two toy models, the sidecar, a replay, a summary.
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a baseline and a candidate fixture model and the sidecar on loopback, replay requests, print what was recorded.",
            subcommands: [AB.self]
        )

        @Option(help: "Database path (default: shadowd-demo.sqlite, recreated each run).")
        var db: String?

        @Option(help: "How many requests to replay (default: all of Fixtures/requests/*.jsonl, or 3000 generated).")
        var requests: Int?

        @Option(help: "Concurrent client connections.")
        var concurrency: Int = 16

        @Option(help: "Folder with replayable *.jsonl request files.")
        var requestsDir: String = "Fixtures/requests"

        @Option(help: "Folder with baseline.yaml and candidate.yaml model specs.")
        var modelsDir: String = "Fixtures/models"

        @Option(help: "Log level for the sidecar's own logs.")
        var logLevel: String = "warning"

        @Option(help: "How bodies are stored (storage.bodies): full, compressed or hash.")
        var bodies: String = "full"

        func run() async throws {
            guard let bodies = StorageConfiguration.BodyStorage(rawValue: self.bodies) else {
                let known = StorageConfiguration.BodyStorage.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("--bodies: expected one of \(known), got '\(self.bodies)'")
            }
            let started = ContinuousClock.now
            let logger = try bootstrapLogging(level: self.logLevel, label: "shadowd.demo")
            let databasePath = self.db ?? "shadowd-demo.sqlite"
            if self.db == nil {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: databasePath + suffix) }
            }
            let (baselineSpec, candidateSpec) = try self.loadSpecs()
            let traffic = try self.loadRequests()

            let baseline = try await ModelFixture(spec: baselineSpec).start()
            let candidate = try await ModelFixture(spec: candidateSpec).start()
            let configuration = Configuration(
                server: ServerConfiguration(listen: HostPort(host: "127.0.0.1", port: 0)),
                admin: AdminConfiguration(listen: nil),
                storage: {
                    var storage = StorageConfiguration(path: databasePath)
                    storage.bodies = bodies
                    return storage
                }(),
                routes: [
                    RouteConfiguration(
                        name: "classifier",
                        prefix: "/v2/",
                        baseline: BaselineConfiguration(url: UpstreamURL(host: "127.0.0.1", port: baseline.port), version: baselineSpec.version),
                        candidates: [
                            CandidateConfiguration(
                                name: "candidate",
                                url: UpstreamURL(host: "127.0.0.1", port: candidate.port),
                                version: candidateSpec.version
                            )
                        ],
                        scorer: ScorerConfiguration(kind: .json, ignorePaths: ["$.model_version"])
                    )
                ],
                revision: "demo"
            )
            let sidecar = try await Sidecar(configuration: configuration, logger: logger)
            let group = ServiceGroup(services: sidecar.services, logger: logger)
            let replay = try await withThrowingTaskGroup(of: ReplayOutcome?.self) { tasks in
                tasks.addTask {
                    try await group.run()
                    return nil
                }
                guard let port = await sidecar.proxy.address.port() else {
                    throw ValidationError("the sidecar did not start listening")
                }
                print("shadowd demo: baseline on :\(baseline.port), candidate on :\(candidate.port), sidecar on :\(port)")
                print("replaying \(traffic.count) requests with \(self.concurrency) connections…")
                let outcome = try await Replayer(port: port, requests: traffic, concurrency: self.concurrency).run()
                // Graceful shutdown drains the shadow work and flushes the writer before it returns.
                await group.triggerGracefulShutdown()
                for try await _ in tasks {}
                return outcome
            }
            try await sidecar.shutdown()
            try await baseline.stop()
            try await candidate.stop()
            try self.report(
                databasePath: databasePath,
                replay: replay,
                traffic: traffic,
                candidateSpec: candidateSpec,
                elapsed: ContinuousClock.now - started
            )
        }

        private func loadSpecs() throws -> (ModelSpec, ModelSpec) {
            func load(_ name: String, fallback: ModelSpec) throws -> ModelSpec {
                let path = "\(self.modelsDir)/\(name).yaml"
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return fallback }
                return try ModelSpec.load(yaml: text)
            }
            return (
                try load("baseline", fallback: ModelSpec(version: "1.0", latencyMin: .milliseconds(1), latencyMax: .milliseconds(3))),
                try load(
                    "candidate",
                    fallback: ModelSpec(version: "2.0-rc1", disagreeRate: 0.1, latencyMin: .milliseconds(1), latencyMax: .milliseconds(4))
                )
            )
        }

        private func loadRequests() throws -> [ReplayRequest] {
            var requests: [ReplayRequest] = []
            if let files = try? FileManager.default.contentsOfDirectory(atPath: self.requestsDir) {
                for file in files.sorted() where file.hasSuffix(".jsonl") {
                    let path = "\(self.requestsDir)/\(file)"
                    requests += try ReplayRequest.parseLines(try String(contentsOfFile: path, encoding: .utf8), source: path)
                }
            }
            if requests.isEmpty { requests = ReplayRequest.generated(count: 3000) }
            if let limit = self.requests {
                guard limit > 0 else { throw ValidationError("--requests must be positive") }
                while requests.count < limit { requests += requests.prefix(limit - requests.count) }
                requests = Array(requests.prefix(limit))
            }
            return requests
        }

        private func report(
            databasePath: String,
            replay: ReplayOutcome?,
            traffic: [ReplayRequest],
            candidateSpec: ModelSpec,
            elapsed: Duration
        ) throws {
            let store = try PairStore(path: databasePath)
            defer { try? store.close() }
            let summaries = try store.candidateSummaries()
            let coverage = try store.coverageTotals()
            let expected = Self.expectedDivergence(traffic, candidateSpec: candidateSpec)
            func ms(_ micros: Int64) -> String { String(format: "%.2f ms", Double(micros) / 1000) }
            if let replay {
                let sorted = replay.latencies.sorted()
                if !sorted.isEmpty {
                    func at(_ q: Double) -> String {
                        String(format: "%.2f ms", Double(sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))].components.attoseconds) / 1e15)
                    }
                    print("client view (through the sidecar): p50 \(at(0.5)), p99 \(at(0.99))")
                }
                print(
                    "client: \(replay.completed) responses (\(replay.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", "))), \(replay.failures) transport failures"
                )
            }
            for summary in summaries {
                print("")
                print("route \(summary.route), candidate \(summary.candidate):")
                print("  pairs recorded:     \(summary.pairs) (\(summary.compared) compared)")
                print(
                    String(
                        format: "  divergence rate:    %.2f%% (known by construction: %.2f%%, of which %.2f%% injected candidate errors)",
                        summary.divergenceRate * 100,
                        expected.total * 100,
                        expected.errors * 100
                    )
                )
                print("  baseline latency:   p50 \(ms(summary.baselineLatencyMicros.p50)), p99 \(ms(summary.baselineLatencyMicros.p99))")
                print("  candidate latency:  p50 \(ms(summary.candidateLatencyMicros.p50)), p99 \(ms(summary.candidateLatencyMicros.p99))")
                if !summary.candidateErrors.isEmpty { print("  candidate errors:   \(summary.candidateErrors)") }
            }
            let dropped = coverage.filter { CoverageReason(rawValue: $0.key)?.isRecorded != true }
            print("")
            print("coverage: \(coverage.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))")
            print("drops (not compared): \(dropped.values.reduce(0, +))")
            print(
                String(
                    format: "done in %.1f s. Database: %@",
                    Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                    databasePath
                )
            )
            print("try: sqlite3 \(databasePath) \"SELECT candidate, count(*), avg(diverged) FROM pairs GROUP BY candidate;\"")
        }

        /// The share of replayed inference requests that diverge by construction: the candidate
        /// fixture disagrees on them, or answers them with an injected error.
        static func expectedDivergence(_ traffic: [ReplayRequest], candidateSpec: ModelSpec) -> (total: Double, errors: Double) {
            let model = ModelFixture(spec: candidateSpec)
            let outcomes = traffic.compactMap { model.plannedOutcome(forBody: $0.body) }
            guard !outcomes.isEmpty else { return (0, 0) }
            let diverging = outcomes.filter { $0 != .agree }.count
            let errors = outcomes.filter { $0 == .error }.count
            return (Double(diverging) / Double(outcomes.count), Double(errors) / Double(outcomes.count))
        }
    }
}
