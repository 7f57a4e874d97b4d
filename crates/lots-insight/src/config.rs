//! The insight service's configuration.

use std::net::SocketAddr;

use lots_platform::CommonConfig;

/// Flags and `LOTS_*` variables of `lots-insight`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "lots-insight",
    version,
    about = "Lotsen insight: the read side (gRPC CaseStatusService and ReportService)"
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address the gRPC server listens on.
    #[arg(long, env = "LOTS_GRPC_ADDR", default_value = "127.0.0.1:50054")]
    pub grpc_addr: SocketAddr,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Drop the read models and rebuild them from the stream, then exit.
    Rebuild {
        /// Rebuild even though the stream no longer holds its oldest events (figures from
        /// before them are lost).
        #[arg(long)]
        allow_partial: bool,
    },
}
