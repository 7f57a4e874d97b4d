//! The fault suite: Lotsen under steady load while one thing fails at a time, checked against
//! a ledger the load generator keeps and against the stream read back afterwards.
//!
//! The services run as processes (`lots-e2e-service`, built beside the tests), so a crash is a
//! real SIGKILL: no drain, no lease released, nothing flushed. After each fault every
//! registered case must be decided (routed or unroutable) exactly once, no task, meeting,
//! clock or alert may exist twice, no officer may be booked twice, and the read side must hold
//! every case. Each test prints how long the backlog took to drain after the fault.
//!
//! Alerts must fall due while the fault happens, not hours later: in the test's copy of the
//! example the whole Upphandlingsenheten is on leave (a calendar with two months away), so its
//! upphandlingsfrågor — one case in seven — cannot be planned and escalate at once to the unit
//! manager and the näringslivschef. Every alert due by the end must have fired, once.
//!
//! `just test` runs a short version (10 cases/s for 6 s on the example's 30 officers);
//! `just chaos` sets `LOTS_CHAOS=1`: 50 cases/s for 60 s with the officers copied 40 times.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use lots_events::{Envelope, Subjects};
use lots_platform::auth::Bearer;
use lots_proto::v1 as pb;
use lots_testkit::{TestDb, TestNats, TestOidc, TestPostgres, Who};
use pb::intake_service_client::IntakeServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::helpers::{NKP, example_config};

/// How hard and how long the load runs.
#[derive(Clone, Copy)]
struct Scale {
    per_second: u32,
    seconds: u64,
    officer_copies: usize,
}

fn scale() -> Scale {
    if std::env::var_os("LOTS_CHAOS").is_some() {
        Scale { per_second: 50, seconds: 60, officer_copies: 40 }
    } else {
        Scale { per_second: 10, seconds: 6, officer_copies: 1 }
    }
}

const SERVICES: [&str; 4] = ["intake", "routing", "sla", "insight"];

/// One service replica running as a process.
struct Proc {
    service: &'static str,
    port: u16,
    child: Option<Child>,
}

/// NATS, Postgres, the OpenID provider and every service as processes, for one test.
struct Stack {
    nats: TestNats,
    /// A Postgres of the test's own, when the test crashes it.
    pg: Option<TestPostgres>,
    db: TestDb,
    oidc: TestOidc,
    /// The test's subject prefix and the names under it.
    prefix: String,
    subjects: Subjects,
    /// The test's own JetStream client, on every node (it reconnects after a node dies).
    js: jetstream::Context,
    dir: tempfile::TempDir,
    procs: Vec<Proc>,
}

