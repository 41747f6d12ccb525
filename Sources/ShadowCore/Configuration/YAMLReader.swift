import Yams

/// Reads one YAML mapping with key-path-aware errors and rejects keys nobody asked for.
///
/// Typos in a daemon's config (`sample_precent`) must fail loudly rather than silently fall back
/// to a default, so every reader is closed with `finish()`, which names any unknown key.
struct YAMLReader {
    let path: String
    let node: Yams.Node
    private let mapping: Yams.Node.Mapping
    private var consumed: Set<String> = []

    init(path: String, node: Yams.Node) throws(ConfigurationError) {
        self.path = path
        self.node = node
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError(key: path, reason: "expected a mapping of keys", line: YAMLReader.line(of: node))
        }
        self.mapping = mapping
    }

    static func line(of node: Yams.Node) -> Int? {
        node.mark.map { $0.line }
    }

    func child(_ key: String) -> String {
        self.path.isEmpty ? key : "\(self.path).\(key)"
    }

    mutating func value(_ key: String) -> Yams.Node? {
        self.consumed.insert(key)
        for (name, value) in self.mapping where name.string == key {
            if case .scalar(let scalar) = value, scalar.style == .plain, scalar.string == "~" || scalar.string == "null" {
                return nil
            }
            return value
        }
        return nil
    }

    /// Whether the mapping has the key (without consuming it).
    func has(_ key: String) -> Bool {
        self.mapping.contains { $0.key.string == key }
    }

    /// An error at `key`, pointing to the line of its value (or of the mapping, when the key is
    /// missing).
    func fail(_ key: String, _ reason: String, node: Yams.Node? = nil) -> ConfigurationError {
        let located = node ?? self.mapping.first { $0.key.string == key }?.value ?? self.node
        return ConfigurationError(key: self.child(key), reason: reason, line: YAMLReader.line(of: located))
    }

    mutating func string(_ key: String) throws(ConfigurationError) -> String? {
        guard let node = self.value(key) else { return nil }
        guard case .scalar(let scalar) = node else { throw self.fail(key, "expected a string", node: node) }
        return scalar.string
    }

    mutating func requiredString(_ key: String) throws(ConfigurationError) -> String {
        guard let value = try self.string(key), !value.isEmpty else { throw self.fail(key, "is required") }
        return value
    }

    mutating func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let node = self.value(key) else { return fallback }
        guard let value = node.int else {
            throw self.fail(key, "expected a whole number, got '\(node.string ?? "?")'", node: node)
        }
        guard range.contains(value) else {
            throw self.fail(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)", node: node)
        }
        return value
    }

    mutating func double(_ key: String, default fallback: Double, range: ClosedRange<Double>) throws(ConfigurationError) -> Double {
        guard let node = self.value(key) else { return fallback }
        guard let value = node.float ?? node.int.map(Double.init), value.isFinite else {
            throw self.fail(key, "expected a number, got '\(node.string ?? "?")'", node: node)
        }
        guard range.contains(value) else {
            throw self.fail(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)", node: node)
        }
        return value
    }

    mutating func bool(_ key: String, default fallback: Bool) throws(ConfigurationError) -> Bool {
        guard let node = self.value(key) else { return fallback }
        guard let value = node.bool else { throw self.fail(key, "expected true or false, got '\(node.string ?? "?")'", node: node) }
        return value
    }

    mutating func duration(_ key: String, default fallback: Duration, minimum: Duration = .milliseconds(1)) throws(ConfigurationError) -> Duration {
        guard let node = self.value(key) else { return fallback }
        guard let text = node.string, let value = Units.parseDuration(text) else {
            throw self.fail(key, "expected a duration such as 250ms, 2s or 1m, got '\(node.string ?? "?")'", node: node)
        }
        guard value >= minimum else { throw self.fail(key, "must be at least \(minimum), got '\(text)'", node: node) }
        return value
    }

    mutating func bytes(_ key: String, default fallback: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let node = self.value(key) else { return fallback }
        guard let text = node.string, let value = Units.parseByteCount(text) else {
            throw self.fail(key, "expected a size such as 65536, 64KiB or 10MiB, got '\(node.string ?? "?")'", node: node)
        }
        guard range.contains(value) else {
            throw self.fail(key, "must be between \(range.lowerBound) and \(range.upperBound) bytes, got \(value)", node: node)
        }
        return value
    }

    mutating func strings(_ key: String) throws(ConfigurationError) -> [String] {
        guard let node = self.value(key) else { return [] }
        guard case .sequence(let sequence) = node else { throw self.fail(key, "expected a list", node: node) }
        var result: [String] = []
        for (index, element) in sequence.enumerated() {
            guard case .scalar(let scalar) = element else {
                throw ConfigurationError(key: "\(self.child(key))[\(index)]", reason: "expected a string", line: YAMLReader.line(of: element))
            }
            result.append(scalar.string)
        }
        return result
    }

    /// Every entry of this reader's mapping as a string, in order (for maps whose keys are
    /// data, such as header names); marks them all as read.
    mutating func entries() throws(ConfigurationError) -> [(key: String, value: String, line: Int?)] {
        var result: [(key: String, value: String, line: Int?)] = []
        for (name, value) in self.mapping {
            let key = name.string ?? "?"
            self.consumed.insert(key)
            guard case .scalar(let scalar) = value else { throw self.fail(key, "expected a string", node: value) }
            result.append((key, scalar.string, YAMLReader.line(of: value)))
        }
        return result
    }

    mutating func object(_ key: String) throws(ConfigurationError) -> YAMLReader? {
        guard let node = self.value(key) else { return nil }
        return try YAMLReader(path: self.child(key), node: node)
    }

    mutating func objects(_ key: String) throws(ConfigurationError) -> [YAMLReader] {
        guard let node = self.value(key) else { return [] }
        guard case .sequence(let sequence) = node else { throw self.fail(key, "expected a list", node: node) }
        var readers: [YAMLReader] = []
        for (index, element) in sequence.enumerated() {
            readers.append(try YAMLReader(path: "\(self.child(key))[\(index)]", node: element))
        }
        return readers
    }

    /// Fails on the first key that no accessor asked for.
    func finish() throws(ConfigurationError) {
        for (name, value) in self.mapping {
            let key = name.string ?? "?"
            if !self.consumed.contains(key) {
                let known = self.consumed.sorted().joined(separator: ", ")
                throw ConfigurationError(
                    key: self.child(key),
                    reason: "unknown key (known keys here: \(known))",
                    line: YAMLReader.line(of: value)
                )
            }
        }
    }
}
