import Testing

@testable import ShadowCore

/// What a replay may send, and when.
@Suite struct ReplayPolicyTests {
    @Test func onlyBodiesStoredAsSentAreReplayed() {
        let body = Array(#"{"inputs":[1]}"#.utf8)
        let methods: Set<String> = ["POST", "GET"]
        #expect(ReplayEligibility.skip(method: "POST", storedBody: body, bodyBytes: body.count, methods: methods) == nil)
        #expect(ReplayEligibility.skip(method: "GET", storedBody: nil, bodyBytes: 0, methods: methods) == nil)
        #expect(ReplayEligibility.skip(method: "DELETE", storedBody: body, bodyBytes: body.count, methods: methods) == .methodNotAllowed)
        #expect(ReplayEligibility.skip(method: "POST", storedBody: nil, bodyBytes: 14, methods: methods) == .bodyNotStored)
        #expect(ReplayEligibility.skip(method: "POST", storedBody: Array(body.prefix(5)), bodyBytes: body.count, methods: methods) == .bodyTruncated)
        let hashed = Array("hmac-sha256:0123456789abcdef0123456789abcdef".utf8)
        #expect(ReplayEligibility.skip(method: "POST", storedBody: hashed, bodyBytes: 14, methods: methods) == .bodyHashed)
        let redacted = Array(#"{"user":"hmac-sha256:0123456789abcdef0123456789abcdef","x":1}"#.utf8)
        #expect(ReplayEligibility.skip(method: "POST", storedBody: redacted, bodyBytes: 30, methods: methods) == .bodyRedacted)
        // A tensor request stored as JSON: named as decoded, whatever its stored size.
        #expect(ReplayEligibility.skip(method: "POST", storedBody: body, bodyBytes: 3, methods: methods, decoded: true) == .bodyDecoded)
        #expect(ReplayEligibility.skip(method: "POST", storedBody: body, bodyBytes: 900, methods: methods, decoded: true) == .bodyDecoded)
        #expect(ReplayEligibility.skip(method: "POST", storedBody: body, bodyBytes: body.count, methods: methods, grpc: true) == .grpc)
        #expect(ReplayEligibility.skip(method: "PUT", storedBody: body, bodyBytes: body.count, methods: methods, grpc: true) == .methodNotAllowed)
    }

    @Test func pacingKeepsTheRecordedShapeOrAFlatRate() {
        var speed = ReplayPacer(.speed(2))
        let recorded: [Int64] = [1_000_000, 1_500_000, 3_000_000]
        #expect(recorded.map { speed.due(recordedMicros: $0) } == [0, 250_000, 1_000_000])
        var rate = ReplayPacer(.rate(4))
        #expect((0..<3).map { _ in rate.due(recordedMicros: 0) } == [0, 250_000, 500_000])
        var unpaced = ReplayPacer(.unpaced)
        #expect(unpaced.due(recordedMicros: 99) == 0)
        #expect(ReplayPacer.parse(speed: "1x", rate: nil) == .speed(1) && ReplayPacer.parse(speed: nil, rate: "50/s") == .rate(50))
        #expect(ReplayPacer.parse(speed: "fast", rate: nil) == nil && ReplayPacer.parse(speed: nil, rate: "-1") == nil)
    }
}
