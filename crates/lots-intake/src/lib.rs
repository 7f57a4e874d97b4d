//! Lotsen intake: reception registers a company case over gRPC; intake validates it, stores it
//! in PostgreSQL and announces it on NATS JetStream, and owns the case's lifecycle.

pub mod app;
pub mod cases;
pub mod complaints;
pub mod config;
pub mod error;
pub mod events;
pub mod grpc;
pub mod registers;
pub mod registrar;
pub mod store;
pub mod validate;
pub mod visits;

pub use app::{App, Parts};
pub use config::Config;
