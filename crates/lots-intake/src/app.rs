//! Building and running intake: connect, bind, serve gRPC, relay the outbox, follow routing.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use lots_events::Subjects;
use lots_platform::metrics::Metrics;
use lots_platform::service::Service;
use lots_platform::{Clock, Tenants, db, nats};
use lots_proto::v1::complaint_service_server::{ComplaintServiceServer, SERVICE_NAME as COMPLAINTS};
use lots_proto::v1::dead_letter_service_server::SERVICE_NAME as DEAD_LETTERS;
use lots_proto::v1::intake_service_server::{IntakeServiceServer, SERVICE_NAME};
use lots_proto::v1::visit_service_server::{SERVICE_NAME as VISITS, VisitServiceServer};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cases::Cases;
use crate::config::Config;
use crate::events::FollowRouting;
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
    pub clock: Clock,
    /// The secret company keys are derived from (`LOTS_COMPANY_KEY_FILE`).
    pub company_keys: lots_domain::CompanyKeys,
}

/// Intake's gallring job, beside the platform's: a case closed or withdrawn longer ago than
/// the tenant's `[privacy] personal_data_days` loses its organisation number (a personnummer for
/// a sole trader), company name, contact and free text; its reference, type, dates and outcome
/// stay for statistics. Closed complaints and visits whose follow-ups are done lose theirs the
/// same way.
pub fn retention_jobs() -> Vec<lots_platform::retention::Job> {
    vec![
        lots_platform::retention::Job {
            what: "ended_case_personal_data",
            sql: "UPDATE cases SET org_nr = '', company_name = '(gallrad)', contact_name = '', contact_phone = '',
                  contact_email = '', description = '', waiting_reason = NULL, request_fingerprint = '',
                  extension_reason = CASE WHEN extension_reason IS NULL THEN NULL ELSE '(gallrad)' END,
                  decision = CASE WHEN decision IS NULL THEN NULL ELSE '(gallrad)' END, erased_at = now()
              WHERE id IN (
                  SELECT id FROM cases WHERE tenant = $3 AND status IN ('closed', 'withdrawn') AND erased_at IS NULL
                    AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: lots_platform::retention::Age::PersonalData,
        },
        lots_platform::retention::Job {
            what: "closed_complaint_personal_data",
            sql: "UPDATE complaints SET contact_name = '', contact_phone = '', contact_email = '', org_nr = '',
                  company_name = '', description = '(gallrad)', request_fingerprint = '',
                  answer = CASE WHEN answer IS NULL THEN NULL ELSE '(gallrad)' END,
                  action_taken = CASE WHEN action_taken IS NULL THEN NULL ELSE '(gallrad)' END, erased_at = now()
              WHERE id IN (
                  SELECT id FROM complaints WHERE tenant = $3 AND status IN ('answered', 'closed') AND erased_at IS NULL
                    AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: lots_platform::retention::Age::PersonalData,
        },
        // A visit's personal data goes the period after its last change, open follow-ups or not (a
        // follow-up left open for a year is stale); a story the company agreed to publish stays.
        lots_platform::retention::Job {
            what: "visit_personal_data",
            sql: "WITH v AS (
                  UPDATE visits SET org_nr = '', company_name = '(gallrad)', company_participants = '[]',
                      notes = '(gallrad)', request_fingerprint = '',
                      story = CASE WHEN story_consent THEN story ELSE '' END, erased_at = now()
                  WHERE id IN (
                      SELECT id FROM visits WHERE tenant = $3 AND erased_at IS NULL AND updated_at < $1
                      LIMIT $2 FOR UPDATE SKIP LOCKED)
                  RETURNING id)
              UPDATE visit_follow_ups SET what = '(gallrad)',
                  done_note = CASE WHEN done_note IS NULL THEN NULL ELSE '(gallrad)' END
              WHERE visit_id IN (SELECT id FROM v)",
            age: lots_platform::retention::Age::PersonalData,
        },
    ]
}

/// A built intake service, bound and ready to run.
pub struct App {
    service: Service,
    api: IntakeApi,
}

impl App {
    /// Connects to everything `config` names, then builds.
    pub async fn from_config(config: &Config) -> anyhow::Result<App> {
        let common = &config.common;
        // A missing or short secret stops the start before anything connects.
        config.company_keys()?;
        let tenants = Tenants::load(&common.config).context("load municipality configuration")?;
        let pool = db::connect(&common.database_url, SCHEMA, common.db_pool_size, common.connect_timeout())
            .await
            .context("connect to postgres")?;
        let nats =
            nats::connect(&common.nats_url, "lots-intake", common.connect_timeout(), common.nats_auth()?.as_ref())
                .await
                .context("connect to nats")?;
        let parts = Parts {
            pool,
            nats,
            subjects: common.subjects()?,
            tenants,
            grpc_addr: config.grpc_addr,
            clock: lots_platform::Clock::system(),
            company_keys: config.company_keys()?,
        };
        let mut app = Self::from_parts(parts).await?;
        app.service.apply(common).await?;
        Ok(app)
    }

    /// Builds from injected parts: migrates, ensures the stream, binds the listener.
    pub async fn from_parts(parts: Parts) -> anyhow::Result<App> {
        db::migrate(&parts.pool, &MIGRATIONS).await.context("migrate intake schema")?;
        let js = async_nats::jetstream::new(parts.nats.clone());
        nats::ensure_stream(&js, &parts.subjects).await.context("ensure stream")?;
        let listener =
            TcpListener::bind(parts.grpc_addr).await.with_context(|| format!("bind gRPC on {}", parts.grpc_addr))?;
        let mut service = Service::new("intake", parts.pool, parts.nats, parts.subjects, listener, &parts.tenants)?;
        service.retention_jobs.extend(retention_jobs());
        // The consumer receives exactly the event types intake applies.
        service.consumer_kinds = lots_events::views::INTAKE.applies.iter().map(|k| k.to_string()).collect();
        let tenants = Arc::new(parts.tenants);
        let cases = Cases {
            pool: service.pool.clone(),
            subjects: service.subjects.clone(),
            relay: service.relay.waker(),
            clock: parts.clock,
            tenants: tenants.clone(),
            metrics: service.metrics.clone(),
            company_keys: parts.company_keys,
        };
        let in_flight = Arc::new(tokio::sync::Semaphore::new(crate::grpc::MAX_IN_FLIGHT_REGISTRATIONS));
        let registrar = Arc::new(crate::registrar::Registrar::new(cases.clone()));
        Ok(App { service, api: IntakeApi { cases, in_flight, registrar } })
    }

    /// The address gRPC listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.service.listener.local_addr()
    }

    /// Serves gRPC over TLS with this identity (what `LOTS_GRPC_TLS_CERT`/`_KEY` configure).
    pub fn with_grpc_tls(mut self, tls: tonic::transport::ServerTlsConfig) -> Self {
        self.service.tls = Some(tls);
        self
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

    /// Serves until `token` is cancelled, then drains: gRPC stops accepting, in-flight events
    /// finish, the outbox is flushed once more, NATS is drained and the pool closed.
    pub async fn run(mut self, token: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let follow = FollowRouting { clock: self.api.cases.clock.clone() };
        let follow = Arc::new(follow);
        self.service.spawn_background(&tasks, follow.clone(), &token);
        let letters = self.service.dead_letters(self.service.replayer(follow));
        let routes = tonic::service::Routes::new(IntakeServiceServer::new(self.api.clone()))
            .add_service(ComplaintServiceServer::new(self.api.clone()))
            .add_service(VisitServiceServer::new(self.api))
            .add_service(letters)
            .add_service(self.service.audit());
        let names = [SERVICE_NAME, COMPLAINTS, VISITS, DEAD_LETTERS];
        self.service.serve(routes, &names, &[lots_proto::v1::FILE_DESCRIPTOR_SET], tasks, token).await
    }
}
