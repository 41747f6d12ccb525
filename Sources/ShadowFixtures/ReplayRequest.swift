import NIOHTTP1
import ShadowCore

/// One replayable request, one JSON object per line in a `.jsonl` file:
/// `{"method": "POST", "path": "/v2/models/classifier/infer", "headers": {…}, "body": {…}}`.
///
/// `body` may be a JSON value (sent as its JSON text) or a string (sent as is). The same format
/// serves captured production traffic.
public struct ReplayRequest: Sendable, Equatable {
    public var method: String
    public var path: String
    public var headers: [String: String]
    public var body: [UInt8]

    public init(method: String, path: String, headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    /// Parses a JSON-lines document; blank lines are skipped.
    /// - Throws: naming the line that is wrong.
    public static func parseLines(_ text: String, source: String = "input") throws -> [ReplayRequest] {
        var requests: [ReplayRequest] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: " \t\r")
            if trimmed.isEmpty { continue }
            let value: JSONValue
            do {
                value = try JSONParser().parse(trimmed)
            } catch {
                throw FixtureError("\(source):\(number + 1): not JSON (\(error))")
            }
            guard case .string(let path) = value["path"] ?? .null, path.hasPrefix("/") else {
                throw FixtureError("\(source):\(number + 1): 'path' must be a string starting with '/'")
            }
            var request = ReplayRequest(method: "GET", path: path)
            if case .string(let method) = value["method"] ?? .null { request.method = method.uppercased() }
            if case .object(let members) = value["headers"] ?? .null {
                for member in members {
                    guard case .string(let headerValue) = member.value else {
                        throw FixtureError("\(source):\(number + 1): header '\(member.key)' must be a string")
                    }
                    request.headers[member.key] = headerValue
                }
            }
            switch value["body"] {
            case .none, .some(.null): break
            case .some(.string(let text)): request.body = Array(text.utf8)
            case .some(let json): request.body = Array(json.serialized.utf8)
            }
            requests.append(request)
        }
        return requests
    }

    /// A deterministic set of V2 inference requests for `model`, the demo's built-in default.
    public static func generated(count: Int, model: String = "classifier", seed: UInt64 = 1) -> [ReplayRequest] {
        (0..<count).map { index in
            var state = StableHash.fnv1a64("\(seed)/\(index)".utf8)
            let features = (0..<4).map { _ -> JSONValue in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return .number(Double(state >> 40 % 10_000) / 1_000)
            }
            let body = JSONValue.object([
                ("id", .string("req-\(index)")),
                (
                    "inputs",
                    .array([
                        .object([
                            ("name", .string("features")), ("shape", .array([.number(1), .number(4)])), ("datatype", .string("FP32")),
                            ("data", .array(features)),
                        ])
                    ])
                ),
            ])
            return ReplayRequest(
                method: "POST",
                path: "/v2/models/\(model)/infer",
                headers: ["content-type": "application/json", "x-user-id": "user-\(index % 97)"],
                body: Array(body.serialized.utf8)
            )
        }
    }

    public var httpMethod: HTTPMethod { HTTPMethod(rawValue: self.method) }
}

extension Substring {
    fileprivate func trimmingCharacters(in characters: String) -> String {
        let set = Set(characters)
        return String(self.drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
