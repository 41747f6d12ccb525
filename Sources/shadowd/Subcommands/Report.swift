import ArgumentParser
import Foundation
import ShadowCore
import ShadowReport
import ShadowStore

extension ShadowdCommand {
    /// The comparison report: reads the divergence databases read-only (while daemons write) and
    /// renders a verdict per route and candidate.
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn divergence databases into a verdict: promote, hold or reject.",
            discussion: """
                Exit codes: 0 promote or hold (experiments: ship or continue), \(Self.rejectExitCode) reject (a guardrail is broken; experiments: kill or retrain), 1 the report could not be \
                made (missing, corrupt, locked or newer-schema database, empty window, unwritable output), 64 bad arguments.
                """
        )

        static let rejectExitCode: Int32 = 3

        @Option(name: .customLong("db"), help: "A database file; repeat for a fleet (one file per host). Default: storage.path of --config.")
        var databases: [String] = []

        @Option(help: "The daemon's configuration: guardrails, costs and segment keys per route.")
        var config: String?

        @Option(help: "Only pairs received in this much time before now (e.g. 24h, 7d).")
        var since: String?

        @Option(help: "Window start, ISO 8601 (2026-11-21T00:00:00Z or 2026-11-21).")
        var from: String?

        @Option(help: "Window end (exclusive), ISO 8601.")
        var to: String?

        @Option(help: "Only this route.")
        var route: String?

        @Option(help: "html, md or json; with --out-dir, repeat it to write several formats from one pass.")
        var format: [ReportFormat] = []

        @Option(help: "Write to this file (atomically); default: standard output.")
        var out: String?

        @Option(help: "Write a dated report into this directory instead (for the nightly timer).")
        var outDir: String?

        @Option(help: "With --out-dir: keep this many reports of the format, delete older ones.")
        var keep: Int = 30

        @Option(help: "Seed for the reservoir and bootstrap resampling (same data + seed = same report).")
        var seed: UInt64 = 0x5EED

        @Option(help: "How long to wait for a database locked by another process (e.g. 10s).")
        var busyTimeout: String = "10s"

        @Flag(help: "No progress line on a terminal.")
        var quiet = false

        var formats: [ReportFormat] { self.format.isEmpty ? [.html] : self.format }

        func validate() throws {
            if self.since != nil, self.from != nil || self.to != nil { throw ValidationError("give --since or --from/--to, not both") }
            if self.out != nil, self.outDir != nil { throw ValidationError("give --out or --out-dir, not both") }
            if self.keep < 1 { throw ValidationError("--keep must be at least 1") }
            if self.formats.count > 1, self.outDir == nil { throw ValidationError("several --format values need --out-dir") }
            if self.databases.isEmpty, self.config == nil { throw ValidationError("give --db FILE (repeatable) or --config FILE") }
        }

        func run() async throws {
            do {
                let report = try self.makeReport()
                if report.fails { throw ExitCode(Self.rejectExitCode) }
            } catch let error as StoreError {
                throw Self.fail(error.message)
            } catch let error as ReportError {
                throw Self.fail(error.message)
            } catch let error as ConfigurationError {
                throw Self.fail("\(self.config ?? "config"): \(error)")
            }
        }

        private func makeReport() throws -> ShadowReport.Report {
            let now = Date()
            let nowMicros = Int64(now.timeIntervalSince1970 * 1_000_000)
            var configuration: Configuration?
            if let path = self.config {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ReportError("cannot read --config \(path)") }
                configuration = try Configuration.load(yaml: text)
            }
            let paths = self.databases.isEmpty ? [configuration!.storage.path] : self.databases
            guard let timeout = Units.parseDuration(self.busyTimeout) else { throw ReportError("--busy-timeout: expected a duration such as 10s") }
            var options = ReportOptions(nowMicros: nowMicros, seed: self.seed)
            options.configuration = configuration
            options.route = self.route
            if let since = self.since {
                guard let duration = Units.parseDuration(since), duration > .zero else {
                    throw ReportError("--since: expected a duration such as 24h, got '\(since)'")
                }
                options.fromMicros = nowMicros - duration.microseconds
            }
            options.fromMicros = try self.from.map { try Self.parseTime($0, option: "--from") } ?? options.fromMicros
            options.toMicros = try self.to.map { try Self.parseTime($0, option: "--to") }
            if let from = options.fromMicros, let to = options.toMicros, from >= to {
                throw ReportError("the window is empty: --from is not before --to")
            }

            // Open every file first, so a bad one fails the run before any work.
            let readers = try paths.map { try PairReader(path: $0, busyTimeout: timeout) }
            defer { for reader in readers { try? reader.close() } }
            var builder = ReportBuilder(options: options)
            let progress = ProgressLine(enabled: !self.quiet && isatty(STDERR_FILENO) == 1)
            for reader in readers {
                try builder.add(reader) { rows in progress.show("reading \(reader.path): \(rows) pairs") }
            }
            progress.finish()
            guard builder.pairs > 0 else { throw ReportError(try Self.emptyWindowMessage(readers, options: options)) }
            let report = builder.build()
            // Render everything before writing anything, so a failure leaves no partial set.
            let documents = try self.formats.map { (renderer: $0.renderer, text: try $0.renderer.render(report)) }
            if let outDir = self.outDir {
                var paths: [String] = []
                for document in documents {
                    paths.append(
                        try ReportOutput.writeDated(
                            document.text,
                            directory: outDir,
                            fileExtension: document.renderer.fileExtension,
                            at: now,
                            keep: self.keep
                        )
                    )
                }
                Self.summarize(report, to: paths.joined(separator: ", "))
            } else if let out = self.out {
                try ReportOutput.write(documents[0].text, to: out)
                Self.summarize(report, to: out)
            } else {
                FileHandle.standardOutput.write(Data(documents[0].text.utf8))
            }
            return report
        }

        private static func summarize(_ report: ShadowReport.Report, to path: String) {
            var lines = ["shadowd report: \(report.decision.rawValue) → \(path)"]
            for route in report.routes {
                for candidate in route.candidates {
                    let reasons = candidate.verdict.reasons.map(\.name).joined(separator: ", ")
                    lines.append("  \(route.name)/\(candidate.name): \(candidate.verdict.decision.rawValue)\(reasons.isEmpty ? "" : " (\(reasons))")")
                }
            }
            for experiment in report.experiments ?? [] {
                lines.append("  experiment \(experiment.name): \(experiment.decision) (\(experiment.reasons.first ?? ""))")
            }
            FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        }

        private static func emptyWindowMessage(_ readers: [PairReader], options: ReportOptions) throws -> String {
            var spans: [String] = []
            for reader in readers {
                if let span = try reader.timeSpan() {
                    spans.append("\(reader.path) holds pairs from \(Self.iso(span.first)) to \(Self.iso(span.last))")
                } else {
                    spans.append("\(reader.path) holds no pairs yet")
                }
            }
            let window = "\(options.fromMicros.map(Self.iso) ?? "the beginning") to \(options.toMicros.map(Self.iso) ?? "now")"
            let scope = options.route.map { "route '\($0)' has " } ?? ""
            return "no pairs: \(scope)nothing recorded from \(window); \(spans.joined(separator: "; "))"
        }

        /// The window `--since` or `--from/--to` give, microseconds since the epoch (shared by
        /// export and replay).
        static func window(since: String?, from: String?, to: String?, nowMicros: Int64) throws -> (from: Int64?, to: Int64?) {
            var start: Int64?
            if let since {
                guard let duration = Units.parseDuration(since), duration > .zero else {
                    throw ReportError("--since: expected a duration such as 24h, got '\(since)'")
                }
                start = nowMicros - duration.microseconds
            }
            start = try from.map { try Self.parseTime($0, option: "--from") } ?? start
            return (start, try to.map { try Self.parseTime($0, option: "--to") })
        }

        static func parseTime(_ text: String, option: String) throws -> Int64 {
            let formatter = ISO8601DateFormatter()
            for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds], [.withFullDate]] {
                formatter.formatOptions = options
                if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1_000_000) }
            }
            throw ReportError("\(option): expected an ISO 8601 time such as 2026-11-21T00:00:00Z or a date such as 2026-11-21, got '\(text)'")
        }

        static func iso(_ micros: Int64) -> String {
            let formatter = ISO8601DateFormatter()
            return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(micros) / 1e6))
        }

        private static func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            return ExitCode(1)
        }
    }
}

extension ReportFormat: ExpressibleByArgument {}

/// A one-line progress indicator on a terminal's stderr, redrawn at most a few times a second.
final class ProgressLine {
    private let enabled: Bool
    private var lastDraw = ContinuousClock.now
    private var drawn = false

    init(enabled: Bool) {
        self.enabled = enabled
    }

    func show(_ text: String) {
        guard self.enabled, ContinuousClock.now - self.lastDraw > .milliseconds(200) else { return }
        self.lastDraw = .now
        self.drawn = true
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    func finish() {
        if self.drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
