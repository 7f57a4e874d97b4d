//! `lots-insight`: parse config, start telemetry, serve (or rebuild) until SIGINT/SIGTERM.

use clap::Parser;
use lots_insight::{App, Config, config::Command};
use lots_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init("lots-insight", config.common.log_format)?;
    let result = match config.command {
        Some(Command::Rebuild { allow_partial }) => lots_insight::rebuild::run(&config, allow_partial).await,
        None => {
            let app = App::from_config(&config).await?;
            shutdown::run_until_signal(config.common.shutdown_grace(), |token| app.run(token)).await
        }
    };
    telemetry.shutdown();
    result
}
