/// Structural JSON comparison: the score is the share of leaf paths that differ.
///
/// Ignored paths are skipped entirely; numbers within the configured absolute or relative
/// tolerance are equal; arrays compare element by element, extra elements count as added or
/// removed. When a body is not JSON, or is above the size cap, it falls back to byte equality and
/// says why in the explanation.
public struct JSONScorer: Scorer {
    public let name = "json"
    let configuration: ScorerConfiguration
    let ignored: [JSONPathPattern]
    let parser: JSONParser
    /// Bodies above this size are compared by bytes, which keeps scoring time bounded.
    let maximumDocumentBytes: Int
    /// At most this many differences are listed in an explanation.
    let maximumListedDifferences = 20

    public init(configuration: ScorerConfiguration, maximumDepth: Int = 256, maximumDocumentBytes: Int = 8 << 20) {
        self.configuration = configuration
        self.ignored = configuration.ignorePaths.compactMap { try? JSONPathPattern.parse($0).get() }
        self.parser = JSONParser(maximumDepth: maximumDepth)
        self.maximumDocumentBytes = maximumDocumentBytes
    }

    public func score(baseline: [UInt8], candidate: [UInt8]) -> Score {
        if baseline.count > self.maximumDocumentBytes || candidate.count > self.maximumDocumentBytes {
            return self.byteFallback(baseline, candidate, reason: "body above the \(self.maximumDocumentBytes)-byte scoring cap")
        }
        let left: JSONValue
        let right: JSONValue
        do {
            left = try self.parser.parse(baseline)
        } catch {
            return self.byteFallback(baseline, candidate, reason: "baseline body is not JSON (\(error))")
        }
        do {
            right = try self.parser.parse(candidate)
        } catch {
            return self.byteFallback(baseline, candidate, reason: "candidate body is not JSON (\(error))")
        }
        var diff = Diff(scorer: self)
        var path: [JSONPathComponent] = []
        diff.compare(left, right, path: &path)
        let total = max(diff.leaves, 1)
        let value = Double(diff.differing) / Double(total)
        var explanation: [(key: String, value: JSONValue)] = [
            ("leaves", .number(Double(diff.leaves))),
            ("differing", .number(Double(diff.differing))),
        ]
        if diff.ignored > 0 { explanation.append(("ignored", .number(Double(diff.ignored)))) }
        if !diff.listed.isEmpty { explanation.append(("differences", .array(diff.listed))) }
        return Score(value: value, diverged: value > self.configuration.threshold, explanation: .object(explanation))
    }

    private func byteFallback(_ baseline: [UInt8], _ candidate: [UInt8], reason: String) -> Score {
        let equal = baseline == candidate
        let value: Double = equal ? 0 : 1
        return Score(
            value: value,
            diverged: value > self.configuration.threshold,
            explanation: .object([("fallback", .string("bytes")), ("reason", .string(reason)), ("equal", .bool(equal))])
        )
    }

    func numbersEqual(_ a: Double, _ b: Double) -> Bool {
        if a == b { return true }
        let difference = abs(a - b)
        if difference <= self.configuration.absoluteTolerance { return true }
        return difference <= self.configuration.relativeTolerance * max(abs(a), abs(b))
    }

    func isIgnored(_ path: [JSONPathComponent]) -> Bool {
        self.ignored.contains { $0.covers(path) }
    }
}

private struct Diff {
    let scorer: JSONScorer
    var leaves = 0
    var differing = 0
    var ignored = 0
    var listed: [JSONValue] = []

    init(scorer: JSONScorer) {
        self.scorer = scorer
    }

    mutating func note(_ kind: String, _ path: [JSONPathComponent], baseline: JSONValue?, candidate: JSONValue?, leaves count: Int) {
        self.differing += count
        guard self.listed.count < self.scorer.maximumListedDifferences else { return }
        var entry: [(key: String, value: JSONValue)] = [("path", .string(path.pathString)), ("kind", .string(kind))]
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
        case .array(let elements): max(1, elements.reduce(0) { $0 + leafCount($1) })
        case .object(let members): max(1, members.reduce(0) { $0 + leafCount($1.value) })
        default: 1
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
}
