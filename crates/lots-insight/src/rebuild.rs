//! `lots-insight rebuild`: empty the read models and replay the stream into them.
//!
//! Safe beside running replicas: the replay and the durable consumer are two deliveries of the
//! same events, and the inbox and per-case cursors (emptied with the models, in one
//! transaction) make each apply once. NKI results are imported, not derived, and stay.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use lots_events::{Envelope, Subjects};
use lots_platform::Tenants;
use lots_platform::consumer::{Admit, Handler, admit, advance};
use lots_platform::db;
use sqlx::{Connection, PgPool};

use crate::config::Config;
use crate::events::Insight;

/// Events applied per transaction.
const BATCH: usize = 256;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Events applied.
    pub applied: u64,
    /// Events still waiting for an earlier one of their case (the durable consumer takes them).
    pub waiting: u64,
}

/// The command: connect, rebuild, report.
pub async fn run(config: &Config, allow_partial: bool) -> anyhow::Result<()> {
    let parts = crate::app::connect(config).await?;
    let js = jetstream::new(parts.nats.clone());
    let done =
        db::scoped(db::SYSTEM, rebuild(&parts.pool, &js, &parts.subjects, &parts.tenants, allow_partial)).await?;
    tracing::info!(applied = done.applied, waiting = done.waiting, "read models rebuilt from the stream");
    println!("rebuilt from the stream: {} events applied, {} waiting for an earlier event", done.applied, done.waiting);
    parts.nats.drain().await.context("drain nats")?;
    Ok(())
}

/// Empties the read models and applies every event of insight's view the stream holds.
/// Refuses when the stream no longer holds its first events, unless `allow_partial`.
pub async fn rebuild(
    pool: &PgPool,
    js: &jetstream::Context,
    subjects: &Subjects,
    tenants: &Tenants,
    allow_partial: bool,
) -> anyhow::Result<Rebuilt> {
    db::migrate(pool, &crate::app::MIGRATIONS).await.context("migrate insight schema")?;
    let mut stream = js.get_stream(subjects.stream_name()).await.context("find the stream")?;
    let state = stream.info().await.context("read the stream's state")?.state.clone();
    if state.first_sequence > 1 && !allow_partial {
        bail!(
            "the stream no longer holds its first {} events (dropped by its age limit); a rebuild would lose \
             the figures they made. Run again with --allow-partial to rebuild from what it holds",
            state.first_sequence - 1
        );
    }
    let mut conn = pool.acquire().await.context("connect to postgres")?;
    let mut tx = conn.begin().await?;
    sqlx::query("TRUNCATE cases, history, facts, seats, clocks, inbox, case_cursor").execute(&mut *tx).await?;
    tx.commit().await?;
    drop(conn);

    let kinds: Vec<&str> = lots_events::views::INSIGHT.applies.to_vec();
    let durable = subjects.consumer_config("insight-rebuild", &kinds);
    let config = consumer::pull::Config {
        durable_name: None,
        name: None,
        ack_policy: consumer::AckPolicy::None,
        inactive_threshold: Duration::from_secs(60),
        ..durable
    };
    let replay: consumer::PullConsumer = stream.create_consumer(config).await.context("create the replay consumer")?;
    let mut replay = replay;
    let pending = replay.info().await.context("read the replay consumer")?.num_pending;
    let handler = Insight { tenants: Arc::new(tenants.clone()) };
    let mut done = Rebuilt { applied: 0, waiting: 0 };
    if pending == 0 {
        return Ok(done);
    }
    let last = state.last_sequence;
    let mut messages = replay.messages().await.context("read the stream")?;
    let mut batch: Vec<Envelope> = Vec::with_capacity(BATCH);
    let mut waiting: VecDeque<Envelope> = VecDeque::new();
    loop {
        let Ok(next) = tokio::time::timeout(Duration::from_secs(30), messages.next()).await else {
            bail!("the stream stopped delivering before its end (sequence {last}); run the rebuild again");
        };
        let Some(msg) = next else { bail!("the replay consumer ended before the stream's end; run the rebuild again") };
        let msg = msg.map_err(|e| anyhow::anyhow!("read the stream: {e}"))?;
        let info = msg.info().map_err(|e| anyhow::anyhow!("message info: {e}"))?;
        let (seq, left) = (info.stream_sequence, info.pending);
        match serde_json::from_slice::<Envelope>(&msg.payload) {
            Ok(event) => batch.push(event),
            Err(err) => tracing::warn!(seq, error = %err, "not a Lotsen event; skipped"),
        }
        let end = left == 0 || seq >= last;
        if batch.len() >= BATCH || end {
            done.applied += apply_batch(pool, &handler, std::mem::take(&mut batch), &mut waiting).await?;
        }
        if end {
            break;
        }
    }
    done.waiting = waiting.len() as u64;
    if done.waiting > 0 && !allow_partial {
        // Their cases would wait for a predecessor that never comes: say so instead of hiding it.
        let ids: Vec<String> = waiting.iter().take(10).map(|e| e.id.to_string()).collect();
        bail!(
            "{} events could not be applied (their case's earlier events are missing), e.g. {}",
            done.waiting,
            ids.join(", ")
        );
    }
    Ok(done)
}

/// Applies `batch` in one transaction, each event in a savepoint; an event whose predecessor
/// has not come yet waits in `waiting` and is tried again after each later batch.
async fn apply_batch(
    pool: &PgPool,
    handler: &Insight,
    batch: Vec<Envelope>,
    waiting: &mut VecDeque<Envelope>,
) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let mut applied = 0;
    let mut queue: VecDeque<Envelope> = batch.into();
    let mut progress = true;
    while progress {
        progress = false;
        // Events waiting for a predecessor get another chance whenever something was applied.
        queue.extend(waiting.drain(..));
        while let Some(event) = queue.pop_front() {
            let mut sp = tx.begin().await?;
            match admit(&mut sp, "insight", &event).await? {
                Admit::Duplicate => {
                    sp.rollback().await?;
                }
                Admit::Gap { .. } => {
                    sp.rollback().await?;
                    waiting.push_back(event);
                }
                Admit::Fresh => match handler.handle(&mut sp, &event).await {
                    Ok(()) => {
                        advance(&mut sp, &event).await?;
                        sp.commit().await?;
                        applied += 1;
                        progress = true;
                    }
                    // Like a gap: it may need an event still to come; the durable consumer
                    // retries (and dead-letters) it if not.
                    Err(err) => {
                        sp.rollback().await?;
                        tracing::debug!(kind = %event.kind, error = %err, "event not applicable yet");
                        waiting.push_back(event);
                    }
                },
            }
        }
    }
    tx.commit().await?;
    Ok(applied)
}
