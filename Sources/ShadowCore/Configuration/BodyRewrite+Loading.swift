extension BodyRewrite {
    /// Reads `{set: {"$.model": llama-3.1-8b, "$.temperature": 0}, remove: ["$.user"]}`. A value
    /// that is JSON (a number, `true`, `null`, a quoted string, an object) is that JSON; anything
    /// else is a string.
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        if var set = try reader.object("set") {
            for entry in try set.entries() {
                let pattern: JSONPathPattern
                switch JSONPathPattern.parse(entry.key) {
                case .success(let parsed): pattern = parsed
                case .failure(let failure): throw ConfigurationError(key: set.child(entry.key), reason: failure.reason, line: entry.line)
                }
                let value = (try? JSONParser(maximumDepth: 32).parse(entry.value)) ?? .string(entry.value)
                self.set.append(Assignment(pattern: pattern, value: value))
            }
            try set.finish()
        }
        for (index, text) in try reader.strings("remove").enumerated() {
            switch JSONPathPattern.parse(text) {
            case .success(let pattern): self.remove.append(pattern)
            case .failure(let failure): throw ConfigurationError(key: reader.child("remove") + "[\(index)]", reason: failure.reason)
            }
        }
    }
}
