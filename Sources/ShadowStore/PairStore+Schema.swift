import Foundation
import GRDB

extension PairStore {
    /// Each schema change is one step here, applied in order and recorded in `PRAGMA user_version`.
    /// Never edit a shipped step; add the next one.
    static let migrations: [(version: Int, sql: String)] =
        shippedMigrations + [
            (
                7,
                // `source`: 'live' for what the sidecar recorded, 'replay' for `shadowd replay`'s
                // backtests of recorded traffic. The view is version 6's with the column appended.
                "ALTER TABLE exchanges ADD COLUMN source TEXT NOT NULL DEFAULT 'live';\nDROP VIEW pairs;\n" + PairStore.version7PairsView
            ),
            (
                8,
                // Live experiments: each enrolled request's experiment, assignment key, assigned
                // and serving arm and fallback on `exchanges` (an enrolled request is recorded
                // even without a pair); business outcomes; the experiments' persisted state; one
                // row per enrolled user.
                """
                ALTER TABLE exchanges ADD COLUMN experiment TEXT;
                ALTER TABLE exchanges ADD COLUMN experiment_key TEXT;
                ALTER TABLE exchanges ADD COLUMN arm TEXT;
                ALTER TABLE exchanges ADD COLUMN served_by TEXT;
                ALTER TABLE exchanges ADD COLUMN fallback INTEGER;
                CREATE INDEX exchanges_by_experiment ON exchanges(experiment, experiment_key) WHERE experiment IS NOT NULL;
                DROP VIEW pairs;

                """
                    + PairStore.version8PairsView
                        + """

                        CREATE TABLE outcomes (
                            id INTEGER PRIMARY KEY,
                            event_id TEXT UNIQUE,
                            request_id TEXT,
                            key TEXT,
                            metric TEXT NOT NULL,
                            value REAL NOT NULL,
                            at_us INTEGER NOT NULL,
                            received_at_us INTEGER NOT NULL,
                            CHECK (request_id IS NOT NULL OR key IS NOT NULL)
                        );
                        CREATE INDEX outcomes_by_request_id ON outcomes(request_id) WHERE request_id IS NOT NULL;
                        CREATE INDEX outcomes_by_key ON outcomes(key) WHERE key IS NOT NULL;
                        CREATE TABLE experiment_state (
                            experiment TEXT PRIMARY KEY,
                            route TEXT NOT NULL,
                            signature TEXT NOT NULL,
                            stage INTEGER NOT NULL,
                            percent REAL NOT NULL,
                            started_at_us INTEGER NOT NULL,
                            entered_at_us INTEGER NOT NULL,
                            stopped_reason TEXT,
                            stopped_at_us INTEGER,
                            updated_at_us INTEGER NOT NULL
                        );
                        CREATE VIEW experiment_users AS
                        SELECT
                            experiment,
                            experiment_key AS key,
                            max(arm) AS arm,
                            count(DISTINCT arm) AS arms,
                            min(CASE WHEN arm IS NOT NULL THEN received_at_us END) AS first_exposed_us,
                            max(received_at_us) AS last_seen_us,
                            sum(arm IS NOT NULL) AS requests,
                            sum(coalesce(fallback, 0)) AS fallbacks
                        FROM exchanges
                        WHERE experiment IS NOT NULL AND experiment_key IS NOT NULL
                        GROUP BY experiment, experiment_key;
                        """
            ),
            (
                9,
                // A candidate answer equal to the baseline's, byte for byte (the common case in
                // shadow traffic), is stored once: `shadows.body` stays NULL, `body_same` is 1 and
                // the `pairs` view shows the baseline's body as `candidate_body`.
                "ALTER TABLE shadows ADD COLUMN body_same INTEGER;\nDROP VIEW pairs;\n" + PairStore.version9PairsView
            ),
            (
                10,
                // gRPC answers: each arm's `grpc-status` (from its trailers, or its head when it
                // answered trailers-only), so an answer that is HTTP 200 but a gRPC error counts.
                "ALTER TABLE exchanges ADD COLUMN baseline_grpc_status INTEGER;\nALTER TABLE shadows ADD COLUMN grpc_status INTEGER;\n"
                    + "DROP VIEW pairs;\n" + PairStore.version10PairsView
            ),
            (
                11,
                // 1 when `request_body` is stored decoded (a gRPC tensor message or a binary
                // tensor request as JSON), not as it was sent: replay must not send it.
                "ALTER TABLE exchanges ADD COLUMN request_body_decoded INTEGER;"
            ),
            (
                12,
                // `storage.bodies: compressed`: a body stored zlib-compressed (the `sqlite3`
                // shell's sqlar format) has its length before compression in `*_body_zlib`, NULL
                // when stored as it is; `sqlar_uncompress(body, body_zlib)` reads either.
                "ALTER TABLE exchanges ADD COLUMN request_body_zlib INTEGER;\nALTER TABLE exchanges ADD COLUMN baseline_body_zlib INTEGER;\n"
                    + "ALTER TABLE shadows ADD COLUMN body_zlib INTEGER;\nDROP VIEW pairs;\n" + PairStore.version12PairsView
            ),
        ]

