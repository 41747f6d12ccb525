import Foundation
import ShadowStore
import Testing

@testable import ShadowReport

/// The two-thread scan hands over exactly what a one-thread scan reads, in the same order.
@Suite struct ScanPipeTests {
    struct Stop: Error {}

    @Test func everyPairArrivesOnceInScanOrder() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/a.sqlite"
            // Several batches, the last one partial.
            try Traffic(pairs: 10_000, divergeEvery: 7, errorEvery: 13).write(to: path)
            let reader = try PairReader(path: path)
            defer { try? reader.close() }
            var direct: [(Int64, String?, Double?)] = []
            try reader.scan(PairReader.Scan()) { direct.append(($0.receivedAtMicros, $0.requestID, $0.divergence)) }
            var piped: [(Int64, String?, Double?)] = []
            var batches = 0
            try ScanPipe.run(reader, PairReader.Scan()) { batch in
                batches += 1
                piped += batch.map { ($0.receivedAtMicros, $0.requestID, $0.divergence) }
            }
            #expect(direct.count == 10_000)
            #expect(batches == 3, "4,096 pairs per batch")
            #expect(piped.count == direct.count)
            #expect(zip(piped, direct).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 })
        }
    }

    @Test func aFailingConsumerStopsTheScanAndItsErrorComesBack() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/a.sqlite"
            try Traffic(pairs: 30_000).write(to: path)
            let reader = try PairReader(path: path)
            defer { try? reader.close() }
            var seen = 0
            #expect(throws: Stop.self) {
                try ScanPipe.run(reader, PairReader.Scan()) { batch in
                    seen += batch.count
                    throw Stop()
                }
            }
            #expect(seen == 4_096, "nothing is consumed after the error")
            // The reader is free again: the scan thread ended its read transaction.
            var count = 0
            try reader.scan(PairReader.Scan()) { _ in count += 1 }
            #expect(count == 30_000)
        }
    }
}
