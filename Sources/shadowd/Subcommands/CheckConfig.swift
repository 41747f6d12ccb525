import ArgumentParser
import Foundation
import ShadowCore
import ShadowProxy

extension ShadowdCommand {
    /// Validates a configuration file without starting anything.
    struct CheckConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-config",
            abstract: "Validate a configuration file; exit 0 when it is valid, 1 with the key and reason when not."
        )

        @Argument(help: "The YAML configuration file.")
        var file: String

        func run() async throws {
            let configuration = try loadConfiguration(self.file)
            do {
                // Certificates, keys and header secrets, read as `serve` would (never printed).
                try Sidecar.checkExternalSources(configuration, environment: ProcessInfo.processInfo.environment)
            } catch {
                throw CleanExit.message("error: \(self.file): \(error)", code: 1)
            }
            print("\(self.file): ok (revision \(configuration.revision))")
            for route in configuration.routes {
                let candidates = route.candidates.map { "\($0.name) → \($0.url)" }.joined(separator: ", ")
                print(
                    "  route \(route.name) \(route.prefix) → baseline \(route.baseline.url); candidates: \(candidates.isEmpty ? "none" : candidates); scorer \(route.scorer.kind.rawValue); sample \(route.samplePercent)%"
                        + (route.sampleKey.map { " keyed by \($0)" } ?? "")
                        + (route.gates.isEmpty ? "" : "; gates \(route.gates.include.count) include, \(route.gates.exclude.count) exclude")
                        + (route.circuitBreaker == nil ? "" : "; circuit breaker")
                        + (route.rateLimit == nil ? "" : "; rate cap")
                        + (route.ramp.map { "; ramp " + $0.stages.map { Units.fixed($0.percent, decimals: 0) + "%" }.joined(separator: " → ") } ?? "")
                )
            }
        }
    }
}

/// Reads and validates a config file, turning any failure into one line on stderr and exit 1.
func loadConfiguration(_ path: String) throws -> Configuration {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw CleanExit.message("error: cannot read \(path): \(error.localizedDescription)", code: 1)
    }
    do {
        return try Configuration.load(yaml: text)
    } catch {
        throw CleanExit.message("error: \(path): \(error)", code: 1)
    }
}

/// Exit with a message on stderr and a chosen code, without ArgumentParser's usage text.
enum CleanExit {
    static func message(_ text: String, code: Int32) -> ExitCode {
        FileHandle.standardError.write(Data((text + "\n").utf8))
        return ExitCode(code)
    }
}
