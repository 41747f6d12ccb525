import ShadowCore

/// What one fuzzer input exercises. Every path here must return (throwing is fine); a crash,
/// a trap or a hang is a bug in shadowd.
enum Harness: String, CaseIterable {
    /// The JSON parser and every scorer on a pair of bodies (the input split at its first NUL
    /// byte, or in half): what the writer runs on whatever two models send back.
    case json
    /// The configuration parser and validator on a YAML document: what `check-config`, `serve`
    /// and SIGHUP read.
    case config

    /// Each scorer kind, with the options that reach the most code (sets, ignore paths, the
    /// protocol adapters).
    static let scorers: [any Scorer] = [
        ScorerConfiguration(kind: .json).makeScorer(),
        ScorerConfiguration(kind: .json, ignorePaths: ["$.id", "$.items[*].score"], relativeTolerance: 0.01, arrays: .set).makeScorer(),
        ScorerConfiguration(kind: .exact).makeScorer(),
        ScorerConfiguration(kind: .label, outputProtocol: .kserveV2).makeScorer(),
        ScorerConfiguration(kind: .numeric, outputProtocol: .kserveV2).makeScorer(),
        ScorerConfiguration(kind: .distribution, outputProtocol: .kserveV2).makeScorer(),
        ScorerConfiguration(kind: .ranking, path: "$.items", k: 20).makeScorer(),
        ScorerConfiguration(kind: .text, outputProtocol: .openAI).makeScorer(),
        ScorerConfiguration(kind: .text, outputProtocol: .openAI, textMetric: .jaccard).makeScorer(),
    ]

    func run(_ input: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .json:
            let split = input.firstIndex(of: 0) ?? input.count / 2
            let baseline = Array(input[..<split])
            let candidate = Array(input[min(split + 1, input.count)...])
            _ = try? JSONParser(maximumDepth: 64).parse(baseline)
            for scorer in Self.scorers {
                let score = scorer.score(baseline: baseline, candidate: candidate)
                // A score outside 0...1 (or NaN) would poison every average in the report.
                precondition(score.value >= 0 && score.value <= 1, "\(scorer.name) scored \(score.value)")
            }
        case .config:
            _ = try? Configuration.load(yaml: String(decoding: input, as: UTF8.self))
        }
    }
}
