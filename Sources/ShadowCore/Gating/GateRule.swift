/// A condition on a request; every condition given in one rule must hold (AND).
///
/// Routes mirror a request when it matches any `include` rule (or there are none) and no
/// `exclude` rule: e.g. only `POST /v2/models/*/infer`, never requests with `X-Shadow-Skip: 1`.
public struct GateRule: Sendable, Equatable {
    public var methods: [String]?
    /// `*` matches within one path segment, `**` across segments; the query is not part of it.
    public var path: PathGlob?
    public var header: (name: String, test: ValueTest)?
    /// A JSONPath into the request body (read only when a rule needs it).
    public var field: (path: JSONPathPattern, test: ValueTest)?
    public var bodyBytes: ClosedRange<Int>?

    public init(
        methods: [String]? = nil,
        path: PathGlob? = nil,
        header: (name: String, test: ValueTest)? = nil,
        field: (path: JSONPathPattern, test: ValueTest)? = nil,
        bodyBytes: ClosedRange<Int>? = nil
    ) {
        self.methods = methods
        self.path = path
        self.header = header
        self.field = field
        self.bodyBytes = bodyBytes
    }

    /// What a header's or a field's value must be.
    public enum ValueTest: Sendable, Equatable {
        case present(Bool)
        case equals(String)
        case notEquals(String)
        case matches(CompiledRegex)
        case lessThan(Double)
        case greaterThan(Double)

        /// - Parameter value: the header's value or the field as text; `nil` when absent.
        public func holds(_ value: String?) -> Bool {
            switch self {
            case .present(let wanted): return (value != nil) == wanted
            case .equals(let expected): return value == expected
            case .notEquals(let expected): return value != expected
            case .matches(let regex): return value.map { regex.matches($0) } ?? false
            case .lessThan(let bound): return value.flatMap(Double.init).map { $0 < bound } ?? false
            case .greaterThan(let bound): return value.flatMap(Double.init).map { $0 > bound } ?? false
            }
        }
    }

    public var needsBody: Bool { self.field != nil }

    public static func == (lhs: GateRule, rhs: GateRule) -> Bool {
        lhs.methods == rhs.methods && lhs.path == rhs.path && lhs.header?.name == rhs.header?.name && lhs.header?.test == rhs.header?.test
            && lhs.field?.path == rhs.field?.path && lhs.field?.test == rhs.field?.test && lhs.bodyBytes == rhs.bodyBytes
    }
}

/// What the gates see of a request. The body is parsed only if a rule asks for a field.
public struct GateRequest {
    public var method: String
    /// Path without the query.
    public var path: String
    public var header: (String) -> String?
    public var bodyBytes: Int
    public var body: () -> JSONValue?

    public init(method: String, path: String, header: @escaping (String) -> String?, bodyBytes: Int, body: @escaping () -> JSONValue?) {
        self.method = method
        self.path = path
        self.header = header
        self.bodyBytes = bodyBytes
        self.body = body
    }
}

extension GateRule {
    /// Whether every condition of the rule holds.
    public func matches(_ request: GateRequest, document: inout JSONValue??) -> Bool {
        if let methods = self.methods, !methods.contains(request.method) { return false }
        if let path = self.path, !path.matches(request.path) { return false }
        if let range = self.bodyBytes, !range.contains(request.bodyBytes) { return false }
        if let header = self.header, !header.test.holds(request.header(header.name)) { return false }
        if let field = self.field {
            if document == nil { document = .some(request.body()) }
            let value = (document ?? nil).flatMap { field.path.select(in: $0).first }.flatMap(\.gateText)
            if !field.test.holds(value) { return false }
        }
        return true
    }
}

/// The route's include and exclude rules.
public struct GateConfiguration: Sendable, Equatable {
    public var include: [GateRule]
    public var exclude: [GateRule]

    public init(include: [GateRule] = [], exclude: [GateRule] = []) {
        self.include = include
        self.exclude = exclude
    }

    public var isEmpty: Bool { self.include.isEmpty && self.exclude.isEmpty }

    /// Whether the request may be mirrored.
    public func admits(_ request: GateRequest) -> Bool {
        var document: JSONValue?? = nil
        if !self.include.isEmpty, !self.include.contains(where: { $0.matches(request, document: &document) }) { return false }
        return !self.exclude.contains { $0.matches(request, document: &document) }
    }
}

extension JSONValue {
    /// A scalar as the text rules compare against; containers have none.
    public var gateText: String? {
        switch self {
        case .string(let text): text
        case .number(let value): JSONValue.format(value)
        case .bool(let value): value ? "true" : "false"
        case .null: "null"
        default: nil
        }
    }
}

/// A path pattern: `*` is any run of characters other than `/`, `**` any run at all.
public struct PathGlob: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    private let parts: [Part]

    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case segmentWildcard
        case anyWildcard
    }

    public init(_ pattern: String) {
        self.description = pattern
        var parts: [Part] = []
        var literal: [UInt8] = []
        let bytes = Array(pattern.utf8)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "*") {
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = []
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "*") {
                    parts.append(.anyWildcard)
                    index += 2
                } else {
                    parts.append(.segmentWildcard)
                    index += 1
                }
            } else {
                literal.append(bytes[index])
                index += 1
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    public func matches(_ path: String) -> Bool {
        Self.match(self.parts[...], Array(path.utf8)[...])
    }

    private static func match(_ parts: ArraySlice<Part>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = parts.first else { return text.isEmpty }
        switch first {
        case .literal(let bytes):
            guard text.starts(with: bytes) else { return false }
            return Self.match(parts.dropFirst(), text.dropFirst(bytes.count))
        case .segmentWildcard, .anyWildcard:
            var rest = text
            while true {
                if Self.match(parts.dropFirst(), rest) { return true }
                guard let next = rest.first, first == .anyWildcard || next != UInt8(ascii: "/") else { return false }
                rest = rest.dropFirst()
            }
        }
    }
}

/// A regular expression compiled once at config load. `Regex` values are immutable and safe to
/// match from any thread.
public struct CompiledRegex: @unchecked Sendable, Equatable {
    public let source: String
    private let regex: Regex<AnyRegexOutput>

    public init(_ source: String) throws {
        self.source = source
        self.regex = try Regex(source)
    }

    /// Whether the pattern matches somewhere in the value (anchor it with ^…$ for a whole match).
    public func matches(_ value: String) -> Bool {
        (try? self.regex.firstMatch(in: value)) != nil
    }

    public static func == (lhs: CompiledRegex, rhs: CompiledRegex) -> Bool { lhs.source == rhs.source }
}
