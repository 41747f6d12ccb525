import ArgumentParser
import Foundation
import Logging
import ShadowCore
import ShadowStore

extension BenchCommand {
    /// How many pairs per second the writer path stores: the daemon's `RecordWriter` fed through
    /// its bounded queue, scoring and batched inserts into a WAL database, 1 KiB JSON bodies.
    struct Recorder: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recorder throughput: pairs/s into a WAL database, batched.")

        @Option(help: "Pairs to write.")
        var pairs: Int = 200_000

        @Option(help: "Exchanges per transaction.")
        var batch: Int = 500

        @Option(help: "Rounds: the cases alternate, and each prints its median over the rounds.")
        var rounds: Int = 1

        @Option(help: "Database folder (a temporary one by default).")
        var directory: String?

        @Option(
            help:
                "Body filler: padded (a run of one letter, as in earlier runs) or tensor (96 random 6-digit floats, compressible as model answers are)."
        )
        var bodies: Filler = .padded

        @Option(help: "Run only these cases (scored, plain, identical, compressed); all by default.")
        var only: [String] = []

        enum Filler: String, ExpressibleByArgument, CaseIterable {
            case padded
            case tensor
        }

        func run() async throws {
            let directory = self.directory ?? NSTemporaryDirectory() + "shadowd-bench-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { if self.directory == nil { try? FileManager.default.removeItem(atPath: directory) } }
            let records = Self.makeRecords(count: min(self.pairs, 10_000), filler: self.bodies)
            print("recorder: \(self.pairs) pairs, 1 KiB JSON bodies ×3 (\(self.bodies.rawValue)), batches of \(self.batch), WAL + synchronous=NORMAL")
            // Six answers in seven equal the baseline's (the scored case); "insert only" has the
            // candidate time out (nothing to score or store); "identical" answers every request
            // as the baseline did, not scored: what storing an equal answer once saves;
            // "compressed" is that with `storage.bodies: compressed`.
            let cases = [
                ("json scoring + insert", "scored"), ("insert only", "plain"), ("insert only, identical", "identical"),
                ("identical, compressed", "compressed"),
            ].filter { self.only.isEmpty || self.only.contains($0.1) }
            var rates: [String: [Double]] = [:]
            for (round, (label, variant)) in (0..<max(1, self.rounds)).flatMap({ round in cases.map { (round, $0) } }) {
                let path = "\(directory)/\(variant)-\(round).sqlite"
                let store = try PairStore(path: path)
                let records = records.map { record in
                    var record = record
                    switch variant {
                    case "plain":
                        record.candidates = record.candidates.map {
                            CandidateResult(name: $0.name, result: ArmResult(version: $0.result.version, error: .timeout))
                        }
                    case "identical", "compressed":
                        record.candidates = record.candidates.map {
                            var result = record.baseline
                            result.version = $0.result.version
                            return CandidateResult(name: $0.name, result: result)
                        }
                        record.scorer = ExactScorer()
                    default:
                        break
                    }
                    return record
                }
                // As the daemon records: a producer offers records to the bounded queue (retrying
                // when full), and the writer service scores and writes them in two stages.
                let queue = RecordQueue<ExchangeRecord>(capacity: 10_000)
                let writer = RecordWriter(
                    store: store,
                    queue: queue,
                    coverage: CoverageCounter(),
                    storage: {
                        var storage = StorageConfiguration(path: path, batchSize: self.batch)
                        storage.bodies = variant == "compressed" ? .compressed : .full
                        return storage
                    }(),
                    logger: {
                        var logger = Logger(label: "bench")
                        logger.logLevel = .error
                        return logger
                    }()
                )
                // Ids like the daemon's own (UUIDv7: time-ordered), one per pair, made beforehand
                // (the bodies are shared) so the clock times the recorder, not the producer.
                let all = (0..<self.pairs).map { index in
                    var record = records[index % records.count]
                    record.requestID = Self.timeOrderedID(index)
                    return record
                }
                let started = ContinuousClock.now
                let service = Task { try await writer.run() }
                var written = 0
                for record in all {
                    while !queue.offer(record) { try await Task.sleep(for: .milliseconds(1)) }
                    written += 1
                }
                queue.finish()
                try await service.value
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                guard writer.statistics.snapshot().written == written else {
                    throw ValidationError("the writer stored \(writer.statistics.snapshot().written) of \(written) pairs")
                }
                try store.close()
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                rates[label, default: []].append(Double(written) / seconds)
                if self.directory == nil { try? FileManager.default.removeItem(atPath: path) }
                print(
                    String(
                        format: "  %-24@ %9.0f pairs/s  (%.2f s, database %.0f MiB, %.0f bytes per pair)",
                        label as NSString,
                        Double(written) / seconds,
                        seconds,
                        Double(size) / 1_048_576,
                        Double(size) / Double(written)
                    )
                )
            }
            if self.rounds > 1 {
                print("medians over \(self.rounds) alternating rounds:")
                for (label, _) in cases {
                    let sorted = rates[label, default: []].sorted()
                    print(String(format: "  %-24@ %9.0f pairs/s", label as NSString, sorted[sorted.count / 2]))
                }
            }
        }

