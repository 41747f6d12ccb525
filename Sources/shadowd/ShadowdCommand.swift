import ArgumentParser
import Logging

/// `shadowd`: a shadow-testing sidecar for ML models.
@main
struct ShadowdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadowd",
        abstract: "Shadow-test ML models: serve the baseline, mirror to candidates, record the divergence in SQLite.",
        subcommands: [
            Serve.self, Demo.self, Report.self, Export.self, Replay.self, Experiment.self, Outcomes.self, CheckConfig.self, Prune.self,
            FixtureModel.self,
        ],
        defaultSubcommand: nil
    )
}

/// Options every long-running subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// Bootstraps swift-log once for the process and returns the root logger.
    func makeLogger(label: String = "shadowd") throws -> Logger {
        try bootstrapLogging(level: self.logLevel, label: label)
    }
}

/// Bootstraps swift-log once for the process (one line per event on stderr, journald-friendly)
/// and returns the root logger.
func bootstrapLogging(level text: String, label: String) throws -> Logger {
    guard let level = Logger.Level(rawValue: text.lowercased()) else {
        throw ValidationError("--log-level: unknown level '\(text)'")
    }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}
