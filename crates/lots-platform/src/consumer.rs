//! The consuming side every service uses: a durable pull consumer whose events are applied
//! exactly once. The effect, the inbox row and the per-case version cursor commit in one
//! transaction; only then is the message acknowledged. An event that arrives before its
//! predecessor is nak'ed with a delay; one that keeps failing goes to the dead-letter table.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use lots_events::{Envelope, Subjects};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, instrument};

use crate::nats::set_parent_from_headers;
use crate::{Error, Result};

/// Why a handler could not apply an event. The transaction is rolled back and the event retried.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Applies one event inside the consumer's transaction.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event` using `tx`; events the service does not care about return `Ok(())`.
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;

    /// Runs after the transaction committed, e.g. to wake the outbox relay.
    fn committed(&self, _event: &Envelope) {}
}

/// How a service consumes the stream.
#[derive(Clone)]
pub struct ConsumerSettings {
    /// Durable consumer name; replicas of one service share it and split the work.
    pub durable: String,
    /// Parallel lanes; one case always lands in the same lane, so its events stay in order.
    pub lanes: usize,
    /// Deliveries before an event is dead-lettered.
    pub max_deliveries: i64,
    /// Where to count handled events, redeliveries and dead letters.
    pub metrics: Option<crate::metrics::Metrics>,
    /// Most events a lane applies in one transaction. Many amortise the commit; a handler whose
    /// effects contend on shared rows (routing's officers and bookings) is better off with 1.
    pub batch: usize,
    /// The event types the service applies, e.g. "case.registered"; the durable consumer is
    /// filtered to these. Empty means every event.
    pub kinds: Vec<String>,
}

impl ConsumerSettings {
    /// Defaults for a service named `durable`.
    pub fn new(durable: &str) -> Self {
        ConsumerSettings {
            durable: durable.to_owned(),
            lanes: 8,
            max_deliveries: 10,
            metrics: None,
            batch: 32,
            kinds: Vec::new(),
        }
    }

    /// Consumes only the event types `kinds` (see [`ConsumerSettings::kinds`]).
    pub fn with_kinds<S: Into<String>>(mut self, kinds: impl IntoIterator<Item = S>) -> Self {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }
}

enum Applied {
    Done,
    Duplicate,
    Gap { expected: u64 },
}

/// Consumes until `token` is cancelled; in-flight events finish, the rest are redelivered later.
pub async fn run<H: Handler>(
    pool: PgPool,
    js: jetstream::Context,
    subjects: Subjects,
    settings: ConsumerSettings,
    handler: Arc<H>,
    token: CancellationToken,
) -> Result<()> {
    let stream = js
        .get_stream(subjects.stream_name())
        .await
        .map_err(|e| Error::Nats(format!("stream {}: {e}", subjects.stream_name())))?;
    let kinds: Vec<&str> = settings.kinds.iter().map(String::as_str).collect();
    // Create-or-update: a durable that exists with other filters (say `lots.>` from before) is
    // changed in place and keeps its position, so nothing is replayed or skipped.
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(subjects.consumer_config(&settings.durable, &kinds))
        .await
        .map_err(|e| Error::Nats(format!("consumer {}: {e}", settings.durable)))?;
    let mut messages = consumer.messages().await.map_err(Error::nats)?;

    let tracker = TaskTracker::new();
    // Messages received and not yet settled: while they wait in a lane or are applied, they are
    // told "in progress", so a backlog does not run out their ack wait and inflate deliveries.
    let in_flight = InFlight::default();
    let progress = tokio::spawn(in_flight.clone().keep_alive(token.clone()));
    let _lag = settings.metrics.clone().map(|m| report_lag(consumer.clone(), m));
    let mut lanes = Vec::with_capacity(settings.lanes.max(1));
    for _ in 0..settings.lanes.max(1) {
        let (tx, mut rx) = mpsc::channel::<Message>(64);
        let (pool, handler, settings) = (pool.clone(), handler.clone(), settings.clone());
        let in_flight = in_flight.clone();
        tracker.spawn(crate::db::scoped(crate::db::SYSTEM, async move {
            while let Some(first) = rx.recv().await {
                // Whatever else is already queued joins the same transaction.
                let mut batch = vec![first];
                while batch.len() < settings.batch.max(1) {
                    match rx.try_recv() {
                        Ok(msg) => batch.push(msg),
                        Err(_) => break,
                    }
                }
                let seqs: Vec<u64> = batch.iter().map(stream_seq).collect();
                process_batch(&pool, handler.as_ref(), &settings, batch).await;
                in_flight.settled(&seqs);
            }
        }));
        lanes.push(tx);
    }
    tracker.close();

    loop {
        let next = tokio::select! {
            _ = token.cancelled() => break,
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => {
                in_flight.received(&msg);
                let lane = lane_of(&msg, lanes.len());
                if lanes[lane].send(msg).await.is_err() {
                    break;
                }
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "pull consumer error; continuing");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => break,
        }
    }
    drop(lanes);
    tracker.wait().await;
    progress.abort();
    Ok(())
}

