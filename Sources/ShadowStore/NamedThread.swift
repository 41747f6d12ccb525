import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Threads of the daemon's own, named so `top -H`, `perf` and tests can tell them apart.
public enum NamedThread {
    /// Runs `body` on a new detached thread named `name`.
    static func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        Thread.detachNewThread {
            Self.nameCurrent(name)
            body()
        }
    }

    /// Names the calling thread: at most 15 characters (the kernel's limit). Glibc's
    /// `pthread_setname_np` is not visible to Swift, so this writes `/proc/thread-self/comm`.
    public static func nameCurrent(_ name: String) {
        #if os(Linux)
        let comm = open("/proc/thread-self/comm", O_WRONLY)
        guard comm >= 0 else { return }
        _ = name.withCString { write(comm, $0, strlen($0)) }
        close(comm)
        #endif
    }
}
