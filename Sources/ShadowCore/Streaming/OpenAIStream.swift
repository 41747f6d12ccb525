/// An OpenAI-compatible streamed answer (`chat.completion.chunk` events, or legacy
/// `text_completion` chunks) put back together as the single `chat.completion` it stands for,
/// so the text scorer compares streamed and non-streamed answers alike.
public struct OpenAIStream: Sendable, Equatable {
    /// The reassembled answer.
    public var document: JSONValue
    /// Events with a `data` line, including `[DONE]`.
    public var events: Int
    /// Events whose data was not JSON (other than `[DONE]`).
    public var malformed: Int
    /// Where the first event carrying content (text or a tool call) ended.
    public var firstContentOffset: Int?
    /// Where the last event carrying content ended (the last token's arrival, for tokens/s).
    public var lastContentOffset: Int?
    public var sawDone: Bool
    public var promptTokens: Double?
    public var completionTokens: Double?

    public init(_ events: [ServerSentEvents.Event]) {
        var content = ""
        var finishReason: JSONValue = .null
        var model: JSONValue = .null
        var toolCalls: [Int: (id: String, name: String, arguments: String)] = [:]
        var malformed = 0
        var firstContent: Int?
        var lastContent: Int?
        var done = false
        var usage: JSONValue?
        let parser = JSONParser(maximumDepth: 64)
        for event in events {
            if event.data.trimmingSpaces() == "[DONE]" {
                done = true
                continue
            }
            guard let chunk = try? parser.parse(event.data), case .object = chunk else {
                malformed += 1
                continue
            }
            if case .string = chunk["model"] ?? .null { model = chunk["model"]! }
            if let found = chunk["usage"], case .object = found { usage = found }
            guard case .array(let choices)? = chunk["choices"], let choice = choices.first else { continue }
            var carried = false
            if case .string(let text)? = choice["delta"]?["content"] ?? choice["text"], !text.isEmpty {
                content += text
                carried = true
            }
            if case .array(let calls)? = choice["delta"]?["tool_calls"] {
                for (position, call) in calls.enumerated() {
                    let index = call["index"].flatMap { if case .number(let n) = $0 { Int(n) } else { nil } } ?? position
                    var entry = toolCalls[index] ?? ("", "", "")
                    if case .string(let id)? = call["id"] { entry.id = id }
                    if case .string(let name)? = call["function"]?["name"] { entry.name += name }
                    if case .string(let arguments)? = call["function"]?["arguments"] { entry.arguments += arguments }
                    toolCalls[index] = entry
                    carried = true
                }
            }
            if carried {
                if firstContent == nil { firstContent = event.endOffset }
                lastContent = event.endOffset
            }
            if let reason = choice["finish_reason"], reason != .null { finishReason = reason }
        }
        var message: [(key: String, value: JSONValue)] = [("role", .string("assistant")), ("content", .string(content))]
        if !toolCalls.isEmpty {
            message.append(
                (
                    "tool_calls",
                    .array(
                        toolCalls.sorted { $0.key < $1.key }.map { _, call in
                            .object([
                                ("id", .string(call.id)), ("type", .string("function")),
                                ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))])),
                            ])
                        }
                    )
                )
            )
        }
        var document: [(key: String, value: JSONValue)] = [
            ("object", .string("chat.completion")), ("model", model),
            ("choices", .array([.object([("index", .number(0)), ("message", .object(message)), ("finish_reason", finishReason)])])),
        ]
        if let usage { document.append(("usage", usage)) }
        self.document = .object(document)
        self.events = events.count
        self.malformed = malformed
        self.firstContentOffset = firstContent
        self.lastContentOffset = lastContent
        self.sawDone = done
        self.promptTokens = usage?["prompt_tokens"].flatMap { if case .number(let n) = $0 { n } else { nil } }
        self.completionTokens = usage?["completion_tokens"].flatMap { if case .number(let n) = $0 { n } else { nil } }
    }
}
