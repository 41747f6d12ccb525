import ShadowCore

/// The report as Markdown, for pasting into a ticket or a pull request.
public struct MarkdownReportRenderer: ReportRenderer {
    public var fileExtension: String { "md" }

    public init() {}

    public func render(_ report: Report) throws -> String {
        var out = "# shadowd report: \(report.decision.rawValue.uppercased())\n\n"
        out += "Window \(ReportText.window(report)); generated \(report.generatedAt); "
        out += "\(report.databases.count) database\(report.databases.count == 1 ? "" : "s") ("
        out += report.databases.map { "`\($0.path)` \($0.pairs) pairs" }.joined(separator: ", ") + ").\n\n"
        out += "| Route | Candidate | Verdict | Pairs | Divergence (95% CI) | Above noise | p99 Δ | Error rate Δ |\n"
        out += "|---|---|---|---:|---|---|---|---|\n"
        for route in report.routes {
            for candidate in route.candidates {
                let p99 = candidate.latency.differences.first { $0.quantile == 0.99 }
                out += "| \(route.name) | \(candidate.name) | **\(candidate.verdict.decision.rawValue)** | \(candidate.divergence.compared) | "
                out += "\(ReportText.percent(candidate.divergence.rate)) (\(ReportText.interval(candidate.divergence.interval))) | "
                out += "\(ReportText.percent(candidate.divergence.aboveNoise)) | \(p99.map { ReportText.signedMicros($0.estimate) } ?? "–") | "
                out += "\(ReportText.percent(candidate.errors.difference)) |\n"
            }
        }
        for route in report.routes {
            out += "\n## Route `\(route.name)`\n"
            if let noise = route.noiseFloor {
                out += "\nA/A noise floor: \(ReportText.percent(noise.rate)) (\(ReportText.interval(noise.interval))) over \(noise.compared) pairs."
                if !noise.noisyPaths.isEmpty {
                    out +=
                        " Noisiest paths: "
                        + noise.noisyPaths.prefix(5).map { "`\($0.path)` \(ReportText.percent($0.share))" }.joined(separator: ", ") + "."
                }
                out += "\n"
            }
            if !route.events.isEmpty {
                out += "\n**Gate events** (circuit breakers, ramp):\n\n| At | Candidate | Gate | Change | Reason |\n|---|---|---|---|---|\n"
                for event in route.events.suffix(50) {
                    out +=
                        "| \(event.at) | \(event.candidate.isEmpty ? "–" : event.candidate) | \(event.kind) | \(event.from) → \(event.to) | \(event.reason) |\n"
                }
            }
            for candidate in route.candidates { out += self.candidate(candidate, segmentKey: route.segmentKey) }
        }
        for experiment in report.experiments ?? [] {
            for block in ReportText.experiment(experiment) {
                switch block {
                case .heading(let text): out += "\n## \(text)\n"
                case .paragraph(let text): out += "\n\(text)\n"
                case .table(let header, let rows):
                    out += "\n| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in "---|" }.joined() + "\n"
                    for row in rows { out += "| " + row.joined(separator: " | ") + " |\n" }
                }
            }
        }
        return out
    }

