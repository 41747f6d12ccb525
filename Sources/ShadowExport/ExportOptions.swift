import ShadowParquet

/// What `shadowd export` writes, and where.
public struct ExportOptions: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case parquet
        case ndjson
    }

    /// Databases and the host name each is exported under.
    public var databases: [(host: String, path: String)]
    public var outputDirectory: String
    public var format: Format
    /// Parquet page compression.
    public var compression: ParquetCompression
    /// The window, microseconds since the epoch; widened to whole UTC days (a day's partition is
    /// always rewritten whole). `nil` start: from the database's export cursor (the start of the
    /// day it reached), or from the beginning.
    public var fromMicros: Int64?
    public var toMicros: Int64?
    public var tables: [ExportTable]

    public init(
        databases: [(host: String, path: String)],
        outputDirectory: String,
        format: Format = .parquet,
        compression: ParquetCompression = .preferred,
        fromMicros: Int64? = nil,
        toMicros: Int64? = nil,
        tables: [ExportTable] = ExportTable.all
    ) {
        self.databases = databases
        self.outputDirectory = outputDirectory
        self.format = format
        self.compression = compression
        self.fromMicros = fromMicros
        self.toMicros = toMicros
        self.tables = tables
    }
}
