/// Generated text: token-level edit distance (normalised by the longer text) or 1 − token Jaccard;
/// exact match in the explanation. For OpenAI-compatible responses, a different `finish_reason`
/// or different tool calls (names or arguments) also count as divergence.
public struct TextScorer: ValueScorer {
    public let name = "text"
    let configuration: ScorerConfiguration
    /// Above this many tokens the edit distance gives way to Jaccard, and says so.
    let maximumEditTokens = 20_000

    public init(configuration: ScorerConfiguration) {
        self.configuration = configuration
    }

    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score {
        // Tokens become small integers once; every measure below works on those.
        var interner = TokenInterner()
        let left = interner.tokenIDs(baseline.textContent, normalize: self.configuration.normalizeText)
        let right = interner.tokenIDs(candidate.textContent, normalize: self.configuration.normalizeText)
        // Jaccard over distinct tokens: bit 1 marks the baseline's, bit 2 the candidate's.
        var seen = [UInt8](repeating: 0, count: interner.count)
        for id in left { seen[Int(id)] |= 1 }
        for id in right { seen[Int(id)] |= 2 }
        let union = seen.reduce(0) { $0 + ($1 == 0 ? 0 : 1) }
        let both = seen.reduce(0) { $0 + ($1 == 3 ? 1 : 0) }
        let jaccard = union == 0 ? 1 : Double(both) / Double(union)
        var explanation: [(key: String, value: JSONValue)] = [
            ("exact_match", .bool(left == right)),
            ("token_jaccard", .number(jaccard)),
            ("baseline_tokens", .number(Double(left.count))),
            ("candidate_tokens", .number(Double(right.count))),
        ]
        var value: Double
        if self.configuration.textMetric == .edit, max(left.count, right.count) <= self.maximumEditTokens {
            let distance = Self.editDistance(left, right, alphabet: interner.count)
            value = left.isEmpty && right.isEmpty ? 0 : Double(distance) / Double(max(left.count, right.count))
            explanation.append(("edit_distance", .number(Double(distance))))
        } else {
            value = 1 - jaccard
            if self.configuration.textMetric == .edit { explanation.append(("note", .string("too long for edit distance; used token Jaccard"))) }
        }
        var paths: [String] = value > 0 ? ["text"] : []
        if self.configuration.outputProtocol.isLLM {
            let agreement = LLMAgreement(documents.baseline, documents.candidate, protocol: self.configuration.outputProtocol)
            explanation.append(contentsOf: agreement.explanation)
            if !agreement.finishReasonsAgree || !agreement.toolCallsAgree {
                value = 1
                paths.append(agreement.finishReasonsAgree ? "tool_calls" : "finish_reason")
            }
        }
        return Score(value: value, diverged: self.diverged(value), explanation: .object(explanation), differingPaths: paths)
    }

    /// Levenshtein distance over tokens.
    ///
    /// Tokens are interned to integers, the common prefix and suffix are dropped, and the rest
    /// runs through Myers' bit-parallel algorithm in 64-token blocks (Myers 1999, as blocked by
    /// Hyyrö 2003): about n·m/64 word operations, so two 1,000-token answers take microseconds.
    static func editDistance(_ a: [String], _ b: [String]) -> Int {
        var ids: [String: Int32] = [:]
        let left = a.map { self.intern($0, &ids) }
        let right = b.map { self.intern($0, &ids) }
        return self.editDistance(left, right, alphabet: ids.count)
    }

    static func intern(_ token: String, _ ids: inout [String: Int32]) -> Int32 {
        if let id = ids[token] { return id }
        let id = Int32(ids.count)
        ids[token] = id
        return id
    }

    static func editDistance(_ a: [Int32], _ b: [Int32], alphabet: Int) -> Int {
        var start = 0
        while start < a.count, start < b.count, a[start] == b[start] { start += 1 }
        var endA = a.count
        var endB = b.count
        while endA > start, endB > start, a[endA - 1] == b[endB - 1] {
            endA -= 1
            endB -= 1
        }
        let pattern = a[start..<endA]
        let text = b[start..<endB]
        let m = pattern.count
        if m == 0 { return text.count }
        if text.isEmpty { return m }
        // Two answers of one model family mostly differ in a few places: find those distances in
        // O((m + n) · k) without touching the whole m × n table.
        if let small = Self.smallEditDistance(pattern, text, limit: Self.smallDistanceLimit) { return small }
        let blocks = (m + 63) / 64
        // Peq[symbol * blocks + block]: where each symbol occurs in the pattern.
        var peq = [UInt64](repeating: 0, count: alphabet * blocks)
        for (offset, symbol) in pattern.enumerated() {
            peq[Int(symbol) * blocks + offset / 64] |= 1 << UInt64(offset % 64)
        }
        var pv = [UInt64](repeating: ~0, count: blocks)
        var mv = [UInt64](repeating: 0, count: blocks)
        let lastBit: UInt64 = 1 << UInt64((m - 1) % 64)
        var score = m
        peq.withUnsafeBufferPointer { peq in
            pv.withUnsafeMutableBufferPointer { pv in
                mv.withUnsafeMutableBufferPointer { mv in
                    for symbol in text {
                        let row = Int(symbol) * blocks
                        var carry = 1  // D[0][j] = j: every column starts one higher
                        for block in 0..<blocks {
                            var eq = peq[row + block]
                            let p = pv[block]
                            let n = mv[block]
                            let xv = eq | n
                            if carry < 0 { eq |= 1 }
                            let xh = (((eq & p) &+ p) ^ p) | eq
                            var ph = n | ~(xh | p)
                            var mh = p & xh
                            let high: UInt64 = block == blocks - 1 ? lastBit : 1 << 63
                            let out = ph & high != 0 ? 1 : (mh & high != 0 ? -1 : 0)
                            ph <<= 1
                            mh <<= 1
                            if carry < 0 { mh |= 1 } else if carry > 0 { ph |= 1 }
                            pv[block] = mh | ~(xv | ph)
                            mv[block] = ph & xv
                            carry = out
                        }
                        score += carry
                    }
                }
            }
        }
        return score
    }