impl Stack {
    /// `replicas` of every service on `nats`, on a Postgres of the test's own when `own_pg`.
    async fn start(nats: TestNats, own_pg: bool, replicas: usize, scale: Scale) -> Stack {
        lots_testkit::init_tracing();
        let pg = own_pg.then(|| tokio::task::block_in_place(|| TestPostgres::start().unwrap()));
        let db = match &pg {
            Some(pg) => TestDb::create_at(&pg.url()).await.unwrap(),
            None => TestDb::create().await.unwrap(),
        };
        let tenants = lots_platform::Tenants::load(&example_config()).unwrap();
        let oidc = TestOidc::start(&tenants).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_config(&dir.path().join("config"), &oidc.issuer(NKP), scale.officer_copies);
        std::fs::write(dir.path().join("nats-password"), nats.password().unwrap_or_default()).unwrap();
        std::fs::write(dir.path().join("company.key"), lots_testkit::COMPANY_KEY_SECRET).unwrap();
        let prefix = lots_testkit::subject_prefix();
        let subjects = Subjects::new(&prefix).unwrap();
        let js = jetstream::new(async_nats::connect(lots_platform::nats::servers(&nats.urls())).await.unwrap());
        let mut stack = Stack { nats, pg, db, oidc, prefix, subjects, js, dir, procs: Vec::new() };
        for service in SERVICES {
            for _ in 0..replicas {
                let port = lots_testkit::free_port();
                stack.procs.push(Proc { service, port, child: None });
                let i = stack.procs.len() - 1;
                stack.launch(i).await;
            }
        }
        stack
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}-{i}.log", self.procs[i].service))
    }

    /// Starts process `i` (again, on its port) and waits until it serves gRPC.
    async fn launch(&mut self, i: usize) {
        let (service, port) = (self.procs[i].service, self.procs[i].port);
        let log = std::fs::File::options().create(true).append(true).open(self.log(i)).unwrap();
        let replicas = if self.nats.urls().contains(',') { "3" } else { "1" };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lots-e2e-service"));
        cmd.arg(service)
            .env("LOTS_DATABASE_URL", self.db.service_url())
            .env("LOTS_NATS_URL", self.nats.urls())
            .env("LOTS_STREAM_REPLICAS", replicas)
            .env("LOTS_CONFIG", self.dir.path().join("config"))
            .env("LOTS_SUBJECT_PREFIX", &self.prefix)
            .env("LOTS_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("LOTS_COMPANY_KEY_FILE", self.dir.path().join("company.key"))
            .env("LOTS_CONNECT_TIMEOUT_SECS", "60")
            .env("LOTS_SHUTDOWN_GRACE_SECS", "5")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.nats.password().is_some() {
            cmd.env("LOTS_NATS_USER", service).env("LOTS_NATS_PASSWORD_FILE", self.dir.path().join("nats-password"));
        }
        self.procs[i].child = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(90);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = self.procs[i].child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("{service} exited ({status}) at start:\n{}", lots_testkit::local::log_tail(&self.log(i)));
            }
            assert!(Instant::now() < deadline, "{service} did not listen on {port} within 90 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts again every process that exited by itself, as its supervisor (systemd,
    /// Kubernetes) would: a service stops when something it cannot live without fails.
    async fn revive(&mut self) {
        for i in 0..self.procs.len() {
            let exited = self.procs[i].child.as_mut().and_then(|c| c.try_wait().unwrap());
            if let Some(status) = exited {
                eprintln!("faults: {} exited ({status}); started again as its supervisor would", self.procs[i].service);
                self.launch(i).await;
            }
        }
    }

    /// SIGKILLs the first running replica of `service`; returns its index.
    fn kill(&mut self, service: &str) -> usize {
        let i = self.procs.iter().position(|p| p.service == service && p.child.is_some()).unwrap();
        let mut child = self.procs[i].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        i
    }

    /// Ports of intake replicas, for the load generator.
    fn intake_ports(&self) -> Vec<u16> {
        self.procs.iter().filter(|p| p.service == "intake").map(|p| p.port).collect()
    }

    async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&self.db.url()).await.unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The example configuration, trusting `issuer`, with every officer copied `copies` times the
/// way `lots-bench load` copies them (`~i` ids, capacity raised, because nobody accepts or
/// completes a task here), written as TOML for the service processes. The officers of
/// [`AWAY_UNIT`] are away from yesterday for two months, so its case type is unroutable.
fn write_config(dir: &Path, issuer: &str, copies: usize) {
    std::fs::create_dir_all(dir.join("calendars")).unwrap();
    for entry in std::fs::read_dir(example_config().join("calendars")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("calendars").join(entry.file_name())).unwrap();
    }
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(1), today + chrono::Days::new(60));
    let away = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Lotsen//faults//SV\r\nBEGIN:VEVENT\r\n\
         UID:ledighet@lotsen.test\r\nDTSTAMP:20260101T080000Z\r\nSUMMARY:Ledig\r\n\
         DTSTART;VALUE=DATE:{}\r\nDTEND;VALUE=DATE:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    std::fs::write(dir.join("calendars/away.ics"), away).unwrap();
    let text = std::fs::read_to_string(example_config().join("norrkoping.toml")).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    config["auth"]["issuers"] = toml::Value::Array(vec![issuer.into()]);
    for officer in config["officers"].as_array_mut().unwrap() {
        let officer = officer.as_table_mut().unwrap();
        if officer["unit"].as_str() == Some(AWAY_UNIT) {
            officer.insert("calendar".into(), "calendars/away.ics".into());
        }
    }
    if copies > 1 {
        let officers = config["officers"].as_array().unwrap().clone();
        let mut all = Vec::new();
        for i in 0..copies {
            for officer in &officers {
                let mut o = officer.clone();
                if i > 0 {
                    let id = o["id"].as_str().unwrap().to_owned();
                    o["id"] = format!("{id}~{i}").into();
                }
                o["capacity"] = 1_000_000.into();
                all.push(o);
            }
        }
        config["officers"] = toml::Value::Array(all);
    }
    std::fs::write(dir.join("norrkoping.toml"), toml::to_string(&config).unwrap()).unwrap();
}

