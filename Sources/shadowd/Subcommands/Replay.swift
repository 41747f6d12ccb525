import ArgumentParser
import Foundation
import Logging
import ShadowCore
import ShadowProxy
import ShadowReplay
import ShadowReport
import ShadowStore
import UnixSignals

extension ShadowdCommand {
    /// Backtests a candidate on recorded traffic: re-sends a route's recorded requests and scores
    /// the answers against the recorded baseline answers.
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Re-send a route's recorded requests to a candidate and score them against the recorded baseline answers.",
            discussion: """
                Pairs go to --out (source = 'replay'), which `shadowd report --db` reads. A rerun skips requests \
                already replayed there, so Ctrl-C and run again resumes. Only POST and GET are replayed unless \
                --methods says otherwise: replaying must not repeat side effects.
                """
        )

        @Option(help: "The daemon's configuration: the route's scorer, and candidates by name.")
        var config: String

        @Option(name: .customLong("db"), help: "The recorded database.")
        var database: String

        @Option(help: "The route whose requests are replayed.")
        var route: String

        @Option(help: "A candidate of the route by name (its URL, TLS, headers, rewrite and timeouts), or a URL.")
        var candidate: String

        @Option(help: "The name the replayed pairs are recorded under (default: the candidate's name, or 'replay').")
        var name: String?

        @Option(help: "The output database (created or resumed).")
        var out: String?

        @Option(help: "Only requests received in this much time before now (e.g. 24h).")
        var since: String?

        @Option(help: "Window start, ISO 8601.")
        var from: String?

        @Option(help: "Window end (exclusive), ISO 8601.")
        var to: String?

        @Option(help: "At most this many requests.")
        var limit: Int?

        @Option(help: "Requests in flight at once (default: the candidate's max_concurrency).")
        var concurrency: Int?

        @Option(help: "A flat rate, e.g. 50/s.")
        var rate: String?

        @Option(help: "The recorded inter-arrival times, scaled: 1x keeps production's shape, 2x twice as fast.")
        var speed: String?

        @Option(help: "Methods replayed, comma-separated.")
        var methods: String = "POST,GET"

        @Option(help: "Stop after this many failures in a row.")
        var maxConsecutiveFailures: Int = 50

        func validate() throws {
            if self.rate != nil, self.speed != nil { throw ValidationError("give --rate or --speed, not both") }
            if ReplayPacer.parse(speed: self.speed, rate: self.rate) == nil {
                throw ValidationError("--speed: a factor such as 1x or 2x; --rate: requests per second such as 50/s")
            }
            if self.since != nil, self.from != nil || self.to != nil { throw ValidationError("give --since or --from/--to, not both") }
        }

        func run() async throws {
            let configuration = try loadConfiguration(self.config)
            guard let route = configuration.routes.first(where: { $0.name == self.route }) else {
                throw CleanExit.message("error: \(self.config) has no route '\(self.route)'", code: 1)
            }
            var candidate: CandidateConfiguration
            if let configured = route.candidates.first(where: { $0.name == self.candidate }) {
                candidate = configured
            } else {
                guard case .success(let url) = UpstreamURL.parse(self.candidate) else {
                    throw CleanExit.message(
                        "error: --candidate: not a candidate of route '\(self.route)' nor an http(s):// URL: '\(self.candidate)'",
                        code: 1
                    )
                }
                candidate = CandidateConfiguration(name: "replay", url: url, timeout: .seconds(30))
                candidate.tls = url.usesTLS ? UpstreamTLSConfiguration() : nil
            }
            if let name = self.name { candidate.name = name }
            if let concurrency = self.concurrency { candidate.maxConcurrency = max(1, concurrency) }
            var options = Backtest.Options(route: route, candidate: candidate)
            options.pacing = ReplayPacer.parse(speed: self.speed, rate: self.rate)!
            options.limit = self.limit
            options.methods = Set(self.methods.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() })
            options.maxConsecutiveFailures = self.maxConsecutiveFailures
            options.compressBodies = configuration.storage.bodies == .compressed
            let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
            do {
                (options.fromMicros, options.toMicros) = try Report.window(since: self.since, from: self.from, to: self.to, nowMicros: nowMicros)
                let summary = try await self.replay(options, configuration: configuration)
                print(Self.describe(summary, name: candidate.name, out: self.out ?? "replay-\(candidate.name).sqlite"))
                if summary.stopped != nil { throw ExitCode(1) }
            } catch let error as StoreError {
                throw CleanExit.message("error: \(error.message)", code: 1)
            } catch let error as ReportError {
                throw CleanExit.message("error: \(error.message)", code: 1)
            } catch let error as ConfigurationError {
                throw CleanExit.message("error: \(self.config): \(error)", code: 1)
            }
        }

        private func replay(_ options: Backtest.Options, configuration: Configuration) async throws -> Backtest.Summary {
            var logger = Logger(label: "shadowd.replay")
            logger.logLevel = .warning
            // Replayed answers are redacted as the daemon redacts what it records (with the same
            // SHADOWD_REDACT_KEY, hashes join with the live pairs').
            var options = options
            options.redactor = Sidecar.redactor(configuration.storage, environment: ProcessInfo.processInfo.environment, logger: logger)
            let source = try PairReader(path: self.database)
            defer { try? source.close() }
            let output = try PairStore(path: self.out ?? "replay-\(options.candidate.name).sqlite")
            defer { try? output.close() }
            let client = try await UpstreamClient.make(
                candidate: options.candidate,
                configuration: configuration,
                environment: ProcessInfo.processInfo.environment,
                logger: logger
            )
            let backtest = Backtest(source: source, output: output, options: options, client: client, logger: logger)
            // Ctrl-C (or SIGTERM) cancels the run; what was answered is written, a rerun resumes.
            let run = Task {
                let progress = ProgressLine(enabled: isatty(STDERR_FILENO) == 1)
                defer { progress.finish() }
                return try await backtest.run(
                    now: { Int64(Date().timeIntervalSince1970 * 1_000_000) },
                    sleep: { micros in try await Task.sleep(for: .microseconds(micros)) }
                ) { summary in
                    progress.show(
                        "replayed \(summary.replayed), candidate failures \(summary.candidateFailures), skipped \(summary.skipped.values.reduce(0, +))"
                    )
                }
            }
            let signals = Task {
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                    run.cancel()
                    break
                }
            }
            defer { signals.cancel() }
            let summary: Backtest.Summary
            do {
                summary = try await run.value
            } catch is CancellationError {
                await client.shutdown()
                throw CleanExit.message("interrupted: what was answered is written; run the same command again to resume", code: 130)
            }
            await client.shutdown()
            return summary
        }

        static func describe(_ summary: Backtest.Summary, name: String, out: String) -> String {
            var lines = ["replayed \(summary.replayed) request(s) against \(name) into \(out) (\(summary.candidateFailures) candidate failure(s))"]
            if summary.alreadyDone > 0 { lines.append("  \(summary.alreadyDone) already replayed there: skipped (resumed)") }
            for (reason, count) in summary.skipped.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                lines.append("  not replayable, \(reason.rawValue): \(count)")
            }
            if let stopped = summary.stopped { lines.append("  \(stopped)") }
            lines.append("next: shadowd report --db \(out) --config <the same config>")
            return lines.joined(separator: "\n")
        }
    }
}
