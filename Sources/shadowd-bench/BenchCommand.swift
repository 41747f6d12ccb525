import ArgumentParser

/// `shadowd-bench`: benchmarks that print figures measured side by side in one run.
/// Benchmarks, not tests: run by hand (release build) and reported; CI only builds them.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadowd-bench",
        abstract: "shadowd benchmarks (run with -c release).",
        subcommands: [
            Recorder.self, Scorers.self, Proxy.self, HTTPS.self, ReportScan.self, Generate.self, ExportBench.self, Stream.self, Soak.self,
            Upstream.self, Floor.self,
        ]
    )
}