/// The unit that is away in the test's configuration, and the case type only it serves.
const AWAY_UNIT: &str = "upphandling";
const AWAY_CASE_TYPE: &str = "upphandlingsfraga";

/// The example's seven case types, round robin (the restaurant start has five seats).
const CASE_TYPES: [&str; 7] = [
    "restaurang_start",
    "bygglov",
    "livsmedelsregistrering",
    "miljoanmalan",
    "etablering_mark",
    "upphandlingsfraga",
    "allman_radgivning",
];

fn request(key: &str, n: usize) -> pb::RegisterCaseRequest {
    pb::RegisterCaseRequest {
        idempotency_key: key.to_owned(),
        company: Some(pb::Company {
            org_nr: ["556036-0793", "556016-0680", "212000-0142"][n % 3].to_owned(),
            name: "Knäppingsborgs Krog AB".to_owned(),
            contact: Some(pb::Contact {
                name: "Sara Holm".to_owned(),
                phone: "070-123 45 67".to_owned(),
                email: "sara@knappingsborg.se".to_owned(),
            }),
        }),
        case_type: CASE_TYPES[n % CASE_TYPES.len()].to_owned(),
        description: "Under last".to_owned(),
        channel: pb::Channel::Phone as i32,
    }
}

/// Registers cases open loop at `scale.per_second` for `scale.seconds`, as reception. A call
/// that fails (intake or its dependencies down) is retried with the same idempotency key on
/// the next intake replica until it succeeds; returns every case id intake answered, by key.
async fn load(stack: &Stack, scale: Scale) -> tokio::task::JoinHandle<BTreeMap<String, String>> {
    let token = stack.oidc.token(NKP, &Who::Reception).await.unwrap();
    let clients: Vec<_> = stack
        .intake_ports()
        .into_iter()
        .map(|port| {
            let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
            IntakeServiceClient::with_interceptor(channel, Bearer::new(&token).unwrap())
        })
        .collect();
    let clients = Arc::new(clients);
    let run = Uuid::now_v7().simple().to_string();
    // How many registrations had to be retried, by their first failure's code.
    let retried = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    tokio::spawn(async move {
        let total = scale.per_second as usize * scale.seconds as usize;
        let every = Duration::from_secs(1) / scale.per_second;
        let start = tokio::time::Instant::now();
        let mut calls = Vec::new();
        for n in 0..total {
            tokio::time::sleep_until(start + every * n as u32).await;
            let (clients, key, retried) = (clients.clone(), format!("{run}-{n}"), retried.clone());
            calls.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                for attempt in 0.. {
                    let mut client = clients[attempt % clients.len()].clone();
                    match client.register_case(request(&key, n)).await {
                        Ok(case) => return (key, case.into_inner().id),
                        Err(status) => {
                            if attempt == 0 {
                                *retried.lock().unwrap().entry(format!("{:?}", status.code())).or_insert(0) += 1;
                            }
                            assert!(Instant::now() < deadline, "case {key} never registered: {status}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                unreachable!()
            }));
        }
        let mut ledger = BTreeMap::new();
        for call in calls {
            let (key, id) = call.await.unwrap();
            ledger.insert(key, id);
        }
        let retried = retried.lock().unwrap();
        if !retried.is_empty() {
            eprintln!("faults: registrations retried with the same key, by first failure: {retried:?}");
        }
        ledger
    })
}

/// What the stream holds: every case event, by case, as counts per event type; and every
/// alert (`sla.*` but `sla.met`), by case, as how many distinct events announced each one.
#[derive(Default)]
struct StreamLedger {
    cases: HashMap<Uuid, HashMap<String, usize>>,
    alerts: HashMap<Uuid, HashMap<String, usize>>,
}

const CASE_KINDS: [&str; 3] = ["case.registered", "case.routed", "case.unroutable"];
const ALERT_KINDS: [&str; 3] = ["sla.warning", "sla.breached", "sla.escalated"];

/// The stream read back; `None` while it does not answer (a cluster electing a new leader
/// after a node died).
async fn stream_ledger(stack: &Stack) -> Option<StreamLedger> {
    let stream = stack.js.get_stream(stack.subjects.stream_name()).await.ok()?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subjects: CASE_KINDS.iter().chain(&ALERT_KINDS).map(|k| stack.subjects.event("*", k)).collect(),
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .ok()?;
    let pending = consumer.clone().info().await.ok()?.num_pending as usize;
    let mut ledger = StreamLedger::default();
    let mut seen = HashSet::new();
    let mut messages = consumer.messages().await.ok()?;
    for _ in 0..pending {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.ok()??.ok()?;
        // Garbage a test published on purpose is not a case event, and an event published
        // again (same id) is the same fact.
        let Ok(event) = serde_json::from_slice::<Envelope>(&msg.payload) else { continue };
        if !seen.insert(event.id) {
            continue;
        }
        if ALERT_KINDS.contains(&event.kind.as_str()) {
            // One alert is one (kind, clock, recipient, step or percent, due instant); two
            // events for it are an alert a manager gets twice.
            let d = &event.data;
            let alert = format!(
                "{} {} {} {}{} {}",
                event.kind, d["clock_id"], d["recipient"], d["step"], d["percent"], d["due_at"]
            );
            *ledger.alerts.entry(event.case_id).or_default().entry(alert).or_default() += 1;
        } else {
            *ledger.cases.entry(event.case_id).or_default().entry(event.kind).or_default() += 1;
        }
    }
    Some(ledger)
}

/// Waits until every case of `ledger` is decided in the stream, then checks that nothing was
/// lost or duplicated anywhere. Returns how long the wait took.
async fn settle_and_check(stack: &mut Stack, ledger: &BTreeMap<String, String>) -> Duration {
    let started = Instant::now();
    let ids: Vec<Uuid> = ledger.values().map(|id| id.parse().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let counts = loop {
        assert!(Instant::now() < deadline, "the stream did not answer within 180 s");
        let Some(StreamLedger { cases: counts, .. }) = stream_ledger(stack).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let decided = ids
            .iter()
            .filter(|id| {
                counts
                    .get(id)
                    .is_some_and(|c| c.get("case.routed").unwrap_or(&0) + c.get("case.unroutable").unwrap_or(&0) > 0)
            })
            .count();
        if decided == ids.len() {
            break counts;
        }
        assert!(Instant::now() < deadline, "only {decided} of {} cases were decided within 180 s", ids.len());
        stack.revive().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let drained = started.elapsed();
    // The stream: one registration and one decision per case, and no case nobody asked for.
    assert_eq!(counts.len(), ids.len(), "the stream holds cases the ledger does not");
    for id in &ids {
        let c = &counts[id];
        assert_eq!(c.get("case.registered"), Some(&1), "case {id}: {c:?}");
        assert_eq!(c.get("case.routed").unwrap_or(&0) + c.get("case.unroutable").unwrap_or(&0), 1, "case {id}: {c:?}");
    }
    let pool = stack.pool().await;
    let n = ids.len() as i64;
    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    // Each service applies the stream on its own; after a fault one may still be catching up
    // when the stream is complete. Late is fine, lost is not: wait for each to hold every case.
    let eventually = |sql: &'static str, want: i64, what: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while one(sql).await < want {
            assert!(Instant::now() < deadline, "{what}: {} of {want} after 60 s", one(sql).await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(one(sql).await, want, "{what}");
    };
    eventually("SELECT count(*) FROM intake.cases", n, "intake's cases").await;
    eventually("SELECT count(*) FROM routing.cases", n, "routing's cases").await;
    eventually("SELECT count(DISTINCT case_id) FROM sla.clocks", n, "cases with clocks").await;
    eventually("SELECT count(*) FROM insight.cases", n, "the read side's cases").await;
    // What a user would notice twice. The schema forbids two live meetings of a case and
    // overlapping active bookings too (the last guards); these checks fail if a change ever
    // loosens those guards, and the seat check covers every task status, beyond the index.
    let twice = "SELECT count(*) FROM (SELECT case_id FROM routing.meetings WHERE status <> 'cancelled'
                 GROUP BY case_id HAVING count(*) > 1) d";
    assert_eq!(one(twice).await, 0, "a case has two live meetings");
    let seats = "SELECT count(*) FROM (SELECT meeting_id, officer_id FROM routing.tasks
                 GROUP BY 1, 2 HAVING count(*) > 1) d";
    assert_eq!(one(seats).await, 0, "an officer holds a seat twice");
    let double = "SELECT count(*) FROM routing.bookings a JOIN routing.bookings b
                  ON a.tenant = b.tenant AND a.officer_id = b.officer_id AND a.meeting_id < b.meeting_id
                 AND a.during && b.during WHERE a.active AND b.active";
    assert_eq!(one(double).await, 0, "an officer is booked twice");
    // The away unit's cases could not be planned; each escalated at once.
    let unroutable: HashSet<Uuid> =
        counts.iter().filter(|(_, c)| c.contains_key("case.unroutable")).map(|(id, _)| *id).collect();
    let away: Vec<Uuid> = ledger
        .iter()
        .filter(|(key, _)| {
            CASE_TYPES[key.rsplit('-').next().unwrap().parse::<usize>().unwrap() % CASE_TYPES.len()] == AWAY_CASE_TYPE
        })
        .map(|(_, id)| id.parse().unwrap())
        .collect();
    assert!(!away.is_empty(), "the load registered no {AWAY_CASE_TYPE}");
    for id in &away {
        assert!(unroutable.contains(id), "{AWAY_CASE_TYPE} {id} was planned although its unit is away");
    }
    let escalated =
        "SELECT count(DISTINCT case_id) FROM sla.alerts WHERE kind = 'escalated' AND commitment = 'unroutable'";
    eventually(escalated, unroutable.len() as i64, "unroutable cases escalated").await;
    let which: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT case_id FROM sla.alerts WHERE kind = 'escalated' AND commitment = 'unroutable'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(which.into_iter().collect::<HashSet<_>>(), unroutable, "the escalated cases are the unroutable ones");
    // No stage the timer should have fired is left (none falls due in these runs with the
    // example's working-day targets; the escalations above fire from the decision itself).
    let overdue = "SELECT count(*) FROM sla.stages WHERE fired_at IS NULL AND due_at < now() - interval '10 seconds'";
    let deadline = Instant::now() + Duration::from_secs(60);
    while one(overdue).await > 0 {
        assert!(Instant::now() < deadline, "{} due stages did not fire within 60 s", one(overdue).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Each alert sla holds reached the stream, and no alert exists twice: not in sla's table
    // (two rows for one clock, kind, recipient, level and due instant) and not in the stream
    // (two events with different ids for one alert). sla may still fire while this waits, so
    // its table is read again until the stream holds exactly the same alerts per case.
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let held: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT case_id, count(*) FROM sla.alerts WHERE kind IN ('warning', 'breached', 'escalated') GROUP BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let held: HashMap<Uuid, usize> = held.into_iter().map(|(id, n)| (id, n as usize)).collect();
        if let Some(StreamLedger { alerts, .. }) = stream_ledger(stack).await {
            let announced: HashMap<Uuid, usize> = alerts.iter().map(|(id, a)| (*id, a.len())).collect();
            if announced == held {
                break alerts;
            }
            assert!(Instant::now() < deadline, "after 60 s sla holds alerts {held:?}, the stream {announced:?}");
        }
        assert!(Instant::now() < deadline, "the stream did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (id, announced) in &alerts {
        for (alert, n) in announced {
            assert_eq!(*n, 1, "case {id}: {alert} was announced {n} times");
        }
    }
    let twice = "SELECT count(*) FROM (SELECT clock_id, kind, recipient, level, due_at FROM sla.alerts
                 GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1) d";
    assert_eq!(one(twice).await, 0, "an alert fired twice");
    let fired: usize = alerts.values().map(HashMap::len).sum();
    let routed = ids.len() - unroutable.len();
    eprintln!(
        "faults: {} cases ({routed} routed, {} unroutable), {fired} alerts fired once each, 0 lost, 0 duplicated",
        ids.len(),
        unroutable.len()
    );
    drained
}

/// The load, running; the test applies its fault a third of the way in.
struct Running {
    scale: Scale,
    ledger: tokio::task::JoinHandle<BTreeMap<String, String>>,
}

impl Running {
    /// Starts the load and returns once a third of it is registered.
    async fn start(stack: &Stack) -> Running {
        let scale = scale();
        let ledger = load(stack, scale).await;
        tokio::time::sleep(Duration::from_secs(scale.seconds) / 3).await;
        Running { scale, ledger }
    }

    /// Lets the load finish (the fault is over), then checks the outcome.
    async fn finish(self, stack: &mut Stack, what: &str) {
        let recovered = Instant::now();
        let ledger = self.ledger.await.unwrap();
        let drained = settle_and_check(stack, &ledger).await;
        eprintln!(
            "faults: {what}: {} cases at {}/s; backlog gone {:.1} s after the load ended ({:.1} s after recovery)",
            ledger.len(),
            self.scale.per_second,
            drained.as_secs_f64(),
            recovered.elapsed().as_secs_f64()
        );
    }
}

/// SIGKILL, two seconds down, start again.
async fn crash_and_restart(stack: &mut Stack, service: &str) {
    let i = stack.kill(service);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.launch(i).await;
}

async fn single() -> Stack {
    Stack::start(TestNats::start_owned().unwrap(), false, 1, scale()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_routing_killed_mid_load_decides_every_case_once() {
    let mut stack = single().await;
    let running = Running::start(&stack).await;
    crash_and_restart(&mut stack, "routing").await;
    running.finish(&mut stack, "routing SIGKILL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_intake_killed_mid_load_loses_no_registration() {
    let mut stack = single().await;
    let running = Running::start(&stack).await;
    crash_and_restart(&mut stack, "intake").await;
    running.finish(&mut stack, "intake SIGKILL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_sla_and_insight_killed_mid_load_arm_and_show_every_case_once() {
    let mut stack = single().await;
    let running = Running::start(&stack).await;
    crash_and_restart(&mut stack, "sla").await;
    crash_and_restart(&mut stack, "insight").await;
    running.finish(&mut stack, "sla and insight SIGKILL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_nats_killed_mid_load_loses_no_event() {
    let mut stack = single().await;
    let running = Running::start(&stack).await;
    stack.nats.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.nats.restart().unwrap();
    running.finish(&mut stack, "nats-server SIGKILL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_postgres_crash_mid_load_loses_no_committed_case() {
    let mut stack = Stack::start(TestNats::start_owned().unwrap(), true, 1, scale()).await;
    let running = Running::start(&stack).await;
    let pg = stack.pg.as_ref().unwrap();
    pg.crash().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| pg.restart()).unwrap();
    running.finish(&mut stack, "postgres immediate stop").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_redelivered_out_of_order_and_poison_events_change_nothing() {
    let mut stack = single().await;
    let running = Running::start(&stack).await;
    let js = stack.js.clone();
    // Every case event so far, published again (a new message id, so JetStream keeps them)
    // after the newer ones: twice, and out of order.
    let stream = js.get_stream(stack.subjects.stream_name()).await.unwrap();
    let last = stream.clone().info().await.unwrap().state.last_sequence;
    for seq in 1..=last {
        let Ok(raw) = stream.get_raw_message(seq).await else { continue };
        if [".case.", ".task.", ".meeting."].iter().any(|f| raw.subject.contains(f)) {
            js.publish(raw.subject.to_string(), raw.payload).await.unwrap().await.unwrap();
        }
    }
    // A poison event: not even JSON, on a subject routing, sla and insight all consume.
    let poison = stack.subjects.event(NKP, "case.registered");
    js.publish(poison, "{not json".into()).await.unwrap().await.unwrap();
    running.finish(&mut stack, "duplicates, stale events and a poison event").await;
    // The poison event waits as one dead letter in each service that consumes it.
    let pool = stack.pool().await;
    for schema in ["routing", "sla", "insight"] {
        let sql = format!("SELECT count(*) FROM {schema}.dead_letter");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(&pool).await.unwrap();
            if n >= 1 {
                let what = format!("SELECT subject || ': ' || error FROM {schema}.dead_letter");
                let letters: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(what)).fetch_all(&pool).await.unwrap();
                assert_eq!(n, 1, "{schema} dead-lettered more than the poison event: {letters:#?}");
                break;
            }
            assert!(Instant::now() < deadline, "{schema} did not dead-letter the poison event");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_a_three_node_cluster_one_node_and_one_replica_of_each_service_may_die() {
    let nats = TestNats::start_cluster(3).await.unwrap();
    let mut stack = Stack::start(nats, false, 2, scale()).await;
    let js = stack.js.clone();
    let info = js.get_stream(stack.subjects.stream_name()).await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.config.num_replicas, 3, "the stream is kept on all three nodes");
    let running = Running::start(&stack).await;
    stack.nats.kill_node(1).unwrap();
    for service in SERVICES {
        stack.kill(service);
    }
    running.finish(&mut stack, "cluster: one NATS node and one replica of each service SIGKILLed").await;
}
