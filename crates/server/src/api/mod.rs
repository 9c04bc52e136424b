//! The gRPC edge: tonic services, conversions from protobuf into checked
//! model types, and the one mapping from [`Error`] to `tonic::Status` (a
//! refusal by a rule of the engine carries its reason code there, as a
//! `google.rpc.ErrorInfo` of [`ERROR_DOMAIN`]).
//!
//! The generated types come from `authzd-proto` ([`pb`]); in the server they
//! never pass below this module, whose operations take and return model
//! types. Each RPC is
//! a thin adapter: its request is converted (and refused with
//! INVALID_ARGUMENT naming the field), handed with the guard's call to its
//! operation in [`authzd_service::ops`], and the operation's answer
//! converted back. Every call passes [`CallerLayer`] (the request path's
//! use case, authentication, token kind, per-token bounds, request id,
//! access log), then [`WriteLayer`] (which, on a read replica, forwards
//! writes to the primary); the guard reports each finished call to
//! [`traces`] (a span, when `--otlp-endpoint` is given). [`Follower`] is
//! the replica's client side of `ReplicationService`.
//! Must not contain rules of the model or of a use case: what may be
//! written and what a check answers are decided below this layer, what a
//! use case validates, merges, filters and pages in
//! [`authzd_service::ops`], and what a caller may do in
//! [`authzd_service::auth`].

mod access;
mod audit;
mod convert;
mod directory;
mod follow;
mod forward;
mod guard;
mod health;
mod membership;
mod replication;
mod schema;
pub mod traces;
mod watch;

pub use access::AccessApi;
pub use audit::AuditApi;
pub use directory::DirectoryApi;
pub use follow::Follower;
pub(crate) use follow::{SHARED_NODE, report_lag};
pub use forward::{REVISION_HEADER, WriteLayer};
pub use guard::{CallerLayer, code_name, status_text};
pub use health::HealthApi;
pub use membership::MembershipApi;
pub use replication::ReplicationApi;
pub use schema::SchemaApi;
pub use watch::WatchApi;

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use authzd_core::engine::EngineError;
use authzd_core::limits::MAX_ERROR_MESSAGE_BYTES;
use authzd_core::model::clip;
use authzd_service::Error;
use authzd_service::auth::Refusal;
use authzd_service::watch::WatchError;
use authzd_store::StoreError;

pub use authzd_proto::pb;

/// The `domain` of the `google.rpc.ErrorInfo` that carries a refusal's
/// reason code.
pub const ERROR_DOMAIN: &str = "authzd.dev";

fn engine_code(e: &EngineError) -> Code {
    match e {
        EngineError::NotFound { .. } | EngineError::UnknownRole { .. } => Code::NotFound,
        EngineError::AlreadyExists { .. } => Code::AlreadyExists,
        EngineError::InvalidArgument { .. } => Code::InvalidArgument,
        EngineError::Violation(v) if v.denies_actor() => Code::PermissionDenied,
        EngineError::Violation(_) => Code::FailedPrecondition,
    }
}

