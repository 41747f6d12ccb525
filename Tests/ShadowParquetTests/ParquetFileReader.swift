import CompressNIO
import NIOCore
import ShadowParquet

@testable import ShadowParquet

/// A flat-schema Parquet reader written from the format spec, independent of the writer: it
/// checks the framing, decodes the footer and every page (dictionary or PLAIN, definition levels,
/// GZIP or ZSTD), and gives back the rows and each chunk's metadata.
struct ParquetFileReader {
    struct Chunk {
        var name: String
        var codec: Int64
        var encodings: [Int64]
        var hasDictionary: Bool
        var minimum: [UInt8]?
        var maximum: [UInt8]?
        var nullCount: Int64?
    }

    let footer: ThriftValue
    let columns: [(name: String, physicalType: Int64)]
    var rowGroups: [[Chunk]] = []
    /// Columns of cells, all row groups concatenated.
    var cells: [[ParquetValue]]

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 12, Array(bytes.prefix(4)) == Array("PAR1".utf8), Array(bytes.suffix(4)) == Array("PAR1".utf8) else {
            throw ThriftError(description: "no PAR1 magic at both ends")
        }
        let length = bytes.suffix(8).prefix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard length > 0, length <= bytes.count - 12 else { throw ThriftError(description: "footer length \(length) out of range") }
        var reader = ThriftCompactReader(bytes, at: bytes.count - 8 - length)
        self.footer = try reader.readStruct()
        guard reader.position == bytes.count - 8 else { throw ThriftError(description: "footer did not end at its length") }
        let schema = self.footer[2]?.list ?? []
        guard let root = schema.first, root[5]?.int == Int64(schema.count - 1) else { throw ThriftError(description: "root's num_children is wrong") }
        self.columns = schema.dropFirst().map { ($0[4]?.string ?? "?", $0[1]?.int ?? -1) }
        self.cells = Array(repeating: [], count: self.columns.count)
        for group in self.footer[4]?.list ?? [] {
            let rows = Int(group[3]?.int ?? -1)
            var chunks: [Chunk] = []
            for (index, chunk) in (group[1]?.list ?? []).enumerated() {
                guard let meta = chunk[3] else { throw ThriftError(description: "a chunk without metadata") }
                let statistics = meta[12]
                chunks.append(
                    Chunk(
                        name: meta[3]?.list?.first?.string ?? "?",
                        codec: meta[4]?.int ?? -1,
                        encodings: meta[2]?.list?.compactMap(\.int) ?? [],
                        hasDictionary: meta[11] != nil,
                        minimum: statistics?[6]?.binary,
                        maximum: statistics?[5]?.binary,
                        nullCount: statistics?[3]?.int
                    )
                )
                let values = try Self.readChunk(bytes, meta: meta, physicalType: self.columns[index].physicalType)
                guard values.count == rows, Int(meta[5]?.int ?? -1) == rows else {
                    throw ThriftError(description: "\(values.count) values for \(rows) rows")
                }
                self.cells[index] += values
            }
            self.rowGroups.append(chunks)
        }
        guard self.footer[3]?.int == Int64(self.cells.first?.count ?? 0) else {
            throw ThriftError(description: "num_rows disagrees with the row groups")
        }
    }

    private static func readChunk(_ bytes: [UInt8], meta: ThriftValue, physicalType: Int64) throws -> [ParquetValue] {
        var position = Int(meta[11]?.int ?? meta[9]?.int ?? -1)
        let codec = meta[4]?.int ?? -1
        var dictionary: [ParquetValue] = []
        while true {
            var reader = ThriftCompactReader(bytes, at: position)
            let header = try reader.readStruct()
            let compressedSize = Int(header[3]?.int ?? -1)
            let body = Array(bytes[reader.position..<reader.position + compressedSize])
            let page = try Self.decompress(body, codec: codec, size: Int(header[2]?.int ?? -1))
            position = reader.position + compressedSize
            if header[1]?.int == 2 {
                let count = Int(header[7]?[1]?.int ?? -1)
                var offset = 0
                dictionary = try (0..<count).map { _ in try Self.plain(page, &offset, physicalType) }
                continue
            }
            guard header[1]?.int == 0, let data = header[5] else { throw ThriftError(description: "expected a v1 data page") }
            let rows = Int(data[1]?.int ?? -1)
            var offset = 0
            let levelsLength = page.prefix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            offset = 4
            let levels = try RLEHybridDecoder.decode(Array(page[offset..<offset + levelsLength]), bitWidth: 1, count: rows)
            offset += levelsLength
            let present = levels.filter { $0 == 1 }.count
            var values: [ParquetValue]
            switch data[2]?.int {
            case 0: values = try (0..<present).map { _ in try Self.plain(page, &offset, physicalType) }
            case 8:
                let width = Int(page[offset])
                let indices = try RLEHybridDecoder.decode(Array(page[(offset + 1)...]), bitWidth: width, count: present)
                values = try indices.map { index in
                    guard Int(index) < dictionary.count else { throw ThriftError(description: "index \(index) past the dictionary") }
                    return dictionary[Int(index)]
                }
            default: throw ThriftError(description: "unexpected encoding \(String(describing: data[2]))")
            }
            var iterator = values.makeIterator()
            return levels.map { $0 == 1 ? iterator.next()! : .null }
        }
    }

    private static func decompress(_ body: [UInt8], codec: Int64, size: Int) throws -> [UInt8] {
        switch codec {
        case 0: return body
        case 6: return try SystemZstd.available!.decompress(body, size: size)
        case 2:
            var input = ByteBuffer(bytes: body)
            var output = ByteBufferAllocator().buffer(capacity: size)
            try input.decompress(to: &output, with: .gzip())
            return Array(output.readableBytesView)
        default: throw ThriftError(description: "codec \(codec)")
        }
    }

    private static func plain(_ page: [UInt8], _ offset: inout Int, _ physicalType: Int64) throws -> ParquetValue {
        func littleEndian(_ count: Int) throws -> UInt64 {
            guard offset + count <= page.count else { throw ThriftError(description: "PLAIN value past the page") }
            defer { offset += count }
            return page[offset..<offset + count].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        }
        switch physicalType {
        case 2: return .int(Int64(bitPattern: try littleEndian(8)))
        case 5: return .double(Double(bitPattern: try littleEndian(8)))
        case 6:
            let length = Int(try littleEndian(4))
            guard offset + length <= page.count else { throw ThriftError(description: "byte array past the page") }
            defer { offset += length }
            return .bytes(Array(page[offset..<offset + length]))
        default: throw ThriftError(description: "physical type \(physicalType)")
        }
    }
}

/// The spec's RLE / bit-packing hybrid, decoded.
enum RLEHybridDecoder {
    static func decode(_ bytes: [UInt8], bitWidth: Int, count: Int) throws -> [UInt32] {
        var reader = ThriftCompactReader(bytes)
        var values: [UInt32] = []
        while values.count < count {
            let header = try reader.varint()
            if header & 1 == 1 {
                let total = Int(header >> 1) * 8
                var accumulator: UInt64 = 0
                var bits = 0
                for _ in 0..<total {
                    while bits < bitWidth {
                        accumulator |= UInt64(try reader.byte()) << bits
                        bits += 8
                    }
                    values.append(UInt32(accumulator & ((1 << UInt64(bitWidth)) - 1)))
                    accumulator >>= UInt64(bitWidth)
                    bits -= bitWidth
                }
            } else {
                var value: UInt32 = 0
                for byte in 0..<((bitWidth + 7) / 8) { value |= UInt32(try reader.byte()) << (8 * byte) }
                values += repeatElement(value, count: Int(header >> 1))
            }
        }
        return Array(values.prefix(count))
    }
}
