import ShadowCore

/// Wording shared by the Markdown and HTML renderers.
enum ReportText {
    static func percent(_ share: Double) -> String { Units.formatPercent(share) }

    static func interval(_ bounds: [Double]) -> String {
        guard bounds.count == 2 else { return "" }
        return "\(Units.formatPercent(bounds[0])) – \(Units.formatPercent(bounds[1]))"
    }

    static func micros(_ value: Double?) -> String { value.map(Units.formatMicros) ?? "–" }

    static func signedMicros(_ value: Double) -> String { (value >= 0 ? "+" : "") + Units.formatMicros(value) }

    static func quantileName(_ q: Double) -> String {
        switch q {
        case 0.5: "p50"
        case 0.9: "p90"
        case 0.99: "p99"
        case 0.999: "p99.9"
        default: "q\(q)"
        }
    }

    static func decisionLine(_ decision: Verdict.Decision) -> String {
        switch decision {
        case .promote: "PROMOTE: ready for a live A/B test"
        case .hold: "HOLD: not enough data or inconclusive"
        case .reject: "REJECT: a guardrail is broken"
        }
    }

    static func window(_ report: Report) -> String {
        "\(report.window.from ?? "first pair") to \(report.window.to ?? report.generatedAt)"
    }

    static func enoughData(_ section: EnoughDataSection) -> String {
        if section.enough {
            return
                "yes: ±\(Units.formatPercent(section.halfWidth)) on the divergence rate (margin ±\(Units.formatPercent(section.margin))), \(section.compared) pairs"
        }
        return
            "no: ±\(Units.formatPercent(section.halfWidth)) with \(section.compared) pairs; about \(section.additionalPairsNeeded) more needed for ±\(Units.formatPercent(section.margin)) and the minimum of \(section.minPairs)"
    }

    static func counts(_ counts: [String: Int]) -> String {
        counts.isEmpty ? "none" : counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}
