import Foundation
import ShadowFixtures
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The admin listener: probes open, figures behind a bearer token when one is set.
@Suite(.serialized, .timeLimit(.minutes(1))) struct AdminAccessTests {
    @Test func statsAndMetricsNeedTheTokenAndTheProbesDoNot() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/shadowd.yaml"
        try """
        server: {listen: "127.0.0.1:0"}
        admin: {listen: "127.0.0.1:0"}
        routes:
          - {name: r, prefix: /, baseline: {url: "http://127.0.0.1:9"}}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let serve = try Daemon(["serve", "--config", config, "--db", directory + "/db.sqlite"], environment: ["SHADOWD_ADMIN_TOKEN": "s3cret"])
        let adminPort = try portNumber(try await serve.waitFor("shadow.admin="))
        let admin = try await HTTPTestClient.connect(port: adminPort)
        #expect(try await admin.send(path: "/healthz").status == 200)
        #expect([200, 503].contains(try await admin.send(path: "/readyz").status))
        for path in ["/stats", "/metrics"] {
            #expect(try await admin.send(path: path).status == 401)
            #expect(try await admin.send(path: path, headers: [("authorization", "Bearer wrong!")]).status == 401)
            #expect(try await admin.send(path: path, headers: [("authorization", "Bearer s3cret")]).status == 200)
        }
        await admin.close()
        serve.signal(SIGTERM)
        #expect(try await serve.wait() == 0)
    }
}
