//! Building and running intake: connect, bind, serve gRPC, relay the outbox, follow routing.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use lots_events::Subjects;
use lots_platform::consumer::{self, ConsumerSettings};
use lots_platform::metrics::{self, Metrics};
use lots_platform::outbox::Relay;
use lots_platform::{Tenants, db, nats, shutdown};
use lots_proto::v1::intake_service_server::IntakeServiceServer;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cases::Cases;
use crate::config::Config;
use crate::events::{DURABLE, FollowRouting};
use crate::grpc::IntakeApi;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Intake's Postgres schema.
pub const SCHEMA: &str = "intake";

/// What intake runs on; tests build these themselves.
pub struct Parts {
    /// A pool whose `search_path` is intake's schema (see [`lots_platform::db::connect`]).
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    pub tenants: Tenants,
    pub grpc_addr: SocketAddr,
    pub clock: lots_platform::Clock,
}

/// A built intake, bound and ready to run.
pub struct App {
    listener: TcpListener,
    api: IntakeApi,
    relay: Relay,
    parts_pool: PgPool,
    nats: async_nats::Client,
    subjects: Subjects,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
}

impl App {
    /// Connects to everything `config` names, then builds.
    pub async fn from_config(config: &Config) -> anyhow::Result<App> {
        let common = &config.common;
        let tenants = Tenants::load(&common.config).context("load municipality configuration")?;
        let pool = db::connect(&common.database_url, SCHEMA, common.db_pool_size, common.connect_timeout())
            .await
            .context("connect to postgres")?;
        let nats = nats::connect(&common.nats_url, "lots-intake", common.connect_timeout())
            .await
            .context("connect to nats")?;
        let parts = Parts {
            pool,
            nats,
            subjects: common.subjects()?,
            tenants,
            grpc_addr: config.grpc_addr,
            clock: lots_platform::Clock::system(),
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

    /// Builds from injected parts: migrates, ensures the stream, binds the listener.
    pub async fn from_parts(parts: Parts) -> anyhow::Result<App> {
        db::migrate(&parts.pool, &MIGRATIONS).await.context("migrate intake schema")?;
        let js = async_nats::jetstream::new(parts.nats.clone());
        nats::ensure_stream(&js, &parts.subjects).await.context("ensure stream")?;
        let listener =
            TcpListener::bind(parts.grpc_addr).await.with_context(|| format!("bind gRPC on {}", parts.grpc_addr))?;
        let metrics = Metrics::new("intake");
        let relay = Relay::new(parts.pool.clone(), js).with_metrics(metrics.clone());
        let tenants = Arc::new(parts.tenants);
        let cases = Cases {
            pool: parts.pool.clone(),
            subjects: parts.subjects.clone(),
            relay: relay.waker(),
            clock: parts.clock,
            tenants: tenants.clone(),
            metrics: metrics.clone(),
        };
        let api = IntakeApi { cases, tenants };
        Ok(App { listener, api, relay, parts_pool: parts.pool, nats: parts.nats, subjects: parts.subjects, metrics, metrics_listener: None })
    }

    /// The address gRPC listens on (useful with port 0).
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


    /// Serves until `token` is cancelled, then drains: gRPC stops accepting, in-flight events
    /// finish, the outbox is flushed once more, NATS is drained and the pool closed.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let tasks = TaskTracker::new();
        tasks.spawn(self.relay.clone().run(token.clone()));
        let js = async_nats::jetstream::new(self.nats.clone());
        let consumer_metrics = self.metrics.clone();
        let (pool, subjects, tok) = (self.parts_pool.clone(), self.subjects.clone(), token.clone());
        let clock = self.api.cases.clock.clone();
        tasks.spawn(async move {
            let settings = ConsumerSettings { metrics: Some(consumer_metrics), ..ConsumerSettings::new(DURABLE) };
            let result = consumer::run(pool, js, subjects, settings, Arc::new(FollowRouting { clock }), tok).await;
            shutdown::report_exit("intake consumer", result);
        });
        if let Some(listener) = self.metrics_listener {
            tasks.spawn(metrics::serve(listener, self.metrics.clone(), token.clone()));
        }
        tasks.close();

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<IntakeServiceServer<IntakeApi>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lots_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("build reflection service")?;
        tracing::info!(%addr, "intake listening (gRPC)");
        let served = tonic::transport::Server::builder()
            .trace_fn(|req| tracing::info_span!("intake.grpc", path = %req.uri().path()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(IntakeServiceServer::new(self.api))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), token.clone().cancelled_owned())
            .await;
        token.cancel();
        tasks.wait().await;
        if let Err(err) = self.nats.drain().await {
            tracing::warn!(error = %err, "draining nats failed");
        }
        self.parts_pool.close().await;
        served.context("gRPC server")?;
        tracing::info!("intake stopped");
        Ok(())
    }
}
