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
        let pathOnly = path.firstIndex(of: "?").map { path[..<$0] } ?? path[...]
        return self.order.first { pathOnly.hasPrefix($0.prefix) }?.index
    }
}
