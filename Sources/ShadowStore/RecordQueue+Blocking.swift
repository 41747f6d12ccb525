import Dispatch
import ShadowCore

extension RecordQueue {
    /// ``nextBatch(maximum:)`` for a consumer on a thread of its own: blocks the calling thread
    /// (never a cooperative-pool thread) until an element is queued, ``wake()`` is called or the
    /// queue is finished.
    /// - Returns: the elements (empty after a wake-up), or `nil` once finished and drained.
    func nextBatchBlocking(maximum: Int) -> [Element]? {
        let woken = DispatchSemaphore(value: 0)
        switch self.poll(maximum: maximum, orWake: { woken.signal() }) {
        case .ready(let batch):
            return batch
        case .registered:
            woken.wait()
            return self.takeAfterWake(maximum: maximum)
        }
    }
}