    /// Version 12's `pairs` view: version 10's with each body's length before compression (NULL
    /// when stored as it is) appended.
    static let version12PairsView = PairStore.version10PairsView.replacingOccurrences(
        of: "    s.grpc_status AS candidate_grpc_status\n",
        with: "    s.grpc_status AS candidate_grpc_status,\n    e.request_body_zlib,\n    e.baseline_body_zlib,\n"
            + "    CASE WHEN s.body_same = 1 THEN e.baseline_body_zlib ELSE s.body_zlib END AS candidate_body_zlib\n"
    )

    /// Version 10's `pairs` view: version 9's with each arm's gRPC status appended.
    static let version10PairsView = PairStore.version9PairsView.replacingOccurrences(
        of: "    e.fallback\n",
        with: "    e.fallback,\n    e.baseline_grpc_status,\n    s.grpc_status AS candidate_grpc_status\n"
    )

    /// Version 8's `pairs` view: version 7's with the experiment columns appended.
    static let version8PairsView = PairStore.version7PairsView.replacingOccurrences(
        of: "    e.source\n",
        with: "    e.source,\n    e.experiment,\n    e.arm,\n    e.served_by,\n    e.fallback\n"
    )

    /// Version 9's `pairs` view: version 8's, the candidate's body read from the baseline's when
    /// they were equal.
    static let version9PairsView = PairStore.version8PairsView.replacingOccurrences(
        of: "    s.body AS candidate_body,\n",
        with: "    CASE WHEN s.body_same = 1 THEN e.baseline_body ELSE s.body END AS candidate_body,\n"
    )

    /// Version 7's `pairs` view: version 6's with `source` appended.
    static let version7PairsView = PairStore.pairsView(of: 6).replacingOccurrences(
        of: "s.cost AS candidate_cost\n",
        with: "s.cost AS candidate_cost,\n    e.source\n"
    )

    /// The `CREATE VIEW pairs` statement of a shipped version.
    static func pairsView(of version: Int) -> String {
        let sql = shippedMigrations.first { $0.version == version }!.sql
        return String(sql[sql.range(of: "CREATE VIEW pairs AS")!.lowerBound...])
    }

