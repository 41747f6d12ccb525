import Testing

@testable import ShadowCore

@Suite struct ExchangeRecordTests {
    static func record() -> ExchangeRecord {
        ExchangeRecord(
            requestID: "r1",
            route: "route",
            configRevision: "rev",
            receivedAtMicros: 1,
            method: "POST",
            path: "/v2/models/m/infer",
            requestBody: CapturedBody(bytes: Array("{}".utf8)),
            baseline: ArmResult(version: "1", status: 200, body: CapturedBody(bytes: Array(#"{"label":"cat"}"#.utf8))),
            candidates: [CandidateResult(name: "c", result: ArmResult(version: "2", status: 200))],
            scorer: JSONScorer(configuration: .init())
        )
    }

    /// Copies share one box until one is written to: a write, however deep (a candidate's body
    /// inside the array), changes only the record written to, never a copy of it.
    @Test func aWriteChangesOnlyTheRecordWrittenTo() {
        let original = Self.record()
        var copy = original
        copy.requestID = "r2"
        copy.candidates[0].result.body.bytes = Array("{}".utf8)
        copy.baseline.status = 503
        copy.exposure = ExperimentExposure(experiment: "e", key: "k", arm: nil, servedBy: .control)
        #expect(original.requestID == "r1" && copy.requestID == "r2")
        #expect(original.candidates[0].result.body.bytes.isEmpty && copy.candidates[0].result.body.bytes == Array("{}".utf8))
        #expect(original.baseline.status == 200 && copy.baseline.status == 503)
        #expect(original.exposure == nil && copy.exposure?.experiment == "e")
        // And the other way round: the original written after the copy was made.
        var first = Self.record()
        let second = first
        first.source = "replay"
        #expect(first.source == "replay" && second.source == "live")
    }
}
