/// Headers one upstream gets beyond the client's: some removed, some set (replacing the
/// client's). Values are templates: literal text with `${env:NAME}`, `${file:/path}` or
/// `${credential:NAME}` (a file under systemd's `$CREDENTIALS_DIRECTORY`, from `LoadCredential=`)
/// in them, so a secret is never written into the configuration, and the configuration, its
/// errors and `check-config` only ever show the template.
public struct HeaderRewrite: Sendable, Equatable {
    /// One header to set.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: Template
        /// The configuration key, for errors (`routes[0].candidates[1].headers.set.Authorization`).
        public var key: String

        public init(name: String, value: Template, key: String) {
            self.name = name
            self.value = value
            self.key = key
        }
    }

    public var set: [Field]
    /// Lowercased header names.
    public var remove: [String]

    public init(set: [Field] = [], remove: [String] = []) {
        self.set = set
        self.remove = remove.map { $0.lowercased() }
    }

    public var isEmpty: Bool { self.set.isEmpty && self.remove.isEmpty }

    /// The client headers that carry credentials and never reach a candidate unless it sets
    /// `forward_credentials: true` (a candidate at another provider must not get the baseline
    /// provider's key). `upstreams.credential_headers` replaces the list.
    public static let defaultCredentialHeaders = [
        "authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "openai-organization", "openai-project",
    ]

    /// A header value with placeholders, resolved where I/O is allowed (the daemon, at start and
    /// on every reload, so rotated secrets are picked up).
    public struct Template: Sendable, Equatable, CustomStringConvertible {
        public enum Part: Sendable, Equatable {
            case text(String)
            case environment(String)
            case file(String)
            case credential(String)
        }

        public var parts: [Part]

        /// Parses `text`, or fails naming the malformed placeholder.
        public static func parse(_ text: String) -> Result<Template, ConfigurationError> {
            var parts: [Part] = []
            var rest = Substring(text)
            while let dollar = rest.indices.first(where: {
                rest[$0] == "$" && rest.index(after: $0) < rest.endIndex && rest[rest.index(after: $0)] == "{"
            }) {
                if dollar > rest.startIndex { parts.append(.text(String(rest[..<dollar]))) }
                let open = rest.index(dollar, offsetBy: 2)
                guard let end = rest[open...].firstIndex(of: "}") else {
                    return .failure(ConfigurationError(key: "", reason: "unterminated '${' in a header value"))
                }
                let body = rest[open..<end]
                guard let colon = body.firstIndex(of: ":"), body.index(after: colon) < body.endIndex else {
                    return .failure(ConfigurationError(key: "", reason: "expected ${env:NAME}, ${file:PATH} or ${credential:NAME}, got '${\(body)}'"))
                }
                let argument = String(body[body.index(after: colon)...])
                switch body[..<colon] {
                case "env": parts.append(.environment(argument))
                case "file": parts.append(.file(argument))
                case "credential":
                    guard !argument.contains("/") else {
                        return .failure(ConfigurationError(key: "", reason: "a credential name has no '/': '\(argument)'"))
                    }
                    parts.append(.credential(argument))
                default:
                    return .failure(ConfigurationError(key: "", reason: "unknown source '\(body[..<colon])' (known: env, file, credential)"))
                }
                rest = rest[rest.index(after: end)...]
            }
            if !rest.isEmpty { parts.append(.text(String(rest))) }
            return .success(Template(parts: parts))
        }

        /// Whether any part comes from outside the configuration (then its value is a secret).
        public var isExternal: Bool { self.parts.contains { if case .text = $0 { false } else { true } } }

        /// The value, with environment variables and files read through the given functions.
        /// File contents lose one trailing newline. Errors name the source, never the value.
        /// - Throws: ``ConfigurationError`` at `key` when a variable is unset or a file unreadable.
        public func resolve(
            key: String,
            environment: [String: String],
            readFile: (String) -> String?
        ) throws(ConfigurationError) -> String {
            var value = ""
            for part in self.parts {
                switch part {
                case .text(let text):
                    value += text
                case .environment(let name):
                    guard let found = environment[name] else {
                        throw ConfigurationError(key: key, reason: "environment variable \(name) is not set")
                    }
                    value += found
                case .file(let path):
                    guard let found = readFile(path) else { throw ConfigurationError(key: key, reason: "cannot read \(path)") }
                    value += Self.trimmingNewline(found)
                case .credential(let name):
                    guard let directory = environment["CREDENTIALS_DIRECTORY"] else {
                        throw ConfigurationError(key: key, reason: "${credential:\(name)} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")
                    }
                    guard let found = readFile(directory + "/" + name) else {
                        throw ConfigurationError(key: key, reason: "cannot read credential \(name) in $CREDENTIALS_DIRECTORY")
                    }
                    value += Self.trimmingNewline(found)
                }
            }
            guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw ConfigurationError(key: key, reason: "the value contains a line break or NUL, which a header cannot carry")
            }
            return value
        }

        static func trimmingNewline(_ text: String) -> String {
            var text = Substring(text)
            if text.hasSuffix("\r\n") {
                text = text.dropLast(2)
            } else if text.hasSuffix("\n") {
                text = text.dropLast()
            }
            return String(text)
        }

        /// The template as written, placeholders and all (never a resolved secret).
        public var description: String {
            self.parts.map { part in
                switch part {
                case .text(let text): text
                case .environment(let name): "${env:\(name)}"
                case .file(let path): "${file:\(path)}"
                case .credential(let name): "${credential:\(name)}"
                }
            }.joined()
        }
    }
}
