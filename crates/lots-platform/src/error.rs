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

/// An error with its causes, `outer: inner: innermost`, for one log line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Error {
    /// A NATS error from any of async-nats' error kinds.
    pub fn nats(err: impl std::fmt::Display) -> Self {
        Error::Nats(err.to_string())
    }
}
