//! Benchmarks that need the whole system: real NATS JetStream and real PostgreSQL with
//! durable commits. Each run creates its own database and subject prefix and removes them.

pub mod env;
pub mod load;
pub mod monolith;
pub mod report;
pub mod sla_scale;

use std::path::PathBuf;

/// Benchmarks of Lotsen against real servers.
#[derive(Debug, clap::Parser)]
#[command(name = "lots-bench", version)]
pub struct Cli {
    /// PostgreSQL server (no database name): each run creates and drops its own database.
    #[arg(long, env = "LOTS_BENCH_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub database: String,
    /// NATS server with JetStream.
    #[arg(long, env = "LOTS_BENCH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The municipality configuration to load.
    #[arg(long, default_value = "deploy/config")]
    pub config: PathBuf,
    /// Where JSON reports go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// Which benchmark to run.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// One sla process with a million open clocks: memory, lateness of a burst, restart catch-up.
    SlaScale(sla_scale::Args),
    /// Cases per second end to end, latencies, and the machine's limits for this work.
    Load(load::Args),
}

/// Runs the chosen benchmark.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::SlaScale(args) => sla_scale::run(&cli, args).await,
        Command::Load(args) => load::run(&cli, args).await,
    }
}
