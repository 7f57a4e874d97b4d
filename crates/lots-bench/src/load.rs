//! End-to-end load: placeholder replaced below.

/// Options of the load benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the benchmark.
pub async fn run(_cli: &crate::Cli, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
