//! Routing's configuration.

use std::net::SocketAddr;

use lots_platform::CommonConfig;

/// Flags and `LOTS_*` variables of `lots-routing`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "lots-routing", version, about = "Lotsen routing: dukat bord and live task lists (gRPC TaskService)")]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address the gRPC server listens on.
    #[arg(long, env = "LOTS_GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub grpc_addr: SocketAddr,
}
