import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes reports so a reader never sees half a file: a temporary file in the same folder,
/// flushed to disk, then renamed over the target (rename is atomic within a file system).
public enum ReportOutput {
    /// Writes `text` to `path` atomically.
    ///
    /// - Throws: ``ReportError`` naming the path and the system's reason.
    public static func write(_ text: String, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ReportError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var failure: String?
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count, failure == nil {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno != EINTR { failure = String(cString: strerror(errno)) }
            } else {
                offset += written
            }
        }
        bytes = []
        if failure == nil, fsync(descriptor) != 0 { failure = String(cString: strerror(errno)) }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw ReportError("cannot write \(path): \(failure)")
        }
    }

    /// Writes a dated report (`shadowd-report-20261122T030000Z.html`) into `directory` and deletes
    /// all but the newest `keep` reports of that format there.
    ///
    /// - Returns: the path written.
    public static func writeDated(_ text: String, directory: String, fileExtension: String, at date: Date, keep: Int) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ReportError("--out-dir \(directory) is not an existing directory")
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let path = "\(directory)/\(Self.prefix)\(formatter.string(from: date)).\(fileExtension)"
        try Self.write(text, to: path)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(Self.prefix) && $0.hasSuffix(".\(fileExtension)") }
            .sorted()
        // The timestamp sorts lexically, so the oldest come first.
        for name in names.dropLast(max(keep, 1)) {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
        }
        return path
    }

    static let prefix = "shadowd-report-"
}
