import Testing

@testable import ShadowCore

@Suite struct SamplerTests {
    /// Pinned: these positions must never change, or sticky samples would reshuffle on upgrade.
    @Test func hashIsPinned() {
        let vectors: [(String, String, Double)] = [
            ("user-42", "classifier", 0.30413458207857014),
            ("user-42", "ranker", 0.7091249044982267),
            ("", "classifier", 0.41006385237373355),
            ("ü-7", "x", 0.8816397098542411),
        ]
        for (key, salt, expected) in vectors {
            #expect(Sampler.position(key: key.utf8, salt: salt) == expected, "\(key) / \(salt)")
        }
    }

    @Test func sampledShareMatchesTheRateWithinBinomialError() {
        for percent in [1.0, 10, 50] {
            let sampled = (0..<100_000).filter { Sampler.admits(key: "user-\($0)".utf8, salt: "classifier", percent: percent) }.count
            let p = percent / 100
            let sd = (100_000 * p * (1 - p)).squareRoot()
            #expect(abs(Double(sampled) - 100_000 * p) < 4 * sd, "\(percent)%: \(sampled)")
        }
    }

    @Test func keysAreStickyAndSaltsIndependent() {
        let keys = (0..<20_000).map { "user-\($0)" }
        let a = Set(keys.filter { Sampler.admits(key: $0.utf8, salt: "route-a", percent: 20) })
        let again = Set(keys.filter { Sampler.admits(key: $0.utf8, salt: "route-a", percent: 20) })
        #expect(a == again)
        // Growing the share only adds users: those in at 20% stay in at 30%.
        let wider = Set(keys.filter { Sampler.admits(key: $0.utf8, salt: "route-a", percent: 30) })
        #expect(a.isSubset(of: wider))
        // Another salt: an independent 20% sample, so about 20% of a's users are in it too.
        let b = Set(keys.filter { Sampler.admits(key: $0.utf8, salt: "route-b", percent: 20) })
        let overlap = Double(a.intersection(b).count) / Double(a.count)
        #expect(abs(overlap - 0.2) < 0.03, "overlap \(overlap)")
    }
}

@Suite struct RateCapTests {
    @Test func tokenBucketHoldsItsRate() {
        var bucket = TokenBucket(rate: 50, burst: 10)
        var taken = 0
        // 10 s of attempts every millisecond.
        for millisecond in 0..<10_000 where bucket.take(nowNanos: UInt64(millisecond) * 1_000_000) { taken += 1 }
        #expect(taken >= 500 && taken <= 511, "\(taken)")
    }

    @Test func dailyBudgetResetsAtMidnightUTC() {
        var budget = DailyBudget(limit: 3)
        let day: Int64 = 86_400_000_000
        var spent = 0
        for _ in 0..<5 where budget.spend(1, nowMicros: 10 * day + 5) { spent += 1 }
        #expect(spent == 3)
        let nextDay = budget.spend(1, nowMicros: 11 * day)
        #expect(nextDay)
    }

    /// A cost known only after the call (tokens) counts too: once charged past the limit, the
    /// budget admits nothing, even a copy whose up-front price is zero; the next day it is new.
    @Test func aDailyBudgetChargedAfterTheFactStopsFurtherSpending() {
        var budget = DailyBudget(limit: 1.0)
        let day: Int64 = 86_400_000_000
        let first = budget.spend(0, nowMicros: 3 * day)
        budget.charge(0.7, nowMicros: 3 * day + 1)
        let second = budget.spend(0, nowMicros: 3 * day + 2)
        budget.charge(0.7, nowMicros: 3 * day + 3)
        let third = budget.spend(0, nowMicros: 3 * day + 4)
        #expect(first && second && !third, "1.4 charged against 1.0")
        #expect(abs(budget.used - 1.4) < 1e-12)
        let nextDay = budget.spend(0, nowMicros: 4 * day)
        #expect(nextDay)
    }
}

@Suite struct CircuitBreakerTests {
    static let second: UInt64 = 1_000_000_000
    let configuration = CircuitBreakerConfiguration(
        window: .seconds(10),
        minCalls: 20,
        maxErrorRate: 0.5,
        maxTimeoutRate: 0.3,
        maxP99: .seconds(1),
        coolDown: .seconds(5),
        halfOpenPercent: 50,
        halfOpenCalls: 4
    )