/// How often the consumer's lag is read from the server.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// Sets `lots_consumer_lag` (labelled with the durable's name) every [`LAG_EVERY`] until the
/// handle is dropped: events of the consumer's filter the server has not yet delivered plus
/// those delivered and not yet acknowledged. A stuck consumer shows as a lag that grows, which
/// a figure read from each delivered message could not show. Routing's per-tenant writers call
/// it for their own consumers.
pub fn report_lag(
    mut consumer: jetstream::consumer::PullConsumer,
    metrics: crate::metrics::Metrics,
) -> tokio_util::task::AbortOnDropHandle<()> {
    tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let durable = consumer.cached_info().name.clone();
        let mut failures = 0u32;
        loop {
            match consumer.info().await {
                Ok(info) => {
                    failures = 0;
                    let lag = info.num_pending as f64 + info.num_ack_pending as f64;
                    let help = "Events of the consumer's filter not yet applied (pending + unacknowledged).";
                    metrics.gauge("lots_consumer_lag", help, &[("consumer", &durable)], lag);
                }
                Err(err) => {
                    failures += 1;
                    // The gauge keeps its last value meanwhile; say so before it misleads.
                    if failures == 3 {
                        tracing::warn!(error = %err, consumer = %durable, "cannot read the consumer's lag");
                    }
                }
            }
            tokio::time::sleep(LAG_EVERY).await;
        }
    }))
}

/// How often received, unsettled messages are told "in progress" (the ack wait is 30 s).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn stream_seq(msg: &Message) -> u64 {
    msg.info().map(|i| i.stream_sequence).unwrap_or(0)
}

/// Messages received and not yet settled, by stream sequence.
#[derive(Clone, Default)]
struct InFlight(Arc<std::sync::Mutex<std::collections::HashMap<u64, Message>>>);

impl InFlight {
    fn received(&self, msg: &Message) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(stream_seq(msg), msg.clone());
    }

    fn settled(&self, seqs: &[u64]) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for s in seqs {
            map.remove(s);
        }
    }

    /// Sends "in progress" for every unsettled message every [`PROGRESS_EVERY`].
    async fn keep_alive(self, token: CancellationToken) {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(PROGRESS_EVERY) => {}
            }
            let waiting: Vec<Message> = self.0.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
            for msg in waiting {
                if let Err(err) = msg.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %err, "cannot tell an event is in progress");
                }
            }
        }
    }
}

/// The stream's last sequence now: every event published so far is at or below it.
pub async fn stream_last(js: &jetstream::Context, subjects: &Subjects) -> Result<u64> {
    // `get_stream` fetched the stream's info already.
    let stream = js.get_stream(subjects.stream_name()).await.map_err(Error::nats)?;
    Ok(stream.cached_info().state.last_sequence)
}

