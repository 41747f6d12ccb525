import ArgumentParser
import Foundation

extension BenchCommand {
    /// The sidecar against a direct call, nginx's plain proxy and nginx's `mirror`, in one run:
    /// GET and POST, one connection (added latency) and 32 (throughput), a fast, 200 ms, hung
    /// and refusing candidate. Every target is measured once per round, rounds alternate, and
    /// the table shows medians, so drift on a shared machine hits all targets alike.
    struct Proxy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sidecar vs direct vs nginx proxy/mirror with wrk, ratios from one run.")

        @Option(help: "Seconds per measurement.")
        var duration: Int = 3

        @Option(help: "Rounds; each round measures every target once.")
        var rounds: Int = 3

        @Option(parsing: .upToNextOption, help: "wrk connection counts to measure.")
        var connections: [Int] = [1, 32]

        @Option(parsing: .upToNextOption, help: "Request methods: GET, POST (~1 KB JSON).")
        var methods: [String] = ["GET", "POST"]

        @Option(parsing: .upToNextOption, help: "Candidate behaviours: fast, slow (200 ms), hung, refused.")
        var candidates: [ProxyRig.Candidate] = ProxyRig.Candidate.allCases

        @Option(help: "Another shadowd binary (an earlier build) to measure beside this one with the fast candidate, in the same rounds.")
        var compare: String?

        @Flag(help: "One 1-second round at 4 connections, POST, fast and hung candidates: checks the benchmark still runs.")
        var smoke = false

        func validate() throws {
            guard self.methods.allSatisfy({ $0 == "GET" || $0 == "POST" }) else { throw ValidationError("--methods: GET or POST") }
            guard self.candidates.contains(.fast) else { throw ValidationError("--candidates must include fast (the reference case)") }
        }