    @Test func opensOnErrorsOnlyWithEnoughCalls() {
        var breaker = CircuitBreaker(configuration: self.configuration)
        for call in 0..<19 {
            #expect(breaker.record(nowNanos: UInt64(call) * 10_000_000, failure: true, timeout: false, latencyMicros: nil) == nil)
        }
        let transition = breaker.record(nowNanos: 200_000_000, failure: true, timeout: false, latencyMicros: nil)
        #expect(transition?.to == .open && transition?.reason.contains("error rate 100.00% over 20 calls") == true)
        let admitted = breaker.admit(nowNanos: 4 * Self.second, draw: 0).admitted
        #expect(admitted == false)
    }

    @Test func healthyTrafficAndOldFailuresKeepItClosed() {
        var breaker = CircuitBreaker(configuration: self.configuration)
        // 15 failures, then 11 s later (outside the window) 30 successes and 10 failures: 25%.
        for call in 0..<15 { _ = breaker.record(nowNanos: UInt64(call), failure: true, timeout: false, latencyMicros: 1_000) }
        for call in 0..<40 {
            let transition = breaker.record(nowNanos: 11 * Self.second + UInt64(call), failure: call % 4 == 0, timeout: false, latencyMicros: 1_000)
            #expect(transition == nil)
        }
        #expect(breaker.state == .closed)
    }

    @Test func opensOnTimeoutsAndOnLatency() {
        var timeouts = CircuitBreaker(configuration: self.configuration)
        var last: CircuitBreaker.Transition?
        for call in 0..<20 {
            last = timeouts.record(nowNanos: UInt64(call), failure: call % 2 == 0, timeout: call % 2 == 0, latencyMicros: nil) ?? last
        }
        #expect(last?.reason.contains("timeout rate") == true)
        var slow = CircuitBreaker(configuration: self.configuration)
        last = nil
        for call in 0..<20 { last = slow.record(nowNanos: UInt64(call), failure: false, timeout: false, latencyMicros: 2_000_000) ?? last }
        #expect(last?.to == .open && last?.reason.contains("p99 latency") == true)
    }

    @Test func halfOpenProbesCloseOrReopen() {
        var breaker = CircuitBreaker(configuration: self.configuration)
        for call in 0..<20 { _ = breaker.record(nowNanos: UInt64(call), failure: true, timeout: false, latencyMicros: nil) }
        #expect(breaker.state == .open)
        // Cool-down over: half-open, a 50% share of copies go as probes, at most 4 in flight.
        let first = breaker.admit(nowNanos: 6 * Self.second, draw: 0.1)
        #expect(first.admitted && first.transition?.to == .halfOpen)
        let outsideShare = breaker.admit(nowNanos: 6 * Self.second, draw: 0.9).admitted
        #expect(outsideShare == false)
        for _ in 0..<3 {
            let probe = breaker.admit(nowNanos: 6 * Self.second, draw: 0.2).admitted
            #expect(probe)
        }
        let fifth = breaker.admit(nowNanos: 6 * Self.second, draw: 0.2).admitted
        #expect(fifth == false, "four probes in flight")
        var last: CircuitBreaker.Transition?
        for _ in 0..<4 { last = breaker.record(nowNanos: 7 * Self.second, failure: false, timeout: false, latencyMicros: 500) ?? last }
        #expect(last?.to == .closed && breaker.state == .closed)

        // Failing probes open it again, for another cool-down.
        for call in 0..<20 { _ = breaker.record(nowNanos: 8 * Self.second + UInt64(call), failure: true, timeout: false, latencyMicros: nil) }
        _ = breaker.admit(nowNanos: 14 * Self.second, draw: 0)
        for _ in 0..<3 { _ = breaker.admit(nowNanos: 14 * Self.second, draw: 0) }
        last = nil
        for _ in 0..<4 { last = breaker.record(nowNanos: 14 * Self.second, failure: true, timeout: false, latencyMicros: nil) ?? last }
        #expect(last?.to == .open && last?.reason.hasPrefix("probes:") == true)
        let reopened = breaker.admit(nowNanos: 15 * Self.second, draw: 0).admitted
        #expect(reopened == false)
    }
}

