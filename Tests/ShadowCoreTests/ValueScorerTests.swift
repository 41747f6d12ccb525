import Testing

@testable import ShadowCore

/// Each scorer on hand-made cases whose answers are known.
@Suite struct ValueScorerTests {
    func score(_ configuration: ScorerConfiguration, _ a: String, _ b: String) -> Score {
        configuration.makeScorer().score(baseline: Array(a.utf8), candidate: Array(b.utf8))
    }

    static func v2(_ label: String, _ probabilities: [Double]) -> String {
        let data = probabilities.map { JSONValue.format($0) }.joined(separator: ",")
        return
            #"{"id":"x","model_version":"1","outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["\#(label)"]},{"name":"probs","datatype":"FP32","shape":[3],"data":[\#(data)]}]}"#
    }

    @Test func labelsFromV2OutputsByName() {
        let configuration = ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "label")
        #expect(self.score(configuration, Self.v2("cat", [0.7, 0.2, 0.1]), Self.v2("cat", [0.6, 0.3, 0.1])).value == 0)
        let changed = self.score(configuration, Self.v2("cat", [0.7, 0.2, 0.1]), Self.v2("dog", [0.2, 0.7, 0.1]))
        #expect(changed.value == 1 && changed.diverged)
        #expect(changed.explanation.serialized.contains(#""candidate_label":"dog""#))
    }

    @Test func labelsFromTheArgmaxOfAProbabilityVector() {
        let configuration = ScorerConfiguration(kind: .label, outputProtocol: .kserveV2, output: "probs")
        #expect(self.score(configuration, Self.v2("a", [0.7, 0.2, 0.1]), Self.v2("b", [0.5, 0.3, 0.2])).value == 0)
        #expect(self.score(configuration, Self.v2("a", [0.7, 0.2, 0.1]), Self.v2("b", [0.2, 0.7, 0.1])).value == 1)
        let tf = ScorerConfiguration(kind: .label, outputProtocol: .tfServing)
        #expect(self.score(tf, #"{"predictions":[[0.1,0.9]]}"#, #"{"predictions":[[0.2,0.8]]}"#).value == 0)
        #expect(self.score(tf, #"{"predictions":[[0.1,0.9]]}"#, #"{"predictions":[[0.8,0.2]]}"#).value == 1)
    }

    @Test func numericErrorsScaleAndRespectTolerance() {
        var configuration = ScorerConfiguration(kind: .numeric, path: "$.predictions", scale: 10)
        let score = self.score(configuration, #"{"predictions":[10, 20]}"#, #"{"predictions":[15, 20]}"#)
        #expect(score.value == 0.25)  // (5/10 + 0) / 2
        #expect(score.explanation.serialized.contains(#""max_abs_error":5"#))
        configuration.relativeTolerance = 0.5
        #expect(self.score(configuration, #"{"predictions":[10, 20]}"#, #"{"predictions":[15, 20]}"#).value == 0)
        #expect(self.score(configuration, #"{"predictions":[1]}"#, #"{"predictions":[1, 2]}"#).value == 1)
    }

    @Test func distributionsUseJensenShannonAndTotalVariation() {
        let js = ScorerConfiguration(kind: .distribution, path: "$.p")
        #expect(self.score(js, #"{"p":[0.5,0.5]}"#, #"{"p":[0.5,0.5]}"#).value == 0)
        let disjoint = self.score(js, #"{"p":[1,0]}"#, #"{"p":[0,1]}"#)
        #expect(abs(disjoint.value - 1) < 1e-12)
        #expect(disjoint.explanation.serialized.contains(#""top1_agree":false"#))
        let tvd = ScorerConfiguration(kind: .distribution, path: "$.p", threshold: 0.05, distributionMetric: .tvd)
        let close = self.score(tvd, #"{"p":[0.6,0.4]}"#, #"{"p":[0.5,0.5]}"#)
        #expect(abs(close.value - 0.1) < 1e-12 && close.diverged)
        // Counts are normalised; negative entries are not a distribution.
        #expect(self.score(js, #"{"p":[2,2]}"#, #"{"p":[0.5,0.5]}"#).value == 0)
        #expect(self.score(js, #"{"p":[-1,2]}"#, #"{"p":[0.5,0.5]}"#).value == 1)
    }

    @Test func rankingsCompareByRankBiasedOverlap() {
        let configuration = ScorerConfiguration(kind: .ranking, path: "$.items", k: 5)
        #expect(self.score(configuration, #"{"items":["a","b","c"]}"#, #"{"items":["a","b","c"]}"#).value < 1e-12)
        #expect(self.score(configuration, #"{"items":["a","b","c"]}"#, #"{"items":["x","y","z"]}"#).value == 1)
        let swappedTop = self.score(configuration, #"{"items":["a","b","c","d"]}"#, #"{"items":["b","a","c","d"]}"#)
        let swappedBottom = self.score(configuration, #"{"items":["a","b","c","d"]}"#, #"{"items":["a","b","d","c"]}"#)
        #expect(swappedTop.value > swappedBottom.value, "top ranks weigh more")
        let explanation = self.score(configuration, #"{"items":["a","b","c","d"]}"#, #"{"items":["a","a","a","b"]}"#).explanation.serialized
        #expect(explanation.contains(#""baseline_distinct":4"#) && explanation.contains(#""candidate_distinct":2"#))
        #expect(RankingScorer.kendallTau(["a", "b", "c"], ["c", "b", "a"]) == -1)
        #expect(RankingScorer.jaccard(["a", "b"], ["b", "c"]) == 1.0 / 3)
    }

    @Test func textUsesTokenEditDistance() {
        let configuration = ScorerConfiguration(kind: .text, outputProtocol: .openAI)
        func chat(_ content: String, finish: String = "stop") -> String {
            #"{"id":"1","choices":[{"index":0,"message":{"role":"assistant","content":"\#(content)"},"finish_reason":"\#(finish)"}]}"#
        }
        #expect(self.score(configuration, chat("The cat sat"), chat("the  CAT sat")).value == 0)
        #expect(self.score(configuration, chat("a b c d"), chat("a b x d")).value == 0.25)
        let stopped = self.score(configuration, chat("a b c d"), chat("a b c d", finish: "length"))
        #expect(stopped.value == 1 && stopped.diverged)
        #expect(TextScorer.editDistance(["a", "b"], []) == 2)
        let completions = ScorerConfiguration(kind: .text, outputProtocol: .openAI, textMetric: .jaccard)
        #expect(self.score(completions, #"{"choices":[{"text":"x y"}]}"#, #"{"choices":[{"text":"y x"}]}"#).value == 0)
    }

    @Test func toolCallsCompareByNameAndParsedArguments() {
        let configuration = ScorerConfiguration(kind: .text, outputProtocol: .openAI)
        func call(_ name: String, _ arguments: String) -> String {
            #"{"choices":[{"message":{"content":null,"tool_calls":[{"type":"function","function":{"name":"\#(name)","arguments":"\#(arguments)"}}]},"finish_reason":"tool_calls"}]}"#
        }
        #expect(self.score(configuration, call("lookup", #"{\"a\":1,\"b\":2}"#), call("lookup", #"{\"b\":2, \"a\":1}"#)).value == 0)
        #expect(self.score(configuration, call("lookup", #"{\"a\":1}"#), call("lookup", #"{\"a\":2}"#)).value == 1)
        #expect(self.score(configuration, call("lookup", "{}"), call("search", "{}")).value == 1)
    }

    @Test func jsonArraysCanCompareAsSets() {
        let ordered = ScorerConfiguration(kind: .json)
        let set = ScorerConfiguration(kind: .json, arrays: .set)
        #expect(self.score(ordered, "[1,2,3]", "[3,2,1]").value > 0)
        #expect(self.score(set, "[1,2,3]", "[3,2,1]").value == 0)
        #expect(self.score(set, "[1,2,2]", "[2,1,3]").value == 0.5)  // one 2 removed, one 3 added of 4 leaves
    }

    @Test func protocolVolatileFieldsAreIgnoredByTheJSONScorer() {
        let configuration = ScorerConfiguration(kind: .json, outputProtocol: .openAI)
        #expect(self.score(configuration, #"{"id":"a","created":1,"choices":[]}"#, #"{"id":"b","created":2,"choices":[]}"#).value == 0)
    }

    @Test(arguments: [ScorerConfiguration.Kind.label, .numeric, .distribution, .ranking, .text])
    func badInputGetsAnExplainedScoreNeverACrash(kind: ScorerConfiguration.Kind) {
        let configuration = ScorerConfiguration(kind: kind, path: "$.v", maxDocumentBytes: 1 << 20, maxDepth: 64)
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let huge = #"{"v":""# + String(repeating: "x", count: 2 << 20) + #""}"#
        let cases: [(String, String, String)] = [
            (#"{"v":1}"#, "not json", "candidate body is not JSON"),
            ("", #"{"v":1}"#, "baseline body is not JSON"),
            (#"{"v":1}"#, deep, "nesting deeper than 64"),
            (#"{"v":1}"#, huge, "scoring cap"),
            (#"{"v":1}"#, #"{"w":1}"#, "candidate body has no $.v"),
            (#"{"v":[1,2]}"#, #"{"v":[1]}"#, ""),
            (#"{"v":"NaN"}"#, #"{"v":{"a":[]}}"#, ""),
        ]
        for (a, b, expected) in cases {
            let score = self.score(configuration, a, b)
            #expect((0...1).contains(score.value), "\(kind) \(a.prefix(20)) vs \(b.prefix(20))")
            #expect(expected.isEmpty || score.explanation.serialized.contains(expected), "\(kind): \(score.explanation.serialized.prefix(200))")
        }
    }

    @Test func valueScorersNeedAProtocolOrAPath() {
        #expect {
            _ = try Configuration.load(
                yaml: "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n    scorer: {kind: label}"
            )
        } throws: { "\($0)".contains("routes[0].scorer.kind: the label scorer needs 'protocol'") }
        #expect {
            _ = try Configuration.load(
                yaml: "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n    scorer: {kind: text, protocol: grpc}"
            )
        } throws: { "\($0)".contains("routes[0].scorer.protocol: unknown value 'grpc'") }
    }
}

@Suite struct TokenInternerTests {
    @Test func equalTokensGetEqualIdsAcrossTextsAndTheTableGrows() {
        var interner = TokenInterner()
        let words = (0..<5_000).map { "w\($0)" }.joined(separator: " ")
        let first = interner.tokenIDs(words, normalize: false)
        let second = interner.tokenIDs("W4999  w0\tw1\nnew", normalize: true)
        #expect(first.count == 5_000 && interner.count == 5_001)
        #expect(Array(second.prefix(3)) == [first[4_999], first[0], first[1]])
        #expect(second[3] == 5_000)
        #expect(interner.tokenIDs("ÉCOLE école", normalize: true).count == 2)
        #expect(Set(interner.tokenIDs("ÉCOLE école", normalize: true)).count == 1)
    }
}
