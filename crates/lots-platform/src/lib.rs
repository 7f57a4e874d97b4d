//! What every Lotsen service wires the same way: config, telemetry, Postgres, NATS, the
//! transactional outbox and its relay, the inbox consumer, and graceful shutdown.
//!
//! It holds no business logic.

pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letters;
pub mod error;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod retention;
pub mod service;
pub mod shutdown;
pub mod streams;
pub mod telemetry;
pub mod tenants;

pub use clock::Clock;
pub use config::CommonConfig;
pub use error::{Error, Result};
pub use tenants::Tenants;
