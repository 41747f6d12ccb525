import Foundation
import GRDB
import Testing

/// `shadowd report` as the nightly job runs it: exit codes, files, messages.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ReportCommandTests {
    /// A demo database (whose candidate diverges on 11% of pairs: a reject) and a copy of it in
    /// which the candidate agrees everywhere (a promote).
    static func databases(in directory: String) async throws -> (reject: String, promote: String) {
        let reject = directory + "/demo.sqlite"
        let demo = try await runShadowd(["demo", "--requests", "1500", "--db", reject])
        #expect(demo.status == 0, "\(demo.stderr)")
        let promote = directory + "/agreeing.sqlite"
        let queue = try DatabaseQueue(path: reject)
        try await queue.writeWithoutTransaction { try $0.execute(sql: "VACUUM INTO ?", arguments: [promote]) }
        try queue.close()
        let copy = try DatabaseQueue(path: promote)
        try await copy.write { db in
            // Same answers and, so that the machine's load cannot move the verdict, the same latencies.
            try db.execute(
                sql: """
                    UPDATE shadows SET diverged = 0, divergence = 0, differing_paths = NULL, status = 200, error = NULL, outcome = 'compared',
                        latency_us = (SELECT baseline_latency_us FROM exchanges WHERE exchanges.id = shadows.exchange_id)
                    """
            )
        }
        try copy.close()
        return (reject, promote)
    }

    @Test func exitCodesFollowTheVerdictAndFilesAreWritten() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (reject, promote) = try await Self.databases(in: directory)

        let rejected = try await runShadowd(["report", "--db", reject, "--format", "html", "--out", directory + "/r.html"])
        #expect(rejected.status == 3, "\(rejected.stderr)")
        #expect(rejected.stderr.contains("shadowd report: reject") && rejected.stderr.contains("classifier/candidate: reject (divergence"))
        let html = try String(contentsOfFile: directory + "/r.html", encoding: .utf8)
        #expect(html.contains("REJECT: a guardrail is broken") && html.hasSuffix("</html>\n"))

        let promoted = try await runShadowd(["report", "--db", promote, "--format", "json"])
        #expect(promoted.status == 0, "\(promoted.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(promoted.stdout.utf8)) as? [String: Any])
        #expect(object["decision"] as? String == "promote" && object["version"] as? Int == 1)

        // The nightly form: two formats into a folder, older reports rotated away.
        let nightly = directory + "/reports"
        try FileManager.default.createDirectory(atPath: nightly, withIntermediateDirectories: false)
        for name in ["shadowd-report-20200101T000000Z.html", "shadowd-report-20200102T000000Z.html"] {
            _ = FileManager.default.createFile(atPath: nightly + "/" + name, contents: Data("old".utf8))
        }
        let dated = try await runShadowd([
            "report", "--db", promote, "--db", reject, "--since", "7d", "--format", "html", "--format", "json", "--out-dir", nightly, "--keep", "2",
        ])
        #expect(dated.status == 3, "two hosts, one of them rejecting: \(dated.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: nightly).sorted()
        #expect(names.count == 3 && names.filter { $0.hasSuffix(".json") }.count == 1, "\(names)")
        #expect(!names.contains("shadowd-report-20200101T000000Z.html"))
    }

    @Test func unusableInputsFailWithExit1AndWriteNothing() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (reject, _) = try await Self.databases(in: directory)
        _ = FileManager.default.createFile(atPath: directory + "/empty.sqlite", contents: Data())
        _ = FileManager.default.createFile(atPath: directory + "/corrupt.sqlite", contents: Data(repeating: 0x5A, count: 4096))
        let newer = directory + "/newer.sqlite"
        let queue = try DatabaseQueue(path: reject)
        try await queue.writeWithoutTransaction { try $0.execute(sql: "VACUUM INTO ?", arguments: [newer]) }
        try queue.close()
        let bump = try DatabaseQueue(path: newer)
        try await bump.writeWithoutTransaction { try $0.execute(sql: "PRAGMA user_version = 42") }
        try bump.close()

        let out = directory + "/out.html"
        let cases: [([String], String)] = [
            (["--db", directory + "/missing.sqlite"], "no database at"),
            (["--db", directory + "/empty.sqlite"], "is empty"),
            (["--db", directory + "/corrupt.sqlite"], "not a valid SQLite database"),
            (["--db", newer], "schema version 42"),
            (["--db", reject, "--db", directory + "/missing.sqlite"], "no database at"),
            (["--db", reject, "--from", "2001-01-01", "--to", "2001-01-02"], "no pairs"),
            (["--db", reject, "--route", "nonexistent"], "route 'nonexistent' has nothing recorded"),
            (["--db", reject, "--from", "yesterday"], "--from: expected an ISO 8601 time"),
            (["--db", reject, "--config", directory + "/nope.yaml"], "cannot read --config"),
        ]
        for (arguments, message) in cases {
            let result = try await runShadowd(["report"] + arguments + ["--out", out])
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("error: ") && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out), "\(arguments) wrote a file")
        }
        let usage = try await runShadowd(["report", "--db", reject, "--since", "1d", "--from", "2001-01-01"])
        #expect(usage.status == 64 && usage.stderr.contains("--since or --from/--to"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.hasPrefix(".out.html") }, "no temporary files left")
    }
}
