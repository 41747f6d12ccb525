import GRDB
import ShadowCore

extension PairReader {
    /// Which pairs a scan visits and which optional columns it reads.
    public struct Scan: Sendable {
        /// `received_at` from (inclusive) and to (exclusive), microseconds since the epoch.
        public var fromMicros: Int64?
        public var toMicros: Int64?
        /// Only this route.
        public var route: String?
        /// Per route, a JSONPath into the request body whose value is the segment (otherwise the
        /// recorded segment header is used).
        public var segmentFields: [String: String]
        /// Read `usage.prompt_tokens` / `usage.completion_tokens` from both arms' bodies.
        public var tokenUsage: Bool

        public init(
            fromMicros: Int64? = nil,
            toMicros: Int64? = nil,
            route: String? = nil,
            segmentFields: [String: String] = [:],
            tokenUsage: Bool = false
        ) {
            self.fromMicros = fromMicros
            self.toMicros = toMicros
            self.route = route
            self.segmentFields = segmentFields
            self.tokenUsage = tokenUsage
        }
    }

    /// One recorded (request, candidate) pair, as much of it as a report needs.
    public struct ScannedPair: Sendable {
        public var route: String
        public var candidate: String
        public var receivedAtMicros: Int64
        public var baselineLatencyMicros: Int64?
        public var candidateLatencyMicros: Int64?
        public var baselineStatus: Int?
        public var candidateStatus: Int?
        public var baselineError: String?
        public var candidateError: String?
        /// The coverage reason: `compared`, `candidate_error`, `baseline_error`, `client_closed`.
        public var outcome: String
        public var divergence: Double?
        public var diverged: Bool
        /// The request id, read only for diverged pairs (examples).
        public var requestID: String?
        /// A JSON array of paths, read only for diverged pairs.
        public var differingPaths: String?
        public var segment: String?
        public var baselineTokens: (prompt: Double, completion: Double)?
        public var candidateTokens: (prompt: Double, completion: Double)?
    }

    /// Visits every pair of the scan in one pass over a single read transaction (one consistent
    /// snapshot even while the daemon writes), in storage order.
    ///
    /// - Parameters:
    ///   - progress: called every 65,536 rows with the rows read so far.
    ///   - visit: called once per pair.
    public func scan(_ scan: Scan, progress: (Int) -> Void = { _ in }, visit: (ScannedPair) throws -> Void) throws {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        var segmentExpression = "e.segment"
        if !scan.segmentFields.isEmpty {
            var cases = ""
            for (route, field) in scan.segmentFields.sorted(by: { $0.key < $1.key }) {
                cases +=
                    " WHEN ? THEN CASE WHEN typeof(e.request_body) = 'text' AND json_valid(e.request_body) THEN CAST(json_extract(e.request_body, ?) AS TEXT) END"
                arguments += [route, field]
            }
            segmentExpression = "coalesce(CASE e.route\(cases) END, e.segment)"
        }
        let tokens =
            scan.tokenUsage
            ? """
            , \(Self.usage("e.baseline_body", "prompt_tokens")), \(Self.usage("e.baseline_body", "completion_tokens")),
            \(Self.usage("s.body", "prompt_tokens")), \(Self.usage("s.body", "completion_tokens"))
            """
            : ""
        if let from = scan.fromMicros {
            conditions.append("e.received_at_us >= ?")
            arguments.append(from)
        }
        if let to = scan.toMicros {
            conditions.append("e.received_at_us < ?")
            arguments.append(to)
        }
        if let route = scan.route {
            conditions.append("e.route = ?")
            arguments.append(route)
        }
        let sql = """
            SELECT e.route, s.candidate, e.received_at_us, e.baseline_latency_us, s.latency_us, e.baseline_status, s.status,
                e.baseline_error, s.error, s.outcome, s.divergence, s.diverged,
                CASE WHEN s.diverged THEN e.request_id END, CASE WHEN s.diverged THEN s.differing_paths END,
                \(segmentExpression)\(tokens)
            FROM shadows s JOIN exchanges e ON e.id = s.exchange_id
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            """
        do {
            try self.queue.read { db in
                let rows = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
                var count = 0
                while let row = try rows.next() {
                    var pair = ScannedPair(
                        route: row[0],
                        candidate: row[1],
                        receivedAtMicros: row[2],
                        baselineLatencyMicros: row[3],
                        candidateLatencyMicros: row[4],
                        baselineStatus: row[5],
                        candidateStatus: row[6],
                        baselineError: row[7],
                        candidateError: row[8],
                        outcome: row[9],
                        divergence: row[10],
                        diverged: (row[11] as Int?) == 1,
                        requestID: row[12],
                        differingPaths: row[13],
                        segment: row[14]
                    )
                    if scan.tokenUsage {
                        pair.baselineTokens = Self.tokens(row[15], row[16])
                        pair.candidateTokens = Self.tokens(row[17], row[18])
                    }
                    try visit(pair)
                    count += 1
                    if count & 0xFFFF == 0 { progress(count) }
                }
                progress(count)
            }
        } catch let error as DatabaseError {
            throw PairReader.storeError(error, path: self.path, busyTimeout: self.busyTimeout)
        }
    }

