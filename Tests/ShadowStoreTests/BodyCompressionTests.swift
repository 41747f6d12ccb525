import Foundation
import GRDB
import Logging
import PropertyBased
import ShadowCore
import ShadowExport
import ShadowFixtures
import Testing

@testable import ShadowStore

/// `storage.bodies: compressed`: bodies stored as the `sqlite3` shell's `sqlar_compress` writes
/// them, read back by the shell itself and by every reader of shadowd (replay, report, export).
@Suite struct BodyCompressionTests {
    /// A JSON answer like a tensor server's: ~1.4 KiB, compressible as such answers are.
    static func tensorAnswer(_ seed: Int, label: String = "cat") -> String {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        let values = (0..<96).map { _ -> String in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return String(format: "%.6f", Double(state % 1_000_000) / 1_000_000)
        }
        return
            #"{"model_name":"classifier","label":"\#(label)","outputs":[{"name":"probabilities","datatype":"FP32","data":[\#(values.joined(separator: ","))]}]}"#
    }

    /// Four pairs: large and equal answers, large and different ones, small ones, and a body
    /// zlib cannot shrink. Returns the bodies each pair was given (request, baseline, candidate).
    func writeFour(to store: PairStore) throws -> [String: [[UInt8]]] {
        var random = SystemRandomNumberGenerator()
        let noise = (0..<1_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        var records = [
            makeRecord(id: "same", baseline: Self.tensorAnswer(1), candidate: Self.tensorAnswer(1)),
            makeRecord(id: "different", baseline: Self.tensorAnswer(2), candidate: Self.tensorAnswer(3, label: "dog")),
            makeRecord(id: "small"),
            makeRecord(id: "noise", baseline: Self.tensorAnswer(4)),
        ]
        records[0].requestBody = CapturedBody(bytes: Array(Self.tensorAnswer(5).utf8))
        records[3].candidates[0].result.body = CapturedBody(bytes: noise)
        try store.write(records, coverage: [:], compressBodies: true)
        return Dictionary(
            uniqueKeysWithValues: records.map { ($0.requestID, [$0.requestBody.bytes, $0.baseline.body.bytes, $0.candidates[0].result.body.bytes]) }
        )
    }

    @Test func theSQLiteShellReadsCompressedBodiesBack() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            let store = try PairStore(path: path)
            let sent = try self.writeFour(to: store)
            try store.close()
            // Stored: the large JSON bodies compressed (BLOBs shorter than their length before),
            // the small ones and the one zlib cannot shrink as they are.
            let reader = try DatabaseQueue(path: path)
            defer { try? reader.close() }
            let rows = try reader.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT request_id, request_body_zlib, baseline_body_zlib, candidate_body_zlib, typeof(baseline_body) AS type,
                            length(baseline_body) AS stored, typeof(candidate_body) AS candidate_type
                        FROM pairs
                        """
                )
            }
            let byID = Dictionary(uniqueKeysWithValues: rows.map { ($0["request_id"] as String, $0) })
            #expect(byID["same"]?["request_body_zlib"] as Int? == sent["same"]![0].count)
            #expect(byID["same"]?["baseline_body_zlib"] as Int? == sent["same"]![1].count)
            #expect(byID["same"]?["candidate_body_zlib"] as Int? == sent["same"]![1].count, "an equal answer is the baseline's, compressed")
            #expect(byID["same"]?["type"] as String? == "blob")
            #expect((byID["same"]?["stored"] as Int?).map { $0 < sent["same"]![1].count * 3 / 4 } == true)
            #expect(byID["different"]?["candidate_body_zlib"] as Int? == sent["different"]![2].count)
            #expect(byID["small"]?["baseline_body_zlib"] as Int? == nil && byID["small"]?["type"] as String? == "text")
            #expect(byID["noise"]?["candidate_body_zlib"] as Int? == nil && byID["noise"]?["candidate_type"] as String? == "blob")
            #expect(byID["noise"]?["baseline_body_zlib"] as Int? != nil)
            // The shell's own sqlar_uncompress gives every body back byte for byte.
            let shell = try await runSQLite(
                path,
                """
                SELECT request_id, hex(sqlar_uncompress(request_body, request_body_zlib)), hex(sqlar_uncompress(baseline_body, baseline_body_zlib)),
                    hex(sqlar_uncompress(candidate_body, candidate_body_zlib)) FROM pairs ORDER BY request_id;
                """
            )
            let expected = sent.keys.sorted().map { id in ([id] + sent[id]!.map(Self.hex)).joined(separator: "|") }
            #expect(shell.split(separator: "\n").map(String.init) == expected)
            // And JSON functions work on them once inflated, in the shell as in shadowd.
            let label =
                "SELECT json_extract(CAST(sqlar_uncompress(candidate_body, candidate_body_zlib) AS TEXT), '$.label') FROM pairs WHERE request_id = 'different';"
            #expect(try await runSQLite(path, label).trimmingCharacters(in: .whitespacesAndNewlines) == "dog")
            let reopened = try PairReader(path: path)
            defer { try? reopened.close() }
            let inShadowd = try await reopened.queue.read { try String.fetchOne($0, sql: label) }
            #expect(inShadowd == "dog")
        }
    }

    @Test func replayReportAndExportReadTheBodiesAsSent() async throws {
        try await withTemporaryDirectory { directory in
            let (compressed, plain) = (directory + "/compressed.sqlite", directory + "/plain.sqlite")
            for (path, compress) in [(compressed, true), (plain, false)] {
                let store = try PairStore(path: path)
                var records = (0..<6).map { index in
                    makeRecord(
                        id: "r\(index)",
                        baseline: Self.tensorAnswer(index),
                        candidate: Self.tensorAnswer(index, label: index % 2 == 0 ? "cat" : "dog")
                    )
                }
                for index in records.indices {
                    records[index].requestBody = CapturedBody(
                        bytes: Array(#"{"tenant":"t\#(index % 3)","pad":\#(Self.tensorAnswer(index + 10))}"#.utf8)
                    )
                }
                try store.write(records, coverage: [:], compressBodies: compress)
                try store.close()
            }
            // Replay sends the request as recorded and compares with the baseline as recorded.
            let reader = try PairReader(path: compressed)
            defer { try? reader.close() }
            let recorded = try reader.recordedExchanges(route: "classifier", fromMicros: nil, toMicros: nil, afterID: 0, limit: 10)
            #expect(recorded.count == 6)
            #expect(recorded.first?.requestBody == Array(#"{"tenant":"t0","pad":\#(Self.tensorAnswer(10))}"#.utf8))
            #expect(recorded.last?.baseline.body.bytes == Array(Self.tensorAnswer(5).utf8))
            // The report segments by a field of the (compressed) request body.
            var segments: [String: Int] = [:]
            try reader.scan(PairReader.Scan(segmentFields: ["classifier": "$.tenant"])) { pair in
                segments[pair.segment ?? "none", default: 0] += 1
            }
            #expect(segments == ["t0": 2, "t1": 2, "t2": 2])
            // The export of the compressed file is the export of the plain one.
            var exported: [[String]] = []
            for path in [compressed, plain] {
                let out = directory + "/export-" + URL(fileURLWithPath: path).lastPathComponent
                let options = ExportOptions(databases: [("h", path)], outputDirectory: out, format: .ndjson, tables: [.pairs])
                _ = try Exporter(options: options).run(now: 1_700_000_000_000_000 + 86_400_000_000)
                let files = FileManager.default.enumerator(atPath: out)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".ndjson") }
                exported.append(
                    try files.flatMap { try String(contentsOfFile: out + "/" + $0, encoding: .utf8).split(separator: "\n").map(String.init) }.sorted()
                )
            }
            #expect(exported[0].count == 6 && exported[0] == exported[1])
        }
    }

    /// The daemon's writer compresses when its storage says so.
    @Test func theRecordWriterCompressesWithBodiesCompressed() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/db.sqlite"
            let store = try PairStore(path: path)
            var storage = StorageConfiguration(path: path, flushInterval: .milliseconds(5))
            storage.bodies = .compressed
            let queue = RecordQueue<ExchangeRecord>(capacity: 10)
            let writer = RecordWriter(store: store, queue: queue, coverage: CoverageCounter(), storage: storage, logger: Logger(label: "test"))
            #expect(queue.offer(makeRecord(id: "a", baseline: Self.tensorAnswer(1), candidate: Self.tensorAnswer(1))))
            queue.finish()
            try await writer.run()
            let zlib = try await store.queue.read { try Int.fetchOne($0, sql: "SELECT baseline_body_zlib FROM exchanges") }
            #expect(zlib == Self.tensorAnswer(1).utf8.count)
            try store.close()
        }
    }

    @Test func aDamagedBodyIsAnErrorNamingIt() async throws {
        #expect(throws: StoreError.self) { try BodyCompression.uncompress(Array("not zlib at all".utf8), size: 100) }
        let compressor = try BodyCompression.Compressor()
        let body = Array(Self.tensorAnswer(7).utf8)
        let stored = try #require(compressor.compress(body))
        #expect(try BodyCompression.uncompress(stored, size: body.count) == body)
        // A wrong length (longer or shorter than the stream) is refused, not cut or padded.
        #expect(throws: StoreError.self) { try BodyCompression.uncompress(stored, size: body.count + 1) }
        #expect(throws: StoreError.self) { try BodyCompression.uncompress(stored, size: body.count - 1) }
        #expect(throws: StoreError.self) { try BodyCompression.uncompress(Array(stored.dropLast(3)), size: body.count) }
        // In SQL: the query fails and says why.
        let queue = try DatabaseQueue()
        try await queue.write { db in db.add(function: BodyCompression.uncompressFunction) }
        do {
            _ = try await queue.read { try Data.fetchOne($0, sql: "SELECT sqlar_uncompress(x'0102030405', 100)") }
            Issue.record("a damaged body read back")
        } catch let error as DatabaseError {
            #expect(error.message?.contains("not a zlib stream of 100 bytes") == true)
        }
        // Stored as it is (no length, or its own length): returned unchanged, type and all.
        #expect(try await queue.read { try String.fetchOne($0, sql: "SELECT typeof(sqlar_uncompress('{\"a\":1}', NULL))") } == "text")
        #expect(try await queue.read { try String.fetchOne($0, sql: "SELECT sqlar_uncompress('abc', 3)") } == "abc")
    }

    /// Any body, compressible or not, of any size, reads back as it was; one compressor serves
    /// them all in turn (it is reset per body).
    @Test func everyBodyRoundTrips() async throws {
        let compressor = try BodyCompression.Compressor()
        await propertyCheck(count: 300, input: Gen.int(in: 0...6_000), Gen.int(in: 1...256)) { size, alphabet in
            var random = SystemRandomNumberGenerator()
            let body = (0..<size).map { _ in UInt8(Int.random(in: 0..<alphabet, using: &random)) }
            guard let stored = compressor.compress(body) else {
                // Two bits a byte or less, over 512 bytes: zlib must shrink it by far more than an eighth.
                #expect(size < 512 || alphabet > 4, "a body of \(size) bytes over \(alphabet) values stayed uncompressed")
                return
            }
            #expect(stored.count <= body.count - body.count / 8)
            #expect((try? BodyCompression.uncompress(stored, size: body.count)) == body)
        }
    }

    /// Runs the `sqlite3` shell read-only against `path`.
    func runSQLite(_ path: String, _ sql: String) async throws -> String {
        let child = try ChildProcess("/usr/bin/sqlite3", ["-readonly", path, sql])
        _ = await child.waitUntilExit()
        return child.stdout
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02X", $0) }.joined()
    }
}
