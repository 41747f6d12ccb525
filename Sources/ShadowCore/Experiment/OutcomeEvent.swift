/// One business outcome (a click, a purchase's revenue) for the experiment analysis: joined to
/// the request that caused it by request id, or to the user by the assignment key.
public struct OutcomeEvent: Sendable, Equatable {
    public var requestID: String?
    public var key: String?
    public var metric: String
    public var value: Double
    /// When it happened, microseconds since the epoch (the time it was received when not given).
    public var atMicros: Int64
    /// The sender's id for it: a repeated delivery with the same id is ignored.
    public var eventID: String?

    public init(requestID: String?, key: String?, metric: String, value: Double, atMicros: Int64, eventID: String? = nil) {
        self.requestID = requestID
        self.key = key
        self.metric = metric
        self.value = value
        self.atMicros = atMicros
        self.eventID = eventID
    }
}

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

/// RFC 3339 date-times (`2026-12-01T10:00:00Z`, `…T10:00:00.123+01:00`), without Foundation.
public enum RFC3339 {
    /// Microseconds since the epoch, or nil when the text is not an RFC 3339 date-time.
    public static func micros(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count, !range.isEmpty else { return nil }
            var value: Int64 = 0
            for index in range {
                guard (0x30...0x39).contains(bytes[index]) else { return nil }
                value = value * 10 + Int64(bytes[index] - 0x30)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 0x2D, bytes[7] == 0x2D, bytes[10] == 0x54 || bytes[10] == 0x74 || bytes[10] == 0x20,
            bytes[13] == 0x3A, bytes[16] == 0x3A,
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction: Int64 = 0
        if index < bytes.count, bytes[index] == 0x2E {
            index += 1
            var digits = 0
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) {
                if digits < 6 { fraction = fraction * 10 + Int64(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<6 where digits < 6 { fraction *= 10 }
        }
        guard index < bytes.count else { return nil }
        var offsetSeconds: Int64 = 0
        if bytes[index] == 0x5A || bytes[index] == 0x7A {
            index += 1
        } else if bytes[index] == 0x2B || bytes[index] == 0x2D {
            guard let hours = number((index + 1)..<(index + 3)), index + 3 < bytes.count, bytes[index + 3] == 0x3A,
                let minutes = number((index + 4)..<(index + 6)), hours < 24, minutes < 60
            else { return nil }
            offsetSeconds = (hours * 3600 + minutes * 60) * (bytes[index] == 0x2B ? 1 : -1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds
        return seconds * 1_000_000 + fraction
    }
}
