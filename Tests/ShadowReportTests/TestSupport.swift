import Foundation
import ShadowCore
import ShadowStore

/// A fresh folder per test, removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async rethrows -> T {
    let path = NSTemporaryDirectory() + "shadowd-report-tests-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Synthetic shadow traffic with known figures, written through the real store.
struct Traffic {
    var route = "classifier"
    var candidate = "v2"
    var pairs = 2_000
    /// Every `divergeEvery`-th compared pair has a different label (0 = never).
    var divergeEvery = 10
    /// Every `errorEvery`-th pair's candidate call times out (0 = never).
    var errorEvery = 0
    var startMicros: Int64 = 1_780_000_000_000_000
    /// Time between requests.
    var spacingMicros: Int64 = 1_000_000
    var baselineLatency: Int64 = 10_000
    var candidateLatency: Int64 = 12_000
    /// Segment header value per request index.
    var segment: (Int) -> String? = { _ in nil }
    /// Extra request-body fields per request index.
    var tenantField: (Int) -> String? = { _ in nil }
    /// Token usage in both arms' bodies (prompt, baseline completion, candidate completion).
    var usage: (prompt: Int, baseline: Int, candidate: Int)?
    /// Prices the daemon knew at record time (stored with the pairs).
    var prices: (baseline: CostConfiguration, candidate: CostConfiguration)?

    func records() -> [ExchangeRecord] {
        (0..<self.pairs).map { index in
            let diverges = self.divergeEvery > 0 && index % self.divergeEvery == 0
            let fails = self.errorEvery > 0 && index % self.errorEvery == self.errorEvery - 1
            let usage = self.usage.map { #","usage":{"prompt_tokens":\#($0.prompt),"completion_tokens":"# }
            let baselineBody = #"{"label":"cat""# + (usage.map { $0 + "\(self.usage!.baseline)}" } ?? "") + "}"
            let candidateBody = #"{"label":"\#(diverges ? "dog" : "cat")""# + (usage.map { $0 + "\(self.usage!.candidate)}" } ?? "") + "}"
            let request = self.tenantField(index).map { #"{"tenant":"\#($0)","inputs":[1]}"# } ?? #"{"inputs":[1]}"#
            // Latencies vary a little so percentiles are not all one value.
            let jitter = Int64(index % 100) * 20
            var record = ExchangeRecord(
                requestID: "req-\(self.route)-\(self.candidate)-\(index)",
                route: self.route,
                configRevision: "rev",
                receivedAtMicros: self.startMicros + Int64(index) * self.spacingMicros,
                method: "POST",
                path: "/v1/\(self.route)",
                requestBody: CapturedBody(bytes: Array(request.utf8)),
                baseline: ArmResult(
                    version: "1",
                    status: 200,
                    latencyMicros: self.baselineLatency + jitter,
                    contentType: "application/json",
                    body: CapturedBody(bytes: Array(baselineBody.utf8))
                ),
                candidates: [
                    CandidateResult(
                        name: self.candidate,
                        result: fails
                            ? ArmResult(version: "2", latencyMicros: 5_000_000, error: .timeout)
                            : ArmResult(
                                version: "2",
                                status: 200,
                                latencyMicros: self.candidateLatency + jitter,
                                contentType: "application/json",
                                body: CapturedBody(bytes: Array(candidateBody.utf8))
                            )
                    )
                ],
                scorer: JSONScorer(configuration: .init()),
                segment: self.segment(index)
            )
            if let prices = self.prices {
                record.readsUsage = true
                record.baseline.price = prices.baseline
                record.candidates[0].result.price = prices.candidate
            }
            return record
        }
    }

    /// Writes the traffic into the database at `path` (created if needed) in batches.
    func write(to path: String) throws {
        let store = try PairStore(path: path)
        let records = self.records()
        for start in stride(from: 0, to: records.count, by: 500) {
            try store.write(Array(records[start..<min(start + 500, records.count)]), coverage: [:])
        }
        try store.close()
    }
}

/// A configuration naming the route with guardrails, optional costs and segment key.
func configuration(extraRouteYAML: String = "", baselineCost: String = "", candidateCost: String = "") throws -> Configuration {
    try Configuration.load(
        yaml: """
            routes:
              - name: classifier
                prefix: /v1/classifier
                baseline:
                  url: http://127.0.0.1:9001
            \(baselineCost)
                candidates:
                  - name: v2
                    url: http://127.0.0.1:9002
            \(candidateCost)
            \(extraRouteYAML)
            """
    )
}
