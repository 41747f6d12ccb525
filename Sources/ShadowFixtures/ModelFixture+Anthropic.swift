import ShadowCore

extension ModelFixture {
    /// An Anthropic Messages API answer, plain or streamed (`"stream": true`), deterministic per
    /// prompt, with the same words, tool calls and disagreements as the OpenAI fixture.
    func messages(_ document: JSONValue, key: UInt64, label: String, delay: Duration) -> FixtureResponse {
        let disagrees = self.disagrees(onKey: key)
        let inputTokens = Double(12 + key % 20)
        let call = Self.toolCall(document, key: key, label: label, disagrees: disagrees)
        let words = Self.sentence(key: disagrees ? key ^ 0x5DEE_CE66_D1CE_4E5B : key, first: label)
        let outputTokens = Double(call.map { 6 + $0.arguments.count / 8 } ?? words.count)
        let id = JSONValue.string("msg_\(key % 1_000_000_007)")
        let model = JSONValue.string("\(self.spec.name)-\(self.spec.version)")
        let stopReason = JSONValue.string(call == nil ? "end_turn" : "tool_use")
        let toolID = JSONValue.string("toolu_\(key % 1_000_000_007)")
        let arguments = call.flatMap { try? JSONParser().parse($0.arguments) } ?? .object([])
        if case .bool(true)? = document["stream"] {
            return self.messageStream(
                id: id,
                model: model,
                words: words,
                call: call.map { (toolID, $0.name, $0.arguments) },
                stopReason: stopReason,
                usage: (inputTokens, outputTokens),
                key: key,
                delay: delay
            )
        }
        let content: JSONValue =
            if let call {
                .array([.object([("type", .string("tool_use")), ("id", toolID), ("name", .string(call.name)), ("input", arguments)])])
            } else {
                .array([.object([("type", .string("text")), ("text", .string(words.joined(separator: " ") + "."))])])
            }
        let response = JSONValue.object([
            ("id", id), ("type", .string("message")), ("role", .string("assistant")), ("model", model), ("content", content),
            ("stop_reason", stopReason), ("stop_sequence", .null),
            ("usage", .object([("input_tokens", .number(inputTokens)), ("output_tokens", .number(outputTokens))])),
        ])
        return .json(response.serialized, delay: delay)
    }

    /// The answer as Anthropic stream events: `message_start`, a `ping`, one content block
    /// (text deltas per word, or the tool's input JSON in pieces) at `token_rate`,
    /// `message_delta` with the stop reason and usage, `message_stop`.
    func messageStream(
        id: JSONValue,
        model: JSONValue,
        words: [String],
        call: (id: JSONValue, name: String, arguments: String)?,
        stopReason: JSONValue,
        usage: (input: Double, output: Double),
        key: UInt64,
        delay: Duration
    ) -> FixtureResponse {
        func event(_ type: String, _ fields: [(key: String, value: JSONValue)]) -> [UInt8] {
            Array("event: \(type)\ndata: \(JSONValue.object([("type", .string(type))] + fields).serialized)\n\n".utf8)
        }
        let start = JSONValue.object([
            ("id", id), ("type", .string("message")), ("role", .string("assistant")), ("model", model), ("content", .array([])),
            ("stop_reason", .null), ("stop_sequence", .null),
            ("usage", .object([("input_tokens", .number(usage.input)), ("output_tokens", .number(1))])),
        ])
        var chunks = [event("message_start", [("message", start)]), event("ping", [])]
        if let call {
            let block = JSONValue.object([("type", .string("tool_use")), ("id", call.id), ("name", .string(call.name)), ("input", .object([]))])
            chunks.append(event("content_block_start", [("index", .number(0)), ("content_block", block)]))
            for offset in stride(from: 0, to: call.arguments.count, by: 12) {
                let piece = String(call.arguments.dropFirst(offset).prefix(12))
                let delta = JSONValue.object([("type", .string("input_json_delta")), ("partial_json", .string(piece))])
                chunks.append(event("content_block_delta", [("index", .number(0)), ("delta", delta)]))
            }
        } else {
            let block = JSONValue.object([("type", .string("text")), ("text", .string(""))])
            chunks.append(event("content_block_start", [("index", .number(0)), ("content_block", block)]))
            for (index, word) in words.enumerated() {
                let text = (index == 0 ? word : " " + word) + (index == words.count - 1 ? "." : "")
                let delta = JSONValue.object([("type", .string("text_delta")), ("text", .string(text))])
                chunks.append(event("content_block_delta", [("index", .number(0)), ("delta", delta)]))
            }
        }
        chunks.append(event("content_block_stop", [("index", .number(0))]))
        chunks.append(
            event(
                "message_delta",
                [
                    ("delta", .object([("stop_reason", stopReason), ("stop_sequence", .null)])),
                    ("usage", .object([("output_tokens", .number(usage.output))])),
                ]
            )
        )
        chunks.append(event("message_stop", []))
        return self.streamResponse(chunks, key: key, delay: delay)
    }
}
