//! Lotsen insight: the read side. It owns no facts: it follows case, task, meeting and
//! complaint events and keeps read models in its own schema — what a company sees of its case,
//! how often the servicegaranti was kept (per unit, case type, commitment and month, with
//! reasons), the SKR Insikt case list and the survey's NKI. The models can be dropped and
//! rebuilt from the stream with identical results.

pub mod app;
pub mod config;
pub mod events;
pub mod grpc;
pub mod insikt;
pub mod rebuild;
pub mod report;
pub mod store;

pub use app::{App, Parts};
pub use config::Config;
