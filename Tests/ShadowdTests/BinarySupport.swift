import Foundation

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

/// A spawned `shadowd` process with its output captured.
final class Daemon: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private let lock = NSLock()
    private var stdoutText = ""
    private var stderrText = ""

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        self.process.executableURL = URL(fileURLWithPath: shadowdBinary)
        self.process.arguments = arguments
        self.process.currentDirectoryURL = packageRoot
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        self.process.environment = env
        self.process.standardOutput = self.output
        self.process.standardError = self.errors
        self.output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            self?.lock.withLock { self?.stdoutText += text }
        }
        self.errors.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            self?.lock.withLock { self?.stderrText += text }
        }
        try self.process.run()
    }

    var stdout: String { self.lock.withLock { self.stdoutText } }
    var stderr: String { self.lock.withLock { self.stderrText } }

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
            if !self.process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DaemonError("'\(pattern)' did not appear; stdout: \(self.stdout.suffix(500)) stderr: \(self.stderr.suffix(1000))")
    }

    /// The ports `serve` logged for its listener and its admin listener.
    func servePorts() async throws -> (proxy: Int, admin: Int) {
        (try portNumber(try await self.waitFor("shadow.listen=")), try portNumber(try await self.waitFor("shadow.admin=")))
    }

    func signal(_ number: Int32) {
        kill(self.process.processIdentifier, number)
    }

    /// Waits for exit and returns the status.
    func wait(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning {
            guard ContinuousClock.now < deadline else {
                self.signal(SIGKILL)
                throw DaemonError("process did not exit in time; stderr: \(self.stderr.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        self.drainOutput()
        return self.process.terminationStatus
    }

    /// After exit: whatever is still in the pipes, read to the end (no sleep for the handlers).
    private func drainOutput() {
        self.output.fileHandleForReading.readabilityHandler = nil
        self.errors.fileHandleForReading.readabilityHandler = nil
        let rest = String(decoding: self.output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let restErrors = String(decoding: self.errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        self.lock.withLock {
            self.stdoutText += rest
            self.stderrText += restErrors
        }
    }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
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