/// Whether durable consumer `durable` has applied (acknowledged) every event of its filter up
/// to stream sequence `seq`: its ack floor has passed `seq`, or nothing is pending or unacked.
pub async fn applied_through(js: &jetstream::Context, subjects: &Subjects, durable: &str, seq: u64) -> Result<bool> {
    let stream = js.get_stream_no_info(subjects.stream_name()).await.map_err(Error::nats)?;
    let info = stream.consumer_info(durable).await.map_err(Error::nats)?;
    Ok(info.ack_floor.stream_sequence >= seq || (info.num_pending == 0 && info.num_ack_pending == 0))
}

/// The service a durable consumer belongs to: `routing-0581` is routing's.
pub fn view_of(durable: &str) -> &str {
    durable.split('-').next().unwrap_or(durable)
}

fn lane_of(msg: &Message, lanes: usize) -> usize {
    #[derive(serde::Deserialize)]
    struct Key {
        case_id: uuid::Uuid,
    }
    let key = serde_json::from_slice::<Key>(&msg.payload).map(|k| k.case_id).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// What became of one message of a batch.
enum Verdict {
    Applied(Envelope),
    Skipped,
    Retry(Option<Envelope>, String),
}

/// Applies a batch of messages from one lane in one transaction, so a commit (the expensive
/// fsync) serves many events; then acknowledges each as it deserves. The batch is first applied
/// with its bookkeeping done once for all ([`apply_together`]); if a handler fails, that is
/// undone and the batch applied again one savepoint per event ([`apply_one_by_one`]), so one
/// failing event does not hold back the others.
async fn process_batch<H: Handler>(pool: &PgPool, handler: &H, settings: &ConsumerSettings, batch: Vec<Message>) {
    let metrics = settings.metrics.as_ref();
    let events: Vec<Result<Envelope, String>> = batch
        .iter()
        .map(|msg| {
            if let Some(m) = metrics
                && msg.info().map(|i| i.delivered).unwrap_or(1) > 1
            {
                m.count("lots_consumer_redeliveries_total", "Events delivered more than once.", &[], 1.0);
            }
            // Unparseable now means unparseable forever: dead-letter at once.
            serde_json::from_slice(&msg.payload).map_err(|err| format!("not a Lotsen event: {err}"))
        })
        .collect();
    let verdicts = match apply_together(pool, handler, view_of(&settings.durable), &batch, &events).await {
        Ok(verdicts) => verdicts,
        Err(why) => {
            tracing::debug!(why, events = batch.len(), "batch undone; applying its events one at a time");
            match apply_one_by_one(pool, handler, view_of(&settings.durable), &batch, &events).await {
                Some(verdicts) => verdicts,
                // Nothing was applied; every message comes back after its ack wait.
                None => return,
            }
        }
    };
    for (msg, verdict) in batch.iter().zip(verdicts) {
        let outcome = match verdict {
            Verdict::Applied(event) => {
                handler.committed(&event);
                Outcome::Applied
            }
            Verdict::Skipped => Outcome::Skipped,
            Verdict::Retry(event, error) => Outcome::Retry { readable: event.is_some(), error },
        };
        settle(pool, metrics, settings.max_deliveries, msg, outcome).await;
    }
}

/// The span one event is applied in, a child of the trace that published it.
fn consume_span(msg: &Message, event: &Envelope) -> tracing::Span {
    let span = tracing::info_span!(
        "platform.consume",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %msg.subject,
        event_id = %event.id,
        case_id = %event.case_id,
        delivered = msg.info().map(|i| i.delivered).unwrap_or(1),
    );
    set_parent_from_headers(&span, msg.headers.as_ref());
    span
}

/// Why an event waits for an earlier one of its case.
fn gap_reason(event: &Envelope, expected: u64) -> String {
    format!("waiting for version {expected} of this case from {} (got {})", event.source.as_str(), event.version)
}

/// Applies the batch in one transaction with three statements of bookkeeping for all of it
/// instead of five per event: one records every event in the inbox (a duplicate id inserts
/// nothing), one reads and locks the cursors of the batch's cases (in key order, so two
/// replicas lock them in the same order), one moves them. Each event's place in its case's
/// order is decided against those cursors as the batch's own events advance them, as
/// [`admit`] would. A handler error (or a failed commit) undoes the whole batch and is
/// returned; nothing of it was applied.
async fn apply_together<H: Handler>(
    pool: &PgPool,
    handler: &H,
    view: &str,
    batch: &[Message],
    events: &[Result<Envelope, String>],
) -> std::result::Result<Vec<Verdict>, String> {
    let readable: Vec<&Envelope> = events.iter().filter_map(|e| e.as_ref().ok()).collect();
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    let ids: Vec<uuid::Uuid> = readable.iter().map(|e| e.id).collect();
    let kinds: Vec<&str> = readable.iter().map(|e| e.kind.as_str()).collect();
    let mut fresh: std::collections::HashSet<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (event_id, event_type) SELECT * FROM unnest($1::uuid[], $2::text[])
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(&ids)
    .bind(&kinds)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| e.to_string())?
    .into_iter()
    .collect();
    // Version 0 marks events derived from time (sla alerts): unordered, deduplicated by id alone.
    let keys: std::collections::BTreeSet<(uuid::Uuid, &str)> =
        readable.iter().filter(|e| e.version > 0).map(|e| (e.case_id, e.source.as_str())).collect();
    let (key_cases, key_sources): (Vec<uuid::Uuid>, Vec<&str>) = keys.iter().copied().unzip();
    let rows: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT c.case_id, c.source, c.version FROM case_cursor c
         JOIN unnest($1::uuid[], $2::text[]) AS k (case_id, source) USING (case_id, source)
         ORDER BY c.case_id, c.source FOR UPDATE OF c",
    )
    .bind(&key_cases)
    .bind(&key_sources)
    // Planned for each call: a generic plan cached while case_cursor was small hash-joins a
    // scan of all of it once it is large (measured: 3–4 ms a batch at 11,000 cases, 0.2 ms
    // planned per call).
    .persistent(false)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| e.to_string())?;
    let mut cursors: std::collections::HashMap<(uuid::Uuid, String), u64> =
        rows.into_iter().map(|(case, source, version)| ((case, source), version as u64)).collect();
    let mut moved = std::collections::BTreeMap::new();
    let mut unkept = Vec::new();
    let mut verdicts = Vec::with_capacity(batch.len());
    for (msg, event) in batch.iter().zip(events) {
        let event = match event {
            Ok(event) => event,
            Err(why) => {
                verdicts.push(Verdict::Retry(None, why.clone()));
                continue;
            }
        };
        if !fresh.remove(&event.id) {
            tracing::debug!(event_id = %event.id, "duplicate event skipped");
            verdicts.push(Verdict::Skipped);
            continue;
        }
        let key = (event.case_id, event.source.as_str().to_owned());
        if event.version > 0 {
            match order(cursors.get(&key).copied().unwrap_or(0), view, event) {
                Admit::Fresh => {}
                Admit::Duplicate => {
                    unkept.push(event.id);
                    verdicts.push(Verdict::Skipped);
                    continue;
                }
                Admit::Gap { expected } => {
                    unkept.push(event.id);
                    verdicts.push(Verdict::Retry(Some(event.clone()), gap_reason(event, expected)));
                    continue;
                }
            }
        }
        handler
            .handle(&mut tx, event)
            .instrument(consume_span(msg, event))
            .await
            .map_err(|err| format!("event {}: {}", event.id, crate::error::chain(err.as_ref())))?;
        if event.version > 0 {
            cursors.insert(key.clone(), event.version);
            moved.insert(key, event.version as i64);
        }
        verdicts.push(Verdict::Applied(event.clone()));
    }
    if !unkept.is_empty() {
        // Not applied now: their inbox rows go, so a redelivery is admitted again.
        sqlx::query("DELETE FROM inbox WHERE event_id = ANY ($1)")
            .bind(&unkept)
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    if !moved.is_empty() {
        let (keys, versions): (Vec<_>, Vec<i64>) = moved.into_iter().unzip();
        let (cases, sources): (Vec<uuid::Uuid>, Vec<String>) = keys.into_iter().unzip();
        sqlx::query(
            "INSERT INTO case_cursor (case_id, source, version)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])
             ON CONFLICT (case_id, source) DO UPDATE SET version = GREATEST(case_cursor.version, EXCLUDED.version)",
        )
        .bind(&cases)
        .bind(&sources)
        .bind(&versions)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| format!("commit: {e}"))?;
    Ok(verdicts)
}

