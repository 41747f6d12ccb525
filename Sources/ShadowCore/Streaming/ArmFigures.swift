/// What one arm's answer says beyond its bytes: streaming timings, token usage, cost, and the
/// body the scorer compares (a streamed answer reassembled into one document).
public struct ArmFigures: Sendable, Equatable {
    /// Dispatch to the end of the first event carrying content, in microseconds (streams only).
    public var firstTokenMicros: Int64?
    /// Dispatch to the end of the last event carrying content (streams only): tokens per second
    /// are counted between the first and the last token, not up to the end of the response.
    public var lastTokenMicros: Int64?
    /// Server-Sent Events received (streams only).
    public var events: Int?
    public var promptTokens: Double?
    public var completionTokens: Double?
    /// At the arm's configured price; `nil` without a price (or without the token counts it needs).
    public var cost: Double?
    /// The bytes to score: the reassembled `chat.completion` for a stream, else the body.
    public var scoringBody: [UInt8]
    /// Something a reader of the pair should know about the stream (malformed events, no `[DONE]`).
    public var note: String?

    public init(scoringBody: [UInt8]) {
        self.scoringBody = scoringBody
    }
}

extension ArmResult {
    /// The figures of this answer.
    /// - Parameter readUsage: parse a JSON body for `usage` (OpenAI-compatible routes, or priced
    ///   per token).
    public func figures(readUsage: Bool) -> ArmFigures {
        var figures = ArmFigures(scoringBody: self.body.bytes)
        if ServerSentEvents.isEventStream(contentType: self.contentType, body: self.body.bytes) {
            let events = ServerSentEvents.parse(self.body.bytes)
            let stream: (document: JSONValue, events: Int, malformed: Int, first: Int?, last: Int?, ended: Bool, prompt: Double?, completion: Double?)
            let finalEvent: String
            if AnthropicStream.recognizes(events) {
                let s = AnthropicStream(events)
                stream = (s.document, s.events, s.malformed, s.firstContentOffset, s.lastContentOffset, s.sawStop, s.inputTokens, s.outputTokens)
                finalEvent = "message_stop"
            } else {
                let s = OpenAIStream(events)
                stream = (s.document, s.events, s.malformed, s.firstContentOffset, s.lastContentOffset, s.sawDone, s.promptTokens, s.completionTokens)
                finalEvent = "[DONE]"
            }
            figures.scoringBody = Array(stream.document.serialized.utf8)
            figures.events = stream.events
            figures.firstTokenMicros = stream.first.flatMap { self.arrival(ofOffset: $0) }
            figures.lastTokenMicros = stream.last.flatMap { self.arrival(ofOffset: $0) }
            figures.promptTokens = stream.prompt
            figures.completionTokens = stream.completion
            var notes: [String] = []
            if stream.malformed > 0 { notes.append("\(stream.malformed) event(s) not JSON") }
            if !stream.ended, self.error == nil, !self.body.truncated { notes.append("no \(finalEvent) event") }
            if self.body.truncated { notes.append("stream cut at storage.max_stored_body") }
            figures.note = notes.isEmpty ? nil : notes.joined(separator: "; ")
        } else if readUsage, self.body.bytes.first == UInt8(ascii: "{"), !self.body.truncated,
            let document = try? JSONParser(maximumDepth: 64).parse(self.body.bytes), let usage = document["usage"]
        {
            // OpenAI's names, or Anthropic's.
            if case .number(let prompt)? = usage["prompt_tokens"] ?? usage["input_tokens"] { figures.promptTokens = prompt }
            if case .number(let completion)? = usage["completion_tokens"] ?? usage["output_tokens"] { figures.completionTokens = completion }
        }
        if let price = self.price, self.error == nil {
            if !price.usesTokens || (figures.promptTokens != nil || figures.completionTokens != nil) {
                figures.cost = price.cost(promptTokens: figures.promptTokens ?? 0, completionTokens: figures.completionTokens ?? 0)
            }
        }
        return figures
    }
}