        func run() async throws {
            let candidates = self.smoke ? [.fast, .hung] : self.candidates
            let rig = try await ProxyRig.start(candidates: candidates, compare: self.compare)
            defer { rig.stop() }
            var targets: [(name: String, port: Int)] = [("direct", rig.base), ("nginx proxy", rig.plain)]
            for candidate in candidates { targets.append(("nginx mirror, \(candidate.label)", rig.mirrors[candidate]!)) }
            for candidate in candidates { targets.append(("shadowd, \(candidate.label)", rig.sidecars[candidate]!.port)) }
            targets.append(("NIO floor, fast", rig.floor))
            if let compared = rig.compared { targets.append(("compared build, fast", compared.port)) }
            // Each sidecar's admin port: its recorder is drained after each measurement (a
            // backlog written during the next target's turn would take that target's core), and
            // records it refused (queue full: the recorder fell behind) are counted.
            var admins: [String: Int] = [:]
            for candidate in candidates { admins["shadowd, \(candidate.label)"] = rig.sidecars[candidate]!.admin }
            if let compared = rig.compared { admins["compared build, fast"] = compared.admin }
            var refused: [String: Int] = [:]
            let duration = self.smoke ? 1 : self.duration
            let rounds = self.smoke ? 1 : self.rounds
            let fastSidecar = rig.sidecars[.fast]!.process.processIdentifier
            var memory: [Int] = [residentKiB(of: fastSidecar)]
            print(
                "\(rounds) round(s) × \(duration) s per target; nginx (1 worker, also the backends) and each sidecar (1 event loop) on core 0, wrk on core 1"
            )
            for method in self.smoke ? ["POST"] : self.methods {
                for connections in self.smoke ? [4] : self.connections {
                    var results: [String: [WrkResult]] = [:]
                    for _ in 0..<rounds {
                        for target in targets {
                            let script = method == "POST" ? rig.postScript : nil
                            let admin = admins[target.name]
                            let refusedBefore = admin.map { Self.statistic("records_refused", admin: $0) } ?? 0
                            results[target.name, default: []].append(
                                try wrk(port: target.port, connections: connections, seconds: duration, script: script)
                            )
                            if let admin {
                                try await Self.drainRecorder(admin: admin)
                                refused[target.name, default: 0] += Self.statistic("records_refused", admin: admin) - refusedBefore
                            }
                        }
                        memory.append(residentKiB(of: fastSidecar))
                    }
                    let medians = results.mapValues(WrkResult.median)
                    Self.printTable(method: method, connections: connections, rounds: rounds, targets: targets.map(\.name), medians: medians)
                    for (name, count) in refused.sorted(by: { $0.key < $1.key }) where count > 0 {
                        print("  \(name) REFUSED \(count) records (its recorder fell behind: not every request was recorded)")
                    }
                    refused = [:]
                    Self.printRatios(candidates: candidates, medians: medians)
                }
            }
            print(
                "\nshadowd (fast candidate) RSS after each round, MiB: "
                    + memory.map { String(format: "%.1f", Double($0) / 1024) }.joined(separator: " ")
            )
            for candidate in candidates {
                let stats = httpGet(port: rig.sidecars[candidate]!.admin, path: "/stats") ?? "unavailable"
                print("shadowd, \(candidate.label) candidate, /stats: \(stats.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }

        /// A number from a sidecar's `/stats` (0 when unreadable).
        static func statistic(_ name: String, admin: Int) -> Int {
            guard let body = httpGet(port: admin, path: "/stats"),
                let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            else { return 0 }
            return (object[name] as? NSNumber)?.intValue ?? 0
        }

        /// Waits (at most 30 s) until the sidecar's record queue is empty.
        static func drainRecorder(admin: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while Self.statistic("record_queue_depth", admin: admin) > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }

        static func printTable(method: String, connections: Int, rounds: Int, targets: [String], medians: [String: WrkResult]) {
            print("\n\(method), \(connections) connection\(connections == 1 ? "" : "s") (medians of \(rounds)):")
            print("  target                  req/s       p50       p90       p99")
            for name in targets {
                let median = medians[name]!
                print(
                    "  \(name.padded(22)) \(String(format: "%8.0f  %7.0fµs %7.0fµs %7.0fµs", median.requestsPerSecond, median.p50, median.p90, median.p99))"
                        + (median.errors > 0 ? "  (\(median.errors) errors)" : "")
                )
            }
        }

        static func printRatios(candidates: [ProxyRig.Candidate], medians: [String: WrkResult]) {
            guard let sidecar = medians["shadowd, fast"], let direct = medians["direct"], let plain = medians["nginx proxy"],
                let mirror = medians["nginx mirror, fast"]
            else { return }
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
            if let floor = medians["NIO floor, fast"] {
                print(
                    String(
                        format: "  the NIO floor (mirrors, records nothing): floor/nginx-mirror %.2f, shadowd/floor %.2f, added p50 %+.0fµs",
                        floor.requestsPerSecond / mirror.requestsPerSecond,
                        sidecar.requestsPerSecond / floor.requestsPerSecond,
                        floor.p50 - direct.p50
                    )
                )
            }
            if let compared = medians["compared build, fast"] {
                print(
                    String(
                        format: "  this build vs the compared one: req/s %.2f×, added p50 %+.0fµs vs %+.0fµs; compared/nginx-mirror %.2f",
                        sidecar.requestsPerSecond / compared.requestsPerSecond,
                        sidecar.p50 - direct.p50,
                        compared.p50 - direct.p50,
                        compared.requestsPerSecond / mirror.requestsPerSecond
                    )
                )
            }
            for candidate in candidates where candidate != .fast {
                guard let slowSidecar = medians["shadowd, \(candidate.label)"], let slowMirror = medians["nginx mirror, \(candidate.label)"] else {
                    continue
                }
                print(
                    String(
                        format: "  candidate %@ vs fast: shadowd req/s %.2f×, p99 %.2f× | nginx mirror req/s %.3f×, p99 %.1f×",
                        candidate.label.padded(7),
                        slowSidecar.requestsPerSecond / sidecar.requestsPerSecond,
                        slowSidecar.p99 / sidecar.p99,
                        slowMirror.requestsPerSecond / mirror.requestsPerSecond,
                        slowMirror.p99 / mirror.p99
                    )
                )
            }
        }
    }
}

struct WrkResult {
    var requestsPerSecond: Double
    var p50: Double
    var p90: Double
    var p99: Double
    /// Socket errors, timeouts and non-2xx/3xx answers wrk counted.
    var errors = 0

    static func median(_ results: [WrkResult]) -> WrkResult {
        func mid(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        guard !results.isEmpty else { return WrkResult(requestsPerSecond: 0, p50: 0, p90: 0, p99: 0) }
        return WrkResult(
            requestsPerSecond: mid(results.map(\.requestsPerSecond)),
            p50: mid(results.map(\.p50)),
            p90: mid(results.map(\.p90)),
            p99: mid(results.map(\.p99)),
            errors: results.map(\.errors).reduce(0, +)
        )
    }
}

/// Runs wrk on core 1 (GET without a script) and parses requests/s, latency percentiles (in µs)
/// and errors.
func wrk(port: Int, connections: Int, seconds: Int, script: String?, scheme: String = "http") throws -> WrkResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: which("taskset")!)
    process.arguments =
        ["-c", "1", which("wrk")!, "-t1", "-c\(connections)", "-d\(seconds)s"] + (script.map { ["-s", $0] } ?? [])
        + ["--latency", "\(scheme)://127.0.0.1:\(port)/v2/models/m/infer"]
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
        case "Non-2xx": result.errors += Int(fields.last ?? "") ?? 0
        case "Socket":
            // "Socket errors: connect 0, read 0, write 0, timeout 0"
            result.errors += fields.compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }.reduce(0, +)
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