/// Applies the batch in one transaction, one savepoint per event: an event whose handler fails
/// is rolled back alone and retried later, the others commit. None when no transaction could
/// be started.
async fn apply_one_by_one<H: Handler>(
    pool: &PgPool,
    handler: &H,
    view: &str,
    batch: &[Message],
    events: &[Result<Envelope, String>],
) -> Option<Vec<Verdict>> {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(err) => {
            tracing::warn!(error = %err, "cannot start a consumer transaction; events will be redelivered");
            return None;
        }
    };
    let mut verdicts = Vec::with_capacity(batch.len());
    for (msg, event) in batch.iter().zip(events) {
        let event = match event {
            Ok(event) => event,
            Err(why) => {
                verdicts.push(Verdict::Retry(None, why.clone()));
                continue;
            }
        };
        let verdict = async {
            let mut sp = match tx.begin().await {
                Ok(sp) => sp,
                Err(err) => return Verdict::Retry(Some(event.clone()), err.to_string()),
            };
            match apply(&mut sp, handler, view, event).await {
                Ok(Applied::Done) => match sp.commit().await {
                    Ok(()) => Verdict::Applied(event.clone()),
                    Err(err) => Verdict::Retry(Some(event.clone()), err.to_string()),
                },
                Ok(Applied::Duplicate) => {
                    let _ = sp.rollback().await;
                    tracing::debug!("duplicate event skipped");
                    Verdict::Skipped
                }
                Ok(Applied::Gap { expected }) => {
                    let _ = sp.rollback().await;
                    Verdict::Retry(Some(event.clone()), gap_reason(event, expected))
                }
                Err(err) => {
                    let _ = sp.rollback().await;
                    Verdict::Retry(Some(event.clone()), crate::error::chain(err.as_ref()))
                }
            }
        }
        .instrument(consume_span(msg, event))
        .await;
        verdicts.push(verdict);
    }
    if let Err(err) = tx.commit().await {
        tracing::warn!(error = %err, "consumer commit failed; the batch is retried");
        verdicts = verdicts
            .into_iter()
            .map(|v| match v {
                Verdict::Applied(e) => Verdict::Retry(Some(e), err.to_string()),
                other => other,
            })
            .collect();
    }
    Some(verdicts)
}

