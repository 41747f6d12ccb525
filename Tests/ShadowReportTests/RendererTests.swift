import Foundation
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
