/// Server-Sent Events (`text/event-stream`), as far as a comparison needs them: each event's
/// `data` and the byte offset where the event ended (to match it with the chunk that carried it).
public enum ServerSentEvents {
    public struct Event: Sendable, Equatable {
        /// The `data:` lines joined with newlines.
        public var data: String
        /// Offset just past the blank line that ended the event.
        public var endOffset: Int
    }

    /// Whether a body looks like an event stream (by content type, or by its first bytes).
    public static func isEventStream(contentType: String?, body: [UInt8]) -> Bool {
        // Compared in place: the recorder asks this of every answer it scores.
        if let contentType, HeaderPolicy.hasPrefixLowercased(contentType, "text/event-stream") { return true }
        return body.starts(with: "data:".utf8) || body.starts(with: "event:".utf8) || body.starts(with: ": ".utf8)
    }

    /// Splits a stream into events (https://html.spec.whatwg.org/multipage/server-sent-events.html,
    /// "Interpreting an event stream": lines end with LF, CR LF or CR; `:` starts a comment; an
    /// empty line dispatches). A final event without its blank line is kept (a cut stream).
    public static func parse(_ bytes: [UInt8]) -> [Event] {
        var events: [Event] = []
        var data: [String] = []
        var hasData = false
        var lineStart = 0
        var index = 0
        func finishLine(_ end: Int, next: Int) {
            let line = bytes[lineStart..<end]
            lineStart = next
            if line.isEmpty {
                if hasData { events.append(Event(data: data.joined(separator: "\n"), endOffset: next)) }
                data = []
                hasData = false
                return
            }
            if line.first == UInt8(ascii: ":") { return }
            let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
            let field = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            var value = colon < line.endIndex ? line[(colon + 1)...] : []
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
            if field == "data" {
                data.append(String(decoding: value, as: UTF8.self))
                hasData = true
            }
        }
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\n"):
                finishLine(index, next: index + 1)
            case UInt8(ascii: "\r"):
                let next = index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\n") ? index + 2 : index + 1
                finishLine(index, next: next)
                index = next - 1
            default:
                break
            }
            index += 1
        }
        if lineStart < bytes.count { finishLine(bytes.count, next: bytes.count) }
        if hasData { events.append(Event(data: data.joined(separator: "\n"), endOffset: bytes.count)) }
        return events
    }

    /// Whether the stream ends with a complete final event: `[DONE]` (OpenAI) or a
    /// `message_stop` event (Anthropic), followed by its blank line. A client that has read it has
    /// the whole answer; real clients (the official `openai` package) close the connection right
    /// there, before the response's terminating chunk.
    public static func endsWithFinalEvent(_ bytes: [UInt8]) -> Bool {
        let lf = UInt8(ascii: "\n")
        let cr = UInt8(ascii: "\r")
        let terminated =
            bytes.count >= 2
            && (bytes.suffix(2).elementsEqual([lf, lf]) || bytes.suffix(2).elementsEqual([cr, cr])
                || bytes.suffix(4).elementsEqual([cr, lf, cr, lf]))
        guard terminated, let last = Self.parse(bytes).last else { return false }
        let data = last.data.trimmingSpaces()
        if data == "[DONE]" { return true }
        guard data.first == "{", case .string("message_stop")? = (try? JSONParser(maximumDepth: 8).parse(data))?["type"] else { return false }
        return true
    }
}
