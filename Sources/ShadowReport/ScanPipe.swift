import Foundation
import ShadowStore

/// Runs a database scan on its own thread and hands its pairs over in batches, so SQLite's
/// stepping (about 60% of a report) and the report's accounting run on two cores at once.
///
/// The consumer sees every pair in scan order, exactly as a single-threaded scan would give
/// them: the report does not change, only its duration. At most `capacity` batches wait, so
/// memory stays bounded whatever the number of pairs.
enum ScanPipe {
    /// Scans `reader` on a new thread and calls `consume` with each batch on the calling thread,
    /// in order; returns once the scan ended and every batch was consumed. An error from either
    /// side stops both and is rethrown here.
    static func run(
        _ reader: PairReader,
        _ scan: PairReader.Scan,
        capacity: Int = 4,
        batchSize: Int = 4_096,
        consume: ([PairReader.ScannedPair]) throws -> Void
    ) throws {
        let handOff = BatchHandOff<[PairReader.ScannedPair]>(capacity: capacity)
        let producer = Thread { Self.produce(reader, scan, batchSize: batchSize, into: handOff) }
        producer.name = "shadowd.report.scan"
        producer.start()
        do {
            while let batch = handOff.take() {
                try consume(batch)
            }
        } catch {
            handOff.cancel()
            // The scan thread ends its read transaction before the reader is used again.
            handOff.waitUntilClosed()
            throw error
        }
        if let failure = handOff.failure { throw failure }
    }

    private static func produce(
        _ reader: PairReader,
        _ scan: PairReader.Scan,
        batchSize: Int,
        into handOff: BatchHandOff<[PairReader.ScannedPair]>
    ) {
        var batch: [PairReader.ScannedPair] = []
        batch.reserveCapacity(batchSize)
        do {
            try reader.scan(scan) { pair in
                batch.append(pair)
                if batch.count == batchSize {
                    // The consumer gave up: stop stepping the database.
                    guard handOff.put(batch) else { throw CancellationError() }
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { handOff.put(batch) }
            handOff.close()
        } catch is CancellationError {
            handOff.close()
        } catch {
            handOff.close(failure: error)
        }
    }
}
