//! Intake, routing, sla and insight in this process: one tokio runtime, one cancellation token, each
//! service with its own Postgres pool on its own schema and its own NATS connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use lots_events::Subjects;
use lots_platform::{Clock, Tenants, db, nats};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Connections each service gets.
const POOL_SIZE: u32 = 8;
/// How long services that did start get to drain when a later one fails to.
const START_FAILED_GRACE: Duration = Duration::from_secs(10);
/// How long to retry Postgres and NATS while they come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the four services run on.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub database_url: String,
    pub nats_url: String,
    /// The services' NATS password when `lots dev` started the server with users.
    pub nats_password: Option<String>,
    pub subjects: Subjects,
    pub tenants: Tenants,
    /// Where routing looks up calendar files named in the configuration.
    pub config_dir: PathBuf,
    pub clock: Clock,
    /// Longest sleep of the sla timer; short when time runs fast.
    pub sla_tick: Duration,
    pub intake: SocketAddr,
    pub routing: SocketAddr,
    pub sla: SocketAddr,
    pub insight: SocketAddr,
    /// The secret company keys are derived from (kept in the state folder, so keys stay stable).
    pub company_keys: lots_domain::CompanyKeys,
}

/// The running services.
pub struct Stack {
    /// Where intake, routing, sla and insight listen.
    pub intake: SocketAddr,
    pub routing: SocketAddr,
    pub sla: SocketAddr,
    pub insight: SocketAddr,
    running: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Stack {
    /// Builds each service (migrations, stream, bind) and starts it under `token`.
    /// When one fails to start, the ones already running are drained before the error returns.
    pub async fn start(cfg: &StackConfig, token: &CancellationToken) -> anyhow::Result<Stack> {
        let mut stack = Stack {
            intake: cfg.intake,
            routing: cfg.routing,
            sla: cfg.sla,
            insight: cfg.insight,
            running: JoinSet::new(),
        };
        match stack.start_each(cfg, token).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                token.cancel();
                for (name, result) in stack.drain(START_FAILED_GRACE).await {
                    if let Err(err) = result {
                        tracing::warn!(service = name, error = %format!("{err:#}"), "stopping after a failed start");
                    }
                }
                Err(e)
            }
        }
    }

    async fn start_each(&mut self, cfg: &StackConfig, token: &CancellationToken) -> anyhow::Result<()> {
        let tenants = cfg.tenants.clone();
        let running = &mut self.running;

        let (pool, nc) = connect(cfg, lots_intake::app::SCHEMA, "lots-dev-intake").await?;
        let intake = lots_intake::App::from_parts(lots_intake::Parts {
            pool,
            nats: nc,
            subjects: cfg.subjects.clone(),
            tenants: tenants.clone(),
            grpc_addr: cfg.intake,
            clock: cfg.clock.clone(),
            company_keys: cfg.company_keys.clone(),
        })
        .await
        .context("start intake")?;
        self.intake = intake.local_addr()?;
        running.spawn(named("intake", intake.run(token.clone())));

        let (pool, nc) = connect(cfg, lots_routing::app::SCHEMA, "lots-dev-routing").await?;
        let routing = lots_routing::App::from_parts(lots_routing::Parts {
            pool,
            nats: nc,
            subjects: cfg.subjects.clone(),
            tenants: tenants.clone(),
            config_dir: cfg.config_dir.clone(),
            grpc_addr: cfg.routing,
            clock: cfg.clock.clone(),
        })
        .await
        .context("start routing")?;
        self.routing = routing.local_addr()?;
        running.spawn(named("routing", routing.run(token.clone())));

        let (pool, nc) = connect(cfg, lots_sla::app::SCHEMA, "lots-dev-sla").await?;
        let sla = lots_sla::App::from_parts(lots_sla::Parts {
            pool,
            nats: nc,
            subjects: cfg.subjects.clone(),
            tenants: tenants.clone(),
            grpc_addr: cfg.sla,
            clock: cfg.clock.clone(),
            tick: cfg.sla_tick,
        })
        .await
        .context("start sla")?;
        self.sla = sla.local_addr()?;
        running.spawn(named("sla", sla.run(token.clone())));

        let (pool, nc) = connect(cfg, lots_insight::app::SCHEMA, "lots-dev-insight").await?;
        let insight = lots_insight::App::from_parts(lots_insight::Parts {
            pool,
            nats: nc,
            subjects: cfg.subjects.clone(),
            tenants,
            grpc_addr: cfg.insight,
            clock: cfg.clock.clone(),
        })
        .await
        .context("start insight")?;
        self.insight = insight.local_addr()?;
        running.spawn(named("insight", insight.run(token.clone())));

        Ok(())
    }

    /// Waits until a service stops by itself (an error) and names it.
    pub async fn first_exit(&mut self) -> Option<(&'static str, anyhow::Result<()>)> {
        match self.running.join_next().await? {
            Ok(done) => Some(done),
            Err(e) => Some(("a service", Err(anyhow::anyhow!("it panicked: {e}")))),
        }
    }

    /// Waits for every service to drain after the token is cancelled, at most `grace`.
    pub async fn drain(&mut self, grace: Duration) -> Vec<(&'static str, anyhow::Result<()>)> {
        let mut done = Vec::new();
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = self.running.join_next().await {
                done.push(match joined {
                    Ok(d) => d,
                    Err(e) => ("a service", Err(anyhow::anyhow!("it panicked: {e}"))),
                });
            }
        })
        .await;
        if drained.is_err() {
            self.running.abort_all();
            done.push(("services", Err(anyhow::anyhow!("did not drain within {grace:?}; aborted"))));
        }
        done
    }
}

async fn named(
    name: &'static str,
    run: impl Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, run.await)
}

async fn connect(
    cfg: &StackConfig,
    schema: &str,
    client_name: &str,
) -> anyhow::Result<(sqlx::PgPool, async_nats::Client)> {
    let pool = db::connect(&cfg.database_url, schema, POOL_SIZE, CONNECT_TIMEOUT)
        .await
        .with_context(|| format!("connect to postgres (schema {schema})"))?;
    let auth = cfg
        .nats_password
        .as_ref()
        .map(|password| nats::NatsAuth { user: Some((schema.to_owned(), password.clone())), ca_file: None });
    let nc =
        nats::connect(&cfg.nats_url, client_name, CONNECT_TIMEOUT, auth.as_ref()).await.context("connect to nats")?;
    Ok((pool, nc))
}

/// Where routing looks up calendar files named in the configuration.
pub fn config_dir(config: &Path) -> PathBuf {
    if config.is_dir() { config.to_owned() } else { config.parent().map(PathBuf::from).unwrap_or_default() }
}
