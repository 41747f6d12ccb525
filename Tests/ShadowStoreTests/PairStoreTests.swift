import Foundation
import GRDB
import Logging
import ServiceLifecycle
import ShadowFixtures
import Testing

@testable import ShadowCore
@testable import ShadowStore

@Suite struct PairStoreTests {
    @Test func opensInWALWithTheDocumentedPragmas() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            let pragmas = try store.pragmas()
            #expect(pragmas["journal_mode"] == "wal")
            #expect(pragmas["synchronous"] == "1")  // NORMAL
            #expect(Int(pragmas["busy_timeout"] ?? "0")! >= 5000)
            #expect(pragmas["auto_vacuum"] == "2")  // INCREMENTAL
            #expect(pragmas["user_version"] == "\(PairStore.schemaVersion)")
            try store.write([makeRecord(id: "x")], coverage: [:])
            // The -wal and -shm files take the database file's mode (group-readable, nobody else).
            for suffix in ["", "-wal", "-shm"] {
                let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/db.sqlite" + suffix)
                #expect((attributes[.posixPermissions] as? Int) == 0o640, "db.sqlite\(suffix)")
            }
            try store.close()
        }
    }

    @Test func pairsViewHasTheContractColumns() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            try store.write(
                [makeRecord(id: "a"), makeRecord(id: "b", candidate: #"{"label":"dog"}"#), makeRecord(id: "c", candidateError: .timeout)],
                coverage: [.init(minute: 0, route: "classifier", candidate: "v2", reason: .queueFull): 4]
            )
            try store.close()
            let reader = try DatabaseQueue(path: directory + "/db.sqlite")
            try await reader.read { db in
                let columns = try db.columns(in: "pairs").map(\.name)
                for required in [
                    "request_id", "route", "candidate", "received_at", "method", "path", "baseline_status", "candidate_status",
                    "baseline_latency_us", "candidate_latency_us", "baseline_body", "candidate_body", "candidate_error",
                    "divergence", "diverged", "scorer",
                ] {
                    #expect(columns.contains(required), "pairs lacks \(required)")
                }
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM pairs ORDER BY request_id")
                #expect(rows.count == 3)
                #expect(rows[0]["divergence"] as Double? == 0 && rows[0]["diverged"] as Int? == 0)
                #expect(rows[1]["diverged"] as Int? == 1)
                #expect(rows[2]["divergence"] as Double? == nil && rows[2]["candidate_error"] as String? == "timeout")
                #expect(rows[0]["received_at"] as String? == "2023-11-14T22:13:20.000Z")
                // JSON bodies are TEXT, so json_extract works on them.
                #expect(try String.fetchOne(db, sql: "SELECT json_extract(candidate_body, '$.label') FROM pairs WHERE request_id = 'b'") == "dog")
                #expect(try String.fetchOne(db, sql: "SELECT typeof(baseline_body) FROM pairs WHERE request_id = 'a'") == "text")
                let coverage = try Row.fetchAll(db, sql: "SELECT reason, count FROM coverage ORDER BY reason")
                #expect(coverage.map { $0["reason"] as String } == ["candidate_error", "compared", "queue_full"])
                #expect(coverage.map { $0["count"] as Int } == [1, 2, 4])
            }
        }
    }

    /// A candidate answer equal to the baseline's is stored once; the `pairs` view still shows
    /// both bodies, and `json_extract` still works on the candidate's.
    @Test func anAnswerEqualToTheBaselinesIsStoredOnce() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            try store.write(
                [
                    makeRecord(id: "same"), makeRecord(id: "other", candidate: #"{"label":"dog"}"#),
                    makeRecord(id: "blob", baseline: "not json \u{1}", candidate: "not json \u{1}"),
                    makeRecord(id: "failed", candidateError: .timeout),
                ],
                coverage: [:]
            )
            try store.close()
            let reader = try DatabaseQueue(path: directory + "/db.sqlite")
            defer { try? reader.close() }
            try await reader.read { db in
                let stored = try Row.fetchAll(
                    db,
                    sql: "SELECT e.request_id, s.body, s.body_same, s.body_bytes FROM shadows s JOIN exchanges e ON e.id = s.exchange_id ORDER BY 1"
                )
                let byID = Dictionary(uniqueKeysWithValues: stored.map { ($0["request_id"] as String, $0) })
                #expect(byID["same"]?["body"] as DatabaseValue? == .null && byID["same"]?["body_same"] as Int? == 1)
                #expect(byID["same"]?["body_bytes"] as Int? == 15, "the candidate's size is kept")
                #expect(byID["blob"]?["body_same"] as Int? == 1)
                #expect(byID["other"]?["body_same"] as Int? == nil && byID["other"]?["body"] as String? == #"{"label":"dog"}"#)
                #expect(byID["failed"]?["body_same"] as Int? == nil)
                let pairs = try Row.fetchAll(db, sql: "SELECT request_id, candidate_body, typeof(candidate_body) AS type FROM pairs ORDER BY 1")
                let shown = Dictionary(uniqueKeysWithValues: pairs.map { ($0["request_id"] as String, $0) })
                #expect(shown["same"]?["candidate_body"] as String? == #"{"label":"cat"}"# && shown["same"]?["type"] as String? == "text")
                #expect(shown["blob"]?["type"] as String? == "blob")
                #expect(try String.fetchOne(db, sql: "SELECT json_extract(candidate_body, '$.label') FROM pairs WHERE request_id = 'same'") == "cat")
            }
        }
    }

    @Test func nonJSONBodiesAreStoredAsBlobs() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            try store.write([makeRecord(id: "x", candidate: "not json \u{1}")], coverage: [:])
            let reader = try DatabaseQueue(path: directory + "/db.sqlite")
            let type = try await reader.read { try String.fetchOne($0, sql: "SELECT typeof(candidate_body) FROM pairs") }
            #expect(type == "blob")
            try store.close()
        }
    }

    @Test func coverageCountsAccumulateAcrossBatches() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            let key = CoverageCounter.Key(minute: 60, route: "r", candidate: "c", reason: .notSampled)
            try store.write([], coverage: [key: 3])
            try store.write([], coverage: [key: 4])
            #expect(try store.coverageTotals()["not_sampled"] == 7)
            try store.close()
        }
    }

    @Test func upgradesAVersion1DatabaseKeepingItsPairs() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/old.sqlite"
            // A file as the first release left it: migration 1 only, one pair.
            let queue = try DatabaseQueue(path: path)
            try await queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL")
                try db.execute(sql: PairStore.migrations[0].sql)
                try db.execute(sql: "PRAGMA user_version = 1")
                try db.execute(
                    sql: """
                        INSERT INTO exchanges (id, request_id, route, config_revision, received_at_us, method, path, request_body_bytes,
                            baseline_version, baseline_body_bytes) VALUES (1, 'old-1', 'r', 'rev', 1, 'POST', '/', 0, '1', 0);
                        INSERT INTO shadows (exchange_id, candidate, candidate_version, body_bytes, outcome, divergence, diverged)
                            VALUES (1, 'c', '2', 0, 'compared', 0.5, 1);
                        """
                )
            }
            try queue.close()
            let store = try PairStore(path: path)
            #expect(try store.pragmas()["user_version"] == "\(PairStore.schemaVersion)")
            try store.write([makeRecord(id: "new-1", candidate: #"{"label":"dog"}"#)], coverage: [:])
            try store.close()
            let reader = try DatabaseQueue(path: path)
            try await reader.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT request_id, segment, differing_paths FROM pairs ORDER BY request_id")
                #expect(rows.map { $0["request_id"] as String } == ["new-1", "old-1"])
                #expect(rows[0]["differing_paths"] as String? == #"["$.label"]"#)
                #expect(rows[1]["segment"] as String? == nil && rows[1]["differing_paths"] as String? == nil)
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM path_stats") == 1)
            }
            try reader.close()
        }
    }

    @Test func refusesANewerSchema() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            try PairStore(path: path).close()
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: "PRAGMA user_version = 99") }
            try queue.close()
            #expect {
                _ = try PairStore(path: path)
            } throws: { error in
                (error as? StoreError)?.code == .newerSchema && "\(error)".contains("schema version 99")
            }
        }
    }

    @Test func refusesAForeignDatabase() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/other.sqlite"
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: "CREATE TABLE customers(id)") }
            try queue.close()
            #expect {
                _ = try PairStore(path: path)
            } throws: { error in
                (error as? StoreError)?.code == .notShadowDatabase
            }
        }
    }

    @Test func aLongReaderDoesNotBlockTheWriter() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            let store = try PairStore(path: path)
            try store.write([makeRecord(id: "first")], coverage: [:])
            let reader = try DatabasePool(path: path)
            try await reader.read { db in
                // A read transaction is open on a snapshot while the writer commits more batches.
                let before = try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs")
                for batch in 0..<20 {
                    try store.write((0..<50).map { makeRecord(id: "b\(batch)-\($0)") }, coverage: [:])
                }
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") == before)
            }
            #expect(try await reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pairs") } == 1001)
            try reader.close()
            try store.close()
        }
    }

    @Test func theWriterDrainsEverythingOnGracefulShutdown() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            let queue = RecordQueue<ExchangeRecord>(capacity: 10_000)
            let coverage = CoverageCounter()
            let writer = RecordWriter(
                store: store,
                queue: queue,
                coverage: coverage,
                storage: StorageConfiguration(batchSize: 100),
                logger: Logger(label: "test")
            )
            let group = ServiceGroup(services: [writer], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                for index in 0..<2_500 { #expect(queue.offer(makeRecord(id: "r\(index)"))) }
                coverage.add(route: "classifier", candidate: "v2", reason: .notSampled, atMicros: 0, count: 5)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let summaries = try store.candidateSummaries()
            #expect(summaries.first?.pairs == 2_500)
            #expect(try store.coverageTotals() == ["compared": 2_500, "not_sampled": 5])
            #expect(writer.statistics.snapshot().written == 2_500)
            try store.close()
        }
    }

    /// Under a burst every record is written once, scored against its own answers, in the order
    /// it was queued; a lone record is written without waiting for another to arrive.
    @Test func theWriterKeepsOrderAndWritesALoneRecordAtOnce() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            let queue = RecordQueue<ExchangeRecord>(capacity: 100_000)
            let writer = RecordWriter(
                store: store,
                queue: queue,
                coverage: CoverageCounter(),
                storage: StorageConfiguration(batchSize: 50, flushInterval: .milliseconds(1)),
                logger: Logger(label: "test")
            )
            let group = ServiceGroup(services: [writer], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // One record alone: written although nothing follows it (however long a busy
                // test machine takes to run the writer, no second record is ever offered first).
                #expect(queue.offer(makeRecord(id: "lone")))
                #expect(try await eventually(within: .seconds(120)) { writer.statistics.snapshot().written == 1 })
                // A burst: many batches queued at once.
                for index in 0..<5_000 {
                    #expect(queue.offer(makeRecord(id: String(format: "r%05d", index), candidate: index % 3 == 0 ? "{}" : #"{"label":"cat"}"#)))
                }
                #expect(try await eventually(within: .seconds(120)) { writer.statistics.snapshot().written == 5_001 })
                // Scoring and writing run on threads of their own, off the cooperative pool.
                #expect(Self.threadNames().contains("shadowd-score"))
                #expect(Self.threadNames().contains("shadowd-write"))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let reader = try DatabaseQueue(path: directory + "/db.sqlite")
            let ids = try await reader.read { try String.fetchAll($0, sql: "SELECT request_id FROM exchanges ORDER BY id") }
            #expect(ids == ["lone"] + (0..<5_000).map { String(format: "r%05d", $0) })
            let diverged = try await reader.read { try Int.fetchOne($0, sql: "SELECT sum(diverged) FROM pairs") }
            #expect(diverged == 1_667, "each record scored against its own answers")
            try reader.close()
            try store.close()
        }
    }
}

