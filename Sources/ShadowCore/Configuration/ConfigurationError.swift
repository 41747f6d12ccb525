/// An invalid configuration: the key that is wrong and why.
///
/// `description` is the one line an operator sees, e.g.
/// `routes[0].candidates[1].timeout: expected a duration such as 250ms or 2s, got 'soon' (line 14)`.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dotted path of the offending key, e.g. `routes[0].baseline.url`; empty for the document.
    public let key: String
    /// What is wrong with it.
    public let reason: String
    /// The 1-based line in the YAML source, when known.
    public let line: Int?

    public init(key: String, reason: String, line: Int? = nil) {
        self.key = key
        self.reason = reason
        self.line = line
    }

    public var description: String {
        let location = self.line.map { " (line \($0))" } ?? ""
        return self.key.isEmpty ? "\(self.reason)\(location)" : "\(self.key): \(self.reason)\(location)"
    }
}
