import Foundation
import ShadowFixtures

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The `shadowd` binary that `swift test` built alongside the tests.
let shadowdBinary: String = {
    let candidates = [
        packageRoot.appendingPathComponent(".build/debug/shadowd").path,
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shadowd").path,
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
}()

/// A spawned `shadowd` process with its output captured (``ChildProcess``: `posix_spawn`, not
/// Foundation's `Process`, whose `run()` crashes intermittently on Linux under concurrent use).
final class Daemon: Sendable {
    let child: ChildProcess

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        self.child = try ChildProcess(shadowdBinary, arguments, environment: environment, directory: packageRoot.path)
    }

    var stdout: String { self.child.stdout }
    var stderr: String { self.child.stderr }
    var isRunning: Bool { self.child.isRunning }

    /// Waits until `pattern` appears in stdout or stderr and returns the text after it up to the
    /// end of that line.
    func waitFor(_ pattern: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for text in [self.stdout, self.stderr] {
                if let range = text.range(of: pattern) {
                    return String(text[range.upperBound...].prefix { $0 != "\n" })
                }
            }
            if !self.child.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DaemonError("'\(pattern)' did not appear; stdout: \(self.stdout.suffix(500)) stderr: \(self.stderr.suffix(1000))")
    }

    /// The ports `serve` logged for its listener and its admin listener.
    func servePorts() async throws -> (proxy: Int, admin: Int) {
        (try portNumber(try await self.waitFor("shadow.listen=")), try portNumber(try await self.waitFor("shadow.admin=")))
    }

    func signal(_ number: Int32) {
        self.child.signal(number)
    }

    /// Waits for exit (and the end of its output) and returns the status.
    func wait(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while self.child.isRunning {
            guard ContinuousClock.now < deadline else {
                self.signal(SIGKILL)
                throw DaemonError("process did not exit in time; stderr: \(self.stderr.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return await self.child.waitUntilExit()
    }
}

struct DaemonError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs the binary to completion.
func runShadowd(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
    let daemon = try Daemon(arguments)
    let status = try await daemon.wait(timeout: .seconds(120))
    return (status, daemon.stdout, daemon.stderr)
}

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "shadowd-bin-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
