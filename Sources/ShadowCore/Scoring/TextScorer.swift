/// Generated text: token-level edit distance (normalised by the longer text) or 1 − token Jaccard;
/// exact match in the explanation. For OpenAI-compatible responses, a different `finish_reason`
/// or different tool calls (names or arguments) also count as divergence.
public struct TextScorer: ValueScorer {
    public let name = "text"
    let configuration: ScorerConfiguration
    /// Above this many tokens the edit distance (quadratic) gives way to Jaccard, and says so.
    let maximumEditTokens = 4_000

    public init(configuration: ScorerConfiguration) {
        self.configuration = configuration
    }

    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score {
        let left = self.tokens(baseline.textContent)
        let right = self.tokens(candidate.textContent)
        let jaccard = RankingScorer.jaccard(left, right)
        var explanation: [(key: String, value: JSONValue)] = [
            ("exact_match", .bool(left == right)),
            ("token_jaccard", .number(jaccard)),
            ("baseline_tokens", .number(Double(left.count))),
            ("candidate_tokens", .number(Double(right.count))),
        ]
        var value: Double
        if self.configuration.textMetric == .edit, max(left.count, right.count) <= self.maximumEditTokens {
            let distance = Self.editDistance(left, right)
            value = left.isEmpty && right.isEmpty ? 0 : Double(distance) / Double(max(left.count, right.count))
            explanation.append(("edit_distance", .number(Double(distance))))
        } else {
            value = 1 - jaccard
            if self.configuration.textMetric == .edit { explanation.append(("note", .string("too long for edit distance; used token Jaccard"))) }
        }
        var paths: [String] = value > 0 ? ["text"] : []
        if self.configuration.outputProtocol == .openAI {
            let agreement = OpenAIAgreement(documents.baseline, documents.candidate)
            explanation.append(contentsOf: agreement.explanation)
            if !agreement.finishReasonsAgree || !agreement.toolCallsAgree {
                value = 1
                paths.append(agreement.finishReasonsAgree ? "tool_calls" : "finish_reason")
            }
        }
        return Score(value: value, diverged: self.diverged(value), explanation: .object(explanation), differingPaths: paths)
    }

    func tokens(_ text: String) -> [String] {
        let source = self.configuration.normalizeText ? text.lowercased() : text
        return source.split(whereSeparator: { $0.isWhitespace }).map(String.init)
    }

    /// Levenshtein distance over tokens, two rows of memory.
    static func editDistance(_ a: [String], _ b: [String]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// What an OpenAI-compatible response says beyond its text: why it stopped and which tools it called.
struct OpenAIAgreement {
    let finishReasonsAgree: Bool
    let toolCallsAgree: Bool
    let explanation: [(key: String, value: JSONValue)]

    init(_ baseline: JSONValue, _ candidate: JSONValue) {
        func firstChoice(_ document: JSONValue) -> JSONValue? {
            if case .array(let choices) = document["choices"] ?? .null { return choices.first }
            return nil
        }
        func toolCalls(_ choice: JSONValue?) -> [(String, String)] {
            guard case .array(let calls) = choice?["message"]?["tool_calls"] ?? .null else { return [] }
            return calls.map { call in
                let function = call["function"]
                let name = function?["name"].map { $0.textContent } ?? ""
                // Arguments are JSON text: compare them parsed, so spacing and key order don't count.
                let arguments = function?["arguments"].map { $0.textContent } ?? ""
                let canonical = (try? JSONParser().parse(arguments)).map { Self.canonical($0) } ?? arguments
                return (name, canonical)
            }
        }
        let left = firstChoice(baseline)
        let right = firstChoice(candidate)
        let leftFinish = left?["finish_reason"] ?? .null
        let rightFinish = right?["finish_reason"] ?? .null
        let leftTools = toolCalls(left)
        let rightTools = toolCalls(right)
        self.finishReasonsAgree = leftFinish == rightFinish
        let namesAgree = leftTools.map(\.0) == rightTools.map(\.0)
        self.toolCallsAgree = namesAgree && leftTools.map(\.1) == rightTools.map(\.1)
        var explanation: [(key: String, value: JSONValue)] = [
            ("finish_reason", .object([("baseline", leftFinish), ("candidate", rightFinish)]))
        ]
        if !leftTools.isEmpty || !rightTools.isEmpty {
            explanation.append(("tool_names_agree", .bool(namesAgree)))
            explanation.append(("tool_arguments_agree", .bool(self.toolCallsAgree)))
        }
        self.explanation = explanation
    }

    /// JSON with object keys sorted, for comparing arguments regardless of key order.
    static func canonical(_ value: JSONValue) -> String {
        switch value {
        case .object(let members):
            return "{"
                + members.sorted { $0.key < $1.key }.map { JSONValue.string($0.key).serialized + ":" + canonical($0.value) }.joined(separator: ",")
                + "}"
        case .array(let elements):
            return "[" + elements.map(canonical).joined(separator: ",") + "]"
        default:
            return value.serialized
        }
    }
}
