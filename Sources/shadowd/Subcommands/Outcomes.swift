import ArgumentParser
import Foundation
import ShadowCore
import ShadowStore

extension ShadowdCommand {
    /// Business outcomes from a warehouse export, with the same validation and idempotency as
    /// `POST /outcomes`.
    struct Outcomes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "outcomes",
            abstract: "Import business outcomes (clicks, revenue) for the experiment analysis.",
            subcommands: [Import.self]
        )

        struct Import: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "import",
                abstract: "Import outcome events from NDJSON or CSV into a database (duplicates by event_id are ignored).",
                discussion: """
                    NDJSON: one {"request_id" | "key", "metric", "value", "at"?, "event_id"?} a line. CSV: a header row \
                    naming those columns, in any order. The whole file is validated first; one bad line imports nothing \
                    and names the line. Metrics must be declared by an experiment in --config.
                    """
            )

            @Option(name: .customLong("db"), help: "The database to import into (the daemon's; safe while it runs).")
            var database: String

            @Option(help: "The configuration whose experiments declare the metrics.")
            var config: String

            @Argument(help: "events.ndjson or events.csv")
            var file: String

            func run() async throws {
                let configuration = try loadConfiguration(self.config)
                let parser = OutcomeBatchParser(routes: configuration.routes)
                guard let data = FileManager.default.contents(atPath: self.file) else {
                    throw CleanExit.message("error: cannot read \(self.file)", code: 1)
                }
                let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
                let result: Result<[OutcomeEvent], OutcomeBatchError> =
                    self.file.lowercased().hasSuffix(".csv")
                    ? CSVOutcomes.objects(Array(data)).flatMap { parser.validate($0, nowMicros: now) }
                    : parser.parse(Array(data), nowMicros: now)
                let events: [OutcomeEvent]
                switch result {
                case .failure(let error): throw CleanExit.message("error: \(self.file): \(error); nothing was imported", code: 1)
                case .success(let parsed): events = parsed
                }
                let store: PairStore
                do { store = try PairStore(path: self.database) } catch { throw CleanExit.message("error: \(error)", code: 1) }
                defer { try? store.close() }
                // Short transactions, so the daemon's writer is never held up for long; a rerun
                // after a failure stores only what is missing (by event_id).
                var total = PairStore.OutcomeInsert(stored: 0, duplicates: 0)
                var start = 0
                while start < events.count {
                    let chunk = Array(events[start..<min(events.count, start + 5_000)])
                    let inserted = try store.insertOutcomes(chunk)
                    total.stored += inserted.stored
                    total.duplicates += inserted.duplicates
                    start += chunk.count
                }
                print("imported \(total.stored) outcome event(s) from \(self.file); \(total.duplicates) already there (same event_id): ignored")
            }
        }
    }
}

/// CSV outcome rows as the JSON objects `OutcomeBatchParser` validates (RFC 4180 quoting).
enum CSVOutcomes {
    static func objects(_ bytes: [UInt8]) -> Result<[(line: Int, value: JSONValue)], OutcomeBatchError> {
        let rows = Self.rows(bytes)
        guard let header = rows.first?.fields.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) else {
            return .failure(OutcomeBatchError(line: 0, reason: "the file is empty"))
        }
        let known = ["request_id", "key", "metric", "value", "at", "event_id"]
        if let unknown = header.first(where: { !known.contains($0) }) {
            return .failure(OutcomeBatchError(line: 1, reason: "unknown column '\(unknown)' (known: \(known.joined(separator: ", ")))"))
        }
        var objects: [(line: Int, value: JSONValue)] = []
        for row in rows.dropFirst() where !(row.fields.count == 1 && row.fields[0].isEmpty) {
            guard row.fields.count == header.count else {
                return .failure(OutcomeBatchError(line: row.line, reason: "\(row.fields.count) fields for \(header.count) columns"))
            }
            var members: [(key: String, value: JSONValue)] = []
            for (name, field) in zip(header, row.fields) where !field.isEmpty {
                if name == "value" {
                    guard let number = Double(field.trimmingCharacters(in: .whitespaces)) else {
                        return .failure(OutcomeBatchError(line: row.line, reason: "value must be a number, got '\(field)'"))
                    }
                    members.append((name, .number(number)))
                } else {
                    members.append((name, .string(field)))
                }
            }
            objects.append((row.line, .object(members)))
        }
        return .success(objects)
    }

    /// Fields per record with the line each record starts on.
    static func rows(_ bytes: [UInt8]) -> [(line: Int, fields: [String])] {
        var rows: [(line: Int, fields: [String])] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var line = 1
        var recordLine = 1
        var index = 0
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
        }
        while index < bytes.count {
            let byte = bytes[index]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") {
                        field.append(byte)
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if byte == 0x0A { line += 1 }
                    field.append(byte)
                }
            } else if byte == UInt8(ascii: "\"") && field.isEmpty {
                quoted = true
            } else if byte == UInt8(ascii: ",") {
                endField()
            } else if byte == 0x0A {
                endField()
                rows.append((recordLine, fields))
                fields = []
                line += 1
                recordLine = line
            } else if byte != 0x0D {
                field.append(byte)
            }
            index += 1
        }
        if !field.isEmpty || !fields.isEmpty {
            endField()
            rows.append((recordLine, fields))
        }
        return rows
    }
}