/// What became of one event, for [`settle`].
#[derive(Debug)]
pub enum Outcome {
    /// Its effect committed.
    Applied,
    /// A duplicate: nothing to do.
    Skipped,
    /// Not applied; `readable` is false when the payload is not a Lotsen event at all.
    Retry { readable: bool, error: String },
}

/// Acknowledges a message as its outcome deserves, after the transaction ended: applied and
/// skipped events are acked; a failed one is nak'ed with backoff, or dead-lettered once it has
/// been delivered `max_deliveries` times (or cannot be read).
pub async fn settle(
    pool: &PgPool,
    metrics: Option<&crate::metrics::Metrics>,
    max_deliveries: i64,
    msg: &Message,
    outcome: Outcome,
) {
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    if let Some(m) = metrics {
        let label = if matches!(outcome, Outcome::Retry { .. }) { "retried" } else { "applied" };
        m.count("lots_consumer_events_total", "Events consumed, by outcome.", &[("outcome", label)], 1.0);
    }
    let event: Option<Envelope> = match &outcome {
        Outcome::Retry { readable: true, .. } => serde_json::from_slice(&msg.payload).ok(),
        _ => None,
    };
    match outcome {
        Outcome::Applied | Outcome::Skipped => ack(msg, AckKind::Ack).await,
        Outcome::Retry { readable, error } => {
            // An earlier event of the case lies open in the dead-letter table: this one cannot
            // be applied before an operator acts, so it waits there too, held behind it.
            let behind = match &event {
                Some(e) => open_letter_before(pool, e).await,
                None => None,
            };
            if !readable || delivered >= max_deliveries || behind.is_some() {
                let error = match behind {
                    Some(b) => format!("held behind dead letter {b}: {error}"),
                    None => error,
                };
                tracing::error!(error, "event failed too often, cannot be read or is held; dead-lettered");
                if let Some(m) = metrics {
                    m.count("lots_consumer_dead_letters_total", "Events moved to the dead-letter table.", &[], 1.0);
                }
                dead_letter(pool, msg, event.as_ref(), &error, delivered, behind).await;
            } else {
                let delay = Duration::from_millis(100 * 2u64.saturating_pow(delivered.clamp(1, 8) as u32 - 1));
                tracing::debug!(error, delay_ms = delay.as_millis() as u64, "event not applied; retrying later");
                ack(msg, AckKind::Nak(Some(delay.min(Duration::from_secs(10))))).await;
            }
        }
    }
}

