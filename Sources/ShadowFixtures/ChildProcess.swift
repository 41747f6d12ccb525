import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, its standard output and error captured.
///
/// Tests and benchmarks spawn the built binary, `sqlite3` and other tools many times and
/// concurrently. Foundation's `Process.run()` on Linux crashes intermittently under that load
/// (an over-read of `/proc/self/fd` entries, swift-corelibs-foundation#5472, fixed after Swift
/// 6.3.1), so this goes to `posix_spawn` directly: pipes created close-on-exec (no other child
/// inherits them, so end of file means this child is done), signals reset to their defaults.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let output = OutputCapture()
    private let errors = OutputCapture()
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`, in `directory` when given, with the current
    /// environment plus `environment`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws {
        // One spawn at a time: between `pipe` and `FD_CLOEXEC` no other child may be forked, or
        // it would inherit these pipes and hold them open.
        let (pid, outputRead, errorRead) = try Self.spawnLock.withLock { _ in
            try Self.spawn(executable, arguments, environment: environment, directory: directory)
        }
        self.pid = pid
        self.output.start(reading: outputRead)
        self.errors.start(reading: errorRead)
    }

    private static let spawnLock = Mutex(())

    private static func spawn(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        directory: String?
    ) throws -> (pid_t, Int32, Int32) {
        var outputPipe: [Int32] = [0, 0]
        var errorPipe: [Int32] = [0, 0]
        guard pipe(&outputPipe) == 0, pipe(&errorPipe) == 0 else { throw FixtureError("pipe failed: errno \(errno)") }
        for descriptor in outputPipe + errorPipe { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errorPipe[1], 2)
        // posix_spawn cannot change directory (addchdir_np is not imported): a shell does, then
        // execs the program, so the pid is the program's own.
        let command = directory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0, executable] + arguments } ?? [executable] + arguments
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        let argv = command.map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        close(outputPipe[1])
        close(errorPipe[1])
        guard spawned == 0 else {
            close(outputPipe[0])
            close(errorPipe[0])
            throw FixtureError("cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        return (pid, outputPipe[0], errorPipe[0])
    }

    /// Standard output so far.
    public var stdout: String { self.output.text }
    /// Standard error so far.
    public var stderr: String { self.errors.text }

    /// Whether it still runs (reaps it when it has exited).
    public var isRunning: Bool { self.poll() == nil }

    /// Its exit status (or 128 + the signal that ended it), once it has exited.
    public var terminationStatus: Int32? { self.poll() }

    public func signal(_ number: Int32) {
        if self.poll() == nil { kill(self.pid, number) }
    }

    /// Waits for it to exit and for its output to end; returns the status.
    public func waitUntilExit() async -> Int32 {
        while true {
            if let status = self.poll() {
                await self.output.finished()
                await self.errors.finished()
                return status
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Blocks the calling thread until it exits and its output ended (for quick tools run where
    /// no `await` is possible, such as a static test condition).
    public func waitUntilExitBlocking() -> Int32 {
        while true {
            if let status = self.poll(), self.output.isDone, self.errors.isDone { return status }
            usleep(5_000)
        }
    }

    private func poll() -> Int32? {
        self.status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            guard waitpid(self.pid, &raw, WNOHANG) == self.pid else { return nil }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (the C macros are not imported).
            let signal = raw & 0x7F
            status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            return status
        }
    }

    deinit {
        if self.poll() == nil {
            kill(self.pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(self.pid, &raw, 0)
        }
    }
}

/// One pipe read to its end on a thread of its own.
private final class OutputCapture: Sendable {
    private let state = Mutex<(bytes: [UInt8], done: Bool)>(([], false))

    func start(reading descriptor: Int32) {
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                self.state.withLock { $0.bytes += buffer[0..<count] }
            }
            close(descriptor)
            self.state.withLock { $0.done = true }
        }
    }

    var text: String { String(decoding: self.state.withLock { $0.bytes }, as: UTF8.self) }
    var isDone: Bool { self.state.withLock { $0.done } }

    func finished() async {
        while !self.state.withLock({ $0.done }) { try? await Task.sleep(for: .milliseconds(5)) }
    }
}
