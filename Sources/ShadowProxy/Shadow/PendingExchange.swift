import NIOCore
import NIOHTTP1
import ShadowCore

/// Assembles one exchange's record: the baseline result plus every mirrored candidate's.
///
/// Lives on the event loop of the client connection; when the last arm reports, the record is
/// handed to the writer's queue (never waiting: a full queue is counted as `recorder_full`).
final class PendingExchange {
    private var record: ExchangeRecord
    private var results: [ArmResult?]
    private var outstanding: Int
    private var dropped: Set<Int> = []
    private var baselineDone = false
    private let shared: SharedState

    init(record: ExchangeRecord, candidateCount: Int, shared: SharedState) {
        self.record = record
        self.results = Array(repeating: nil, count: candidateCount)
        self.outstanding = candidateCount
        self.shared = shared
    }

    var route: String { self.record.route }
    var receivedAtMicros: Int64 { self.record.receivedAtMicros }

    func baselineFinished(_ result: ArmResult) {
        guard !self.baselineDone else { return }
        self.baselineDone = true
        self.record.baseline = result
        self.completeIfReady()
    }

    func candidateFinished(_ index: Int, _ result: ArmResult) {
        guard self.results[index] == nil else { return }
        self.results[index] = result
        self.outstanding -= 1
        self.completeIfReady()
    }

    /// The candidate's copy was refused (queue full): it is counted, not recorded.
    func candidateDropped(_ index: Int) {
        guard self.results[index] == nil, self.dropped.insert(index).inserted else { return }
        self.outstanding -= 1
        self.completeIfReady()
    }

    private func completeIfReady() {
        guard self.baselineDone, self.outstanding == 0 else { return }
        self.record.candidates = self.record.candidates.indices.compactMap { index in
            guard let result = self.results[index] else { return nil }
            return CandidateResult(name: self.record.candidates[index].name, result: result)
        }
        // An enrolled experiment request is recorded without a pair too: its exposure counts.
        guard !self.record.candidates.isEmpty || self.record.exposure?.arm != nil else { return }
        if !self.shared.records.offer(self.record) {
            for candidate in self.record.candidates {
                self.shared.coverage.add(
                    route: self.record.route,
                    candidate: candidate.name,
                    reason: .recorderFull,
                    atMicros: self.record.receivedAtMicros
                )
            }
        }
    }
}
