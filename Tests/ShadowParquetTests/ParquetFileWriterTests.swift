import Testing

@testable import ShadowParquet

/// The writer read back by `ParquetFileReader`, a reader written from the spec that shares no code
/// with it: every cell, NULL pattern, row-group statistic and encoding choice. DuckDB and pyarrow
/// read the exporter's files in `scripts/export/check`.
@Suite struct ParquetFileWriterTests {
    static let columns = [
        ParquetColumn("id", .int64), ParquetColumn("at", .timestampMicros), ParquetColumn("score", .double),
        ParquetColumn("route", .string), ParquetColumn("body", .bytes),
    ]

    /// Seeded rows: repeating routes (dictionary), unique bodies (PLAIN), NULLs in runs and alone.
    static func rows(_ count: Int, seed: UInt64) -> [[ParquetValue]] {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        return (0..<count).map { index in
            let nullRun = (index / 20) % 5 == 3
            return [
                .int(Int64(index) - 500),
                nullRun ? .null : .int(1_780_000_000_000_000 + Int64(index) * 1_000),
                next() % 7 == 0 ? .null : .double(Double(next() % 10_000) / 7 - 400),
                .string(["classifier", "ranker", "llm", ""][Int(next() % 4)]),
                next() % 11 == 0 ? .null : .bytes((0..<Int(next() % 90)).map { _ in UInt8(truncatingIfNeeded: next()) }),
            ]
        }
    }

    func write(_ rows: [[ParquetValue]], compression: ParquetCompression, rowGroupRows: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        let writer = try ParquetFileWriter(columns: Self.columns, compression: compression, rowGroupRows: rowGroupRows) { bytes += $0 }
        for row in rows { try writer.append(row) }
        try writer.close()
        #expect(throws: ParquetError.self) { try writer.append(rows[0]) }
        return bytes
    }

    @Test(arguments: [ParquetCompression.uncompressed, .gzip, .zstd])
    func everyCellReadsBackAsWritten(compression: ParquetCompression) throws {
        let rows = Self.rows(1_000, seed: 7)
        let file = try ParquetFileReader(self.write(rows, compression: compression, rowGroupRows: 300))
        #expect(file.columns.map(\.name) == Self.columns.map(\.name))
        #expect(file.rowGroups.count == 4)
        #expect(file.rowGroups.allSatisfy { $0.allSatisfy { $0.codec == Int64(compression.codec) } })
        for (index, column) in Self.columns.enumerated() {
            // Ints written to a double column come back as doubles; none are here.
            #expect(file.cells[index] == rows.map { $0[index] }, "column \(column.name)")
        }
    }

    @Test func repeatingColumnsGetADictionaryAndUniqueOnesStayPlain() throws {
        let file = try ParquetFileReader(self.write(Self.rows(1_000, seed: 1), compression: .zstd, rowGroupRows: 1_000))
        let chunks = Dictionary(uniqueKeysWithValues: file.rowGroups[0].map { ($0.name, $0) })
        #expect(chunks["route"]?.hasDictionary == true && chunks["route"]?.encodings.contains(8) == true)
        #expect(chunks["id"]?.hasDictionary == false && chunks["body"]?.hasDictionary == false)
    }

    @Test func aDictionaryThatGrowsTooLargeIsDroppedForPlain() throws {
        let distinct = ParquetColumnBuffer.maxDictionaryEntries + 10
        var bytes: [UInt8] = []
        let writer = try ParquetFileWriter(columns: [ParquetColumn("s", .string)], rowGroupRows: distinct * 2) { bytes += $0 }
        // Each value twice: a dictionary would pay, were it not over its entry limit.
        for index in 0..<(distinct * 2) { try writer.append([.string("v\(index / 2)")]) }
        try writer.close()
        let file = try ParquetFileReader(bytes)
        #expect(file.rowGroups[0][0].hasDictionary == false)
        #expect(file.cells[0].count == distinct * 2 && file.cells[0].last == .string("v\(distinct - 1)"))
    }

    /// Engines skip row groups by these: each group's min/max must bound exactly its own values.
    @Test func statisticsBoundEachRowGroupExactly() throws {
        let rows = Self.rows(900, seed: 3)
        let file = try ParquetFileReader(self.write(rows, compression: .zstd, rowGroupRows: 250))
        for (group, chunks) in file.rowGroups.enumerated() {
            let slice = rows[(group * 250)..<min(rows.count, (group + 1) * 250)]
            let ids = slice.compactMap { if case .int(let value) = $0[0] { value } else { nil } }
            #expect(chunks[0].minimum == littleEndian(ids.min()!) && chunks[0].maximum == littleEndian(ids.max()!))
            let scores = slice.compactMap { if case .double(let value) = $0[2] { value } else { nil } }
            #expect(chunks[2].minimum == littleEndian(scores.min()!.bitPattern) && chunks[2].maximum == littleEndian(scores.max()!.bitPattern))
            #expect(chunks[2].nullCount == Int64(slice.count - scores.count))
            let routes = slice.compactMap { if case .bytes(let value) = $0[3] { value } else { nil } }
            #expect(chunks[3].minimum == routes.min { $0.lexicographicallyPrecedes($1) })
            #expect(chunks[3].maximum == routes.max { $0.lexicographicallyPrecedes($1) })
            // Bodies are too long to be useful for skipping: no min/max.
            #expect(chunks[4].minimum == nil && chunks[4].maximum == nil)
        }
    }

    @Test func anEmptyFileIsValidAndAWrongRowIsRefused() throws {
        var bytes: [UInt8] = []
        let writer = try ParquetFileWriter(columns: Self.columns) { bytes += $0 }
        #expect(throws: ParquetError.self) { try writer.append([.int(1)]) }
        #expect(throws: ParquetError.self) { try writer.append([.string("x"), .null, .null, .null, .null]) }
        try writer.close()
        let file = try ParquetFileReader(bytes)
        #expect(file.rowGroups.isEmpty && file.cells.allSatisfy(\.isEmpty))
    }

    @Test func theHybridEncodingRoundTripsRunsAndLiteralsAcrossGroupBoundaries() throws {
        var state: UInt64 = 42
        for trial in 0..<200 {
            let width = 1 + trial % 20
            var values: [UInt32] = []
            while values.count < 1 + trial * 7 {
                state = state &* 6_364_136_223_846_793_005 &+ 1
                let value = UInt32(truncatingIfNeeded: state >> 40) & UInt32((1 << width) - 1)
                values += repeatElement(value, count: Int(state >> 60) % 3 == 0 ? Int(state >> 50) % 30 : 1)
            }
            var encoder = RLEHybridEncoder(bitWidth: width)
            for value in values { encoder.append(value) }
            #expect(try RLEHybridDecoder.decode(encoder.finish(), bitWidth: width, count: values.count) == values, "trial \(trial)")
        }
    }
}

private func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}
