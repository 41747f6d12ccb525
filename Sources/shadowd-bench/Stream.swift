import ArgumentParser
import Foundation
import NIOHTTP1
import ShadowFixtures

extension BenchCommand {
    /// Time to first byte of a streamed chat answer: direct to the fixture model against through
    /// the sidecar (recording both arms), alternating request by request in one run.
    struct Stream: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Streamed answers: time to first byte direct vs through the sidecar.")

        @Option(help: "Requests per target.")
        var requests: Int = 200

        func run() async throws {
            var spec = ModelSpec(name: "assistant", version: "1", seed: 11, api: .openAI)
            spec.tokenRate = 1_000
            let baseline = try await ModelFixture(spec: spec).start()
            let candidate = try await ModelFixture(spec: spec).start()
            let directory = NSTemporaryDirectory() + "shadowd-bench-stream-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let port = 28_101
            try """
            server: {listen: "127.0.0.1:\(port)", threads: 1}
            admin: {enabled: false}
            storage: {path: \(directory)/stream.sqlite}
            routes:
              - name: chat
                prefix: /v1/
                baseline: {url: "http://127.0.0.1:\(baseline.port)", cost: {per_1k_completion_tokens: 0.6}}
                candidates: [{name: next, url: "http://127.0.0.1:\(candidate.port)", cost: {per_1k_completion_tokens: 0.4}}]
                scorer: {kind: text, protocol: openai}
            """.write(toFile: directory + "/shadowd.yaml", atomically: true, encoding: .utf8)
            let sidecar = Process()
            sidecar.executableURL = URL(fileURLWithPath: siblingBinary("shadowd"))
            sidecar.arguments = ["serve", "--config", directory + "/shadowd.yaml", "--log-level", "warning"]
            try sidecar.run()
            defer {
                // Stopped before its folder goes: a sidecar outliving its database logs the loss.
                sidecar.terminate()
                sidecar.waitUntilExit()
            }
            try await Task.sleep(for: .seconds(1))
            let body = Array(#"{"model":"assistant","stream":true,"messages":[{"role":"user","content":"hello"}]}"#.utf8)
            let direct = try await HTTPTestClient.connect(port: baseline.port)
            let through = try await HTTPTestClient.connect(port: port)
            var times: [String: [Double]] = ["direct": [], "shadowd": []]
            for index in 0..<(self.requests * 2) {
                let (name, client) = index % 2 == 0 ? ("direct", direct) : ("shadowd", through)
                let response = try await client.send(
                    method: .POST,
                    path: "/v1/chat/completions",
                    headers: [("content-type", "application/json")],
                    body: body
                )
                guard response.status == 200 else { throw ValidationError("\(name) answered \(response.status)") }
                let ttfb = response.timeToFirstByte.components
                times[name]!.append(Double(ttfb.seconds) * 1e6 + Double(ttfb.attoseconds) / 1e12)
            }
            await direct.close()
            await through.close()
            func percentile(_ values: [Double], _ q: Double) -> Double { values.sorted()[min(values.count - 1, Int(q * Double(values.count)))] }
            print("streamed chat answers (~15 events), \(self.requests) per target, alternating; time to first byte:")
            for name in ["direct", "shadowd"] {
                let values = times[name]!
                print(
                    "  \(name.padding(toLength: 8, withPad: " ", startingAt: 0)) p50 \(Int(percentile(values, 0.5))) µs   p90 \(Int(percentile(values, 0.9))) µs"
                )
            }
            print("  added by the sidecar: p50 +\(Int(percentile(times["shadowd"]!, 0.5) - percentile(times["direct"]!, 0.5))) µs")
            try await baseline.stop()
            try await candidate.stop()
        }
    }
}
