extension JSONPathPattern {
    /// Every value the pattern names in `document`, in document order (wildcards fan out).
    public func select(in document: JSONValue) -> [JSONValue] {
        var current = [document]
        for segment in self.segments {
            var next: [JSONValue] = []
            for value in current {
                switch (segment, value) {
                case (.key(let key), .object):
                    if let member = value[key] { next.append(member) }
                case (.anyKey, .object(let members)):
                    next.append(contentsOf: members.map(\.value))
                case (.index(let index), .array(let elements)) where index < elements.count:
                    next.append(elements[index])
                case (.anyIndex, .array(let elements)):
                    next.append(contentsOf: elements)
                default:
                    break
                }
            }
            current = next
        }
        return current
    }
}
