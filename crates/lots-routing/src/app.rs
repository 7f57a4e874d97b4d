//! Building and running routing: connect, load officers, bind, serve gRPC, consume, relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use lots_events::Subjects;
use lots_platform::consumer::{self, ConsumerSettings};
use lots_platform::metrics::{self, Metrics};
use lots_platform::outbox::Relay;
use lots_platform::{Clock, Tenants, db, nats, shutdown};
use lots_proto::v1::officer_service_server::OfficerServiceServer;
use lots_proto::v1::task_service_server::TaskServiceServer;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::events::DURABLE;
use crate::grpc::RoutingApi;
use crate::route::Routing;
use crate::watch::Hub;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Routing's Postgres schema.
pub const SCHEMA: &str = "routing";

/// What routing runs on; tests build these themselves.
pub struct Parts {
    /// A pool whose `search_path` is routing's schema.
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    pub tenants: Tenants,
    /// Where calendar files named in the configuration are looked up.
    pub config_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub clock: Clock,
}

/// A built routing service, bound and ready to run.
pub struct App {
    listener: TcpListener,
    api: RoutingApi,
    relay: Relay,
    nats: async_nats::Client,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
}

impl App {
    /// Connects to everything `config` names, then builds.
    pub async fn from_config(config: &Config) -> anyhow::Result<App> {
        let common = &config.common;
        let tenants = Tenants::load(&common.config).context("load municipality configuration")?;
        let config_dir = if common.config.is_dir() {
            common.config.clone()
        } else {
            common.config.parent().map(PathBuf::from).unwrap_or_default()
        };
        let pool = db::connect(&common.database_url, SCHEMA, common.db_pool_size, common.connect_timeout())
            .await
            .context("connect to postgres")?;
        let nats = nats::connect(&common.nats_url, "lots-routing", common.connect_timeout())
            .await
            .context("connect to nats")?;
        let parts = Parts {
            pool,
            nats,
            subjects: common.subjects()?,
            tenants,
            config_dir,
            grpc_addr: config.grpc_addr,
            clock: Clock::system(),
        };
        let app = Self::from_parts(parts).await?;
        match common.metrics_addr {
            Some(addr) => {
                let listener = metrics::bind(addr).await.with_context(|| format!("bind metrics on {addr}"))?;
                Ok(app.with_metrics_listener(listener))
            }
            None => Ok(app),
        }
    }

    /// Builds from injected parts: migrates, loads officers, ensures the stream, binds.
    pub async fn from_parts(parts: Parts) -> anyhow::Result<App> {
        db::migrate(&parts.pool, &MIGRATIONS).await.context("migrate routing schema")?;
        crate::officers::sync(&parts.pool, &parts.tenants, &parts.config_dir, parts.clock.now())
            .await
            .context("load officers")?;
        let js = async_nats::jetstream::new(parts.nats.clone());
        nats::ensure_stream(&js, &parts.subjects).await.context("ensure stream")?;
        let listener =
            TcpListener::bind(parts.grpc_addr).await.with_context(|| format!("bind gRPC on {}", parts.grpc_addr))?;
        let metrics = Metrics::new("routing");
        let relay = Relay::new(parts.pool.clone(), js).with_metrics(metrics.clone());
        let routing = Routing {
            pool: parts.pool,
            subjects: parts.subjects,
            tenants: Arc::new(parts.tenants),
            clock: parts.clock,
            relay: relay.waker(),
            metrics: metrics.clone(),
        };
        Ok(App {
            listener,
            api: RoutingApi { routing, hub: Hub::default() },
            relay,
            nats: parts.nats,
            metrics,
            metrics_listener: None,
        })
    }

    /// The address gRPC listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves Prometheus metrics on `listener` while running.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves until `token` is cancelled, then drains like intake.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let routing = self.api.routing.clone();
        let tasks = TaskTracker::new();
        tasks.spawn(self.relay.clone().run(token.clone()));
        tasks.spawn(self.api.hub.clone().listen(routing.pool.clone(), token.clone()));
        let js = async_nats::jetstream::new(self.nats.clone());
        let consumer_metrics = self.metrics.clone();
        let (handler, tok) = (Arc::new(routing.clone()), token.clone());
        tasks.spawn(async move {
            let settings = ConsumerSettings { metrics: Some(consumer_metrics), ..ConsumerSettings::new(DURABLE) };
            let result =
                consumer::run(handler.pool.clone(), js, handler.subjects.clone(), settings, handler, tok).await;
            shutdown::report_exit("routing consumer", result);
        });
        if let Some(listener) = self.metrics_listener {
            tasks.spawn(metrics::serve(listener, self.metrics.clone(), token.clone()));
        }
        tasks.close();

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<TaskServiceServer<RoutingApi>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lots_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("build reflection service")?;
        tracing::info!(%addr, "routing listening (gRPC)");
        let served = tonic::transport::Server::builder()
            .trace_fn(|req| tracing::info_span!("routing.grpc", path = %req.uri().path()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(TaskServiceServer::new(self.api.clone()))
            .add_service(OfficerServiceServer::new(self.api))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), token.clone().cancelled_owned())
            .await;
        token.cancel();
        tasks.wait().await;
        if let Err(err) = self.nats.drain().await {
            tracing::warn!(error = %err, "draining nats failed");
        }
        routing.pool.close().await;
        served.context("gRPC server")?;
        tracing::info!("routing stopped");
        Ok(())
    }
}
