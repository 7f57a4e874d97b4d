//! What every service runs the same way around its own work: the outbox relay, the event
//! consumer and the metrics endpoint in the background; gRPC with health and reflection in
//! front, every other call verified by the auth layer; and, on cancellation, the drain: gRPC stops, background work finishes, NATS is
//! drained and the pool closed.

use std::sync::Arc;

use anyhow::Context;
use lots_events::Subjects;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;

use crate::Tenants;
use crate::auth::{AuthLayer, Verifier};
use crate::consumer::{self, ConsumerSettings, Handler};
use crate::metrics::{self, Metrics};
use crate::outbox::Relay;
use crate::shutdown;

/// How long one gRPC call may take before it ends with DEADLINE_EXCEEDED.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Calls one client connection may have in flight at once. Above intake's bound on
/// registrations in flight, so a reception behind one connection meets intake's own refusal,
/// which says to retry with the same idempotency key.
pub const MAX_CALLS_PER_CONNECTION: usize = 512;

/// A service's shared wiring, built once its parts are connected.
pub struct Service {
    /// Short name, e.g. "intake": the durable consumer, the log lines, the span prefix.
    pub name: &'static str,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    pub relay: Relay,
    pub metrics: Metrics,
    pub listener: TcpListener,
    pub metrics_listener: Option<TcpListener>,
    /// Events per consumer transaction (see [`ConsumerSettings::batch`]).
    pub consumer_batch: usize,
    /// Parallel consumer lanes (see [`ConsumerSettings::lanes`]).
    pub consumer_lanes: usize,
    /// Event types the consumer applies; empty takes every event (see [`ConsumerSettings::kinds`]).
    pub consumer_kinds: Vec<String>,
    /// Verifies every caller of the gRPC routes.
    pub verifier: Arc<Verifier>,
    /// gRPC over TLS when set.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// A plain-text listener serving only `grpc.health.v1`, for probes that cannot speak TLS
    /// (Kubernetes' native gRPC probes).
    pub health_listener: Option<TcpListener>,
    /// How long old rows are kept, and the jobs that delete them (the platform's tables'; a
    /// service adds its own).
    pub retention: crate::retention::Retention,
    pub retention_jobs: Vec<crate::retention::Job>,
    /// The municipalities served (gallring periods per tenant).
    pub tenants: crate::Tenants,
    /// Why a background task the service cannot live without ended, if one did.
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

/// Watches a background task the service cannot live without: if it ends (returns or panics)
/// while the service is not stopping, the service stops with that failure instead of running on
/// without it (health would still say SERVING), so its supervisor restarts it.
struct Critical {
    name: &'static str,
    token: CancellationToken,
    failed: Arc<std::sync::Mutex<Option<String>>>,
    metrics: Metrics,
    error: Option<String>,
}

impl Drop for Critical {
    fn drop(&mut self) {
        if self.token.is_cancelled() {
            return;
        }
        let why = match (&self.error, std::thread::panicking()) {
            (Some(error), _) => error.clone(),
            (None, true) => "it panicked".to_owned(),
            (None, false) => "it ended".to_owned(),
        };
        tracing::error!(task = self.name, why, "a background task ended; the service stops");
        self.metrics.count(
            "lots_background_task_failures_total",
            "Background tasks (consumer, relay, timer, writers) that ended while the service ran.",
            &[("task", self.name)],
            1.0,
        );
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert_with(|| format!("{} stopped: {why}", self.name));
        self.token.cancel();
    }
}

impl Service {
    /// Wires a service whose gRPC listener is already bound; callers are verified against the
    /// issuers `tenants` configure.
    pub fn new(
        name: &'static str,
        pool: PgPool,
        nats: async_nats::Client,
        subjects: Subjects,
        listener: TcpListener,
        tenants: &Tenants,
    ) -> crate::Result<Self> {
        let verifier = Arc::new(Verifier::new(tenants)?);
        let metrics = Metrics::new(name);
        let js = async_nats::jetstream::new(nats.clone());
        let relay = Relay::new(pool.clone(), js).with_metrics(metrics.clone());
        let defaults = ConsumerSettings::new(name);
        let (consumer_batch, consumer_lanes) = (defaults.batch, defaults.lanes);
        Ok(Service {
            name,
            pool,
            nats,
            subjects,
            relay,
            metrics,
            listener,
            metrics_listener: None,
            consumer_batch,
            consumer_lanes,
            consumer_kinds: defaults.kinds,
            verifier,
            tls: None,
            health_listener: None,
            retention: Default::default(),
            retention_jobs: crate::retention::platform_jobs(),
            tenants: tenants.clone(),
            failed: Arc::default(),
        })
    }

