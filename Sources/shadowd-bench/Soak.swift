import ArgumentParser
import Foundation

extension BenchCommand {
    /// A long steady load through the sidecar with a flaky candidate (slow, failing, hanging,
    /// sending garbage), sampling the daemon's memory, descriptors and recording rate; memory
    /// must level off.
    struct Soak: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Soak: steady load with a flaky candidate; RSS, descriptors and records/s every interval."
        )

        @Option(help: "Minutes of load.")
        var minutes: Double = 10

        @Option(help: "Seconds between samples.")
        var interval: Int = 30

        @Option(help: "wrk connections (closed loop: each sends its next request when answered).")
        var connections: Int = 8

        func run() async throws {
            guard which("wrk") != nil else { throw ValidationError("wrk is missing: apt-get install -y wrk") }
            let directory = NSTemporaryDirectory() + "shadowd-soak-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let (baselinePort, candidatePort, port, admin) = (28_101, 28_102, 28_103, 28_104)
            try """
            name: classifier
            version: "1.0"
            labels: [cat, dog, bird, fish]
            latency: {min: 1ms, max: 3ms}
            """.write(toFile: directory + "/baseline.yaml", atomically: true, encoding: .utf8)
            // Disagrees on 10%, slow at times, and fails every way a model server can.
            try """
            name: classifier
            version: "2.0-flaky"
            labels: [cat, dog, bird, fish]
            disagree_rate: 0.1
            latency: {min: 1ms, max: 40ms}
            error_rate: 0.05
            hang_rate: 0.01
            garbage_rate: 0.01
            noise_rate: 0.05
            """.write(toFile: directory + "/candidate.yaml", atomically: true, encoding: .utf8)
            try """
            server: {listen: "127.0.0.1:\(port)", threads: 1}
            admin: {listen: "127.0.0.1:\(admin)"}
            storage: {path: \(directory)/soak.sqlite}
            routes:
              - name: classifier
                prefix: /v2/
                baseline: {url: "http://127.0.0.1:\(baselinePort)"}
                candidates: [{name: flaky, url: "http://127.0.0.1:\(candidatePort)", timeout: 500ms}]
                scorer: {kind: label, protocol: kserve_v2}
            """.write(toFile: directory + "/shadowd.yaml", atomically: true, encoding: .utf8)
            let script = directory + "/soak.lua"
            try """
            math.randomseed(7)
            request = function()
              local body = string.format('{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[%.3f,%.3f,%.3f,%.3f]}]}',
                math.random() * 8, math.random() * 4, math.random() * 7, math.random() * 3)
              return wrk.format("POST", "/v2/models/classifier/infer", {["Content-Type"] = "application/json"}, body)
            end
            """.write(toFile: script, atomically: true, encoding: .utf8)

            let shadowd = siblingBinary("shadowd")
            var processes = [
                try spawn(["-a", "0x3", shadowd, "fixture-model", "--spec", directory + "/baseline.yaml", "--port", "\(baselinePort)"]),
                try spawn(["-a", "0x3", shadowd, "fixture-model", "--spec", directory + "/candidate.yaml", "--port", "\(candidatePort)"]),
            ]
            let daemon = try spawn(["-a", "0x3", shadowd, "serve", "--config", directory + "/shadowd.yaml", "--log-level", "error"])
            processes.append(daemon)
            defer {
                for process in processes where process.isRunning { process.terminate() }
                for process in processes { process.waitUntilExit() }
            }
            try await Task.sleep(for: .seconds(1))
            guard httpGet(port: admin, path: "/stats") != nil else { throw ValidationError("the sidecar did not start") }

            let seconds = Int(self.minutes * 60)
            let load = Process()
            load.executableURL = URL(fileURLWithPath: which("wrk")!)
            load.arguments = ["-t1", "-c\(self.connections)", "-d\(seconds)s", "-s", script, "--latency", "http://127.0.0.1:\(port)"]
            let output = Pipe()
            load.standardOutput = output
            load.standardError = FileHandle.nullDevice
            try load.run()

            let pid = daemon.processIdentifier
            print(
                "soak: \(self.minutes) min, wrk \(self.connections) connections, candidate: 10% disagreement, 1–40 ms, 5% 500s, 1% hangs, 1% garbage"
            )
            print("  time   RSS MiB   fds   records/s   written   failed   shadow_dropped")
            var samples: [Int] = []
            var lastWritten = 0
            var elapsed = 0
            while elapsed < seconds {
                let step = min(self.interval, seconds - elapsed)
                try await Task.sleep(for: .seconds(step))
                elapsed += step
                let stats = Self.numbers(httpGet(port: admin, path: "/stats") ?? "")
                let written = stats["records_written"] ?? 0
                let rss = residentKiB(of: pid)
                samples.append(rss)
                let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
                print(
                    String(
                        format: "  %4ds  %8.1f  %4d  %10.0f  %8d  %7d  %15d",
                        elapsed,
                        Double(rss) / 1024,
                        descriptors,
                        Double(written - lastWritten) / Double(step),
                        written,
                        stats["records_failed"] ?? 0,
                        stats["shadow_dropped"] ?? 0
                    )
                )
                lastWritten = written
            }
            load.waitUntilExit()
            let summary = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            for line in summary.split(separator: "\n")
            where line.contains("Requests/sec") || line.contains("Non-2xx") || line.contains("Socket errors") {
                print("  wrk: \(line.trimmingCharacters(in: .whitespaces))")
            }
            // Plateau: the last third of the run grows memory by less than 10% over its start.
            let third = max(samples.count / 3, 1)
            if samples.count >= 3, let reference = samples.dropLast(third).last, let peak = samples.suffix(third).max() {
                let growth = Double(peak - reference) / Double(reference)
                print(String(format: "RSS over the last third: %+.1f%% → %@", growth * 100, growth < 0.10 ? "plateau" : "STILL GROWING"))
            }
        }

        /// The integer fields of `/stats`.
        static func numbers(_ json: String) -> [String: Int] {
            var result: [String: Int] = [:]
            let pattern = try! NSRegularExpression(pattern: #""([a-z_]+)":(\d+)"#)
            for match in pattern.matches(in: json, range: NSRange(json.startIndex..., in: json)) {
                if let key = Range(match.range(at: 1), in: json), let value = Range(match.range(at: 2), in: json) {
                    result[String(json[key])] = Int(json[value])
                }
            }
            return result
        }
    }
}
