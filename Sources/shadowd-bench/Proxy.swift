import ArgumentParser
import Foundation

extension BenchCommand {
    /// The sidecar against a direct call, nginx's plain proxy and nginx's `mirror`, in one run.
    ///
    /// nginx (one worker) serves a fixed ~300-byte JSON as baseline and fast candidate; slow, hung
    /// and refusing candidates are `shadowd fixture-model` processes or a closed port. The sidecar
    /// and nginx are pinned to core 0, wrk and the backends to core 1 (`taskset`), and the targets
    /// alternate within each round so drift hits them all alike.
    struct Proxy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sidecar vs direct vs nginx proxy/mirror with wrk, ratios from one run.")

        @Option(help: "Seconds per measurement.")
        var duration: Int = 5

        @Option(help: "Rounds; each round measures every target once.")
        var rounds: Int = 3

        @Option(parsing: .upToNextOption, help: "wrk connection counts to measure.")
        var connections: [Int] = [1, 32]

        @Option(help: "Candidate behaviour: fast, slow (200 ms), hung, refused.")
        var candidate: String = "fast"

        @Flag(help: "One 1-second round at 4 connections: checks the benchmark still runs.")
        var smoke = false

        func run() async throws {
            let rig = try await ProxyRig.start(candidate: self.candidate)
            defer { rig.stop() }
            let ports = rig.ports
            let script = rig.script
            let targets = [("direct", ports.base), ("nginx proxy", ports.plain), ("nginx mirror", ports.mirror), ("shadowd", ports.sidecar)]
            let duration = self.smoke ? 1 : self.duration
            let rounds = self.smoke ? 1 : self.rounds
            let connectionCounts = self.smoke ? [4] : self.connections
            print("candidate: \(self.candidate); POST ~1 KB; \(rounds) rounds × \(duration) s; sidecar/nginx on core 0, wrk/backends on core 1")
            for connections in connectionCounts {
                var results: [String: [WrkResult]] = [:]
                for _ in 0..<rounds {
                    for (name, port) in targets {
                        results[name, default: []].append(try wrk(port: port, connections: connections, seconds: duration, script: script))
                    }
                }
                print("\n\(connections) connection\(connections == 1 ? "" : "s") (medians of \(rounds)):")
                print("  target          req/s      p50       p90       p99")
                var medians: [String: WrkResult] = [:]
                for (name, _) in targets {
                    let median = WrkResult.median(results[name] ?? [])
                    medians[name] = median
                    print(
                        "  \(name.padded(14)) \(String(format: "%8.0f  %7.0fµs %7.0fµs %7.0fµs", median.requestsPerSecond, median.p50, median.p90, median.p99))"
                    )
                }
                if let sidecar = medians["shadowd"], let direct = medians["direct"], let plain = medians["nginx proxy"],
                    let mirror = medians["nginx mirror"]
                {
                    print(
                        String(
                            format: "  ratios (req/s): shadowd/direct %.2f, shadowd/nginx-proxy %.2f, shadowd/nginx-mirror %.2f",
                            sidecar.requestsPerSecond / direct.requestsPerSecond,
                            sidecar.requestsPerSecond / plain.requestsPerSecond,
                            sidecar.requestsPerSecond / mirror.requestsPerSecond
                        )
                    )
                    print(
                        String(
                            format: "  added p50 vs direct: shadowd %+.0fµs, nginx proxy %+.0fµs, nginx mirror %+.0fµs",
                            sidecar.p50 - direct.p50,
                            plain.p50 - direct.p50,
                            mirror.p50 - direct.p50
                        )
                    )
                }
            }
            if let stats = try? String(contentsOf: URL(string: "http://127.0.0.1:\(ports.admin)/stats")!, encoding: .utf8) {
                print("\nshadowd /stats: \(stats)")
            }
        }
    }
}

struct WrkResult {
    var requestsPerSecond: Double
    var p50: Double
    var p90: Double
    var p99: Double

    static func median(_ results: [WrkResult]) -> WrkResult {
        func mid(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        guard !results.isEmpty else { return WrkResult(requestsPerSecond: 0, p50: 0, p90: 0, p99: 0) }
        return WrkResult(
            requestsPerSecond: mid(results.map(\.requestsPerSecond)),
            p50: mid(results.map(\.p50)),
            p90: mid(results.map(\.p90)),
            p99: mid(results.map(\.p99))
        )
    }
}

/// Runs wrk on core 1 and parses requests/s and latency percentiles (in µs).
func wrk(port: Int, connections: Int, seconds: Int, script: String) throws -> WrkResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: which("taskset")!)
    process.arguments = [
        "-c", "1", which("wrk")!, "-t1", "-c\(connections)", "-d\(seconds)s", "-s", script, "--latency", "http://127.0.0.1:\(port)/v2/models/m/infer",
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = Pipe()
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    var result = WrkResult(requestsPerSecond: 0, p50: 0, p90: 0, p99: 0)
    for line in output.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2 else { continue }
        switch fields[0] {
        case "Requests/sec:": result.requestsPerSecond = Double(fields[1]) ?? 0
        case "50%": result.p50 = microseconds(fields[1])
        case "90%": result.p90 = microseconds(fields[1])
        case "99%": result.p99 = microseconds(fields[1])
        default: break
        }
    }
    return result
}

func microseconds(_ text: Substring) -> Double {
    for (suffix, scale) in [("us", 1.0), ("ms", 1000.0), ("s", 1_000_000.0)] where text.hasSuffix(suffix) {
        return (Double(text.dropLast(suffix.count)) ?? 0) * scale
    }
    return Double(text) ?? 0
}

func which(_ tool: String) -> String? {
    for directory in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    where FileManager.default.isExecutableFile(atPath: "\(directory)/\(tool)") {
        return "\(directory)/\(tool)"
    }
    return nil
}

/// A binary built next to this one (`shadowd`).
func siblingBinary(_ name: String) -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
}

/// Starts `taskset ARGUMENTS` with output discarded.
func spawn(_ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: which("taskset")!)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

extension String {
    fileprivate func padded(_ width: Int) -> String { self.count >= width ? self : self + String(repeating: " ", count: width - self.count) }
}
