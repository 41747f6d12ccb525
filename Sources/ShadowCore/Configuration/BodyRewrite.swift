/// Changes made to a candidate's copy of a JSON request body (never to the baseline's request
/// nor to the stored one): the same request to another model name, without fields another
/// provider would refuse. Paths are removed first, then set.
public struct BodyRewrite: Sendable, Equatable {
    /// One path to set, and its value.
    public struct Assignment: Sendable, Equatable {
        public var pattern: JSONPathPattern
        public var value: JSONValue

        public init(pattern: JSONPathPattern, value: JSONValue) {
            self.pattern = pattern
            self.value = value
        }
    }

    public var set: [Assignment]
    public var remove: [JSONPathPattern]

    public init(set: [Assignment] = [], remove: [JSONPathPattern] = []) {
        self.set = set
        self.remove = remove
    }

    public var isEmpty: Bool { self.set.isEmpty && self.remove.isEmpty }

    /// The document rewritten. A set path replaces every value it matches; a path ending in a
    /// plain key that is missing from an existing object is added to it. Removed array elements
    /// are dropped.
    public func apply(to document: JSONValue) -> JSONValue {
        var path: [JSONPathComponent] = []
        return self.rewrite(document, path: &path) ?? .null
    }

    private func matches(_ pattern: JSONPathPattern, _ path: [JSONPathComponent]) -> Bool {
        pattern.segments.count == path.count && pattern.covers(path)
    }

    /// `nil` means removed.
    private func rewrite(_ value: JSONValue, path: inout [JSONPathComponent]) -> JSONValue? {
        if self.remove.contains(where: { self.matches($0, path) }) { return nil }
        if let assignment = self.set.last(where: { self.matches($0.pattern, path) }) { return assignment.value }
        switch value {
        case .object(let members):
            var kept: [(key: String, value: JSONValue)] = []
            for member in members {
                path.append(.key(member.key))
                if let rewritten = self.rewrite(member.value, path: &path) { kept.append((member.key, rewritten)) }
                path.removeLast()
            }
            // Keys to add: patterns one step below this object, ending in a plain key.
            for assignment in self.set where assignment.pattern.segments.count == path.count + 1 {
                guard case .key(let key)? = assignment.pattern.segments.last,
                    JSONPathPattern(prefixOf: assignment.pattern).covers(path),
                    !kept.contains(where: { $0.key == key })
                else { continue }
                kept.append((key, assignment.value))
            }
            return .object(kept)
        case .array(let elements):
            var kept: [JSONValue] = []
            for (index, element) in elements.enumerated() {
                path.append(.index(index))
                if let rewritten = self.rewrite(element, path: &path) { kept.append(rewritten) }
                path.removeLast()
            }
            return .array(kept)
        default:
            return value
        }
    }
}

extension JSONPathPattern {
    /// The pattern without its last segment.
    init(prefixOf pattern: JSONPathPattern) {
        self.init(segments: Array(pattern.segments.dropLast()), description: pattern.description)
    }
}
