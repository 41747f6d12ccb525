import Testing

@testable import ShadowCore

/// The experiment's pure parts: assignment, serving, the exposure state machine and its
/// always-valid guardrails, and the `experiment:` block's loading.
@Suite struct ExperimentTests {
    static func configuration(allocation: [Double] = [1, 5, 20, 50]) -> ExperimentConfiguration {
        var configuration = ExperimentConfiguration(name: "ab-1", treatment: "v2", key: .header("x-user-id"))
        configuration.allocation = allocation
        configuration.stageMinDuration = .seconds(60)
        configuration.stageMinRequests = 500
        return configuration
    }

    static func arm(_ user: Int, percent: Double, salt: String = "ab-1") -> ExperimentArm? {
        ServingDecision.decide(keyPosition: Sampler.position(key: "user-\(user)".utf8, salt: salt), treatmentPercent: percent).arm
    }

    /// 100,000 keys at each stage: each arm's count within 4 binomial standard deviations, and
    /// every enrolled user still in the same arm at the next stage (growth only enrols more).
    @Test func assignmentMatchesTheAllocationAndGrowingOnlyEnrolsMoreUsers() {
        let users = 100_000
        var previous: [Int: ExperimentArm] = [:]
        for percent in [1.0, 5, 20, 50] {
            let arms = (0..<users).reduce(into: [Int: ExperimentArm]()) { arms, user in arms[user] = Self.arm(user, percent: percent) }
            let expected = Double(users) * percent / 100
            let sd = (expected * (1 - percent / 100)).squareRoot()
            for arm in ExperimentArm.allCases {
                let count = arms.values.filter { $0 == arm }.count
                #expect(abs(Double(count) - expected) <= 4 * sd, "\(arm) at \(percent)%: \(count) vs \(expected) ± \(4 * sd)")
            }
            #expect(previous.allSatisfy { arms[$0.key] == $0.value }, "a user changed arm when the share grew to \(percent)%")
            previous = arms
        }
        #expect(previous.count == users, "at 50% every keyed user is enrolled")
        // The same key, the same arm: the hash is pinned (hosts and restarts agree).
        #expect((0..<1_000).allSatisfy { Self.arm($0, percent: 20) == Self.arm($0, percent: 20) })
        // Another salt draws another sample.
        let treated = Set(previous.filter { $0.value == .treatment }.keys)
        let other = Set((0..<users).filter { Self.arm($0, percent: 50, salt: "ab-2") == .treatment })
        #expect(Double(other.intersection(treated).count) / Double(users) < 0.27)
    }

    @Test func aRequestWithoutAKeyOrAStoppedExperimentIsServedByControl() {
        #expect(ServingDecision.decide(keyPosition: nil, treatmentPercent: 50) == ServingDecision(arm: nil, reason: .noKey))
        #expect(ServingDecision.decide(keyPosition: 0.5, treatmentPercent: 20) == ServingDecision(arm: nil, reason: .notEnrolled))
        #expect(ServingDecision.decide(keyPosition: 0.5, treatmentPercent: 20).servedBy == .control)
        #expect((0..<10_000).allSatisfy { Self.arm($0, percent: 0) == nil })
        var run = ExperimentRun(configuration: Self.configuration(), stage: 3, enteredAtMicros: 0)
        #expect(run.treatmentPercent == 50)
        #expect(run.stop(reason: "by hand", nowMicros: 1) == .stopped(reason: "by hand"))
        #expect(run.treatmentPercent == 0 && run.stop(reason: "again", nowMicros: 2) == nil)
        #expect(run.resume(nowMicros: 3) == .resumed(stage: 3) && run.treatmentPercent == 50)
    }

