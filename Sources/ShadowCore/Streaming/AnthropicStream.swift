/// An Anthropic Messages API stream (`message_start`, `content_block_start`/`_delta`/`_stop`,
/// `message_delta`, `message_stop`) put back together as the single `message` it stands for, so
/// streamed and non-streamed answers score alike.
public struct AnthropicStream: Sendable, Equatable {
    /// The reassembled `message`.
    public var document: JSONValue
    /// Events with a `data` line.
    public var events: Int
    /// Events whose data was not JSON.
    public var malformed: Int
    /// Where the first event carrying content (text or tool input) ended.
    public var firstContentOffset: Int?
    /// Where the last event carrying content ended.
    public var lastContentOffset: Int?
    /// A `message_stop` event arrived (the stream's end, as `[DONE]` is OpenAI's).
    public var sawStop: Bool
    public var inputTokens: Double?
    public var outputTokens: Double?

    /// Whether events look like an Anthropic stream (its first event is `message_start`).
    public static func recognizes(_ events: [ServerSentEvents.Event]) -> Bool {
        guard let first = events.first, first.data.contains("message_start") else { return false }
        return (try? JSONParser(maximumDepth: 64).parse(first.data))?["type"] == .string("message_start")
    }

    public init(_ events: [ServerSentEvents.Event]) {
        var message: JSONValue = .null
        /// Per block index: its type and what accumulated (text, or tool input JSON text).
        var blocks: [Int: (start: JSONValue, text: String, inputJSON: String)] = [:]
        var stopReason: JSONValue = .null
        var stopSequence: JSONValue = .null
        var inputTokens: Double?
        var outputTokens: Double?
        var malformed = 0
        var firstContent: Int?
        var lastContent: Int?
        var stopped = false
        let parser = JSONParser(maximumDepth: 64)
        func number(_ value: JSONValue?) -> Double? {
            if case .number(let n)? = value { return n }
            return nil
        }
        for event in events {
            guard let data = try? parser.parse(event.data), case .string(let type)? = data["type"] else {
                malformed += 1
                continue
            }
            var carried = false
            switch type {
            case "message_start":
                message = data["message"] ?? .null
                inputTokens = number(message["usage"]?["input_tokens"]) ?? inputTokens
                outputTokens = number(message["usage"]?["output_tokens"]) ?? outputTokens
            case "content_block_start":
                let index = number(data["index"]).map { Int($0) } ?? blocks.count
                let start = data["content_block"] ?? .object([])
                var text = ""
                if case .string(let initial)? = start["text"] { text = initial }
                blocks[index] = (start, text, "")
            case "content_block_delta":
                let index = number(data["index"]).map { Int($0) } ?? max(0, blocks.count - 1)
                var block = blocks[index] ?? (.object([("type", .string("text"))]), "", "")
                let delta = data["delta"]
                if case .string(let text)? = delta?["text"], !text.isEmpty {
                    block.text += text
                    carried = true
                }
                if case .string(let partial)? = delta?["partial_json"], !partial.isEmpty {
                    block.inputJSON += partial
                    carried = true
                }
                blocks[index] = block
            case "message_delta":
                if let reason = data["delta"]?["stop_reason"], reason != .null { stopReason = reason }
                if let sequence = data["delta"]?["stop_sequence"], sequence != .null { stopSequence = sequence }
                // Cumulative counts: the last one wins.
                outputTokens = number(data["usage"]?["output_tokens"]) ?? outputTokens
                inputTokens = number(data["usage"]?["input_tokens"]) ?? inputTokens
            case "message_stop":
                stopped = true
            default:
                break  // ping, content_block_stop, error: nothing to assemble
            }
            if carried {
                if firstContent == nil { firstContent = event.endOffset }
                lastContent = event.endOffset
            }
        }
        let content: [JSONValue] = blocks.sorted { $0.key < $1.key }.map { _, block in
            if block.start["type"] == .string("tool_use") {
                let input =
                    block.inputJSON.isEmpty
                    ? (block.start["input"] ?? .object([])) : ((try? parser.parse(block.inputJSON)) ?? .string(block.inputJSON))
                return .object([
                    ("type", .string("tool_use")), ("id", block.start["id"] ?? .null), ("name", block.start["name"] ?? .null), ("input", input),
                ])
            }
            return .object([("type", block.start["type"] ?? .string("text")), ("text", .string(block.text))])
        }
        var usage: [(key: String, value: JSONValue)] = []
        if let inputTokens { usage.append(("input_tokens", .number(inputTokens))) }
        if let outputTokens { usage.append(("output_tokens", .number(outputTokens))) }
        var document: [(key: String, value: JSONValue)] = [
            ("id", message["id"] ?? .null), ("type", .string("message")), ("role", .string("assistant")), ("model", message["model"] ?? .null),
            ("content", .array(content)), ("stop_reason", stopReason), ("stop_sequence", stopSequence),
        ]
        if !usage.isEmpty { document.append(("usage", .object(usage))) }
        self.document = .object(document)
        self.events = events.count
        self.malformed = malformed
        self.firstContentOffset = firstContent
        self.lastContentOffset = lastContent
        self.sawStop = stopped
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}
