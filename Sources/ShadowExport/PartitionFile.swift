#if canImport(Glibc)
import Glibc
#endif

/// A file written under a temporary name and renamed into place once complete and on disk, so a
/// reader sees the old file or the new one, never half of one. Dropped without ``commit()``, or
/// after a failed write (a full disk), the temporary file is removed.
final class PartitionFile {
    let path: String
    private let temporaryPath: String
    private var descriptor: Int32
    private(set) var bytesWritten = 0

    /// Creates the directory and the temporary file.
    init(path: String) throws(ExportError) {
        self.path = path
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        try Self.makeDirectories(directory)
        self.temporaryPath = directory + "/." + path.split(separator: "/").last! + ".tmp"
        self.descriptor = open(self.temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard self.descriptor >= 0 else { throw ExportError("cannot create \(self.temporaryPath): \(Self.errnoText())") }
    }

    func write(_ bytes: [UInt8]) throws(ExportError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(self.descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw ExportError("writing \(self.temporaryPath) failed: \(Self.errnoText())")
            }
            offset += written
        }
        self.bytesWritten += bytes.count
    }

    /// fsyncs the file, renames it over `path`, fsyncs the directory.
    func commit() throws(ExportError) {
        guard fsync(self.descriptor) == 0 else { throw ExportError("fsync of \(self.temporaryPath) failed: \(Self.errnoText())") }
        close(self.descriptor)
        self.descriptor = -1
        guard rename(self.temporaryPath, self.path) == 0 else { throw ExportError("cannot rename into \(self.path): \(Self.errnoText())") }
        let directory = String(self.path[..<(self.path.lastIndex(of: "/") ?? self.path.startIndex)])
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    deinit {
        if self.descriptor >= 0 {
            close(self.descriptor)
            unlink(self.temporaryPath)
        }
    }

    static func makeDirectories(_ path: String) throws(ExportError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw ExportError("cannot create directory \(current): \(errnoText())")
            }
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// An export that could not be completed: what and why.
public struct ExportError: Error, Sendable, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