    /// Versions 1 to 6 as they shipped.
    static let shippedMigrations: [(version: Int, sql: String)] = [
        (
            1,
            """
            CREATE TABLE exchanges (
                id INTEGER PRIMARY KEY,
                request_id TEXT NOT NULL,
                route TEXT NOT NULL,
                config_revision TEXT NOT NULL,
                received_at_us INTEGER NOT NULL,
                method TEXT NOT NULL,
                path TEXT NOT NULL,
                request_body,
                request_body_bytes INTEGER NOT NULL,
                baseline_version TEXT NOT NULL,
                baseline_status INTEGER,
                baseline_latency_us INTEGER,
                baseline_ttfb_us INTEGER,
                baseline_content_type TEXT,
                baseline_body,
                baseline_body_bytes INTEGER NOT NULL,
                baseline_error TEXT
            );
            CREATE INDEX exchanges_by_time ON exchanges(received_at_us);
            CREATE INDEX exchanges_by_request_id ON exchanges(request_id);
            CREATE TABLE shadows (
                id INTEGER PRIMARY KEY,
                exchange_id INTEGER NOT NULL REFERENCES exchanges(id) ON DELETE CASCADE,
                candidate TEXT NOT NULL,
                candidate_version TEXT NOT NULL,
                status INTEGER,
                latency_us INTEGER,
                ttfb_us INTEGER,
                content_type TEXT,
                body,
                body_bytes INTEGER NOT NULL,
                error TEXT,
                outcome TEXT NOT NULL,
                scorer TEXT,
                divergence REAL,
                diverged INTEGER,
                explanation TEXT
            );
            CREATE INDEX shadows_by_exchange ON shadows(exchange_id);
            CREATE TABLE coverage_counts (
                minute INTEGER NOT NULL,
                route TEXT NOT NULL,
                candidate TEXT NOT NULL,
                reason TEXT NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (minute, route, candidate, reason)
            ) WITHOUT ROWID;
            CREATE VIEW pairs AS
            SELECT
                e.request_id,
                e.route,
                s.candidate,
                strftime('%Y-%m-%dT%H:%M:%fZ', e.received_at_us / 1000000.0, 'unixepoch') AS received_at,
                e.received_at_us,
                e.method,
                e.path,
                e.config_revision,
                e.baseline_version,
                s.candidate_version,
                e.baseline_status,
                s.status AS candidate_status,
                e.baseline_latency_us,
                s.latency_us AS candidate_latency_us,
                e.baseline_ttfb_us,
                s.ttfb_us AS candidate_ttfb_us,
                e.request_body,
                e.baseline_body,
                s.body AS candidate_body,
                e.baseline_error,
                s.error AS candidate_error,
                s.outcome,
                s.divergence,
                s.diverged,
                s.scorer,
                s.explanation
            FROM shadows s JOIN exchanges e ON e.id = s.exchange_id;
            CREATE VIEW coverage AS
            SELECT
                strftime('%Y-%m-%dT%H:%M:%SZ', minute, 'unixepoch') AS minute,
                route,
                candidate,
                reason,
                count
            FROM coverage_counts;
            """
        ),
        (
            2,
            """
            CREATE TABLE path_stats (
                route TEXT NOT NULL,
                candidate TEXT NOT NULL,
                path TEXT NOT NULL,
                differing INTEGER NOT NULL,
                PRIMARY KEY (route, candidate, path)
            ) WITHOUT ROWID;
            CREATE TABLE score_totals (
                route TEXT NOT NULL,
                candidate TEXT NOT NULL,
                compared INTEGER NOT NULL,
                diverged INTEGER NOT NULL,
                PRIMARY KEY (route, candidate)
            ) WITHOUT ROWID;
            CREATE VIEW path_divergence AS
            SELECT p.route, p.candidate, p.path, p.differing, t.compared, 1.0 * p.differing / t.compared AS rate
            FROM path_stats p JOIN score_totals t ON t.route = p.route AND t.candidate = p.candidate;
            CREATE VIEW noise_floor AS
            SELECT route, path, differing, compared, rate FROM path_divergence WHERE candidate = 'aa-replica';
            """
        ),
        (
            3,
            // The report's segments (a configured request header) and per-pair differing paths.
            """
            ALTER TABLE exchanges ADD COLUMN segment TEXT;
            ALTER TABLE shadows ADD COLUMN differing_paths TEXT;
            DROP VIEW pairs;
            CREATE VIEW pairs AS
            SELECT
                e.request_id,
                e.route,
                s.candidate,
                strftime('%Y-%m-%dT%H:%M:%fZ', e.received_at_us / 1000000.0, 'unixepoch') AS received_at,
                e.received_at_us,
                e.method,
                e.path,
                e.config_revision,
                e.baseline_version,
                s.candidate_version,
                e.baseline_status,
                s.status AS candidate_status,
                e.baseline_latency_us,
                s.latency_us AS candidate_latency_us,
                e.baseline_ttfb_us,
                s.ttfb_us AS candidate_ttfb_us,
                e.request_body,
                e.baseline_body,
                s.body AS candidate_body,
                e.baseline_error,
                s.error AS candidate_error,
                s.outcome,
                s.divergence,
                s.diverged,
                s.scorer,
                s.explanation,
                e.segment,
                s.differing_paths
            FROM shadows s JOIN exchanges e ON e.id = s.exchange_id;
            """
        ),
        (
            4,
            // Gate state changes (circuit breakers, ramps) for the report's timeline; ramp stages kept across restarts.
            """
            CREATE TABLE gating_events (
                at_us INTEGER NOT NULL,
                route TEXT NOT NULL,
                candidate TEXT NOT NULL,
                kind TEXT NOT NULL,
                from_state TEXT NOT NULL,
                to_state TEXT NOT NULL,
                reason TEXT NOT NULL
            );
            CREATE INDEX gating_events_by_time ON gating_events(at_us);
            CREATE TABLE ramp_state (
                route TEXT PRIMARY KEY,
                stages TEXT NOT NULL,
                stage INTEGER NOT NULL,
                entered_at_us INTEGER NOT NULL
            ) WITHOUT ROWID;
            """
        ),
        (
            5,
            // Streaming and cost per arm: first body byte, first token (first SSE event with
            // content), event count, token usage and cost; tokens per second in the view.
            """
            ALTER TABLE exchanges ADD COLUMN baseline_first_byte_us INTEGER;
            ALTER TABLE exchanges ADD COLUMN baseline_first_token_us INTEGER;
            ALTER TABLE exchanges ADD COLUMN baseline_events INTEGER;
            ALTER TABLE exchanges ADD COLUMN baseline_prompt_tokens REAL;
            ALTER TABLE exchanges ADD COLUMN baseline_completion_tokens REAL;
            ALTER TABLE exchanges ADD COLUMN baseline_cost REAL;
            ALTER TABLE shadows ADD COLUMN first_byte_us INTEGER;
            ALTER TABLE shadows ADD COLUMN first_token_us INTEGER;
            ALTER TABLE shadows ADD COLUMN events INTEGER;
            ALTER TABLE shadows ADD COLUMN prompt_tokens REAL;
            ALTER TABLE shadows ADD COLUMN completion_tokens REAL;
            ALTER TABLE shadows ADD COLUMN cost REAL;
            DROP VIEW pairs;
            CREATE VIEW pairs AS
            SELECT
                e.request_id,
                e.route,
                s.candidate,
                strftime('%Y-%m-%dT%H:%M:%fZ', e.received_at_us / 1000000.0, 'unixepoch') AS received_at,
                e.received_at_us,
                e.method,
                e.path,
                e.config_revision,
                e.baseline_version,
                s.candidate_version,
                e.baseline_status,
                s.status AS candidate_status,
                e.baseline_latency_us,
                s.latency_us AS candidate_latency_us,
                e.baseline_ttfb_us,
                s.ttfb_us AS candidate_ttfb_us,
                e.request_body,
                e.baseline_body,
                s.body AS candidate_body,
                e.baseline_error,
                s.error AS candidate_error,
                s.outcome,
                s.divergence,
                s.diverged,
                s.scorer,
                s.explanation,
                e.segment,
                s.differing_paths,
                e.baseline_first_byte_us,
                s.first_byte_us AS candidate_first_byte_us,
                e.baseline_first_token_us,
                s.first_token_us AS candidate_first_token_us,
                e.baseline_events,
                s.events AS candidate_events,
                e.baseline_prompt_tokens,
                s.prompt_tokens AS candidate_prompt_tokens,
                e.baseline_completion_tokens,
                s.completion_tokens AS candidate_completion_tokens,
                CASE WHEN e.baseline_completion_tokens > 0 AND e.baseline_latency_us > coalesce(e.baseline_first_token_us, 0)
                    THEN e.baseline_completion_tokens * 1000000.0 / (e.baseline_latency_us - coalesce(e.baseline_first_token_us, 0)) END
                    AS baseline_tokens_per_second,
                CASE WHEN s.completion_tokens > 0 AND s.latency_us > coalesce(s.first_token_us, 0)
                    THEN s.completion_tokens * 1000000.0 / (s.latency_us - coalesce(s.first_token_us, 0)) END
                    AS candidate_tokens_per_second,
                e.baseline_cost,
                s.cost AS candidate_cost
            FROM shadows s JOIN exchanges e ON e.id = s.exchange_id;
            """
        ),
        (
            6,
            // The last token's arrival per arm: tokens per second are (tokens − 1) over the time
            // from the first token to the last, not to the end of the response (which includes
            // the usage chunk, [DONE] and the terminating chunk). Older rows keep the old formula.
            """
            ALTER TABLE exchanges ADD COLUMN baseline_last_token_us INTEGER;
            ALTER TABLE shadows ADD COLUMN last_token_us INTEGER;
            DROP VIEW pairs;
            CREATE VIEW pairs AS
            SELECT
                e.request_id,
                e.route,
                s.candidate,
                strftime('%Y-%m-%dT%H:%M:%fZ', e.received_at_us / 1000000.0, 'unixepoch') AS received_at,
                e.received_at_us,
                e.method,
                e.path,
                e.config_revision,
                e.baseline_version,
                s.candidate_version,
                e.baseline_status,
                s.status AS candidate_status,
                e.baseline_latency_us,
                s.latency_us AS candidate_latency_us,
                e.baseline_ttfb_us,
                s.ttfb_us AS candidate_ttfb_us,
                e.request_body,
                e.baseline_body,
                s.body AS candidate_body,
                e.baseline_error,
                s.error AS candidate_error,
                s.outcome,
                s.divergence,
                s.diverged,
                s.scorer,
                s.explanation,
                e.segment,
                s.differing_paths,
                e.baseline_first_byte_us,
                s.first_byte_us AS candidate_first_byte_us,
                e.baseline_first_token_us,
                s.first_token_us AS candidate_first_token_us,
                e.baseline_events,
                s.events AS candidate_events,
                e.baseline_prompt_tokens,
                s.prompt_tokens AS candidate_prompt_tokens,
                e.baseline_completion_tokens,
                s.completion_tokens AS candidate_completion_tokens,
                e.baseline_last_token_us,
                s.last_token_us AS candidate_last_token_us,
                CASE WHEN e.baseline_last_token_us > e.baseline_first_token_us AND e.baseline_completion_tokens > 1
                    THEN (e.baseline_completion_tokens - 1) * 1000000.0 / (e.baseline_last_token_us - e.baseline_first_token_us)
                    WHEN e.baseline_last_token_us IS NULL AND e.baseline_completion_tokens > 0
                        AND e.baseline_latency_us > coalesce(e.baseline_first_token_us, 0)
                    THEN e.baseline_completion_tokens * 1000000.0 / (e.baseline_latency_us - coalesce(e.baseline_first_token_us, 0)) END
                    AS baseline_tokens_per_second,
                CASE WHEN s.last_token_us > s.first_token_us AND s.completion_tokens > 1
                    THEN (s.completion_tokens - 1) * 1000000.0 / (s.last_token_us - s.first_token_us)
                    WHEN s.last_token_us IS NULL AND s.completion_tokens > 0 AND s.latency_us > coalesce(s.first_token_us, 0)
                    THEN s.completion_tokens * 1000000.0 / (s.latency_us - coalesce(s.first_token_us, 0)) END
                    AS candidate_tokens_per_second,
                e.baseline_cost,
                s.cost AS candidate_cost
            FROM shadows s JOIN exchanges e ON e.id = s.exchange_id;
            """
        ),
    ]

    func migrate() throws {
        try self.queue.writeWithoutTransaction { db in
            let current = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            if current > PairStore.schemaVersion {
                throw StoreError(
                    .newerSchema,
                    "\(self.path) has schema version \(current); this shadowd understands up to \(PairStore.schemaVersion). Upgrade shadowd."
                )
            }
            if current == 0 {
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                if !tables.isEmpty {
                    throw StoreError(
                        .notShadowDatabase,
                        "\(self.path) holds tables (\(tables.prefix(3).joined(separator: ", "))) but no shadowd schema version"
                    )
                }
            }
            for migration in PairStore.migrations where migration.version > current {
                try db.inTransaction(.immediate) {
                    try db.execute(sql: migration.sql)
                    try db.execute(sql: "PRAGMA user_version = \(migration.version)")
                    return .commit
                }
            }
        }
    }
}
