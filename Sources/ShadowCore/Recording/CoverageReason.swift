/// Why a (request, candidate) pair was or was not compared. Every request the sidecar sees ends
/// in exactly one reason per candidate (or `no_candidates` / `unrouted` once), and the counts go
/// to the per-minute coverage table, so no loss is ever silent.
public enum CoverageReason: String, Sendable, Hashable, CaseIterable {
    /// Recorded, both arms answered, scored.
    case compared
    /// Recorded; the candidate failed (timeout, refused, …).
    case candidateError = "candidate_error"
    /// Recorded; the baseline failed, so there is nothing to compare against.
    case baselineError = "baseline_error"
    /// Recorded; the client went away before the baseline answered (the candidate's answer is kept).
    case clientClosed = "client_closed"
    /// Not mirrored: outside the route's sample.
    case notSampled = "not_sampled"
    /// Not mirrored: the route's gates (include/exclude rules) turned it away.
    case gated
    /// Not mirrored: the candidate's circuit breaker is open (or half-open and not probing).
    case circuitOpen = "circuit_open"
    /// Not mirrored: the route's rate cap (token bucket) was empty.
    case rateLimited = "rate_limited"
    /// Not mirrored: the route's daily budget was spent.
    case budgetExhausted = "budget_exhausted"
    /// Not mirrored: request body above `limits.mirror_max_body`.
    case bodyTooLarge = "body_too_large"
    /// Not mirrored: a gRPC call whose request is a stream (client-streaming or bidirectional:
    /// other than exactly one message, or answered before it ended). It passes through to the
    /// baseline; a conversation replayed to a candidate would not be the same call.
    case clientStreaming = "client_streaming"
    /// Not mirrored: the candidate's shadow queue was full.
    case queueFull = "queue_full"
    /// Not sent: the copy waited in the candidate's queue longer than its `max_queue_wait`
    /// (a pair of a copy sent that late would not describe the candidate at that moment).
    case queueExpired = "queue_expired"
    /// Mirrored, but the record was dropped because the writer's queue was full.
    case recorderFull = "recorder_full"
    /// Mirrored, but the record could not be written (disk full, I/O error).
    case writeFailed = "write_failed"
    /// Not mirrored: the route's experiment served this request from its treatment, and other
    /// candidates are compared against control's answers only.
    case servedByTreatment = "served_by_treatment"
    /// The route has no candidates.
    case noCandidates = "no_candidates"
    /// No route matched the path (the client got 404).
    case unrouted
    /// Rejected before reaching the baseline (413, 400).
    case rejected

    /// Whether pairs under this reason are in the `pairs` table (the others are only counted).
    public var isRecorded: Bool {
        switch self {
        case .compared, .candidateError, .baselineError, .clientClosed: true
        default: false
        }
    }
}
