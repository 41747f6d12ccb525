/// Structural JSON comparison: the score is the share of leaf paths that differ.
///
/// Ignored paths are skipped entirely; numbers within the configured absolute or relative
/// tolerance are equal; arrays compare element by element, extra elements count as added or
/// removed. When a body is not JSON, or is above the size cap, it falls back to byte equality and
/// says why in the explanation.
public struct JSONScorer: Scorer {
    public let name = "json"
    let configuration: ScorerConfiguration
    /// The ignored paths by their number of segments (index 0: `$`, everything).
    let ignoredByLength: [[JSONPathPattern]]
    /// At most this many differences are listed in an explanation.
    let maximumListedDifferences = 20

    public init(configuration: ScorerConfiguration, additionallyIgnoring extra: [String] = []) {
        self.configuration = configuration
        let patterns = configuration.ignorePaths + configuration.outputProtocol.volatilePaths + extra
        let ignored = patterns.compactMap { try? JSONPathPattern.parse($0).get() }
        var byLength = Array(repeating: [JSONPathPattern](), count: (ignored.map(\.segments.count).max() ?? -1) + 1)
        for pattern in ignored { byLength[pattern.segments.count].append(pattern) }
        self.ignoredByLength = byLength
    }

    /// Paths whose A/A disagreement marks them as noise are skipped from then on.
    public func ignoring(_ paths: [String]) -> any Scorer {
        JSONScorer(configuration: self.configuration, additionallyIgnoring: paths)
    }

    public func score(baseline: [UInt8], candidate: [UInt8]) -> Score {
        let documents: DocumentPair
        switch DocumentPair.parse(baseline, candidate, configuration: self.configuration) {
        case .fallback(let score): return score
        case .parsed(let pair): documents = pair
        }
        var diff = Diff(scorer: self)
        var path: [JSONPathComponent] = []
        if documents.identical {
            diff.count(documents.baseline, path: &path)
        } else {
            diff.compare(documents.baseline, documents.candidate, path: &path)
        }
        let total = max(diff.leaves, 1)
        let value = Double(diff.differing) / Double(total)
        var explanation: [(key: String, value: JSONValue)] = [
            ("leaves", .number(Double(diff.leaves))),
            ("differing", .number(Double(diff.differing))),
        ]
        if diff.ignored > 0 { explanation.append(("ignored", .number(Double(diff.ignored)))) }
        if !diff.listed.isEmpty { explanation.append(("differences", .array(diff.listed))) }
        return Score(
            value: value,
            diverged: value > self.configuration.threshold,
            explanation: .object(explanation),
            differingPaths: Array(diff.paths)
        )
    }

    func numbersEqual(_ a: Double, _ b: Double) -> Bool {
        if a == b { return true }
        let difference = abs(a - b)
        if difference <= self.configuration.absoluteTolerance { return true }
        return difference <= self.configuration.relativeTolerance * max(abs(a), abs(b))
    }

    /// Whether an ignored path covers `path`, asked on the way down from the root: a pattern
    /// that covers an ancestor stopped the walk there, so only those as long as `path` can
    /// match here (most nodes have none to try; trying all was ~3% of the scoring thread).
    /// Inlined: below the deepest pattern (most of a tensor's nodes) the answer is one
    /// comparison, and the call alone was ~9% of the scoring thread on tensor answers.
    @inline(__always)
    func isIgnored(_ path: [JSONPathComponent]) -> Bool {
        path.count < self.ignoredByLength.count && self.ignoredByLength[path.count].contains { $0.covers(path) }
    }
}

private struct Diff {
    let scorer: JSONScorer
    var leaves = 0
    var differing = 0
    var ignored = 0
    var listed: [JSONValue] = []
    /// Paths that differ (at most 100, for per-path statistics).
    var paths: Set<String> = []

    init(scorer: JSONScorer) {
        self.scorer = scorer
    }

    mutating func note(_ kind: String, _ path: [JSONPathComponent], baseline: JSONValue?, candidate: JSONValue?, leaves count: Int) {
        self.differing += count
        let wanted = self.paths.count < 100
        let listing = self.listed.count < self.scorer.maximumListedDifferences
        guard wanted || listing else { return }
        let text = path.pathString
        if wanted { self.paths.insert(text) }
        guard listing else { return }
        var entry: [(key: String, value: JSONValue)] = [("path", .string(text)), ("kind", .string(kind))]
        if let baseline { entry.append(("baseline", Diff.preview(baseline))) }
        if let candidate { entry.append(("candidate", Diff.preview(candidate))) }
        self.listed.append(.object(entry))
    }

    /// Scalars as they are; containers summarised, so explanations stay small.
    static func preview(_ value: JSONValue) -> JSONValue {
        switch value {
        case .array(let elements): .string("array(\(elements.count))")
        case .object(let members): .string("object(\(members.count))")
        case .string(let text) where text.count > 80: .string(String(text.prefix(80)) + "…")
        default: value
        }
    }

    static func leafCount(_ value: JSONValue) -> Int {
        switch value {
        case .array(let elements):
            var count = 0
            for element in elements { count += Self.leafCount(element) }
            return max(1, count)
        case .object(let members):
            var count = 0
            for member in members { count += Self.leafCount(member.value) }
            return max(1, count)
        default:
            return 1
        }
    }

