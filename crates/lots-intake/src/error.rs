//! Intake's errors, and the one place they become gRPC statuses.

use lots_domain::TransitionError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::validate::Violation;

/// What an intake operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request has invalid fields")]
    Invalid(Vec<Violation>),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "idempotency_key {key:?} was already used for a different request ({reference}); use a new key for a new request"
    )]
    KeyReused { key: String, reference: String },
    #[error("{0}")]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Precondition(String),
    /// The caller's role allows the call, but not on this object.
    #[error("{0}")]
    Forbidden(String),
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Platform(#[from] lots_platform::Error),
    #[error("stored case is inconsistent: {0}")]
    Corrupt(String),
    /// A part of intake that should answer is gone (for example a stopping registration writer).
    #[error("{0}")]
    Unavailable(String),
}

/// Shorthand for intake results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Vec<Violation>> for Error {
    fn from(v: Vec<Violation>) -> Self {
        Error::Invalid(v)
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid(violations) => {
                let summary: Vec<String> =
                    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                tonic::Status::with_error_details(Code::InvalidArgument, summary.join("; "), details)
            }
            Error::NotFound(msg) => tonic::Status::not_found(msg),
            e @ Error::KeyReused { .. } => tonic::Status::already_exists(e.to_string()),
            Error::Transition(e) => tonic::Status::failed_precondition(e.to_string()),
            Error::Precondition(m) => tonic::Status::failed_precondition(m),
            Error::Forbidden(m) => tonic::Status::permission_denied(m),
            Error::Unavailable(m) => tonic::Status::unavailable(m),
            Error::Database(e) if is_unavailable(&e) => {
                tracing::error!(error = %e, "database unavailable");
                tonic::Status::unavailable("the case register is temporarily unavailable; try again")
            }
            other => {
                tracing::error!(error = %lots_platform::error::chain(&other), "internal error");
                tonic::Status::internal("internal error; it has been logged")
            }
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
}
