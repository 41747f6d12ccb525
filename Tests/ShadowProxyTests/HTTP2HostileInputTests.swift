import Foundation
import ShadowCore
import ShadowFixtures
import ShadowProxy
import ShadowTensor
import Testing

extension HTTP2AndGRPCTests {
    /// Hostile HTTP/2 clients, written frame by frame on a raw socket: each gets its connection
    /// closed with a GOAWAY (or, before HTTP/2 was agreed, a 400), and the daemon keeps serving
    /// everyone else.
    @Suite(.timeLimit(.minutes(2))) struct HTTP2HostileInputTests {
        static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

        /// One frame: 24-bit length, type, flags, 31-bit stream id, payload.
        static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
            let length = UInt32(payload.count)
            return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
                + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
        }

        static let settings = frame(type: 0x4)
        static let headersType: UInt8 = 0x1
        static let endStream: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4

        /// `POST /` over http with a literal authority, in HPACK (static-table indices).
        static let requestBlock: [UInt8] = [0x83, 0x86, 0x84, 0x41, 0x09] + Array("127.0.0.1".utf8)

        /// The GOAWAY frames' error codes among the bytes a server sent (after its SETTINGS).
        static func goAwayCodes(_ bytes: [UInt8]) -> [UInt32] {
            Self.frames(bytes).filter { $0.type == 0x7 && $0.payload.count >= 8 }.map { frame in
                frame.payload.dropFirst(4).prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            }
        }

        /// Runs `attack` against a sidecar with a gRPC baseline, then checks a well-behaved client
        /// is still answered.
        static func underAttack(_ attack: (Int) async throws -> Void) async throws {
            try await withSidecar(
                baseline: .h2c { _ in
                    FixtureResponse(headers: [("content-type", "application/grpc")], body: GRPCFraming.frame([1]), trailers: [("grpc-status", "0")])
                },
                configure: GRPCEndToEndTests.grpcRoute(ScorerConfiguration(kind: .exact))
            ) { sidecar, _, _ in
                try await attack(sidecar.port)
                let client = try await HTTP2TestClient.connect(port: sidecar.port)
                let answer = try await client.unary(path: "/inference.GRPCInferenceService/ModelInfer", message: [1, 2, 3])
                #expect(answer.grpcStatus == 0, "the daemon still serves others")
                await client.close()
            }
        }

        /// CVE-2023-44487: streams opened and reset at once, faster than any server can work on them.
        @Test func rapidResetIsCutOffWithAGoAway() async throws {
            try await Self.underAttack { port in
                let connection = try RawConnection(port: port)
                var attack = Self.preface + Self.settings
                for index in 0..<500 {
                    let stream = UInt32(2 * index + 1)
                    attack += Self.frame(type: Self.headersType, flags: Self.endHeaders, stream: stream, Self.requestBlock)
                    attack += Self.frame(type: 0x3, stream: stream, [0, 0, 0, 8])  // RST_STREAM CANCEL
                }
                _ = connection.sendChecked(attack)
                let (bytes, closed) = await connection.receiveBytesUntilClosed()
                #expect(closed, "the connection is closed")
                #expect(Self.goAwayCodes(bytes) == [Self.enhanceYourCalm], "with a GOAWAY: ENHANCE_YOUR_CALM")
            }
        }

        /// A header block that never ends: CONTINUATION frames without END_HEADERS, on and on.
        @Test func aContinuationFloodIsCutOffWithAGoAway() async throws {
            try await Self.underAttack { port in
                let connection = try RawConnection(port: port)
                var attack = Self.preface + Self.settings + Self.frame(type: Self.headersType, stream: 1, Self.requestBlock)
                let filler: [UInt8] = [0x40, 0x01, 0x78, 0x01, 0x79]  // literal "x: y", incremental indexing
                for _ in 0..<1_000 { attack += Self.frame(type: 0x9, stream: 1, filler) }
                _ = connection.sendChecked(attack)
                let (bytes, closed) = await connection.receiveBytesUntilClosed()
                #expect(closed)
                #expect(Self.goAwayCodes(bytes) == [Self.enhanceYourCalm])
            }
        }

        static let protocolError: UInt32 = 0x1
        static let enhanceYourCalm: UInt32 = 0xB

        /// A request on stream 1 with an extra `x-big` header of `size` bytes, as HEADERS then
        /// CONTINUATION frames of at most 16 KiB.
        static func request(extraHeaderBytes size: Int) -> [UInt8] {
            // A literal field without indexing; the value's length as HPACK's 7-bit prefixed integer.
            var length: [UInt8] = [0x7F]
            var rest = size - 127
            while rest >= 128 {
                length.append(UInt8(rest % 128 + 128))
                rest /= 128
            }
            length.append(UInt8(rest))
            let block = Self.requestBlock + [0x00, 0x05] + Array("x-big".utf8) + length + [UInt8](repeating: UInt8(ascii: "a"), count: size)
            var frames: [UInt8] = []
            var offset = 0
            while offset < block.count {
                let piece = Array(block[offset..<min(block.count, offset + 16_384)])
                let first = offset == 0
                offset += piece.count
                let flags = (offset == block.count ? Self.endHeaders : 0) | (first ? Self.endStream : 0)
                frames += Self.frame(type: first ? Self.headersType : 0x9, flags: flags, stream: 1, piece)
            }
            return frames
        }