extension CircuitBreakerTests {
    /// A partition after a healthy spell: 18,000 successes in the window would dilute the error
    /// rate for many seconds; ten transport failures in a row open it at once.
    @Test func aRunOfTransportFailuresOpensItWhateverTheWindowHolds() {
        var breaker = CircuitBreaker(configuration: self.configuration)
        for call in 0..<18_000 { _ = breaker.record(nowNanos: UInt64(call) * 100_000, failure: false, timeout: false, latencyMicros: 900) }
        let partition = 2 * Self.second
        var opened: CircuitBreaker.Transition?
        var failures = 0
        while opened == nil, failures < 100 {
            failures += 1
            opened = breaker.record(nowNanos: partition + UInt64(failures), failure: true, timeout: true, latencyMicros: nil, transportFailure: true)
        }
        #expect(failures == 10 && opened?.reason == "10 transport failures in a row")
        // 5xx answers are failures for the rates but not a partition: they never start a run.
        var answering = CircuitBreaker(configuration: self.configuration)
        for call in 0..<18_000 { _ = answering.record(nowNanos: UInt64(call) * 100_000, failure: false, timeout: false, latencyMicros: 900) }
        for call in 0..<50 { _ = answering.record(nowNanos: partition + UInt64(call), failure: true, timeout: false, latencyMicros: 900) }
        #expect(answering.state == .closed && answering.failureStreak == 0)
        // A success in between ends a run; 0 turns the rule off.
        var interrupted = CircuitBreaker(configuration: self.configuration)
        for call in 0..<30 {
            _ = interrupted.record(
                nowNanos: UInt64(call),
                failure: call % 9 != 8,
                timeout: false,
                latencyMicros: nil,
                transportFailure: call % 9 != 8
            )
            _ = interrupted.record(nowNanos: UInt64(call), failure: false, timeout: false, latencyMicros: 1)  // keeps the rate low
        }
        #expect(interrupted.state == .closed)
        var off = self.configuration
        off.consecutiveFailures = 0
        var never = CircuitBreaker(configuration: off)
        for call in 0..<18_000 { _ = never.record(nowNanos: UInt64(call) * 100_000, failure: false, timeout: false, latencyMicros: 900) }
        for call in 0..<100 {
            _ = never.record(nowNanos: partition + UInt64(call), failure: true, timeout: true, latencyMicros: nil, transportFailure: true)
        }
        #expect(never.state == .closed)
    }

    /// Copies admitted before the breaker opened finish late; only probes decide half-open.
    @Test func halfOpenIsJudgedOnItsProbesOnly() {
        var breaker = CircuitBreaker(configuration: self.configuration)
        let staleEpoch = breaker.epoch
        for call in 0..<10 {
            _ = breaker.record(nowNanos: UInt64(call), failure: true, timeout: true, latencyMicros: nil, transportFailure: true, epoch: staleEpoch)
        }
        #expect(breaker.state == .open)
        let probe = breaker.admit(nowNanos: 6 * Self.second, draw: 0)
        #expect(probe.admitted && breaker.state == .halfOpen)
        let probeEpoch = breaker.epoch
        // Twenty copies queued before the breaker opened fail after the cool-down: ignored.
        for _ in 0..<20 {
            let ignored = breaker.record(
                nowNanos: 6 * Self.second,
                failure: true,
                timeout: true,
                latencyMicros: nil,
                transportFailure: true,
                epoch: staleEpoch
            )
            #expect(ignored == nil)
        }
        #expect(breaker.state == .halfOpen)
        for _ in 0..<3 { _ = breaker.admit(nowNanos: 6 * Self.second, draw: 0) }
        var last: CircuitBreaker.Transition?
        for _ in 0..<4 {
            last = breaker.record(nowNanos: 7 * Self.second, failure: false, timeout: false, latencyMicros: 500, epoch: probeEpoch) ?? last
        }
        #expect(last?.to == .closed && last?.reason == "4 probes healthy")
        // A probe's late outcome after it closed says nothing about the new epoch either.
        let late = breaker.record(
            nowNanos: 8 * Self.second,
            failure: true,
            timeout: true,
            latencyMicros: nil,
            transportFailure: true,
            epoch: probeEpoch
        )
        #expect(late == nil && breaker.failureStreak == 0)
    }
}

