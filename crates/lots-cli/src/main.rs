//! `lots`: parse the command line, run it, exit with a code scripts can trust.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    lots_cli::run(lots_cli::Cli::parse()).await
}
