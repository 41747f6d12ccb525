import Foundation
import ShadowCore

/// A fresh folder per test, removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async rethrows -> T {
    let path = NSTemporaryDirectory() + "shadowd-tests-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

func makeRecord(
    id: String,
    baseline: String = #"{"label":"cat"}"#,
    candidate: String = #"{"label":"cat"}"#,
    candidateError: ArmError? = nil,
    at micros: Int64 = 1_700_000_000_000_000
) -> ExchangeRecord {
    ExchangeRecord(
        requestID: id,
        route: "classifier",
        configRevision: "rev1",
        receivedAtMicros: micros,
        method: "POST",
        path: "/v2/models/classifier/infer",
        requestBody: CapturedBody(bytes: Array(#"{"inputs":[1]}"#.utf8)),
        baseline: ArmResult(
            version: "1.0",
            status: 200,
            latencyMicros: 1500,
            timeToHeadMicros: 1400,
            contentType: "application/json",
            body: CapturedBody(bytes: Array(baseline.utf8))
        ),
        candidates: [
            CandidateResult(
                name: "v2",
                result: candidateError == nil
                    ? ArmResult(
                        version: "2.0",
                        status: 200,
                        latencyMicros: 2500,
                        timeToHeadMicros: 2000,
                        contentType: "application/json",
                        body: CapturedBody(bytes: Array(candidate.utf8))
                    )
                    : ArmResult(version: "2.0", latencyMicros: 5_000_000, error: candidateError)
            )
        ],
        scorer: JSONScorer(configuration: .init())
    )
}