@Suite struct CoverageWatchTests {
    static let second: UInt64 = 1_000_000_000

    func batch(compared: Int, failed: Int = 0, open: Int = 0, notSampled: Int = 0) -> [CoverageCounter.Key: Int] {
        [
            .init(minute: 0, route: "r", candidate: "c", reason: .compared): compared,
            .init(minute: 0, route: "r", candidate: "c", reason: .candidateError): failed,
            .init(minute: 0, route: "r", candidate: "c", reason: .circuitOpen): open,
            .init(minute: 0, route: "r", candidate: "c", reason: .notSampled): notSampled,
        ]
    }

    @Test func anEpisodeIsReportedOnceWhenItStartsAndOnceWhenItEnds() {
        var watch = CoverageWatch(threshold: 0.5, minimumCopies: 100)
        // Sampling leaves most requests out on purpose: that is not a coverage drop.
        watch.add(self.batch(compared: 200, notSampled: 5_000), nowNanos: 0)
        #expect(watch.evaluate(nowNanos: 0).isEmpty)
        var alerts: [CoverageWatch.Alert] = []
        // A partition: every later second mostly circuit_open and errors.
        for second in 1...50 {
            watch.add(self.batch(compared: 2, failed: 10, open: 40), nowNanos: UInt64(second) * Self.second)
            alerts += watch.evaluate(nowNanos: UInt64(second) * Self.second)
        }
        #expect(alerts.count == 1 && alerts[0].low && alerts[0].share < 0.5)
        // Healed: once the last minute is mostly compared again, one recovery.
        alerts = []
        for second in 51...130 {
            watch.add(self.batch(compared: 100), nowNanos: UInt64(second) * Self.second)
            alerts += watch.evaluate(nowNanos: UInt64(second) * Self.second)
        }
        #expect(alerts.count == 1 && !alerts[0].low)
        let share = watch.shares(nowNanos: 130 * Self.second).first?.share
        #expect(share == 1)
    }

    /// Compared pairs are counted when written, drops at once: a recorder running behind
    /// delivers pairs from before a partition after its first drops. The share rises again for a
    /// while, but the episode is not declared over within its first window.
    @Test func lateCountsFromBeforeAnEpisodeDoNotEndIt() {
        var watch = CoverageWatch(threshold: 0.5, minimumCopies: 100)
        var alerts: [CoverageWatch.Alert] = []
        watch.add(self.batch(compared: 0, failed: 150), nowNanos: 1 * Self.second)
        alerts += watch.evaluate(nowNanos: 1 * Self.second)
        // The healthy pairs from before the partition, written late.
        watch.add(self.batch(compared: 400), nowNanos: 3 * Self.second)
        alerts += watch.evaluate(nowNanos: 3 * Self.second)
        for second in 4...50 as ClosedRange<UInt64> {
            watch.add(self.batch(compared: 0, failed: 20), nowNanos: second * Self.second)
            alerts += watch.evaluate(nowNanos: second * Self.second)
        }
        #expect(alerts.map(\.low) == [true], "one warning, no recovery in between: \(alerts)")
    }

    @Test func tooFewCopiesAreNotJudged() {
        var watch = CoverageWatch(threshold: 0.5, minimumCopies: 100)
        watch.add(self.batch(compared: 1, failed: 50), nowNanos: 0)
        #expect(watch.evaluate(nowNanos: 0).isEmpty)
        var off = CoverageWatch(threshold: 0)
        off.add(self.batch(compared: 0, failed: 5_000), nowNanos: 0)
        #expect(off.evaluate(nowNanos: 0).isEmpty)
    }
}

