import Testing

@testable import ShadowCore

/// The shadow policy as one pure decision: gates, sample, ramp, body limit, limiter, breakers.
@Suite struct MirrorDecisionTests {

    static func decide(
        _ targets: [MirrorDecision.Target],
        _ request: MirrorDecision.Request = MirrorDecision.Request(),
        sample: Double = 100,
        ramp: Double? = nil,
        seed: UInt64 = 1,
        limiter: (Double) -> CoverageReason? = { _ in nil },
        breaker: (Int, Double) -> MirrorDecision.BreakerAnswer = { _, _ in .none }
    ) -> MirrorDecision {
        var random = SplitMix64(seed: seed)
        return MirrorDecision.decide(
            targets: targets,
            request: request,
            samplePercent: sample,
            rampPercent: ramp,
            random: &random,
            limiter: limiter,
            breaker: breaker
        )
    }

    @Test func everyTargetEndsChosenOrDroppedWithItsReason() {
        let two = [MirrorDecision.Target(), MirrorDecision.Target()]
        #expect(Self.decide(two).chosen.map(\.index) == [0, 1])
        #expect(Self.decide(two, MirrorDecision.Request(admittedByGates: false)).dropped.map(\.reason) == [.gated, .gated])
        #expect(Self.decide(two, MirrorDecision.Request(bodyTooLarge: true)).dropped.map(\.reason) == [.bodyTooLarge, .bodyTooLarge])
        let limited = Self.decide(two, limiter: { _ in .budgetExhausted })
        #expect(limited.chosen.isEmpty && limited.dropped.map(\.reason) == [.budgetExhausted, .budgetExhausted])
        let breakers = Self.decide(two, breaker: { index, _ in index == 0 ? .refused : .admitted(epoch: 7) })
        #expect(breakers.dropped.map(\.reason) == [.circuitOpen] && breakers.chosen.map(\.epoch) == [7])
    }

    /// The limiter is asked once for the sampled copies together, with their up-front cost; a
    /// request outside the sample never reaches it (it does not spend the budget).
    @Test func theLimiterSeesTheSampledCopiesCost() {
        var asked: [Double] = []
        let targets = [MirrorDecision.Target(perRequestCost: 0.25), MirrorDecision.Target(perRequestCost: 0.5)]
        _ = Self.decide(
            targets,
            limiter: {
                asked.append($0)
                return nil
            }
        )
        _ = Self.decide(
            targets,
            MirrorDecision.Request(keyPosition: 0.9),
            sample: 10,
            limiter: {
                asked.append($0)
                return nil
            }
        )
        #expect(asked == [0.75])
    }

    /// Keyed sampling: a key's position decides, the ramp's stage scales the share, and growing
    /// the stage only adds keys.
    @Test func aKeyIsAlwaysInOrAlwaysOutAndRampsNest() {
        let one = [MirrorDecision.Target()]
        for position in stride(from: 0.0, to: 1.0, by: 0.01) {
            let request = MirrorDecision.Request(keyPosition: position)
            let inAt5 = !Self.decide(one, request, sample: 100, ramp: 5, seed: 1).chosen.isEmpty
            let inAt5Again = !Self.decide(one, request, sample: 100, ramp: 5, seed: 99).chosen.isEmpty
            let inAt20 = !Self.decide(one, request, sample: 100, ramp: 20).chosen.isEmpty
            #expect(inAt5 == inAt5Again, "the draw comes from the key, not the random source")
            #expect(inAt5 == (position * 100 < 5) && inAt20 == (position * 100 < 20))
            #expect(!inAt5 || inAt20, "in at 5% stays in at 20%")
        }
    }

    /// A target with its own share (the A/A replica) draws apart from the route's sample.
    @Test func aTargetWithItsOwnShareDrawsApart() {
        let targets = [MirrorDecision.Target(), MirrorDecision.Target(samplePercent: 50)]
        var replicaIn = 0
        var candidateIn = 0
        for seed in 0..<4_000 as Range<UInt64> {
            let decision = Self.decide(targets, sample: 25, seed: seed)
            candidateIn += decision.chosen.contains { $0.index == 0 } ? 1 : 0
            replicaIn += decision.chosen.contains { $0.index == 1 } ? 1 : 0
        }
        // 4,000 draws: binomial SDs are 27 (25%) and 32 (50%); allow 4.
        #expect(abs(candidateIn - 1_000) < 110 && abs(replicaIn - 2_000) < 130, "\(candidateIn) \(replicaIn)")
    }

    /// A gRPC request stream is never mirrored, before the sample draws (it spends no budget) and
    /// after the gates (a gated call counts as gated).
    @Test func aClientStreamIsNotMirroredAndSpendsNothing() {
        let two = [MirrorDecision.Target(), MirrorDecision.Target(samplePercent: 50)]
        var asked = 0
        let streaming = Self.decide(
            two,
            MirrorDecision.Request(clientStreaming: true),
            limiter: { _ in
                asked += 1
                return nil
            }
        )
        #expect(streaming.chosen.isEmpty && streaming.dropped.map(\.reason) == [.clientStreaming, .clientStreaming] && asked == 0)
        let gated = Self.decide(two, MirrorDecision.Request(admittedByGates: false, clientStreaming: true))
        #expect(gated.dropped.map(\.reason) == [.gated, .gated])
    }

    /// What the wire says of a gRPC call's kind: exactly one length-prefixed message filling the
    /// body is a unary or server-streaming request; anything else is a request stream.
    @Test func aRequestStreamIsAnythingButOneWholeMessage() {
        func message(_ length: Int) -> [UInt8] { [0, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF)] + Array(repeating: 7, count: length) }
        #expect(!GRPCSemantics.isStreamingRequest(message(0)))
        #expect(!GRPCSemantics.isStreamingRequest(message(300)))
        #expect(!GRPCSemantics.isStreamingRequest([1, 0, 1, 0, 0] + Array(repeating: 0, count: 65_536)), "compressed, 64 KiB")
        #expect(GRPCSemantics.isStreamingRequest([]), "no message")
        #expect(GRPCSemantics.isStreamingRequest(message(3) + message(4)), "two messages")
        #expect(GRPCSemantics.isStreamingRequest(Array(message(10).dropLast())), "a cut message")
        #expect(GRPCSemantics.isStreamingRequest([0, 0, 0]), "a cut prefix")
    }
}
