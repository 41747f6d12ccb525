import ShadowCore
import ShadowParquet

/// Where one partition's rows go: a Parquet file or NDJSON lines.
protocol RowSink: AnyObject {
    func append(_ row: [ParquetValue]) throws
    /// Completes the file (footer, fsync, rename into place).
    func commit() throws
}

final class ParquetSink: RowSink {
    private let file: PartitionFile
    private var writer: ParquetFileWriter!

    init(file: PartitionFile, columns: [ParquetColumn], compression: ParquetCompression) throws {
        self.file = file
        self.writer = try ParquetFileWriter(columns: columns, compression: compression) { [file] bytes in try file.write(bytes) }
    }

    func append(_ row: [ParquetValue]) throws { try self.writer.append(row) }

    func commit() throws {
        try self.writer.close()
        try self.file.commit()
    }
}

/// One JSON object per line, typed as in Parquet (timestamps as RFC 3339 strings would lose
/// nothing but be slower to read: they are written as microseconds).
final class NDJSONSink: RowSink {
    private let file: PartitionFile
    private let columns: [ParquetColumn]
    private var pending: [UInt8] = []

    init(file: PartitionFile, columns: [ParquetColumn]) {
        self.file = file
        self.columns = columns
    }

    func append(_ row: [ParquetValue]) throws {
        let members: [(key: String, value: JSONValue)] = zip(self.columns, row).map { column, value in
            switch value {
            case .null: (column.name, .null)
            case .int(let number): (column.name, .number(Double(number)))
            case .double(let number): (column.name, number.isFinite ? .number(number) : .null)
            case .bytes(let bytes): (column.name, .string(String(decoding: bytes, as: UTF8.self)))
            }
        }
        self.pending += Array(JSONValue.object(members).serialized.utf8)
        self.pending.append(UInt8(ascii: "\n"))
        if self.pending.count >= 1 << 20 {
            try self.file.write(self.pending)
            self.pending.removeAll(keepingCapacity: true)
        }
    }

    func commit() throws {
        try self.file.write(self.pending)
        try self.file.commit()
    }
}
