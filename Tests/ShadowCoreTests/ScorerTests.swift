import Testing

@testable import ShadowCore

@Suite struct ScorerTests {
    func json(_ configuration: ScorerConfiguration = .init(), _ a: String, _ b: String) -> Score {
        JSONScorer(configuration: configuration).score(baseline: Array(a.utf8), candidate: Array(b.utf8))
    }

    @Test func identicalDocumentsScoreZero() {
        let score = self.json(.init(), #"{"a":1,"b":["x","y"]}"#, #"{"b":["x","y"],"a":1}"#)
        #expect(score.value == 0)
        #expect(!score.diverged)
    }

    /// Byte-identical bodies are parsed once; the score must be what two parses give (the same
    /// document with other whitespace takes the two-parse path).
    @Test func byteIdenticalBodiesScoreLikeEqualDocuments() {
        let configuration = ScorerConfiguration(ignorePaths: ["$.id"])
        let document = #"{"id":"1","outputs":[{"data":[0.7,0.2],"label":"cat"}],"n":null}"#
        let respaced = #"{ "id": "1", "outputs": [ {"data": [0.7, 0.2], "label": "cat"} ], "n": null }"#
        let once = self.json(configuration, document, document)
        let twice = self.json(configuration, document, respaced)
        #expect(once.value == 0 && twice.value == 0)
        #expect(once.explanation.serialized == twice.explanation.serialized)
        #expect(once.explanation.serialized == #"{"leaves":4,"differing":0,"ignored":1}"#)
        // Invalid JSON on both sides still falls back to bytes, not to a shared parse.
        let invalid = self.json(configuration, "{not json", "{not json")
        #expect(invalid.explanation.serialized.contains(#""fallback":"bytes""#))
    }

    @Test func scoreIsTheShareOfDifferingLeaves() {
        let score = self.json(.init(), #"{"a":1,"b":2,"c":3,"d":4}"#, #"{"a":1,"b":2,"c":3,"d":5}"#)
        #expect(score.value == 0.25)
        #expect(score.diverged)
        #expect(score.explanation.serialized.contains(#""path":"$.d""#))
    }

    @Test func ignoredPathsAreNotCompared() {
        let configuration = ScorerConfiguration(ignorePaths: ["$.id", "$.outputs[*].parameters"])
        let score = self.json(
            configuration,
            #"{"id":"1","outputs":[{"data":[1],"parameters":{"t":1}}]}"#,
            #"{"id":"2","outputs":[{"data":[1],"parameters":{"t":2}}]}"#
        )
        #expect(score.value == 0)
    }

    @Test func numericToleranceApplies() {
        let absolute = ScorerConfiguration(absoluteTolerance: 0.01)
        #expect(self.json(absolute, "[0.500]", "[0.505]").value == 0)
        #expect(self.json(absolute, "[0.5]", "[0.52]").value == 1)
        let relative = ScorerConfiguration(relativeTolerance: 0.1)
        #expect(self.json(relative, "[100]", "[109]").value == 0)
    }

    @Test func addedRemovedAndTypeChangesCount() {
        let score = self.json(.init(), #"{"a":1,"b":[1,2]}"#, #"{"a":"1","b":[1,2,3],"c":true}"#)
        // leaves: a (type), b[0], b[1], b[2] (added), c (added) → 3 of 5 differ
        #expect(score.value == 0.6)
        let text = score.explanation.serialized
        #expect(text.contains("type_changed") && text.contains("added"))
    }

    @Test func nonJSONFallsBackToBytesAndSaysWhy() {
        let score = self.json(.init(), #"{"a":1}"#, "<html>oops</html>")
        #expect(score.value == 1)
        #expect(score.explanation.serialized.contains("candidate body is not JSON"))
        #expect(self.json(.init(), "same text", "same text").value == 0)
    }

    @Test func thresholdDecidesDiverged() {
        let lenient = ScorerConfiguration(threshold: 0.5)
        let score = self.json(lenient, #"{"a":1,"b":2,"c":3,"d":4}"#, #"{"a":1,"b":2,"c":3,"d":5}"#)
        #expect(score.value == 0.25 && !score.diverged)
    }

    @Test func exactScorerCanonicalisesJSON() {
        let scorer = ExactScorer()
        #expect(scorer.score(baseline: Array(#"{"a":1, "b":2}"#.utf8), candidate: Array(#"{"b":2,"a":1}"#.utf8)).value == 0)
        #expect(scorer.score(baseline: Array("abc".utf8), candidate: Array("abd".utf8)).value == 1)
    }

    @Test func pathPatterns() throws {
        let pattern = try JSONPathPattern.parse("$.outputs[*].data").get()
        #expect(pattern.covers([.key("outputs"), .index(3), .key("data"), .index(0)]))
        #expect(!pattern.covers([.key("outputs"), .index(3), .key("name")]))
        #expect(try JSONPathPattern.parse(#"$["odd key"].x"#).get().covers([.key("odd key"), .key("x")]))
        #expect(throws: JSONPathPattern.ParseFailure.self) { try JSONPathPattern.parse("$.a[").get() }
    }

    @Test func recordScoringComparesStatusesFirst() {
        var record = ExchangeRecord(
            requestID: "r",
            route: "r",
            configRevision: "x",
            receivedAtMicros: 0,
            method: "POST",
            path: "/",
            requestBody: .init(),
            baseline: ArmResult(version: "1", status: 200, body: CapturedBody(bytes: Array("{}".utf8))),
            candidates: [],
            scorer: JSONScorer(configuration: .init())
        )
        let failing = CandidateResult(name: "c", result: ArmResult(version: "2", status: 500, body: CapturedBody(bytes: Array("{}".utf8))))
        #expect(record.score(failing)?.value == 1)
        let timedOut = CandidateResult(name: "c", result: ArmResult(version: "2", error: .timeout))
        #expect(record.score(timedOut) == nil)
        #expect(record.coverageReason(timedOut) == .candidateError)
        record.baseline.error = .reset
        #expect(record.coverageReason(timedOut) == .baselineError)
    }
}
