import ShadowCore

/// The report as one self-contained HTML page: inline CSS and SVG charts, no script, nothing
/// fetched from the network.
public struct HTMLReportRenderer: ReportRenderer {
    public var fileExtension: String { "html" }

    public init() {}

    static let baselineColor = "#2563eb"
    static let candidateColor = "#ea580c"

    public func render(_ report: Report) throws -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>shadowd report: \(report.decision.rawValue)</title>
            <style>
            body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;max-width:1100px;margin:24px auto;padding:0 16px}
            h1{font-size:22px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #e5e7eb}h3{font-size:16px;margin-top:24px}
            table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
            td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
            .banner{padding:12px 16px;border-radius:6px;font-weight:600;font-size:16px}
            .promote{background:#dcfce7;color:#14532d}.hold{background:#fef9c3;color:#713f12}.reject{background:#fee2e2;color:#7f1d1d}
            .pass{color:#15803d}.fail{color:#b91c1c;font-weight:600}.inconclusive{color:#a16207}
            .flag{color:#b91c1c;font-weight:600}.muted{color:#6b7280}code{background:#f3f4f6;padding:0 3px;border-radius:3px}
            svg{max-width:100%;height:auto}svg .t{font:11px system-ui,sans-serif;fill:#374151}
            .charts{display:flex;flex-wrap:wrap;gap:12px}
            </style></head><body>
            <h1>shadowd report</h1>
            <div class="banner \(report.decision.rawValue)">\(escape(ReportText.decisionLine(report.decision)))</div>
            <p class="muted">Window \(escape(ReportText.window(report))) · generated \(escape(report.generatedAt)) · \(report.databases.map { "<code>\(escape($0.path))</code> (\($0.pairs) pairs, schema v\($0.schemaVersion))" }.joined(separator: ", "))</p>
            <table><tr><th>Route</th><th>Candidate</th><th>Verdict</th><th class="n">Compared</th><th>Divergence (95% CI)</th><th>Above noise</th><th>p99 Δ</th><th>Error rate Δ</th></tr>

            """
        for route in report.routes {
            for c in route.candidates {
                let p99 = c.latency.differences.first { $0.quantile == 0.99 }
                out +=
                    "<tr><td>\(escape(route.name))</td><td>\(escape(c.name))</td><td class=\"\(c.verdict.decision.rawValue)\"><b>\(c.verdict.decision.rawValue)</b></td>"
                out +=
                    "<td class=\"n\">\(c.divergence.compared)</td><td>\(ReportText.percent(c.divergence.rate)) (\(ReportText.interval(c.divergence.interval)))</td>"
                out +=
                    "<td>\(ReportText.percent(c.divergence.aboveNoise))</td><td>\(p99.map { escape(ReportText.signedMicros($0.estimate)) } ?? "–")</td>"
                out += "<td>\(ReportText.percent(c.errors.difference))</td></tr>\n"
            }
        }
        out += "</table>\n"
        for route in report.routes {
            out += "<h2>Route <code>\(escape(route.name))</code></h2>\n"
            if let noise = route.noiseFloor {
                out +=
                    "<p>A/A noise floor: <b>\(ReportText.percent(noise.rate))</b> (\(ReportText.interval(noise.interval))) over \(noise.compared) pairs."
                if !noise.noisyPaths.isEmpty {
                    out +=
                        " Noisiest paths: "
                        + noise.noisyPaths.prefix(5).map { "<code>\(escape($0.path))</code> \(ReportText.percent($0.share))" }.joined(separator: ", ")
                        + "."
                }
                out += "</p>\n"
            } else {
                out += "<p class=\"muted\">No A/A replica ran on this route: divergence is measured against a floor of 0.</p>\n"
            }
            if !route.events.isEmpty {
                out +=
                    "<p><b>Gate events</b> (circuit breakers, ramp).</p><table><tr><th>At</th><th>Candidate</th><th>Gate</th><th>Change</th><th>Reason</th></tr>\n"
                for event in route.events.suffix(50) {
                    out +=
                        "<tr><td>\(escape(event.at))</td><td>\(escape(event.candidate.isEmpty ? "–" : event.candidate))</td><td>\(escape(event.kind))</td>"
                    out += "<td>\(escape(event.from)) → \(escape(event.to))</td><td>\(escape(event.reason))</td></tr>\n"
                }
                out += "</table>\n"
            }
            for c in route.candidates { out += self.candidate(c, segmentKey: route.segmentKey) }
        }
        for experiment in report.experiments ?? [] {
            for block in ReportText.experiment(experiment) {
                switch block {
                case .heading(let text): out += "<h2>\(Self.inline(text))</h2>\n"
                case .paragraph(let text):
                    let lines = text.split(separator: "\n").map(String.init)
                    out +=
                        lines.allSatisfy { $0.hasPrefix("- ") }
                        ? "<ul>" + lines.map { "<li>\(Self.inline(String($0.dropFirst(2))))</li>" }.joined() + "</ul>\n"
                        : "<p>\(Self.inline(text))</p>\n"
                case .table(let header, let rows):
                    out += "<table><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
                    for row in rows { out += "<tr>" + row.map { "<td>\(Self.inline($0))</td>" }.joined() + "</tr>\n" }
                    out += "</table>\n"
                }
            }
        }
        return out + "</body></html>\n"
    }

    private func candidate(_ c: CandidateReport, segmentKey: String?) -> String {
        var out = "<h3>Candidate <code>\(escape(c.name))</code></h3>\n"
        out += "<div class=\"banner \(c.verdict.decision.rawValue)\">\(escape(ReportText.decisionLine(c.verdict.decision)))</div>\n<ul>\n"
        for check in c.verdict.checks {
            out +=
                "<li><span class=\"\(check.outcome.rawValue)\">\(check.outcome.rawValue)</span> <b>\(escape(check.name))</b>: \(escape(check.detail))</li>\n"
        }
        out += "</ul>\n"
        out +=
            "<p><b>Coverage.</b> \(c.coverage.seen) requests seen, \(c.coverage.recorded) recorded; not recorded: \(escape(ReportText.counts(c.coverage.dropped))); candidate errors: \(escape(ReportText.counts(c.coverage.candidateErrors))).</p>\n"
        out += "<p><b>Enough data?</b> \(escape(ReportText.enoughData(c.enoughData))).</p>\n"

        let d = c.divergence
        out +=
            "<p><b>Divergence.</b> \(d.diverged) of \(d.compared) compared pairs: <b>\(ReportText.percent(d.rate))</b> (95% CI \(ReportText.interval(d.interval)))"
        if let floor = d.noiseFloorRate {
            out +=
                "; noise floor \(ReportText.percent(floor)); above it \(ReportText.percent(d.aboveNoise)) (\(ReportText.interval(d.aboveNoiseInterval)))"
        }
        out += "; mean score \(Units.fixed(d.meanScore, decimals: 4)).</p>\n<div class=\"charts\">\n"
        var bins: [(label: String, value: Double, color: String)] = [("0", Double(d.zeroScores), "#9ca3af")]
        for (index, count) in d.scoreHistogram.enumerated() {
            bins.append(("≤\(Units.fixed(Double(index + 1) * 0.05, decimals: 2))", Double(count), Self.candidateColor))
        }
        out += SVGChart.bars(bins, title: "Score distribution (pairs per score bin)", yFormat: { Units.fixed($0, decimals: 0) })
        out += SVGChart.lines(
            [
                .init(name: "baseline", color: Self.baselineColor, points: c.latency.baselineCdf.map { ($0[0], $0[1]) }),
                .init(name: "candidate", color: Self.candidateColor, points: c.latency.candidateCdf.map { ($0[0], $0[1]) }),
            ],
            title: "Latency CDF (log scale)",
            logX: true,
            xFormat: { Units.formatMicros($0) },
            yFormat: { Units.formatPercent($0, decimals: 0) },
            yRange: 0...1
        )
        out += "</div>\n"
        if !d.topPaths.isEmpty {
            out += "<table><tr><th>Most divergent paths</th><th class=\"n\">Pairs</th><th class=\"n\">Share</th><th>Example request ids</th></tr>\n"
            for path in d.topPaths {
                out +=
                    "<tr><td><code>\(escape(path.path))</code></td><td class=\"n\">\(path.count)</td><td class=\"n\">\(ReportText.percent(path.share))</td><td>\(path.examples.map { "<code>\(escape($0))</code>" }.joined(separator: " "))</td></tr>\n"
            }
            out += "</table>\n"
        }

        let l = c.latency
        out +=
            "<p><b>Latency.</b></p><table><tr><th></th><th class=\"n\">n</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p99</th><th class=\"n\">p99.9</th></tr>\n"
        for (name, arm) in [("baseline", l.baseline), ("candidate", l.candidate)] {
            out +=
                "<tr><td>\(name)</td><td class=\"n\">\(arm.count)</td><td class=\"n\">\(ReportText.micros(arm.p50))</td><td class=\"n\">\(ReportText.micros(arm.p90))</td><td class=\"n\">\(ReportText.micros(arm.p99))</td><td class=\"n\">\(ReportText.micros(arm.p999))</td></tr>\n"
        }
        if !l.differences.isEmpty {
            out += "<tr><td>candidate − baseline<br><span class=\"muted\">bootstrap 95% CI</span></td><td></td>"
            out += l.differences.map {
                "<td class=\"n\">\(escape(ReportText.signedMicros($0.estimate)))<br><span class=\"muted\">\(escape(ReportText.signedMicros($0.lower))) … \(escape(ReportText.signedMicros($0.upper)))</span></td>"
            }.joined()
            out += "</tr>\n"
        }
        out += "</table>\n"

        let e = c.errors
        out +=
            "<p><b>Errors.</b> Baseline \(ReportText.percent(e.baselineRate)) (\(e.baselineErrors)), candidate \(ReportText.percent(e.candidateRate)) (\(e.candidateErrors)) of \(e.pairs) pairs; "
        out +=
            "difference \(ReportText.percent(e.difference)) (95% CI \(ReportText.interval(e.interval))), two-proportion test p = \(Units.fixed(e.pValue, decimals: 4)), Cohen's h \(Units.fixed(e.effectSize, decimals: 3)): "
        out += e.significant ? "<b>significant</b> at 5%." : "not significant at 5%."
        out += " Timeouts: baseline \(e.baselineTimeouts), candidate \(e.candidateTimeouts) (p = \(Units.fixed(e.timeoutPValue, decimals: 4))).</p>\n"
        if let cost = c.cost {
            out +=
                "<p><b>Cost.</b> Per request: baseline \(Units.fixed(cost.baselinePerRequest, decimals: 6)), candidate \(Units.fixed(cost.candidatePerRequest, decimals: 6)); per 1,000 requests \(Units.fixed(cost.baselinePer1000, decimals: 4)) vs \(Units.fixed(cost.candidatePer1000, decimals: 4))"
            out += cost.increase.map { " (\($0 >= 0 ? "+" : "")\(ReportText.percent($0)))" } ?? ""
            out += ".</p>\n"
            if !cost.days.isEmpty {
                out += "<table><tr><th>UTC day</th><th>Pairs</th><th>Baseline spend</th><th>Candidate spend</th></tr>\n"
                for day in cost.days {
                    out +=
                        "<tr><td>\(day.day)</td><td>\(day.pairs)</td><td>\(Units.fixed(day.baseline, decimals: 4))</td><td>\(Units.fixed(day.candidate, decimals: 4))</td></tr>\n"
                }
                out += "</table>\n"
            }
        }

        if !c.segments.isEmpty {
            out += "<p><b>Segments</b> by \(escape(segmentKey ?? "segment")).</p>\n"
            out += SVGChart.bars(
                c.segments.prefix(24).map { ($0.value, $0.divergenceRate, $0.flagged ? "#b91c1c" : Self.candidateColor) },
                title: "Divergence rate by segment",
                yFormat: { Units.formatPercent($0, decimals: 1) },
                reference: d.rate
            )
            out +=
                "<table><tr><th>Segment</th><th class=\"n\">Compared</th><th>Divergence (95% CI)</th><th>Error rate b → c</th><th>p99 b → c</th><th>Flag</th></tr>\n"
            for s in c.segments.prefix(50) {
                out +=
                    "<tr><td>\(escape(s.value))</td><td class=\"n\">\(s.compared)</td><td>\(ReportText.percent(s.divergenceRate)) (\(ReportText.interval(s.interval)))</td>"
                out +=
                    "<td>\(ReportText.percent(s.baselineErrorRate)) → \(ReportText.percent(s.candidateErrorRate))</td><td>\(escape(ReportText.micros(s.baselineP99))) → \(escape(ReportText.micros(s.candidateP99)))</td>"
                out += "<td>\(s.flagged ? "<span class=\"flag\">⚠ \(escape(s.reasons.joined(separator: "; ")))</span>" : "")</td></tr>\n"
            }
            out += "</table>\n"
        }

        if !c.hourly.isEmpty {
            let hours = c.hourly.enumerated().map { (Double($0.offset), $0.element) }
            let label: (Double) -> String = { index in
                let i = Int(index.rounded())
                guard i >= 0, i < c.hourly.count else { return "" }
                return String(c.hourly[i].hour.dropFirst(5).prefix(11).map { $0 == "T" ? " " : $0 })
            }
            out += "<p><b>Over time</b> (hourly).</p><div class=\"charts\">\n"
            out += SVGChart.lines(
                [.init(name: "divergence rate", color: Self.candidateColor, points: hours.map { ($0.0, $0.1.divergenceRate) })],
                title: "Divergence rate per hour",
                logX: false,
                xFormat: label,
                yFormat: { Units.formatPercent($0, decimals: 1) },
                yRange: 0...min(1, max(0.01, (c.hourly.map(\.divergenceRate).max() ?? 0) * 1.1))
            )
            out += SVGChart.lines(
                [
                    .init(name: "baseline p99", color: Self.baselineColor, points: hours.compactMap { h in h.1.baselineP99.map { (h.0, $0) } }),
                    .init(name: "candidate p99", color: Self.candidateColor, points: hours.compactMap { h in h.1.candidateP99.map { (h.0, $0) } }),
                ],
                title: "p99 latency per hour",
                logX: false,
                xFormat: label,
                yFormat: { Units.formatMicros($0) }
            )
            out += "</div>\n"
        }
        return out
    }

    /// Escapes, then renders the Markdown the shared wording uses: `code` and **bold**.
    static func inline(_ text: String) -> String {
        var out = ""
        var code = false
        var bold = false
        let characters = Array(escape(text))
        var index = 0
        while index < characters.count {
            if characters[index] == "`" {
                out += code ? "</code>" : "<code>"
                code.toggle()
            } else if characters[index] == "*", index + 1 < characters.count, characters[index + 1] == "*" {
                out += bold ? "</b>" : "<b>"
                bold.toggle()
                index += 1
            } else {
                out.append(characters[index])
            }
            index += 1
        }
        return out
    }
}
