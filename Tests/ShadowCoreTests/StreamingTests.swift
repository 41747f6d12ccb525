import Testing

@testable import ShadowCore

@Suite struct StreamingTests {
    static func chunk(_ delta: String, finish: String? = nil) -> String {
        #"data: {"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(finish.map { "\"\($0)\"" } ?? "null")}]}"#
            + "\n\n"
    }

    @Test func serverSentEventsFollowTheSpec() {
        let text = ": comment\r\nevent: x\r\ndata: a\r\ndata:  b\r\n\r\ndata:c\n\nid: 4\n\ndata: last"
        let events = ServerSentEvents.parse(Array(text.utf8))
        #expect(events.map(\.data) == ["a\n b", "c", "last"])
        #expect(events[0].endOffset == Array(": comment\r\nevent: x\r\ndata: a\r\ndata:  b\r\n\r\n".utf8).count)
        #expect(ServerSentEvents.isEventStream(contentType: "text/event-stream; charset=utf-8", body: []))
        #expect(ServerSentEvents.isEventStream(contentType: nil, body: Array("data: {}".utf8)))
        #expect(!ServerSentEvents.isEventStream(contentType: "application/json", body: Array("{}".utf8)))
        #expect(ServerSentEvents.isEventStream(contentType: "Text/Event-Stream", body: []))
        #expect(!ServerSentEvents.isEventStream(contentType: "text/event-strea", body: []))
        #expect(!ServerSentEvents.isEventStream(contentType: "text\u{0F}event-stream", body: []))
        #expect(!ServerSentEvents.isEventStream(contentType: " text/event-stream", body: []))
        #expect(!ServerSentEvents.isEventStream(contentType: "", body: Array("{}".utf8)))
    }

