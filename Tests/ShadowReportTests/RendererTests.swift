import Foundation
import GRDB
import ShadowCore
import ShadowStore
import Testing

@testable import ShadowReport

@Suite struct RendererTests {
    /// A report with every section filled: noise floor, segments, several hours, cost, errors.
    func richReport(in folder: String) throws -> Report {
        let path = folder + "/rich.sqlite"
        try Traffic(candidate: NoiseFloorConfiguration.replicaName, pairs: 1_000, divergeEvery: 40, spacingMicros: 10_000_000).write(to: path)
        var traffic = Traffic(pairs: 2_000, divergeEvery: 8, errorEvery: 100, spacingMicros: 10_000_000)
        traffic.segment = { ["<eu>", "us", "apac"][$0 % 3] }
        traffic.usage = (prompt: 100, baseline: 20, candidate: 30)
        try traffic.write(to: path)
        let store = try PairStore(path: path)
        try store.write(
            [],
            coverage: [:],
            events: [
                GatingEvent(
                    atMicros: traffic.startMicros + 60_000_000,
                    route: "classifier",
                    candidate: "v2",
                    kind: "circuit_breaker",
                    from: "closed",
                    to: "open",
                    reason: "error rate <high>"
                ),
                GatingEvent(
                    atMicros: traffic.startMicros + 90_000_000,
                    route: "classifier",
                    candidate: "",
                    kind: "ramp",
                    from: "5.0%",
                    to: "1.0%",
                    reason: "divergence broke"
                ),
            ]
        )
        try store.close()
        var options = ReportOptions(nowMicros: 1_790_000_000_000_000)
        options.configuration = try configuration(
            extraRouteYAML: "    segment:\n      header: X-Region",
            baselineCost: "      cost:\n        per_1k_completion_tokens: 2",
            candidateCost: "        cost:\n          per_1k_completion_tokens: 1"
        )
        var builder = ReportBuilder(options: options)
        try builder.add(try PairReader(path: path))
        return builder.build()
    }

    @Test func htmlIsOneSelfContainedPage() async throws {
        try await withTemporaryDirectory { folder in
            let html = try HTMLReportRenderer().render(try self.richReport(in: folder))
            #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
            #expect(!html.lowercased().contains("<script"))
            // Nothing is fetched: the only URL is the SVG namespace.
            let urls = html.components(separatedBy: "http").dropFirst().map { String($0.prefix(30)) }
            #expect(urls.allSatisfy { $0.hasPrefix("://www.w3.org/2000/svg") }, "\(urls)")
            #expect(html.components(separatedBy: "<svg").count - 1 == 5, "score histogram, CDF, segments, two time charts")
            #expect(html.contains("Latency CDF") && html.contains("Divergence rate by segment") && html.contains("Divergence rate per hour"))
            // Values from the data are escaped.
            #expect(html.contains("&lt;eu&gt;") && !html.contains("<eu>"))
            #expect(html.contains("A/A noise floor"))
            #expect(html.contains("Gate events") && html.contains("closed → open") && html.contains("error rate &lt;high&gt;"))
        }
    }

