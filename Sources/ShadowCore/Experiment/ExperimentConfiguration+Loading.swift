import Yams

extension ExperimentConfiguration {
    /// The route's `experiment:` block; `candidates` are the route's, one of which is the treatment.
    init(reading reader: inout YAMLReader, candidates: [CandidateConfiguration]) throws(ConfigurationError) {
        let name = try reader.name("name")
        let mode: Mode = try reader.choice("mode", default: .ab)
        let treatment = try reader.requiredString("treatment")
        guard candidates.contains(where: { $0.name == treatment }) else {
            let names = candidates.map(\.name).joined(separator: ", ")
            throw reader.fail("treatment", "'\(treatment)' is not a candidate of this route (candidates: \(names.isEmpty ? "none" : names))")
        }
        guard var keyReader = try reader.object("key") else { throw reader.fail("key", "is required, e.g. {header: x-user-id}") }
        let key = try RequestKey(reading: &keyReader)
        try keyReader.finish()
        self.init(name: name, treatment: treatment, key: key)
        self.mode = mode
        self.salt = try reader.string("salt") ?? name
        if reader.has("allocation") {
            self.allocation = try reader.percentages("allocation")
            if let last = self.allocation.last, last > ServingDecision.maxTreatmentPercent {
                throw reader.fail(
                    "allocation",
                    "each stage is the share of users in each arm, at most 50 (treatment and an equal control), got \(Units.fixed(last, decimals: 1))"
                )
            }
        }
        self.stageMinDuration = try reader.duration("stage_min_duration", default: self.stageMinDuration)
        self.stageMinRequests = try reader.int("stage_min_requests", default: self.stageMinRequests, range: 0...1_000_000_000)
        self.shadowOtherArm = try reader.bool("shadow_other_arm", default: true)
        self.fallback = try reader.choice("fallback", default: .control)
        if let header = try reader.string("arm_header") {
            guard header.isEmpty || header.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw reader.fail("arm_header", "expected a header name (or '' for none), got '\(header)'")
            }
            self.armHeader = header.isEmpty ? nil : header
        }
        var metricNames: Set<String> = []
        for var metricReader in try reader.objects("metrics") {
            let metric = Metric(
                name: try metricReader.name("name"),
                kind: try metricReader.choice("kind", default: .binary),
                per: try metricReader.choice("per", default: .user)
            )
            try metricReader.finish()
            guard metricNames.insert(metric.name).inserted else { throw metricReader.fail("name", "duplicate metric '\(metric.name)'") }
            self.metrics.append(metric)
        }
        if let primary = try reader.string("primary") {
            guard metricNames.contains(primary) else { throw reader.fail("primary", "'\(primary)' is not one of the metrics") }
            self.primary = primary
        } else {
            self.primary = self.metrics.first?.name
        }
        if var railReader = try reader.object("guardrails") {
            self.guardrails.maxErrorRateIncrease = try railReader.double(
                "max_error_rate_increase",
                default: self.guardrails.maxErrorRateIncrease,
                range: 0...1
            )
            if let limit = try railReader.latencyLimit("max_p99_regression") { self.guardrails.maxP99Regression = limit }
            self.guardrails.maxFallbackRate = try railReader.share("max_fallback_rate", default: self.guardrails.maxFallbackRate)
            for metric in self.metrics {
                guard var metricRail = try railReader.object(metric.name) else { continue }
                self.guardrails.maxDecrease[metric.name] = try metricRail.share("max_decrease", default: 0)
                try metricRail.finish()
            }
            try railReader.finish()
        }
        self.minimumDetectableEffect = try reader.share("mde", default: self.minimumDetectableEffect, range: 0.0001...10)
        self.alpha = try reader.double("alpha", default: self.alpha, range: 0.0001...0.5)
        self.power = try reader.double("power", default: self.power, range: 0.5...0.9999)
        self.minDuration = try reader.duration("min_duration", default: self.minDuration, minimum: .seconds(0))
        self.analysis = try reader.choice("analysis", default: .sequential)
    }
}

extension YAMLReader {
    /// A share written as a percentage (`5%`) or a fraction (`0.05`).
    mutating func share(_ key: String, default fallback: Double, range: ClosedRange<Double> = 0...1) throws(ConfigurationError) -> Double {
        guard let node = self.value(key) else { return fallback }
        let text = (node.string ?? "").trimmingSpaces()
        let value: Double? = text.hasSuffix("%") ? Double(text.dropLast().trimmingSpaces()).map { $0 / 100 } : Double(text)
        guard let value, value.isFinite, range.contains(value) else {
            throw self.fail(
                key,
                "expected a share such as 5% or 0.05 (between \(range.lowerBound) and \(range.upperBound)), got '\(text)'",
                node: node
            )
        }
        return value
    }

    /// A growing list of percentages above 0 and at most 100 (`[1, 5, 20, 50]`).
    mutating func percentages(_ key: String) throws(ConfigurationError) -> [Double] {
        guard let node = self.value(key), case .sequence(let sequence) = node else {
            throw self.fail(key, "expected a list of percentages, e.g. [1, 5, 20, 50]")
        }
        var values: [Double] = []
        for (index, item) in sequence.enumerated() {
            guard let percent = item.float ?? item.int.map(Double.init), percent > 0, percent <= 100 else {
                throw ConfigurationError(
                    key: self.child("\(key)[\(index)]"),
                    reason: "expected a percentage above 0 and at most 100, got '\(item.string ?? "?")'"
                )
            }
            if let last = values.last, percent <= last {
                throw ConfigurationError(key: self.child("\(key)[\(index)]"), reason: "stages must grow: \(percent) after \(last)")
            }
            values.append(percent)
        }
        guard !values.isEmpty else { throw self.fail(key, "needs at least one stage") }
        return values
    }
}
