import Foundation
import GRDB
import Logging
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// Live experiments through real sockets and a real database: the assigned arm answers, a
/// failing or slow treatment is stopped with clients getting control's answers, the stop
/// survives a restart, and a healthy treatment climbs its stages.
@Suite(.timeLimit(.minutes(2))) struct ExperimentEndToEndTests {
    static let control = #"{"outputs":[{"name":"label","data":["cat"]}]}"#
    static let treatment = #"{"outputs":[{"name":"label","data":["dog"]}]}"#

    /// Users whose keys fall in each arm at `percent`, and one not enrolled.
    static func users(percent: Double, count: Int, salt: String = "exp") -> (treatment: [String], control: [String], outside: [String]) {
        var result: (treatment: [String], control: [String], outside: [String]) = ([], [], [])
        var index = 0
        // At 50% every keyed user is enrolled: nobody is outside.
        let outside = percent < ServingDecision.maxTreatmentPercent ? count : 0
        while result.treatment.count < count || result.control.count < count || result.outside.count < outside {
            let key = "user-\(index)"
            index += 1
            switch ServingDecision.decide(keyPosition: Sampler.position(key: key.utf8, salt: salt), treatmentPercent: percent).arm {
            case .treatment? where result.treatment.count < count: result.treatment.append(key)
            case .control? where result.control.count < count: result.control.append(key)
            case nil where result.outside.count < outside: result.outside.append(key)
            default: break
            }
        }
        return result
    }

    static func experiment(
        allocation: [Double] = [50],
        configure: @escaping (inout ExperimentConfiguration) -> Void = { _ in }
    ) -> (inout ShadowCore.Configuration) -> Void {
        { configuration in
            var experiment = ExperimentConfiguration(name: "exp", treatment: "v2", key: .header("x-user-id"))
            experiment.allocation = allocation
            experiment.stageMinDuration = .seconds(3600)
            configure(&experiment)
            configuration.routes[0].experiment = experiment
        }
    }

    func send(_ client: HTTPTestClient, user: String?) async throws -> HTTPTestResponse {
        try await client.send(method: .POST, path: "/infer", headers: user.map { [("x-user-id", $0)] } ?? [], body: Array("{}".utf8))
    }

    @Test func theAssignedArmAnswersAndSaysSo() async throws {
        let users = Self.users(percent: 50, count: 5)
        try await withSidecar(
            baseline: .responder { _ in .json(Self.control) },
            candidates: [("v2", .responder { _ in .json(Self.treatment) })],
            configure: Self.experiment()
        ) { sidecar, _, candidates in
            let client = try await sidecar.client()
            for user in users.treatment {
                let response = try await self.send(client, user: user)
                #expect(response.text == Self.treatment && response.header("x-shadowd-arm") == "treatment")
                #expect(response.header("x-request-id")?.isEmpty == false)
            }
            for user in users.control {
                let response = try await self.send(client, user: user)
                #expect(response.text == Self.control && response.header("x-shadowd-arm") == "control")
            }
            let anonymous = try await self.send(client, user: nil)
            #expect(anonymous.text == Self.control && anonymous.header("x-shadowd-arm") == "none")
            #expect(sidecar.sidecar.experiments.statuses.first?.requestsWithoutKey == 1, "requests without the key are counted")
            await client.close()
            #expect(try await eventually { sidecar.shadowPending == 0 })
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            let rows = try queue.read { (db: Database) throws -> [Row] in
                try Row.fetchAll(db, sql: "SELECT arm, served_by, fallback, candidate, outcome FROM pairs WHERE experiment = 'exp' ORDER BY arm")
            }
            // Every enrolled request is a pair: control's answer against treatment's, whoever served.
            #expect(rows.count == 11, "\(rows)")
            let arms = rows.map { ($0["arm"] as String?, $0["served_by"] as String?, $0["fallback"] as Int?, $0["outcome"] as String?) }
            #expect(arms.filter { $0.0 == "treatment" }.count == 5 && arms.filter { $0.0 == "control" }.count == 5)
            #expect(arms.filter { $0.0 == "treatment" }.allSatisfy { $0.1 == "treatment" && $0.3 == "compared" })
            #expect(arms.filter { $0.0 == "control" }.allSatisfy { $0.1 == "control" && $0.2 == 0 && $0.3 == "compared" })
            let enrolled = try await queue.read { (db: Database) throws -> Int? in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM experiment_users WHERE arm IS NOT NULL")
            }
            #expect(enrolled == 10)
            #expect(candidates[0]?.requestCount == 11, "treatment served 5, got copies of 5 control and 1 unkeyed request")
        }
    }

    @Test func aTreatmentAnswering500sFallsBackIsStoppedAndStaysStoppedAfterARestart() async throws {
        let users = Self.users(percent: 50, count: 40)
        let saved = NSTemporaryDirectory() + "shadowd-experiment-\(UUID().uuidString).sqlite"
        defer { try? FileManager.default.removeItem(atPath: saved) }
        var routes: [RouteConfiguration] = []
        try await withSidecar(
            baseline: .responder { _ in .json(Self.control) },
            candidates: [("v2", .responder { _ in .json(#"{"error":"boom"}"#, status: 500) })],
            configure: Self.experiment()
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            for user in users.treatment + users.control {
                let response = try await self.send(client, user: user)
                // Clients get control's answer and nothing else.
                #expect(response.status == 200 && response.text == Self.control, "\(user): \(response.status) \(response.text)")
            }
            let stopped = try await eventually { sidecar.sidecar.experiments.percent(route: "models") == 0 }
            #expect(stopped, "the failing treatment is stopped")
            let status = try #require(sidecar.sidecar.experiments.statuses.first)
            #expect(status.stoppedReason?.contains("guardrail broken") == true, "\(status)")
            // Stopped: nobody is enrolled, every user gets control without a try at treatment.
            let after = try await self.send(client, user: users.treatment[0])
            #expect(after.text == Self.control && after.header("x-shadowd-arm") == "none")
            await client.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let fallbacks = try await queue.read { (db: Database) throws -> Int? in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM exchanges WHERE arm = 'treatment' AND fallback = 1 AND served_by = 'control'")
            }
            let events = try await queue.read { (db: Database) throws -> Int? in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM gating_events WHERE kind = 'experiment'")
            }
            try queue.close()
            #expect((fallbacks ?? 0) > 0 && events == 1)
            try FileManager.default.copyItem(atPath: sidecar.databasePath, toPath: saved)
            routes = sidecar.sidecar.configuration.routes
        }
        // A restart reads the stop back: exposure does not resume by itself.
        let store = try PairStore(path: saved)
        let controller = try ExperimentController(routes: routes, store: store, events: GatingEventLog(), factory: nil, logger: Logger(label: "test"))
        #expect(controller.percent(route: "models") == 0 && controller.statuses.first?.stoppedReason != nil)
        // A person resumes it; a changed salt under the same name is refused.
        #expect(try controller.resume("exp").percent == 50)
        var changed = routes
        changed[0].experiment?.salt = "other"
        #expect(throws: ConfigurationError.self) { try controller.validate(changed) }
        try store.close()
    }

    /// Without a copy to the other arm and without fallback, a failing treatment's answers are
    /// recorded as exposures without pairs, and they still stop it.
    @Test func unpairedTreatmentFailuresStopItToo() async throws {
        let users = Self.users(percent: 50, count: 40)
        try await withSidecar(
            baseline: .responder { _ in .json(Self.control) },
            candidates: [("v2", .responder { _ in .json(#"{"error":"boom"}"#, status: 500) })],
            configure: Self.experiment { experiment in
                experiment.shadowOtherArm = false
                experiment.fallback = .none
            }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            var treatmentStatuses: [Int] = []
            for user in users.treatment { treatmentStatuses.append(try await self.send(client, user: user).status) }
            for user in users.control { #expect(try await self.send(client, user: user).text == Self.control) }
            #expect(treatmentStatuses.contains(500), "without fallback, treatment's failure reaches its users")
            let stopped = try await eventually { sidecar.sidecar.experiments.percent(route: "models") == 0 }
            #expect(stopped, "\(sidecar.sidecar.experiments.statuses)")
            await client.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            let unpaired = try await queue.read { (db: Database) throws -> Int? in
                try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM exchanges e WHERE arm IS NOT NULL AND NOT EXISTS (SELECT 1 FROM shadows s WHERE s.exchange_id = e.id)"
                )
            }
            #expect((unpaired ?? 0) > 0, "enrolled requests are recorded without a pair")
        }
    }

    /// The served path's latency feeds the p99 guardrail. The treatment is a whole second
    /// slower so a loaded machine's slow control answers cannot hide it (`ExperimentTests`
    /// proves 200 ms on exact figures); 300 control requests keep control's p99 off its maximum.
    @Test func aMuchSlowerTreatmentIsStoppedOnItsP99() async throws {
        let users = Self.users(percent: 50, count: 32)
        try await withSidecar(
            baseline: .responder { _ in .json(Self.control) },
            candidates: [("v2", .responder { _ in .json(Self.treatment, delay: .seconds(1)) })],
            configure: Self.experiment()
        ) { sidecar, _, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for chunk in stride(from: 0, to: users.treatment.count, by: 4).map({ Array(users.treatment[$0..<min($0 + 4, users.treatment.count)]) }
                ) {
                    group.addTask {
                        let client = try await sidecar.client()
                        for user in chunk { _ = try await self.send(client, user: user) }
                        await client.close()
                    }
                }
                group.addTask {
                    let client = try await sidecar.client()
                    for _ in 0..<10 { for user in users.control.prefix(30) { _ = try await self.send(client, user: user) } }
                    await client.close()
                }
                try await group.waitForAll()
            }
            let stopped = try await eventually(within: .seconds(30)) { sidecar.sidecar.experiments.percent(route: "models") == 0 }
            let reason = sidecar.sidecar.experiments.statuses.first?.stoppedReason ?? ""
            #expect(stopped && reason.contains("p99"), "\(reason)")
        }
    }

    @Test func aHealthyTreatmentClimbsItsStages() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json(Self.control) },
            candidates: [("v2", .responder { _ in .json(Self.control) })],
            configure: Self.experiment(allocation: [5, 20]) { experiment in
                experiment.stageMinDuration = .milliseconds(1)
                experiment.stageMinRequests = 50
                experiment.guardrails.maxErrorRateIncrease = 0.15
                experiment.guardrails.maxFallbackRate = 0.15
                // Both arms answer alike, but under a loaded test run a stretch of slow answers
                // can fall on one arm: this test is about climbing (latency has its own test).
                experiment.guardrails.maxP99Regression = .absolute(.seconds(10))
            }
        ) { sidecar, _, _ in
            let users = Self.users(percent: 5, count: 40)
            let client = try await sidecar.client()
            for _ in 0..<3 {
                // Arms interleaved, so neither gets a run of the machine's slow moments.
                for (treatment, control) in zip(users.treatment, users.control) {
                    _ = try await self.send(client, user: treatment)
                    _ = try await self.send(client, user: control)
                }
            }
            let climbed = try await eventually { sidecar.sidecar.experiments.percent(route: "models") == 20 }
            #expect(climbed, "\(sidecar.sidecar.experiments.statuses)")
            // Users enrolled at 5% keep their arm at 20%.
            for user in users.treatment.prefix(5) { #expect(try await self.send(client, user: user).header("x-shadowd-arm") == "treatment") }
            for user in users.control.prefix(5) { #expect(try await self.send(client, user: user).header("x-shadowd-arm") == "control") }
            await client.close()
        }
    }

    /// A body field keys the experiment: the request is held until it ends, its arm chosen from
    /// the field, and a treatment that rewrites bodies gets its own version while control (as
    /// the served arm, the copy or the fallback) gets the client's, whether the client sent a
    /// length or chunks.
    @Test func aBodyFieldChoosesTheArmAndTheTreatmentGetsItsRewrittenBody() async throws {
        let users = Self.users(percent: 50, count: 4)
        try await withSidecar(
            baseline: .responder { _ in .json(Self.control) },
            candidates: [
                (
                    "v2",
                    .responder { request in
                        String(decoding: request.body, as: UTF8.self).contains("fail")
                            ? .json(#"{"error":"boom"}"#, status: 500) : .json(Self.treatment)
                    }
                )
            ],
            configure: { configuration in
                Self.experiment { $0.key = .field("$.user") }(&configuration)
                configuration.routes[0].candidates[0].rewrite = BodyRewrite(
                    set: [.init(pattern: try! JSONPathPattern.parse("$.model").get(), value: .string("v2-model"))],
                    remove: []
                )
            }
        ) { sidecar, baseline, candidates in
            let client = try await sidecar.client()
            func send(_ user: String?, chunked: Bool, extra: String = "") async throws -> HTTPTestResponse {
                let body = user.map { #"{"model":"m","user":"\#($0)"\#(extra)}"# } ?? #"{"model":"m"}"#
                return try await client.send(
                    method: .POST,
                    path: "/infer",
                    headers: chunked ? [("transfer-encoding", "chunked")] : [],
                    body: Array(body.utf8)
                )
            }
            for (index, user) in users.treatment.enumerated() {
                let response = try await send(user, chunked: index % 2 == 0)
                #expect(response.text == Self.treatment && response.header("x-shadowd-arm") == "treatment", "\(user)")
            }
            for (index, user) in users.control.enumerated() {
                let response = try await send(user, chunked: index % 2 == 0)
                #expect(response.text == Self.control && response.header("x-shadowd-arm") == "control", "\(user)")
            }
            let failing = try await send(users.treatment[0], chunked: true, extra: #","note":"fail""#)
            #expect(failing.status == 200 && failing.text == Self.control, "a failing treatment falls back to control")
            let keyless = try await send(nil, chunked: false)
            #expect(keyless.text == Self.control && keyless.header("x-shadowd-arm") == "none")
            #expect(sidecar.sidecar.experiments.statuses.first?.requestsWithoutKey == 1)
            await client.close()
            #expect(try await eventually { sidecar.shadowPending == 0 })

            let treatmentBodies = (candidates[0]?.recentRequests ?? []).map { try? JSONParser().parse($0.body) }
            let controlBodies = (baseline?.recentRequests ?? []).map { try? JSONParser().parse($0.body) }
            for user in users.treatment + users.control {
                // The treatment sees only its own version; control only the client's.
                #expect(treatmentBodies.contains { $0 == (try? JSONParser().parse(#"{"model":"v2-model","user":"\#(user)"}"#)) }, "\(user)")
                #expect(controlBodies.contains { $0 == (try? JSONParser().parse(#"{"model":"m","user":"\#(user)"}"#)) }, "\(user)")
            }
            #expect(!(controlBodies.contains { $0?["model"] == .string("v2-model") }))
            #expect(controlBodies.contains { $0?["note"] == .string("fail") && $0?["model"] == .string("m") }, "the fallback sends the client's body")
            #expect(
                (candidates[0]?.recentRequests ?? []).allSatisfy {
                    $0.header("content-length") == String($0.body.count) && $0.header("transfer-encoding") == nil
                }
            )
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            let keys = try await queue.read { (db: Database) throws -> [String: String] in
                var keys: [String: String] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT experiment_key, arm FROM exchanges WHERE arm IS NOT NULL") {
                    keys[row["experiment_key"]] = row["arm"]
                }
                return keys
            }
            #expect(keys.count == 8 && users.treatment.allSatisfy { keys[$0] == "treatment" } && users.control.allSatisfy { keys[$0] == "control" })
        }
    }
}
