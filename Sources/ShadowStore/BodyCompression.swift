import CompressNIO
import Foundation
import GRDB
import NIOCore

/// Bodies stored zlib-compressed (`storage.bodies: compressed`), in the format of the `sqlite3`
/// shell's `sqlar_compress`: one zlib stream (RFC 1950) of the whole body, and the body's length
/// before compression in the row's `*_body_zlib` column (NULL for a body stored as it is). The
/// shell's own `sqlar_uncompress(body, body_zlib)` reads both kinds back; shadowd's readers
/// register a function of that name and meaning on their connections (``uncompressFunction``).
public enum BodyCompression {
    /// Bodies shorter than this are stored as they are: a zlib stream's header and checksum
    /// alone are 6 bytes, and a short JSON answer rarely shrinks by an eighth.
    static let minimumBytes = 64

    /// Compresses the bodies of one batch on the recorder's scoring thread: one zlib state, reset
    /// per body (setting one up allocates and clears ~270 KiB, which would cost more than a body).
    final class Compressor {
        private let deflater: ZlibCompressor
        private var input = ByteBuffer()
        private var output = ByteBuffer()

        init() throws {
            // Level 1: on JSON answers it keeps within a few percent of level 6's size in less
            // of its time (the recorder may share a core with the event loop).
            self.deflater = try ZlibCompressor(
                algorithm: .zlib,
                configuration: ZlibConfiguration(windowSize: 15, compressionLevel: 1, memoryLevel: 8)
            )
        }

        /// The body as a zlib stream, or nil when it is shorter than ``minimumBytes`` or would not
        /// become at least an eighth smaller (then it is stored as it is).
        func compress(_ bytes: [UInt8]) -> [UInt8]? {
            guard bytes.count >= BodyCompression.minimumBytes else { return nil }
            self.input.clear()
            self.input.writeBytes(bytes)
            self.output.clear()
            self.output.reserveCapacity(minimumWritableBytes: self.deflater.maxSize(from: self.input))
            do {
                try self.deflater.reset()
                try self.deflater.deflate(from: &self.input, to: &self.output, flush: .finish)
            } catch {
                return nil
            }
            guard self.output.readableBytes <= bytes.count - bytes.count / 8 else { return nil }
            return self.output.readBytes(length: self.output.readableBytes)
        }
    }

    /// A stored body read back: `bytes` inflated to `size` bytes, or `bytes` itself when `size`
    /// is not positive or is already its length (the shell's `sqlar_uncompress` rule).
    /// - Throws: ``StoreError`` (`corrupt`) when `bytes` is not a zlib stream of `size` bytes.
    public static func uncompress(_ bytes: [UInt8], size: Int) throws -> [UInt8] {
        guard size > 0, bytes.count != size else { return bytes }
        do {
            let inflater = try ZlibDecompressor(algorithm: .zlib)
            var input = ByteBuffer(bytes: bytes)
            var output = ByteBuffer()
            // One byte of room beyond `size`: a longer stream fills it and is refused below.
            output.reserveCapacity(minimumWritableBytes: size + 1)
            try inflater.inflate(from: &input, to: &output)
            guard output.readableBytes == size, input.readableBytes == 0 else { throw CompressNIOError.corruptData }
            let inflated = output.readBytes(length: size) ?? []
            // zlib checks the stream's Adler-32 only when it reaches it; a stream cut inside its
            // last four bytes inflates in full without an error, so the check is repeated here.
            guard bytes.count >= 6, Self.adler32(inflated) == bytes.suffix(4).reduce(0, { $0 << 8 | UInt32($1) }) else {
                throw CompressNIOError.corruptData
            }
            return inflated
        } catch {
            throw StoreError(.corrupt, "a stored body is not a zlib stream of \(size) bytes (\(error)): the database is damaged")
        }
    }

    /// RFC 1950's checksum.
    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var (a, b): (UInt32, UInt32) = (1, 0)
        // 5,552 bytes is the most that can be summed before `b` may overflow 32 bits.
        var start = 0
        while start < bytes.count {
            let end = min(start + 5_552, bytes.count)
            for index in start..<end {
                a &+= UInt32(bytes[index])
                b &+= a
            }
            (a, b) = (a % 65_521, b % 65_521)
            start = end
        }
        return b << 16 | a
    }

    /// SQL for `column` as it was before compression: read through `sqlar_uncompress` with its
    /// `column_zlib` length (on a connection with ``uncompressFunction``, or the `sqlite3` shell).
    public static func inflated(_ column: String) -> String {
        "sqlar_uncompress(\(column), \(column)_zlib)"
    }

    /// `sqlar_uncompress(X, SZ)` as the `sqlite3` shell defines it, for shadowd's own connections:
    /// X itself when SZ is NULL, not positive, or X's length; otherwise X inflated to SZ bytes,
    /// as a BLOB.
    public static let uncompressFunction = DatabaseFunction("sqlar_uncompress", argumentCount: 2, pure: true) { values in
        let size = Int.fromDatabaseValue(values[1]) ?? 0
        guard size > 0, let data = Data.fromDatabaseValue(values[0]), data.count != size else { return values[0] }
        return Data(try BodyCompression.uncompress(Array(data), size: size))
    }
}