    @Test func markdownCarriesTheVerdictAndTheReasons() async throws {
        try await withTemporaryDirectory { folder in
            let report = try self.richReport(in: folder)
            let markdown = try MarkdownReportRenderer().render(report)
            #expect(markdown.hasPrefix("# shadowd report: \(report.decision.rawValue.uppercased())"))
            #expect(markdown.contains("| classifier | v2 | **\(report.routes[0].candidates[0].verdict.decision.rawValue)** |"))
            for check in report.routes[0].candidates[0].verdict.checks { #expect(markdown.contains("**\(check.name)**")) }
            #expect(markdown.contains("**Segments** by header X-Region"))
            #expect(markdown.contains("**Cost.**") && markdown.contains("**Over time**"))
            #expect(markdown.contains("| circuit_breaker | closed → open |") && markdown.contains("| – | ramp | 5.0% → 1.0% |"))
        }
    }

    /// The figures the renderers print, recomputed from the database with SQL (an independent
    /// reader) and the textbook Wilson formula written out here, not read back from the report.
    @Test func htmlAndMarkdownPrintTheFiguresTheDataGives() async throws {
        try await withTemporaryDirectory { folder in
            let report = try self.richReport(in: folder)
            let queue = try DatabaseQueue(path: folder + "/rich.sqlite")
            let (compared, diverged, candidateErrors, pairs, baselineCost, candidateCost) = try queue.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE candidate = 'v2' AND divergence IS NOT NULL") ?? -1,
                    try Int.fetchOne(db, sql: "SELECT sum(diverged) FROM pairs WHERE candidate = 'v2'") ?? -1,
                    try Int.fetchOne(
                        db,
                        sql: "SELECT count(*) FROM pairs WHERE candidate = 'v2' AND (candidate_error IS NOT NULL OR candidate_status >= 500)"
                    ) ?? -1,
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE candidate = 'v2'") ?? -1,
                    // Prices: 2 per 1,000 baseline completion tokens, 1 per 1,000 candidate ones; a
                    // failed call has no usage and costs nothing.
                    try Double.fetchOne(
                        db,
                        sql:
                            "SELECT avg(coalesce(json_extract(baseline_body, '$.usage.completion_tokens'), 0)) * 2 / 1000 FROM pairs WHERE candidate = 'v2'"
                    ) ?? -1,
                    try Double.fetchOne(
                        db,
                        sql:
                            "SELECT avg(CASE WHEN json_valid(candidate_body) THEN coalesce(json_extract(candidate_body, '$.usage.completion_tokens'), 0) ELSE 0 END) * 1 / 1000 FROM pairs WHERE candidate = 'v2'"
                    ) ?? -1
                )
            }
            try queue.close()
            let p = Double(diverged) / Double(compared)
            let z = 1.959963984540054
            let n = Double(compared)
            let centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            let half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot()
            let divergence = "\(Units.formatPercent(p)) (95% CI \(Units.formatPercent(centre - half)) – \(Units.formatPercent(centre + half)))"
            let errors = "candidate \(Units.formatPercent(Double(candidateErrors) / Double(pairs))) (\(candidateErrors))"
            let cost = "Per request: baseline \(Units.fixed(baselineCost, decimals: 6)), candidate \(Units.fixed(candidateCost, decimals: 6))"

            let markdown = try MarkdownReportRenderer().render(report)
            #expect(markdown.contains("**Divergence.** \(diverged) of \(compared) compared pairs, \(divergence)"), "\(markdown)")
            #expect(markdown.contains(errors) && markdown.contains(cost))
            let html = try HTMLReportRenderer().render(report)
            #expect(html.contains("<p><b>Divergence.</b> \(diverged) of \(compared) compared pairs: <b>\(Units.formatPercent(p))</b> (95% CI"))
            #expect(html.contains(divergence.replacingOccurrences(of: "\(Units.formatPercent(p)) (95% CI", with: "</b> (95% CI")))
            #expect(html.contains(errors) && html.contains(cost))
            // Every verdict check's sentence, with its figures, in both.
            for check in report.routes[0].candidates[0].verdict.checks {
                #expect(markdown.contains(check.detail), "\(check.name)")
                #expect(html.contains(escape(check.detail)), "\(check.name)")
            }
        }
    }

    @Test func jsonHasTheDocumentedVersionedShape() async throws {
        try await withTemporaryDirectory { folder in
            let report = try self.richReport(in: folder)
            let json = try JSONReportRenderer().render(report)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(object["format"] as? String == "shadowd-report" && object["version"] as? Int == Report.formatVersion)
            #expect(Set(object.keys) == ["format", "version", "generated_at", "window", "databases", "decision", "routes"])
            let routes = try #require(object["routes"] as? [[String: Any]])
            let candidate = try #require((routes[0]["candidates"] as? [[String: Any]])?.first)
            #expect(
                Set(candidate.keys)
                    == ["name", "pairs", "coverage", "divergence", "latency", "errors", "segments", "hourly", "cost", "enough_data", "verdict"]
            )
            // Round trip: the JSON decodes back into the same report.
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let decoded = try decoder.decode(Report.self, from: Data(json.utf8))
            #expect(try JSONReportRenderer().render(decoded) == json)
            // The same data and seed give the same bytes.
            try FileManager.default.createDirectory(atPath: folder + "/again", withIntermediateDirectories: false)
            #expect(
                try JSONReportRenderer().render(try self.richReport(in: folder + "/again"))
                    == json.replacingOccurrences(of: folder, with: folder + "/again")
            )
        }
    }

    @Test func outputIsWrittenWholeAndOldReportsRotate() async throws {
        try await withTemporaryDirectory { folder in
            let target = folder + "/report.html"
            try ReportOutput.write("first", to: target)
            try ReportOutput.write("second", to: target)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "second")
            #expect(throws: ReportError.self) { try ReportOutput.write("x", to: folder + "/missing/report.html") }
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["report.html"], "no temporary file is left behind")

            let dated = folder + "/nightly"
            try FileManager.default.createDirectory(atPath: dated, withIntermediateDirectories: false)
            for day in 0..<5 {
                _ = try ReportOutput.writeDated(
                    "day \(day)",
                    directory: dated,
                    fileExtension: "html",
                    at: Date(timeIntervalSince1970: 1_790_000_000 + Double(day) * 86_400),
                    keep: 3
                )
            }
            _ = try ReportOutput.writeDated("{}", directory: dated, fileExtension: "json", at: Date(timeIntervalSince1970: 1_790_000_000), keep: 3)
            let names = try FileManager.default.contentsOfDirectory(atPath: dated).sorted()
            #expect(names.filter { $0.hasSuffix(".html") }.count == 3 && names.filter { $0.hasSuffix(".json") }.count == 1)
            #expect(try String(contentsOfFile: dated + "/" + names.filter { $0.hasSuffix(".html") }.last!, encoding: .utf8) == "day 4")
        }
    }
}
