//! The one mapping from a gRPC status to an HTTP/JSON error: the HTTP
//! status of each gRPC code (grpc-gateway's table, so clients and proxies
//! that know it read ours the same way) and the JSON body `{code, message,
//! reason}`. Must not decide what a call's status is: the gRPC stack
//! decides, this file only spells its answer for HTTP.

use http::StatusCode;
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use super::super::api::{ERROR_DOMAIN, code_name};

/// The HTTP status a gRPC code is answered with.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // nginx's "client closed request": the caller went away.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON of an error: the code's name, the message, and the reason
/// code of a refusal by a rule (with the list and index of a refused
/// batch item), when the status carries one.
pub fn error_json(status: &tonic::Status) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), json!(code_name(status.code())));
    error.insert("message".into(), json!(status.message()));
    if let Some(info) = status
        .get_details_error_info()
        .filter(|i| i.domain == ERROR_DOMAIN)
    {
        error.insert("reason".into(), json!(info.reason));
        if !info.metadata.is_empty() {
            error.insert("metadata".into(), json!(info.metadata));
        }
    }
    Value::Object(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table the docs print: every code has one status, the ones
    /// grpc-gateway names as it names them.
    #[test]
    fn grpc_gateway_table() {
        let expected = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
        ];
        for (code, status) in expected {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }
}
