import Testing

/// The HTTP/2 and gRPC suites, one test at a time: each starts sidecars and h2c fixtures, and
/// run all at once beside the rest of the suite they loaded a 2-core machine enough to push
/// older timing-sensitive tests past their margins.
@Suite(.serialized) enum HTTP2AndGRPCTests {}
