//! `lots dev`: Lotsen on one machine.

use crate::args::DevArgs;

/// Runs the local stack until Ctrl-C.
pub async fn run(_args: DevArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