    mutating func compare(_ left: JSONValue, _ right: JSONValue, path: inout [JSONPathComponent]) {
        if self.scorer.isIgnored(path) {
            self.ignored += 1
            return
        }
        switch (left, right) {
        case (.object(let a), .object(let b)):
            if a.isEmpty && b.isEmpty {
                self.leaves += 1
                return
            }
            // Two answers of one API almost always list the same keys in the same order: compare
            // them pairwise without building a dictionary.
            if a.count == b.count, zip(a, b).allSatisfy({ $0.key == $1.key }) {
                for (member, other) in zip(a, b) {
                    path.append(.key(member.key))
                    self.compare(member.value, other.value, path: &path)
                    path.removeLast()
                }
                return
            }
            var rightByKey: [String: JSONValue] = [:]
            for member in b { rightByKey[member.key] = member.value }
            var seen: Set<String> = []
            for member in a {
                seen.insert(member.key)
                path.append(.key(member.key))
                if let other = rightByKey[member.key] {
                    self.compare(member.value, other, path: &path)
                } else if !self.scorer.isIgnored(path) {
                    let count = Diff.leafCount(member.value)
                    self.leaves += count
                    self.note("removed", path, baseline: member.value, candidate: nil, leaves: count)
                }
                path.removeLast()
            }
            for member in b where !seen.contains(member.key) {
                path.append(.key(member.key))
                if !self.scorer.isIgnored(path) {
                    let count = Diff.leafCount(member.value)
                    self.leaves += count
                    self.note("added", path, baseline: nil, candidate: member.value, leaves: count)
                }
                path.removeLast()
            }
        case (.array(let a), .array(let b)) where self.scorer.configuration.arrays == .set:
            self.compareAsMultisets(a, b, path: &path)
        case (.array(let a), .array(let b)):
            if a.isEmpty && b.isEmpty {
                self.leaves += 1
                return
            }
            for index in 0..<max(a.count, b.count) {
                path.append(.index(index))
                if index < a.count, index < b.count {
                    self.compare(a[index], b[index], path: &path)
                } else if !self.scorer.isIgnored(path) {
                    let extra = index < a.count ? a[index] : b[index]
                    let count = Diff.leafCount(extra)
                    self.leaves += count
                    if index < a.count {
                        self.note("removed", path, baseline: extra, candidate: nil, leaves: count)
                    } else {
                        self.note("added", path, baseline: nil, candidate: extra, leaves: count)
                    }
                }
                path.removeLast()
            }
        case (.number(let a), .number(let b)):
            self.leaves += 1
            if !self.scorer.numbersEqual(a, b) { self.note("changed", path, baseline: left, candidate: right, leaves: 1) }
        case (.string(let a), .string(let b)):
            self.leaves += 1
            if a != b { self.note("changed", path, baseline: left, candidate: right, leaves: 1) }
        case (.bool(let a), .bool(let b)):
            self.leaves += 1
            if a != b { self.note("changed", path, baseline: left, candidate: right, leaves: 1) }
        case (.null, .null):
            self.leaves += 1
        default:
            let count = max(Diff.leafCount(left), Diff.leafCount(right))
            self.leaves += count
            self.note("type_changed", path, baseline: left, candidate: right, leaves: count)
        }
    }

    /// A document compared with itself (the answers' bytes were equal, the common case in shadow
    /// traffic): nothing can differ, so only what ``compare(_:_:path:)`` would count is counted
    /// (leaves, ignored subtrees), without pairing values up.
    mutating func count(_ value: JSONValue, path: inout [JSONPathComponent]) {
        // Below the deepest ignored path nothing is skipped: every leaf counts, paths unneeded.
        guard path.count < self.scorer.ignoredByLength.count else {
            self.leaves += Diff.leafCount(value)
            return
        }
        if self.scorer.isIgnored(path) {
            self.ignored += 1
            return
        }
        switch value {
        case .object(let members) where !members.isEmpty:
            for member in members {
                path.append(.key(member.key))
                self.count(member.value, path: &path)
                path.removeLast()
            }
        case .array(let elements) where !elements.isEmpty:
            // As multisets, every element matches itself and counts its leaves, ignored or not.
            if self.scorer.configuration.arrays == .set {
                self.leaves += elements.reduce(0) { $0 + Diff.leafCount($1) }
                return
            }
            for (index, element) in elements.enumerated() {
                path.append(.index(index))
                self.count(element, path: &path)
                path.removeLast()
            }
        default:
            // A scalar, or an empty object or array: one leaf each.
            self.leaves += 1
        }
    }

    /// Arrays as multisets: elements match by canonical JSON regardless of position; unmatched
    /// ones count as added or removed.
    mutating func compareAsMultisets(_ a: [JSONValue], _ b: [JSONValue], path: inout [JSONPathComponent]) {
        if a.isEmpty && b.isEmpty {
            self.leaves += 1
            return
        }
        var remaining: [String: Int] = [:]
        for element in b { remaining[LLMAgreement.canonical(element), default: 0] += 1 }
        for (index, element) in a.enumerated() {
            let key = LLMAgreement.canonical(element)
            let count = Diff.leafCount(element)
            self.leaves += count
            if let left = remaining[key], left > 0 {
                remaining[key] = left - 1
            } else {
                path.append(.index(index))
                self.note("removed", path, baseline: element, candidate: nil, leaves: count)
                path.removeLast()
            }
        }
        for (index, element) in b.enumerated() {
            let key = LLMAgreement.canonical(element)
            if let left = remaining[key], left > 0 {
                remaining[key] = left - 1
                let count = Diff.leafCount(element)
                self.leaves += count
                path.append(.index(index))
                self.note("added", path, baseline: nil, candidate: element, leaves: count)
                path.removeLast()
            }
        }
    }
}
