import PropertyBased
import Testing

@testable import ShadowCore

/// Laws every scorer must keep, on generated documents: identity, symmetry, bounds, and that
/// ignoring more paths never finds more differences.
@Suite struct ScorerPropertyTests {
    /// A random JSON document from a seed (objects, arrays, numbers, strings, booleans, nulls).
    static func document(_ seed: Int, depth: Int = 0) -> JSONValue {
        var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
        func value(_ depth: Int) -> JSONValue {
            switch next() % (depth > 3 ? 4 : 6) {
            case 0: return .number(Double(Int(next() % 2000)) / 8 - 100)
            case 1: return .string(["cat", "dog", "", "ünï", "a b"][Int(next() % 5)])
            case 2: return .bool(next() % 2 == 0)
            case 3: return .null
            case 4: return .array((0..<Int(next() % 4)).map { _ in value(depth + 1) })
            default:
                return .object(
                    (0..<Int(next() % 4)).map { index in (key: ["id", "x", "outputs", "k"][Int(next() % 4)] + "\(index)", value: value(depth + 1)) }
                )
            }
        }
        return value(depth)
    }

    /// `value` with about a third of its leaves changed, chosen from `seed`.
    static func perturbed(_ value: JSONValue, _ seed: Int) -> JSONValue {
        var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        func change() -> Bool {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state % 3 == 0
        }
        func walk(_ value: JSONValue) -> JSONValue {
            switch value {
            case .number(let number): change() ? .number(number + 1) : value
            case .string(let text): change() ? .string(text + "!") : value
            case .bool(let flag): change() ? .bool(!flag) : value
            case .null: value
            case .array(let elements): .array(elements.map(walk))
            case .object(let members): .object(members.map { (key: $0.key, value: walk($0.value)) })
            }
        }
        return walk(value)
    }

    static let scorers: [ScorerConfiguration] = [
        ScorerConfiguration(kind: .exact),
        ScorerConfiguration(kind: .json),
        ScorerConfiguration(kind: .json, arrays: .set),
        ScorerConfiguration(kind: .label, path: "$.k0"),
        ScorerConfiguration(kind: .numeric, path: "$.k0"),
        ScorerConfiguration(kind: .distribution, path: "$.k0"),
        ScorerConfiguration(kind: .ranking, path: "$.k0"),
        ScorerConfiguration(kind: .text, path: "$.k0"),
    ]

    static func bytes(_ value: JSONValue) -> [UInt8] { Array(value.serialized.utf8) }

