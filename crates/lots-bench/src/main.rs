//! `lots-bench`: measure what one Lotsen installation carries (see BENCHMARKS.md).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = lots_bench::Cli::parse();
    lots_bench::run(cli).await
}