    /// Up to this many edits the diagonal algorithm runs; beyond it the bit-parallel one.
    static let smallDistanceLimit = 48

    /// Ukkonen's / Landau and Vishkin's diagonal algorithm: for k = 0, 1, 2, …, the furthest row
    /// each diagonal (j − i) reaches with k edits, sliding along equal tokens for free. It stops at
    /// the first k that reaches the corner, so the cost grows with the distance, not with the
    /// length product.
    ///
    /// - Returns: the distance, or `nil` when it is above `limit`.
    static func smallEditDistance(_ a: ArraySlice<Int32>, _ b: ArraySlice<Int32>, limit: Int) -> Int? {
        let m = a.count
        let n = b.count
        guard abs(m - n) <= limit else { return nil }
        let unreachable = Int.min / 2
        // Rows are counted from 0 within the slices; diagonal d lives at index d + offset.
        let offset = m + 1
        var previous = [Int](repeating: unreachable, count: m + n + 3)
        var current = previous
        let target = n - m
        return a.withContiguousStorageIfAvailable { a -> Int? in
            b.withContiguousStorageIfAvailable { b -> Int? in
                for k in 0...min(limit, max(m, n)) {
                    let low = max(-m, -k)
                    let high = min(n, k)
                    for d in low...high {
                        var row: Int
                        if k == 0 {
                            row = 0
                        } else {
                            // Substitution stays on d; deleting a[i] comes from d + 1; inserting
                            // b[j] comes from d − 1 on the same row.
                            row = max(previous[d + offset] + 1, previous[d + 1 + offset] + 1, previous[d - 1 + offset])
                            row = min(row, m, n - d)
                            if row < max(0, -d) { row = unreachable }
                        }
                        if row != unreachable {
                            while row < m, row + d < n, a[row] == b[row + d] { row += 1 }
                        }
                        current[d + offset] = row
                    }
                    if target >= low, target <= high, current[target + offset] >= m { return k }
                    swap(&previous, &current)
                }
                return nil
            } ?? nil
        } ?? nil
    }

    /// The textbook dynamic programme, kept as the reference the fast version is tested against.
    static func editDistanceReference(_ a: [String], _ b: [String]) -> Int {
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
/// What two LLM answers agree on beyond their text: why they stopped and which tools they
/// called with which arguments (either disagreement makes the pair diverge whatever the text).
struct LLMAgreement {
    let finishReasonsAgree: Bool
    let toolCallsAgree: Bool
    let explanation: [(key: String, value: JSONValue)]

    /// The parts of one answer, by protocol.
    struct Parts {
        var finish: JSONValue
        /// Name and canonical arguments of each tool call, in order.
        var tools: [(String, String)]
        var completionTokens: JSONValue?

        init(_ document: JSONValue, protocol outputProtocol: OutputProtocol) {
            if outputProtocol == .anthropic {
                self.finish = document["stop_reason"] ?? .null
                let blocks: [JSONValue] = if case .array(let blocks) = document["content"] ?? .null { blocks } else { [] }
                self.tools = blocks.filter { $0["type"] == .string("tool_use") }.map { block in
                    (block["name"].map { $0.textContent } ?? "", LLMAgreement.canonical(block["input"] ?? .null))
                }
                self.completionTokens = document["usage"]?["output_tokens"]
                return
            }
            let choice: JSONValue? = if case .array(let choices) = document["choices"] ?? .null { choices.first } else { nil }
            self.finish = choice?["finish_reason"] ?? .null
            let calls: [JSONValue] = if case .array(let calls) = choice?["message"]?["tool_calls"] ?? .null { calls } else { [] }
            self.tools = calls.map { call in
                let function = call["function"]
                let name = function?["name"].map { $0.textContent } ?? ""
                // Arguments are JSON text: compare them parsed, so spacing and key order don't count.
                let arguments = function?["arguments"].map { $0.textContent } ?? ""
                return (name, (try? JSONParser().parse(arguments)).map { LLMAgreement.canonical($0) } ?? arguments)
            }
            self.completionTokens = document["usage"]?["completion_tokens"]
        }
    }

    init(_ baseline: JSONValue, _ candidate: JSONValue, protocol outputProtocol: OutputProtocol) {
        let left = Parts(baseline, protocol: outputProtocol)
        let right = Parts(candidate, protocol: outputProtocol)
        self.finishReasonsAgree = left.finish == right.finish
        let namesAgree = left.tools.map(\.0) == right.tools.map(\.0)
        self.toolCallsAgree = namesAgree && left.tools.map(\.1) == right.tools.map(\.1)
        var explanation: [(key: String, value: JSONValue)] = [
            ("finish_reason", .object([("baseline", left.finish), ("candidate", right.finish)]))
        ]
        if !left.tools.isEmpty || !right.tools.isEmpty {
            explanation.append(("tool_names_agree", .bool(namesAgree)))
            explanation.append(("tool_arguments_agree", .bool(self.toolCallsAgree)))
        }
        // Token usage, for cost comparison (not part of the score).
        if left.completionTokens != nil || right.completionTokens != nil {
            explanation.append(
                ("completion_tokens", .object([("baseline", left.completionTokens ?? .null), ("candidate", right.completionTokens ?? .null)]))
            )
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