    private func candidate(_ c: CandidateReport, segmentKey: String?) -> String {
        var out = "\n### Candidate `\(c.name)`: \(ReportText.decisionLine(c.verdict.decision))\n\n"
        for check in c.verdict.checks {
            out += "- \(Self.mark(check.outcome)) **\(check.name)**: \(check.detail)\n"
        }
        out +=
            "\n**Coverage.** \(c.coverage.seen) requests seen, \(c.coverage.recorded) recorded; not recorded: \(ReportText.counts(c.coverage.dropped)); "
        out += "candidate errors: \(ReportText.counts(c.coverage.candidateErrors)).\n\n"
        out += "**Enough data?** \(ReportText.enoughData(c.enoughData)).\n\n"
        let d = c.divergence
        out +=
            "**Divergence.** \(d.diverged) of \(d.compared) compared pairs, \(ReportText.percent(d.rate)) (95% CI \(ReportText.interval(d.interval)))"
        if let floor = d.noiseFloorRate {
            out +=
                "; noise floor \(ReportText.percent(floor)); above it \(ReportText.percent(d.aboveNoise)) (\(ReportText.interval(d.aboveNoiseInterval)))"
        }
        out += "; mean score \(Units.fixed(d.meanScore, decimals: 4)).\n"
        if !d.topPaths.isEmpty {
            out += "\n| Path | Pairs | Share | Example request ids |\n|---|---:|---:|---|\n"
            for path in d.topPaths {
                out += "| `\(path.path)` | \(path.count) | \(ReportText.percent(path.share)) | \(path.examples.joined(separator: ", ")) |\n"
            }
        }
        let l = c.latency
        out += "\n**Latency.**\n\n| | n | p50 | p90 | p99 | p99.9 |\n|---|---:|---:|---:|---:|---:|\n"
        for (name, arm) in [("baseline", l.baseline), ("candidate", l.candidate)] {
            out +=
                "| \(name) | \(arm.count) | \(ReportText.micros(arm.p50)) | \(ReportText.micros(arm.p90)) | \(ReportText.micros(arm.p99)) | \(ReportText.micros(arm.p999)) |\n"
        }
        if !l.differences.isEmpty {
            out +=
                "| Δ (95% CI) | | "
                + l.differences.map {
                    "\(ReportText.signedMicros($0.estimate)) (\(ReportText.signedMicros($0.lower)) … \(ReportText.signedMicros($0.upper)))"
                }.joined(separator: " | ") + " |\n"
        }
        let e = c.errors
        out +=
            "\n**Errors.** Baseline \(ReportText.percent(e.baselineRate)) (\(e.baselineErrors)), candidate \(ReportText.percent(e.candidateRate)) (\(e.candidateErrors)) of \(e.pairs) pairs; "
        out +=
            "difference \(ReportText.percent(e.difference)) (95% CI \(ReportText.interval(e.interval))), p = \(Units.fixed(e.pValue, decimals: 4)), Cohen's h \(Units.fixed(e.effectSize, decimals: 3)), "
        out += e.significant ? "significant at 5%." : "not significant at 5%."
        out += " Timeouts: baseline \(e.baselineTimeouts), candidate \(e.candidateTimeouts) (p = \(Units.fixed(e.timeoutPValue, decimals: 4))).\n"
        if let cost = c.cost {
            out +=
                "\n**Cost.** Per request: baseline \(Units.fixed(cost.baselinePerRequest, decimals: 6)), candidate \(Units.fixed(cost.candidatePerRequest, decimals: 6)); "
            out += "per 1,000: \(Units.fixed(cost.baselinePer1000, decimals: 4)) vs \(Units.fixed(cost.candidatePer1000, decimals: 4))"
            out += cost.increase.map { " (\($0 >= 0 ? "+" : "")\(ReportText.percent($0)))" } ?? ""
            out += ".\n"
            if !cost.days.isEmpty {
                out += "\nSpend per UTC day on recorded pairs:\n\n| Day | Pairs | Baseline | Candidate |\n|---|---:|---:|---:|\n"
                for day in cost.days {
                    out += "| \(day.day) | \(day.pairs) | \(Units.fixed(day.baseline, decimals: 4)) | \(Units.fixed(day.candidate, decimals: 4)) |\n"
                }
            }
        }
        if !c.segments.isEmpty {
            out +=
                "\n**Segments** by \(segmentKey ?? "segment"):\n\n| Segment | Pairs | Divergence (95% CI) | Error rate b → c | p99 b → c | Flag |\n|---|---:|---|---|---|---|\n"
            for s in c.segments.prefix(30) {
                out += "| \(s.value) | \(s.compared) | \(ReportText.percent(s.divergenceRate)) (\(ReportText.interval(s.interval))) | "
                out +=
                    "\(ReportText.percent(s.baselineErrorRate)) → \(ReportText.percent(s.candidateErrorRate)) | \(ReportText.micros(s.baselineP99)) → \(ReportText.micros(s.candidateP99)) | "
                out += s.flagged ? "⚠ \(s.reasons.joined(separator: "; "))" : ""
                out += " |\n"
            }
        }
        if c.hourly.count > 1 {
            out += "\n**Over time** (hourly):\n\n| Hour | Pairs | Divergence | Candidate errors | p99 b → c |\n|---|---:|---:|---:|---|\n"
            for h in c.hourly.suffix(48) {
                out +=
                    "| \(h.hour) | \(h.compared) | \(ReportText.percent(h.divergenceRate)) | \(h.candidateErrors) | \(ReportText.micros(h.baselineP99)) → \(ReportText.micros(h.candidateP99)) |\n"
            }
        }
        return out
    }

    static func mark(_ outcome: Verdict.Outcome) -> String {
        switch outcome {
        case .pass: "✅"
        case .fail: "❌"
        case .inconclusive: "⏳"
        case .skipped: "–"
        }
    }
}
