import Foundation
import ShadowCore
import ShadowStore
import Testing

@testable import ShadowReport

/// The report's figures on real SQLite files with known contents.
@Suite struct ReportBuilderTests {
    func report(_ paths: [String], _ options: ReportOptions = ReportOptions(nowMicros: 1_790_000_000_000_000)) throws -> Report {
        var builder = ReportBuilder(options: options)
        for path in paths {
            let reader = try PairReader(path: path)
            try builder.add(reader)
            try reader.close()
        }
        return builder.build()
    }

    @Test func figuresMatchTheData() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/a.sqlite"
            try Traffic(pairs: 2_000, divergeEvery: 10, errorEvery: 50).write(to: path)
            let report = try self.report([path])
            let candidate = try #require(report.routes.first?.candidates.first)
            #expect(report.routes.map(\.name) == ["classifier"] && candidate.name == "v2")
            #expect(candidate.pairs == 2_000)
            // 40 timeouts (every 50th); of the 1,960 compared pairs, every 10th index diverges:
            // indices 0, 10, …, 1990 → 200, none of which is a failing index (49, 99, …).
            #expect(candidate.errors.candidateErrors == 40 && candidate.errors.candidateTimeouts == 40 && candidate.errors.baselineErrors == 0)
            #expect(candidate.coverage.candidateErrors == ["timeout": 40])
            #expect(candidate.divergence.compared == 1_960 && candidate.divergence.diverged == 200)
            #expect(abs(candidate.divergence.rate - 200.0 / 1_960) < 1e-12)
            #expect(candidate.divergence.interval[0] < candidate.divergence.rate && candidate.divergence.rate < candidate.divergence.interval[1])
            let path0 = try #require(candidate.divergence.topPaths.first)
            #expect(path0.path == "$.label" && path0.count == 200 && path0.examples.count == 3)
            #expect(path0.examples.first == "req-classifier-v2-0")
            // Latency: baseline 10,000–11,980 µs, candidate 2 ms slower (timeouts excluded from pairs).
            #expect(abs(candidate.latency.baseline.p50 - 11_000) < 100)
            let p50 = try #require(candidate.latency.differences.first { $0.quantile == 0.5 })
            #expect(abs(p50.estimate - 2_000) < 50 && p50.lower <= 2_000 && p50.upper >= 2_000)
            // Error-rate increase 2% against a 1% guardrail, divergence 10% against 5%.
            #expect(candidate.verdict.decision == .reject)
            #expect(Set(candidate.verdict.reasons.map(\.name)) == ["divergence", "error_rate"])
            #expect(candidate.errors.significant && candidate.errors.pValue < 1e-6)
            #expect(report.decision == .reject)
            // 2,000 s of traffic from an hour boundary: one hourly bucket.
            #expect(candidate.hourly.count == 1)
        }
    }

    @Test func aCleanCandidateIsPromotedAndAShortRunHeld() async throws {
        try await withTemporaryDirectory { folder in
            let clean = folder + "/clean.sqlite"
            try Traffic(pairs: 3_000, divergeEvery: 0, candidateLatency: 10_000).write(to: clean)
            let candidate = try #require(try self.report([clean]).routes.first?.candidates.first)
            #expect(candidate.verdict.decision == .promote, "\(candidate.verdict.checks)")
            #expect(candidate.enoughData.enough)

            let short = folder + "/short.sqlite"
            try Traffic(pairs: 200, divergeEvery: 0, candidateLatency: 10_000).write(to: short)
            let held = try #require(try self.report([short]).routes.first?.candidates.first)
            #expect(held.verdict.decision == .hold)
            #expect(held.verdict.reasons.map(\.name).contains("sample_size"))
            #expect(!held.enoughData.enough && held.enoughData.additionalPairsNeeded >= 800)
        }
    }

    @Test func theNoiseFloorIsSubtracted() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/aa.sqlite"
            // The replica disagrees with the baseline on 1 in 25 (4%), the candidate on 1 in 10.
            try Traffic(candidate: NoiseFloorConfiguration.replicaName, pairs: 2_000, divergeEvery: 25, candidateLatency: 10_000).write(to: path)
            try Traffic(pairs: 2_000, divergeEvery: 10, candidateLatency: 10_000).write(to: path)
            let route = try #require(try self.report([path]).routes.first)
            #expect(route.candidates.map(\.name) == ["v2"], "the replica is the floor, not a candidate")
            let floor = try #require(route.noiseFloor)
            #expect(floor.compared == 2_000 && floor.diverged == 80)
            #expect(floor.noisyPaths.first?.path == "$.label")
            let divergence = route.candidates[0].divergence
            #expect(abs(divergence.aboveNoise - 0.06) < 1e-9)
            #expect(divergence.noiseFloorRate == 0.04)
            // 6% above a 4% floor: the interval straddles the 5-point guardrail → hold, not reject.
            #expect(divergence.aboveNoiseInterval[0] < 0.05 && divergence.aboveNoiseInterval[1] > 0.05)
            #expect(route.candidates[0].verdict.decision == .hold)
        }
    }

    @Test func windowRouteAndSeveralDatabases() async throws {
        try await withTemporaryDirectory { folder in
            let hostA = folder + "/host-a.sqlite"
            let hostB = folder + "/host-b.sqlite"
            // Four hours of traffic, one request a minute, split over two hosts; plus another route.
            let start: Int64 = 1_780_002_000 / 3_600 * 3_600 * 1_000_000
            try Traffic(pairs: 240, startMicros: start, spacingMicros: 60_000_000).write(to: hostA)
            try Traffic(pairs: 240, startMicros: start + 30_000_000, spacingMicros: 60_000_000).write(to: hostB)
            try Traffic(route: "ranker", pairs: 100, startMicros: start).write(to: hostB)
            let all = try self.report([hostA, hostB])
            #expect(all.databases.map(\.pairs) == [240, 340])
            #expect(all.routes.map(\.name) == ["classifier", "ranker"])
            let merged = all.routes[0].candidates[0]
            #expect(merged.pairs == 480 && merged.hourly.count == 4 && merged.hourly.allSatisfy { $0.pairs == 120 })

            var options = ReportOptions(nowMicros: start + 10 * 3_600_000_000)
            options.fromMicros = start + 3_600_000_000
            options.toMicros = start + 3 * 3_600_000_000
            options.route = "classifier"
            let window = try self.report([hostA, hostB], options)
            #expect(window.routes.map(\.name) == ["classifier"])
            #expect(window.routes[0].candidates[0].pairs == 240 && window.routes[0].candidates[0].hourly.count == 2)
            #expect(window.window.from != nil && window.window.to != nil)
        }
    }

    @Test func segmentsFlagTheTenantWhereTheCandidateIsWorse() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/segments.sqlite"
            // Tenant "b" (1 request in 10) gets every candidate answer wrong; overall 10% + a bit.
            var traffic = Traffic(pairs: 4_000, divergeEvery: 0, candidateLatency: 10_000)
            traffic.segment = { $0 % 10 == 0 ? "b" : "a" }
            try traffic.write(to: path)
            var wrong = Traffic(pairs: 400, divergeEvery: 1, candidateLatency: 10_000)
            wrong.startMicros += 10_000_000_000
            wrong.segment = { _ in "b" }
            try wrong.write(to: path)
            let candidate = try #require(try self.report([path]).routes.first?.candidates.first)
            let segments = Dictionary(uniqueKeysWithValues: candidate.segments.map { ($0.value, $0) })
            #expect(segments["a"]?.flagged == false && segments["a"]?.divergenceRate == 0)
            let b = try #require(segments["b"])
            #expect(b.flagged && b.compared == 800 && abs(b.divergenceRate - 0.5) < 1e-9)
            #expect(b.reasons.first?.contains("divergence") == true)

            // The same split read from a request-body field instead of the recorded header.
            let fieldPath = folder + "/field.sqlite"
            var byField = Traffic(pairs: 1_000, divergeEvery: 2)
            byField.tenantField = { $0 % 2 == 0 ? "even" : "odd" }
            try byField.write(to: fieldPath)
            var options = ReportOptions(nowMicros: 1_790_000_000_000_000)
            options.configuration = try configuration(extraRouteYAML: "    segment:\n      field: $.tenant")
            let fieldReport = try self.report([fieldPath], options)
            let route = try #require(fieldReport.routes.first)
            #expect(route.segmentKey == "field $.tenant")
            let bySegment = Dictionary(uniqueKeysWithValues: route.candidates[0].segments.map { ($0.value, $0.divergenceRate) })
            #expect(bySegment == ["even": 1, "odd": 0])
            #expect(route.candidates[0].segments.first { $0.value == "even" }?.flagged == true)
        }
    }

    @Test func costPerRequestFromPricesAndTokenUsage() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/llm.sqlite"
            var traffic = Traffic(pairs: 1_000, divergeEvery: 0, candidateLatency: 10_000)
            traffic.usage = (prompt: 1_000, baseline: 200, candidate: 400)
            try traffic.write(to: path)
            var options = ReportOptions(nowMicros: 1_790_000_000_000_000)
            options.configuration = try configuration(
                extraRouteYAML: "    guardrails:\n      max_cost_increase: 0.25",
                baselineCost: "      cost:\n        per_request: 0.001\n        per_1k_prompt_tokens: 0.5\n        per_1k_completion_tokens: 1.5",
                candidateCost: "        cost:\n          per_1k_prompt_tokens: 0.5\n          per_1k_completion_tokens: 1.5"
            )
            let candidate = try #require(try self.report([path], options).routes.first?.candidates.first)
            let cost = try #require(candidate.cost)
            // Baseline: 0.001 + 0.5 + 0.3 = 0.801; candidate: 0.5 + 0.6 = 1.1 → +37.3%.
            #expect(abs(cost.baselinePerRequest - 0.801) < 1e-9 && abs(cost.candidatePerRequest - 1.1) < 1e-9)
            #expect(abs(cost.candidatePer1000 - 1_100) < 1e-6)
            #expect(candidate.verdict.decision == .reject && candidate.verdict.reasons.map(\.name).contains("cost"))
        }
    }

    @Test func costsStoredByTheDaemonAreUsedWithoutAConfiguration() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/priced.sqlite"
            // 500 pairs an hour apart from 2025-11-30T00:00Z: 24 on that day, 24 the next, …
            var traffic = Traffic(
                pairs: 500,
                divergeEvery: 0,
                startMicros: 1_764_460_800_000_000,
                spacingMicros: 3_600_000_000,
                candidateLatency: 10_000
            )
            traffic.usage = (prompt: 1_000, baseline: 200, candidate: 400)
            traffic.prices = (CostConfiguration(perRequest: 0.01), CostConfiguration(per1kCompletionTokens: 1))
            try traffic.write(to: path)
            let cost = try #require(try self.report([path]).routes.first?.candidates.first?.cost)
            #expect(abs(cost.baselinePerRequest - 0.01) < 1e-12 && abs(cost.candidatePerRequest - 0.4) < 1e-12)
            // Spend per UTC day: what shadowing cost each day, beside the baseline's price of the same requests.
            #expect(cost.days.count == 21 && cost.days.map(\.pairs).reduce(0, +) == 500)
            #expect(cost.days.first?.day == "2025-11-30" && cost.days[1].day == "2025-12-01" && cost.days.last?.day == "2025-12-20")
            #expect(cost.days[0].pairs == 24 && abs(cost.days[0].candidate - 24 * 0.4) < 1e-9 && abs(cost.days[0].baseline - 0.24) < 1e-9)
            #expect(HTTPDate.isoDay(daysSince1970: 0) == "1970-01-01" && HTTPDate.isoDay(daysSince1970: 11_016) == "2000-02-29")
            #expect(HTTPDate.isoDay(daysSince1970: 20_788) == "2026-12-01")
        }
    }

    @Test func configuredCandidatesWithoutPairsAreShownAndHeld() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/one.sqlite"
            try Traffic(pairs: 1_500, divergeEvery: 0, candidateLatency: 10_000).write(to: path)
            var options = ReportOptions(nowMicros: 1_790_000_000_000_000)
            options.configuration = try configuration(
                extraRouteYAML: "",
                candidateCost: "      - name: silent\n        url: http://127.0.0.1:9003"
            )
            let report = try self.report([path], options)
            let silent = try #require(report.routes.first?.candidates.first { $0.name == "silent" })
            #expect(silent.pairs == 0 && silent.verdict.decision == .hold)
            #expect(report.decision == .hold)
        }
    }

    @Test func readsAConsistentSnapshotWhileTheDaemonWrites() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/live.sqlite"
            let store = try PairStore(path: path)
            let records = Traffic(pairs: 6_000).records()
            try store.write(Array(records[0..<500]), coverage: [:])
            let writer = Task {
                for start in stride(from: 500, to: records.count, by: 250) {
                    try store.write(Array(records[start..<start + 250]), coverage: [:])
                }
            }
            var previous = 0
            for _ in 0..<10 {
                let reader = try PairReader(path: path)
                var builder = ReportBuilder(options: ReportOptions(nowMicros: 1_790_000_000_000_000, bootstrapReplicates: 50))
                try builder.add(reader)
                let candidate = builder.build().routes[0].candidates[0]
                // Whole batches only: a snapshot never shows half a transaction.
                #expect(candidate.pairs % 250 == 0 && candidate.pairs >= previous)
                #expect(candidate.divergence.diverged == (candidate.pairs + 9) / 10)
                previous = candidate.pairs
                try reader.close()
            }
            try await writer.value
            try store.close()
        }
    }
}
