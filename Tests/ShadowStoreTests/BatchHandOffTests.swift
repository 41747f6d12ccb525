import Foundation
import Testing

@testable import ShadowStore

/// The hand-off between two threads: order, the bound, the producer's failure and the
/// consumer's cancel, each proven by what the other side sees, not by timing.
@Suite struct BatchHandOffTests {
    struct Broken: Error {}

    @Test func batchesArriveInOrderThenTheProducersFailure() {
        let handOff = BatchHandOff<Int>(capacity: 2)
        let producer = Thread {
            for batch in 1...5 { handOff.put(batch) }
            handOff.close(failure: Broken())
        }
        producer.start()
        var taken: [Int] = []
        while let batch = handOff.take() { taken.append(batch) }
        #expect(taken == [1, 2, 3, 4, 5], "every batch put before the close is taken, in order")
        #expect(handOff.failure is Broken)
    }

    @Test func aPutWaitingForRoomGivesUpWhenTheConsumerCancels() {
        let handOff = BatchHandOff<Int>(capacity: 1)
        #expect(handOff.put(1))
        let returned = DispatchSemaphore(value: 0)
        let result = ResultBox()
        let producer = Thread {
            // The hand-off is full: this waits until the consumer takes or cancels.
            result.value = handOff.put(2)
            handOff.close()
            returned.signal()
        }
        producer.start()
        handOff.cancel()
        handOff.waitUntilClosed()
        returned.wait()
        #expect(result.value == false, "nothing is queued after a cancel")
        #expect(handOff.take() == nil, "queued batches were dropped")
        #expect(handOff.put(3) == false)
    }

    final class ResultBox: @unchecked Sendable {
        // Written by the producer thread before it signals, read after the wait.
        var value: Bool?
    }
}
