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
        // A streamed chat answer's `delta` paths also cover the `message` paths of the document
        // it is reassembled into, which is what scorers' explanations name.
        let paths = storage.redaction.jsonPaths.flatMap { path in
            path.contains(".delta.") ? [path, path.replacingOccurrences(of: ".delta.", with: ".message.")] : [path]
        }
        self.patterns = paths.compactMap { try? JSONPathPattern.parse($0).get() }
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

    /// A body as it may be written, and why its bytes were withheld if they were.
    public struct Stored: Sendable, Equatable {
        public var bytes: [UInt8]
        /// Set when the body could not be redacted and only its keyed hash is stored.
        public var withheld: String?
    }

    /// The bytes to store for a captured body.
    ///
    /// Redaction is never skipped: a body (or stream event) that cannot be parsed as JSON (not
    /// JSON, or cut at `storage.max_stored_body` mid-document) while paths are configured is
    /// stored as its keyed hash only, and ``Stored/withheld`` says why. The size stays in the
    /// row's `*_bytes` column.
    public func body(_ captured: CapturedBody) -> Stored {
        let bytes = captured.bytes
        guard self.isActive, !bytes.isEmpty else { return Stored(bytes: bytes) }
        if self.bodies == .hash { return Stored(bytes: Array(self.hash(bytes).utf8)) }
        let cut = captured.truncated ? " (cut at storage.max_stored_body)" : ""
        if ServerSentEvents.isEventStream(contentType: nil, body: bytes) {
            // A stream: each event's JSON redacted on its own; an event that is not JSON (a cut
            // last event, or text) keeps only its hash.
            var out = ""
            var hashed = 0
            for event in ServerSentEvents.parse(bytes) {
                let data: String
                if event.data == "[DONE]" {
                    data = event.data
                } else if let redacted = self.redact(json: Array(event.data.utf8)) {
                    data = String(decoding: redacted, as: UTF8.self)
                } else {
                    data = self.hash(Array(event.data.utf8))
                    hashed += 1
                }
                out += "data: " + data + "\n\n"
            }
            let reason = hashed == 0 ? nil : "\(hashed) stream event(s) not JSON\(cut): stored as keyed hashes, not redacted"
            return Stored(bytes: Array(out.utf8), withheld: reason)
        }
        if let redacted = self.redact(json: bytes) { return Stored(bytes: redacted) }
        return Stored(
            bytes: Array(self.hash(bytes).utf8),
            withheld: "not JSON\(cut), so not redactable: stored its keyed hash only"
        )
    }

    /// The JSON with the configured paths redacted, or `nil` when it is not (complete) JSON.
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
