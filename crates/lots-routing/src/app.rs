//! Building and running routing: connect, bind, serve gRPC, run the tenants' writers, relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use lots_events::Subjects;
use lots_platform::metrics::Metrics;
use lots_platform::retention::{Age, Job};
use lots_platform::service::Service;
use lots_platform::{Clock, Tenants, db, nats};
use lots_proto::v1::officer_service_server::{self, OfficerServiceServer};
use lots_proto::v1::task_service_server::{self, TaskServiceServer};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::grpc::RoutingApi;
use crate::route::Routing;
use crate::watch::Hub;
use crate::writer::Writers;

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

/// Routing's retention jobs, beside the platform's (see `lots_platform::retention`).
pub fn retention_jobs() -> Vec<Job> {
    vec![
        Job {
            what: "task_changes",
            sql: "DELETE FROM task_changes WHERE (tenant, officer_id, seq) IN (
                      SELECT tenant, officer_id, seq FROM task_changes WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::Days(|r| r.task_changes_days),
        },
        Job {
            what: "busy",
            sql: "DELETE FROM busy WHERE id IN (
                      SELECT id FROM busy WHERE during << tstzrange($1, NULL) LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::Days(|r| r.past_busy_days),
        },
        // Gallring: an ended case's company and contact, and the company's links to officers.
        Job {
            what: "ended_case_personal_data",
            sql: "UPDATE cases SET company_name = '(gallrad)', contact_name = '', contact_email = '',
                      company_key = '', erased_at = now()
                  WHERE id IN (
                      SELECT id FROM cases WHERE tenant = $3 AND state = 'ended' AND erased_at IS NULL
                        AND COALESCE(ended_at, registered_at) < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::PersonalData,
        },
        Job {
            what: "ended_case_task_reasons",
            sql: "UPDATE tasks SET reason = '(gallrad)' WHERE id IN (
                      SELECT t.id FROM tasks t JOIN cases c ON c.id = t.case_id
                      WHERE t.tenant = $3 AND c.state = 'ended' AND t.reason IS NOT NULL AND t.reason <> '(gallrad)'
                        AND COALESCE(c.ended_at, c.registered_at) < $1 LIMIT $2 FOR UPDATE OF t SKIP LOCKED)",
            age: Age::PersonalData,
        },
        Job {
            what: "company_links",
            sql: "DELETE FROM company_officers WHERE (tenant, company_key, competence, officer_id) IN (
                      SELECT tenant, company_key, competence, officer_id FROM company_officers
                      WHERE tenant = $3 AND last_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::PersonalData,
        },
    ]
}

/// A built routing service, bound and ready to run.
pub struct App {
    service: Service,
    api: RoutingApi,
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
        let nats =
            nats::connect(&common.nats_url, "lots-routing", common.connect_timeout(), common.nats_auth()?.as_ref())
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
        let mut app = Self::from_parts(parts).await?;
        app.service.apply(common).await?;
        Ok(app)
    }

    /// Builds from injected parts: migrates, ensures the stream, binds. Each tenant's writer
    /// loads its officers when it starts.
    pub async fn from_parts(parts: Parts) -> anyhow::Result<App> {
        db::migrate(&parts.pool, &MIGRATIONS).await.context("migrate routing schema")?;
        let js = async_nats::jetstream::new(parts.nats.clone());
        nats::ensure_stream(&js, &parts.subjects).await.context("ensure stream")?;
        let listener =
            TcpListener::bind(parts.grpc_addr).await.with_context(|| format!("bind gRPC on {}", parts.grpc_addr))?;
        let mut service = Service::new("routing", parts.pool, parts.nats, parts.subjects, listener, &parts.tenants)?;
        service.retention_jobs.extend(retention_jobs());
        let routing = Routing {
            pool: service.pool.clone(),
            nats: service.nats.clone(),
            subjects: service.subjects.clone(),
            tenants: Arc::new(parts.tenants),
            config_dir: parts.config_dir,
            clock: parts.clock,
            relay: service.relay.waker(),
            metrics: service.metrics.clone(),
        };
        let writers = Writers::new(service.nats.clone(), service.subjects.clone());
        let api = RoutingApi {
            routing,
            hub: Hub::default(),
            writers,
            stopping: CancellationToken::new(),
            streams: Default::default(),
        };
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

    /// Serves until `token` is cancelled, then drains like intake.
    pub async fn run(mut self, token: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        self.api.stopping = token.child_token();
        let routing = self.api.routing.clone();
        tasks.spawn(db::scoped(db::SYSTEM, self.api.hub.clone().listen(routing.pool.clone(), token.clone())));
        self.service.spawn_support(&tasks, &token);
        // Routing consumes per tenant: one writer per tenant, each with its own consumer.
        self.service.spawn_critical(
            &tasks,
            "routing writers",
            &token,
            crate::writer::supervise(routing, self.api.writers.clone(), token.clone()),
        );
        let letters = self.service.dead_letters(crate::writer::WriterReplayer(self.api.writers.clone()));
        let routes = tonic::service::Routes::new(TaskServiceServer::new(self.api.clone()))
            .add_service(OfficerServiceServer::new(self.api))
            .add_service(letters)
            .add_service(self.service.audit());
        let names = [
            task_service_server::SERVICE_NAME,
            officer_service_server::SERVICE_NAME,
            lots_proto::v1::dead_letter_service_server::SERVICE_NAME,
        ];
        self.service.serve(routes, &names, &[lots_proto::v1::FILE_DESCRIPTOR_SET], tasks, token).await
    }
}
