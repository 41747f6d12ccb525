import Histogram
import ShadowCore
import ShadowStore

/// Running totals for one (route, candidate) over a scan. Memory is bounded whatever the number
/// of pairs: histograms, a fixed-size reservoir, and capped maps of paths and segments.
struct CandidateAccumulator {
    static let reservoirCapacity = 20_000
    static let maxPaths = 5_000
    static let maxSegments = 200
    static let otherSegment = "(other)"
    /// 1 µs to 1 h: anything slower is clamped to the top.
    static let highestLatency: UInt64 = 3_600_000_000

    let route: String
    let candidate: String
    var pairs = 0
    var compared = 0
    var diverged = 0
    var scoreSum = 0.0
    var zeroScores = 0
    var scoreBins = [Int](repeating: 0, count: 20)
    var baselineLatency = Histogram<UInt64>(highestTrackableValue: Self.highestLatency, numberOfSignificantValueDigits: .three)
    var candidateLatency = Histogram<UInt64>(highestTrackableValue: Self.highestLatency, numberOfSignificantValueDigits: .three)
    var latencyPairs: Reservoir<(baseline: Double, candidate: Double)>
    var errors = ErrorTally()
    var candidateErrorKinds: [String: Int] = [:]
    private var pathSlots: [String: Int] = [:]
    private var pathTallies: [(path: String, tally: PathTally)] = []
    /// A stored `differing_paths` array → its path slots: the same few arrays recur, so each is
    /// parsed once.
    private var pathSets: [String: [Int]] = [:]
    private var segmentSlots: [String: Int] = [:]
    private var segmentTallies: [(value: String, tally: SliceTally)] = []
    /// The last few segment values and their slots, searched before hashing.
    private var recentSegments: [(value: String, slot: Int)] = []
    var hours: [Int64: SliceTally] = [:]
    /// The hour of the previous row and its tally, kept out of `hours` while rows stay in it.
    private var currentHour: (hour: Int64, tally: SliceTally)?
    var cost = CostTally()
    private let parser = JSONParser(maximumDepth: 4)

    init(route: String, candidate: String, seed: UInt64) {
        self.route = route
        self.candidate = candidate
        self.latencyPairs = Reservoir(capacity: Self.reservoirCapacity, seed: seed)
    }

    struct ErrorTally {
        var pairs = 0
        var baselineErrors = 0
        var candidateErrors = 0
        var baselineTimeouts = 0
        var candidateTimeouts = 0

        mutating func add(_ pair: PairReader.ScannedPair) {
            // A client that left, or a daemon that stopped, says nothing about either model.
            guard pair.baselineError != "client_closed", pair.baselineError != "shutdown", pair.candidateError != "shutdown" else { return }
            self.pairs += 1
            if ArmFailure.isFailure(error: pair.baselineError, status: pair.baselineStatus) { self.baselineErrors += 1 }
            if ArmFailure.isFailure(error: pair.candidateError, status: pair.candidateStatus) { self.candidateErrors += 1 }
            if ArmFailure.isTimeout(pair.baselineError) { self.baselineTimeouts += 1 }
            if ArmFailure.isTimeout(pair.candidateError) { self.candidateTimeouts += 1 }
        }
    }

    struct PathTally {
        var count = 0
        var examples: [String] = []
    }

    /// The figures of a slice of the pairs: one segment value, or one hour.
    struct SliceTally {
        var pairs = 0
        var compared = 0
        var diverged = 0
        var errors = ErrorTally()
        var baselineLatency = Histogram<UInt64>(highestTrackableValue: CandidateAccumulator.highestLatency, numberOfSignificantValueDigits: .two)
        var candidateLatency = Histogram<UInt64>(highestTrackableValue: CandidateAccumulator.highestLatency, numberOfSignificantValueDigits: .two)
    }

