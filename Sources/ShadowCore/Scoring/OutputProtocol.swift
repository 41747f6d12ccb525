/// The response shapes the value scorers understand, so users name a protocol instead of paths.
public enum OutputProtocol: String, Sendable, Equatable, CaseIterable {
    /// The whole document (or the configured `path`).
    case raw
    /// Open Inference Protocol / KServe V2: `outputs[*].data`, matched by output name.
    case kserveV2 = "kserve_v2"
    /// TensorFlow Serving REST: `predictions`.
    case tfServing = "tf_serving"
    /// OpenAI-compatible chat/completions: `choices[0].message.content` (or `choices[0].text`).
    case openAI = "openai"
    /// Anthropic Messages API: the text blocks of `content`, `stop_reason`, `tool_use` blocks.
    case anthropic

    /// Whether answers are LLM messages (usage, tool calls, stop reasons, streams).
    public var isLLM: Bool { self == .openAI || self == .anthropic }

    /// Fields that differ on every call by design (ids, timestamps), never compared by the
    /// `json` scorer.
    public var volatilePaths: [String] {
        switch self {
        case .raw: []
        case .kserveV2: ["$.id", "$.model_version"]
        case .tfServing: ["$.model_version", "$.model_spec.version", "$.model_spec.version_label"]
        case .openAI: ["$.id", "$.created", "$.system_fingerprint"]
        case .anthropic: ["$.id"]
        }
    }

    /// The value a label/numeric/distribution/ranking/text scorer compares.
    public func primaryValue(in document: JSONValue, output: String?) -> JSONValue? {
        switch self {
        case .raw:
            return document
        case .kserveV2:
            guard case .array(let outputs) = document["outputs"] ?? .null, !outputs.isEmpty else { return nil }
            if let output {
                return outputs.first { $0["name"] == .string(output) }?["data"]
            }
            return outputs[0]["data"]
        case .tfServing:
            guard let predictions = document["predictions"] ?? document["outputs"] else { return nil }
            // One instance: compare its prediction, not a one-element batch.
            if case .array(let rows) = predictions, rows.count == 1 { return rows[0] }
            return predictions
        case .openAI:
            guard case .array(let choices) = document["choices"] ?? .null, let first = choices.first else { return nil }
            if let message = first["message"] {
                if let content = message["content"], content != .null { return content }
                return .string("")
            }
            return first["text"]
        case .anthropic:
            guard case .array(let blocks) = document["content"] ?? .null else { return nil }
            let texts = blocks.compactMap { block -> String? in
                guard block["type"] == .string("text"), case .string(let text)? = block["text"] else { return nil }
                return text
            }
            return .string(texts.joined())
        }
    }
}