        /// A UUIDv7-shaped id whose time part grows with `index` (1,000 pairs per millisecond).
        static func timeOrderedID(_ index: Int) -> String {
            let hex = String(1_764_000_000_000 + index / 1_000, radix: 16)
            let padded = String(repeating: "0", count: max(0, 12 - hex.count)) + hex
            let tail = String(UInt64(truncatingIfNeeded: index &* 0x9E37_79B9) & 0xFFFF_FFFF_FFFF, radix: 16)
            return "\(padded.prefix(8))-\(padded.dropFirst(8))-7000-8000-\(String(repeating: "0", count: max(0, 12 - tail.count)) + tail)"
        }

        static func makeRecords(count: Int, filler kind: Filler = .padded) -> [ExchangeRecord] {
            (0..<count).map { index in
                let filler: String
                switch kind {
                case .padded:
                    filler = #""pad":""# + String(repeating: "x", count: 900) + #"""#
                case .tensor:
                    // xorshift64 seeded by the index: the same bodies in every run.
                    var state = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
                    let values = (0..<96).map { _ -> String in
                        state ^= state << 13
                        state ^= state >> 7
                        state ^= state << 17
                        return String(format: "%.6f", Double(state % 1_000_000) / 1_000_000)
                    }
                    filler = #""logits":["# + values.joined(separator: ",") + "]"
                }
                let body = #"{"id":"\#(index)","label":"\#(index % 7 == 0 ? "dog" : "cat")","scores":[0.1,0.2,0.7],\#(filler)}"#
                let baseline = #"{"id":"\#(index)","label":"cat","scores":[0.1,0.2,0.7],\#(filler)}"#
                return ExchangeRecord(
                    requestID: "bench-\(index)",
                    route: "bench",
                    configRevision: "bench",
                    receivedAtMicros: 1_700_000_000_000_000 + Int64(index) * 1000,
                    method: "POST",
                    path: "/v2/models/bench/infer",
                    requestBody: CapturedBody(bytes: Array(baseline.utf8)),
                    baseline: ArmResult(
                        version: "1",
                        status: 200,
                        latencyMicros: 900,
                        timeToHeadMicros: 800,
                        contentType: "application/json",
                        body: CapturedBody(bytes: Array(baseline.utf8))
                    ),
                    candidates: [
                        CandidateResult(
                            name: "c",
                            result: ArmResult(
                                version: "2",
                                status: 200,
                                latencyMicros: 1100,
                                timeToHeadMicros: 1000,
                                contentType: "application/json",
                                body: CapturedBody(bytes: Array(body.utf8))
                            )
                        )
                    ],
                    scorer: JSONScorer(configuration: ScorerConfiguration(ignorePaths: ["$.id"]))
                )
            }
        }
    }
}
