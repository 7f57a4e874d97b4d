//! One `TestApp` per test: its own database, subject prefix and (where needed) NATS server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use lots_events::{Envelope, Payload, Subjects};
use lots_intake::{App, Parts};
use lots_platform::auth::{AuthedChannel, Bearer};
use lots_platform::{Clock, Tenants, db};
use lots_proto::v1 as pb;
pub use lots_testkit::Who;
use lots_testkit::{TestDb, TestNats, TestOidc};
use pb::intake_service_client::IntakeServiceClient;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub const NKP: &str = "0581";

/// Registers as reception's client does: a refusal for load (RESOURCE_EXHAUSTED) is retried
/// shortly with the same request and key.
pub async fn register_retrying(
    client: &mut IntakeClient,
    req: pb::RegisterCaseRequest,
) -> Result<pb::Case, tonic::Status> {
    for _ in 0..500 {
        match client.register_case(req.clone()).await {
            Err(e) if e.code() == tonic::Code::ResourceExhausted => tokio::time::sleep(Duration::from_millis(20)).await,
            answer => return answer.map(|r| r.into_inner()),
        }
    }
    panic!("intake stayed at capacity for 10 s")
}

/// The example municipality configuration shipped in `deploy/config`.
pub fn example_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/config")
}

/// A running intake with its own database and subject prefix.
pub struct TestApp {
    pub nats: TestNats,
    pub db: TestDb,
    pub subjects: Subjects,
    pub pool: PgPool,
    pub js: jetstream::Context,
    /// Intake as Norrköping's reception.
    pub client: IntakeClient,
    /// The OpenID provider every service trusts, one issuer per tenant.
    pub oidc: TestOidc,
    pub addr: SocketAddr,
    /// Where intake serves Prometheus metrics.
    pub metrics_addr: SocketAddr,
    pub clock: Clock,
    pub options: Options,
    running: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
    /// Routing, when the test asked for it.
    pub routing: Option<ServiceHandle>,
    /// The sla service, when the test asked for it.
    pub sla: Option<ServiceHandle>,
    /// The read side, when the test asked for it.
    pub insight: Option<ServiceHandle>,
}

/// A running routing service in a test.
pub struct ServiceHandle {
    pub pool: PgPool,
    pub addr: SocketAddr,
    /// Where the service serves Prometheus metrics (sla only; else unset).
    pub metrics_addr: Option<SocketAddr>,
    running: (CancellationToken, JoinHandle<anyhow::Result<()>>),
}

/// What a test runs.
#[derive(Clone, Default)]
pub struct Options {
    /// Also run routing.
    pub routing: bool,
    /// Also run the sla service.
    pub sla: bool,
    /// Also run the read side (lots-insight).
    pub insight: bool,
    /// A manual clock starting here (Stockholm local time, "YYYY-MM-DD HH:MM"); else the system clock.
    pub now: Option<&'static str>,
    /// More tenants (TOML text) beside the Norrköping example.
    pub extra_tenants: Vec<String>,
}

/// Stockholm local time "YYYY-MM-DD HH:MM" as UTC.
pub fn local(t: &str) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M").unwrap();
    lots_domain::calendar::TZ.from_local_datetime(&naive).earliest().unwrap().with_timezone(&chrono::Utc)
}

impl TestApp {
    /// Intake on the shared (or a fresh) NATS server.
    pub async fn spawn() -> TestApp {
        Self::spawn_on(TestNats::start().expect("nats")).await
    }

    /// Intake on the given NATS server.
    pub async fn spawn_on(nats: TestNats) -> TestApp {
        Self::spawn_with(nats, Options::default()).await
    }

