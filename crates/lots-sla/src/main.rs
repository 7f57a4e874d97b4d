//! `lots-sla`: parse config, start telemetry, run until SIGINT/SIGTERM, flush telemetry last.

use clap::Parser;
use lots_platform::{shutdown, telemetry};
use lots_sla::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init("lots-sla", config.common.log_format)?;
    let app = App::from_config(&config).await?;
    let result = shutdown::run_until_signal(config.common.shutdown_grace(), |token| app.run(token)).await;
    telemetry.shutdown();
    result
}
