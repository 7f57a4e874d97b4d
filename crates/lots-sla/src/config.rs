//! The sla service's configuration.

use std::net::SocketAddr;

use lots_platform::CommonConfig;

/// Flags and `LOTS_*` variables of `lots-sla`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "lots-sla", version, about = "Lotsen sla: servicegaranti clocks and alerts (gRPC AlertService)")]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address the gRPC server listens on.
    #[arg(long, env = "LOTS_GRPC_ADDR", default_value = "127.0.0.1:50053")]
    pub grpc_addr: SocketAddr,
}