    /// The services `options` asks for, on the given NATS server.
    pub async fn spawn_with(nats: TestNats, options: Options) -> TestApp {
        lots_testkit::init_tracing();
        let oidc = TestOidc::start(&configured_tenants(&options)).expect("OpenID provider");
        let db = TestDb::create().await.expect("test database");
        let subjects = Subjects::new(&lots_testkit::subject_prefix()).unwrap();
        let pool = db::connect(&db.url(), lots_intake::app::SCHEMA, 4, Duration::from_secs(5)).await.unwrap();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        let mut app = TestApp {
            nats,
            db,
            subjects,
            pool,
            js,
            client: IntakeServiceClient::with_interceptor(
                Channel::from_static("http://127.0.0.1:1").connect_lazy(),
                Bearer::new("none").unwrap(),
            ),
            oidc,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: options.now.map(|t| Clock::manual(local(t))).unwrap_or_default(),
            options,
            running: None,
            routing: None,
            sla: None,
            insight: None,
        };
        app.start().await;
        if app.options.routing {
            app.start_routing().await;
        }
        if app.options.sla {
            app.start_sla().await;
        }
        if app.options.insight {
            app.start_insight().await;
        }
        app
    }

    /// Every configured tenant (the Norrköping example and the test's own), each trusting its
    /// issuer at the test's OpenID provider.
    pub fn tenants(&self) -> Tenants {
        self.oidc.trusted_by(&configured_tenants(&self.options)).unwrap()
    }

    /// A bearer token interceptor for `who` in `tenant`.
    pub async fn bearer(&self, tenant: &str, who: Who) -> Bearer {
        Bearer::new(&self.oidc.token(tenant, &who).await.unwrap()).unwrap()
    }

    /// An authenticated channel to `addr` as `who` in `tenant`.
    pub async fn channel_as(&self, addr: SocketAddr, tenant: &str, who: Who) -> AuthedChannel {
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        tonic::service::interceptor::InterceptedService::new(channel, self.bearer(tenant, who).await)
    }

    /// Intake as `who` in `tenant`.
    pub async fn intake_as(&self, tenant: &str, who: Who) -> IntakeClient {
        IntakeServiceClient::new(self.channel_as(self.addr, tenant, who).await)
    }

