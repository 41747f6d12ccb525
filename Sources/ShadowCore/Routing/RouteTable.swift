/// Finds the route for a request path: the longest configured prefix that matches.
public struct RouteTable: Sendable {
    /// Route indices, longest prefix first.
    private let order: [(prefix: String, index: Int)]

    public init(routes: [RouteConfiguration]) {
        self.order = routes.enumerated()
            .map { (prefix: $0.element.prefix, index: $0.offset) }
            .sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
    }

    /// The index (into the configured routes) of the route for `path` (query string allowed),
    /// or `nil` when none matches.
    public func index(for path: String) -> Int? {
        // Bytes, not Characters: this runs per request, and paths come off the wire as bytes.
        let bytes = path.utf8
        let pathOnly = bytes.firstIndex(of: UInt8(ascii: "?")).map { bytes[..<$0] } ?? bytes[...]
        return self.order.first { pathOnly.starts(with: $0.prefix.utf8) }?.index
    }
}