/// The one mapping from the service's [`Error`] to a gRPC status.
pub fn status(e: Error) -> Status {
    {
        let code = match &e {
            Error::Engine(inner) | Error::Refused { error: inner, .. } => engine_code(inner),
            Error::InvalidArgument { .. } | Error::Schema(_) => Code::InvalidArgument,
            Error::RevisionMismatch { .. } | Error::RevisionAhead { .. } => {
                Code::FailedPrecondition
            }
            Error::Watch(WatchError::Lagged { .. }) => Code::ResourceExhausted,
            Error::Watch(WatchError::TooOld { .. }) => Code::FailedPrecondition,
            Error::UnknownActor { .. } => Code::NotFound,
            Error::Busy { .. } => Code::ResourceExhausted,
            Error::Stopped => Code::Unavailable,
            Error::ReadOnly => Code::FailedPrecondition,
            Error::SnapshotsBusy { .. } => Code::ResourceExhausted,
            Error::PrimaryUnreachable | Error::NotApplied { .. } => Code::Unavailable,
            Error::Record { .. } => Code::Internal,
            Error::OutOfSequence { .. } => Code::Aborted,
            Error::Watch(WatchError::Ahead { .. }) => Code::OutOfRange,
            Error::Watch(WatchError::Gap { .. }) => Code::Aborted,
            Error::Watch(WatchError::ShuttingDown { .. }) => Code::Unavailable,
            Error::Caller(
                Refusal::Missing | Refusal::Unknown | Refusal::UnsupportedScheme { .. },
            ) => Code::Unauthenticated,
            Error::Caller(Refusal::Busy { .. }) => Code::ResourceExhausted,
            Error::Caller(_) => Code::PermissionDenied,
            Error::Store(e) => match **e {
                StoreError::Conflict { .. } => Code::Aborted,
                StoreError::Unavailable(_) => Code::Unavailable,
                _ => Code::Internal,
            },
            Error::Watch(_) | Error::Open(_) | Error::Task(_) => Code::Internal,
        };
        if code == Code::Internal {
            // Internal detail stays in the log; the client gets a generic message.
            tracing::error!(error = ?e, "internal error");
        }
        // A start-up failure names paths, which are the operator's business.
        let message = match &e {
            Error::Open(_) => "storage failure".to_owned(),
            _ => e.to_string(),
        };
        let message = bounded(message);
        // Only a rule of the engine has a reason code; every other status is
        // its code and message alone.
        let Some(violation) = e.violation() else {
            return Status::new(code, message);
        };
        let mut metadata = HashMap::new();
        if let Error::Refused { list, index, .. } = &e {
            metadata.insert("list".to_owned(), (*list).to_owned());
            metadata.insert("index".to_owned(), index.to_string());
        }
        let info = ErrorDetails::with_error_info(violation.reason(), ERROR_DOMAIN, metadata);
        Status::with_error_details(code, message, info)
    }
}

/// `message`, cut at a character boundary to at most
/// [`MAX_ERROR_MESSAGE_BYTES`] with a note of its full length: a message that
/// quotes its input (a schema's diagnostics, a condition) must never grow a
/// status past what a client's HTTP/2 connection accepts in its trailers.
fn bounded(message: String) -> String {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES {
        return message;
    }
    let note = format!("… (message truncated, {} bytes)", message.len());
    let kept = clip(&message, MAX_ERROR_MESSAGE_BYTES.saturating_sub(note.len()));
    format!("{kept}{note}")
}

/// Shorthand for an INVALID_ARGUMENT naming `field`.
fn invalid(field: impl Into<String>, reason: impl ToString) -> Error {
    Error::InvalidArgument {
        field: field.into(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("short".into()), "short");
        let exact = "a".repeat(MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(bounded(exact.clone()), exact);
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let cut = bounded(long.clone());
        assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.starts_with("éé"));
        assert!(cut.ends_with(&format!("… (message truncated, {} bytes)", long.len())));
    }

    /// A rule's refusal carries its reason code (and, in a batch, the
    /// list and index of the refused item) in an ErrorInfo, under the status code of its
    /// class; the message is the one it always was.
    #[test]
    fn a_violation_carries_its_reason() {
        let violation = authzd_core::engine::Violation::RootScopeFixed;
        let refused = status(Error::Refused {
            list: "operations",
            index: 2,
            error: violation.clone().into(),
        });
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(refused.message(), format!("operations[2]: {violation}"));
        let info = refused.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("ROOT_SCOPE_FIXED", ERROR_DOMAIN)
        );
        let metadata = [("list", "operations"), ("index", "2")];
        assert_eq!(
            info.metadata,
            metadata.map(|(k, v)| (k.to_owned(), v.to_owned())).into()
        );
        let alone = status(Error::Engine(violation.into()));
        let info = alone.get_details_error_info().unwrap();
        assert_eq!(info.reason, "ROOT_SCOPE_FIXED");
        assert!(info.metadata.is_empty());
    }

    #[test]
    fn every_error_becomes_a_bounded_status() {
        let status = status(invalid("schema", "x".repeat(10 << 20)));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(status.message().starts_with("schema: xxx"));
        assert!(status.details().is_empty() && status.metadata().is_empty());
    }
}
