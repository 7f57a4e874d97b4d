//! Configuration every service shares, from flags and `LOTS_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use lots_events::Subjects;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Settings shared by intake, routing and sla; flatten it into each service's `Config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonConfig {
    /// PostgreSQL URL; the service keeps its tables in its own schema.
    #[arg(
        long,
        env = "LOTS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/lots",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Largest number of Postgres connections.
    #[arg(long, env = "LOTS_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
    /// NATS server with JetStream; several (a cluster's nodes) separated by commas.
    #[arg(long, env = "LOTS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Copies of the event stream when the service creates it: 3 on a three-node JetStream
    /// cluster (one node may fail), 1 on a single server.
    #[arg(long, env = "LOTS_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,
    /// The service's NATS user (each service has its own, allowed only its subjects).
    #[arg(long, env = "LOTS_NATS_USER")]
    pub nats_user: Option<String>,
    /// A file holding that user's password (a mounted secret); never logged.
    #[arg(long, env = "LOTS_NATS_PASSWORD_FILE")]
    pub nats_password_file: Option<PathBuf>,
    /// Municipality configuration: one TOML file, or a folder of them.
    #[arg(long, env = "LOTS_CONFIG", default_value = "deploy/config")]
    pub config: PathBuf,
    /// Prefix for every subject and the stream name; empty in production.
    #[arg(long, env = "LOTS_SUBJECT_PREFIX", default_value = "")]
    pub subject_prefix: String,
    /// Log format.
    #[arg(long, env = "LOTS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Seconds to drain work after SIGINT/SIGTERM before giving up.
    #[arg(long, env = "LOTS_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Address for Prometheus metrics (`GET /metrics`); none when unset.
    #[arg(long, env = "LOTS_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Address of a plain-text gRPC listener with only `grpc.health.v1` (for probes when gRPC
    /// uses TLS); none when unset.
    #[arg(long, env = "LOTS_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
    /// PEM certificate (chain) for gRPC over TLS; with `--grpc-tls-key`. Unset: plain HTTP/2.
    #[arg(long, env = "LOTS_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key for `--grpc-tls-cert` (a mounted secret).
    #[arg(long, env = "LOTS_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for NATS over TLS (`tls://` URLs), beside the system's.
    #[arg(long, env = "LOTS_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// Seconds to keep retrying Postgres and NATS at start.
    #[arg(long, env = "LOTS_CONNECT_TIMEOUT_SECS", default_value_t = 30)]
    pub connect_timeout_secs: u64,
    #[command(flatten)]
    pub retention: crate::retention::Retention,
}

impl CommonConfig {
    /// The subject builder for the configured prefix.
    pub fn subjects(&self) -> crate::Result<Subjects> {
        let subjects = Subjects::new(&self.subject_prefix).map_err(|e| crate::Error::Config(e.to_string()))?;
        Ok(subjects.with_replicas(self.stream_replicas.into()))
    }

    /// How long shutdown may take.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The gRPC server's TLS identity, if a certificate is configured.
    pub fn grpc_tls(&self) -> crate::Result<Option<tonic::transport::ServerTlsConfig>> {
        let (Some(cert), Some(key)) = (&self.grpc_tls_cert, &self.grpc_tls_key) else { return Ok(None) };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| crate::Error::Config(format!("gRPC TLS file {}: {e}", p.display())))
        };
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        Ok(Some(tonic::transport::ServerTlsConfig::new().identity(identity)))
    }

    /// How to identify to NATS: the user (with its password file) and extra CA certificates.
    pub fn nats_auth(&self) -> crate::Result<Option<crate::nats::NatsAuth>> {
        let user = match &self.nats_user {
            None => None,
            Some(user) => {
                let file = self.nats_password_file.as_ref().ok_or_else(|| {
                    crate::Error::Config("LOTS_NATS_USER is set: give its password in LOTS_NATS_PASSWORD_FILE".into())
                })?;
                let password = std::fs::read_to_string(file)
                    .map_err(|e| crate::Error::Config(format!("LOTS_NATS_PASSWORD_FILE {}: {e}", file.display())))?;
                Some((user.clone(), password.trim().to_owned()))
            }
        };
        let auth = crate::nats::NatsAuth { user, ca_file: self.nats_ca_file.clone() };
        Ok((auth.user.is_some() || auth.ca_file.is_some()).then_some(auth))
    }

    /// How long to retry dependencies at start.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}