/// The open dead letter of an earlier event of `event`'s case from the same producer, if any.
async fn open_letter_before(pool: &PgPool, event: &Envelope) -> Option<uuid::Uuid> {
    if event.version == 0 {
        return None;
    }
    let found = sqlx::query_scalar(
        "SELECT event_id FROM dead_letter
         WHERE case_id = $1 AND source = $2 AND version < $3 AND status = 'open' AND event_id <> $4
         ORDER BY version DESC LIMIT 1",
    )
    .bind(event.case_id)
    .bind(event.source.as_str())
    .bind(event.version as i64)
    .bind(event.id)
    .fetch_optional(pool)
    .await;
    match found {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(error = %err, "cannot look for an earlier dead letter");
            None
        }
    }
}

#[instrument(name = "platform.consume.apply", skip_all)]
async fn apply<H: Handler>(
    tx: &mut PgConnection,
    handler: &H,
    view: &str,
    event: &Envelope,
) -> Result<Applied, HandlerError> {
    match admit(&mut *tx, view, event).await? {
        Admit::Fresh => {}
        Admit::Duplicate => return Ok(Applied::Duplicate),
        Admit::Gap { expected } => return Ok(Applied::Gap { expected }),
    }
    handler.handle(tx, event).await?;
    advance(tx, event).await?;
    Ok(Applied::Done)
}

/// Whether an event may be applied now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Not seen before and next in its case's order: apply it, then [`advance`].
    Fresh,
    /// Already applied (by id or by version): acknowledge and skip.
    Duplicate,
    /// An earlier event of this case in this service's view is missing: try again later.
    /// The inbox row is not kept.
    Gap { expected: u64 },
}