@Suite struct GateRuleTests {
    func request(
        method: String = "POST",
        path: String = "/v2/models/m/infer",
        headers: [String: String] = [:],
        body: String = #"{"user":{"tier":"gold","age":41}}"#
    ) -> GateRequest {
        GateRequest(
            method: method,
            path: path,
            header: { name in headers.first { $0.key.lowercased() == name.lowercased() }?.value },
            bodyBytes: body.utf8.count,
            body: { try? JSONParser().parse(body) }
        )
    }

    func gates(_ yaml: String) throws -> GateConfiguration {
        try Configuration.load(
            yaml: """
                routes:
                  - name: r
                    prefix: /
                    baseline: {url: "http://127.0.0.1:1"}
                    gates:
                \(yaml)
                """
        ).routes[0].gates
    }

    @Test func includeAndExcludeRules() throws {
        let gates = try self.gates(
            """
                  include:
                    - {method: POST, path: /v2/models/*/infer}
                    - {method: [GET, HEAD], path: "/health/**"}
                  exclude:
                    - {header: X-Shadow-Skip, equals: "1"}
                    - {header: Authorization, matches: "^Basic "}
                    - {field: $.user.tier, equals: gold, body_bytes: {max: 10}}
                    - {field: $.user.age, less_than: 18}
            """
        )
        #expect(gates.admits(self.request()))
        #expect(!gates.admits(self.request(method: "PUT")))
        #expect(!gates.admits(self.request(path: "/v2/models/m/x/infer")), "* stays within a segment")
        #expect(gates.admits(self.request(method: "GET", path: "/health/a/b")))
        #expect(!gates.admits(self.request(headers: ["x-shadow-skip": "1"])))
        #expect(gates.admits(self.request(headers: ["x-shadow-skip": "0"])))
        #expect(!gates.admits(self.request(headers: ["Authorization": "Basic abc"])))
        #expect(gates.admits(self.request(headers: ["Authorization": "Bearer abc"])))
        #expect(!gates.admits(self.request(body: #"{"user":{"tier":"gold"}}"#)) == false, "gold but body above 10 bytes: not excluded")
        #expect(!gates.admits(self.request(body: #"{"user":{"age":12}}"#)))
        #expect(gates.admits(self.request(body: "not json")), "no field, no exclusion")
    }