    /// A watch on a background task the service cannot live without (see [`Critical`]).
    fn critical(&self, name: &'static str, token: &CancellationToken) -> Critical {
        Critical { name, token: token.clone(), failed: self.failed.clone(), metrics: self.metrics.clone(), error: None }
    }

    /// Spawns `work` (in the background scope that serves every tenant) as a task the service
    /// cannot live without: if it ends before `token` is cancelled, the service stops.
    pub fn spawn_critical(
        &self,
        tasks: &TaskTracker,
        name: &'static str,
        token: &CancellationToken,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let critical = self.critical(name, token);
        tasks.spawn(crate::db::scoped(crate::db::SYSTEM, async move {
            work.await;
            drop(critical);
        }));
    }

    /// Applies what every service's command line configures the same way: gRPC TLS and the
    /// metrics listener.
    pub async fn apply(&mut self, common: &crate::CommonConfig) -> anyhow::Result<()> {
        self.tls = common.grpc_tls()?;
        self.retention = common.retention.clone();
        if let Some(addr) = common.health_addr {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("bind health on {addr}"))?;
            self.health_listener = Some(listener);
        }
        if let Some(addr) = common.metrics_addr {
            let listener = metrics::bind(addr).await.with_context(|| format!("bind metrics on {addr}"))?;
            self.metrics_listener = Some(listener);
        }
        Ok(())
    }

    /// Starts the relay, the durable consumer feeding `handler`, and the metrics endpoint.
    pub fn spawn_background<H: Handler>(&mut self, tasks: &TaskTracker, handler: Arc<H>, token: &CancellationToken) {
        self.spawn_support(tasks, token);
        let js = async_nats::jetstream::new(self.nats.clone());
        let settings = ConsumerSettings {
            metrics: Some(self.metrics.clone()),
            batch: self.consumer_batch,
            lanes: self.consumer_lanes,
            kinds: self.consumer_kinds.clone(),
            ..ConsumerSettings::new(self.name)
        };
        let (pool, subjects, tok, name) = (self.pool.clone(), self.subjects.clone(), token.clone(), self.name);
        let mut critical = self.critical("consumer", token);
        tasks.spawn(crate::db::scoped(crate::db::SYSTEM, async move {
            let result = consumer::run(pool, js, subjects, settings, handler, tok).await;
            critical.error = result.as_ref().err().map(|e| crate::error::chain(e));
            shutdown::report_exit(name, result);
            drop(critical);
        }));
    }

    /// The `DeadLetterService` of this service's dead-letter table, replaying through `replayer`.
    pub fn dead_letters<R: crate::dead_letters::Replayer>(
        &self,
        replayer: R,
    ) -> lots_proto::v1::dead_letter_service_server::DeadLetterServiceServer<crate::dead_letters::DeadLetterApi<R>>
    {
        let api = crate::dead_letters::DeadLetterApi { pool: self.pool.clone(), replayer: Arc::new(replayer) };
        lots_proto::v1::dead_letter_service_server::DeadLetterServiceServer::new(api)
    }

    /// The `AuditService` of this service's audit log.
    pub fn audit(&self) -> lots_proto::v1::audit_service_server::AuditServiceServer<crate::audit::AuditApi> {
        lots_proto::v1::audit_service_server::AuditServiceServer::new(crate::audit::AuditApi {
            pool: self.pool.clone(),
        })
    }

    /// A replayer that applies dead letters through `handler`, as the consumer does.
    pub fn replayer<H: Handler>(&self, handler: Arc<H>) -> crate::dead_letters::HandlerReplayer<H> {
        crate::dead_letters::HandlerReplayer { pool: self.pool.clone(), handler, view: self.name }
    }

