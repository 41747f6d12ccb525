import Foundation
import NIOHTTP1
import ShadowCore

/// One upstream's header rewrite with its secrets read: applied to every request head sent to it.
///
/// Built when a configuration is applied (at start and on each SIGHUP, so rotated keys are
/// picked up), never on the request path. The values are secrets: nothing here is logged.
struct UpstreamHeaders: Sendable {
    /// Lowercased names removed from the client's headers.
    let remove: [String]
    let set: [(name: String, value: String)]

    /// Whether it removes a field the sidecar sets on every forwarded request (then it is
    /// applied to the finished head, after those; otherwise its removals are made while the
    /// client's fields are copied).
    let removesSidecarFields: Bool

    var isEmpty: Bool { self.remove.isEmpty && self.set.isEmpty }

    /// The fields ``ProxyHandler/upstreamHead(_:target:requestID:peer:framing:shadow:rewrite:)``
    /// adds itself.
    static let sidecarFields: Set<String> = [
        "host", "te", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "x-shadow-request",
        "content-length", "transfer-encoding",
    ]

    static let none = UpstreamHeaders(remove: [], set: [])

    private init(remove: [String], set: [(name: String, value: String)]) {
        self.remove = remove
        self.set = set
        self.removesSidecarFields = remove.contains { Self.sidecarFields.contains($0) }
    }

    /// - Parameters:
    ///   - stripping: client headers removed before the rewrite (a candidate's credential headers).
    ///   - environment: where `${env:…}` and `$CREDENTIALS_DIRECTORY` come from.
    /// - Throws: ``ConfigurationError`` naming the key and the missing source.
    init(_ rewrite: HeaderRewrite, stripping: [String] = [], environment: [String: String]) throws(ConfigurationError) {
        var set: [(name: String, value: String)] = []
        for field in rewrite.set {
            set.append((field.name, try field.value.resolve(key: field.key, environment: environment, readFile: Self.read)))
        }
        // A header being set replaces the client's: remove it first. Lowercase, as the forwarded
        // head compares them with the client's names (``HeaderPolicy/matchesLowercased(_:_:)``).
        var remove = (stripping + rewrite.remove + set.map(\.name)).map { $0.lowercased() }
        var seen: Set<String> = []
        remove = remove.filter { seen.insert($0).inserted }
        self.init(remove: remove, set: set)
    }

    static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Applies the rewrite to a request head about to be sent.
    func apply(to head: inout HTTPRequestHead) {
        for name in self.remove { head.headers.remove(name: name) }
        for (name, value) in self.set { head.headers.add(name: name, value: value) }
    }
}
