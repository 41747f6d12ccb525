extension ExchangeRecord {
    /// Scores one candidate against the baseline, or `nil` when there is nothing to compare
    /// (either arm failed).
    public func score(_ candidate: CandidateResult) -> Score? {
        self.score(candidate, using: self.scorer)
    }

    /// Scores one candidate with the given scorer (the record's own, possibly minus noisy paths).
    /// - Parameters:
    ///   - baselineBody, candidateBody: what to compare instead of the stored bodies (a streamed
    ///     answer reassembled, from ``ArmFigures``).
    public func score(_ candidate: CandidateResult, using scorer: any Scorer, baselineBody: [UInt8]? = nil, candidateBody: [UInt8]? = nil) -> Score? {
        let baseline = self.baseline
        let other = candidate.result
        guard baseline.succeeded, other.succeeded, let baselineStatus = baseline.status, let candidateStatus = other.status else {
            return nil
        }
        if baselineStatus != candidateStatus {
            return Score(
                value: 1,
                diverged: true,
                explanation: .object([
                    ("status", .string("differs")),
                    ("baseline", .number(Double(baselineStatus))),
                    ("candidate", .number(Double(candidateStatus))),
                ]),
                differingPaths: ["(status)"]
            )
        }
        // gRPC answers an error with HTTP 200 and a status in its trailers: a different status
        // is a divergence, as a different HTTP status is.
        if baseline.grpcStatus != other.grpcStatus {
            func shown(_ status: Int?) -> JSONValue { status.map { .number(Double($0)) } ?? .null }
            return Score(
                value: 1,
                diverged: true,
                explanation: .object([
                    ("grpc_status", .string("differs")), ("baseline", shown(baseline.grpcStatus)), ("candidate", shown(other.grpcStatus)),
                ]),
                differingPaths: ["(grpc-status)"]
            )
        }
        if baseline.body.truncated || other.body.truncated {
            let equal = baseline.body == other.body
            return Score(
                value: equal ? 0 : 1,
                diverged: !equal,
                explanation: .object([
                    ("fallback", .string("bytes")),
                    ("reason", .string("a body exceeded storage.max_stored_body; compared stored prefix and length")),
                    ("equal", .bool(equal)),
                ])
            )
        }
        return scorer.score(baseline: baselineBody ?? baseline.body.bytes, candidate: candidateBody ?? other.body.bytes)
    }

    /// The coverage reason this record counts under for one candidate.
    public func coverageReason(_ candidate: CandidateResult) -> CoverageReason {
        if self.baseline.error == .clientClosed { return .clientClosed }
        if !self.baseline.succeeded { return .baselineError }
        if !candidate.result.succeeded { return .candidateError }
        return .compared
    }
}
