import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

extension ModelFixture {
    /// An OpenAI-compatible chat answer, plain or streamed (`"stream": true`), deterministic per
    /// prompt. A model that disagrees on a prompt answers with a different sentence (not one
    /// different word), so a text scorer sees it. With `tools` in the request (and `tool_choice`
    /// not `"none"`) it calls the first tool instead, with arguments drawn from the prompt; a
    /// disagreeing model passes other arguments.
    func chat(_ document: JSONValue, key: UInt64, label: String, delay: Duration) -> FixtureResponse {
        let disagrees = self.disagrees(onKey: key)
        let promptTokens = Double(12 + key % 20)
        let call = Self.toolCall(document, key: key, label: label, disagrees: disagrees)
        let words = Self.sentence(key: disagrees ? key ^ 0x5DEE_CE66_D1CE_4E5B : key, first: label)
        let completionTokens = Double(call.map { 6 + $0.arguments.count / 8 } ?? words.count)
        if case .bool(true)? = document["stream"] {
            let includeUsage: Bool = { if case .bool(true)? = document["stream_options"]?["include_usage"] { true } else { false } }()
            return self.stream(
                words: words,
                call: call,
                usage: includeUsage ? (promptTokens, completionTokens) : nil,
                key: key,
                delay: delay
            )
        }
        var message: [(key: String, value: JSONValue)] = [("role", .string("assistant"))]
        if let call {
            message.append(("content", .null))
            message.append(("tool_calls", .array([call.json(includingArguments: true)])))
        } else {
            message.append(("content", .string(words.joined(separator: " ") + ".")))
        }
        let response = JSONValue.object([
            ("id", .string("chatcmpl-\(UInt64.random(in: 0..<UInt64.max))")),
            ("object", .string("chat.completion")),
            ("created", .number(Double(time(nil)))),
            ("model", .string("\(self.spec.name)-\(self.spec.version)")),
            (
                "choices",
                .array([
                    .object([
                        ("index", .number(0)), ("message", .object(message)),
                        ("finish_reason", .string(call == nil ? "stop" : "tool_calls")),
                    ])
                ])
            ),
            ("usage", Self.usage(promptTokens, completionTokens)),
        ])
        return .json(response.serialized, delay: delay)
    }

    /// The answer as OpenAI `chat.completion.chunk` Server-Sent Events: a role chunk, one chunk
    /// per word (or the tool call's name, then its arguments in pieces) at `token_rate`, a finish
    /// chunk, the usage chunk when asked for, `[DONE]`.
    func stream(words: [String], call: ToolCall?, usage: (Double, Double)?, key: UInt64, delay: Duration) -> FixtureResponse {
        let id = "chatcmpl-\(key)"
        let model = JSONValue.string("\(self.spec.name)-\(self.spec.version)")
        // Deterministic per prompt (tests compare two calls' streams byte for byte).
        let created = JSONValue.number(Double(1_750_000_000 + key % 10_000_000))
        func chunk(choices: [JSONValue], extra: [(key: String, value: JSONValue)] = []) -> [UInt8] {
            let object = JSONValue.object(
                [
                    ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", created), ("model", model),
                    ("choices", .array(choices)),
                ]
                    + extra
            )
            return Array("data: \(object.serialized)\n\n".utf8)
        }
        func event(_ delta: JSONValue, finish: JSONValue = .null) -> [UInt8] {
            chunk(choices: [.object([("index", .number(0)), ("delta", delta), ("finish_reason", finish)])])
        }
        var chunks = [event(.object([("role", .string("assistant")), ("content", .string(""))]))]
        if let call {
            chunks.append(event(.object([("tool_calls", .array([call.json(includingArguments: false)]))])))
            let pieces = stride(from: 0, to: call.arguments.count, by: 12).map { offset in
                String(call.arguments.dropFirst(offset).prefix(12))
            }
            for piece in pieces {
                let delta = JSONValue.object([("index", .number(0)), ("function", .object([("arguments", .string(piece))]))])
                chunks.append(event(.object([("tool_calls", .array([delta]))])))
            }
            chunks.append(event(.object([]), finish: .string("tool_calls")))
        } else {
            for (index, word) in words.enumerated() {
                let text = index == 0 ? word : " " + word
                chunks.append(event(.object([("content", .string(index == words.count - 1 ? text + "." : text))])))
            }
            chunks.append(event(.object([]), finish: .string("stop")))
        }
        if let usage { chunks.append(chunk(choices: [], extra: [("usage", Self.usage(usage.0, usage.1))])) }
        chunks.append(Array("data: [DONE]\n\n".utf8))
        return self.streamResponse(chunks, key: key, delay: delay)
    }

    /// Event-stream chunks sent at `token_rate` after the first-token delay; with
    /// `stream_failure_rate`, some streams are cut halfway (the same prompts every run).
    func streamResponse(_ chunks: [[UInt8]], key: UInt64, delay: Duration) -> FixtureResponse {
        let pause = Duration.nanoseconds(Int64(1e9 / self.spec.tokenRate))
        let headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        let failing = self.spec.streamFailureRate > 0 && Self.unit(key &* 0x2545_F491_4F6C_DD1D) < self.spec.streamFailureRate
        return FixtureResponse(
            headers: headers,
            delay: self.spec.firstTokenDelay ?? delay,
            mode: failing ? .chunkedThenClose(Array(chunks.prefix(chunks.count / 2)), pause: pause) : .chunked(chunks, pause: pause)
        )
    }

    /// A tool call the model makes.
    struct ToolCall {
        var id: String
        var name: String
        var arguments: String

        func json(includingArguments: Bool) -> JSONValue {
            .object([
                ("index", .number(0)), ("id", .string(self.id)), ("type", .string("function")),
                ("function", .object([("name", .string(self.name)), ("arguments", .string(includingArguments ? self.arguments : ""))])),
            ])
        }
    }

    /// The call to the request's first tool, or `nil` without tools or with `tool_choice` none
    /// (OpenAI's `"none"`, Anthropic's `{"type": "none"}`). Tools are OpenAI's
    /// `{function: {name}}` or Anthropic's `{name, input_schema}`.
    static func toolCall(_ document: JSONValue, key: UInt64, label: String, disagrees: Bool) -> ToolCall? {
        let choice = document["tool_choice"]
        guard case .array(let tools)? = document["tools"], let first = tools.first, choice != .string("none"),
            choice?["type"] != .string("none"), case .string(let name)? = first["function"]?["name"] ?? first["name"]
        else { return nil }
        let limit = 3 + (disagrees ? key >> 7 : key) % 5
        let arguments = JSONValue.object([("query", .string(disagrees ? "not " + label : label)), ("limit", .number(Double(limit)))])
        return ToolCall(id: "call_\(key % 1_000_000_007)", name: name, arguments: arguments.serialized)
    }

    /// 8 to 15 words drawn from the key, the first one given.
    static func sentence(key: UInt64, first: String) -> [String] {
        let words = Self.vocabulary
        let count = 8 + Int(key % 8)
        var text = (0..<count).map { words[Int((key >> UInt64($0 % 48)) % UInt64(words.count))] }
        text[0] = first
        return text
    }

    static func usage(_ prompt: Double, _ completion: Double) -> JSONValue {
        .object([("prompt_tokens", .number(prompt)), ("completion_tokens", .number(completion)), ("total_tokens", .number(prompt + completion))])
    }
}
