//! The `lots` command line: client commands against a running Lotsen (cases, tasks, meetings,
//! alerts, clocks, complaints, company visits) and `lots dev`, which runs the whole system on one
//! machine.

pub mod args;
pub mod client;
pub mod commands;
pub mod dev;
pub mod exit;
pub mod login;
pub mod output;

pub use args::Cli;

/// Runs `cli` and returns the process exit code (see [`exit`]).
pub async fn run(cli: Cli) -> std::process::ExitCode {
    exit::finish(commands::dispatch(cli).await)
}
