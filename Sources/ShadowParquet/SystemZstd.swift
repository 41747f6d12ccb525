#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The system's libzstd (`libzstd.so.1`), loaded at run time.
///
/// Linking it would need its headers (`libzstd-dev`) on every machine that builds shadowd, and the
/// first build on a fresh machine must not; the runtime library is part of every Debian and
/// Ubuntu base system (dpkg itself depends on it). When it is missing, `available` is nil and the
/// exporter falls back to GZIP and says so.
struct SystemZstd: @unchecked Sendable {
    private typealias Compress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int, Int32) -> Int
    private typealias Decompress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int) -> Int
    private typealias Bound = @convention(c) (Int) -> Int
    private typealias IsError = @convention(c) (Int) -> UInt32
    private typealias ErrorName = @convention(c) (Int) -> UnsafePointer<CChar>?

    private let compressFunction: Compress
    private let decompressFunction: Decompress
    private let bound: Bound
    private let isError: IsError
    private let errorName: ErrorName

    /// The library, or nil when no `libzstd.so.1` can be loaded.
    static let available: SystemZstd? = SystemZstd()

    private init?() {
        guard let handle = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libzstd.so", RTLD_NOW | RTLD_LOCAL) else {
            return nil
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let compress = symbol("ZSTD_compress", as: Compress.self),
            let decompress = symbol("ZSTD_decompress", as: Decompress.self),
            let bound = symbol("ZSTD_compressBound", as: Bound.self),
            let isError = symbol("ZSTD_isError", as: IsError.self),
            let errorName = symbol("ZSTD_getErrorName", as: ErrorName.self)
        else { return nil }
        self.compressFunction = compress
        self.decompressFunction = decompress
        self.bound = bound
        self.isError = isError
        self.errorName = errorName
    }

    /// One zstd frame holding `input` (with its content size, as Parquet readers expect).
    func compress(_ input: [UInt8], level: Int32) throws(ParquetError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: self.bound(input.count))
        let written = output.withUnsafeMutableBytes { destination in
            input.withUnsafeBytes { source in
                self.compressFunction(destination.baseAddress, destination.count, source.baseAddress, source.count, level)
            }
        }
        try self.check(written, "zstd compression")
        output.removeSubrange(written...)
        return output
    }

    /// The inverse, for tests: `size` is the decompressed size the page header records.
    func decompress(_ input: [UInt8], size: Int) throws(ParquetError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: size)
        let written = output.withUnsafeMutableBytes { destination in
            input.withUnsafeBytes { source in
                self.decompressFunction(destination.baseAddress, destination.count, source.baseAddress, source.count)
            }
        }
        try self.check(written, "zstd decompression")
        output.removeSubrange(written...)
        return output
    }

    private func check(_ result: Int, _ operation: String) throws(ParquetError) {
        guard self.isError(result) != 0 else { return }
        let name = self.errorName(result).map { String(cString: $0) } ?? "error \(result)"
        throw ParquetError("\(operation) failed: \(name)")
    }
}