    struct CostTally {
        var pairs = 0
        var baseline = 0.0
        var candidate = 0.0
        /// Per-request pairs, for the interval of the relative increase.
        var ratio = PairedRatio()
        /// Per UTC day (days since the epoch): pairs and what each arm cost on them.
        var days: [Int64: (pairs: Int, baseline: Double, candidate: Double)] = [:]

        mutating func add(baseline: Double, candidate: Double, atMicros: Int64) {
            self.pairs += 1
            self.baseline += baseline
            self.candidate += candidate
            self.ratio.add(baseline: baseline, candidate: candidate)
            let day = atMicros / 86_400_000_000
            self.days[day, default: (0, 0, 0)].pairs += 1
            self.days[day, default: (0, 0, 0)].baseline += baseline
            self.days[day, default: (0, 0, 0)].candidate += candidate
        }
    }

    mutating func add(_ pair: PairReader.ScannedPair, baselineCost: CostConfiguration?, candidateCost: CostConfiguration?) {
        self.pairs += 1
        if let divergence = pair.divergence {
            self.compared += 1
            if pair.diverged { self.diverged += 1 }
            self.scoreSum += divergence
            if divergence <= 0 {
                self.zeroScores += 1
            } else {
                self.scoreBins[min(19, max(0, Int((divergence * 20).rounded(.up)) - 1))] += 1
            }
        }
        let baseline = pair.baselineLatencyMicros.map { UInt64(clamping: max(1, $0)) }
        let candidate = pair.candidateLatencyMicros.map { UInt64(clamping: max(1, $0)) }
        if let baseline { _ = self.baselineLatency.record(min(baseline, Self.highestLatency)) }
        if let candidate { _ = self.candidateLatency.record(min(candidate, Self.highestLatency)) }
        if let baseline, let candidate, pair.baselineError == nil, pair.candidateError == nil {
            self.latencyPairs.offer((Double(baseline), Double(candidate)))
        }
        self.errors.add(pair)
        if let kind = ArmFailure.kind(error: pair.candidateError, status: pair.candidateStatus) {
            self.candidateErrorKinds[kind, default: 0] += 1
        }
        if pair.diverged, let text = pair.differingPaths { self.addPaths(text, requestID: pair.requestID) }
        self.addSegment(pair, baseline: baseline, candidate: candidate)
        self.addHour(pair, baseline: baseline, candidate: candidate)
        if let baselineCost, let candidateCost {
            // The report's configuration prices the pair (so a price change can be replayed).
            let b = pair.baselineTokens ?? (0, 0)
            let c = pair.candidateTokens ?? (0, 0)
            self.cost.add(
                baseline: baselineCost.cost(promptTokens: b.prompt, completionTokens: b.completion),
                candidate: candidateCost.cost(promptTokens: c.prompt, completionTokens: c.completion),
                atMicros: pair.receivedAtMicros
            )
        } else if let stored = pair.baselineCost, let candidate = pair.candidateCost {
            // Without prices given to the report, the costs the daemon stored.
            self.cost.add(baseline: stored, candidate: candidate, atMicros: pair.receivedAtMicros)
        }
    }

    private mutating func addPaths(_ text: String, requestID: String?) {
        let slots: [Int]
        if let known = self.pathSets[text] {
            slots = known
        } else {
            guard case .array(let items)? = try? self.parser.parse(text) else { return }
            var parsed: [Int] = []
            for case .string(let path) in items {
                if let slot = self.pathSlots[path] {
                    parsed.append(slot)
                } else if self.pathTallies.count < Self.maxPaths {
                    self.pathSlots[path] = self.pathTallies.count
                    parsed.append(self.pathTallies.count)
                    self.pathTallies.append((path, PathTally()))
                }
            }
            if self.pathSets.count < 1_000 { self.pathSets[text] = parsed }
            slots = parsed
        }
        for slot in slots { Self.tally(&self.pathTallies[slot].tally, requestID: requestID) }
    }

