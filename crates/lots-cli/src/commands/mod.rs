//! Client commands against a running Lotsen, one module per service area.

pub mod admin;
pub mod alerts;
pub mod case;
pub mod clocks;
pub mod complaint;
pub mod meeting;
pub mod report;
pub mod status;
pub mod tasks;
pub mod visit;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Case(c) => case::run(global, c).await,
        Command::Tasks(c) => tasks::run(global, c).await,
        Command::Meeting(c) => meeting::run(global, c).await,
        Command::Alerts(c) => alerts::run(global, c).await,
        Command::Complaint(c) => complaint::run(global, c).await,
        Command::Visit(c) => visit::run(global, c).await,
        Command::Clocks { case } => clocks::run(global, &case).await,
        Command::Status { case } => status::run(global, &case).await,
        Command::Report(c) => report::run(global, c).await,
        Command::Admin(c) => admin::run(global, c).await,
        Command::Audit(c) => admin::audit(global, c).await,
        Command::Dev(args) => crate::dev::run(args).await,
        Command::Login(args) => crate::login::login(args).await,
        Command::Logout => crate::login::logout(),
    }
}
