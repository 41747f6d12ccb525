/// Why a tensor message could not be decoded: the message, the tensor and what was wrong, so a
/// pair's explanation (and a log line) says exactly which part of which answer was malformed.
public struct TensorDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message being decoded, e.g. `ModelInferResponse`.
    public var message: String
    /// The tensor, when one was at fault.
    public var tensor: String?
    public var reason: String

    public init(message: String, tensor: String? = nil, reason: String) {
        self.message = message
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        if let tensor { return "\(self.message), tensor \"\(tensor)\": \(self.reason)" }
        return "\(self.message): \(self.reason)"
    }
}
