import NIOCore
import NIOHTTP1
import ShadowCore

/// Assembles one exchange's record: the baseline result plus every mirrored candidate's.
///
/// Lives on the event loop of the client connection; when the last arm reports, the record is
/// handed to the writer's queue (never waiting: a full queue is counted as `recorder_full`).
///
/// Usually the client-facing call is the baseline's and the copies are candidates'. When an
/// experiment's treatment answers the client, the roles swap: the served call fills the
/// treatment's candidate slot and a copy sent to the baseline fills the baseline's, so the
/// pair is still control against treatment.
final class PendingExchange {
    /// Where an arm's result goes.
    enum Slot: Equatable {
        case baseline
        case candidate(Int)
    }

    private var record: ExchangeRecord
    private var results: [ArmResult?]
    private var outstanding: Int
    private var dropped: Set<Int> = []
    private var baselineDone = false
    /// No baseline result will come (the copy to it was refused, or never sent).
    private var baselineMissing = false
    /// The slot of the call that answers the client.
    let served: Slot
    private let shared: SharedState

    init(record: ExchangeRecord, candidateCount: Int, shared: SharedState, served: Slot = .baseline, baselineCopy: Bool = true) {
        self.record = record
        self.results = Array(repeating: nil, count: candidateCount)
        self.outstanding = candidateCount
        self.shared = shared
        self.served = served
        if served != .baseline && !baselineCopy {
            self.baselineDone = true
            self.baselineMissing = true
        }
    }

    var route: String { self.record.route }
    var receivedAtMicros: Int64 { self.record.receivedAtMicros }

    /// The client-facing call's result.
    func servedFinished(_ result: ArmResult) {
        self.finished(self.served, result)
    }

    /// Treatment failed and control answered instead: the treatment's result goes to its slot,
    /// the fallback's to the baseline's (unless a copy to the baseline already filled it).
    func fellBack(treatment: ArmResult) {
        self.record.exposure?.fallback = true
        self.record.exposure?.servedBy = .control
        self.finished(self.served, treatment)
        self.baselineMissing = false
        self.baselineDone = false
    }

    func finished(_ slot: Slot, _ result: ArmResult) {
        switch slot {
        case .baseline:
            guard !self.baselineDone else { return }
            self.baselineDone = true
            self.record.baseline = result
        case .candidate(let index):
            guard self.results[index] == nil, !self.dropped.contains(index) else { return }
            self.results[index] = result
            self.outstanding -= 1
        }
        self.completeIfReady()
    }

    /// The copy was refused (queue full): it is counted, not recorded.
    func droppedCopy(_ slot: Slot) {
        switch slot {
        case .baseline:
            guard !self.baselineDone else { return }
            self.baselineDone = true
            self.baselineMissing = true
        case .candidate(let index):
            guard self.results[index] == nil, self.dropped.insert(index).inserted else { return }
            self.outstanding -= 1
        }
        self.completeIfReady()
    }

    private func completeIfReady() {
        guard self.baselineDone, self.outstanding == 0 else { return }
        self.record.candidates = self.record.candidates.indices.compactMap { index in
            guard let result = self.results[index] else { return nil }
            return CandidateResult(name: self.record.candidates[index].name, result: result)
        }
        if self.baselineMissing {
            // Nothing to pair the treatment's answer with: the exposure is recorded alone.
            // Read first: an optional-chained assignment holds `record` while its right side runs.
            let treatment = self.record.candidates.first?.result
            self.record.exposure?.unpairedTreatment = treatment
            self.record.candidates = []
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
