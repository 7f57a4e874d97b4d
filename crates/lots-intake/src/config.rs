//! Intake's configuration.

use std::net::SocketAddr;

use lots_platform::CommonConfig;

/// Flags and `LOTS_*` variables of `lots-intake`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "lots-intake", version, about = "Lotsen intake: registers company cases (gRPC IntakeService)")]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address the gRPC server listens on.
    #[arg(long, env = "LOTS_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
}
