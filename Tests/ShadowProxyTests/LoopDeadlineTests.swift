import NIOCore
import NIOEmbedded
import Testing

@testable import ShadowProxy

/// The deadline's state machine on a loop whose clock the test moves.
@Suite struct LoopDeadlineTests {
    final class Fired {
        var count = 0
    }

    @Test func firesOnceWhenTheDeadlinePasses() {
        let loop = EmbeddedEventLoop()
        let fired = Fired()
        let deadline = LoopDeadline(on: loop) { fired.count += 1 }
        deadline.set(loop.now + .seconds(5))
        loop.advanceTime(by: .seconds(4))
        #expect(fired.count == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(fired.count == 1)
        #expect(deadline.deadline == nil)
        loop.advanceTime(by: .seconds(60))
        #expect(fired.count == 1, "it does not fire again until set again")
    }

    @Test func movingItLaterDefersTheActionToTheNewDeadline() {
        let loop = EmbeddedEventLoop()
        let fired = Fired()
        let deadline = LoopDeadline(on: loop) { fired.count += 1 }
        deadline.set(loop.now + .seconds(5))
        // A keep-alive connection finishing a request every 3 s pushes it out each time.
        for _ in 0..<10 {
            loop.advanceTime(by: .seconds(3))
            deadline.set(loop.now + .seconds(5))
        }
        #expect(fired.count == 0)
        loop.advanceTime(by: .seconds(4))
        #expect(fired.count == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(fired.count == 1)
    }

    @Test func movingItEarlierFiresAtTheEarlierTime() {
        let loop = EmbeddedEventLoop()
        let fired = Fired()
        let deadline = LoopDeadline(on: loop) { fired.count += 1 }
        deadline.set(loop.now + .seconds(60))
        deadline.set(loop.now + .seconds(2))
        loop.advanceTime(by: .seconds(2))
        #expect(fired.count == 1)
    }

    @Test func disarmingAndCancellingStopTheAction() {
        let loop = EmbeddedEventLoop()
        let fired = Fired()
        let deadline = LoopDeadline(on: loop) { fired.count += 1 }
        deadline.set(loop.now + .seconds(1))
        deadline.set(nil)
        loop.advanceTime(by: .seconds(5))
        #expect(fired.count == 0, "disarmed: the task fires and finds nothing to do")
        // Re-armed after the old task already fired: a new one is scheduled.
        deadline.set(loop.now + .seconds(1))
        loop.advanceTime(by: .seconds(1))
        #expect(fired.count == 1)
        deadline.set(loop.now + .seconds(1))
        deadline.cancel()
        loop.advanceTime(by: .seconds(5))
        #expect(fired.count == 1)
    }
}