extension PairStoreTests {
    /// This process's thread names (`/proc/self/task/*/comm`).
    static func threadNames() -> Set<String> {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return Set(
            tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        )
    }
}

@Suite struct RetentionTests {
    /// The service prunes again and again, not once: a pair that turns old after its first pass
    /// is gone by a later one; and it returns on graceful shutdown.
    @Test func theRetentionServiceRunsItsPassPeriodically() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            let store = try PairStore(path: path)
            let old: Int64 = 1_600_000_000_000_000
            try store.write([makeRecord(id: "before-start", at: old)], coverage: [:])
            let storage = StorageConfiguration(path: path, retentionAge: .seconds(86_400), retentionInterval: .milliseconds(20))
            let service = RetentionService(store: store, storage: storage, logger: Logger(label: "test"))
            let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
            func count(_ id: String) throws -> Int {
                try DatabaseQueue(path: path).read {
                    try Int.fetchOne($0, sql: "SELECT count(*) FROM exchanges WHERE request_id = ?", arguments: [id]) ?? 0
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                var gone = false
                for _ in 0..<1_000 where !gone {
                    gone = try count("before-start") == 0
                    if !gone { try await Task.sleep(for: .milliseconds(10)) }
                }
                #expect(gone, "the first pass deleted the old pair")
                // Written after that pass: only a later pass can delete it. A recent one stays.
                try store.write(
                    [makeRecord(id: "after-first-pass", at: old), makeRecord(id: "recent", at: Int64(Date().timeIntervalSince1970 * 1e6))],
                    coverage: [:]
                )
                gone = false
                for _ in 0..<1_000 where !gone {
                    gone = try count("after-first-pass") == 0
                    if !gone { try await Task.sleep(for: .milliseconds(10)) }
                }
                #expect(gone, "a later pass deleted the pair that turned old")
                #expect(try count("recent") == 1)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            try store.close()
        }
    }

