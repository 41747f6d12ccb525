/// A batch of outcomes that cannot be stored, and the first reason why: a batch is taken whole
/// or not at all.
public struct OutcomeBatchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line (NDJSON) or element (JSON array) number; 0 for the batch as a whole.
    public var line: Int
    public var reason: String

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { self.line == 0 ? self.reason : "line \(self.line): \(self.reason)" }
}

/// Parses and validates outcome batches: `application/x-ndjson` (one object a line) or a JSON
/// array of objects, each `{"request_id" | "key", "metric", "value", "at"?, "event_id"?}`.
public struct OutcomeBatchParser: Sendable {
    /// Declared metrics by name, across the configured experiments.
    public let metrics: [String: ExperimentConfiguration.Metric.Kind]

    public init(metrics: [String: ExperimentConfiguration.Metric.Kind]) {
        self.metrics = metrics
    }

    /// The metrics the experiments of these routes declare (a name declared twice with two kinds
    /// keeps the first).
    public init(routes: [RouteConfiguration]) {
        var metrics: [String: ExperimentConfiguration.Metric.Kind] = [:]
        for metric in routes.compactMap(\.experiment).flatMap(\.metrics) where metrics[metric.name] == nil {
            metrics[metric.name] = metric.kind
        }
        self.metrics = metrics
    }

    /// Every event of the batch, or the first problem. `nowMicros` stamps events without `at`.
    public func parse(_ bytes: some Collection<UInt8>, nowMicros: Int64) -> Result<[OutcomeEvent], OutcomeBatchError> {
        let parser = JSONParser(maximumDepth: 8)
        let trimmed = bytes.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        guard !trimmed.isEmpty else { return .failure(OutcomeBatchError(line: 0, reason: "the body is empty")) }
        var objects: [(line: Int, value: JSONValue)] = []
        if trimmed.first == UInt8(ascii: "[") {
            guard let document = try? parser.parse(Array(trimmed)), case .array(let elements) = document else {
                return .failure(OutcomeBatchError(line: 0, reason: "not a JSON array of outcome objects"))
            }
            objects = elements.enumerated().map { ($0.offset + 1, $0.element) }
        } else {
            for (index, line) in Array(bytes).split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
                guard line.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { continue }
                guard let value = try? parser.parse(Array(line)) else {
                    return .failure(OutcomeBatchError(line: index + 1, reason: "not valid JSON"))
                }
                objects.append((index + 1, value))
            }
        }
        return self.validate(objects, nowMicros: nowMicros)
    }

    /// Every event of already-parsed objects (numbered as the caller counts lines), or the first
    /// problem.
    public func validate(_ objects: [(line: Int, value: JSONValue)], nowMicros: Int64) -> Result<[OutcomeEvent], OutcomeBatchError> {
        guard !objects.isEmpty else { return .failure(OutcomeBatchError(line: 0, reason: "no outcome events")) }
        var events: [OutcomeEvent] = []
        events.reserveCapacity(objects.count)
        for (line, value) in objects {
            switch self.event(value, nowMicros: nowMicros) {
            case .success(let event): events.append(event)
            case .failure(let reason): return .failure(OutcomeBatchError(line: line, reason: reason.description))
            }
        }
        return .success(events)
    }

    struct Reason: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// One event, validated.
    func event(_ value: JSONValue, nowMicros: Int64) -> Result<OutcomeEvent, Reason> {
        guard case .object(let members) = value else { return .failure(Reason("expected an object")) }
        var fields: [String: JSONValue] = [:]
        for (key, member) in members { fields[key] = member }
        if let unknown = fields.keys.sorted().first(where: { !["request_id", "key", "metric", "value", "at", "event_id"].contains($0) }) {
            return .failure(Reason("unknown field '\(unknown)' (known: request_id, key, metric, value, at, event_id)"))
        }
        func text(_ name: String) -> Result<String?, Reason> {
            switch fields[name] {
            case nil, .null?: .success(nil)
            case .string(let string)? where !string.isEmpty && string.utf8.count <= 256: .success(string)
            default: .failure(Reason("\(name) must be a non-empty string of at most 256 bytes"))
            }
        }
        let requestID: String?
        let key: String?
        let eventID: String?
        do {
            requestID = try text("request_id").get()
            key = try text("key").get()
            eventID = try text("event_id").get()
        } catch {
            return .failure(error)
        }
        guard requestID != nil || key != nil else { return .failure(Reason("give request_id or key: neither is set")) }
        guard case .string(let metric)? = fields["metric"] else { return .failure(Reason("metric is required (a string)")) }
        guard let kind = self.metrics[metric] else {
            let known = self.metrics.keys.sorted().joined(separator: ", ")
            return .failure(Reason("unknown metric '\(metric)' (declared: \(known.isEmpty ? "none" : known))"))
        }
        guard case .number(let number)? = fields["value"] else { return .failure(Reason("value is required (a number)")) }
        guard number.isFinite else { return .failure(Reason("value must be finite")) }
        if kind == .binary, number != 0, number != 1 {
            return .failure(Reason("metric '\(metric)' is binary: value must be 0 or 1, got \(number)"))
        }
        var at = nowMicros
        switch fields["at"] {
        case nil, .null?: break
        case .string(let string)?:
            guard let micros = RFC3339.micros(string) else {
                return .failure(Reason("at must be an RFC 3339 time such as 2026-12-01T10:00:00Z, got '\(string)'"))
            }
            at = micros
        default: return .failure(Reason("at must be an RFC 3339 time string"))
        }
        return .success(OutcomeEvent(requestID: requestID, key: key, metric: metric, value: number, atMicros: at, eventID: eventID))
    }
}
