import Foundation
import GRDB
import ShadowCore

extension PairReader {
    /// One request the sidecar recorded, with the baseline's answer: what a replay re-sends and
    /// compares against.
    public struct RecordedExchange: Sendable {
        /// The row's id, for paging.
        public var id: Int64
        public var requestID: String
        public var receivedAtMicros: Int64
        public var method: String
        public var path: String
        /// As stored (`nil` when not stored).
        public var requestBody: [UInt8]?
        /// As received.
        public var requestBodyBytes: Int
        /// The body is stored decoded (JSON for a tensor message), not as it was sent.
        public var requestBodyDecoded: Bool
        /// A gRPC call (the baseline answered with a gRPC content type or status).
        public var isGRPC: Bool
        public var configRevision: String
        public var segment: String?
        /// The baseline's answer as recorded (its body as stored).
        public var baseline: ArmResult
    }

    /// Live exchanges of `route` in the window, oldest first, `limit` at a time after `afterID`.
    public func recordedExchanges(route: String, fromMicros: Int64?, toMicros: Int64?, afterID: Int64, limit: Int) throws -> [RecordedExchange] {
        // Replays of replays make no sense: only what the sidecar saw (schema 7 marks it).
        let live = self.schemaVersion >= 7 ? " AND source = 'live'" : ""
        let grpcStatus = self.schemaVersion >= 10 ? "baseline_grpc_status" : "NULL AS baseline_grpc_status"
        let decoded = self.schemaVersion >= 11 ? "request_body_decoded" : "NULL AS request_body_decoded"
        let (requestBody, baselineBody) = (self.body("request_body"), self.body("baseline_body"))
        return try self.queue.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, request_id, received_at_us, method, path, CAST(\(requestBody) AS BLOB) AS request_body, request_body_bytes,
                        config_revision, segment, baseline_version, baseline_status, baseline_latency_us, baseline_ttfb_us,
                        baseline_content_type, CAST(\(baselineBody) AS BLOB) AS baseline_body, baseline_body_bytes, baseline_error,
                        \(grpcStatus), \(decoded)
                    FROM exchanges
                    WHERE route = ? AND id > ? AND received_at_us >= ? AND received_at_us < ?\(live)
                    ORDER BY id LIMIT ?
                    """,
                arguments: [route, afterID, fromMicros ?? Int64.min, toMicros ?? Int64.max, limit]
            ).map { row in
                let baselineBody = (row["baseline_body"] as Data?).map { Array($0) } ?? []
                var baseline = ArmResult(
                    version: row["baseline_version"],
                    status: row["baseline_status"],
                    latencyMicros: row["baseline_latency_us"],
                    timeToHeadMicros: row["baseline_ttfb_us"],
                    contentType: row["baseline_content_type"],
                    body: CapturedBody(bytes: baselineBody, totalBytes: row["baseline_body_bytes"])
                )
                baseline.error = (row["baseline_error"] as String?).flatMap(ArmError.init(rawValue:))
                return RecordedExchange(
                    id: row["id"],
                    requestID: row["request_id"],
                    receivedAtMicros: row["received_at_us"],
                    method: row["method"],
                    path: row["path"],
                    requestBody: (row["request_body"] as Data?).map { Array($0) },
                    requestBodyBytes: row["request_body_bytes"],
                    requestBodyDecoded: (row["request_body_decoded"] as Int?) == 1,
                    isGRPC: row["baseline_grpc_status"] != nil || GRPCSemantics.isGRPC(contentType: row["baseline_content_type"]),
                    configRevision: row["config_revision"],
                    segment: row["segment"],
                    baseline: baseline
                )
            }
        }
    }
}

extension PairStore {
    /// Request ids already replayed against `candidate` on `route` (a rerun resumes after them).
    public func replayedRequestIDs(route: String, candidate: String) throws -> Set<String> {
        try self.queue.read { db in
            Set(
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT e.request_id FROM exchanges e JOIN shadows s ON s.exchange_id = e.id
                        WHERE e.source = 'replay' AND e.route = ? AND s.candidate = ?
                        """,
                    arguments: [route, candidate]
                )
            )
        }
    }
}
