import GRDB
import GRDBSQLite
import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

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
        public var divergence: Double?
        public var diverged: Bool
        /// The request id, read only for diverged pairs (examples).
        public var requestID: String?
        /// A JSON array of paths, read only for diverged pairs.
        public var differingPaths: String?
        public var segment: String?
        /// The costs the daemon stored with the pair (schema 5), when it had prices.
        public var baselineCost: Double?
        public var candidateCost: Double?
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
            let request = self.textBody("e.request_body")
            var cases = ""
            for (route, field) in scan.segmentFields.sorted(by: { $0.key < $1.key }) {
                cases +=
                    " WHEN ? THEN CASE WHEN typeof(\(request)) = 'text' AND json_valid(\(request)) THEN CAST(json_extract(\(request), ?) AS TEXT) END"
                arguments += [route, field]
            }
            segmentExpression = "coalesce(CASE e.route\(cases) END, e.segment)"
        }
        // Schema 5 stores token counts and costs per arm; older files only have the bodies.
        let stored = self.schemaVersion >= 5
        let costs = stored ? ", e.baseline_cost, s.cost" : ", NULL, NULL"
        func tokens(_ column: String, _ body: String, _ field: String) -> String {
            stored ? "coalesce(\(column), \(Self.usage(body, field)))" : Self.usage(body, field)
        }
        // Schema 9 stores a candidate body equal to the baseline's once, on the exchange.
        // Schema 12 may store them compressed.
        let baselineBody = self.textBody("e.baseline_body")
        let candidateBody =
            self.schemaVersion >= 9 ? "(CASE WHEN s.body_same = 1 THEN \(baselineBody) ELSE \(self.textBody("s.body")) END)" : "s.body"
        let tokens =
            scan.tokenUsage
            ? """
            , \(tokens("e.baseline_prompt_tokens", baselineBody, "prompt_tokens")), \(tokens("e.baseline_completion_tokens", baselineBody, "completion_tokens")),
            \(tokens("s.prompt_tokens", candidateBody, "prompt_tokens")), \(tokens("s.completion_tokens", candidateBody, "completion_tokens"))
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
            SELECT e.route, s.candidate, e.received_at_us, coalesce(e.baseline_latency_us, -1), coalesce(s.latency_us, -1),
                coalesce(e.baseline_status, -1), coalesce(s.status, -1), e.baseline_error, s.error, NULL, coalesce(s.divergence, -1.0), s.diverged,
                CASE WHEN s.diverged THEN e.request_id END, CASE WHEN s.diverged THEN s.differing_paths END,
                \(segmentExpression)\(costs)\(tokens)
            FROM shadows s JOIN exchanges e ON e.id = s.exchange_id
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            """
        do {
            try self.queue.read { db in
                // Stepped by hand on the C API: per row, GRDB's Row would look up and box every
                // value; here each column is read once as its native type, and route, candidate
                // and segment reuse the previous row's String when the bytes are unchanged.
                let statement = try db.makeStatement(sql: sql)
                try statement.setArguments(StatementArguments(arguments))
                let handle = statement.sqliteStatement
                var route = TextColumn(index: 0)
                var candidate = TextColumn(index: 1)
                var segment = TextColumn(index: 14)
                var baselineError = TextColumn(index: 7)
                var candidateError = TextColumn(index: 8)
                var count = 0
                while true {
                    let code = sqlite3_step(handle)
                    if code == SQLITE_DONE { break }
                    guard code == SQLITE_ROW else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                    }
                    var pair = ScannedPair(
                        route: route.read(handle) ?? "",
                        candidate: candidate.read(handle) ?? "",
                        receivedAtMicros: sqlite3_column_int64(handle, 2),
                        baselineLatencyMicros: Self.nonNegative(handle, 3),
                        candidateLatencyMicros: Self.nonNegative(handle, 4),
                        baselineStatus: Self.nonNegative(handle, 5).map { Int($0) },
                        candidateStatus: Self.nonNegative(handle, 6).map { Int($0) },
                        baselineError: baselineError.read(handle),
                        candidateError: candidateError.read(handle),
                        divergence: Self.score(handle, 10),
                        diverged: sqlite3_column_int64(handle, 11) == 1,
                        requestID: Self.text(handle, 12),
                        differingPaths: Self.text(handle, 13),
                        segment: segment.read(handle)
                    )
                    pair.baselineCost = Self.double(handle, 15)
                    pair.candidateCost = Self.double(handle, 16)
                    if scan.tokenUsage {
                        pair.baselineTokens = Self.tokens(Self.double(handle, 17), Self.double(handle, 18))
                        pair.candidateTokens = Self.tokens(Self.double(handle, 19), Self.double(handle, 20))
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

    /// A text column whose value often repeats from row to row: the String is rebuilt only when
    /// the bytes change.
    private struct TextColumn {
        let index: Int32
        var bytes: [UInt8] = []
        var value: String?

        init(index: Int32) {
            self.index = index
        }

        mutating func read(_ handle: OpaquePointer) -> String? {
            // NULL reads as a null pointer: no separate type check.
            guard let text = sqlite3_column_text(handle, self.index) else { return nil }
            let buffer = UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(handle, self.index)))
            if let value = self.value, buffer.count == self.bytes.count,
                buffer.isEmpty || self.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, text, buffer.count) == 0 })
            {
                return value
            }
            self.bytes = Array(buffer)
            let value = String(decoding: buffer, as: UTF8.self)
            self.value = value
            return value
        }
    }

    /// Columns selected as `coalesce(x, -1)`: one call per value instead of a type check and a read.
    private static func nonNegative(_ handle: OpaquePointer, _ index: Int32) -> Int64? {
        let value = sqlite3_column_int64(handle, index)
        return value < 0 ? nil : value
    }

    private static func score(_ handle: OpaquePointer, _ index: Int32) -> Double? {
        let value = sqlite3_column_double(handle, index)
        return value < 0 ? nil : value
    }

    private static func double(_ handle: OpaquePointer, _ index: Int32) -> Double? {
        sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : sqlite3_column_double(handle, index)
    }

    private static func text(_ handle: OpaquePointer, _ index: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, index) else { return nil }
        return String(decoding: UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(handle, index))), as: UTF8.self)
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

    /// Gate state changes (circuit breakers, ramps) within the window, oldest first; none before
    /// schema 4.
    public func gatingEvents(fromMicros: Int64?, toMicros: Int64?, route: String?) throws -> [GatingEvent] {
        guard self.schemaVersion >= 4 else { return [] }
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let from = fromMicros {
            conditions.append("at_us >= ?")
            arguments.append(from)
        }
        if let to = toMicros {
            conditions.append("at_us < ?")
            arguments.append(to)
        }
        if let route {
            conditions.append("route = ?")
            arguments.append(route)
        }
        return try self.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT at_us, route, candidate, kind, from_state, to_state, reason FROM gating_events
                    \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) ORDER BY at_us LIMIT 1000
                    """,
                arguments: StatementArguments(arguments)
            ).map {
                GatingEvent(
                    atMicros: $0["at_us"],
                    route: $0["route"],
                    candidate: $0["candidate"],
                    kind: $0["kind"],
                    from: $0["from_state"],
                    to: $0["to_state"],
                    reason: $0["reason"]
                )
            }
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