    @Test func pruningByAgeDeletesOldPairsAndShrinksTheFile() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            let store = try PairStore(path: path)
            let old: Int64 = 1_600_000_000_000_000
            let recent: Int64 = 1_700_000_000_000_000
            for batch in 0..<10 {
                try store.write((0..<300).map { makeRecord(id: "old-\(batch)-\($0)", at: old + Int64($0)) }, coverage: [:])
            }
            try store.write(
                (0..<100).map { makeRecord(id: "new-\($0)", at: recent) },
                coverage: [.init(minute: old / 1_000_000, route: "classifier", candidate: "v2", reason: .queueFull): 3]
            )
            try store.checkpoint()
            let result = try store.prune(olderThanMicros: recent - 1, maxBytes: nil, chunk: 500)
            #expect(result.exchangesDeleted == 3_000)
            #expect(result.bytesAfter < result.bytesBefore / 3, "the file shrinks: \(result.bytesBefore) → \(result.bytesAfter)")
            #expect(try store.candidateSummaries().first?.pairs == 100)
            #expect(try store.coverageTotals()["queue_full"] == nil, "old coverage rows go too")
            try store.close()
            let queue = try DatabaseQueue(path: path)
            #expect(try await queue.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")
            #expect(try await queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM shadows") } == 100, "candidate rows cascade")
            try queue.close()
        }
    }

    @Test func pruningBySizeKeepsTheNewestPairs() async throws {
        try await withTemporaryDirectory { directory in
            let store = try PairStore(path: directory + "/db.sqlite")
            let big = #"{"label":"cat","pad":""# + String(repeating: "x", count: 2000) + #""}"#
            for batch in 0..<10 {
                try store.write(
                    (0..<200).map { makeRecord(id: "r-\(batch)-\($0)", baseline: big, candidate: big, at: Int64(batch * 1000 + $0)) },
                    coverage: [:]
                )
            }
            let result = try store.prune(olderThanMicros: nil, maxBytes: 2 << 20)
            #expect(try store.logicalBytes() <= 2 << 20)
            #expect(result.exchangesDeleted > 0 && result.exchangesDeleted < 2_000)
            let newest = try store.candidateSummaries().first?.pairs ?? 0
            #expect(newest == 2_000 - result.exchangesDeleted)
            try store.close()
            // The ones kept are exactly the newest: not merely the right number of them.
            let queue = try DatabaseQueue(path: directory + "/db.sqlite")
            let kept = try queue.read { try Int64.fetchAll($0, sql: "SELECT received_at_us FROM exchanges ORDER BY received_at_us") }
            try queue.close()
            let all = (0..<10).flatMap { batch in (0..<200).map { Int64(batch * 1000 + $0) } }.sorted()
            #expect(kept == Array(all.suffix(kept.count)), "kept \(kept.count), oldest kept \(kept.first ?? -1)")
        }
    }
}

