import CompressNIO
import NIOCore

/// Writes a flat Parquet file (https://parquet.apache.org/docs/file-format/): row groups of
/// bounded size, one v1 data page per column chunk (after a dictionary page when the column's
/// values repeat), PLAIN or RLE_DICTIONARY values, RLE definition levels, ZSTD, GZIP or no
/// compression, min/max/null-count statistics per column chunk, and the Thrift compact footer.
/// Memory is bounded by the row group, not the file: rows are buffered until `rowGroupRows` or
/// `rowGroupBytes`, then written out.
public final class ParquetFileWriter {
    public let columns: [ParquetColumn]
    private let compression: ParquetCompression
    private let rowGroupRows: Int
    private let rowGroupBytes: Int
    private let sink: ([UInt8]) throws -> Void
    private var buffers: [ParquetColumnBuffer]
    private var offset: Int64 = 0
    private var rowGroups: [RowGroupMetadata] = []
    private var totalRows: Int64 = 0
    private var closed = false

    struct ColumnChunkMetadata {
        var column: ParquetColumn
        var fileOffset: Int64
        var dataPageOffset: Int64
        var dictionaryPageOffset: Int64?
        var values: Int64
        var uncompressedSize: Int64
        var compressedSize: Int64
        var statistics: (minimum: [UInt8]?, maximum: [UInt8]?, nullCount: Int64)
    }

    struct RowGroupMetadata {
        var columns: [ColumnChunkMetadata]
        var rows: Int64
        var uncompressedBytes: Int64
    }

    /// - Parameter sink: receives the file's bytes in order (a file handle's write).
    public init(
        columns: [ParquetColumn],
        compression: ParquetCompression = .gzip,
        rowGroupRows: Int = 65_536,
        rowGroupBytes: Int = 64 << 20,
        sink: @escaping ([UInt8]) throws -> Void
    ) throws {
        self.columns = columns
        self.compression = compression
        self.rowGroupRows = rowGroupRows
        self.rowGroupBytes = rowGroupBytes
        self.sink = sink
        self.buffers = columns.map { ParquetColumnBuffer($0) }
        try self.emit(Array("PAR1".utf8))
    }

    private func emit(_ bytes: [UInt8]) throws {
        try self.sink(bytes)
        self.offset += Int64(bytes.count)
    }

    /// Adds a row: one value per column, in column order.
    public func append(_ row: [ParquetValue]) throws {
        guard !self.closed else { throw ParquetError("the file is closed") }
        guard row.count == self.columns.count else {
            throw ParquetError("a row has \(row.count) values for \(self.columns.count) columns")
        }
        for index in row.indices { try self.buffers[index].append(row[index]) }
        if self.buffers[0].rowCount >= self.rowGroupRows || self.buffers.reduce(0, { $0 + $1.bufferedBytes }) >= self.rowGroupBytes {
            try self.flushRowGroup()
        }
    }

    private func flushRowGroup() throws {
        let rows = self.buffers.first?.rowCount ?? 0
        guard rows > 0 else { return }
        var chunks: [ColumnChunkMetadata] = []
        var uncompressedTotal: Int64 = 0
        for buffer in self.buffers {
            let chunkOffset = self.offset
            var dictionaryPageOffset: Int64?
            var sizes = (uncompressed: Int64(0), compressed: Int64(0))
            let valuesEncoding: Int32
            let page: [UInt8]
            if let dictionary = buffer.dictionaryEncoding {
                dictionaryPageOffset = chunkOffset
                let body = try self.compress(dictionary.values)
                let header = ThriftCompactWriter.message { header in
                    header.i32(1, 2)  // DICTIONARY_PAGE
                    header.i32(2, Int32(dictionary.values.count))
                    header.i32(3, Int32(body.count))
                    header.struct(7) { page in
                        page.i32(1, Int32(dictionary.entries))
                        page.i32(2, 0)  // PLAIN
                    }
                }
                try self.emit(header)
                try self.emit(body)
                sizes = (Int64(header.count + dictionary.values.count), Int64(header.count + body.count))
                valuesEncoding = 8  // RLE_DICTIONARY
                page = buffer.encodedDefinitionLevels + dictionary.indices
            } else {
                valuesEncoding = 0  // PLAIN
                page = buffer.encodedDefinitionLevels + buffer.values
            }
            let body = try self.compress(page)
            let header = ThriftCompactWriter.message { header in
                header.i32(1, 0)  // DATA_PAGE
                header.i32(2, Int32(page.count))
                header.i32(3, Int32(body.count))
                header.struct(5) { data in
                    data.i32(1, Int32(rows))
                    data.i32(2, valuesEncoding)
                    data.i32(3, 3)  // RLE definition levels
                    data.i32(4, 3)  // RLE repetition levels (none: a flat schema)
                }
            }
            let pageOffset = self.offset
            try self.emit(header)
            try self.emit(body)
            sizes.uncompressed += Int64(header.count + page.count)
            sizes.compressed += Int64(header.count + body.count)
            uncompressedTotal += sizes.uncompressed
            chunks.append(
                ColumnChunkMetadata(
                    column: buffer.column,
                    fileOffset: chunkOffset,
                    dataPageOffset: pageOffset,
                    dictionaryPageOffset: dictionaryPageOffset,
                    values: Int64(rows),
                    uncompressedSize: sizes.uncompressed,
                    compressedSize: sizes.compressed,
                    statistics: buffer.statistics
                )
            )
        }
        self.rowGroups.append(RowGroupMetadata(columns: chunks, rows: Int64(rows), uncompressedBytes: uncompressedTotal))
        self.totalRows += Int64(rows)
        self.buffers = self.columns.map { ParquetColumnBuffer($0) }
    }

