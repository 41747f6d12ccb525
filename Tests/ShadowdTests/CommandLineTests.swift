import Foundation
import GRDB
import ShadowFixtures
import Testing

/// The port at the end of a logged address such as `[IPv4]127.0.0.1/127.0.0.1:8080 [ShadowProxy] listening`.
func portNumber(_ logged: String) throws -> Int {
    let afterColon = logged.split(separator: " ").first?.split(separator: ":").last ?? ""
    guard let port = Int(afterColon) else { throw DaemonError("no port in '\(logged)'") }
    return port
}

/// The built binary, run the way users run it.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CommandLineTests {
    @Test func checkConfigAcceptsTheExampleAndNamesTheKeyOfABadOne() async throws {
        let good = try await runShadowd(["check-config", "Fixtures/configs/example.yaml"])
        #expect(good.status == 0)
        #expect(good.stdout.contains("Fixtures/configs/example.yaml: ok"))

        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bad = directory + "/bad.yaml"
        try "routes:\n  - name: r\n    prefix: /v2/\n    baseline: {url: \"http://127.0.0.1:9001\", timeout: forever}\n".write(
            toFile: bad,
            atomically: true,
            encoding: .utf8
        )
        let result = try await runShadowd(["check-config", bad])
        #expect(result.status == 1)
        #expect(result.stderr.contains("routes[0].baseline.timeout: expected a duration"))
        #expect(!result.stderr.contains("Usage"), "a config error is not a usage error")

        let missing = try await runShadowd(["check-config", directory + "/nope.yaml"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("cannot read"))
    }

    /// `/stats` read as JSON.
    static func stats(_ admin: HTTPTestClient) async throws -> [String: Any] {
        let body = try await admin.send(path: "/stats").body
        return try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
    }

    /// The baseline (in this process) holds every answer until the test opens a gate: SIGTERM
    /// lands while all eight requests are provably inside the sidecar, the daemon says it is
    /// draining, and only then are the answers released. All eight complete, all are recorded.
    @Test func serveProxiesRecordsAndDrainsOnSIGTERM() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gate = FixtureGate()
        let baseline = try await FixtureServer.start { _ in
            FixtureResponse(
                headers: [("content-type", "application/json")],
                mode: .gatedChunks(first: [], gate: gate, rest: [Array(#"{"outputs":[{"name":"label","data":["cat"]}]}"#.utf8)])
            )
        }
        let candidate = try Daemon(["fixture-model", "--spec", "Fixtures/models/candidate.yaml", "--port", "0"])
        let candidatePort = try await candidate.waitFor("listening on http://127.0.0.1:")

        let config = directory + "/shadowd.yaml"
        try """
        server: {listen: "127.0.0.1:0"}
        admin: {listen: "127.0.0.1:0"}
        routes:
          - name: classifier
            prefix: /v2/
            baseline: {url: "http://127.0.0.1:\(baseline.port)", version: "1"}
            candidates:
              - {name: next, url: "http://127.0.0.1:\(candidatePort)", version: "2"}
            scorer: {kind: json, ignore_paths: ["$.model_version"]}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let database = directory + "/shadow.sqlite"
        let serve = try Daemon(["serve", "--config", config, "--db", database])
        let (port, adminPort) = try await serve.servePorts()

        let requests = ReplayRequest.generated(count: 8)
        async let inFlight = Replayer(port: port, requests: requests, concurrency: 8).run()
        // All eight are held at the baseline, so all eight are inside the sidecar, unanswered.
        var held = false
        for _ in 0..<2_000 where !held {
            held = baseline.requestCount == 8
            if !held { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(held, "the baseline holds \(baseline.requestCount) of 8")
        let admin = try await HTTPTestClient.connect(port: adminPort)
        let before = try await Self.stats(admin)
        await admin.close()
        #expect(before["requests"] as? Int == 8 && before["open_connections"] as? Int == 8, "\(before)")
        serve.signal(SIGTERM)
        _ = try await serve.waitFor("draining")
        #expect(serve.isRunning, "still draining the eight held requests")
        gate.open()
        let outcome = try await inFlight
        #expect(outcome.statusCounts == [200: 8], "requests in flight at SIGTERM must complete")
        #expect(try await serve.wait() == 0, "stderr: \(serve.stderr)")

        let queue = try DatabaseQueue(path: database)
        #expect(try await queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pairs") } == 8, "no accepted record is lost")
        try queue.close()
        try await baseline.stop()
        candidate.signal(SIGTERM)
        #expect(try await candidate.wait() == 0)
    }

    @Test func serveRefusesAnUnusableConfigOrDatabaseWithExit1() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/shadowd.yaml"
        try "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:9\"}\n".write(
            toFile: config,
            atomically: true,
            encoding: .utf8
        )
        let foreign = directory + "/foreign.sqlite"
        let queue = try DatabaseQueue(path: foreign)
        try await queue.write { try $0.execute(sql: "CREATE TABLE customers(id)") }
        try queue.close()
        let result = try await runShadowd(["serve", "--config", config, "--db", foreign])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no shadowd schema version"))
    }

    @Test func sigtermUnderSustainedLoadLosesNoAcceptedRecord() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = ModelFixture(spec: ModelSpec(version: "1", latencyMin: .milliseconds(1), latencyMax: .milliseconds(3)))
        let baseline = try await FixtureServer.start(responder: model.responder)
        let candidate = try await FixtureServer.start(responder: model.responder)
        let config = directory + "/shadowd.yaml"
        try """
        server: {listen: "127.0.0.1:0"}
        admin: {listen: "127.0.0.1:0"}
        storage: {flush_interval: 50ms}
        routes:
          - name: classifier
            prefix: /v2/
            baseline: {url: "http://127.0.0.1:\(baseline.port)"}
            candidates: [{name: next, url: "http://127.0.0.1:\(candidate.port)"}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let database = directory + "/shadow.sqlite"
        let serve = try Daemon(["serve", "--config", config, "--db", database])
        let (port, adminPort) = try await serve.servePorts()

        // A steady stream from 8 clients; SIGTERM lands in the middle of it.
        async let load = Replayer(port: port, requests: ReplayRequest.generated(count: 4_000), concurrency: 8).run()
        let admin = try await HTTPTestClient.connect(port: adminPort)
        var stats: [String: Any] = [:]
        for _ in 0..<3_000 where (stats["requests"] as? Int ?? 0) < 500 {
            stats = try await Self.stats(admin)
            try await Task.sleep(for: .milliseconds(10))
        }
        await admin.close()
        // In the middle of the load: 500 requests in, all eight clients still connected.
        #expect((stats["requests"] as? Int ?? 0) >= 500 && stats["open_connections"] as? Int == 8, "\(stats)")
        serve.signal(SIGTERM)
        let outcome = try await load
        #expect(try await serve.wait() == 0, "stderr: \(serve.stderr.suffix(1000))")
        let answered = outcome.statusCounts[200] ?? 0
        #expect(answered >= 500 && outcome.statusCounts.keys.allSatisfy { $0 == 200 }, "\(outcome.statusCounts)")

        let queue = try DatabaseQueue(path: database)
        defer { try? queue.close() }
        try await queue.read { (db: Database) throws in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
            // Every request the sidecar answered is a recorded pair: none accepted was lost.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM pairs") == answered)
        }
        try await baseline.stop()
        try await candidate.stop()
    }

    @Test func serveExitsWith1WhenItsPortIsTaken() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let occupant = try await FixtureServer.start { _ in .json("{}") }
        let config = directory + "/shadowd.yaml"
        try """
        server: {listen: "127.0.0.1:\(occupant.port)"}
        admin: {listen: "127.0.0.1:0"}
        routes:
          - {name: r, prefix: /, baseline: {url: "http://127.0.0.1:9"}}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        // It used to hang here: the writer waited for records that would never come.
        let serve = try Daemon(["serve", "--config", config, "--db", directory + "/shadow.sqlite"])
        #expect(try await serve.wait(timeout: .seconds(15)) == 1)
        #expect(serve.stderr.contains("cannot listen on 127.0.0.1:\(occupant.port)"), "stderr: \(serve.stderr)")
        try await occupant.stop()
    }

    @Test func demoRunsOnTheBuiltInDefaults() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await runShadowd(["demo", "--requests", "400", "--db", directory + "/demo.sqlite"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("pairs recorded:     400"))
        #expect(result.stdout.contains("drops (not compared): 0"))
    }

    /// `demo --bodies compressed` records as `storage.bodies: compressed` does, and the report
    /// reads it to the same verdict.
    @Test func demoStoresBodiesCompressedWhenAsked() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = directory + "/demo.sqlite"
        let result = try await runShadowd(["demo", "--requests", "400", "--db", database, "--bodies", "compressed"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("pairs recorded:     400"))
        let queue = try DatabaseQueue(path: database)
        let compressed = try await queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pairs WHERE baseline_body_zlib IS NOT NULL") }
        try queue.close()
        #expect((compressed ?? 0) > 0)
        let report = try await runShadowd(["report", "--db", database, "--format", "json"])
        #expect([0, 3].contains(report.status) && report.stdout.contains("\"compared\""), "\(report.stderr)")
        let bad = try await runShadowd(["demo", "--requests", "1", "--db", database, "--bodies", "zip"])
        #expect(bad.status != 0 && bad.stderr.contains("--bodies: expected one of full, compressed, hash, got 'zip'"), "\(bad.stderr)")
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct ReloadTests {
    @Test func sighupAppliesAValidConfigAndRefusesAnInvalidOne() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let baseline = try Daemon(["fixture-model", "--spec", "Fixtures/models/baseline.yaml", "--port", "0"])
        let candidate = try Daemon(["fixture-model", "--spec", "Fixtures/models/baseline.yaml", "--port", "0"])
        let baselinePort = try await baseline.waitFor("listening on http://127.0.0.1:")
        let candidatePort = try await candidate.waitFor("listening on http://127.0.0.1:")
        func config(sample: Int, flushInterval: String = "10ms") -> String {
            """
            server: {listen: "127.0.0.1:0"}
            admin: {listen: "127.0.0.1:0"}
            storage: {flush_interval: \(flushInterval)}
            routes:
              - name: classifier
                prefix: /v2/
                sample_percent: \(sample)
                baseline: {url: "http://127.0.0.1:\(baselinePort)"}
                candidates: [{name: next, url: "http://127.0.0.1:\(candidatePort)"}]
            """
        }
        let path = directory + "/shadowd.yaml"
        try config(sample: 100).write(toFile: path, atomically: true, encoding: .utf8)
        let database = directory + "/shadow.sqlite"
        let serve = try Daemon(["serve", "--config", path, "--db", database])
        let port = try portNumber(try await serve.waitFor("shadow.listen="))
        let client = try await HTTPTestClient.connect(port: port)
        let requests = ReplayRequest.generated(count: 30)
        func send(_ slice: ArraySlice<ReplayRequest>) async throws {
            for request in slice {
                let response = try await client.send(
                    method: request.httpMethod,
                    path: request.path,
                    headers: [("content-type", "application/json")],
                    body: request.body
                )
                #expect(response.status == 200)
            }
        }
        try await send(requests[0..<10])

        // Sampling to 0%: the same keep-alive connection keeps working, copies stop.
        try config(sample: 0).write(toFile: path, atomically: true, encoding: .utf8)
        serve.signal(SIGHUP)
        _ = try await serve.waitFor("configuration reloaded")
        try await send(requests[10..<20])

        // An invalid file is refused; the 0% configuration stays in force.
        try "routes: [oops".write(toFile: path, atomically: true, encoding: .utf8)
        serve.signal(SIGHUP)
        _ = try await serve.waitFor("configuration reload refused")
        try await send(requests[20..<25])

        // A file that changes what only a restart can change (storage) is refused as a whole,
        // with the key named, even though it also asks for 100% again: 0% stays in force.
        try config(sample: 100, flushInterval: "20ms").write(toFile: path, atomically: true, encoding: .utf8)
        serve.signal(SIGHUP)
        _ = try await serve.waitFor("storage cannot change on reload; restart shadowd to apply")
        try await send(requests[25..<30])
        #expect(client.isActive)
        await client.close()

        serve.signal(SIGTERM)
        #expect(try await serve.wait() == 0)
        let queue = try DatabaseQueue(path: database)
        let totals = try await queue.read { db in
            try Row.fetchAll(db, sql: "SELECT reason, sum(count) AS n FROM coverage GROUP BY reason").reduce(into: [String: Int]()) {
                $0[$1["reason"]] = $1["n"]
            }
        }
        try queue.close()
        #expect(totals == ["compared": 10, "not_sampled": 20])
        baseline.signal(SIGTERM)
        candidate.signal(SIGTERM)
        _ = try await baseline.wait()
        _ = try await candidate.wait()
    }
}

@Suite(.serialized) struct PruneCommandTests {
    @Test func pruneDeletesOldPairsFromTheCommandLine() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = directory + "/demo.sqlite"
        let demo = try await runShadowd(["demo", "--requests", "2000", "--db", database])
        #expect(demo.status == 0)
        let nothing = try await runShadowd(["prune", "--db", database, "--days", "1"])
        #expect(nothing.status == 0)
        #expect(nothing.stdout.contains("deleted 0 exchanges"))
        let sized = try await runShadowd(["prune", "--db", database, "--max-bytes", "1MiB"])
        #expect(sized.status == 0, "\(sized.stderr)")
        let bad = try await runShadowd(["prune", "--db", database, "--max-bytes", "lots"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--max-bytes: expected a size"))
        let queue = try DatabaseQueue(path: database)
        #expect(try await queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pairs") } ?? 0 < 2000)
        try queue.close()
    }
}
