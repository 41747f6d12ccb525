import Foundation
import GRDB
import ShadowCore
import ShadowFixtures
import ShadowStore
import Testing

@testable import ShadowProxy

/// A full disk pauses recording, never the proxy; recording resumes by itself.
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
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await admin.send(path: "/readyz").status == 200, "recording resumed by itself")
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
}
