import Logging
import ServiceLifecycle
import ShadowStore

#if canImport(Glibc)
import Glibc
#endif

/// Talks to systemd over `$NOTIFY_SOCKET` without libsystemd: `READY=1` once the listener is bound
/// and the database open, `WATCHDOG=1` at half of `$WATCHDOG_USEC` while the event loops and the
/// writer are alive, `STOPPING=1` when shutdown begins. Silent when not run by systemd.
///
/// Wire format: one datagram per message to the socket named in `$NOTIFY_SOCKET`; a leading `@`
/// names a Linux abstract socket (<https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html>).
public final class SystemdNotifier: Service, Sendable {
    let socketPath: String?
    let watchdogInterval: Duration?
    let proxy: ProxyServer
    let writer: RecordWriter
    let logger: Logger

    init(environment: [String: String], proxy: ProxyServer, writer: RecordWriter, logger: Logger) {
        self.socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        // Only ping when the watchdog is meant for this process.
        let pidMatches = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if let text = environment["WATCHDOG_USEC"], let micros = Int64(text), micros > 0, pidMatches {
            self.watchdogInterval = .microseconds(micros / 2)
        } else {
            self.watchdogInterval = nil
        }
        self.proxy = proxy
        self.writer = writer
        self.logger = logger
    }

    public func run() async throws {
        guard let socketPath = self.socketPath else {
            try? await gracefulShutdown()
            return
        }
        guard let address = await self.proxy.address.get() else { return }
        self.send("READY=1\nSTATUS=serving on \(address)", to: socketPath)
        if let interval = self.watchdogInterval {
            // The ping loop ends (is cancelled) as soon as graceful shutdown begins.
            try? await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try await Task.sleep(for: interval)
                    if await self.healthy() {
                        let written = self.writer.statistics.snapshot().written
                        self.send("WATCHDOG=1\nSTATUS=serving; \(written) exchanges recorded", to: socketPath)
                    } else {
                        // Missing pings make systemd restart us (WatchdogSec); say why first.
                        self.logger.error("watchdog: event loops or writer not responding; not pinging systemd")
                    }
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        self.send("STOPPING=1\nSTATUS=draining", to: socketPath)
    }

    /// Sends a message when run by systemd; does nothing otherwise.
    public func notify(_ message: String) {
        guard let socketPath = self.socketPath else { return }
        self.send(message, to: socketPath)
    }

    /// The event loops answer a no-op within a second and the writer has looped recently.
    private func healthy() async -> Bool {
        guard await self.proxy.eventLoopsRespond(within: .seconds(1)) else { return false }
        return self.writer.statistics.secondsSinceHeartbeat() < 10
    }

    private func send(_ message: String, to path: String) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(path.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: pathBytes)
        }
        // For abstract names the length covers exactly the name; paths include the terminator.
        let length = MemoryLayout<sa_family_t>.size + pathBytes.count + (abstract ? 0 : 1)
        let bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { sendto(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), socketAddress, socklen_t(length)) }
            }
        }
    }
}
