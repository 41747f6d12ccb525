import NIOCore
import NIOHTTP1

/// Where an HTTP/1.1 upstream connection's requests enter its pipeline, as bytes: below the
/// response decoder, so a request crosses no handler on its way to the socket (or TLS).
///
/// NIO's request encoder sat behind the decoder's write hook: each request part crossed both
/// as an `NIOAny` and was encoded there (~10% of the event loop for two requests per client
/// request). The decoder still hears of every request head (it pairs answers with requests:
/// an answer to HEAD has no body) through ``HTTPResponseDecoder/write(data:)``.
final class RequestOutlet: ChannelOutboundHandler, RemovableChannelHandler {
    /// Bytes pass through untouched (a pipeline handler must be inbound or outbound; nothing
    /// above this writes, though).
    typealias OutboundIn = ByteBuffer

    private let decoder: HTTPResponseDecoder
    private var context: ChannelHandlerContext?
    /// The request being written has a chunked body.
    private var chunked = false

    init(decoder: HTTPResponseDecoder) {
        self.decoder = decoder
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes one part of a request; with `flush`, everything written so far goes out.
    func write(_ part: HTTPClientRequestPart, flush: Bool) {
        guard let context = self.context else { return }
        switch part {
        case .head(let head):
            self.decoder.write(data: part)
            self.chunked = head.headers.contains(name: "transfer-encoding")
            var buffer = context.channel.allocator.buffer(capacity: 256 + 64 * head.headers.count)
            Self.encode(head, into: &buffer)
            context.write(NIOAny(buffer), promise: nil)
        case .body(let data):
            let size = data.readableBytes
            guard size > 0 else { break }
            if self.chunked {
                var frame = context.channel.allocator.buffer(capacity: 18)
                frame.writeString(String(size, radix: 16))
                frame.writeStaticString("\r\n")
                context.write(NIOAny(frame), promise: nil)
            }
            switch data {
            case .byteBuffer(let buffer): context.write(NIOAny(buffer), promise: nil)
            case .fileRegion(let region): context.write(NIOAny(IOData.fileRegion(region)), promise: nil)
            }
            if self.chunked { context.write(NIOAny(context.channel.allocator.buffer(staticString: "\r\n")), promise: nil) }
        case .end:
            if self.chunked { context.write(NIOAny(context.channel.allocator.buffer(staticString: "0\r\n\r\n")), promise: nil) }
            self.chunked = false
        }
        if flush { context.flush() }
    }

    func flush() {
        self.context?.flush()
    }

    /// The request line and header block as HTTP/1.1 sends them. The fields are the sidecar's
    /// own or came from the client through llhttp, which admits no CR, LF or NUL in them.
    ///
    /// Copied in one pass into space reserved for the whole block: a `ByteBuffer` write per
    /// name, value and separator cost ~3% of the event loop for the two heads of a mirrored
    /// request (each write checks capacity and uniqueness).
    static func encode(_ head: HTTPRequestHead, into buffer: inout ByteBuffer) {
        let method = head.method.rawValue
        let version: StaticString = head.version == .http1_0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n"
        var size = method.utf8.count + 1 + head.uri.utf8.count + version.utf8CodeUnitCount + 2
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { space in
            var at = 0
            func put(_ text: String) {
                var text = text
                text.withUTF8 { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: space[at..<(at + bytes.count)]).copyMemory(from: UnsafeRawBufferPointer(bytes))
                    at += bytes.count
                }
            }
            func put(_ first: UInt8, _ second: UInt8) {
                space[at] = first
                space[at + 1] = second
                at += 2
            }
            put(method)
            space[at] = UInt8(ascii: " ")
            at += 1
            put(head.uri)
            UnsafeMutableRawBufferPointer(rebasing: space[at..<(at + version.utf8CodeUnitCount)])
                .copyMemory(from: UnsafeRawBufferPointer(start: version.utf8Start, count: version.utf8CodeUnitCount))
            at += version.utf8CodeUnitCount
            for (name, value) in head.headers {
                put(name)
                put(UInt8(ascii: ":"), UInt8(ascii: " "))
                put(value)
                put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            }
            put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            return at
        }
    }
}
