//! Filtered consumers: a service's durable consumer takes only the event types it applies, and
//! a durable from before filters (`lots.>`) is narrowed in place, keeping its position. And
//! the consumer's batches: many events of many cases applied in one transaction still keep
//! each case's order, skip duplicates, and let one failing event fail alone.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use lots_events::{Envelope, Payload, Source, Subjects};
use lots_platform::consumer::{self, ConsumerSettings, Handler, HandlerError};
use lots_testkit::{TestDb, TestNats};
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const A: &str = "probe.a";
const B: &str = "probe.b";
const C: &str = "probe.c";

/// A payload of the test's own; each event gets its kind (A, B or C) afterwards.
#[derive(serde::Serialize, serde::Deserialize)]
struct Probe {}

impl Payload for Probe {
    const TYPE: &'static str = A;
    const SOURCE: Source = Source::Intake;
}

/// Records every event it is given in `seen`.
struct Recorder;

impl Handler for Recorder {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO seen (event_id) VALUES ($1)").bind(event.id).execute(&mut *tx).await?;
        Ok(())
    }
}

/// Records each event's case and version in the order it was applied, and fails every event of
/// kind [`C`] the first time it is handed one: the batch it came in must still apply the rest.
#[derive(Default)]
struct OrderRecorder {
    failed_once: Mutex<HashSet<Uuid>>,
}

impl Handler for OrderRecorder {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if event.kind == C && self.failed_once.lock().unwrap().insert(event.id) {
            return Err("a passing failure".into());
        }
        sqlx::query("INSERT INTO applied (case_id, version) VALUES ($1, $2)")
            .bind(event.case_id)
            .bind(event.version as i64)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// A NATS server (2.10 or newer) of the test's own, a database and the stream.
struct Harness {
    _nats: TestNats,
    _db: TestDb,
    pool: PgPool,
    js: jetstream::Context,
    subjects: Subjects,
}

impl Harness {
    async fn new() -> Harness {
        lots_testkit::init_tracing();
        let nats = TestNats::start_owned().expect("nats");
        let db = TestDb::create().await.expect("test database");
        let pool = lots_platform::db::connect(&db.url(), "filtered", 4, Duration::from_secs(5)).await.unwrap();
        lots_platform::db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(Vec::new())).await.unwrap();
        sqlx::query("CREATE TABLE seen (event_id uuid PRIMARY KEY)").execute(&pool).await.unwrap();
        let client =
            lots_platform::nats::connect(nats.url(), "filter-test", Duration::from_secs(5), None).await.unwrap();
        let js = jetstream::new(client);
        let subjects = Subjects::new(&lots_testkit::subject_prefix()).unwrap();
        lots_platform::nats::ensure_stream(&js, &subjects).await.unwrap();
        Harness { _nats: nats, _db: db, pool, js, subjects }
    }

    /// Publishes an event of `kind` for `tenant` (its own case, version 1) and returns its id.
    async fn publish(&self, tenant: &str, kind: &str) -> Uuid {
        let mut event =
            Envelope::new(tenant, Uuid::now_v7(), 1, "test", chrono::Utc::now(), Probe {}).into_raw().unwrap();
        event.kind = kind.to_owned();
        let msg = jetstream::message::PublishMessage::build()
            .payload(serde_json::to_vec(&event).unwrap().into())
            .message_id(event.id.to_string());
        self.js.send_publish(self.subjects.event(tenant, kind), msg).await.unwrap().await.unwrap();
        event.id
    }

    /// Publishes `event` under NATS message id `msg_id` (JetStream drops a repeated one).
    async fn publish_as(&self, event: &Envelope, msg_id: &str) {
        let msg = jetstream::message::PublishMessage::build()
            .payload(serde_json::to_vec(event).unwrap().into())
            .message_id(msg_id);
        self.js.send_publish(self.subjects.event(&event.tenant, &event.kind), msg).await.unwrap().await.unwrap();
    }

    /// Runs the platform's consumer as `durable` over `kinds` until the token is cancelled.
    fn consume(&self, durable: &str, kinds: &[&str]) -> (CancellationToken, JoinHandle<lots_platform::Result<()>>) {
        self.consume_with(durable, kinds, Recorder)
    }

    fn consume_with<H: Handler>(
        &self,
        durable: &str,
        kinds: &[&str],
        handler: H,
    ) -> (CancellationToken, JoinHandle<lots_platform::Result<()>>) {
        let settings = ConsumerSettings::new(durable).with_kinds(kinds.iter().copied());
        let token = CancellationToken::new();
        let run = consumer::run(
            self.pool.clone(),
            self.js.clone(),
            self.subjects.clone(),
            settings,
            Arc::new(handler),
            token.clone(),
        );
        (token, tokio::spawn(run))
    }

    async fn seen(&self) -> BTreeSet<Uuid> {
        sqlx::query_scalar("SELECT event_id FROM seen").fetch_all(&self.pool).await.unwrap().into_iter().collect()
    }