@Suite struct WALGrowthTests {
    /// A reader holding a snapshot lets the WAL grow (SQLite cannot checkpoint past it), but the
    /// writer keeps committing meanwhile, and once the reader ends the WAL falls back under
    /// `journal_size_limit` (64 MiB) at the next checkpoint.
    @Test func aLongReaderCannotLeaveTheWALLarge() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            let store = try PairStore(path: path)
            let big = #"{"pad":""# + String(repeating: "y", count: 8000) + #""}"#
            @Sendable func walBytes() -> Int { (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0 }
            let reader = try DatabaseQueue(
                path: path,
                configuration: {
                    var c = Configuration()
                    c.readonly = true
                    return c
                }()
            )
            let batches = try await reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM exchanges")  // the snapshot starts here
                var batch = 0
                // Past the 4000-page (64 MiB) auto-checkpoint point and the size limit.
                while walBytes() <= 72 << 20, batch < 400 {
                    batch += 1
                    let started = ContinuousClock.now
                    try store.write((0..<50).map { makeRecord(id: "r\(batch)-\($0)", baseline: big, candidate: big) }, coverage: [:])
                    #expect(ContinuousClock.now - started < .seconds(2), "the writer is never held by the reader")
                }
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM exchanges") == 0, "the reader keeps its snapshot")
                return batch
            }
            #expect(walBytes() > 64 << 20, "the WAL grew while the reader held it: \(walBytes())")
            for batch in 0..<10 {
                try store.write((0..<50).map { makeRecord(id: "after\(batch)-\($0)", baseline: big, candidate: big) }, coverage: [:])
            }
            #expect(walBytes() <= 68 << 20, "after the reader, the WAL is truncated to about journal_size_limit: \(walBytes())")
            #expect(try store.candidateSummaries().first?.pairs == batches * 50 + 500)
            try reader.close()
            try store.close()
        }
    }
}

