import Foundation
import ShadowStore

/// Runs a database scan on its own thread and hands its pairs over in batches, so SQLite's
/// stepping (about 60% of a report) and the report's accounting run on two cores at once.
///
/// The consumer sees every pair in scan order, exactly as a single-threaded scan would give
/// them: the report does not change, only its duration. At most ``capacity`` batches wait, so
/// memory stays bounded whatever the number of pairs.
final class ScanPipe: @unchecked Sendable {
    // @unchecked: every field below is read and written only under `condition`.
    private let condition = NSCondition()
    private var batches: [[PairReader.ScannedPair]] = []
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false
    let capacity: Int
    let batchSize: Int

    init(capacity: Int = 4, batchSize: Int = 4_096) {
        self.capacity = capacity
        self.batchSize = batchSize
    }

    /// Scans `reader` on a new thread and calls `consume` with each batch on the calling thread,
    /// in order; returns once the scan ended and every batch was consumed. An error from either
    /// side stops both and is rethrown here.
    static func run(
        _ reader: PairReader,
        _ scan: PairReader.Scan,
        consume: ([PairReader.ScannedPair]) throws -> Void
    ) throws {
        let pipe = ScanPipe()
        let producer = Thread { pipe.produce(reader, scan) }
        producer.name = "shadowd.report.scan"
        producer.start()
        do {
            while let batch = try pipe.receive() {
                try consume(batch)
            }
        } catch {
            pipe.cancel()
            pipe.waitUntilFinished()
            throw error
        }
    }

    private func produce(_ reader: PairReader, _ scan: PairReader.Scan) {
        var batch: [PairReader.ScannedPair] = []
        batch.reserveCapacity(self.batchSize)
        do {
            try reader.scan(scan) { pair in
                batch.append(pair)
                if batch.count == self.batchSize {
                    guard self.send(batch) else { throw CancellationError() }
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { _ = self.send(batch) }
            self.finish(failure: nil)
        } catch {
            self.finish(failure: error)
        }
    }

    /// Waits for room; false when the consumer gave up.
    private func send(_ batch: [PairReader.ScannedPair]) -> Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.batches.count >= self.capacity && !self.cancelled { self.condition.wait() }
        guard !self.cancelled else { return false }
        self.batches.append(batch)
        self.condition.broadcast()
        return true
    }

    private func finish(failure: (any Error)?) {
        self.condition.lock()
        self.finished = true
        self.failure = failure
        self.condition.broadcast()
        self.condition.unlock()
    }

    /// The next batch in order; nil once the scan ended and everything was handed over.
    private func receive() throws -> [PairReader.ScannedPair]? {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.batches.isEmpty && !self.finished { self.condition.wait() }
        if !self.batches.isEmpty {
            let batch = self.batches.removeFirst()
            self.condition.broadcast()
            return batch
        }
        if let failure = self.failure, !(failure is CancellationError) { throw failure }
        return nil
    }

    private func cancel() {
        self.condition.lock()
        self.cancelled = true
        self.batches.removeAll()
        self.condition.broadcast()
        self.condition.unlock()
    }

    private func waitUntilFinished() {
        self.condition.lock()
        while !self.finished { self.condition.wait() }
        self.condition.unlock()
    }
}