    /// Path → how often it differed and example request ids.
    var paths: [String: PathTally] {
        Dictionary(self.pathTallies.map { ($0.path, $0.tally) }, uniquingKeysWith: { first, _ in first })
    }

    private static func tally(_ tally: inout PathTally, requestID: String?) {
        tally.count += 1
        if let requestID, tally.examples.count < 3 { tally.examples.append(requestID) }
    }

    private mutating func addSegment(_ pair: PairReader.ScannedPair, baseline: UInt64?, candidate: UInt64?) {
        guard let value = pair.segment else { return }
        var slot = -1
        for recent in self.recentSegments where recent.value == value {
            slot = recent.slot
            break
        }
        if slot < 0 {
            if let known = self.segmentSlots[value] {
                slot = known
            } else if self.segmentTallies.count < Self.maxSegments {
                slot = self.segmentTallies.count
                self.segmentSlots[value] = slot
                self.segmentTallies.append((value, SliceTally()))
            } else {
                slot = self.segmentSlots[Self.otherSegment] ?? self.segmentTallies.count
                if slot == self.segmentTallies.count {
                    self.segmentSlots[Self.otherSegment] = slot
                    self.segmentTallies.append((Self.otherSegment, SliceTally()))
                }
            }
            if self.recentSegments.count >= 8 { self.recentSegments.removeFirst() }
            self.recentSegments.append((value, slot))
        }
        // Mutated in place: a copy would duplicate both histograms per row.
        Self.tally(&self.segmentTallies[slot].tally, pair, baseline: baseline, candidate: candidate)
    }

    /// Segment value → its tally.
    var segments: [String: SliceTally] {
        Dictionary(self.segmentTallies.map { ($0.value, $0.tally) }, uniquingKeysWith: { first, _ in first })
    }

    private static func tally(_ tally: inout SliceTally, _ pair: PairReader.ScannedPair, baseline: UInt64?, candidate: UInt64?) {
        tally.pairs += 1
        if pair.divergence != nil {
            tally.compared += 1
            if pair.diverged { tally.diverged += 1 }
        }
        tally.errors.add(pair)
        if let baseline { _ = tally.baselineLatency.record(min(baseline, Self.highestLatency)) }
        if let candidate { _ = tally.candidateLatency.record(min(candidate, Self.highestLatency)) }
    }

    private mutating func addHour(_ pair: PairReader.ScannedPair, baseline: UInt64?, candidate: UInt64?) {
        // Rows arrive in time order, so the hour rarely changes: no hashing per row.
        let hour = pair.receivedAtMicros / 3_600_000_000
        if self.currentHour?.hour != hour {
            self.flushHour()
            self.currentHour = (hour, self.hours.removeValue(forKey: hour) ?? SliceTally())
        }
        Self.tally(&self.currentHour!.tally, pair, baseline: baseline, candidate: candidate)
    }

    private mutating func flushHour() {
        if let current = self.currentHour { self.hours[current.hour] = current.tally }
        self.currentHour = nil
    }

    /// The hourly tallies, including the one being filled.
    var allHours: [Int64: SliceTally] {
        var hours = self.hours
        if let current = self.currentHour { hours[current.hour] = current.tally }
        return hours
    }
}

/// What counts as a model's failure in the report.
enum ArmFailure {
    /// Transport failures and 5xx answers are the model's; `too_large` (our capture cap),
    /// `client_closed` and `shutdown` are not.
    static func isFailure(error: String?, status: Int?) -> Bool {
        kind(error: error, status: status) != nil
    }

    static func kind(error: String?, status: Int?) -> String? {
        if let error {
            switch error {
            case "too_large", "client_closed", "shutdown": return nil
            default: return error
            }
        }
        if let status, status >= 500 { return "http_5xx" }
        return nil
    }

    static func isTimeout(_ error: String?) -> Bool {
        error == "timeout" || error == "connect_timeout"
    }
}