@Suite struct RampControllerTests {
    @Test func theStageSurvivesARestartAndAChangedRampStartsAfresh() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/ramp.sqlite"
            var route = RouteConfiguration(
                name: "classifier",
                prefix: "/",
                baseline: BaselineConfiguration(url: UpstreamURL(host: "127.0.0.1", port: 1)),
                candidates: [CandidateConfiguration(name: "v2", url: UpstreamURL(host: "127.0.0.1", port: 2))]
            )
            route.ramp = RampConfiguration(stages: [
                .init(percent: 5, minDuration: .zero, minPairs: 50), .init(percent: 100, minDuration: .zero, minPairs: 50),
            ])
            let events = GatingEventLog()
            let store = try PairStore(path: path)
            let controller = try RampController(routes: [route], store: store, events: events, factory: nil, logger: Logger(label: "test"))
            #expect(controller.percent(route: "classifier") == 5)
            let batch = (0..<1_000).map { makeRecord(id: "r\($0)") }.map { record -> ExchangeRecord in
                var record = record
                record.route = "classifier"
                // As fast as the baseline: the latency guardrail holds.
                record.candidates[0].result.latencyMicros = record.baseline.latencyMicros
                return record
            }
            let summary = try store.write(batch, coverage: [:])
            controller.observe(batch, summary: summary)
            #expect(controller.percent(route: "classifier") == 100)
            #expect(events.drain().map(\.kind) == ["ramp"])
            try store.close()

            let reopened = try PairStore(path: path)
            let resumed = try RampController(routes: [route], store: reopened, events: events, factory: nil, logger: Logger(label: "test"))
            #expect(resumed.percent(route: "classifier") == 100, "resumed from the database")
            route.ramp = RampConfiguration(stages: [
                .init(percent: 1, minDuration: .zero, minPairs: 50), .init(percent: 100, minDuration: .zero, minPairs: 50),
            ])
            try resumed.apply([route])
            #expect(resumed.percent(route: "classifier") == 1, "a different stage list starts at its first stage")
            try reopened.close()
        }
    }
}
