import NIOHTTP1
import ShadowCore

/// An answer the sidecar gives itself, when it cannot or must not forward: a status and a small
/// JSON body `{"error":{"status":…,"code":…,"message":…,"request_id":…}}`.
struct SidecarError: Error {
    let status: HTTPResponseStatus
    /// Stable and bounded, for the `x-shadowd-error` header and metric labels.
    let code: String
    let message: String
    /// Framing errors leave the connection in an unknown state: close it.
    let closesConnection: Bool

    static func noRoute(_ path: String) -> SidecarError {
        SidecarError(status: .notFound, code: "no_route", message: "no route matches path \(path.prefix(200))", closesConnection: false)
    }

    static func bodyTooLarge(limit: Int) -> SidecarError {
        SidecarError(
            status: .payloadTooLarge,
            code: "body_too_large",
            message: "request body exceeds limits.max_request_body (\(limit) bytes)",
            closesConnection: true
        )
    }

    static func badRequest(_ message: String) -> SidecarError {
        SidecarError(status: .badRequest, code: "bad_request", message: message, closesConnection: true)
    }

    static func requestTimeout() -> SidecarError {
        SidecarError(
            status: .requestTimeout,
            code: "request_timeout",
            message: "the request did not arrive within server.idle_timeout",
            closesConnection: true
        )
    }

    static func baselineFailed(_ error: ArmError, detail: String? = nil) -> SidecarError {
        switch error {
        case .tls:
            SidecarError(
                status: .badGateway,
                code: "baseline_tls",
                message: "TLS to the baseline failed: \(detail ?? "handshake failed")",
                closesConnection: false
            )
        case .dns:
            SidecarError(
                status: .badGateway,
                code: "baseline_unreachable",
                message: "the baseline's host name did not resolve",
                closesConnection: false
            )
        case .timeout:
            SidecarError(status: .gatewayTimeout, code: "baseline_timeout", message: "the baseline did not answer in time", closesConnection: false)
        case .connectTimeout:
            SidecarError(status: .badGateway, code: "baseline_unreachable", message: "connecting to the baseline timed out", closesConnection: false)
        case .refused:
            SidecarError(
                status: .badGateway,
                code: "baseline_unreachable",
                message: detail.map { "the baseline could not be reached: \($0)" } ?? "the baseline refused the connection",
                closesConnection: false
            )
        case .invalidResponse:
            SidecarError(
                status: .badGateway,
                code: "baseline_invalid_response",
                message: "the baseline sent an invalid HTTP response",
                closesConnection: false
            )
        default:
            SidecarError(
                status: .badGateway,
                code: "baseline_reset",
                message: "the baseline closed the connection before answering" + (detail.map { ": \($0)" } ?? ""),
                closesConnection: false
            )
        }
    }

    func jsonBody(requestID: String) -> String {
        JSONValue.object([
            (
                "error",
                .object([
                    ("status", .number(Double(self.status.code))),
                    ("code", .string(self.code)),
                    ("message", .string(self.message)),
                    ("request_id", .string(requestID)),
                ])
            )
        ]).serialized
    }
}
