//! Building and running the insight service: connect, bind, consume, serve gRPC.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use lots_events::Subjects;
use lots_platform::metrics::Metrics;
use lots_platform::retention::{Age, Job};
use lots_platform::service::Service;
use lots_platform::{Clock, Tenants, db, nats};
use lots_proto::v1::case_status_service_server::{CaseStatusServiceServer, SERVICE_NAME as CASE_STATUS};
use lots_proto::v1::dead_letter_service_server::SERVICE_NAME as DEAD_LETTERS;
use lots_proto::v1::report_service_server::{ReportServiceServer, SERVICE_NAME as REPORTS};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::events::Insight;
use crate::grpc::InsightApi;

pub(crate) static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The insight service's Postgres schema.
pub const SCHEMA: &str = "insight";

/// What the insight service runs on; tests build these themselves.
pub struct Parts {
    /// A pool whose `search_path` is the insight schema.
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    pub tenants: Tenants,
    pub grpc_addr: SocketAddr,
    /// What "now" is for reports (a running clock past its due time counts as broken).
    pub clock: Clock,
}

/// Gallring: an ended case's contact, organisation number and company name go once the
/// tenant's `personal_data_days` have passed; its figures stay.
pub fn retention_jobs() -> Vec<Job> {
    vec![Job {
        what: "ended_case_personal_data",
        sql: "UPDATE cases SET org_nr = NULL, contact_name = '', contact_email = '', contact_phone = '',
                  company_name = '', waiting_reason = '', erased = true
              WHERE id IN (SELECT id FROM cases WHERE tenant = $3 AND NOT erased AND ended_at < $1
                           LIMIT $2 FOR UPDATE SKIP LOCKED)",
        age: Age::PersonalData,
    }]
}

/// A built insight service, bound and ready to run.
pub struct App {
    service: Service,
    api: InsightApi,
}

impl App {
    /// Connects to everything `config` names, then builds.
    pub async fn from_config(config: &Config) -> anyhow::Result<App> {
        let parts = connect(config).await?;
        let mut app = Self::from_parts(parts).await?;
        app.service.apply(&config.common).await?;
        Ok(app)
    }

    /// Builds from injected parts: migrates, ensures the stream, binds.
    pub async fn from_parts(parts: Parts) -> anyhow::Result<App> {
        db::migrate(&parts.pool, &MIGRATIONS).await.context("migrate insight schema")?;
        let js = async_nats::jetstream::new(parts.nats.clone());
        nats::ensure_stream(&js, &parts.subjects).await.context("ensure stream")?;
        let listener =
            TcpListener::bind(parts.grpc_addr).await.with_context(|| format!("bind gRPC on {}", parts.grpc_addr))?;
        let mut service = Service::new("insight", parts.pool, parts.nats, parts.subjects, listener, &parts.tenants)?;
        service.retention_jobs.extend(retention_jobs());
        service.consumer_kinds = lots_events::views::INSIGHT.applies.iter().map(|k| k.to_string()).collect();
        let api = InsightApi { pool: service.pool.clone(), tenants: Arc::new(parts.tenants), clock: parts.clock };
        Ok(App { service, api })
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

    /// Serves until `token` is cancelled, then drains like the other services.
    pub async fn run(mut self, token: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let handler = Arc::new(Insight { tenants: self.api.tenants.clone() });
        self.service.spawn_background(&tasks, handler.clone(), &token);
        let letters = self.service.dead_letters(self.service.replayer(handler));
        let routes = tonic::service::Routes::new(CaseStatusServiceServer::new(self.api.clone()))
            .add_service(ReportServiceServer::new(self.api))
            .add_service(letters)
            .add_service(self.service.audit());
        let names = [CASE_STATUS, REPORTS, DEAD_LETTERS];
        self.service.serve(routes, &names, &[lots_proto::v1::FILE_DESCRIPTOR_SET], tasks, token).await
    }
}

/// Connects to Postgres and NATS as `config` says.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Parts> {
    let common = &config.common;
    let tenants = Tenants::load(&common.config).context("load municipality configuration")?;
    let pool = db::connect(&common.database_url, SCHEMA, common.db_pool_size, common.connect_timeout())
        .await
        .context("connect to postgres")?;
    let nats = nats::connect(&common.nats_url, "lots-insight", common.connect_timeout(), common.nats_auth()?.as_ref())
        .await
        .context("connect to nats")?;
    Ok(Parts { pool, nats, subjects: common.subjects()?, tenants, grpc_addr: config.grpc_addr, clock: Clock::system() })
}
