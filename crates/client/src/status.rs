//! A gRPC status as a person reads it, in messages, logs and metrics'
//! labels: the code as gRPC names it (`NOT_FOUND`), then the message. Must
//! not interpret the status beyond its code.

use tonic::Code;

/// A status as a person reads it: the code as gRPC names it, then the
/// message (`NOT_FOUND: tenant "t1" not found`).
pub fn status_text(status: &tonic::Status) -> String {
    format!("{}: {}", code_name(status.code()), status.message())
}

/// A status code as gRPC names it (`OK`, `NOT_FOUND`, …): in metrics'
/// labels, spans and messages.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