    /// Starts the outbox relay and the metrics endpoint, for a service that consumes events
    /// its own way (routing's per-tenant writers).
    pub fn spawn_support(&mut self, tasks: &TaskTracker, token: &CancellationToken) {
        self.spawn_critical(tasks, "outbox relay", token, self.relay.clone().run(token.clone()));
        tasks.spawn(crate::db::scoped(
            crate::db::SYSTEM,
            crate::retention::run(
                self.pool.clone(),
                self.retention_jobs.clone(),
                self.retention.clone(),
                self.tenants.clone(),
                crate::Clock::system(),
                self.metrics.clone(),
                token.clone(),
            ),
        ));
        let heads = crate::audit::HeadPublisher::new(self.name, self.subjects.clone(), self.relay.waker());
        tasks.spawn(crate::db::scoped(
            crate::db::SYSTEM,
            crate::audit::run_chainer(self.pool.clone(), heads, token.clone()),
        ));
        // Open dead letters as a gauge, for the alert rule that calls an operator.
        let (pool, metrics, stop) = (self.pool.clone(), self.metrics.clone(), token.clone());
        tasks.spawn(crate::db::scoped(crate::db::SYSTEM, async move {
            loop {
                let open = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM dead_letter WHERE status = 'open'")
                    .fetch_one(&pool)
                    .await;
                if let Ok(open) = open {
                    metrics.gauge("lots_dead_letters_open", "Dead letters waiting for an operator.", &[], open as f64);
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
        }));
        if let Some(listener) = self.metrics_listener.take() {
            tasks.spawn(metrics::serve(listener, self.metrics.clone(), token.clone()));
        }
    }

    /// Serves `routes` with health (SERVING for `health_names`) and reflection until `token` is
    /// cancelled, then drains `tasks`, NATS and the pool.
    pub async fn serve(
        self,
        routes: Routes,
        health_names: &[&'static str],
        descriptors: &[&'static [u8]],
        tasks: TaskTracker,
        token: CancellationToken,
    ) -> anyhow::Result<()> {
        tasks.close();
        let addr = self.listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in health_names {
            health.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
        }
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for d in descriptors {
            reflection = reflection.register_encoded_file_descriptor_set(d);
        }
        let reflection = reflection.build_v1().context("build reflection service")?;
        let name = self.name;
        tracing::info!(%addr, "{name} listening (gRPC)");
        if let Some(listener) = self.health_listener {
            tracing::info!(addr = %listener.local_addr()?, "{name} health listening (plain gRPC)");
            let (health_only, stop) = (health_service.clone(), token.clone());
            tasks.spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(health_only)
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned())
                    .await;
                if let Err(err) = served {
                    tracing::warn!(error = %err, "the health listener stopped");
                }
            });
        }
        // Limits: a unary call that takes longer ends DEADLINE_EXCEEDED; each connection has a
        // bounded number of calls in flight (streams stay open; their handlers return at once),
        // and a call past it is refused RESOURCE_EXHAUSTED at once instead of queueing unseen in
        // front of the service's own bounds (intake's in-flight registrations).
        let mut builder = tonic::transport::Server::builder()
            .timeout(REQUEST_TIMEOUT)
            .concurrency_limit_per_connection(MAX_CALLS_PER_CONNECTION)
            .load_shed(true);
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls).context("gRPC TLS certificate and key")?;
        }
        let served = builder
            .layer(AuthLayer::new(self.verifier.clone()).with_audit(self.pool.clone()))
            .trace_fn(move |req| tracing::info_span!("grpc", service = name, path = %req.uri().path()))
            .add_routes(routes.add_service(health_service).add_service(reflection))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), token.clone().cancelled_owned())
            .await;
        token.cancel();
        tasks.wait().await;
        if let Err(err) = self.nats.drain().await {
            tracing::warn!(error = %err, "draining nats failed");
        }
        self.pool.close().await;
        served.context("gRPC server")?;
        if let Some(why) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            anyhow::bail!("{name} stopped because a background task failed: {why}");
        }
        tracing::info!("{name} stopped");
        Ok(())
    }
}
