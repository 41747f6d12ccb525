import Crypto
import Foundation
import ShadowCore

/// Makes bodies safe to write: configured JSON paths replaced by a keyed hash (HMAC-SHA256, so
/// equal values stay equal and pairs can still be joined on them, while nobody without the key
/// can test guesses against them) or removed; or, in `bodies: hash` mode, whole bodies replaced
/// by their keyed hash.
public struct Redactor: Sendable {
    let patterns: [JSONPathPattern]
    let mode: RedactionConfiguration.Mode
    let bodies: StorageConfiguration.BodyStorage
    let key: [UInt8]

    /// - Parameter key: the hash key (keep it stable across restarts for joinable hashes).
    public init(storage: StorageConfiguration, key: [UInt8]) {
        self.patterns = storage.redaction.jsonPaths.compactMap { try? JSONPathPattern.parse($0).get() }
        self.mode = storage.redaction.mode
        self.bodies = storage.bodies
        self.key = key
    }

    /// Whether it changes anything.
    public var isActive: Bool { !self.patterns.isEmpty || self.bodies == .hash }

    /// `hmac-sha256:` and the first 16 bytes of the tag, in hex.
    public func hash<D: DataProtocol>(_ bytes: D) -> String {
        let tag = HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: self.key))
        return "hmac-sha256:" + tag.prefix(16).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// The bytes to store for a captured body.
    public func body(_ bytes: [UInt8]) -> [UInt8] {
        guard self.isActive, !bytes.isEmpty else { return bytes }
        if self.bodies == .hash { return Array(self.hash(bytes).utf8) }
        if ServerSentEvents.isEventStream(contentType: nil, body: bytes) {
            // A stream: each event's JSON redacted on its own.
            var out = ""
            for event in ServerSentEvents.parse(bytes) {
                out += "data: " + (self.redact(json: Array(event.data.utf8)).map { String(decoding: $0, as: UTF8.self) } ?? event.data) + "\n\n"
            }
            return Array(out.utf8)
        }
        return self.redact(json: bytes) ?? bytes
    }

    /// The JSON with the configured paths redacted, or `nil` when it is not JSON (stored as is:
    /// there are no paths in it).
    func redact(json bytes: [UInt8]) -> [UInt8]? {
        guard !self.patterns.isEmpty, let document = try? JSONParser(maximumDepth: 512).parse(bytes) else { return nil }
        var path: [JSONPathComponent] = []
        return Array((self.redact(document, path: &path) ?? .null).serialized.utf8)
    }

    /// `nil` means removed.
    private func redact(_ value: JSONValue, path: inout [JSONPathComponent]) -> JSONValue? {
        if !path.isEmpty, self.patterns.contains(where: { $0.covers(path) }) {
            return self.mode == .remove ? nil : .string(self.hash(Array(value.serialized.utf8)))
        }
        switch value {
        case .object(let members):
            var kept: [(key: String, value: JSONValue)] = []
            for member in members {
                path.append(.key(member.key))
                if let redacted = self.redact(member.value, path: &path) { kept.append((member.key, redacted)) }
                path.removeLast()
            }
            return .object(kept)
        case .array(let elements):
            var kept: [JSONValue] = []
            for (index, element) in elements.enumerated() {
                path.append(.index(index))
                // Positions matter in arrays: a removed element leaves a null.
                kept.append(self.redact(element, path: &path) ?? .null)
                path.removeLast()
            }
            return .array(kept)
        default:
            return value
        }
    }

    /// A scorer's explanation with the values of redacted paths hashed too (the JSON scorer lists
    /// differing values).
    public func explanation(_ text: String?) -> String? {
        guard let text, !self.patterns.isEmpty || self.bodies == .hash,
            case .object(var members)? = try? JSONParser().parse(text)
        else { return text }
        guard let index = members.firstIndex(where: { $0.key == "differences" }), case .array(let entries) = members[index].value else {
            return self.bodies == .hash ? nil : text
        }
        let redacted: [JSONValue] = entries.map { entry in
            guard case .object(let fields) = entry else { return entry }
            let covered: Bool = {
                if self.bodies == .hash { return true }
                guard case .string(let path)? = entry["path"] else { return false }
                return self.patterns.contains { pattern in JSONPathPattern.components(of: path).map { pattern.covers($0) } ?? true }
            }()
            guard covered else { return entry }
            return .object(
                fields.map { field in
                    ["baseline", "candidate"].contains(field.key) ? (field.key, .string(self.hash(Array(field.value.serialized.utf8)))) : field
                }
            )
        }
        members[index].value = .array(redacted)
        return JSONValue.object(members).serialized
    }
}