    /// Feeds a stage: control healthy, treatment with the given failure rate and latency.
    static func feed(
        _ run: inout ExperimentRun,
        requests: Int,
        treatmentFailure: Double = 0,
        treatmentLatency: Int64 = 10_000,
        fallback: Bool = true
    ) {
        var random = SplitMix64(seed: 9)
        for index in 0..<requests {
            run.add { tally in
                tally.control.add(failed: false, fallback: false, latencyMicros: 9_000 + Int64(index % 7) * 300)
                let failed = random.nextUnit() < treatmentFailure
                tally.treatment.add(failed: failed, fallback: failed && fallback, latencyMicros: treatmentLatency + Int64(index % 7) * 300)
            }
        }
    }

    @Test func aHealthyTreatmentClimbsTheStagesOnlyAfterTheirMinimums() {
        var run = ExperimentRun(configuration: Self.configuration(), enteredAtMicros: 0)
        Self.feed(&run, requests: 400)
        #expect(run.evaluate(nowMicros: 120_000_000) == nil, "fewer requests than the stage minimum")
        Self.feed(&run, requests: 400)
        #expect(run.evaluate(nowMicros: 30_000_000) == nil, "shorter than the stage minimum")
        guard case .advanced(0, 1, _) = run.evaluate(nowMicros: 61_000_000) else {
            Issue.record("expected 1% → 5%")
            return
        }
        for stage in 1...2 {
            Self.feed(&run, requests: 800)
            #expect(run.evaluate(nowMicros: Int64(stage + 1) * 61_000_000) != nil)
        }
        #expect(run.treatmentPercent == 50)
        Self.feed(&run, requests: 800)
        #expect(run.evaluate(nowMicros: 10 * 61_000_000) == nil, "the last stage is the last")
    }

    @Test func aFailingTreatmentIsStoppedOnErrorsOrFallbacks() {
        var run = ExperimentRun(configuration: Self.configuration(), enteredAtMicros: 0)
        Self.feed(&run, requests: 300, treatmentFailure: 0.5)
        guard case .stopped(let reason) = run.evaluate(nowMicros: 1) else {
            Issue.record("a treatment failing half its calls must be stopped")
            return
        }
        #expect(reason.contains("error rate") && run.treatmentPercent == 0)
        // Without fallback counting as a failure signal, the fallback rate alone also stops it.
        var fallbacks = ExperimentRun(configuration: Self.configuration(), enteredAtMicros: 0)
        fallbacks.add { tally in
            for _ in 0..<400 {
                tally.control.add(failed: false, fallback: false, latencyMicros: 9_000)
                tally.treatment.add(failed: false, fallback: true, latencyMicros: 9_000)
            }
        }
        guard case .stopped(let why) = fallbacks.evaluate(nowMicros: 1) else {
            Issue.record("an all-fallback treatment must be stopped")
            return
        }
        #expect(why.contains("fallback rate"))
    }

    @Test func aTreatment200msSlowerIsStoppedOnP99() {
        var run = ExperimentRun(configuration: Self.configuration(), enteredAtMicros: 0)
        Self.feed(&run, requests: 300, treatmentLatency: 210_000)
        guard case .stopped(let reason) = run.evaluate(nowMicros: 1) else {
            Issue.record("a treatment 200 ms slower must be stopped")
            return
        }
        #expect(reason.contains("p99"))
    }

    /// Guardrails are looked at after every batch: with a fixed-horizon interval that would
    /// stop healthy treatments by chance. A/A: 200 seeded runs of 100 looks each, error rates
    /// equal at 1%: the always-valid interval stops at most 5% of them.
    @Test func continuousLooksAtEqualArmsRarelyStop() {
        var stopped = 0
        for seed in 0..<200 {
            var random = SplitMix64(seed: UInt64(seed))
            var configuration = Self.configuration(allocation: [50])
            configuration.guardrails.maxErrorRateIncrease = 0
            configuration.guardrails.maxFallbackRate = 1
            var run = ExperimentRun(configuration: configuration, enteredAtMicros: 0)
            for look in 0..<100 {
                run.add { tally in
                    for _ in 0..<50 {
                        tally.control.add(failed: random.nextUnit() < 0.01, fallback: false, latencyMicros: 9_000)
                        tally.treatment.add(failed: random.nextUnit() < 0.01, fallback: false, latencyMicros: 9_000)
                    }
                }
                if case .stopped = run.evaluate(nowMicros: Int64(look)) {
                    stopped += 1
                    break
                }
            }
        }
        #expect(stopped <= 10, "\(stopped) of 200 equal-arm runs stopped")
    }

