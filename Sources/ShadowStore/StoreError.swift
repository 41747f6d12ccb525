/// A failure of the divergence database, with a message an operator can act on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure; stable, bounded, suitable for metric labels.
    public enum Code: String, Sendable {
        case openFailed = "open_failed"
        case walRefused = "wal_refused"
        case newerSchema = "newer_schema"
        case notShadowDatabase = "not_shadow_database"
        case writeFailed = "write_failed"
        case missing
        case corrupt
        case locked
        case readFailed = "read_failed"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { self.message }
}