/// Records `event` in the inbox and checks its per-case order in `view` (the consuming
/// service's name). Call inside the transaction that applies the event; on [`Admit::Gap`]
/// roll back (a savepoint) so the inbox row goes too.
pub async fn admit(tx: &mut PgConnection, view: &str, event: &Envelope) -> sqlx::Result<Admit> {
    let fresh = sqlx::query("INSERT INTO inbox (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(event.id)
        .bind(&event.kind)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !fresh {
        return Ok(Admit::Duplicate);
    }
    // Version 0 marks events derived from time (sla alerts): unordered, deduplicated by id alone.
    if event.version == 0 {
        return Ok(Admit::Fresh);
    }
    let current: Option<i64> =
        sqlx::query_scalar("SELECT version FROM case_cursor WHERE case_id = $1 AND source = $2 FOR UPDATE")
            .bind(event.case_id)
            .bind(event.source.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    Ok(order(current.unwrap_or(0) as u64, view, event))
}

/// The ordering rule: an event follows the previous one in this service's view (`prev`), or,
/// for events from before filtered consumers, the version before it.
fn order(current: u64, view: &str, event: &Envelope) -> Admit {
    if event.version <= current {
        return Admit::Duplicate;
    }
    let expected = event.prev.get(view).copied().unwrap_or(event.version - 1);
    if current < expected {
        return Admit::Gap { expected: expected.max(current + 1) };
    }
    Admit::Fresh
}

/// Moves the case's cursor to `event` after its effect, in the same transaction.
pub async fn advance(tx: &mut PgConnection, event: &Envelope) -> sqlx::Result<()> {
    if event.version == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO case_cursor (case_id, source, version) VALUES ($1, $2, $3)
         ON CONFLICT (case_id, source) DO UPDATE SET version = GREATEST(case_cursor.version, EXCLUDED.version)",
    )
    .bind(event.case_id)
    .bind(event.source.as_str())
    .bind(event.version as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn dead_letter(
    pool: &PgPool,
    msg: &Message,
    event: Option<&Envelope>,
    error: &str,
    delivered: i64,
    held_behind: Option<uuid::Uuid>,
) {
    // What an unreadable payload still says (its tenant and case), for the operator.
    let event = event.cloned().or_else(|| serde_json::from_slice(&msg.payload).ok());
    let id = event.as_ref().map(|e| e.id).unwrap_or_else(uuid::Uuid::now_v7);
    let stored = sqlx::query(
        "INSERT INTO dead_letter (event_id, subject, payload, error, deliveries, tenant, event_type, case_id,
             source, version, held_behind)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (event_id) DO UPDATE SET error = EXCLUDED.error, deliveries = EXCLUDED.deliveries,
             status = 'open', held_behind = EXCLUDED.held_behind, resolved_by = NULL, resolved_at = NULL",
    )
    .bind(id)
    .bind(msg.subject.as_str())
    .bind(msg.payload.to_vec())
    .bind(error)
    .bind(delivered)
    .bind(event.as_ref().map(|e| e.tenant.clone()).unwrap_or_default())
    .bind(event.as_ref().map(|e| e.kind.clone()).unwrap_or_default())
    .bind(event.as_ref().map(|e| e.case_id))
    .bind(event.as_ref().map(|e| e.source.as_str()))
    .bind(event.as_ref().map(|e| e.version as i64))
    .bind(held_behind)
    .execute(pool)
    .await;
    if stored.is_ok()
        && let Some(behind) = held_behind
    {
        // The operator may have resolved the letter this one waits behind meanwhile (and its
        // followers were looked for before this row existed): then retry instead of waiting.
        let still_open: Result<bool, _> =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM dead_letter WHERE event_id = $1 AND status = 'open')")
                .bind(behind)
                .fetch_one(pool)
                .await;
        if let Ok(false) = still_open {
            let gone = sqlx::query("DELETE FROM dead_letter WHERE event_id = $1 AND status = 'open'").bind(id);
            let _ = gone.execute(pool).await;
            ack(msg, AckKind::Nak(Some(Duration::from_millis(100)))).await;
            return;
        }
    }
    match stored {
        Ok(_) => ack(msg, AckKind::Term).await,
        // Not stored: leave it unacknowledged so it is delivered again.
        Err(err) => {
            tracing::error!(error = %err, "cannot store dead letter; event will be redelivered")
        }
    }
}

async fn ack(msg: &Message, kind: AckKind) {
    if let Err(err) = msg.ack_with(kind).await {
        tracing::warn!(error = %err, "acknowledgement failed; the event will be redelivered");
    }
}