    @Test func chatChunksReassembleIntoOneCompletion() {
        let stream =
            Self.chunk(#"{"role":"assistant","content":""}"#) + Self.chunk(#"{"content":"Hello"}"#) + Self.chunk(#"{"content":" world"}"#)
            + Self.chunk(#"{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get_","arguments":"{\"ci"}}]}"#)
            + Self.chunk(#"{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"ty\":1}"}}]}"#)
            + Self.chunk("{}", finish: "tool_calls")
            + #"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5}}"# + "\n\n" + "data: [DONE]\n\n"
        let events = ServerSentEvents.parse(Array(stream.utf8))
        let result = OpenAIStream(events)
        #expect(result.events == 8 && result.malformed == 0 && result.sawDone)
        #expect(result.firstContentOffset == events[1].endOffset, "the empty role chunk carries no content")
        #expect(result.promptTokens == 7 && result.completionTokens == 5)
        func first(_ value: JSONValue?) -> JSONValue? {
            if case .array(let elements)? = value { return elements.first }
            return nil
        }
        let choice = first(result.document["choices"])
        #expect(choice?["message"]?["content"] == .string("Hello world"))
        #expect(choice?["finish_reason"] == .string("tool_calls"))
        #expect(first(choice?["message"]?["tool_calls"])?["function"]?["name"] == .string("get_weather"))
        #expect(first(choice?["message"]?["tool_calls"])?["function"]?["arguments"] == .string(#"{"city":1}"#))
    }

    @Test func aStreamedAndAPlainAnswerCompareEqualAndTimingComesFromChunkArrivals() {
        let stream =
            Self.chunk(#"{"role":"assistant"}"#) + Self.chunk(#"{"content":"the cat"}"#) + Self.chunk("{}", finish: "stop") + "data: [DONE]\n\n"
        var streamed = ArmResult(
            version: "1",
            status: 200,
            latencyMicros: 90_000,
            contentType: "text/event-stream",
            body: CapturedBody(bytes: Array(stream.utf8))
        )
        let firstEnd = Array(Self.chunk(#"{"role":"assistant"}"#).utf8).count
        streamed.noteChunk(bytesSoFar: firstEnd, micros: 10_000)
        streamed.noteChunk(bytesSoFar: stream.utf8.count, micros: 40_000)
        streamed.price = CostConfiguration(perRequest: 0.5, per1kPromptTokens: 1, per1kCompletionTokens: 2)
        let figures = streamed.figures(readUsage: true)
        #expect(figures.firstTokenMicros == 40_000 && figures.events == 4 && figures.note == nil)
        #expect(figures.cost == nil, "priced per token but no usage reported: no made-up cost")

        let plain =
            #"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"the cat"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500}}"#
        var answered = ArmResult(
            version: "1",
            status: 200,
            latencyMicros: 50_000,
            contentType: "application/json",
            body: CapturedBody(bytes: Array(plain.utf8))
        )
        answered.price = streamed.price
        let plainFigures = answered.figures(readUsage: true)
        #expect(plainFigures.cost == 0.5 + 1 + 1 && plainFigures.firstTokenMicros == nil && plainFigures.events == nil)
        let scorer = ScorerConfiguration(kind: .text, outputProtocol: .openAI).makeScorer()
        let score = scorer.score(baseline: figures.scoringBody, candidate: plainFigures.scoringBody)
        #expect(score.value == 0, "\(score.explanation.serialized)")
    }

    @Test func aStreamEndsWithItsFinalEventOnlyWhenThatEventIsComplete() {
        let body = Self.chunk(#"{"content":"hi"}"#)
        #expect(ServerSentEvents.endsWithFinalEvent(Array((body + "data: [DONE]\n\n").utf8)))
        #expect(ServerSentEvents.endsWithFinalEvent(Array((body + "data: [DONE]\r\n\r\n").utf8)))
        #expect(!ServerSentEvents.endsWithFinalEvent(Array((body + "data: [DONE]\n").utf8)), "its blank line not yet read")
        #expect(!ServerSentEvents.endsWithFinalEvent(Array((body + "data: [DONE]\n\n" + Self.chunk("{}")).utf8)), "more came after it")
        #expect(!ServerSentEvents.endsWithFinalEvent(Array(body.utf8)))
        let anthropic = "event: message_delta\ndata: {\"type\":\"message_delta\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        #expect(ServerSentEvents.endsWithFinalEvent(Array(anthropic.utf8)))
        #expect(!ServerSentEvents.endsWithFinalEvent([]))
    }

    /// Tokens per second run from the first token to the last one: the usage chunk, `[DONE]` and
    /// the end of the response come later and must not count.
    @Test func theLastTokenIsTimedFromItsChunk() {
        let events = [Self.chunk(#"{"content":"a"}"#), Self.chunk(#"{"content":"b"}"#), Self.chunk(#"{"content":"c"}"#)]
        let usage = #"data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":3}}"# + "\n\n"
        let stream = events.joined() + usage + "data: [DONE]\n\n"
        var result = ArmResult(
            version: "1",
            status: 200,
            latencyMicros: 900_000,
            contentType: "text/event-stream",
            body: CapturedBody(bytes: Array(stream.utf8))
        )
        var offset = 0
        for (index, event) in events.enumerated() {
            offset += event.utf8.count
            result.noteChunk(bytesSoFar: offset, micros: Int64(100_000 + index * 10_000))
        }
        result.noteChunk(bytesSoFar: stream.utf8.count, micros: 900_000)
        let figures = result.figures(readUsage: true)
        #expect(figures.firstTokenMicros == 100_000 && figures.lastTokenMicros == 120_000 && figures.completionTokens == 3)
    }

    @Test func malformedAndCutStreamsAreNoted() {
        let stream = "data: {not json\n\n" + Self.chunk(#"{"content":"hi"}"#)
        let arm = ArmResult(version: "1", status: 200, contentType: "text/event-stream", body: CapturedBody(bytes: Array(stream.utf8)))
        let figures = arm.figures(readUsage: false)
        #expect(figures.note == "1 event(s) not JSON; no [DONE] event")
        #expect(figures.events == 2)
    }
}
