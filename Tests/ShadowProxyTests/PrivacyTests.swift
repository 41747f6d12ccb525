import Foundation
import GRDB
import NIOHTTP1
import ShadowCore
import ShadowFixtures
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