    /// What was applied once `expected` was (or 10 s passed), plus a moment for strays.
    async fn seen_after(&self, expected: &BTreeSet<Uuid>) -> BTreeSet<Uuid> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.seen().await.is_superset(expected) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.seen().await
    }

    async fn stream(&self) -> jetstream::stream::Stream {
        self.js.get_stream(self.subjects.stream_name()).await.unwrap()
    }
}

async fn stop(running: (CancellationToken, JoinHandle<lots_platform::Result<()>>)) {
    running.0.cancel();
    tokio::time::timeout(Duration::from_secs(20), running.1).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_consumer_receives_only_its_kinds() {
    let h = Harness::new().await;
    let a1 = h.publish("0581", A).await;
    h.publish("0581", B).await;
    h.publish("0581", C).await;
    let running = h.consume("only-a", &[A]);
    // Of any tenant, also after the consumer started.
    let a2 = h.publish("0180", A).await;
    h.publish("0180", B).await;
    let expected = BTreeSet::from([a1, a2]);
    assert_eq!(h.seen_after(&expected).await, expected);
    let info = h.stream().await.consumer_info("only-a").await.unwrap();
    assert_eq!(info.config.filter_subjects, [h.subjects.event("*", A)]);
    assert_eq!(info.num_pending, 0);
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_durable_over_every_event_is_narrowed_in_place_and_keeps_its_position() {
    let h = Harness::new().await;
    let stream = h.stream().await;
    // The durable as services created it before filters: every event, `lots.>`.
    let old: PullConsumer = stream.get_or_create_consumer("svc", h.subjects.consumer_config("svc", &[])).await.unwrap();
    assert_eq!(old.cached_info().config.filter_subject, h.subjects.all());
    let created = old.cached_info().created;
    let (a1, b1) = (h.publish("0581", A).await, h.publish("0581", B).await);
    h.publish("0581", C).await;
    let (a2, b2) = (h.publish("0581", A).await, h.publish("0581", B).await);
    // The old service applied the first two events, then stopped.
    let mut batch = old.batch().max_messages(2).expires(Duration::from_secs(5)).messages().await.unwrap();
    let mut acked = Vec::new();
    while let Some(msg) = batch.next().await {
        let msg = msg.unwrap();
        acked.push(serde_json::from_slice::<Envelope>(&msg.payload).unwrap().id);
        msg.double_ack().await.unwrap();
    }
    assert_eq!(acked, [a1, b1]);

    let running = h.consume("svc", &[A, B]);
    h.publish("0581", C).await;
    let (a3, b3) = (h.publish("0581", A).await, h.publish("0581", B).await);
    // Neither replayed (a1, b1) nor skipped (a2, b2 before the update, a3, b3 after); no C.
    let expected = BTreeSet::from([a2, b2, a3, b3]);
    assert_eq!(h.seen_after(&expected).await, expected);

    let info = stream.consumer_info("svc").await.unwrap();
    assert_eq!(info.created, created, "the durable was recreated, not updated");
    assert_eq!(info.config.filter_subject, "");
    assert_eq!(info.config.filter_subjects, [h.subjects.event("*", A), h.subjects.event("*", B)]);
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_keep_each_cases_order_skip_duplicates_and_let_a_failing_event_fail_alone() {
    let h = Harness::new().await;
    sqlx::query("CREATE TABLE applied (seq bigserial PRIMARY KEY, case_id uuid NOT NULL, version bigint NOT NULL)")
        .execute(&h.pool)
        .await
        .unwrap();
    // 40 cases of four versions each, published before the consumer starts so that they reach
    // it in full batches: each case's versions in the order 2, 1, 4, 3, then version 1 again
    // as a second message (a re-published outbox row). Every fifth case's version 3 is of kind
    // C, which fails once.
    let cases: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    for (i, case) in cases.iter().enumerate() {
        let events: BTreeMap<u64, Envelope> = (1..=4)
            .map(|v| {
                let mut e = Envelope::new("0581", *case, v, "test", chrono::Utc::now(), Probe {}).into_raw().unwrap();
                e.kind = if v == 3 && i % 5 == 0 {
                    C
                } else if v % 2 == 0 {
                    B
                } else {
                    A
                }
                .to_owned();
                (v, e)
            })
            .collect();
        for v in [2, 1, 4, 3] {
            h.publish_as(&events[&v], &events[&v].id.to_string()).await;
        }
        h.publish_as(&events[&1], &format!("{}-again", events[&1].id)).await;
    }
    let running = h.consume_with("batches", &[A, B, C], OrderRecorder::default());

    let applied = || async {
        sqlx::query_as::<_, (Uuid, i64)>("SELECT case_id, version FROM applied ORDER BY seq")
            .fetch_all(&h.pool)
            .await
            .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while applied().await.len() < 160 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut by_case: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for (case, version) in applied().await {
        by_case.entry(case).or_default().push(version);
    }
    assert_eq!(by_case.len(), 40, "every case applied");
    for (case, versions) in &by_case {
        assert_eq!(versions, &[1, 2, 3, 4], "case {case}: each version once, in order");
    }
    let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letter").fetch_one(&h.pool).await.unwrap();
    assert_eq!(letters, 0, "the failing events were retried, not dead-lettered");
    let info = h.stream().await.consumer_info("batches").await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "every message settled");
    stop(running).await;
}
