import Foundation
import GRDB
import Logging
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import Testing

@testable import ShadowProxy

/// Credentials belong to an upstream, not to the request: a candidate never receives the
/// client's (the baseline provider's) keys unless configured to, each upstream gets its own from
/// the environment or a file, and no secret reaches a log, `/stats` or the database.
@Suite(.timeLimit(.minutes(2))) struct CredentialTests {
    static let answer: FixtureServer.Responder = { _ in .json(#"{"label":"cat"}"#) }
    static let clientHeaders = [
        ("authorization", "Bearer CLIENT-KEY-1"), ("cookie", "session=CLIENT-COOKIE-2"), ("x-api-key", "CLIENT-APIKEY-3"),
        ("openai-organization", "org-CLIENT-4"), ("x-tenant", "t1"),
    ]

    func send(_ sidecar: SidecarHarness) async throws {
        let client = try await sidecar.client()
        #expect(try await client.send(method: .POST, path: "/infer", headers: Self.clientHeaders, body: Array("{}".utf8)).status == 200)
        await client.close()
        #expect(try await eventually { sidecar.shadowPending == 0 })
    }

    static func header(_ request: FixtureRequest?, _ name: String) -> String? { request?.header(name) }

    @Test func aCandidateNeverReceivesTheClientsCredentialsByDefault() async throws {
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("other-provider", .responder(Self.answer)), ("trusted", .responder(Self.answer))],
            configure: { $0.routes[0].candidates[1].forwardCredentials = true }
        ) { sidecar, baseline, candidates in
            try await self.send(sidecar)
            let atBaseline = baseline?.recentRequests.last
            #expect(Self.header(atBaseline, "authorization") == "Bearer CLIENT-KEY-1", "the baseline gets the client's request as sent")
            let atOther = candidates[0]?.recentRequests.last
            for name in ["authorization", "cookie", "x-api-key", "openai-organization"] {
                #expect(Self.header(atOther, name) == nil, "\(name) reached a candidate")
            }
            #expect(Self.header(atOther, "x-tenant") == "t1", "other headers are kept")
            let atTrusted = candidates[1]?.recentRequests.last
            #expect(Self.header(atTrusted, "authorization") == "Bearer CLIENT-KEY-1" && Self.header(atTrusted, "cookie") == "session=CLIENT-COOKIE-2")
        }
    }

    /// Each upstream's own key, from the environment and from a file (as systemd's
    /// `LoadCredential=` provides it); then grep everything the daemon wrote or said.
    @Test func eachUpstreamGetsItsOwnKeyAndNoSecretIsWrittenAnywhere() async throws {
        let directory = NSTemporaryDirectory() + "shadowd-credentials-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "CANDIDATE-FILE-SECRET-6\n".write(toFile: directory + "/candidate-key", atomically: true, encoding: .utf8)
        let log = LogRecorder()
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("hosted", .responder(Self.answer))],
            configure: {
                $0.routes[0].baseline.headers = HeaderRewrite(
                    set: [.init(name: "Authorization", value: try! HeaderRewrite.Template.parse("Bearer ${env:BASELINE_KEY}").get(), key: "b")],
                    remove: ["x-tenant"]
                )
                $0.routes[0].candidates[0].headers = HeaderRewrite(set: [
                    .init(name: "Authorization", value: try! HeaderRewrite.Template.parse("Bearer ${credential:candidate-key}").get(), key: "c")
                ])
            },
            log: log,
            environment: ["BASELINE_KEY": "BASELINE-ENV-SECRET-5", "CREDENTIALS_DIRECTORY": directory]
        ) { sidecar, baseline, candidates in
            try await self.send(sidecar)
            let atBaseline = baseline?.recentRequests.last
            #expect(atBaseline?.headers.filter { $0.name.lowercased() == "authorization" }.map(\.value) == ["Bearer BASELINE-ENV-SECRET-5"])
            #expect(Self.header(atBaseline, "x-tenant") == nil)
            let atCandidate = candidates[0]?.recentRequests.last
            #expect(atCandidate?.headers.filter { $0.name.lowercased() == "authorization" }.map(\.value) == ["Bearer CANDIDATE-FILE-SECRET-6"])
            #expect(Self.header(atCandidate, "cookie") == nil)
            let admin = try await HTTPTestClient.connect(port: try #require(await sidecar.sidecar.admin?.address.port()))
            let said = [try await admin.send(path: "/stats").text, try await admin.send(path: "/metrics").text].joined()
            await admin.close()
            await sidecar.stop()
            let written = ["", "-wal", "-shm"].compactMap { FileManager.default.contents(atPath: sidecar.databasePath + $0) }
                .map { String(decoding: $0, as: UTF8.self) }.joined()
            let logged = log.messages(containing: "")
            for secret in ["BASELINE-ENV-SECRET-5", "CANDIDATE-FILE-SECRET-6", "CLIENT-KEY-1", "CLIENT-COOKIE-2", "CLIENT-APIKEY-3"] {
                let leaked = written.contains(secret) || said.contains(secret) || logged.contains { $0.contains(secret) }
                #expect(!leaked, "\(secret) was written or said")
            }
        }
    }

    @Test func aMissingSecretStopsTheStartWithTheKeyNamedAndNotTheValue() async throws {
        var configuration = ShadowCore.Configuration(
            server: ServerConfiguration(listen: HostPort(host: "127.0.0.1", port: 0)),
            admin: AdminConfiguration(listen: nil),
            storage: StorageConfiguration(path: NSTemporaryDirectory() + "shadowd-nokey-" + UUID().uuidString + ".sqlite"),
            routes: [
                RouteConfiguration(
                    name: "r",
                    prefix: "/",
                    baseline: BaselineConfiguration(url: UpstreamURL(host: "127.0.0.1", port: 9)),
                    candidates: []
                )
            ]
        )
        configuration.routes[0].baseline.headers = HeaderRewrite(set: [
            .init(
                name: "Authorization",
                value: try HeaderRewrite.Template.parse("Bearer ${env:NOT_SET_ANYWHERE}").get(),
                key: "routes[0].baseline.headers.set.Authorization"
            )
        ])
        await #expect {
            _ = try await Sidecar(configuration: configuration, logger: .init(label: "test"), environment: [:])
        } throws: { error in
            "\(error)" == "routes[0].baseline.headers.set.Authorization: environment variable NOT_SET_ANYWHERE is not set"
        }
        try? FileManager.default.removeItem(atPath: configuration.storage.path)
    }

    /// The candidate gets its own version of the JSON body (another model name, a field
    /// removed); the baseline and the stored request keep the client's.
    @Test func aCandidatesCopyIsRewrittenAndOnlyItsCopy() async throws {
        try await withSidecar(
            baseline: .responder(Self.answer),
            candidates: [("other-model", .responder(Self.answer))],
            configure: {
                $0.routes[0].candidates[0].rewrite = BodyRewrite(
                    set: [.init(pattern: try! JSONPathPattern.parse("$.model").get(), value: .string("llama-3.1-8b-instruct"))],
                    remove: [try! JSONPathPattern.parse("$.user").get()]
                )
            }
        ) { sidecar, baseline, candidates in
            let body = #"{"model":"gpt-4o","user":"u-42","messages":[{"role":"user","content":"hi"}]}"#
            let client = try await sidecar.client()
            #expect(
                try await client.send(method: .POST, path: "/infer", headers: [("content-type", "application/json")], body: Array(body.utf8)).status
                    == 200
            )
            await client.close()
            #expect(try await eventually { sidecar.shadowPending == 0 })
            #expect(String(decoding: baseline?.recentRequests.last?.body ?? [], as: UTF8.self) == body)
            let copy = try JSONParser().parse(candidates[0]?.recentRequests.last?.body ?? [])
            #expect(copy == (try JSONParser().parse(#"{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"hi"}]}"#)))
            #expect(candidates[0]?.recentRequests.last?.header("content-length") == String(candidates[0]?.recentRequests.last?.body.count ?? -1))
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let stored = try await waitForRow(queue, sql: "SELECT CAST(request_body AS TEXT) AS body, outcome FROM pairs")
            try queue.close()
            #expect(stored["body"] as String? == body && stored["outcome"] as String? == "compared")
        }
    }
}
