import Foundation
import GRDB
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// A full disk pauses recording, never the proxy; recording resumes by itself. A database
/// deleted or replaced while running is noticed and recording continues in a new file.
@Suite(.timeLimit(.minutes(2))) struct StorageFaultTests {
    @Test func aFullDiskDegradesRecordingAndItRecovers() async throws {
        let model = ModelFixture(spec: ModelSpec(version: "1"))
        try await withSidecar(baseline: .responder(model.responder), candidates: [("c", .responder(model.responder))]) { sidecar, _, _ in
            let requests = ReplayRequest.generated(count: 150)
            let adminPort = try #require(await sidecar.sidecar.admin?.address.port())
            let admin = try await HTTPTestClient.connect(port: adminPort)
            #expect(try await admin.send(path: "/readyz").status == 200)

            try sidecar.sidecar.store.simulateFullDisk(true)
            // Probe readiness while the load runs: a batch that still fits in free space inside
            // existing pages may succeed, so degradation is seen between batches, not at one instant.
            async let during = Replayer(port: sidecar.port, requests: Array(requests[0..<75]), concurrency: 4).run()
            var degraded: HTTPTestResponse?
            for _ in 0..<200 where degraded == nil {
                let probe = try await admin.send(path: "/readyz")
                if probe.status == 503 { degraded = probe }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await during.statusCounts == [200: 75], "the baseline path never notices the disk")
            #expect(degraded?.text.contains("recording failing") == true, "readyz never reported the failing writer")

            try sidecar.sidecar.store.simulateFullDisk(false)
            let after = try await Replayer(port: sidecar.port, requests: Array(requests[75...]), concurrency: 4).run()
            #expect(after.statusCounts == [200: 75])
            var ready = 0
            for _ in 0..<500 where ready != 200 {
                ready = try await admin.send(path: "/readyz").status
                if ready != 200 { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(ready == 200, "recording resumed by itself")
            await admin.close()
            await sidecar.stop()

            let queue = try DatabaseQueue(path: sidecar.databasePath)
            defer { try? queue.close() }
            try await queue.read { (db: Database) throws in
                #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
                let totals = try Row.fetchAll(db, sql: "SELECT reason, sum(count) AS n FROM coverage GROUP BY reason")
                    .reduce(into: [String: Int]()) { $0[$1["reason"]] = $1["n"] }
                let failed = totals["write_failed"] ?? 0
                let compared = totals["compared"] ?? 0
                #expect(failed > 0, "the lost records are counted: \(totals)")
                #expect(compared + failed == 150, "every request is accounted for: \(totals)")
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") == compared)
            }
        }
    }

    @Test func aDatabaseDeletedWhileRunningIsRecreatedAndRecordingContinues() async throws {
        let model = ModelFixture(spec: ModelSpec(version: "1"))
        try await withSidecar(baseline: .responder(model.responder), candidates: [("c", .responder(model.responder))]) { sidecar, _, _ in
            let requests = ReplayRequest.generated(count: 120)
            let before = try await Replayer(port: sidecar.port, requests: Array(requests[0..<40]), concurrency: 4).run()
            #expect(before.statusCounts == [200: 40])
            #expect(try await eventually { sidecar.sidecar.writer.statistics.snapshot().written == 40 })

            // Read-only for its owner: the open descriptor keeps writing (nothing to degrade).
            let path = sidecar.databasePath
            #expect(chmod(path, 0o440) == 0)
            let readOnly = try await Replayer(port: sidecar.port, requests: Array(requests[40..<60]), concurrency: 4).run()
            #expect(readOnly.statusCounts == [200: 20])
            #expect(try await eventually { sidecar.sidecar.writer.statistics.snapshot().written == 60 })

            // Deleted, as an operator cleaning up might: SQLite would write on into the unlinked file.
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            let after = try await Replayer(port: sidecar.port, requests: Array(requests[60...]), concurrency: 4).run()
            #expect(after.statusCounts == [200: 60], "the baseline path never notices")
            #expect(try await eventually { sidecar.sidecar.writer.statistics.snapshot().written == 120 })
            #expect(sidecar.sidecar.writer.statistics.databaseReopened == 1)
            await sidecar.stop()

            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            try await queue.read { (db: Database) throws in
                #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
                // The new file holds what came after the deletion (with the current schema).
                #expect(try Int.fetchOne(db, sql: "PRAGMA user_version") == PairStore.schemaVersion)
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") == 60)
            }
        }
    }
}