    @Test func identityAndBounds() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...1_000_000)) { a, b in
            let left = Self.document(a)
            let right = Self.document(b)
            for configuration in Self.scorers {
                let scorer = configuration.makeScorer()
                let same = scorer.score(baseline: Self.bytes(left), candidate: Self.bytes(left))
                #expect(same.value == 0 && !same.diverged, "\(configuration.kind): score(x, x) = \(same.value) for \(left.serialized)")
                let other = scorer.score(baseline: Self.bytes(left), candidate: Self.bytes(right))
                #expect((0...1).contains(other.value), "\(configuration.kind): \(other.value) out of bounds")
            }
        }
    }

    @Test func symmetry() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...1_000_000)) { a, b in
            let left = Self.bytes(Self.document(a))
            let right = Self.bytes(Self.document(b))
            for configuration in Self.scorers where configuration.kind != .numeric {
                let scorer = configuration.makeScorer()
                let forward = scorer.score(baseline: left, candidate: right).value
                let backward = scorer.score(baseline: right, candidate: left).value
                #expect(abs(forward - backward) < 1e-9, "\(configuration.kind) is not symmetric: \(forward) vs \(backward)")
            }
        }
    }

    /// Equal bytes take a shortcut (one parse, leaves counted without pairing values up): the
    /// score and explanation must be what comparing the same document in other bytes gives.
    @Test func equalBytesScoreAsTheSameDocumentInOtherBytes() async {
        let configurations = [
            ScorerConfiguration(kind: .json),
            ScorerConfiguration(kind: .json, arrays: .set),
            ScorerConfiguration(kind: .json, ignorePaths: ["$.x0", "$.outputs2[*]", "$.k1.id0"]),
            ScorerConfiguration(kind: .json, ignorePaths: ["$.*"], arrays: .set),
        ]
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000)) { seed in
            let bytes = Self.bytes(Self.document(seed))
            let spaced = [UInt8(ascii: " ")] + bytes
            for configuration in configurations {
                let scorer = JSONScorer(configuration: configuration)
                let same = scorer.score(baseline: bytes, candidate: bytes)
                let other = scorer.score(baseline: bytes, candidate: spaced)
                #expect(same.value == other.value && same.differingPaths == other.differingPaths)
                #expect(same.explanation.serialized == other.explanation.serialized, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }

    /// No difference is found at or under an ignored path, whatever its depth, and every one
    /// found elsewhere still is (the same pair scored without the patterns, minus those paths).
    @Test func ignoredPathsHideExactlyTheirSubtrees() async {
        let patterns = ["$.x0", "$.k1", "$.outputs2[*]", "$.id0.k0", "$.*.x1", "$[1]", "$[*].k2"].compactMap {
            try? JSONPathPattern.parse($0).get()
        }
        #expect(patterns.count == 7)
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...1_000_000)) { a, b in
            // The same shape with some leaves changed, so differences reach every depth.
            let document = Self.document(a)
            let left = Self.bytes(document)
            let right = Self.bytes(Self.perturbed(document, b))
            let ignoring = JSONScorer(configuration: ScorerConfiguration(kind: .json, ignorePaths: patterns.map(\.description)))
            let plain = JSONScorer(configuration: ScorerConfiguration(kind: .json))
            func covered(_ path: String) -> Bool {
                guard let components = JSONPathPattern.components(of: path) else { return false }
                return patterns.contains { $0.covers(components) }
            }
            let found = Set(ignoring.score(baseline: left, candidate: right).differingPaths)
            #expect(!found.contains(where: covered), "\(found)")
            let expected = Set(plain.score(baseline: left, candidate: right).differingPaths.filter { !covered($0) })
            #expect(found == expected)
        }
    }

    @Test func ignoringMorePathsNeverFindsMoreDifferences() async {
        let patterns = ["$.x0", "$.k1", "$.*", "$.outputs2[*]", "$.id0"]
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...1_000_000), Gen.int(in: 0...4)) { a, b, cut in
            let left = Self.bytes(Self.document(a))
            let right = Self.bytes(Self.document(b))
            let fewer = JSONScorer(configuration: ScorerConfiguration(kind: .json, ignorePaths: Array(patterns.prefix(cut))))
            let more = JSONScorer(configuration: ScorerConfiguration(kind: .json, ignorePaths: Array(patterns.prefix(cut + 1))))
            let before = fewer.score(baseline: left, candidate: right).differingPaths.count
            let after = more.score(baseline: left, candidate: right).differingPaths.count
            #expect(after <= before)
        }
    }
}

@Suite struct EditDistanceTests {
    @Test func theBitParallelDistanceMatchesTheTextbookOne() async {
        let words = Gen.element(of: ["a", "b", "c", "d"]).map { $0 ?? "a" }
        await propertyCheck(count: 500, input: words.array(of: 0...150), words.array(of: 0...150)) { left, right in
            #expect(TextScorer.editDistance(left, right) == TextScorer.editDistanceReference(left, right), "\(left) vs \(right)")
        }
    }

    @Test func theDiagonalDistanceMatchesTheTextbookOneOnNearlyEqualTexts() async {
        // A random text and a copy with a few random edits: the case the diagonal algorithm is for.
        await propertyCheck(count: 500, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...12), Gen.int(in: 0...200)) { seed, edits, length in
            var random = SplitMix64(seed: UInt64(seed))
            let left = (0..<length).map { _ in ["a", "b", "c", "d", "e"][Int(random.next() % 5)] }
            var right = left
            for _ in 0..<edits {
                let position = right.isEmpty ? 0 : Int(random.next() % UInt64(right.count))
                switch random.next() % 3 {
                case 0: right.insert("x", at: position)
                case 1: if !right.isEmpty { right.remove(at: position) }
                default: if !right.isEmpty { right[position] = "y" }
                }
            }
            let reference = TextScorer.editDistanceReference(left, right)
            #expect(TextScorer.editDistance(left, right) == reference, "\(left) vs \(right)")
            var ids: [String: Int32] = [:]
            let a = left.map { TextScorer.intern($0, &ids) }
            let b = right.map { TextScorer.intern($0, &ids) }
            let small = TextScorer.smallEditDistance(a[...], b[...], limit: 6)
            #expect(small == (reference <= 6 ? reference : nil), "\(left) vs \(right)")
        }
    }

    @Test func knownDistances() {
        func tokens(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }
        #expect(TextScorer.editDistance(tokens("the cat sat"), tokens("the cat sat")) == 0)
        #expect(TextScorer.editDistance(tokens("kitten sitting"), tokens("sitting kitten")) == 2)
        #expect(TextScorer.editDistance([], tokens("a b")) == 2)
        let long = (0..<300).map { "w\($0 % 17)" }
        var changed = long
        changed[5] = "x"
        changed.remove(at: 200)
        #expect(TextScorer.editDistance(long, changed) == 2)
    }
}