        /// The frame encoder above is right: the same request with a 1,000-byte header is answered
        /// (a HEADERS frame on stream 1 comes back, and no GOAWAY).
        @Test func aWellFormedRawRequestIsAnswered() async throws {
            try await Self.underAttack { port in
                let connection = try RawConnection(port: port)
                _ = connection.sendChecked(Self.preface + Self.settings + Self.request(extraHeaderBytes: 1_000))
                var received: [UInt8] = []
                var answered = false
                for _ in 0..<50 where !answered {
                    let chunk = await connection.receiveSome()
                    if chunk.isEmpty { break }
                    received += chunk
                    answered = Self.frames(received).contains { $0.type == 0x1 && $0.stream == 1 }
                }
                #expect(answered, "a response HEADERS frame on stream 1")
                #expect(Self.goAwayCodes(received).isEmpty)
            }
        }

        /// A header list far above `limits.max_header_bytes` (64 KiB): refused with a protocol
        /// error, not buffered.
        @Test func anOversizedHeaderListIsRefused() async throws {
            try await Self.underAttack { port in
                let connection = try RawConnection(port: port)
                _ = connection.sendChecked(Self.preface + Self.settings + Self.request(extraHeaderBytes: 100_000))
                let (bytes, closed) = await connection.receiveBytesUntilClosed()
                #expect(closed)
                #expect(Self.goAwayCodes(bytes) == [Self.protocolError])
            }
        }

        /// The whole frames in `bytes`: type, stream and payload.
        static func frames(_ bytes: [UInt8]) -> [(type: UInt8, stream: UInt32, payload: ArraySlice<UInt8>)] {
            var frames: [(type: UInt8, stream: UInt32, payload: ArraySlice<UInt8>)] = []
            var offset = 0
            while bytes.count - offset >= 9 {
                let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
                guard bytes.count - offset - 9 >= length else { break }  // a frame still arriving
                let stream = bytes[(offset + 5)..<(offset + 9)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
                frames.append((bytes[offset + 3], stream, bytes[(offset + 9)..<(offset + 9 + length)]))
                offset += 9 + length
            }
            return frames
        }

        /// An h2c connection with no stream open is closed at `server.idle_timeout`, as an idle
        /// HTTP/1.1 one is; one with a stream in flight is not (the other tests' calls).
        @Test func anIdleConnectionIsClosedAtTheIdleTimeout() async throws {
            try await withSidecar(baseline: .h2c { _ in FixtureResponse() }, configure: { $0.server.idleTimeout = .milliseconds(300) }) {
                sidecar,
                _,
                _ in
                let connection = try RawConnection(port: sidecar.port, timeout: .seconds(30))
                _ = connection.sendChecked(Self.preface + Self.settings)
                let (_, closed) = await connection.receiveBytesUntilClosed()
                #expect(closed, "closed by the sidecar, not by the 30 s receive timeout")
                #expect(try await eventually { sidecar.sidecar.statistics.snapshot.openConnections == 0 })
            }
        }

        /// A client that never opens its flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0, no
        /// WINDOW_UPDATE) cannot take the answer: the stream is let go at `server.idle_timeout`, then
        /// the connection, now without streams, too. Nothing waits on it forever.
        @Test func aWindowNeverOpenedIsLetGoAtTheIdleTimeout() async throws {
            try await withSidecar(
                baseline: .h2c { _ in
                    FixtureResponse(
                        headers: [("content-type", "application/grpc")],
                        body: GRPCFraming.frame([UInt8](repeating: 7, count: 1_000)),
                        trailers: [("grpc-status", "0")]
                    )
                },
                configure: { configuration in
                    GRPCEndToEndTests.grpcRoute(ScorerConfiguration(kind: .exact))(&configuration)
                    configuration.server.idleTimeout = .milliseconds(500)
                }
            ) { sidecar, baseline, _ in
                let connection = try RawConnection(port: sidecar.port, timeout: .seconds(30))
                let closedWindow = Self.frame(type: 0x4, [0x00, 0x04, 0, 0, 0, 0])  // SETTINGS_INITIAL_WINDOW_SIZE = 0
                let request = Self.frame(type: Self.headersType, flags: Self.endHeaders | Self.endStream, stream: 1, Self.requestBlock)
                _ = connection.sendChecked(Self.preface + closedWindow + request)
                let (bytes, closed) = await connection.receiveBytesUntilClosed()
                #expect(baseline?.requestCount == 1, "the baseline answered")
                #expect(closed, "closed by the sidecar, not by the 30 s receive timeout")
                #expect(!Self.frames(bytes).contains { $0.type == 0x0 && $0.stream == 1 }, "no DATA went out on the closed window")
                #expect(try await eventually { sidecar.sidecar.statistics.snapshot.openConnections == 0 })
            }
        }

        /// Something that starts like the preface but is not one is HTTP/1.1, and bad HTTP/1.1.
        @Test func anInvalidPrefaceIsABadRequest() async throws {
            try await Self.underAttack { port in
                let (response, closed) = await rawExchange(port: port, Array("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".utf8))
                #expect(response.hasPrefix("HTTP/1.1 400"), "\(response.prefix(80))")
                #expect(closed)
            }
        }

        /// A connection that started as HTTP/1.1 cannot turn into h2c halfway.
        @Test func thePrefaceAfterAnHTTP1RequestIsABadRequest() async throws {
            try await Self.underAttack { port in
                let request = Array("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + Self.preface
                let (response, closed) = await rawExchange(port: port, request)
                #expect(response.hasPrefix("HTTP/1.1 "), "\(response.prefix(80))")
                #expect(response.contains("HTTP/1.1 400"), "\(response.suffix(200))")
                #expect(closed)
            }
        }
    }
}
