import ShadowCore
import SwiftProtobuf

/// Decodes tensor protocol messages into the JSON value model the scorers read, so `label`,
/// `numeric`, `distribution`, `ranking` and `json` work unchanged on gRPC traffic.
///
/// - KServe V2 (`ModelInferRequest`/`ModelInferResponse`) becomes the V2 REST document: the
///   same `model_name`, `id`, `parameters`, and `inputs`/`outputs` with `name`, `datatype`,
///   `shape` and flat row-major `data`, whether the message carried typed `contents` or raw
///   little-endian buffers (FP16 and BF16 included). A scorer written for Triton's JSON answers
///   reads `$.outputs[0].data` from a gRPC answer the same way.
/// - TF Serving (`PredictRequest`/`PredictResponse`) becomes its REST "columnar" document:
///   `{"model_spec": …, "outputs": {"name": nested array by shape}}` (`inputs` for a request),
///   from the typed `*_val` fields or `tensor_content`.
///
/// Floats JSON cannot hold become the strings of protobuf's JSON mapping ("NaN", "Infinity");
/// 64-bit integers become numbers (exact up to 2^53). Unknown fields are skipped.
public enum TensorDecoder {
    /// What a message is, which says how to read its bytes.
    public enum Message: String, Sendable, CaseIterable {
        case kserveV2Request = "ModelInferRequest"
        case kserveV2Response = "ModelInferResponse"
        case tfServingRequest = "PredictRequest"
        case tfServingResponse = "PredictResponse"
    }

    /// Decodes one serialized protobuf message (no gRPC length prefix).
    public static func decode(_ bytes: [UInt8], as message: Message) throws(TensorDecodingError) -> JSONValue {
        do {
            switch message {
            case .kserveV2Request:
                return try Self.kserve(Inference_ModelInferRequest(serializedBytes: bytes))
            case .kserveV2Response:
                return try Self.kserve(Inference_ModelInferResponse(serializedBytes: bytes))
            case .tfServingRequest:
                return try Self.tfServing(Tfserving_PredictRequest(serializedBytes: bytes))
            case .tfServingResponse:
                return try Self.tfServing(Tfserving_PredictResponse(serializedBytes: bytes))
            }
        } catch let error as TensorDecodingError {
            throw error
        } catch {
            throw TensorDecodingError(message: message.rawValue, reason: "not a valid protobuf message (\(error))")
        }
    }
}
