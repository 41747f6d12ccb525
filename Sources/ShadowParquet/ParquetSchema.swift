/// One column of a flat Parquet file: every column is optional (nullable), as SQLite's are.
public struct ParquetColumn: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// INT64.
        case int64
        /// INT64 with the TIMESTAMP(MICROS, UTC) logical type.
        case timestampMicros
        /// DOUBLE.
        case double
        /// BYTE_ARRAY with the STRING logical type (UTF-8).
        case string
        /// BYTE_ARRAY without a logical type.
        case bytes
    }

    public var name: String
    public var kind: Kind

    public init(_ name: String, _ kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// Parquet's physical type number.
    var physicalType: Int32 {
        switch self.kind {
        case .int64, .timestampMicros: 2
        case .double: 5
        case .string, .bytes: 6
        }
    }
}

/// A cell of a row.
public enum ParquetValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case bytes([UInt8])

    public static func string(_ text: String) -> ParquetValue { .bytes(Array(text.utf8)) }
}

/// Page compression.
public enum ParquetCompression: String, Sendable, Equatable, CaseIterable {
    case uncompressed = "none"
    /// GZIP (zlib's deflate in a gzip frame), codec 2 in the spec.
    case gzip
    /// ZSTD through the system's libzstd (level 3, its default), codec 6 in the spec.
    case zstd

    var codec: Int32 {
        switch self {
        case .uncompressed: 0
        case .gzip: 2
        case .zstd: 6
        }
    }

    /// Whether this machine can write it: ZSTD needs `libzstd.so.1`.
    public var isAvailable: Bool {
        self != .zstd || SystemZstd.available != nil
    }

    /// ZSTD where the system library is present, GZIP otherwise.
    public static var preferred: ParquetCompression {
        ParquetCompression.zstd.isAvailable ? .zstd : .gzip
    }
}

/// A value the writer cannot store in a column.
public struct ParquetError: Error, Sendable, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
