import ArgumentParser
import Foundation
import Logging
import NIOHTTP1
import ServiceLifecycle
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowReport
import ShadowStore
import Synchronization

extension ShadowdCommand.Demo {
    /// From shadow to A/B on fixtures: a simulated population with a known truth, a ramped
    /// experiment, outcomes posted back, and the report's decision next to the truth.
    struct AB: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ab",
            abstract: "Run an A/B experiment on fixture models with a simulated population and print the decision beside the truth."
        )

        /// `--db`, `--concurrency` and `--log-level` are `shadowd demo`'s (they parse after `ab` too).
        @ParentCommand var demo: ShadowdCommand.Demo

        @Option(help: "Simulated users.")
        var users: Int = 30_000

        @Option(help: "The population's seed.")
        var seed: UInt64 = 42

        func run() async throws {
            let started = ContinuousClock.now
            let logger = try bootstrapLogging(level: self.demo.logLevel, label: "shadowd.demo")
            let databasePath = self.demo.db ?? "shadowd-demo-ab.sqlite"
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: databasePath + suffix) }
            let population = ABPopulation(users: self.users, seed: self.seed)
            // Control and a treatment a few milliseconds slower; both agree on 95% of inputs.
            let control = try await ModelFixture(spec: ModelSpec(version: "1.0", latencyMin: .milliseconds(1), latencyMax: .milliseconds(3))).start()
            let treatment = try await ModelFixture(
                spec: ModelSpec(version: "2.0", seed: 7, disagreeRate: 0.05, latencyMin: .milliseconds(3), latencyMax: .milliseconds(6))
            ).start()
            var experiment = ExperimentConfiguration(name: "classifier-v2-ab", treatment: "v2", key: .header("x-user-id"))
            experiment.allocation = [5, 20, 50]
            experiment.stageMinDuration = .seconds(2)
            experiment.stageMinRequests = 300
            // Treatment is a few milliseconds slower by design: allowed, up to 10 ms at p99.
            experiment.guardrails.maxP99Regression = .absolute(.milliseconds(10))
            experiment.guardrails.maxErrorRateIncrease = 0.02
            experiment.guardrails.maxFallbackRate = 0.02
            experiment.metrics = [
                .init(name: "conversion", kind: .binary), .init(name: "revenue", kind: .continuous),
                .init(name: "click", kind: .binary, per: .request),
            ]
            experiment.primary = "conversion"
            experiment.guardrails.maxDecrease = ["revenue": 0.05]
            experiment.minimumDetectableEffect = 0.1
            experiment.minDuration = .zero
            let configuration = Configuration(
                server: ServerConfiguration(listen: HostPort(host: "127.0.0.1", port: 0)),
                admin: AdminConfiguration(listen: HostPort(host: "127.0.0.1", port: 0)),
                storage: StorageConfiguration(path: databasePath),
                routes: [
                    {
                        var route = RouteConfiguration(
                            name: "classifier",
                            prefix: "/v2/",
                            baseline: BaselineConfiguration(url: UpstreamURL(host: "127.0.0.1", port: control.port), version: "1.0"),
                            candidates: [
                                CandidateConfiguration(name: "v2", url: UpstreamURL(host: "127.0.0.1", port: treatment.port), version: "2.0")
                            ],
                            scorer: ScorerConfiguration(kind: .json, ignorePaths: ["$.model_version"])
                        )
                        route.experiment = experiment
                        return route
                    }()
                ],
                revision: "demo-ab"
            )
            let sidecar = try await Sidecar(configuration: configuration, logger: logger)
            let group = ServiceGroup(services: sidecar.services, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                guard let port = await sidecar.proxy.address.port(), let admin = await sidecar.admin?.address.port() else {
                    throw ValidationError("the sidecar did not start listening")
                }
                print("shadowd demo ab: control on :\(control.port), treatment on :\(treatment.port), sidecar on :\(port), admin on :\(admin)")
                print(
                    "simulating \(population.users) users: conversion \(Units.formatPercent(population.controlConversion)) under control, "
                        + "\(Units.formatPercent(population.treatmentConversion)) under treatment (a \(Units.formatPercent(population.trueLift)) lift)…"
                )
                try await self.simulate(population, port: port, admin: admin, sidecar: sidecar)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            try await sidecar.shutdown()
            try await control.stop()
            try await treatment.stop()

            var builder = ReportBuilder(
                options: ReportOptions(configuration: configuration, nowMicros: Int64(Date().timeIntervalSince1970 * 1_000_000))
            )
            let reader = try PairReader(path: databasePath)
            try builder.add(reader)
            try reader.close()
            let report = builder.build()
            guard let result = report.experiments?.first else { throw ValidationError("no experiment in the report") }
            print("")
            for metric in result.metrics {
                print(
                    "  \(metric.name)\(metric.per == "request" ? " per request" : ""): control \(Units.fixed(metric.arms[0].mean, decimals: 4)) (\(metric.arms[0].users) users), treatment "
                        + "\(Units.fixed(metric.arms[1].mean, decimals: 4)) (\(metric.arms[1].users) users), lift \(Units.formatPercent(metric.relativeLift.estimate)) "
                        + "[\(Units.formatPercent(metric.relativeLift.ciLow)), \(Units.formatPercent(metric.relativeLift.ciHigh))] (always-valid), "
                        + "P(treatment better) \(Units.formatPercent(metric.probabilityTreatmentBetter))"
                )
            }
            print(
                "  sample ratio: \(result.srm.controlUsers) / \(result.srm.treatmentUsers) users, p = \(Units.fixed(result.srm.pValue, decimals: 3))"
            )
            print("  stages reached: \(result.stage.map { "\(result.allocation[$0])% per arm" } ?? "?"); fallbacks \(result.fallbacks)")
            print("")
            print("decision: \(result.decision.uppercased()): \(result.reasons.joined(separator: "; "))")
            print(
                "truth:    conversion lift \(Units.formatPercent(population.trueLift)) (\(Units.formatPercent(population.controlConversion)) → \(Units.formatPercent(population.treatmentConversion))); "
                    + "clicks per request \(Units.formatPercent(population.controlClickRate)) → \(Units.formatPercent(population.treatmentClickRate))"
            )
            print(
                "database: \(databasePath); shadowd report --db \(databasePath) writes the full report. Took \(Units.format(ContinuousClock.now - started))."
            )
        }

        /// Users arrive in order, a client connection per worker; each user's outcome follows the
        /// model that served them, and outcomes are posted in batches like an application would.
        private func simulate(_ population: ABPopulation, port: Int, admin: Int, sidecar: Sidecar) async throws {
            let state = SimulationState()
            let outcomeClient = try await HTTPTestClient.connect(port: admin)
            try await withThrowingTaskGroup(of: Void.self) { workers in
                for _ in 0..<max(1, self.demo.concurrency) {
                    workers.addTask {
                        let client = try await HTTPTestClient.connect(port: port)
                        while true {
                            let index = state.next.add(1, ordering: .relaxed).oldValue
                            guard index < population.users else { break }
                            let user = population.user(index)
                            var served: String?
                            var clicks: [String] = []
                            for request in 0..<user.requests {
                                let body =
                                    #"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[\#(index % 97),\#(request),\#(index % 13),1]}]}"#
                                let response = try await client.send(
                                    method: .POST,
                                    path: "/v2/models/classifier/infer",
                                    headers: [("x-user-id", user.key), ("content-type", "application/json")],
                                    body: Array(body.utf8)
                                )
                                served = response.header("x-shadowd-arm")
                                // Clicks are per answer, joined by its request id.
                                if let id = response.header("x-request-id"),
                                    population.clicks(index, request: request, servedBy: served == "treatment" ? .treatment : .control)
                                {
                                    clicks.append(#"{"request_id":"\#(id)","metric":"click","value":1,"event_id":"\#(id)-k"}"#)
                                }
                            }
                            state.arms.withLock { $0[served ?? "none", default: 0] += 1 }
                            // Every user's conversion is reported, enrolled or not (the app does
                            // not know); the report joins only the enrolled ones.
                            let outcome = population.outcome(index, servedBy: served == "treatment" ? .treatment : .control)
                            var lines = [
                                #"{"key":"\#(user.key)","metric":"conversion","value":\#(outcome.converted ? 1 : 0),"event_id":"\#(user.key)-c"}"#
                            ]
                            if outcome.converted {
                                lines.append(#"{"key":"\#(user.key)","metric":"revenue","value":\#(outcome.revenue),"event_id":"\#(user.key)-r"}"#)
                            }
                            state.pending.withLock { $0 += lines + clicks }
                        }
                        await client.close()
                    }
                }
                workers.addTask {
                    // Outcomes go in while traffic flows, a batch every half second.
                    var done = false
                    while !done {
                        try await Task.sleep(for: .milliseconds(500))
                        done = state.next.load(ordering: .relaxed) >= population.users
                        let batch = state.pending.withLock { lines in
                            defer { lines = [] }
                            return lines
                        }
                        if !batch.isEmpty { try await self.post(batch, client: outcomeClient) }
                    }
                }
                try await workers.waitForAll()
            }
            let rest = state.pending.withLock { $0 }
            if !rest.isEmpty { try await self.post(rest, client: outcomeClient) }
            await outcomeClient.close()
            print("served: \(state.arms.withLock { $0 }.sorted { $0.key < $1.key }.map { "\($0.value) users by \($0.key)" }.joined(separator: ", "))")
        }

        private func post(_ lines: [String], client: HTTPTestClient) async throws {
            let response = try await client.send(
                method: .POST,
                path: "/outcomes",
                headers: [("content-type", "application/x-ndjson")],
                body: Array(lines.joined(separator: "\n").utf8)
            )
            guard response.status == 200 else { throw ValidationError("posting outcomes failed: \(response.status) \(response.text)") }
        }
    }
}

/// What the demo's client workers share.
private final class SimulationState: Sendable {
    let next = Atomic<Int>(0)
    let pending = Mutex<[String]>([])
    let arms = Mutex<[String: Int]>([:])
}
