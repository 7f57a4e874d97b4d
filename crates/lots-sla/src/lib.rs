//! Lotsen sla: enforces the servicegaranti. Clocks start, pause, resume and stop from case
//! events on a Swedish working-day calendar; warnings, breaches and escalations fire on time,
//! exactly once, also across restarts; managers watch them as a gRPC stream.

pub mod app;
pub mod clocks;
pub mod config;
pub mod error;
pub mod events;
pub mod grpc;
pub mod timer;
pub mod watch;

pub use app::{App, Parts};
pub use config::Config;
