import ArgumentParser
import Foundation
import ShadowCore

extension BenchCommand {
    /// Scorer throughput on typical payloads, each pair differing a little.
    struct Scorers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Scorer throughput (pairs/s) on typical payloads.")

        @Option(help: "Seconds per scorer and payload.")
        var seconds: Double = 1

        @Option(help: "Run only the cases whose name contains this.")
        var only: String?

        @Flag(
            help:
                "First measure the sidecar's own request rate (wrk, 32 connections, nginx backends; needs wrk and nginx) and print each scorer's throughput as a multiple of it."
        )
        var againstSidecar = false

        func run() async throws {
            let v2 = Self.payload(floats: 10)
            let document = Self.document(bytes: 2048)
            let text = Self.chat(tokens: 1000)
            let cases: [(String, ScorerConfiguration, ([UInt8], [UInt8]))] = [
                ("exact, V2 10 floats", ScorerConfiguration(kind: .exact), v2),
                ("json, V2 10 floats", ScorerConfiguration(kind: .json, outputProtocol: .kserveV2), v2),
                ("label, V2 10 floats", ScorerConfiguration(kind: .label, outputProtocol: .kserveV2), v2),
                ("numeric, V2 10 floats", ScorerConfiguration(kind: .numeric, outputProtocol: .kserveV2), v2),
                ("distribution, V2 10 floats", ScorerConfiguration(kind: .distribution, outputProtocol: .kserveV2), v2),
                ("json, 2 KB document", ScorerConfiguration(kind: .json), document),
                ("ranking, 2 KB document", ScorerConfiguration(kind: .ranking, path: "$.items", k: 50), document),
                ("text edit, 1,000 tokens", ScorerConfiguration(kind: .text, outputProtocol: .openAI), text),
                ("text jaccard, 1,000 tokens", ScorerConfiguration(kind: .text, outputProtocol: .openAI, textMetric: .jaccard), text),
            ]
            var sidecarRate: Double?
            if self.againstSidecar {
                let rig = try await ProxyRig.start(candidates: [.fast])
                defer { rig.stop() }
                let runs = try (0..<3).map { _ in
                    try wrk(port: rig.sidecars[.fast]!.port, connections: 32, seconds: 3, script: rig.postScript).requestsPerSecond
                }
                sidecarRate = runs.sorted()[1]
                print("sidecar (one event loop, 100% mirrored, scored, recorded): \(Int(sidecarRate!)) req/s (median of 3 × 3 s, wrk 32 connections)")
            }
            print("scorer throughput, one core, \(self.seconds) s each")
            for (label, configuration, (baseline, candidate)) in cases where self.only.map({ label.contains($0) }) ?? true {
                let scorer = configuration.makeScorer()
                var count = 0
                var checksum = 0.0
                let started = ContinuousClock.now
                let budget = Duration.milliseconds(Int64(self.seconds * 1000))
                while ContinuousClock.now - started < budget {
                    for _ in 0..<16 { checksum += scorer.score(baseline: baseline, candidate: candidate).value }
                    count += 16
                }
                let elapsed = ContinuousClock.now - started
                let rate = Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                let multiple = sidecarRate.map { "  = \(String(format: "%.1f", rate / $0))× the sidecar's rate" } ?? ""
                print("  \(label.padding(30)) \(String(Int(rate)).leftPadding(9)) pairs/s\(multiple)   (score \(checksum / Double(count)))")
            }
        }

        static func payload(floats: Int) -> ([UInt8], [UInt8]) {
            func body(_ shift: Double) -> [UInt8] {
                let data = (0..<floats).map { JSONValue.number(Double($0) / 10 + shift).serialized }.joined(separator: ",")
                return Array(
                    #"{"model_name":"m","model_version":"1","id":"r1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[\#(floats)],"data":[\#(data)]}]}"#
                        .utf8
                )
            }
            return (body(0), body(0.001))
        }

        static func document(bytes: Int) -> ([UInt8], [UInt8]) {
            func body(_ variant: Int) -> [UInt8] {
                var items: [String] = []
                var text = ""
                var index = 0
                while text.utf8.count < bytes {
                    items.append(#""item-\#((index * 7 + (index % 5 == 0 ? variant : 0)) % 97)""#)
                    index += 1
                    text = #"{"user":{"id":42,"segment":"b"},"items":[\#(items.joined(separator: ","))],"scores":[0.1,0.2,0.3],"meta":{"took_ms":3}}"#
                }
                return Array(text.utf8)
            }
            return (body(0), body(1))
        }

        static func chat(tokens: Int) -> ([UInt8], [UInt8]) {
            let words = ["the", "model", "answer", "is", "likely", "correct", "given", "context", "and", "data"]
            func body(_ variant: Int) -> [UInt8] {
                let text = (0..<tokens).map { words[($0 * 3 + ($0 % 50 == 0 ? variant : 0)) % words.count] }.joined(separator: " ")
                return Array(#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"\#(text)"},"finish_reason":"stop"}]}"#.utf8)
            }
            return (body(0), body(1))
        }
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String { self.count >= width ? self : self + String(repeating: " ", count: width - self.count) }
    fileprivate func leftPadding(_ width: Int) -> String { self.count >= width ? self : String(repeating: " ", count: width - self.count) + self }
}