    private static func usage(_ column: String, _ field: String) -> String {
        "CASE WHEN typeof(\(column)) = 'text' AND json_valid(\(column)) THEN json_extract(\(column), '$.usage.\(field)') END"
    }

    private static func tokens(_ prompt: Double?, _ completion: Double?) -> (prompt: Double, completion: Double)? {
        guard prompt != nil || completion != nil else { return nil }
        return (prompt ?? 0, completion ?? 0)
    }

    /// Coverage counts per (route, candidate, reason) within the window.
    public func coverage(fromMicros: Int64?, toMicros: Int64?, route: String?) throws -> [CoverageCount] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        // Counts are per minute: a minute belongs to the window when it starts inside it.
        if let from = fromMicros {
            conditions.append("minute >= ?")
            arguments.append((from + 59_999_999) / 60_000_000 * 60)
        }
        if let to = toMicros {
            conditions.append("minute < ?")
            arguments.append((to + 59_999_999) / 60_000_000 * 60)
        }
        if let route {
            conditions.append("route = ?")
            arguments.append(route)
        }
        return try self.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT route, candidate, reason, sum(count) AS n FROM coverage_counts
                    \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
                    GROUP BY route, candidate, reason ORDER BY route, candidate, reason
                    """,
                arguments: StatementArguments(arguments)
            ).map { CoverageCount(route: $0["route"], candidate: $0["candidate"], reason: $0["reason"], count: $0["n"]) }
        }
    }

    /// A coverage total.
    public struct CoverageCount: Sendable, Equatable {
        public var route: String
        public var candidate: String
        public var reason: String
        public var count: Int
    }

    /// The A/A per-path disagreement (all time: the floor is a property of the baseline model),
    /// most frequent first.
    public func noisyPaths(route: String, limit: Int = 20) throws -> [(path: String, differing: Int, compared: Int)] {
        try self.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT path, differing, compared FROM path_divergence
                    WHERE route = ? AND candidate = ? AND path != '' ORDER BY differing DESC, path LIMIT ?
                    """,
                arguments: [route, NoiseFloorConfiguration.replicaName, limit]
            ).map { (path: $0["path"], differing: $0["differing"], compared: $0["compared"]) }
        }
    }

    /// Oldest and newest `received_at` in the file, microseconds; `nil` when it holds no pairs.
    public func timeSpan() throws -> (first: Int64, last: Int64)? {
        try self.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT min(received_at_us) AS a, max(received_at_us) AS b FROM exchanges"),
                let first: Int64 = row["a"], let last: Int64 = row["b"]
            else { return nil }
            return (first, last)
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try self.queue.read(body)
        } catch let error as DatabaseError {
            throw PairReader.storeError(error, path: self.path, busyTimeout: self.busyTimeout)
        }
    }
}
