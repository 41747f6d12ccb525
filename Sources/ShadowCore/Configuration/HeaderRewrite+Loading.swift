extension HeaderRewrite {
    /// Reads `{set: {Name: value, …}, remove: [Name, …]}`.
    init(reading reader: inout YAMLReader) throws(ConfigurationError) {
        self.init()
        if var set = try reader.object("set") {
            for entry in try set.entries() {
                let key = set.child(entry.key)
                guard HeaderRewrite.isToken(entry.key) else {
                    throw ConfigurationError(key: key, reason: "not a valid header name", line: entry.line)
                }
                switch Template.parse(entry.value) {
                case .success(let template):
                    self.set.append(Field(name: entry.key, value: template, key: key))
                case .failure(let failure):
                    throw ConfigurationError(key: key, reason: failure.reason, line: entry.line)
                }
            }
            try set.finish()
        }
        let removed = try reader.strings("remove")
        for (index, name) in removed.enumerated() where !HeaderRewrite.isToken(name) {
            throw ConfigurationError(key: reader.child("remove") + "[\(index)]", reason: "not a valid header name")
        }
        self.remove = removed.map { $0.lowercased() }
        let framing = ["host", "content-length", "transfer-encoding", "connection"]
        if let name = (self.set.map { $0.name.lowercased() } + self.remove).first(where: { framing.contains($0) }) {
            throw reader.fail("set", "\(name) is set by the sidecar itself and cannot be changed here")
        }
    }

    /// RFC 9110 token characters.
    static func isToken(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
    }
}
