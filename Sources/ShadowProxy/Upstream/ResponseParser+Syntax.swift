import NIOCore
import NIOHTTP1

/// The byte-level grammar: lines, the status line, header fields and chunk sizes (RFC 9112).
/// Lines end in CRLF; a bare LF is accepted too (§2.2).
extension ResponseParser {
    private static let lf: UInt8 = 10
    private static let cr: UInt8 = 13

    /// The length of the first line of `input`, its line ending included, if it is complete.
    static func endOfLine(in input: ByteBuffer) -> Int? {
        input.readableBytesView.firstIndex(of: Self.lf).map { $0 - input.readerIndex + 1 }
    }

    /// The length of the block (a head, or trailers) at the start of `input`, up to and including
    /// the empty line that ends it, if it is complete. Trailers may be that empty line alone.
    static func endOfBlock(in input: ByteBuffer, startsWithLine: Bool = true) -> Int? {
        let view = input.readableBytesView
        var lineStart = view.startIndex
        var index = view.startIndex
        while let newline = view[index...].firstIndex(of: Self.lf) {
            let length = newline - lineStart
            let empty = length == 0 || (length == 1 && view[lineStart] == Self.cr)
            if empty && (lineStart != view.startIndex || !startsWithLine) {
                return newline - view.startIndex + 1
            }
            index = newline + 1
            lineStart = index
        }
        return nil
    }

    /// The lines of a block, without their line endings; the empty line that ends it is dropped.
    private static func lines(_ block: ByteBuffer) -> [ByteBufferView.SubSequence] {
        let view = block.readableBytesView
        var lines: [ByteBufferView.SubSequence] = []
        var start = view.startIndex
        while start < view.endIndex, let newline = view[start...].firstIndex(of: Self.lf) {
            var end = newline
            if end > start, view[end - 1] == Self.cr { end -= 1 }
            if end > start { lines.append(view[start..<end]) }
            start = newline + 1
        }
        return lines
    }

    /// A status line and its header fields.
    static func parseHead(_ block: ByteBuffer) throws(Failure) -> HTTPResponseHead {
        let lines = Self.lines(block)
        guard let statusLine = lines.first else { throw .malformed("empty head") }
        // HTTP-version SP 3DIGIT [SP reason-phrase]
        let bytes = Array(statusLine)
        guard bytes.count >= 12, bytes[0..<7].elementsEqual("HTTP/1.".utf8), bytes[8] == 0x20,
            bytes[7] == 0x30 || bytes[7] == 0x31,
            bytes[9..<12].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), bytes.count == 12 || bytes[12] == 0x20
        else {
            throw .malformed("status line \(String(decoding: bytes.prefix(64), as: UTF8.self).debugDescription)")
        }
        let code = bytes[9..<12].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard code >= 100 else { throw .malformed("status \(code)") }
        let reason = bytes.count > 13 ? String(decoding: bytes[13...], as: UTF8.self) : ""
        guard !reason.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else {
            throw .malformed("control character in the reason phrase")
        }
        var headers = HTTPHeaders()
        try Self.addFields(lines.dropFirst(), to: &headers)
        return HTTPResponseHead(
            version: bytes[7] == 0x31 ? .http1_1 : .http1_0,
            status: HTTPResponseStatus(statusCode: code, reasonPhrase: reason),
            headers: headers
        )
    }

    /// The fields of a trailer block.
    static func parseFields(_ block: ByteBuffer) throws(Failure) -> HTTPHeaders {
        var headers = HTTPHeaders()
        try Self.addFields(Self.lines(block)[...], to: &headers)
        return headers
    }

    /// `name: value` lines: a token name with no space before the colon, a value without control
    /// characters (but tab) and without the spaces around it. Folded lines are refused (§5.2).
    private static func addFields(_ lines: ArraySlice<ByteBufferView.SubSequence>, to headers: inout HTTPHeaders) throws(Failure) {
        for line in lines {
            guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex else {
                throw .malformed("header line without a name")
            }
            let name = line[line.startIndex..<colon]
            guard name.allSatisfy(Self.isTokenCharacter) else { throw .malformed("invalid header name") }
            var value = line[(colon + 1)...]
            while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
            while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
            guard !value.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                throw .malformed("control character in header \(String(decoding: name, as: UTF8.self))")
            }
            headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        }
    }

    /// RFC 9110 §5.6.2 tchar.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }

    /// A chunk-size line: hex digits, then optional extensions (ignored).
    static func chunkSize(_ line: ByteBuffer) throws(Failure) -> Int {
        var size = 0
        var digits = 0
        for byte in line.readableBytesView {
            let digit: Int
            switch byte {
            case 0x30...0x39: digit = Int(byte - 0x30)
            case 0x41...0x46: digit = Int(byte - 0x41 + 10)
            case 0x61...0x66: digit = Int(byte - 0x61 + 10)
            case 0x3B, 0x20, 0x09, Self.cr, Self.lf:
                guard digits > 0 else { throw .malformed("chunk size missing") }
                return size
            default: throw .malformed("invalid chunk size")
            }
            digits += 1
            guard digits <= 15 else { throw .malformed("chunk size too large") }
            size = size * 16 + digit
        }
        throw .malformed("chunk size line without an end")
    }
}