    private func compress(_ page: [UInt8]) throws -> [UInt8] {
        switch self.compression {
        case .uncompressed:
            return page
        case .zstd:
            guard let zstd = SystemZstd.available else { throw ParquetError("zstd compression needs libzstd.so.1 (apt-get install libzstd1)") }
            return try zstd.compress(page, level: 3)
        case .gzip:
            var input = ByteBuffer(bytes: page)
            let compressor = CompressionAlgorithm.gzip().compressor
            try compressor.startStream()
            var output = ByteBuffer()
            output.reserveCapacity(compressor.maxSize(from: input))
            try compressor.streamDeflate(from: &input, to: &output, flush: .finish)
            try compressor.finishStream()
            return Array(output.readableBytesView)
        }
    }

    /// Writes what is buffered and the footer. The file is complete only after this.
    public func close() throws {
        guard !self.closed else { return }
        try self.flushRowGroup()
        self.closed = true
        let footer = self.footer()
        try self.emit(footer)
        try self.emit(withUnsafeBytes(of: UInt32(footer.count).littleEndian) { Array($0) } + Array("PAR1".utf8))
    }

    /// Rows written so far (flushed row groups).
    public var rowsWritten: Int64 { self.totalRows }

    private func footer() -> [UInt8] {
        ThriftCompactWriter.message { file in
            file.i32(1, 1)  // version
            file.list(2, structs: [nil] + self.columns.map { Optional($0) }) { element, column in
                guard let column else {
                    element.string(4, "schema")
                    element.i32(5, Int32(self.columns.count))
                    return
                }
                element.i32(1, column.physicalType)
                element.i32(3, 1)  // OPTIONAL
                element.string(4, column.name)
                switch column.kind {
                case .string:
                    element.i32(6, 0)  // converted type UTF8
                    element.struct(10) { logical in logical.struct(1) { _ in } }  // STRING
                case .timestampMicros:
                    element.i32(6, 10)  // converted type TIMESTAMP_MICROS
                    element.struct(10) { logical in
                        logical.struct(8) { timestamp in
                            timestamp.bool(1, true)  // adjusted to UTC
                            timestamp.struct(2) { unit in unit.struct(2) { _ in } }  // MICROS
                        }
                    }
                default:
                    break
                }
            }
            file.i64(3, self.totalRows)
            file.list(4, structs: self.rowGroups) { group, rowGroup in
                group.list(1, structs: rowGroup.columns) { chunk, metadata in
                    chunk.i64(2, metadata.fileOffset)
                    chunk.struct(3) { meta in
                        meta.i32(1, metadata.column.physicalType)
                        // PLAIN (values or the dictionary), RLE (levels), RLE_DICTIONARY (indices).
                        meta.list(2, i32: metadata.dictionaryPageOffset == nil ? [0, 3] : [0, 3, 8])
                        meta.list(3, strings: [metadata.column.name])
                        meta.i32(4, self.compression.codec)
                        meta.i64(5, metadata.values)
                        meta.i64(6, metadata.uncompressedSize)
                        meta.i64(7, metadata.compressedSize)
                        meta.i64(9, metadata.dataPageOffset)
                        if let dictionaryOffset = metadata.dictionaryPageOffset { meta.i64(11, dictionaryOffset) }
                        meta.struct(12) { statistics in
                            statistics.i64(3, metadata.statistics.nullCount)
                            if let maximum = metadata.statistics.maximum { statistics.binary(5, maximum) }
                            if let minimum = metadata.statistics.minimum { statistics.binary(6, minimum) }
                        }
                    }
                }
                group.i64(2, rowGroup.uncompressedBytes)
                group.i64(3, rowGroup.rows)
            }
            file.string(6, "shadowd")
            // Type-defined order for every column: without it readers ignore min_value/max_value.
            file.list(7, structs: self.columns) { order, _ in order.struct(1) { _ in } }
        }
    }
}
