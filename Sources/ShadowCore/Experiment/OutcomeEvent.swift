/// One business outcome (a click, a purchase's revenue) for the experiment analysis: joined to
/// the request that caused it by request id, or to the user by the assignment key.
public struct OutcomeEvent: Sendable, Equatable {
    public var requestID: String?
    public var key: String?
    public var metric: String
    public var value: Double
    /// When it happened, microseconds since the epoch (the time it was received when not given).
    public var atMicros: Int64
    /// The sender's id for it: a repeated delivery with the same id is ignored.
    public var eventID: String?

    public init(requestID: String?, key: String?, metric: String, value: Double, atMicros: Int64, eventID: String? = nil) {
        self.requestID = requestID
        self.key = key
        self.metric = metric
        self.value = value
        self.atMicros = atMicros
        self.eventID = eventID
    }
}
