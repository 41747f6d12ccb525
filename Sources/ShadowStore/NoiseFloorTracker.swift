import GRDB
import ShadowCore
import Synchronization

/// The paths on which each route's baseline disagrees with itself (from its A/A pairs), and the
/// scorers that skip them when `noise_floor.auto_ignore` is on.
///
/// Owned by the writer: refreshed inside each write transaction from `path_stats`, so it also
/// survives a restart (the statistics are in the database).
public final class NoiseFloorTracker: Sendable {
    private let configured = Mutex<[String: NoiseFloorConfiguration]>([:])
    private let noisy = Mutex<[String: [String]]>([:])

    public init(routes: [RouteConfiguration]) {
        self.update(routes: routes)
    }

    /// New noise-floor settings (configuration reload); takes effect with the next batch.
    public func update(routes: [RouteConfiguration]) {
        var settings: [String: NoiseFloorConfiguration] = [:]
        for route in routes { if let noiseFloor = route.noiseFloor { settings[route.name] = noiseFloor } }
        self.configured.withLock { $0 = settings }
    }

    private var settings: [String: NoiseFloorConfiguration] { self.configured.withLock { $0 } }

    /// The noisy paths of a route now.
    public func noisyPaths(route: String) -> [String] {
        self.noisy.withLock { $0[route] ?? [] }
    }

    /// The scorer for one candidate of a record: the record's own, minus noisy paths when the
    /// route auto-ignores them (never for the A/A pairs themselves, which measure the noise).
    func scorer(for record: ExchangeRecord, candidate: String, cache: inout [String: any Scorer]) -> any Scorer {
        guard candidate != NoiseFloorConfiguration.replicaName, self.settings[record.route]?.autoIgnore == true else {
            return record.scorer
        }
        let key = record.route + "\u{0}" + record.configRevision
        if let cached = cache[key] { return cached }
        let paths = self.noisyPaths(route: record.route)
        let scorer = paths.isEmpty ? record.scorer : record.scorer.ignoring(paths)
        cache[key] = scorer
        return scorer
    }

    /// Recomputes the noisy paths of routes with a noise floor.
    func refresh(_ db: Database) throws {
        guard !self.settings.isEmpty else { return }
        var result: [String: [String]] = [:]
        for (route, settings) in self.settings {
            result[route] = try String.fetchAll(
                db,
                sql: """
                    SELECT path FROM path_divergence
                    WHERE route = ? AND candidate = ? AND compared >= ? AND rate > ? ORDER BY path
                    """,
                arguments: [route, NoiseFloorConfiguration.replicaName, settings.minPairs, settings.maxDisagreement]
            )
        }
        self.noisy.withLock { $0 = result }
    }
}
