/// Both bodies parsed as JSON within the configured caps, or the fallback score that says why not.
///
/// Every JSON-based scorer starts here, so a body that is not JSON, too large or too deep gets
/// the same treatment everywhere: a byte comparison and an explanation, never a crash.
struct DocumentPair {
    let baseline: JSONValue
    let candidate: JSONValue
    /// The two bodies were equal byte for byte (so are the values).
    var identical = false

    enum Outcome {
        case parsed(DocumentPair)
        case fallback(Score)
    }

    static func parse(_ baseline: [UInt8], _ candidate: [UInt8], configuration: ScorerConfiguration) -> Outcome {
        let cap = configuration.maxDocumentBytes
        if baseline.count > cap || candidate.count > cap {
            return .fallback(
                self.byteFallback(baseline, candidate, threshold: configuration.threshold, reason: "body above the \(cap)-byte scoring cap")
            )
        }
        let parser = JSONParser(maximumDepth: configuration.maxDepth)
        let identical = candidate.hasSameBytes(as: baseline)
        let left: JSONValue
        let right: JSONValue
        do {
            left = try parser.parse(baseline)
        } catch {
            return .fallback(
                self.byteFallback(baseline, candidate, threshold: configuration.threshold, reason: "baseline body is not JSON (\(error))")
            )
        }
        do {
            // Identical answers are the common case in shadow traffic: equal bytes parse to the
            // same value, so the second parse (half of a JSON scorer's time) is skipped.
            right = identical ? left : try parser.parse(candidate)
        } catch {
            return .fallback(
                self.byteFallback(baseline, candidate, threshold: configuration.threshold, reason: "candidate body is not JSON (\(error))")
            )
        }
        return .parsed(DocumentPair(baseline: left, candidate: right, identical: identical))
    }

    static func byteFallback(_ baseline: [UInt8], _ candidate: [UInt8], threshold: Double, reason: String) -> Score {
        let equal = baseline.hasSameBytes(as: candidate)
        let value: Double = equal ? 0 : 1
        return Score(
            value: value,
            diverged: value > threshold,
            explanation: .object([("fallback", .string("bytes")), ("reason", .string(reason)), ("equal", .bool(equal))])
        )
    }

    /// The compared values of a value scorer (label, numeric, …): the configured path or the
    /// protocol's primary output, in each document.
    func primaryValues(_ configuration: ScorerConfiguration) -> (JSONValue?, JSONValue?) {
        if let path = configuration.path, let pattern = try? JSONPathPattern.parse(path).get() {
            func pick(_ document: JSONValue) -> JSONValue? {
                let values = pattern.select(in: document)
                return values.count == 1 ? values[0] : (values.isEmpty ? nil : .array(values))
            }
            return (pick(self.baseline), pick(self.candidate))
        }
        let protocolAdapter = configuration.outputProtocol
        return (
            protocolAdapter.primaryValue(in: self.baseline, output: configuration.output),
            protocolAdapter.primaryValue(in: self.candidate, output: configuration.output)
        )
    }
}

extension ScorerConfiguration {
    /// Where the compared value is, for explanations.
    var valueLocation: String {
        self.path ?? "the \(self.outputProtocol.rawValue) output\(self.output.map { " '\($0)'" } ?? "")"
    }
}

/// Shared shape of the value scorers: parse, extract, compare, or explain why not.
protocol ValueScorer: Scorer {
    var configuration: ScorerConfiguration { get }
    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score
}

extension ValueScorer {
    public func score(baseline: [UInt8], candidate: [UInt8]) -> Score {
        let documents: DocumentPair
        switch DocumentPair.parse(baseline, candidate, configuration: self.configuration) {
        case .fallback(let score): return score
        case .parsed(let pair): documents = pair
        }
        let (left, right) = documents.primaryValues(self.configuration)
        switch (left, right) {
        case (.some(let left), .some(let right)) where left == right && self.identicalValuesAreEqual:
            // Identical values are never divergent, even when they are not, say, a distribution.
            return Score(value: 0, diverged: false, explanation: .object([("equal", .bool(true))]))
        case (.some(let left), .some(let right)):
            return self.compare(left, right, documents: documents)
        case (.none, .none):
            return Score(
                value: 0,
                diverged: false,
                explanation: .object([("missing", .string("neither body has \(self.configuration.valueLocation)"))])
            )
        case (.some, .none):
            return Score(
                value: 1,
                diverged: true,
                explanation: .object([("missing", .string("candidate body has no \(self.configuration.valueLocation)"))])
            )
        case (.none, .some):
            return Score(
                value: 1,
                diverged: true,
                explanation: .object([("missing", .string("baseline body has no \(self.configuration.valueLocation)"))])
            )
        }
    }

    func diverged(_ value: Double) -> Bool { value > self.configuration.threshold }

    /// The text scorer also compares fields beside the value (finish reason, tool calls).
    var identicalValuesAreEqual: Bool { !(self is TextScorer && self.configuration.outputProtocol.isLLM) }
}

extension JSONValue {
    /// All numbers in the value, depth first (vectors, matrices, scalars).
    var flattenedNumbers: [Double] {
        switch self {
        case .number(let value): [value]
        case .array(let elements): elements.flatMap(\.flattenedNumbers)
        default: []
        }
    }

    /// The value as ranked items: strings and numbers as text, objects by their `id`, else JSON.
    var rankedItems: [String] {
        guard case .array(let elements) = self else { return [self.itemKey] }
        return elements.map(\.itemKey)
    }

    private var itemKey: String {
        switch self {
        case .string(let text): text
        case .number(let value): JSONValue.format(value)
        case .object:
            if let id = self["id"] ?? self["item_id"] ?? self["doc_id"] { id.itemKey } else { self.serialized }
        default: self.serialized
        }
    }

    /// The value as text: strings as they are, lists of strings joined by spaces, else JSON.
    var textContent: String {
        switch self {
        case .string(let text): text
        case .array(let elements) where elements.allSatisfy({ if case .string = $0 { true } else { false } }):
            elements.map(\.textContent).joined(separator: " ")
        case .null: ""
        default: self.serialized
        }
    }
}
