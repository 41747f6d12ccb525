import Foundation
import GRDB
import ShadowFixtures
import Testing

/// A real full filesystem: a tmpfs of 1 MiB under the database. Skipped where mounting is not
/// allowed (not root, or no tmpfs).
@Suite(.serialized, .timeLimit(.minutes(3))) struct DiskFullTests {
    static func mount(_ arguments: [String]) -> Bool {
        (try? runBlocking("/bin/mount", arguments).status) == 0
    }

    static let canMount: Bool = {
        guard let directory = try? temporaryDirectory() else { return false }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", directory]) else { return false }
        _ = try? runBlocking("/bin/umount", [directory])
        return true
    }()

    @Test(.enabled(if: canMount))
    func aFullFilesystemPausesRecordingNotTheProxyAndRecordingResumes() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(Self.mount(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", directory]))
        defer { _ = try? runBlocking("/bin/umount", ["-l", directory]) }
        let answer = #"{"label":"cat","pad":""# + String(repeating: "z", count: 4000) + #""}"#
        let model = try await FixtureServer.start { _ in .json(answer) }
        let config = directory + "/../shadowd-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: config) }
        try """
        server: {listen: "127.0.0.1:0"}
        admin: {listen: "127.0.0.1:0"}
        storage: {flush_interval: 10ms}
        routes:
          - name: r
            prefix: /
            baseline: {url: "http://127.0.0.1:\(model.port)"}
            candidates: [{name: c, url: "http://127.0.0.1:\(model.port)"}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let database = directory + "/shadow.sqlite"
        let serve = try Daemon(["serve", "--config", config, "--db", database])
        let (port, adminPort) = try await serve.servePorts()
        let admin = try await HTTPTestClient.connect(port: adminPort)
        let requests = (0..<400).map { ReplayRequest(method: "POST", path: "/infer/\($0)", body: Array(#"{"inputs":[\#($0)]}"#.utf8)) }

        async let full = Replayer(port: port, requests: Array(requests[0..<300]), concurrency: 4).run()
        var sawNotReady = false
        for _ in 0..<300 where !sawNotReady {
            sawNotReady = try await admin.send(path: "/readyz").status == 503
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await full.statusCounts == [200: 300], "clients never notice the full disk")
        #expect(sawNotReady, "readyz reports the failing writer")

        // Space returns: recording resumes by itself.
        #expect(Self.mount(["-o", "remount,size=64m", directory]))
        _ = try await Replayer(port: port, requests: Array(requests[300...]), concurrency: 2).run()
        var ready = false
        for _ in 0..<300 where !ready {
            ready = try await admin.send(path: "/readyz").status == 200
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(ready, "recording resumed")
        await admin.close()
        serve.signal(SIGTERM)
        #expect(try await serve.wait() == 0)
        try await model.stop()

        let queue = try DatabaseQueue(path: database)
        defer { try? queue.close() }
        try await queue.read { (db: Database) throws in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
            let totals = try Row.fetchAll(db, sql: "SELECT reason, sum(count) AS n FROM coverage GROUP BY reason")
                .reduce(into: [String: Int]()) { $0[$1["reason"]] = $1["n"] }
            #expect((totals["write_failed"] ?? 0) > 0, "\(totals)")
            #expect((totals["compared"] ?? 0) + (totals["write_failed"] ?? 0) == 400, "every request accounted for: \(totals)")
        }
    }

    /// `shadowd export` onto a full filesystem: exit 1 with the reason, no partial or temporary
    /// file left, and the partition an earlier run wrote there untouched.
    @Test(.enabled(if: canMount))
    func anExportOntoAFullDiskLeavesNoPartialFileAndKeepsEarlierPartitions() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let small = directory + "/small.sqlite"
        let large = directory + "/large.sqlite"
        #expect(try await runShadowd(["demo", "--db", small, "--requests", "50"]).status == 0)
        #expect(try await runShadowd(["demo", "--db", large, "--requests", "3000"]).status == 0)
        let out = directory + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(Self.mount(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", out]))
        defer { _ = try? runBlocking("/bin/umount", ["-l", out]) }
        func files() -> [String: Data] {
            let paths = FileManager.default.enumerator(atPath: out)?.compactMap { $0 as? String } ?? []
            return paths.reduce(into: [:]) { files, path in
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: out + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    files[path] = FileManager.default.contents(atPath: out + "/" + path)
                }
            }
        }
        let first = try await runShadowd(["export", "--db", "h=\(small)", "--out-dir", out, "--table", "pairs"])
        #expect(first.status == 0, "\(first.stderr)")
        let before = files()
        #expect(before.count == 1 && before.keys.allSatisfy { $0.hasSuffix(".parquet") }, "\(before.keys)")

        let full = try await runShadowd(["export", "--db", "h=\(large)", "--out-dir", out, "--table", "pairs", "--compression", "none"])
        #expect(full.status == 1)
        #expect(full.stderr.contains("No space left on device"), "\(full.stderr)")
        #expect(files() == before, "only the earlier partition remains, unchanged: \(files().keys)")
    }
}
