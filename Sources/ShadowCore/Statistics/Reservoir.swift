/// A uniform random sample of at most `capacity` elements from a stream of any length
/// (Vitter's algorithm R), so memory stays flat however many rows a report scans.
public struct Reservoir<Element> {
    public let capacity: Int
    /// Elements offered so far.
    public private(set) var seen: Int = 0
    public private(set) var elements: [Element] = []
    private var random: SplitMix64

    public init(capacity: Int, seed: UInt64) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
        self.random = SplitMix64(seed: seed)
    }

    /// Whether the sample holds every element offered.
    public var isComplete: Bool { self.seen <= self.capacity }

    public mutating func offer(_ element: Element) {
        self.seen += 1
        if self.elements.count < self.capacity {
            self.elements.append(element)
            return
        }
        let slot = Int(self.random.next() % UInt64(self.seen))
        if slot < self.capacity { self.elements[slot] = element }
    }
}

extension Reservoir: Sendable where Element: Sendable {}
