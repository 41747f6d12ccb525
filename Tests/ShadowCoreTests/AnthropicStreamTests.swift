import Foundation
import Testing

@testable import ShadowCore

/// The Anthropic Messages protocol: streams reassembled into the `message` they stand for,
/// scored like the plain answer, with stop reasons, tool use and usage.
@Suite struct AnthropicStreamTests {
    static func event(_ type: String, _ json: String) -> String {
        "event: \(type)\ndata: \(json)\n\n"
    }

    static let textStream =
        event(
            "message_start",
            #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#
        )
        + event("ping", #"{"type":"ping"}"#)
        + event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#)
        + event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the"}}"#)
        + event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" cat"}}"#)
        + event("content_block_stop", #"{"type":"content_block_stop","index":0}"#)
        + event(
            "content_block_start",
            #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}}"#
        )
        + event("content_block_delta", #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\": \"ca"}}"#)
        + event(
            "content_block_delta",
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"t\", \"n\": 3}"}}"#
        )
        + event("content_block_stop", #"{"type":"content_block_stop","index":1}"#)
        + event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#)
        + event("message_stop", #"{"type":"message_stop"}"#)

    @Test func eventsReassembleIntoOneMessage() {
        let events = ServerSentEvents.parse(Array(Self.textStream.utf8))
        #expect(AnthropicStream.recognizes(events))
        let stream = AnthropicStream(events)
        #expect(stream.events == 12 && stream.malformed == 0 && stream.sawStop)
        #expect(stream.inputTokens == 25 && stream.outputTokens == 15, "output tokens are cumulative: the last count wins")
        #expect(stream.firstContentOffset == events[3].endOffset && stream.lastContentOffset == events[8].endOffset)
        #expect(stream.document["stop_reason"] == .string("tool_use"))
        guard case .array(let content)? = stream.document["content"] else { return #expect(Bool(false)) }
        #expect(content.count == 2)
        #expect(content[0]["text"] == .string("the cat"))
        #expect(content[1]["name"] == .string("lookup") && content[1]["input"]?["q"] == .string("cat"))
        #expect(OutputProtocol.anthropic.primaryValue(in: stream.document, output: nil) == .string("the cat"))
        #expect(ServerSentEvents.endsWithFinalEvent(Array(Self.textStream.utf8)))
        #expect(!AnthropicStream.recognizes(ServerSentEvents.parse(Array("data: {\"choices\":[]}\n\n".utf8))))
    }

    @Test func aStreamedAndAPlainMessageScoreEqualAndArePricedFromUsage() {
        var streamed = ArmResult(
            version: "1",
            status: 200,
            latencyMicros: 1,
            contentType: "text/event-stream",
            body: CapturedBody(bytes: Array(Self.textStream.utf8))
        )
        streamed.price = CostConfiguration(per1kPromptTokens: 1, per1kCompletionTokens: 2)
        let figures = streamed.figures(readUsage: true)
        #expect(figures.promptTokens == 25 && figures.completionTokens == 15 && figures.note == nil)
        let expectedCost: Double = 0.055  // 25 input tokens at 1 per 1k, 15 output at 2 per 1k
        #expect(abs((figures.cost ?? 0) - expectedCost) < 1e-12)
        let plain =
            #"{"id":"msg_2","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"the cat"},{"type":"tool_use","id":"toolu_9","name":"lookup","input":{"n":3,"q":"cat"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":15}}"#
        var answered = ArmResult(
            version: "1",
            status: 200,
            latencyMicros: 1,
            contentType: "application/json",
            body: CapturedBody(bytes: Array(plain.utf8))
        )
        answered.price = streamed.price
        let plainFigures = answered.figures(readUsage: true)
        #expect(plainFigures.promptTokens == 25 && plainFigures.completionTokens == 15 && plainFigures.cost == figures.cost)
        let scorer = ScorerConfiguration(kind: .text, outputProtocol: .anthropic).makeScorer()
        let same = scorer.score(baseline: figures.scoringBody, candidate: plainFigures.scoringBody)
        #expect(same.value == 0 && !same.diverged, "ids differ, key order differs: \(same.explanation.serialized)")
        let otherArguments = plain.replacingOccurrences(of: #""n":3"#, with: #""n":4"#)
        let differentTool = scorer.score(baseline: figures.scoringBody, candidate: Array(otherArguments.utf8))
        #expect(differentTool.value == 1 && differentTool.diverged && differentTool.differingPaths.contains("tool_calls"))
        let otherStop = plain.replacingOccurrences(of: #""stop_reason":"tool_use""#, with: #""stop_reason":"max_tokens""#)
        #expect(scorer.score(baseline: figures.scoringBody, candidate: Array(otherStop.utf8)).differingPaths.contains("finish_reason"))
    }

    @Test func aStreamWithoutMessageStopIsNoted() {
        let cut = String(Self.textStream.dropLast(Self.event("message_stop", #"{"type":"message_stop"}"#).count))
        let result = ArmResult(
            version: "1",
            status: 200,
            latencyMicros: 1,
            contentType: "text/event-stream",
            body: CapturedBody(bytes: Array(cut.utf8))
        )
        #expect(result.figures(readUsage: true).note == "no message_stop event")
        #expect(!ServerSentEvents.endsWithFinalEvent(Array(cut.utf8)))
    }
}