    /// Starts routing on the same database server (its own schema) and NATS server.
    pub async fn start_routing(&mut self) {
        // The test reads through its own pool; the service connects as the service role.
        let pool = db::connect(&self.db.url(), lots_routing::app::SCHEMA, 2, Duration::from_secs(5)).await.unwrap();
        let url = self.db.service_url();
        let service = db::connect(&url, lots_routing::app::SCHEMA, 8, Duration::from_secs(5));
        let parts = lots_routing::Parts {
            pool: service.await.unwrap(),
            nats: self.nats.connect_as("routing").await.unwrap(),
            subjects: self.subjects.clone(),
            tenants: self.tenants(),
            config_dir: example_config(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: self.clock.clone(),
        };
        let app = lots_routing::App::from_parts(parts).await.unwrap();
        let addr = app.local_addr().unwrap();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.routing = Some(ServiceHandle { pool, addr, metrics_addr: None, running: (token, handle) });
    }

    /// Starts one more routing replica on the same database and NATS; it stops when `token` is
    /// cancelled. Returns its gRPC address.
    pub async fn start_routing_replica(
        &self,
        token: CancellationToken,
    ) -> (SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let pool =
            db::connect(&self.db.service_url(), lots_routing::app::SCHEMA, 8, Duration::from_secs(5)).await.unwrap();
        let parts = lots_routing::Parts {
            pool,
            nats: self.nats.connect_as("routing").await.unwrap(),
            subjects: self.subjects.clone(),
            tenants: self.tenants(),
            config_dir: example_config(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: self.clock.clone(),
        };
        let app = lots_routing::App::from_parts(parts).await.unwrap();
        let addr = app.local_addr().unwrap();
        (addr, tokio::spawn(app.run(token)))
    }

    /// Starts the sla service with a short timer tick (the clock is moved by the test).
    pub async fn start_sla(&mut self) {
        let pool = db::connect(&self.db.url(), lots_sla::app::SCHEMA, 2, Duration::from_secs(5)).await.unwrap();
        let url = self.db.service_url();
        let service = db::connect(&url, lots_sla::app::SCHEMA, 8, Duration::from_secs(5));
        let parts = lots_sla::Parts {
            pool: service.await.unwrap(),
            nats: self.nats.connect_as("sla").await.unwrap(),
            subjects: self.subjects.clone(),
            tenants: self.tenants(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: self.clock.clone(),
            tick: Duration::from_millis(50),
        };
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = Some(metrics.local_addr().unwrap());
        let app = lots_sla::App::from_parts(parts).await.unwrap().with_metrics_listener(metrics);
        let addr = app.local_addr().unwrap();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.sla = Some(ServiceHandle { pool, addr, metrics_addr, running: (token, handle) });
    }

    /// Stops the sla service as SIGTERM would.
    pub async fn stop_sla(&mut self) {
        if let Some(r) = self.sla.take() {
            r.running.0.cancel();
            tokio::time::timeout(Duration::from_secs(20), r.running.1).await.unwrap().unwrap().unwrap();
        }
    }

    /// Starts the read side on the test's clock.
    pub async fn start_insight(&mut self) {
        let pool = db::connect(&self.db.url(), lots_insight::app::SCHEMA, 2, Duration::from_secs(5)).await.unwrap();
        let url = self.db.service_url();
        let service = db::connect(&url, lots_insight::app::SCHEMA, 8, Duration::from_secs(5));
        let parts = lots_insight::Parts {
            pool: service.await.unwrap(),
            nats: self.nats.connect_as("insight").await.unwrap(),
            subjects: self.subjects.clone(),
            tenants: self.tenants(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: self.clock.clone(),
        };
        let app = lots_insight::App::from_parts(parts).await.unwrap();
        let addr = app.local_addr().unwrap();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.insight = Some(ServiceHandle { pool, addr, metrics_addr: None, running: (token, handle) });
    }

    /// Stops the read side as SIGTERM would.
    pub async fn stop_insight(&mut self) {
        if let Some(r) = self.insight.take() {
            r.running.0.cancel();
            tokio::time::timeout(Duration::from_secs(20), r.running.1).await.unwrap().unwrap().unwrap();
        }
    }

    /// A CaseStatusService client as `who` in `tenant`.
    pub async fn status_as(&self, tenant: &str, who: Who) -> CaseStatusClient {
        let addr = self.insight.as_ref().expect("insight runs").addr;
        pb::case_status_service_client::CaseStatusServiceClient::new(self.channel_as(addr, tenant, who).await)
    }

    /// A ReportService client as `who` in `tenant`.
    pub async fn reports_as(&self, tenant: &str, who: Who) -> ReportClient {
        let addr = self.insight.as_ref().expect("insight runs").addr;
        pb::report_service_client::ReportServiceClient::new(self.channel_as(addr, tenant, who).await)
    }

    /// The read side's pool (schema `insight`).
    pub fn insight_pool(&self) -> &PgPool {
        &self.insight.as_ref().expect("insight runs").pool
    }

    /// An AlertService client as `who` in `tenant`.
    pub async fn alerts_as(&self, tenant: &str, who: Who) -> AlertClient {
        let addr = self.sla.as_ref().expect("sla runs").addr;
        pb::alert_service_client::AlertServiceClient::new(self.channel_as(addr, tenant, who).await)
    }

    /// The sla service's pool (schema `sla`).
    pub fn sla_pool(&self) -> &PgPool {
        &self.sla.as_ref().expect("sla runs").pool
    }

    /// Stops routing as SIGTERM would.
    pub async fn stop_routing(&mut self) {
        if let Some(r) = self.routing.take() {
            r.running.0.cancel();
            tokio::time::timeout(Duration::from_secs(20), r.running.1).await.unwrap().unwrap().unwrap();
        }
    }

    /// A TaskService client acting as `officer` of Norrköping (or `tenant/officer`).
    pub async fn tasks(&self, officer: &str) -> TaskClient {
        self.tasks_at(self.routing.as_ref().expect("routing runs").addr, officer).await
    }

    /// A TaskService client of the routing replica at `addr`, acting as `officer`.
    pub async fn tasks_at(&self, addr: SocketAddr, officer: &str) -> TaskClient {
        let (tenant, officer) = officer.split_once('/').unwrap_or((NKP, officer));
        pb::task_service_client::TaskServiceClient::new(
            self.channel_as(addr, tenant, Who::Officer(officer.into())).await,
        )
    }

    /// An OfficerService client as Norrköping's admin.
    pub async fn officers(&self) -> OfficerClient {
        self.officers_as(NKP, Who::Admin).await
    }

    /// An OfficerService client as `who` in `tenant`.
    pub async fn officers_as(&self, tenant: &str, who: Who) -> OfficerClient {
        let addr = self.routing.as_ref().expect("routing runs").addr;
        pb::officer_service_client::OfficerServiceClient::new(self.channel_as(addr, tenant, who).await)
    }

    /// Routing's pool (schema `routing`).
    pub fn routing_pool(&self) -> &PgPool {
        &self.routing.as_ref().expect("routing runs").pool
    }

    /// Starts (or starts again) intake on the same database and NATS server.
    pub async fn start(&mut self) {
        let pool =
            db::connect(&self.db.service_url(), lots_intake::app::SCHEMA, 8, Duration::from_secs(5)).await.unwrap();
        let nats = self.nats.connect_as("intake").await.unwrap();
        let parts = Parts {
            pool,
            nats,
            subjects: self.subjects.clone(),
            tenants: self.tenants(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: self.clock.clone(),
            company_keys: lots_testkit::company_keys(),
        };
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.metrics_addr = metrics.local_addr().unwrap();
        let app = App::from_parts(parts).await.unwrap().with_metrics_listener(metrics);
        self.addr = app.local_addr().unwrap();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.client = self.intake_as(NKP, Who::Reception).await;
        self.running = Some((token, handle));
    }

    /// A second intake replica on the same database and stream (its own registration writers).
    pub async fn start_intake_replica(&self) -> ServiceHandle {
        let pool =
            db::connect(&self.db.service_url(), lots_intake::app::SCHEMA, 8, Duration::from_secs(5)).await.unwrap();
        let parts = Parts {
            pool: pool.clone(),
            nats: self.nats.connect_as("intake").await.unwrap(),
            subjects: self.subjects.clone(),
            tenants: self.tenants(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: self.clock.clone(),
            company_keys: lots_testkit::company_keys(),
        };
        let app = App::from_parts(parts).await.unwrap();
        let addr = app.local_addr().unwrap();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        ServiceHandle { pool, addr, metrics_addr: None, running: (token, handle) }
    }

    /// Stops intake as SIGTERM would, and waits until it has drained.
    pub async fn stop(&mut self) {
        if let Some((token, handle)) = self.running.take() {
            token.cancel();
            tokio::time::timeout(Duration::from_secs(20), handle).await.unwrap().unwrap().unwrap();
        }
    }

    /// A valid restaurant start registration.
    pub fn restaurant(&self, key: &str) -> pb::RegisterCaseRequest {
        pb::RegisterCaseRequest {
            idempotency_key: key.to_owned(),
            company: Some(pb::Company {
                org_nr: "556036-0793".to_owned(),
                name: "Knäppingsborgs Krog AB".to_owned(),
                contact: Some(pb::Contact {
                    name: "Sara Holm".to_owned(),
                    phone: "070-123 45 67".to_owned(),
                    email: "sara@knappingsborg.se".to_owned(),
                }),
            }),
            case_type: "restaurang_start".to_owned(),
            description: "Vill öppna restaurang med uteservering i Knäppingsborg".to_owned(),
            channel: pb::Channel::Phone as i32,
        }
    }

    /// Registers a case in Norrköping as its reception.
    pub async fn register(&self, req: pb::RegisterCaseRequest) -> Result<pb::Case, tonic::Status> {
        self.client.clone().register_case(req).await.map(|r| r.into_inner())
    }

    /// Registers a case in `tenant` as its reception.
    pub async fn register_in(&self, tenant: &str, req: pb::RegisterCaseRequest) -> Result<pb::Case, tonic::Status> {
        self.intake_as(tenant, Who::Reception).await.register_case(req).await.map(|r| r.into_inner())
    }

    /// Reception of the tenant that holds case `id` (tests use several tenants).
    async fn reception_of(&self, id: &str) -> IntakeClient {
        for t in self.tenants().iter() {
            let mut client = self.intake_as(&t.kommunkod, Who::Reception).await;
            let lookup = Some(pb::get_case_request::Lookup::Id(id.to_owned()));
            if client.get_case(pb::GetCaseRequest { lookup }).await.is_ok() {
                return client;
            }
        }
        self.client.clone()
    }

    pub async fn get(&self, id: &str) -> pb::Case {
        let lookup = Some(pb::get_case_request::Lookup::Id(id.to_owned()));
        self.reception_of(id).await.get_case(pb::GetCaseRequest { lookup }).await.unwrap().into_inner()
    }

    pub async fn await_company(&self, id: &str, reason: &str) -> Result<pb::Case, tonic::Status> {
        let req = pb::AwaitCompanyRequest { case_id: id.to_owned(), reason: reason.to_owned(), ..Default::default() };
        self.reception_of(id).await.await_company(req).await.map(|r| r.into_inner())
    }

    pub async fn resume(&self, id: &str) -> Result<pb::Case, tonic::Status> {
        let req = pb::ResumeCaseRequest { case_id: id.to_owned(), ..Default::default() };
        self.reception_of(id).await.resume_case(req).await.map(|r| r.into_inner())
    }

    pub async fn close(&self, id: &str, decision: &str) -> Result<pb::Case, tonic::Status> {
        let req = pb::CloseCaseRequest {
            case_id: id.to_owned(),
            outcome: pb::Outcome::Granted as i32,
            decision: decision.to_owned(),
            ..Default::default()
        };
        self.reception_of(id).await.close_case(req).await.map(|r| r.into_inner())
    }

    pub async fn withdraw(&self, id: &str, reason: &str) -> Result<pb::Case, tonic::Status> {
        let req = pb::WithdrawCaseRequest { case_id: id.to_owned(), reason: reason.to_owned(), ..Default::default() };
        self.reception_of(id).await.withdraw_case(req).await.map(|r| r.into_inner())
    }

    /// Publishes an event as routing would (its outbox sets `Nats-Msg-Id` the same way).
    pub async fn publish_as_routing<T: Payload>(&self, case_id: &str, version: u64, data: T) -> Uuid {
        let case_id = Uuid::parse_str(case_id).unwrap();
        let event = Envelope::new(NKP, case_id, version, "routing", chrono::Utc::now(), data).into_raw().unwrap();
        self.publish_raw(&event.kind.clone(), event.id, serde_json::to_vec(&event).unwrap()).await;
        event.id
    }

    /// Publishes a ready event on its subject, with its id as `Nats-Msg-Id`.
    pub async fn publish_event(&self, event: &Envelope) {
        self.publish_raw_for(&event.tenant, &event.kind, event.id, serde_json::to_vec(event).unwrap()).await;
    }

    /// Publishes raw bytes on `lots.0581.<kind>` under this test's prefix.
    pub async fn publish_raw(&self, kind: &str, id: Uuid, payload: Vec<u8>) {
        self.publish_raw_for(NKP, kind, id, payload).await;
    }

    /// Publishes raw bytes on `lots.<tenant>.<kind>` under this test's prefix.
    pub async fn publish_raw_for(&self, tenant: &str, kind: &str, id: Uuid, payload: Vec<u8>) {
        let msg = jetstream::message::PublishMessage::build().payload(payload.into()).message_id(id.to_string());
        let subject = self.subjects.event(tenant, kind);
        self.js.send_publish(subject, msg).await.unwrap().await.unwrap();
    }

    /// Every message on the stream so far matching `lots.0581.<kind>`, after waiting until at
    /// least `min` arrived (or `timeout` passed).
    pub async fn events(&self, kind: &str, min: usize) -> Vec<async_nats::jetstream::Message> {
        self.events_of(NKP, kind, min).await
    }

    /// Like [`TestApp::events`], for another tenant.
    pub async fn events_of(&self, tenant: &str, kind: &str, min: usize) -> Vec<async_nats::jetstream::Message> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.read_events_of(tenant, kind).await;
            if found.len() >= min || tokio::time::Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many events of `lots.<tenant>.<kind>` the stream holds right now.
    pub async fn read_events_of_tenant(&self, tenant: &str, kind: &str) -> usize {
        self.read_events_of(tenant, kind).await.len()
    }

    /// What the stream holds right now for `lots.0581.<kind>`, without waiting for more.
    pub async fn read_events(&self, kind: &str) -> Vec<async_nats::jetstream::Message> {
        self.read_events_of(NKP, kind).await
    }

    async fn read_events_of(&self, tenant: &str, kind: &str) -> Vec<async_nats::jetstream::Message> {
        let Ok(stream) = self.js.get_stream(self.subjects.stream_name()).await else {
            return Vec::new();
        };
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: self.subjects.event(tenant, kind),
                ack_policy: jetstream::consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(5),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut batch =
            consumer.fetch().max_messages(1000).expires(Duration::from_millis(200)).messages().await.unwrap();
        while let Some(Ok(m)) = batch.next().await {
            out.push(m);
        }
        out
    }

    /// Waits until `check` holds for the case, or fails after 10 s.
    pub async fn eventually(&self, id: &str, what: &str, check: impl Fn(&pb::Case) -> bool) -> pb::Case {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let case = self.get(id).await;
            if check(&case) {
                return case;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; case status {}",
                case.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Intake's Prometheus metrics text.
    pub async fn scrape(&self) -> String {
        scrape(self.metrics_addr).await
    }

    /// The sla service's Prometheus metrics text.
    pub async fn scrape_sla(&self) -> String {
        scrape(self.sla.as_ref().and_then(|s| s.metrics_addr).expect("sla runs")).await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }
}

/// The Prometheus metrics text served at `addr`.
async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: lots\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// The value of the metric line starting with `series` (name and labels), or 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((token, _)) = self.running.take() {
            token.cancel();
        }
        for r in [self.routing.take(), self.sla.take(), self.insight.take()].into_iter().flatten() {
            r.running.0.cancel();
        }
    }
}

/// Clients that send a bearer token.
pub type IntakeClient = IntakeServiceClient<AuthedChannel>;
pub type TaskClient = pb::task_service_client::TaskServiceClient<AuthedChannel>;
pub type OfficerClient = pb::officer_service_client::OfficerServiceClient<AuthedChannel>;
pub type AlertClient = pb::alert_service_client::AlertServiceClient<AuthedChannel>;
pub type CaseStatusClient = pb::case_status_service_client::CaseStatusServiceClient<AuthedChannel>;
pub type ReportClient = pb::report_service_client::ReportServiceClient<AuthedChannel>;

/// The tenants `options` asks for, as configured (before the test's issuers are set).
fn configured_tenants(options: &Options) -> Tenants {
    let mut configs: Vec<_> = Tenants::load(&example_config()).unwrap().iter().map(|t| (**t).clone()).collect();
    for text in &options.extra_tenants {
        configs.push(lots_domain::TenantConfig::from_toml_str(text).unwrap());
    }
    Tenants::from_configs(configs).unwrap()
}

/// The status of a case as the proto enum.
pub fn status(case: &pb::Case) -> pb::CaseStatus {
    pb::CaseStatus::try_from(case.status).unwrap()
}

/// The field names of a `google.rpc.BadRequest` in `status`.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    let bad = status.get_details_bad_request().expect("BadRequest details");
    bad.field_violations.into_iter().map(|v| v.field).collect()
}

/// The envelope of a JetStream message.
pub fn envelope(msg: &async_nats::jetstream::Message) -> serde_json::Value {
    serde_json::from_slice(&msg.payload).unwrap()
}

/// A `case.routed` with no seats, for tests that only need the case to move on.
pub fn routed_stub(meeting_id: Uuid, at: chrono::DateTime<chrono::Utc>) -> lots_events::CaseRouted {
    lots_events::CaseRouted {
        meeting_id,
        starts_at: at,
        ends_at: at,
        location: "Rådhuset".into(),
        seats: vec![],
        owner: lots_events::CaseOwner { officer_id: "eva".into(), unit: "bygglov".into() },
    }
}
