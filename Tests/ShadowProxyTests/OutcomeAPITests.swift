import Foundation
import GRDB
import NIOHTTP1
import ShadowCore
import ShadowFixtures
import Testing

@testable import ShadowProxy

/// `POST /outcomes` on a real admin listener and a real database: every bad input gets its
/// status and reason and stores nothing of its batch; duplicates are ignored; the token guards it.
@Suite(.timeLimit(.minutes(2))) struct OutcomeAPITests {
    static func configure(_ configuration: inout ShadowCore.Configuration) {
        var experiment = ExperimentConfiguration(name: "exp", treatment: "c", key: .header("x-user-id"))
        experiment.metrics = [.init(name: "click", kind: .binary), .init(name: "revenue", kind: .continuous)]
        configuration.routes[0].experiment = experiment
    }

    func post(_ client: HTTPTestClient, _ body: String, type: String = "application/x-ndjson", token: String? = nil) async throws -> HTTPTestResponse
    {
        var headers = [("content-type", type)]
        if let token { headers.append(("authorization", "Bearer \(token)")) }
        return try await client.send(method: .POST, path: "/outcomes", headers: headers, body: Array(body.utf8))
    }

    @Test func badBatchesAreRefusedWholeAndDuplicatesIgnored() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json("{}") },
            candidates: [("c", .responder { _ in .json("{}") })],
            configure: Self.configure
        ) { sidecar, _, _ in
            let admin = try await HTTPTestClient.connect(port: try #require(await sidecar.sidecar.admin?.address.port()))
            let good = #"{"key":"u1","metric":"click","value":1,"event_id":"e1"}"#
            let cases: [(body: String, type: String, status: Int, reason: String)] = [
                (good + "\n" + #"{"key":"u2","metric":"sales","value":1}"#, "application/x-ndjson", 400, "line 2: unknown metric 'sales'"),
                (good + "\n" + #"{"key":"u2","metric":"click","value":2}"#, "application/x-ndjson", 400, "line 2: metric 'click' is binary"),
                (good + "\n" + #"{"key":"u2","metric":"revenue","value":"12"}"#, "application/x-ndjson", 400, "line 2: value is required (a number)"),
                (good + "\n" + #"{"metric":"revenue","value":12}"#, "application/x-ndjson", 400, "line 2: give request_id or key"),
                (
                    good + "\n" + #"{"key":"u2","metric":"revenue","value":1,"at":"yesterday"}"#, "application/x-ndjson", 400,
                    "line 2: at must be an RFC 3339 time"
                ),
                (good + "\n{not json", "application/x-ndjson", 400, "line 2: not valid JSON"),
                ("[" + good + #", {"key":"u3","metric":"click","value":0.5}]"#, "application/json", 400, "line 2: metric 'click' is binary"),
                ("", "application/x-ndjson", 400, "the body is empty"),
                (good, "text/plain", 415, "content-type text/plain is not accepted"),
            ]
            for (body, type, status, reason) in cases {
                let response = try await self.post(admin, body, type: type)
                #expect(response.status == status && response.text.contains(reason), "\(status) \(reason): got \(response.status) \(response.text)")
            }
            let big = String(repeating: good + "\n", count: (16 << 20) / good.utf8.count + 10)
            let tooLarge = try await self.post(admin, big)
            #expect(tooLarge.status == 413 && tooLarge.text.contains("over 16 MiB"), "\(tooLarge.status)")
            // Nothing of a refused batch was stored; a good one is, and its replay is ignored.
            let first = try await self.post(
                admin,
                good + "\n" + #"{"request_id":"r-9","metric":"revenue","value":12.5,"at":"2026-12-01T10:00:00.5+01:00"}"#
            )
            #expect(first.status == 200 && first.text == #"{"stored":2,"duplicates":0}"#, "\(first.text)")
            let again = try await self.post(admin, "[" + good + "]", type: "application/json")
            #expect(again.status == 200 && again.text == #"{"stored":0,"duplicates":1}"#, "\(again.text)")
            // Batches are parsed and stored on a thread of lower priority than the event loops.
            let threads = Self.threads()
            #expect(
                threads.contains {
                    $0.name == OutcomeIngestor.threadName && $0.nice == Int(OutcomeIngestor.niceness) && $0.policy == Int(OutcomeIngestor.schedIdle)
                },
                "\(threads)"
            )
            #expect(threads.filter { $0.name.hasPrefix("NIO-ELT-") }.allSatisfy { $0.nice == 0 && $0.policy == 0 }, "\(threads)")
            await admin.close()
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            let rows = try queue.read { db in try Row.fetchAll(db, sql: "SELECT key, request_id, metric, value, at_us FROM outcomes ORDER BY id") }
            #expect(rows.count == 2)
            #expect(rows.last?["at_us"] as Int64? == 1_796_115_600_500_000, "2026-12-01T09:00:00.5Z")
        }
    }

    /// This process's threads: name, niceness and scheduling policy (`/proc/self/task/*/stat`,
    /// fields 19 and 41).
    static func threads() -> [(name: String, nice: Int, policy: Int)] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            guard let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { return nil }
            // After "pid (comm) ": state is field 3, so niceness (field 19) is the 17th after comm.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 38, let nice = Int(fields[16]), let policy = Int(fields[38]) else { return nil }
            return (String(stat[stat.index(after: open)..<close]), nice, policy)
        }
    }

    @Test func theOutcomesTokenIsRequiredWhenSet() async throws {
        try await withSidecar(
            baseline: .responder { _ in .json("{}") },
            candidates: [("c", .responder { _ in .json("{}") })],
            configure: Self.configure,
            environment: ["SHADOWD_OUTCOMES_TOKEN": "s3cret"]
        ) { sidecar, _, _ in
            let admin = try await HTTPTestClient.connect(port: try #require(await sidecar.sidecar.admin?.address.port()))
            let body = #"{"key":"u1","metric":"click","value":1}"#
            #expect(try await self.post(admin, body).status == 401)
            #expect(try await self.post(admin, body, token: "wrong").status == 401)
            #expect(try await self.post(admin, body, token: "s3cret").status == 200)
            await admin.close()
        }
    }
}