    @Test func theConfidenceSequenceIsWiderThanAFixedIntervalAndShrinks() {
        let narrow = ConfidenceSequence(estimate: 0, variance: 1e-4, tau: 0.01)
        let fixed = Normal.z95 * 1e-2
        #expect(narrow.halfWidth > fixed)
        #expect(ConfidenceSequence(estimate: 0, variance: 1e-6, tau: 0.01).halfWidth < narrow.halfWidth)
        #expect(narrow.pValue() == 1)
        #expect(ConfidenceSequence(estimate: 0.1, variance: 1e-6, tau: 0.01).pValue() < 1e-6)
    }

    @Test func theExperimentBlockLoadsAndNamesWhatIsWrong() throws {
        func load(_ block: String) throws -> Configuration {
            try Configuration.load(
                yaml: """
                    routes:
                      - name: r
                        prefix: /
                        baseline: {url: "http://127.0.0.1:9001"}
                        candidates: [{name: v2, url: "http://127.0.0.1:9002"}]
                        experiment:
                    \(block.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
                    """
            )
        }
        let loaded = try #require(
            try load(
                """
                name: ranker-ab
                treatment: v2
                key: {header: x-user-id}
                allocation: [5, 20, 50]
                metrics: [{name: click, kind: binary}, {name: revenue, kind: continuous}, {name: ctr, kind: binary, per: request}]
                primary: click
                guardrails: {max_p99_regression: 50ms, revenue: {max_decrease: 2%}}
                mde: 5%
                min_duration: 7d
                """
            ).routes[0].experiment
        )
        #expect(loaded.allocation == [5, 20, 50] && loaded.salt == "ranker-ab" && loaded.primary == "click")
        #expect(loaded.guardrails.maxDecrease == ["revenue": 0.02] && loaded.guardrails.maxP99Regression == .absolute(.milliseconds(50)))
        #expect(loaded.minimumDetectableEffect == 0.05 && loaded.armHeader == "x-shadowd-arm" && loaded.fallback == .control)
        #expect(loaded.metrics.map(\.per) == [.user, .user, .request])
        let cases: [(String, String)] = [
            ("name: e\ntreatment: v9\nkey: {header: u}", "routes[0].experiment.treatment: 'v9' is not a candidate of this route"),
            ("name: e\ntreatment: v2", "routes[0].experiment.key: is required"),
            ("name: e\ntreatment: v2\nkey: {field: \"$.users[*]\"}", "routes[0].experiment.key.field: must name one value"),
            ("name: e\ntreatment: v2\nkey: {header: u}\nallocation: [20, 5]", "routes[0].experiment.allocation[1]: stages must grow"),
            (
                "name: e\ntreatment: v2\nkey: {header: u}\nallocation: [50, 80]",
                "routes[0].experiment.allocation: each stage is the share of users in each arm, at most 50"
            ),
            (
                "name: e\ntreatment: v2\nkey: {header: u}\nmetrics: [{name: c, per: session}]",
                "routes[0].experiment.metrics[0].per: unknown value 'session' (known: user, request)"
            ),
            ("name: e\ntreatment: v2\nkey: {header: u}\nprimary: sales", "routes[0].experiment.primary: 'sales' is not one of the metrics"),
            ("name: e\ntreatment: v2\nkey: {header: u}\nmde: lots", "routes[0].experiment.mde: expected a share"),
            (
                "name: e\ntreatment: v2\nkey: {header: u}\nguardrails: {revenue: {max_decrease: 2%}}",
                "routes[0].experiment.guardrails.revenue: unknown key"
            ),
        ]
        for (block, expected) in cases {
            #expect(throws: ConfigurationError.self) { try load(block) }
            do {
                _ = try load(block)
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
