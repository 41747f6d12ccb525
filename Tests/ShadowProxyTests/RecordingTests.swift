import Foundation
import GRDB
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// Exactly one record per mirrored request and candidate, readable while the daemon writes.
@Suite(.timeLimit(.minutes(3))) struct RecordingTests {
    static let model = ModelFixture(spec: ModelSpec(version: "1"))
    static let challenger = ModelFixture(spec: ModelSpec(version: "2", disagreeRate: 0.2))

    @Test func everyMirroredRequestIsRecordedOncePerCandidate() async throws {
        try await withSidecar(
            baseline: .responder(Self.model.responder),
            candidates: [("same", .responder(Self.model.responder)), ("new", .responder(Self.challenger.responder))],
            configure: {
                $0.routes[0].scorer = ScorerConfiguration(kind: .json, ignorePaths: ["$.model_version"])
                $0.routes[0].segment = .header("X-Tenant")
            }
        ) { sidecar, _, _ in
            let requests = ReplayRequest.generated(count: 600).enumerated().map { index, request in
                var request = request
                request.headers["x-request-id"] = "rq-\(index)"
                if index % 3 != 2 { request.headers["x-tenant"] = index % 3 == 0 ? "even" : "odd" }
                return request
            }
            let outcome = try await Replayer(port: sidecar.port, requests: requests, concurrency: 8).run()
            #expect(outcome.statusCounts == [200: 600])
            await sidecar.stop()
            let queue = try DatabaseQueue(path: sidecar.databasePath)
            try await queue.read { db in
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") == 1200)
                #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT request_id) FROM pairs") == 600)
                #expect(
                    try Int.fetchOne(
                        db,
                        sql: "SELECT count(*) FROM (SELECT request_id FROM pairs GROUP BY request_id, candidate HAVING count(*) > 1)"
                    ) == 0
                )
                let ids = Set(try String.fetchAll(db, sql: "SELECT DISTINCT request_id FROM pairs"))
                #expect(ids == Set((0..<600).map { "rq-\($0)" }))
                // The same model against itself never diverges; the challenger at its known rate.
                #expect(try Int.fetchOne(db, sql: "SELECT sum(diverged) FROM pairs WHERE candidate = 'same'") == 0)
                let expected = requests.filter { Self.challenger.plannedOutcome(forBody: $0.body) == .disagree }.count
                #expect(expected > 60 && expected < 180)
                #expect(try Int.fetchOne(db, sql: "SELECT sum(diverged) FROM pairs WHERE candidate = 'new'") == expected)
                // The segment header is recorded per exchange (absent → NULL); differing paths per pair.
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE segment = 'even'") == 400)
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE segment IS NULL") == 400)
                #expect(
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs WHERE diverged AND json_array_length(differing_paths) > 0") == expected
                )
                let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM pairs WHERE request_id = 'rq-5' AND candidate = 'new'"))
                #expect(row["method"] as String == "POST")
                #expect(row["path"] as String == "/v2/models/classifier/infer")
                #expect(row["baseline_status"] as Int == 200)
                #expect(row["candidate_status"] as Int == 200)
                #expect(row["baseline_version"] as String == "base-v")
                #expect(row["candidate_version"] as String == "new-v")
                #expect(row["config_revision"] as String == "test")
                #expect((row["baseline_latency_us"] as Int64?) ?? 0 > 0)
                #expect((row["candidate_latency_us"] as Int64?) ?? 0 > 0)
                #expect(
                    try String.fetchOne(db, sql: "SELECT json_extract(request_body, '$.id') FROM pairs WHERE request_id = 'rq-5' LIMIT 1") == "req-5"
                )
                #expect(
                    try String.fetchOne(
                        db,
                        sql: "SELECT json_extract(candidate_body, '$.model_version') FROM pairs WHERE request_id = 'rq-5' AND candidate = 'new'"
                    ) == "2"
                )
                #expect(try Int.fetchOne(db, sql: "SELECT sum(count) FROM coverage WHERE reason = 'compared'") == 1200)
            }
            try queue.close()
        }
    }

    @Test func unsampledRequestsAreCountedNotLost() async throws {
        try await withSidecar(
            baseline: .responder(Self.model.responder),
            candidates: [("c", .responder(Self.model.responder))],
            configure: { $0.routes[0].samplePercent = 0 }
        ) { sidecar, _, candidates in
            let outcome = try await Replayer(port: sidecar.port, requests: ReplayRequest.generated(count: 50), concurrency: 2).run()
            #expect(outcome.completed == 50)
            await sidecar.stop()
            #expect(candidates[0]?.requestCount == 0)
            let store = try sidecar.openStore()
            #expect(try store.coverageTotals() == ["not_sampled": 50])
            try store.close()
        }
    }

    @Test func aConcurrentSQLiteShellReaderSeesConsistentDataAndDoesNotStallTheWriter() async throws {
        try await withSidecar(
            baseline: .responder(Self.model.responder),
            candidates: [("c", .responder(Self.challenger.responder))]
        ) { sidecar, _, _ in
            let load = Task {
                try await Replayer(port: sidecar.port, requests: ReplayRequest.generated(count: 2_000), concurrency: 8).run()
            }
            var counts: [Int] = []
            var orphans = 0
            while !load.isCancelled {
                let output = try await runSQLite(
                    sidecar.databasePath,
                    """
                    SELECT count(*) FROM pairs;
                    SELECT count(*) FROM shadows s LEFT JOIN exchanges e ON e.id = s.exchange_id WHERE e.id IS NULL;
                    """
                )
                let lines = output.split(separator: "\n").compactMap { Int($0) }
                if lines.count == 2 {
                    counts.append(lines[0])
                    orphans += lines[1]
                }
                if counts.last == 2_000 { break }
                try await Task.sleep(for: .milliseconds(50))
                if counts.count > 400 { break }
            }
            let outcome = try await load.value
            #expect(outcome.completed == 2_000)
            #expect(orphans == 0, "a reader saw a candidate row without its exchange")
            #expect(counts == counts.sorted(), "counts went backwards: \(counts)")
            #expect(counts.count >= 2)
            await sidecar.stop()
            #expect(
                try await runSQLite(sidecar.databasePath, "SELECT count(*) FROM pairs;").trimmingCharacters(in: .whitespacesAndNewlines) == "2000"
            )
        }
    }
}

/// Runs the `sqlite3` shell read-only against `path`.
func runSQLite(_ path: String, _ sql: String) async throws -> String {
    let child = try ChildProcess("/usr/bin/sqlite3", ["-readonly", path, sql])
    _ = await child.waitUntilExit()
    return child.stdout
}
