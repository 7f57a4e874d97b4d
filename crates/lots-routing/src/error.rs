//! Routing's errors, and the one place they become gRPC statuses.

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// What a routing operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Platform(#[from] lots_platform::Error),
}

/// Shorthand for routing results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid { field, message } => {
                let details = ErrorDetails::with_bad_request_violation(field, message.clone());
                tonic::Status::with_error_details(Code::InvalidArgument, format!("{field}: {message}"), details)
            }
            Error::NotFound(m) => tonic::Status::not_found(m),
            Error::Precondition(m) => tonic::Status::failed_precondition(m),
            Error::PermissionDenied(m) => tonic::Status::permission_denied(m),
            Error::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            Error::Database(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)) => {
                tracing::error!(error = %e, "database unavailable");
                tonic::Status::unavailable("routing is temporarily unavailable; try again")
            }
            other => {
                let mut chain = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    source = s.source();
                }
                tracing::error!(error = %chain, "internal error");
                tonic::Status::internal("internal error; it has been logged")
            }
        }
    }
}
