//! Building and running the sla service: connect, bind, serve gRPC, consume, fire, relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lots_events::Subjects;
use lots_platform::metrics::Metrics;
use lots_platform::retention::{Age, Job};
use lots_platform::service::Service;
use lots_platform::streams::StreamLimits;
use lots_platform::{Clock, Tenants, db, nats};
use lots_proto::v1::alert_service_server::{AlertServiceServer, SERVICE_NAME};
use lots_proto::v1::dead_letter_service_server::SERVICE_NAME as DEAD_LETTERS;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::grpc::AlertApi;
use crate::timer::Sla;
use crate::watch::AlertHub;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The sla service's Postgres schema.
pub const SCHEMA: &str = "sla";

/// What the sla service runs on; tests build these themselves.
pub struct Parts {
    /// A pool whose `search_path` is the sla schema.
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    pub tenants: Tenants,
    pub grpc_addr: SocketAddr,
    pub clock: Clock,
    /// Longest sleep of the timer between looks at due stages (tests with a manual clock use a short one).
    pub tick: Duration,
}

/// The sla service's retention job, beside the platform's: an ended case's clocks, stages and
/// events go once it closed long enough ago and no clock is still open (so do a closed complaint's
/// and a done follow-up's). Its alerts stay.
pub fn retention_jobs() -> Vec<Job> {
    vec![Job {
        what: "ended_cases",
        sql: "WITH old AS (
                  SELECT c.id FROM cases c
                  WHERE EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id
                                  AND e.kind IN ('case.closed', 'case.withdrawn', 'complaint.closed', 'visit.follow_up_done') AND e.at < $1)
                    AND NOT EXISTS (SELECT 1 FROM clocks k WHERE k.case_id = c.id
                                      AND k.state IN ('running', 'paused', 'breached'))
                  LIMIT $2 FOR UPDATE SKIP LOCKED),
              stages_gone AS (DELETE FROM stages WHERE clock_id IN (SELECT k.id FROM clocks k JOIN old ON k.case_id = old.id)),
              clocks_gone AS (DELETE FROM clocks WHERE case_id IN (SELECT id FROM old)),
              events_gone AS (DELETE FROM case_events WHERE case_id IN (SELECT id FROM old))
              DELETE FROM cases WHERE id IN (SELECT id FROM old)",
        age: Age::Days(|r| r.ended_case_days),
    }]
}

/// A built sla service, bound and ready to run.
pub struct App {
    service: Service,
    sla: Sla,
}

impl App {
    /// Connects to everything `config` names, then builds.
    pub async fn from_config(config: &Config) -> anyhow::Result<App> {
        let common = &config.common;
        let tenants = Tenants::load(&common.config).context("load municipality configuration")?;
        let pool = db::connect(&common.database_url, SCHEMA, common.db_pool_size, common.connect_timeout())
            .await
            .context("connect to postgres")?;
        let nats = nats::connect(&common.nats_url, "lots-sla", common.connect_timeout(), common.nats_auth()?.as_ref())
            .await
            .context("connect to nats")?;
        let parts = Parts {
            pool,
            nats,
            subjects: common.subjects()?,
            tenants,
            grpc_addr: config.grpc_addr,
            clock: Clock::system(),
            tick: Duration::from_secs(1),
        };
        let mut app = Self::from_parts(parts).await?;
        app.service.apply(common).await?;
        Ok(app)
    }

    /// Builds from injected parts: migrates, ensures the stream, binds.
    pub async fn from_parts(parts: Parts) -> anyhow::Result<App> {
        db::migrate(&parts.pool, &MIGRATIONS).await.context("migrate sla schema")?;
        let js = async_nats::jetstream::new(parts.nats.clone());
        nats::ensure_stream(&js, &parts.subjects).await.context("ensure stream")?;
        let listener =
            TcpListener::bind(parts.grpc_addr).await.with_context(|| format!("bind gRPC on {}", parts.grpc_addr))?;
        let mut service = Service::new("sla", parts.pool, parts.nats, parts.subjects, listener, &parts.tenants)?;
        service.retention_jobs.extend(retention_jobs());
        // The consumer receives exactly the event types sla applies.
        service.consumer_kinds = lots_events::views::SLA.applies.iter().map(|k| k.to_string()).collect();
        let sla = Sla {
            pool: service.pool.clone(),
            subjects: service.subjects.clone(),
            tenants: Arc::new(parts.tenants),
            clock: parts.clock,
            relay: service.relay.waker(),
            wake: Arc::new(Notify::new()),
            tick: parts.tick,
            metrics: service.metrics.clone(),
            js: async_nats::jetstream::new(service.nats.clone()),
            durable: service.name.to_owned(),
        };
        Ok(App { service, sla })
    }

    /// The address gRPC listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.service.listener.local_addr()
    }

    /// Serves Prometheus metrics on `listener` while running.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.service.metrics_listener = Some(listener);
        self
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.service.metrics
    }

    /// Serves until `token` is cancelled, then drains like intake.
    pub async fn run(mut self, token: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        self.service.spawn_critical(&tasks, "sla timer", &token, self.sla.clone().run_timer(token.clone()));
        let handler = Arc::new(self.sla.clone());
        self.service.spawn_background(&tasks, handler.clone(), &token);
        let letters = self.service.dead_letters(self.service.replayer(handler));
        let hub = AlertHub::default();
        tasks.spawn(db::scoped(db::SYSTEM, hub.clone().run(self.sla.pool.clone(), token.clone())));
        let routes = tonic::service::Routes::new(AlertServiceServer::new(AlertApi {
            sla: self.sla,
            stopping: token.child_token(),
            hub,
            streams: StreamLimits::default(),
        }))
        .add_service(letters)
        .add_service(self.service.audit());
        let names = [SERVICE_NAME, DEAD_LETTERS];
        self.service.serve(routes, &names, &[lots_proto::v1::FILE_DESCRIPTOR_SET], tasks, token).await
    }
}
