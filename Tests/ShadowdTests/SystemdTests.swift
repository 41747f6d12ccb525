import Foundation
import ShadowFixtures
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The unit files and the sd_notify protocol, checked the way systemd would see them.
@Suite(.serialized, .timeLimit(.minutes(2))) struct SystemdTests {
    static let analyze = "/usr/bin/systemd-analyze"

    /// `systemd-analyze verify` on the shipped unit, with ExecStart pointing at the built binary
    /// (verify insists that the executable exists).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: analyze)))
    func theServiceUnitVerifiesCleanlyAndIsHardened() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let unit = try String(contentsOf: packageRoot.appendingPathComponent("systemd/shadowd.service"), encoding: .utf8)
        let path = directory + "/shadowd.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/shadowd", with: shadowdBinary).write(toFile: path, atomically: true, encoding: .utf8)
        let verify = try await run(Self.analyze, ["verify", path])
        #expect(verify.status == 0)
        #expect(verify.output.isEmpty, "systemd-analyze verify: \(verify.output)")
        // --threshold is in tenths: 20 means an exposure of 2.0.
        let security = try await run(Self.analyze, ["security", "--offline=yes", "--threshold=20", path])
        #expect(security.status == 0, "exposure above 2.0: \(security.output.suffix(300))")
    }

    @Test(arguments: ["abstract", "path"])
    func serveSpeaksSdNotify(kind: String) async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let name = kind == "abstract" ? "@shadowd-test-\(UUID().uuidString.prefix(8))" : directory + "/notify.sock"
        let socket = try NotifySocket(name: name)
        let config = directory + "/shadowd.yaml"
        try """
        server: {listen: "127.0.0.1:0"}
        admin: {enabled: false}
        routes:
          - name: r
            prefix: /
            baseline: {url: "http://127.0.0.1:9"}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let serve = try Daemon(
            ["serve", "--config", config, "--db", directory + "/shadow.sqlite"],
            environment: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"]
        )
        let ready = try socket.receive(timeout: 20)
        #expect(ready.hasPrefix("READY=1"), "first message: \(ready)")
        #expect(ready.contains("STATUS=serving on"))
        let ping = try socket.receive(timeout: 5)
        #expect(ping.hasPrefix("WATCHDOG=1"), "then: \(ping)")
        serve.signal(SIGTERM)
        var stopping = ""
        while !stopping.hasPrefix("STOPPING=1") { stopping = try socket.receive(timeout: 10) }
        #expect(try await serve.wait() == 0)
    }

    @Test func serveIsSilentWithoutNotifySocket() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/shadowd.yaml"
        try "server: {listen: \"127.0.0.1:0\"}\nadmin: {enabled: false}\nroutes:\n  - {name: r, prefix: /, baseline: {url: \"http://127.0.0.1:9\"}}\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let serve = try Daemon(["serve", "--config", config, "--db", directory + "/shadow.sqlite"], environment: ["NOTIFY_SOCKET": ""])
        _ = try await serve.waitFor("shadow.listen=")
        serve.signal(SIGTERM)
        #expect(try await serve.wait() == 0)
    }
}

/// A datagram socket standing in for systemd's notification socket.
final class NotifySocket {
    let descriptor: Int32

    init(name: String) throws {
        self.descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(self.descriptor, $0, length) }
        }
        guard bound == 0 else { throw DaemonError("cannot bind notify socket \(name): errno \(errno)") }
    }

    /// The next datagram, or an error after `timeout` seconds.
    func receive(timeout: Int) throws -> String {
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(self.descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { throw DaemonError("no notification within \(timeout) s") }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    deinit { close(self.descriptor) }
}

/// ``run(_:_:)`` for a quick tool where no `await` is possible (blocks the calling thread).
func runBlocking(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let child = try ChildProcess(executable, arguments)
    let status = child.waitUntilExitBlocking()
    return (status, child.stdout + child.stderr)
}

/// Runs a command to completion, returning its status and its output (stdout, then stderr).
func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let child = try ChildProcess(executable, arguments)
    let status = await child.waitUntilExit()
    return (status, child.stdout + child.stderr)
}

/// The nightly report's units.
@Suite struct ReportUnitTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: SystemdTests.analyze)))
    func theReportServiceAndTimerVerifyAndTheServiceIsLockedDown() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["shadowd-report.service", "shadowd-report.timer"] {
            let unit = try String(contentsOf: packageRoot.appendingPathComponent("systemd/" + name), encoding: .utf8)
            try unit.replacingOccurrences(of: "/usr/local/bin/shadowd", with: shadowdBinary).write(
                toFile: directory + "/" + name,
                atomically: true,
                encoding: .utf8
            )
        }
        let verify = try await run(SystemdTests.analyze, ["verify", directory + "/shadowd-report.service", directory + "/shadowd-report.timer"])
        #expect(verify.status == 0 && verify.output.isEmpty, "systemd-analyze verify: \(verify.output)")
        // No network, no writes but its reports folder: exposure at most 1.0.
        let security = try await run(SystemdTests.analyze, ["security", "--offline=yes", "--threshold=10", directory + "/shadowd-report.service"])
        #expect(security.status == 0, "exposure above 1.0: \(security.output.suffix(300))")
        let timer = try String(contentsOfFile: directory + "/shadowd-report.timer", encoding: .utf8)
        #expect(timer.contains("Persistent=true") && timer.contains("RandomizedDelaySec="))
    }
}