    @Test(arguments: [
        ("      include:\n        - {method: POST, colour: red}", "gates.include[0].colour: unknown key"),
        ("      exclude:\n        - {header: X-A, matches: \"(\"}", "invalid regular expression"),
        ("      exclude:\n        - {}", "an empty rule"),
        ("      exclude:\n        - {header: X-A, equals: a, matches: b}", "give one test per rule"),
        ("      exclude:\n        - {method: post}", "expected an upper-case HTTP method"),
        ("      include:\n        - {field: \"$.a[*]\", equals: x}", "must name one value"),
        ("      include:\n        - {equals: x}", "needs 'header' or 'field'"),
    ])
    func badRulesAreRefusedWithTheKey(yaml: String, expected: String) {
        #expect {
            _ = try self.gates(yaml)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test(arguments: [
        ("    sample_percent: 101", "sample_percent: must be between 0.0 and 100.0"),
        ("    circuit_breaker: {half_open_percent: 150}", "circuit_breaker.half_open_percent: must be between"),
        ("    circuit_breaker: {max_error_rate: 2}", "circuit_breaker.max_error_rate: must be between 0"),
        ("    rate_limit: {burst: 5}", "rate_limit.per_second: give per_second, daily_requests, daily_cost"),
        ("    sample_key: {cookie: a}", "sample_key.cookie: unknown key"),
    ])
    func badGatingSettingsAreRefused(yaml: String, expected: String) {
        #expect {
            _ = try Configuration.load(yaml: "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n\(yaml)")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}

@Suite struct RampTests {
    let configuration = RampConfiguration(
        stages: [
            .init(percent: 1, minDuration: .seconds(60), minPairs: 100),
            .init(percent: 20, minDuration: .seconds(60), minPairs: 100),
            .init(percent: 100, minDuration: .seconds(60), minPairs: 100),
        ]
    )
    let minute: Int64 = 60_000_000

    func feed(_ ramp: inout Ramp, pairs: Int, diverged: Int = 0, candidateErrors: Int = 0) {
        ramp.add { tally in
            for index in 0..<pairs {
                tally.add(baselineFailed: false, candidateFailed: index < candidateErrors, baselineMicros: 10_000, candidateMicros: 10_000)
            }
            tally.addScores(compared: pairs, diverged: diverged)
        }
    }

    @Test func advancesOnlyAfterItsDurationAndPairsWhileTheGuardrailsHold() {
        var ramp = Ramp(configuration: self.configuration, enteredAtMicros: 0)
        self.feed(&ramp, pairs: 500)
        #expect(ramp.evaluate(nowMicros: self.minute / 2, guardrails: GuardrailConfiguration()) == nil, "too early")
        let next = ramp.evaluate(nowMicros: self.minute, guardrails: GuardrailConfiguration())
        #expect(next?.to == 1 && ramp.percent == 20 && ramp.tally.pairs == 0)
        self.feed(&ramp, pairs: 50)
        #expect(ramp.evaluate(nowMicros: 3 * self.minute, guardrails: GuardrailConfiguration()) == nil, "too few pairs")
        self.feed(&ramp, pairs: 500)
        #expect(ramp.evaluate(nowMicros: 3 * self.minute, guardrails: GuardrailConfiguration())?.to == 2)
        self.feed(&ramp, pairs: 5_000)
        #expect(ramp.evaluate(nowMicros: 10 * self.minute, guardrails: GuardrailConfiguration()) == nil, "the last stage")
    }

    @Test func fallsBackWhenAGuardrailBreaks() {
        var ramp = Ramp(configuration: self.configuration, stage: 2, enteredAtMicros: 0)
        self.feed(&ramp, pairs: 1_000, diverged: 300)
        let back = ramp.evaluate(nowMicros: 1, guardrails: GuardrailConfiguration())
        #expect(back?.to == 1 && back?.reason.hasPrefix("divergence broke at 100%") == true)
        self.feed(&ramp, pairs: 1_000, candidateErrors: 200)
        #expect(ramp.evaluate(nowMicros: 2, guardrails: GuardrailConfiguration())?.to == 0)
        // At the first stage a failure keeps it there, with fresh figures.
        self.feed(&ramp, pairs: 1_000, diverged: 300)
        #expect(ramp.evaluate(nowMicros: 3, guardrails: GuardrailConfiguration()) == nil && ramp.stage == 0 && ramp.tally.pairs == 0)

        var toFirst = Ramp(configuration: RampConfiguration(stages: self.configuration.stages, fallback: .first), stage: 2, enteredAtMicros: 0)
        self.feed(&toFirst, pairs: 1_000, diverged: 300)
        #expect(toFirst.evaluate(nowMicros: 1, guardrails: GuardrailConfiguration())?.to == 0)
    }

    @Test(arguments: [
        ("    ramp: {stages: []}", "ramp.stages: a ramp needs at least one stage"),
        ("    ramp: {min_pairs: 5}", "ramp.stages: a ramp needs a list of stages"),
        ("    ramp: {stages: [5, 150]}", "ramp.stages[1]: expected a percentage above 0 and at most 100"),
        ("    ramp: {stages: [20, 5]}", "ramp.stages[1]: stages must grow"),
        ("    ramp: {stages: [{percent: 5, wait: 1m}]}", "ramp.stages[0].wait: unknown key"),
    ])
    func badRampsAreRefused(yaml: String, expected: String) {
        #expect {
            _ = try Configuration.load(yaml: "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n\(yaml)")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func stagesParseFromNumbersOrObjects() throws {
        let route = try Configuration.load(
            yaml:
                "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n    ramp: {stages: [1, {percent: 50, min_pairs: 9}], min_duration: 2m, min_pairs: 300, fallback: first}"
        ).routes[0]
        #expect(
            route.ramp
                == RampConfiguration(
                    stages: [
                        .init(percent: 1, minDuration: .seconds(120), minPairs: 300), .init(percent: 50, minDuration: .seconds(120), minPairs: 9),
                    ],
                    fallback: .first
                )
        )
    }
}
