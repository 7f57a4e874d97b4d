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
    /// A file holding the secret (at least 32 bytes) that company keys are derived from: events
    /// carry a keyed hash of the organisation number, never the number. Keep it stable: a new
    /// secret gives every company a new key.
    #[arg(long, env = "LOTS_COMPANY_KEY_FILE")]
    pub company_key_file: std::path::PathBuf,
}

impl Config {
    /// The company keys from `company_key_file`.
    pub fn company_keys(&self) -> anyhow::Result<lots_domain::CompanyKeys> {
        let path = &self.company_key_file;
        let secret =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("LOTS_COMPANY_KEY_FILE {}: {e}", path.display()))?;
        lots_domain::CompanyKeys::new(&secret)
            .map_err(|e| anyhow::anyhow!("LOTS_COMPANY_KEY_FILE {}: {e}", path.display()))
    }
}
