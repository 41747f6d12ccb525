import ShadowCore

extension ReportText {
    /// An experiment's section as headings, paragraphs and tables; the Markdown and HTML
    /// renderers each lay these out in their own syntax.
    enum Block {
        case heading(String)
        case paragraph(String)
        case table(header: [String], rows: [[String]])
    }

    static func experiment(_ e: ExperimentReport) -> [Block] {
        func estimate(_ value: MetricComparison.Estimate, percent: Bool) -> String {
            let format: (Double) -> String = percent ? { Units.formatPercent($0) } : { Units.fixed($0, decimals: 4) }
            return "\(format(value.estimate)) [\(format(value.ciLow)), \(format(value.ciHigh))]"
        }
        var blocks: [Block] = [
            .heading("Experiment `\(e.name)`: \(e.decision.uppercased())"),
            .paragraph(e.reasons.map { "- \($0)" }.joined(separator: "\n")),
            .paragraph(
                "Route `\(e.route)`, treatment `\(e.treatment)`, \(e.analysis) analysis; \(e.state)"
                    + (e.stage.map {
                        " at stage \($0 + 1) of \(e.allocation.count) (\(e.allocation.map { Units.fixed($0, decimals: 0) + "%" }.joined(separator: " → ")) per arm)"
                    } ?? "")
                    + ". Users: \(e.srm.controlUsers) control, \(e.srm.treatmentUsers) treatment (sample ratio p = \(Units.fixed(e.srm.pValue, decimals: 4))\(e.srm.mismatch ? ", MISMATCH" : "")); "
                    + "requests: \(e.requests["control"] ?? 0) control, \(e.requests["treatment"] ?? 0) treatment, \(e.fallbacks) fallbacks; "
                    + "\(e.unmatchedOutcomes) outcome events matched no enrolled request or user\(e.conflictingUsers > 0 ? "; \(e.conflictingUsers) users seen in both arms" : "")."
            ),
        ]
        if !e.metrics.isEmpty {
            blocks.append(
                .table(
                    header: ["Metric", "Control", "Treatment", "Difference (CI)", "Relative lift (CI)", "p", "P(treatment better)"],
                    rows: e.metrics.map { m in
                        [
                            "\(m.name)\(m.per == "request" ? " per request" : "")\(m.primary ? " (primary)" : "")\(m.maxDecrease.map { ", guardrail −\(Units.formatPercent($0))" } ?? "")",
                            "\(Units.fixed(m.arms[0].mean, decimals: 4)) (\(m.arms[0].users))",
                            "\(Units.fixed(m.arms[1].mean, decimals: 4)) (\(m.arms[1].users))",
                            estimate(m.difference, percent: false),
                            estimate(m.relativeLift, percent: true),
                            Units.fixed(m.pValue, decimals: 4),
                            Units.formatPercent(m.probabilityTreatmentBetter),
                        ]
                    }
                )
            )
            blocks.append(
                .paragraph(
                    "Intervals are \(e.analysis == "sequential" ? "always-valid (mixture SPRT): valid however often the report is read" : "fixed-horizon 95%: valid once, at the planned sample size")\(e.resultsWithheld ? "; not decided on yet" : ""). Each user counts once (their conversion, or their summed value; a per-request rate is a ratio of per-user sums with a delta-method interval). P(treatment better) is Bayesian with flat priors, a secondary figure."
                )
            )
        }
        let planning = e.planning
        blocks.append(
            .paragraph(
                "Planning: \(planning.usersNeededPerArm.map { "\($0) users per arm" } ?? "?") for the configured lift at the configured power; "
                    + "\(planning.daysNeeded.map { "about \(Units.fixed($0, decimals: 1)) more days" } ?? "days unknown") at the enrolment rate so far; "
                    + "detectable now: \(planning.reachableMDE.map { Units.formatPercent($0) } ?? "?"); ran \(Units.fixed(planning.elapsedDays, decimals: 1)) of \(Units.fixed(planning.minDurationDays, decimals: 1)) minimum days."
            )
        )
        if !e.segments.isEmpty {
            blocks.append(
                .table(
                    header: ["Segment", "Control users", "Treatment users", "Primary lift (CI)", "Worse?"],
                    rows: e.segments.map {
                        [
                            $0.segment, "\($0.controlUsers)", "\($0.treatmentUsers)", estimate($0.relativeLift, percent: true),
                            $0.worse ? "**yes**" : "no",
                        ]
                    }
                )
            )
        }
        if !e.days.isEmpty {
            blocks.append(
                .table(
                    header: ["Day", "Control users", "Treatment users", "Control requests", "Treatment requests"],
                    rows: e.days.suffix(31).map {
                        ["\($0.date)", "\($0.controlUsers)", "\($0.treatmentUsers)", "\($0.controlRequests)", "\($0.treatmentRequests)"]
                    }
                )
            )
        }
        return blocks
    }
}
