//! The platform's error type.

/// What can go wrong while wiring or running the shared machinery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("database migration")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("nats: {0}")]
    Nats(String),
    #[error("event encoding")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Config(String),
    #[error("telemetry: {0}")]
    Telemetry(String),
}

/// Shorthand for platform results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A NATS error from any of async-nats' error kinds.
    pub fn nats(err: impl std::fmt::Display) -> Self {
        Error::Nats(err.to_string())
    }
}
