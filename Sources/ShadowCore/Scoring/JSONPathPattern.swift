/// A JSONPath-like pattern naming parts of a document: `$.id`, `$.meta.*`,
/// `$.outputs[*].parameters`, `$.outputs[0]`, `$["odd key"]`.
///
/// A pattern that matches a prefix of a path matches everything below it too.
public struct JSONPathPattern: Sendable, Equatable, CustomStringConvertible {
    public enum Segment: Sendable, Equatable {
        case key(String)
        case index(Int)
        case anyKey
        case anyIndex
    }

    public let segments: [Segment]
    public let description: String

    public struct ParseFailure: Error, Sendable {
        public let reason: String
    }

    /// Parses a pattern; the failure says what is wrong with it.
    public static func parse(_ text: String) -> Result<JSONPathPattern, ParseFailure> {
        guard text.hasPrefix("$") else { return .failure(ParseFailure(reason: "a path must start with '$', got '\(text)'")) }
        var segments: [Segment] = []
        var rest = Substring(text.dropFirst())
        while let first = rest.first {
            if first == "." {
                rest = rest.dropFirst()
                let name = rest.prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty else { return .failure(ParseFailure(reason: "empty key after '.' in '\(text)'")) }
                segments.append(name == "*" ? .anyKey : .key(String(name)))
                rest = rest.dropFirst(name.count)
            } else if first == "[" {
                guard let close = rest.firstIndex(of: "]") else {
                    return .failure(ParseFailure(reason: "unclosed '[' in '\(text)'"))
                }
                let inner = rest[rest.index(after: rest.startIndex)..<close]
                if inner == "*" {
                    segments.append(.anyIndex)
                } else if let index = Int(inner), index >= 0 {
                    segments.append(.index(index))
                } else if inner.count >= 2, let quote = inner.first, quote == "\"" || quote == "'", inner.last == quote {
                    segments.append(.key(String(inner.dropFirst().dropLast())))
                } else {
                    return .failure(ParseFailure(reason: "expected [*], [N] or [\"key\"] in '\(text)'"))
                }
                rest = rest[rest.index(after: close)...]
            } else {
                return .failure(ParseFailure(reason: "unexpected '\(first)' in '\(text)'"))
            }
        }
        return .success(JSONPathPattern(segments: segments, description: text))
    }

    /// Whether this pattern covers the concrete path (equal to it or a prefix of it).
    public func covers(_ path: [JSONPathComponent]) -> Bool {
        guard self.segments.count <= path.count else { return false }
        for (segment, component) in zip(self.segments, path) {
            switch (segment, component) {
            case (.key(let expected), .key(let actual)) where expected == actual: continue
            case (.anyKey, .key): continue
            case (.index(let expected), .index(let actual)) where expected == actual: continue
            case (.anyIndex, .index): continue
            default: return false
            }
        }
        return true
    }
}

/// One step of a concrete path into a document.
public enum JSONPathComponent: Sendable, Equatable {
    case key(String)
    case index(Int)
}

extension Array where Element == JSONPathComponent {
    /// `$.outputs[0].data` form, for explanations.
    public var pathString: String {
        var text = "$"
        for component in self {
            switch component {
            case .key(let key):
                let plain =
                    !key.isEmpty
                    && key.utf8.allSatisfy { ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2D }
                text += plain ? ".\(key)" : "[\"\(key)\"]"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }
}

extension JSONPathPattern {
    /// A concrete path (`$.outputs[0].data[3]`, as explanations list them) as components; `nil`
    /// for text that is not a path or has wildcards.
    public static func components(of path: String) -> [JSONPathComponent]? {
        guard case .success(let pattern) = Self.parse(path) else { return nil }
        var components: [JSONPathComponent] = []
        for segment in pattern.segments {
            switch segment {
            case .key(let key): components.append(.key(key))
            case .index(let index): components.append(.index(index))
            default: return nil
            }
        }
        return components
    }
}
