import Foundation
import GRDB
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// Redacted values never reach the disk: checked on the raw bytes of the database and its WAL.
@Suite(.timeLimit(.minutes(2))) struct PrivacyTests {
    static func responder(_ secret: String) -> FixtureServer.Responder {
        { _ in .json(#"{"label":"cat","account":{"token":"\#(secret)"}}"#) }
    }

    static func rawBytes(_ databasePath: String) -> String {
        ["", "-wal", "-shm"].compactMap { FileManager.default.contents(atPath: databasePath + $0) }
            .map { String(decoding: $0, as: UTF8.self) }.joined()
    }

    func send(_ sidecar: SidecarHarness, emails: [String]) async throws {
        let client = try await HTTPTestClient.connect(port: sidecar.port)
        for email in emails {
            let body = Array(#"{"user":{"email":"\#(email)","plan":"pro"},"inputs":[1]}"#.utf8)
            #expect(
                try await client.send(method: .POST, path: "/infer", headers: [("authorization", "Bearer sk-live-123")], body: body).status == 200
            )
        }
        await client.close()
    }

    @Test func redactedPathsAreHashedJoinablyAndNeverWritten() async throws {
        try await withSidecar(
            baseline: .responder(Self.responder("TOKEN-BASELINE-1")),
            candidates: [("c", .responder(Self.responder("TOKEN-CANDIDATE-2")))],
            configure: { $0.storage.redaction = RedactionConfiguration(jsonPaths: ["$.user.email", "$.account.token"]) }
        ) { sidecar, _, _ in
            try await self.send(sidecar, emails: ["alice@example.com", "bob@example.com", "alice@example.com"])
            await sidecar.stop()
            let raw = Self.rawBytes(sidecar.databasePath)
            for secret in ["alice@example.com", "bob@example.com", "TOKEN-BASELINE-1", "TOKEN-CANDIDATE-2", "sk-live-123"] {
                #expect(!raw.contains(secret), "\(secret) reached the disk")
            }
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                let emails = try String.fetchAll(db, sql: "SELECT json_extract(request_body, '$.user.email') FROM pairs ORDER BY received_at_us")
                #expect(emails.count == 3 && emails.allSatisfy { $0.hasPrefix("hmac-sha256:") })
                #expect(emails[0] == emails[2] && emails[0] != emails[1], "equal values stay joinable")
                #expect(try String.fetchAll(db, sql: "SELECT json_extract(request_body, '$.user.plan') FROM pairs") == ["pro", "pro", "pro"])
                // The tokens differ between arms: the pair diverges on that path, and the
                // explanation lists hashes, not the values.
                let row = try #require(try Row.fetchOne(db, sql: "SELECT diverged, differing_paths, explanation FROM pairs"))
                #expect(row["diverged"] as Int? == 1 && row["differing_paths"] as String? == #"["$.account.token"]"#)
                #expect((row["explanation"] as String? ?? "").contains("hmac-sha256:"))
            }
            try queue.close()
        }
    }

    @Test func bodiesCanBeStoredAsHashesOnly() async throws {
        try await withSidecar(
            baseline: .responder(Self.responder("TOKEN-BASELINE-1")),
            candidates: [("c", .responder(Self.responder("TOKEN-BASELINE-1")))],
            configure: { $0.storage.bodies = .hash }
        ) { sidecar, _, _ in
            try await self.send(sidecar, emails: ["alice@example.com"])
            await sidecar.stop()
            let raw = Self.rawBytes(sidecar.databasePath)
            #expect(!raw.contains("alice@example.com") && !raw.contains("TOKEN-BASELINE-1") && !raw.contains("\"label\""))
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let row = try queue.read {
                try Row.fetchOne($0, sql: "SELECT CAST(baseline_body AS TEXT) AS b, CAST(candidate_body AS TEXT) AS c, diverged FROM pairs")
            }
            try queue.close()
            #expect((row?["b"] as String?)?.hasPrefix("hmac-sha256:") == true && row?["b"] as String? == row?["c"] as String?)
            #expect(row?["diverged"] as Int? == 0, "scored on the real bodies before hashing")
        }
    }

    /// `storage.bodies: compressed` compresses what redaction left: inflated, the stored bodies
    /// hold hashes, never the values (compressed bytes alone would hide them from a raw scan).
    @Test func compressedBodiesAreRedactedFirst() async throws {
        let padding = String(repeating: "the plan includes priority support; ", count: 8)
        try await withSidecar(
            baseline: .responder { _ in .json(#"{"label":"cat","note":"\#(padding)","account":{"token":"TOKEN-ZIP-1"}}"#) },
            candidates: [("c", .responder { _ in .json(#"{"label":"cat","note":"\#(padding)","account":{"token":"TOKEN-ZIP-1"}}"#) })],
            configure: {
                $0.storage.bodies = .compressed
                $0.storage.redaction = RedactionConfiguration(jsonPaths: ["$.user.email", "$.account.token"])
            }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            let body = Array(#"{"user":{"email":"zip@example.com","plan":"pro"},"note":"\#(padding)"}"#.utf8)
            #expect(try await client.send(method: .POST, path: "/infer", body: body).status == 200)
            await client.close()
            await sidecar.stop()
            var configuration = GRDB.Configuration()
            configuration.prepareDatabase { db in db.add(function: BodyCompression.uncompressFunction) }
            let queue = try DatabaseQueue(path: sidecar.databasePath, configuration: configuration)
            let row = try queue.read { db in
                try Row.fetchOne(
                    db,
                    sql: """
                        SELECT request_body_zlib, baseline_body_zlib, candidate_body_zlib,
                            CAST(sqlar_uncompress(request_body, request_body_zlib) AS TEXT) AS request,
                            CAST(sqlar_uncompress(baseline_body, baseline_body_zlib) AS TEXT) AS baseline,
                            CAST(sqlar_uncompress(candidate_body, candidate_body_zlib) AS TEXT) AS candidate
                        FROM pairs
                        """
                )
            }
            try queue.close()
            let stored = try #require(row)
            #expect(stored["request_body_zlib"] as Int? != nil && stored["baseline_body_zlib"] as Int? != nil, "stored compressed")
            #expect(stored["candidate_body_zlib"] as Int? == stored["baseline_body_zlib"] as Int?, "an equal answer, stored once")
            for column in ["request", "baseline", "candidate"] {
                let text = try #require(stored[column] as String?)
                #expect(text.contains("hmac-sha256:") && text.contains(padding), "\(column): \(text)")
                #expect(!text.contains("zip@example.com") && !text.contains("TOKEN-ZIP-1"), "\(column) holds a redacted value")
            }
        }
    }

    /// One probe of the privacy promise: what is configured, what is sent, and what must never
    /// reach the disk.
    struct Probe: Sendable, CustomTestStringConvertible {
        let name: String
        let storage: @Sendable (inout StorageConfiguration) -> Void
        let requestBody: String
        let baselineAnswer: FixtureResponse
        let candidateAnswer: FixtureResponse
        let secrets: [String]
        /// Checks on the stored pair (read while the sidecar runs).
        let check: @Sendable (Row) -> Void
        var testDescription: String { self.name }
    }

    static let padding = String(repeating: "p", count: 180)

    static func stream(_ secret: String) -> FixtureResponse {
        let events = [
            #"{"choices":[{"index":0,"delta":{"role":"assistant","content":"\#(secret)"}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"\#(secret) again \#(padding)"}}]}"#,
            #"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]
        return FixtureResponse(
            headers: [("content-type", "text/event-stream")],
            body: Array(events.map { "data: \($0)\n\n" }.joined().utf8)
        )
    }

    static let probes: [Probe] = [
        Probe(
            name: "bodies over storage.max_stored_body are withheld, not stored in clear",
            storage: {
                $0.redaction = RedactionConfiguration(jsonPaths: ["$.parameters.email", "$.account.token"])
                $0.maxStoredBody = 200
            },
            requestBody: #"{"id":"b","parameters":{"email":"BIG-SECRET@x.com"},"pad":"\#(padding)"}"#,
            baselineAnswer: .json(#"{"account":{"token":"TOKEN-BASELINE-1"},"pad":"\#(padding)"}"#),
            candidateAnswer: .json(#"{"account":{"token":"TOKEN-CANDIDATE-2"},"pad":"\#(padding)"}"#),
            secrets: ["BIG-SECRET", "TOKEN-BASELINE-1", "TOKEN-CANDIDATE-2"],
            check: { row in
                #expect((row["request"] as String?)?.hasPrefix("hmac-sha256:") == true)
                #expect(row["request_body_bytes"] as Int? ?? 0 > 200, "the size is kept")
                let explanation = row["explanation"] as String? ?? ""
                #expect(explanation.contains("request_body_withheld") && explanation.contains("candidate_body_withheld"))
                #expect(explanation.contains("max_stored_body"))
            }
        ),
        Probe(
            name: "a body that is not JSON is withheld when paths are redacted",
            storage: { $0.redaction = RedactionConfiguration(jsonPaths: ["$.parameters.email"]) },
            requestBody: "email=FORM-SECRET%40x.com&plan=pro",
            baselineAnswer: .json(#"{"label":"cat"}"#),
            candidateAnswer: .json(#"{"label":"cat"}"#),
            secrets: ["FORM-SECRET"],
            check: { row in
                #expect((row["request"] as String?)?.hasPrefix("hmac-sha256:") == true)
                #expect((row["explanation"] as String? ?? "").contains("not JSON"))
                #expect(row["diverged"] as Int? == 0, "the answers are still stored and compared")
                #expect(row["baseline"] as String? == #"{"label":"cat"}"#)
            }
        ),
        Probe(
            name: "mode remove drops the value",
            storage: { $0.redaction = RedactionConfiguration(jsonPaths: ["$.parameters.email"], mode: .remove) },
            requestBody: #"{"parameters":{"email":"REMOVED-SECRET@x.com","plan":"pro"}}"#,
            baselineAnswer: .json(#"{"label":"cat"}"#),
            candidateAnswer: .json(#"{"label":"cat"}"#),
            secrets: ["REMOVED-SECRET"],
            check: { row in
                #expect(row["request"] as String? == #"{"parameters":{"plan":"pro"}}"#)
            }
        ),
        Probe(
            name: "stream events are redacted one by one, a cut last event withheld",
            storage: {
                $0.redaction = RedactionConfiguration(jsonPaths: ["$.choices[*].delta.content"])
                $0.maxStoredBody = 260
            },
            requestBody: #"{"stream":true}"#,
            baselineAnswer: stream("STREAM-SECRET"),
            candidateAnswer: stream("STREAM-SECRET-C"),
            secrets: ["STREAM-SECRET"],
            check: { row in
                let baseline = row["baseline"] as String? ?? ""
                #expect(baseline.contains("hmac-sha256:") && baseline.hasPrefix("data: {"))
                #expect((row["explanation"] as String? ?? "").contains("stream event(s) not JSON"))
            }
        ),
        Probe(
            name: "store_request_bodies: false keeps no request bytes",
            storage: { $0.storeRequestBodies = false },
            requestBody: #"{"parameters":{"email":"UNSTORED-SECRET@x.com"}}"#,
            baselineAnswer: .json(#"{"label":"cat"}"#),
            candidateAnswer: .json(#"{"label":"cat"}"#),
            secrets: ["UNSTORED-SECRET"],
            check: { row in
                #expect(row["request"] as String? == nil || row["request"] as String? == "")
                #expect(row["request_body_bytes"] as Int? ?? 0 > 0)
            }
        ),
        Probe(
            name: "storage.bodies: hash keeps hashes only",
            storage: { $0.bodies = .hash },
            requestBody: #"{"parameters":{"email":"HASHED-SECRET@x.com"}}"#,
            baselineAnswer: .json(#"{"label":"HASHED-LABEL"}"#),
            candidateAnswer: .json(#"{"label":"HASHED-LABEL"}"#),
            secrets: ["HASHED-SECRET", "HASHED-LABEL"],
            check: { row in
                #expect((row["baseline"] as String?)?.hasPrefix("hmac-sha256:") == true && row["baseline"] as String? == row["candidate"] as String?)
                #expect(row["diverged"] as Int? == 0, "scored on the real bodies before hashing")
            }
        ),
    ]

    /// The secrets are looked for in the raw bytes of the database, its WAL and shared memory
    /// file while the sidecar still runs (nothing checkpointed yet), and again after it stopped.
    @Test(arguments: probes) func noSecretReachesTheDisk(_ probe: Probe) async throws {
        try await withSidecar(
            baseline: .responder { _ in probe.baselineAnswer },
            candidates: [("c", .responder { _ in probe.candidateAnswer })],
            configure: { probe.storage(&$0.storage) }
        ) { sidecar, _, _ in
            let client = try await sidecar.client()
            let response = try await client.send(
                method: .POST,
                path: "/infer",
                headers: [("authorization", "Bearer sk-live-123"), ("content-type", "application/json")],
                body: Array(probe.requestBody.utf8)
            )
            await client.close()
            #expect(response.status == 200)
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            let row = try await waitForRow(
                queue,
                sql: """
                    SELECT CAST(p.request_body AS TEXT) AS request, e.request_body_bytes, CAST(p.baseline_body AS TEXT) AS baseline,
                        CAST(p.candidate_body AS TEXT) AS candidate, p.diverged, p.explanation
                    FROM pairs p JOIN exchanges e ON e.request_id = p.request_id
                    """
            )
            try queue.close()
            let running = Self.rawBytes(sidecar.databasePath)
            #expect(FileManager.default.contents(atPath: sidecar.databasePath + "-wal")?.isEmpty == false, "read before any checkpoint")
            for secret in probe.secrets + ["sk-live-123"] {
                let leaked = running.contains(secret)
                #expect(!leaked, "\(secret) reached the disk while running")
            }
            probe.check(row)
            await sidecar.stop()
            let stopped = Self.rawBytes(sidecar.databasePath)
            for secret in probe.secrets {
                let leaked = stopped.contains(secret)
                #expect(!leaked, "\(secret) reached the disk")
            }
        }
    }

    @Test func credentialHeadersCannotBeRecordedAsSegments() {
        #expect {
            _ = try Configuration.load(
                yaml: "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n    segment: {header: Authorization}"
            )
        } throws: { error in
            "\(error)".contains("carries credentials and is never stored")
        }
    }
}
