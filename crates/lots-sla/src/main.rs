//! `lots-sla`: parse config, start telemetry, run until SIGINT/SIGTERM.

use clap::Parser;
use lots_platform::{shutdown, telemetry};
use lots_sla::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init("lots-sla", config.common.log_format)?;
    let token = shutdown::on_signal();
    let app = App::from_config(&config).await?;
    let grace = config.common.shutdown_grace();
    let stopping = token.clone();
    let run = tokio::spawn(app.run(token));
    stopping.cancelled().await;
    let mut result = Ok(());
    shutdown::bounded(grace, async {
        result = run.await.map_err(anyhow::Error::from).and_then(|r| r);
    })
    .await;
    telemetry.shutdown();
    result
}
