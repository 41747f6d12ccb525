/// Why a report could not be made; the command prints the message and exits 1.
public struct ReportError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
