//! Lotsen's four services in one binary, for the fault tests, which run them as processes so
//! they can SIGKILL them: `lots-e2e-service <intake|routing|sla|insight> [its flags]`. Each runs
//! exactly as its own binary does (configuration from flags and `LOTS_*` variables, drain on
//! SIGTERM); built beside the tests, so `cargo nextest run` always has it.

use clap::Parser as _;
use lots_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let service = args.next().unwrap_or_default();
    let rest = args.collect::<Vec<_>>();
    let argv = |name: &str| std::iter::once(name.to_owned()).chain(rest.iter().cloned()).collect::<Vec<_>>();
    // Each arm is what that service's own `main` does.
    macro_rules! run {
        ($krate:ident, $name:literal) => {{
            let config = $krate::Config::parse_from(argv($name));
            let telemetry = telemetry::init($name, config.common.log_format)?;
            let app = $krate::App::from_config(&config).await?;
            let result = shutdown::run_until_signal(config.common.shutdown_grace(), |t| app.run(t)).await;
            telemetry.shutdown();
            result
        }};
    }
    match service.as_str() {
        "intake" => run!(lots_intake, "lots-intake"),
        "routing" => run!(lots_routing, "lots-routing"),
        "sla" => run!(lots_sla, "lots-sla"),
        "insight" => run!(lots_insight, "lots-insight"),
        other => anyhow::bail!("usage: {program} <intake|routing|sla|insight> [flags]; `{other}` is not a service"),
    }
}
