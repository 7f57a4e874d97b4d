//! The transactional outbox: events are written with the state change they describe, and a
//! relay publishes them to JetStream and marks them sent. A crash between commit and publish
//! only delays an event; the `Nats-Msg-Id` header and consumers' inboxes absorb repeats.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use lots_events::{Envelope, Subjects, TRACEPARENT_HEADER};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::instrument;
use uuid::Uuid;

use crate::Result;
use crate::nats::current_traceparent;

/// Writes `event` to the outbox inside the caller's transaction.
#[instrument(name = "platform.outbox.enqueue", skip_all, fields(event_id = %event.id, kind = %event.kind))]
pub async fn enqueue(conn: &mut PgConnection, subjects: &Subjects, event: &Envelope) -> Result<()> {
    let payload = serde_json::to_vec(event)?;
    sqlx::query("INSERT INTO outbox (id, subject, payload, traceparent) VALUES ($1, $2, $3, $4)")
        .bind(event.id)
        .bind(subjects.event(&event.tenant, &event.kind))
        .bind(payload)
        .bind(current_traceparent())
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes several events to the outbox in one statement, inside the caller's transaction.
#[instrument(name = "platform.outbox.enqueue_many", skip_all, fields(events = events.len()))]
pub async fn enqueue_many(conn: &mut PgConnection, subjects: &Subjects, events: &[Envelope]) -> Result<()> {
    let traceparent = current_traceparent();
    let traced: Vec<(&Envelope, Option<String>)> = events.iter().map(|e| (e, traceparent.clone())).collect();
    enqueue_traced(conn, subjects, &traced).await
}

/// Writes several events, each with the trace it belongs to, in one statement.
pub async fn enqueue_traced(
    conn: &mut PgConnection,
    subjects: &Subjects,
    events: &[(&Envelope, Option<String>)],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut subjects_ = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut traces = Vec::with_capacity(events.len());
    for (e, trace) in events {
        ids.push(e.id);
        subjects_.push(subjects.event(&e.tenant, &e.kind));
        payloads.push(serde_json::to_vec(e)?);
        traces.push(trace.clone());
    }
    sqlx::query(
        "INSERT INTO outbox (id, subject, payload, traceparent)
         SELECT id, subject, payload, trace
         FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[]) AS e(id, subject, payload, trace)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&subjects_)
    .bind(&payloads)
    .bind(&traces)
    .execute(conn)
    .await?;
    Ok(())
}

/// Publishes pending outbox rows; several replicas may run one each.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    wake: Arc<Notify>,
    batch: i64,
    poll: Duration,
    metrics: Option<crate::metrics::Metrics>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    subject: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

impl Relay {
    /// A relay over `pool`'s outbox, publishing to `js`.
    pub fn new(pool: PgPool, js: jetstream::Context) -> Self {
        Relay { pool, js, wake: Arc::new(Notify::new()), batch: 256, poll: Duration::from_millis(250), metrics: None }
    }

    /// Counts published events and reports the backlog in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn report_backlog(&self) {
        let Some(m) = &self.metrics else { return };
        let row: Result<(i64, Option<f64>), _> = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await;
        if let Ok((backlog, lag)) = row {
            m.gauge("lots_outbox_backlog", "Outbox rows not yet published.", &[], backlog as f64);
            m.gauge(
                "lots_outbox_relay_lag_seconds",
                "Age of the oldest unpublished outbox row.",
                &[],
                lag.unwrap_or(0.0),
            );
        }
    }

    /// Call `notify_one()` on this after committing an outbox row to publish it at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publishes until `token` is cancelled, then flushes once more.
    pub async fn run(self, token: CancellationToken) {
        let mut failures = 0u32;
        let mut last_report = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            if last_report.elapsed() >= Duration::from_secs(5) {
                self.report_backlog().await;
                last_report = std::time::Instant::now();
            }
            let sent = match self.relay_once().await {
                Ok(n) => {
                    failures = 0;
                    n
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %err, failures, "outbox relay failed; will retry");
                    0
                }
            };
            if sent as i64 == self.batch {
                continue;
            }
            let backoff = self.poll * failures.clamp(1, 20);
            tokio::select! {
                _ = token.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(backoff) => {}
            }
        }
        if let Err(err) = self.relay_once().await {
            tracing::warn!(error = %err, "final outbox flush failed; rows stay pending for the next start");
        }
    }

    /// Claims up to one batch of pending rows, publishes them, awaits the acks and marks the
    /// acknowledged ones sent. Returns how many were sent.
    #[instrument(name = "platform.outbox.relay", skip_all, fields(sent))]
    pub async fn relay_once(&self) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, subject, payload, traceparent FROM outbox
             WHERE status = 'pending' ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let mut msg = PublishMessage::build().payload(Bytes::from(row.payload)).message_id(row.id.to_string());
            if let Some(tp) = row.traceparent {
                msg = msg.header(TRACEPARENT_HEADER, tp.as_str());
            }
            let ack = self.js.send_publish(row.subject, msg).await;
            pending.push((row.id, ack));
        }
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        for (id, ack) in pending {
            let result = match ack {
                Ok(fut) => fut.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => sent.push(id),
                Err(e) => failed.push((id, e)),
            }
        }
        sqlx::query("UPDATE outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)")
            .bind(&sent)
            // Planned for each call: a generic plan cached while the outbox was small scans it.
            .persistent(false)
            .execute(&mut *tx)
            .await?;
        for (id, error) in &failed {
            sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
                .bind(id)
                .bind(error)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::Span::current().record("sent", sent.len());
        if let Some(m) = &self.metrics {
            m.count("lots_outbox_published_total", "Events published to JetStream.", &[], sent.len() as f64);
        }
        if let Some((_, error)) = failed.first() {
            return Err(crate::Error::Nats(format!(
                "{} of {} events not acknowledged: {error}",
                failed.len(),
                failed.len() + sent.len()
            )));
        }
        Ok(sent.len())
    }
}
