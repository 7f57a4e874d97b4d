//! Errors of the gRPC services built on the platform (routing, sla), and the one place they
//! become gRPC statuses.

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// What an operation of a service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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
    Platform(#[from] crate::Error),
}

/// Shorthand for service results.
pub type ApiResult<T, E = ApiError> = std::result::Result<T, E>;

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Invalid { field, message } => {
                let details = ErrorDetails::with_bad_request_violation(field, message.clone());
                tonic::Status::with_error_details(Code::InvalidArgument, format!("{field}: {message}"), details)
            }
            ApiError::NotFound(m) => tonic::Status::not_found(m),
            ApiError::Precondition(m) => tonic::Status::failed_precondition(m),
            ApiError::PermissionDenied(m) => tonic::Status::permission_denied(m),
            ApiError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            ApiError::Platform(crate::Error::Nats(m)) => {
                tracing::warn!(error = %m, "messaging unavailable");
                tonic::Status::unavailable(m)
            }
            ApiError::Database(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)) => {
                tracing::error!(error = %e, "database unavailable");
                tonic::Status::unavailable("the service is temporarily unavailable; try again")
            }
            other => {
                tracing::error!(error = %crate::error::chain(&other), "internal error");
                tonic::Status::internal("internal error; it has been logged")
            }
        }
    }
}
