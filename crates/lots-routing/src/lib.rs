//! Lotsen routing: turns a registered case into seats at a dukat bord, picks an officer per
//! seat, finds the earliest common slot, and feeds each handläggare a live task list.

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
pub mod lease;
pub mod officers;
pub mod plan;
pub mod route;
pub mod state;
pub mod store;
pub mod watch;
pub mod writer;

pub use app::{App, Parts};
pub use config::Config;
