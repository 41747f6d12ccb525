import ShadowParquet
import ShadowStore

/// A table the export writes, its columns and types (the query contract of the README).
public struct ExportTable: Sendable {
    public let name: String
    /// The SQL source (a table or view) and its time column, in microseconds since the epoch.
    let source: String
    let timeExpression: String
    public let columns: [ParquetColumn]
    /// Columns read with a different expression than their name.
    let expressions: [String: String]
    /// Rows of the source that belong to the table.
    var filter: String? = nil

    /// Every table, by name: `--table` takes these.
    public static let all: [ExportTable] = [.pairs, .coverage, .exposures, .outcomes]

    public static let pairs = ExportTable(
        name: "pairs",
        source: "pairs",
        timeExpression: "received_at_us",
        columns: [
            .init("request_id", .string), .init("route", .string), .init("candidate", .string), .init("received_at", .timestampMicros),
            .init("received_at_us", .int64), .init("method", .string), .init("path", .string), .init("config_revision", .string),
            .init("baseline_version", .string), .init("candidate_version", .string), .init("baseline_status", .int64),
            .init("candidate_status", .int64), .init("baseline_latency_us", .int64), .init("candidate_latency_us", .int64),
            .init("baseline_ttfb_us", .int64), .init("candidate_ttfb_us", .int64), .init("request_body", .bytes),
            .init("baseline_body", .bytes), .init("candidate_body", .bytes), .init("baseline_error", .string),
            .init("candidate_error", .string), .init("outcome", .string), .init("divergence", .double), .init("diverged", .int64),
            .init("scorer", .string), .init("explanation", .string), .init("segment", .string), .init("differing_paths", .string),
            .init("baseline_first_byte_us", .int64), .init("candidate_first_byte_us", .int64), .init("baseline_first_token_us", .int64),
            .init("candidate_first_token_us", .int64), .init("baseline_events", .int64), .init("candidate_events", .int64),
            .init("baseline_prompt_tokens", .double), .init("candidate_prompt_tokens", .double),
            .init("baseline_completion_tokens", .double), .init("candidate_completion_tokens", .double),
            .init("baseline_last_token_us", .int64), .init("candidate_last_token_us", .int64),
            .init("baseline_tokens_per_second", .double), .init("candidate_tokens_per_second", .double), .init("baseline_cost", .double),
            .init("candidate_cost", .double), .init("source", .string), .init("experiment", .string), .init("arm", .string),
            .init("served_by", .string), .init("fallback", .int64), .init("baseline_grpc_status", .int64),
            .init("candidate_grpc_status", .int64),
        ],
        expressions: ["received_at": "received_at_us"]
    )

    public static let coverage = ExportTable(
        name: "coverage",
        source: "coverage_counts",
        timeExpression: "minute * 1000000",
        columns: [
            .init("minute", .timestampMicros), .init("route", .string), .init("candidate", .string), .init("reason", .string),
            .init("count", .int64),
        ],
        expressions: ["minute": "minute * 1000000"]
    )

    /// Every enrolled (or paired) request of a route with an experiment: the exposures the
    /// experiment analysis starts from, with or without a pair.
    public static let exposures = ExportTable(
        name: "exposures",
        source: "exchanges",
        timeExpression: "received_at_us",
        columns: [
            .init("request_id", .string), .init("route", .string), .init("experiment", .string), .init("key", .string),
            .init("arm", .string), .init("served_by", .string), .init("fallback", .int64), .init("received_at", .timestampMicros),
            .init("received_at_us", .int64), .init("segment", .string), .init("baseline_status", .int64),
            .init("baseline_latency_us", .int64), .init("baseline_error", .string),
        ],
        expressions: ["received_at": "received_at_us", "key": "experiment_key"],
        filter: "experiment IS NOT NULL"
    )

    /// Business outcomes as posted or imported, by the time they happened.
    public static let outcomes = ExportTable(
        name: "outcomes",
        source: "outcomes",
        timeExpression: "at_us",
        columns: [
            .init("event_id", .string), .init("request_id", .string), .init("key", .string), .init("metric", .string),
            .init("value", .double), .init("at", .timestampMicros), .init("at_us", .int64), .init("received_at_us", .int64),
        ],
        expressions: ["at": "at_us"]
    )

    /// The select list against a source that has `available` columns (older databases lack the
    /// newer ones: they come out as NULLs).
    func selectList(available: Set<String>) -> String {
        self.columns.map { column in
            // A body the daemon may have stored compressed (`storage.bodies: compressed`, schema
            // 12) is exported as it was sent.
            if column.kind == .bytes, available.contains(column.name + "_zlib") {
                return "\(BodyCompression.inflated(column.name)) AS \(column.name)"
            }
            let expression = self.expressions[column.name] ?? column.name
            return available.contains(expression)
                ? (expression == column.name ? expression : "\(expression) AS \(column.name)") : "NULL AS \(column.name)"
        }.joined(separator: ", ")
    }

    /// `FROM … WHERE` for rows in `[?, ?)` of the time column.
    var windowClause: String {
        "FROM \(self.source) WHERE \(self.filter.map { "(\($0)) AND " } ?? "")\(self.timeExpression) >= ? AND \(self.timeExpression) < ?"
    }
}
