//! One writer per tenant. A tenant's routing decisions are made by one task that holds the
//! tenant's lease (see `lease`): it alone owns the tenant's state in memory, consumes the
//! tenant's events from its own filtered durable consumer, and applies every command that
//! changes the tenant's officers, bookings or tasks — including accept, decline, complete,
//! busy time and absence, which reach it from any replica (in process, or over a NATS request
//! on the tenant's control subject).
//!
//! Who writes what at the same time: per tenant, only its writer writes `cases`, `meetings`,
//! `bookings`, `tasks`, `company_officers`, `task_changes` and officers' counters; different
//! tenants' writers touch disjoint rows. Each batch is one transaction that also renews the
//! lease, so a writer that lost its lease cannot commit. The exclusion constraint on bookings
//! stays as the last guard: a conflict fails the batch, which is retried (bounded, with
//! jitter) on freshly loaded state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, Message, consumer::pull};
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use lots_domain::tenant::TenantConfig;
use lots_events::{
    CaseClosed, CaseOwner, CaseRegistered, CaseRouted, CaseUnroutable, CaseWithdrawn, Envelope, Payload, SeatOffer,
    TaskRef, Views,
};
use lots_platform::consumer::{self, Admit, Outcome};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::lease;
use crate::plan::{self, Decision, NewCase};
use crate::route::Routing;
use crate::state::TenantState;
use crate::store::{BatchWrite, NewCaseRow, NewTask, TaskRow};

/// Most events and commands one batch transaction takes.
const MAX_BATCH: usize = 512;
/// Attempts at one batch before its events are handed back for redelivery.
const BATCH_ATTEMPTS: u32 = 5;
/// Deliveries before an event is dead-lettered.
const MAX_DELIVERIES: i64 = 10;
/// How long a forwarded command waits for the tenant's writer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// Most busy ranges one command may replace.
pub const MAX_BUSY_RANGES: usize = 5_000;
/// Longest decline reason.
pub const MAX_REASON_CHARS: usize = 2_000;
/// How long a command's reply is kept for retries.
const REPLY_RETENTION_HOURS: i32 = 24;
/// The queue group of writers on a control subject: one of them answers each command.
const CONTROL_QUEUE: &str = "routing-writer";

/// A change to a tenant's tasks or calendars, applied by the tenant's writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Accept {
        officer: String,
        task_id: Uuid,
    },
    Decline {
        officer: String,
        task_id: Uuid,
        reason: String,
    },
    Complete {
        officer: String,
        task_id: Uuid,
    },
    SetBusy {
        officer: String,
        source: String,
        ranges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    },
    AddAbsence {
        officer: String,
        period: (DateTime<Utc>, DateTime<Utc>),
        note: Option<String>,
    },
    /// Applies a dead-lettered event again (`DeadLetterService/ReplayDeadLetter`).
    Replay {
        event: ReplayedEvent,
    },
    /// Makes `officer` the case's owner; `units` are the caller's (None: any unit).
    ReassignOwner {
        case_id: Uuid,
        officer: String,
        reason: String,
        units: Option<Vec<String>>,
    },
}

/// A dead-lettered event on its way to the writer; `Debug` shows only its identity (the payload
/// may hold a personnummer).
#[derive(Clone, Serialize, Deserialize)]
pub struct ReplayedEvent(pub Envelope);

impl std::fmt::Debug for ReplayedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} v{}", self.0.kind, self.0.id, self.0.version)
    }
}

impl Request {
    /// Checks the request itself, so a command is refused the same way whichever replica or
    /// subject it came through.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, message: &str| Err(Error::Invalid { field, message: message.into() });
        let officer = match self {
            Request::Accept { officer, .. } | Request::Complete { officer, .. } => officer,
            Request::Decline { officer, reason, .. } => {
                let reason = reason.trim();
                if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                    return invalid("reason", "is required (at most 2000 characters)");
                }
                officer
            }
            Request::SetBusy { officer, source, ranges } => {
                if source.trim().is_empty() {
                    return invalid("source", "is required");
                }
                if ranges.len() > MAX_BUSY_RANGES {
                    return invalid("busy", "holds more than 5000 ranges");
                }
                if ranges.iter().any(|(s, e)| e <= s) {
                    return invalid("busy.end", "must be after start");
                }
                officer
            }
            Request::AddAbsence { officer, period, .. } => {
                if period.1 <= period.0 {
                    return invalid("period.end", "must be after start");
                }
                officer
            }
            Request::Replay { .. } => return Ok(()),
            Request::ReassignOwner { officer, reason, .. } => {
                let reason = reason.trim();
                if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                    return invalid("reason", "is required (at most 2000 characters)");
                }
                officer
            }
        };
        if officer.trim().is_empty() {
            return invalid("officer_id", "is required");
        }
        Ok(())
    }
}

/// A request with the id that makes its retries harmless.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub id: Uuid,
    pub request: Request,
    /// The caller's audit entry, written in the batch's transaction when the command applies.
    #[serde(default)]
    pub audit: Option<lots_platform::audit::Entry>,
}

/// What a request returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Task(Box<TaskRow>),
    Stored(u32),
    Replayed(ReplayOutcome),
    /// The case's owner: (officer, unit).
    Owner(String, String),
}

/// What replaying an event did in the writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReplayOutcome {
    Applied,
    Duplicate,
    Waiting(u64),
    Failed(String),
}

/// What applying one event did, before it becomes an acknowledgement or a replay's answer.
enum Applied {
    Done,
    Duplicate,
    Waiting { expected: u64, source: &'static str },
    Unreadable(String),
}

/// An error as it travels back from a writer on another replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
    /// The request field a refusal names (code "invalid").
    #[serde(default)]
    pub field: Option<String>,
}

/// Fields a writer may refuse, as the static names `Error::Invalid` carries.
const WIRE_FIELDS: &[&str] =
    &["officer_id", "reason", "source", "busy", "busy.end", "period.end", "case_id", "task_id"];

impl From<Error> for WireError {
    fn from(err: Error) -> Self {
        let (code, message) = match &err {
            Error::NotFound(m) => ("not_found", m.clone()),
            Error::Precondition(m) => ("precondition", m.clone()),
            Error::PermissionDenied(m) => ("permission_denied", m.clone()),
            Error::Invalid { field, message } => {
                return WireError { code: "invalid".into(), message: message.clone(), field: Some((*field).into()) };
            }
            other => {
                tracing::error!(error = %lots_platform::error::chain(other), "routing writer command failed");
                ("unavailable", "routing could not apply the change; try again".to_owned())
            }
        };
        WireError { code: code.to_owned(), message, field: None }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        match w.code.as_str() {
            "not_found" => Error::NotFound(w.message),
            "precondition" => Error::Precondition(w.message),
            "permission_denied" => Error::PermissionDenied(w.message),
            "invalid" => match WIRE_FIELDS.iter().find(|f| w.field.as_deref() == Some(**f)) {
                Some(field) => Error::Invalid { field, message: w.message },
                None => Error::Precondition(format!("{}: {}", w.field.unwrap_or_default(), w.message)),
            },
            _ => Error::Platform(lots_platform::Error::Nats(w.message)),
        }
    }
}

type Answer = std::result::Result<Reply, WireError>;
type ReplyTx = oneshot::Sender<Answer>;
/// Where a tenant's writer takes its commands.
type CommandTx = mpsc::Sender<(Command, ReplyTx)>;

/// The writers running in this replica, and the way to any tenant's writer.
#[derive(Clone)]
pub struct Writers {
    holder: Uuid,
    local: Arc<Mutex<HashMap<String, CommandTx>>>,
    nats: async_nats::Client,
    subjects: lots_events::Subjects,
}

impl Writers {
    /// No writers yet; `holder` names this replica in leases.
    pub fn new(nats: async_nats::Client, subjects: lots_events::Subjects) -> Self {
        Writers { holder: Uuid::now_v7(), local: Arc::default(), nats, subjects }
    }

    fn local(&self, tenant: &str) -> Option<CommandTx> {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).get(tenant).cloned()
    }

    /// Whether this replica writes `tenant` now.
    pub fn writes(&self, tenant: &str) -> bool {
        self.local(tenant).is_some()
    }

    /// Applies `request` through `tenant`'s writer, wherever it runs. While no writer answers
    /// (one is starting, or taking over after a replica died) it keeps trying for a while; every
    /// try carries the same command id (`id`, from the caller's idempotency key, or a new one),
    /// so the writer applies it at most once.
    pub async fn call(
        &self,
        tenant: &str,
        request: Request,
        id: Option<Uuid>,
        audit: Option<lots_platform::audit::Entry>,
    ) -> Result<Reply> {
        request.validate()?;
        let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
        let command = Command { id: id.unwrap_or_else(Uuid::now_v7), request, audit };
        let payload = serde_json::to_vec(&command).map_err(lots_platform::Error::from)?;
        let subject = self.subjects.control("routing", tenant);
        loop {
            let answer: Option<Answer> = if let Some(tx) = self.local(tenant) {
                let (reply, rx) = oneshot::channel();
                match tx.send((command.clone(), reply)).await {
                    Ok(()) => rx.await.ok(),
                    Err(_) => None,
                }
            } else {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, self.nats.request(subject.clone(), payload.clone().into())).await {
                    Ok(Ok(msg)) => Some(serde_json::from_slice(&msg.payload).map_err(lots_platform::Error::from)?),
                    _ => None,
                }
            };
            match answer {
                // A writer that is giving up its lease says so; the next one will answer.
                Some(Err(e)) if e.code == "unavailable" && tokio::time::Instant::now() < deadline => {}
                Some(answer) => return answer.map_err(Error::from),
                None if tokio::time::Instant::now() >= deadline => return Err(unavailable(tenant)),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Takes a writer out of this replica's registry when its task ends, however it ends.
struct Registered {
    writers: Writers,
    tenant: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.writers.local.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.tenant);
    }
}

fn unavailable(tenant: &str) -> Error {
    Error::Platform(lots_platform::Error::Nats(format!(
        "no routing writer answered for tenant {tenant} (one takes over within seconds); try again"
    )))
}

/// Keeps one writer running per configured tenant whose lease this replica can take, until
/// `token` is cancelled.
pub async fn supervise(routing: Routing, writers: Writers, token: CancellationToken) {
    let tracker = TaskTracker::new();
    let mut shared_retired = false;
    loop {
        if !shared_retired {
            shared_retired = retire_shared_consumer(&routing).await.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "cannot check the shared routing consumer");
                false
            });
        }
        for tenant in routing.tenants.iter() {
            let code = tenant.kommunkod.clone();
            if writers.writes(&code) {
                continue;
            }
            match lease::acquire(&routing.pool, &code, writers.holder).await {
                Ok(Some(epoch)) => {
                    let (tx, rx) = mpsc::channel(256);
                    writers.local.lock().unwrap_or_else(|p| p.into_inner()).insert(code.clone(), tx);
                    let (routing, writers, token, tenant) =
                        (routing.clone(), writers.clone(), token.clone(), tenant.clone());
                    // The writer serves one tenant: row-level security holds it (and the commands it
                    // applies for callers) to that tenant's rows.
                    tracker.spawn(lots_platform::db::scoped(code.clone(), async move {
                        tracing::info!(tenant = %code, epoch, "routing writer starts");
                        let registered = Registered { writers: writers.clone(), tenant: code.clone() };
                        let result = run_writer(&routing, &writers, tenant, epoch, rx, &token).await;
                        drop(registered);
                        if let Err(err) = lease::release(&routing.pool, &code, writers.holder, epoch).await {
                            tracing::warn!(error = %err, tenant = %code, "cannot release the writer lease");
                        }
                        match result {
                            Ok(()) => tracing::info!(tenant = %code, "routing writer stopped"),
                            Err(err) => tracing::warn!(
                                tenant = %code,
                                error = %lots_platform::error::chain(&err),
                                "routing writer ended; it restarts"
                            ),
                        }
                    }));
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, tenant = %code, "cannot take the writer lease"),
            }
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(lease::TAKEOVER_POLL) => {}
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// One tenant's writer: load, consume, batch, until the lease is lost or `token` cancelled.
async fn run_writer(
    routing: &Routing,
    writers: &Writers,
    config: Arc<TenantConfig>,
    epoch: i64,
    mut commands: mpsc::Receiver<(Command, ReplyTx)>,
    token: &CancellationToken,
) -> Result<()> {
    let tenant = config.kommunkod.clone();
    // Only the lease holder writes the tenant's officers, so the configuration is loaded here
    // rather than by every replica at start, behind a running writer's back.
    crate::officers::sync_tenant(&routing.pool, &config, &routing.config_dir, routing.clock.now(), &routing.metrics)
        .await?;
    let mut writer = Writer {
        routing: routing.clone(),
        state: load_state(routing, &config).await?,
        config,
        holder: writers.holder,
        epoch,
    };
    let consumer = tenant_consumer(routing, &tenant).await?;
    let _lag = lots_platform::consumer::report_lag(consumer.clone(), routing.metrics.clone());
    let mut messages = consumer.messages().await.map_err(nats)?;
    // Commands forwarded from other replicas arrive on the tenant's control subject; during a
    // takeover two writers may listen, and the queue group gives each command to one of them.
    let mut control = writers
        .nats
        .queue_subscribe(routing.subjects.control("routing", &tenant), CONTROL_QUEUE.to_owned())
        .await
        .map_err(nats)?;
    let forward = writers.local(&tenant).ok_or_else(|| Error::Config("writer not registered".into()))?;
    let forwarder = tokio::spawn({
        let nats = writers.nats.clone();
        async move {
            while let Some(msg) = control.next().await {
                let Some(reply_to) = msg.reply.clone() else { continue };
                let answer = match serde_json::from_slice::<Command>(&msg.payload) {
                    Ok(command) => {
                        let (reply, rx) = oneshot::channel();
                        if forward.send((command, reply)).await.is_err() {
                            break;
                        }
                        rx.await.unwrap_or_else(|_| {
                            Err(WireError {
                                code: "unavailable".into(),
                                message: "the writer stopped".into(),
                                field: None,
                            })
                        })
                    }
                    Err(_) => Err(WireError {
                        code: "precondition".into(),
                        message: "not a routing command".into(),
                        field: None,
                    }),
                };
                if let Ok(body) = serde_json::to_vec(&answer)
                    && let Err(err) = nats.publish(reply_to, body.into()).await
                {
                    tracing::warn!(error = %err, "cannot answer a forwarded routing command");
                }
            }
        }
    });
    let mut pruned = tokio::time::Instant::now();
    let local_day = |t: DateTime<Utc>| t.with_timezone(&lots_domain::calendar::TZ).date_naive();
    let mut calendars_day = local_day(routing.clock.now());
    let result = async {
        loop {
            let mut events: Vec<Message> = Vec::new();
            let mut requests: Vec<(Command, ReplyTx)> = Vec::new();
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                next = messages.next() => match next {
                    Some(Ok(msg)) => events.push(msg),
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "routing consumer error; continuing");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => return Err(Error::Config("the tenant's consumer ended".into())),
                },
                Some(cmd) = commands.recv() => requests.push(cmd),
                _ = tokio::time::sleep(lease::RENEW_EVERY) => {}
            }
            if pruned.elapsed() > PRUNE_EVERY {
                pruned = tokio::time::Instant::now();
                if let Err(err) = prune_replies(&routing.pool, &tenant).await {
                    tracing::warn!(error = %err, "cannot prune old command replies");
                }
            }
            // A new day: recurring calendar entries are expanded again from today.
            let now = routing.clock.now();
            if local_day(now) != calendars_day {
                match writer.reload_calendars(now).await {
                    Ok(()) => calendars_day = local_day(now),
                    Err(err) => tracing::warn!(error = %err, "cannot re-read the officers' calendars; retrying"),
                }
            }
            // Whatever else is already here joins the batch.
            while events.len() + requests.len() < MAX_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(msg))) => events.push(msg),
                    _ => break,
                }
            }
            while events.len() + requests.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(cmd) => requests.push(cmd),
                    Err(_) => break,
                }
            }
            writer.run(events, requests).await?;
        }
    }
    .await;
    forwarder.abort();
    result
}

/// The answer a command with this id already got, if it was applied before.
async fn stored_reply(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Answer>> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT reply FROM command_replies WHERE id = $1").bind(id).fetch_optional(conn).await?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose().map_err(lots_platform::Error::from)?)
}

async fn store_reply(conn: &mut sqlx::PgConnection, tenant: &str, id: Uuid, answer: &Answer) -> Result<()> {
    let text = serde_json::to_string(answer).map_err(lots_platform::Error::from)?;
    sqlx::query("INSERT INTO command_replies (id, tenant, reply) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(tenant)
        .bind(text)
        .execute(conn)
        .await?;
    Ok(())
}

/// How often a writer prunes its old command replies.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

async fn prune_replies(pool: &sqlx::PgPool, tenant: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM command_replies WHERE tenant = $1 AND done_at < now() - make_interval(hours => $2)")
        .bind(tenant)
        .bind(REPLY_RETENTION_HOURS)
        .execute(pool)
        .await?;
    Ok(())
}

fn nats(err: impl std::fmt::Display) -> Error {
    Error::Platform(lots_platform::Error::Nats(err.to_string()))
}

async fn load_state(routing: &Routing, config: &Arc<TenantConfig>) -> Result<TenantState> {
    let mut conn = routing.pool.acquire().await?;
    Ok(TenantState::load(&mut conn, config.clone(), routing.clock.now()).await?)
}

/// The tenant's durable consumer, filtered to the tenant and the events routing applies.
/// An existing one keeps its position and gets today's filter; a new one starts where the
/// pre-writer shared consumer `routing` stood, so the move neither replays nor skips events.
async fn tenant_consumer(routing: &Routing, tenant: &str) -> Result<jetstream::consumer::PullConsumer> {
    let js = jetstream::new(routing.nats.clone());
    let subjects = &routing.subjects;
    let stream = js.get_stream(subjects.stream_name()).await.map_err(nats)?;
    let durable = format!("{}-{tenant}", lots_events::views::ROUTING.service);
    let kinds = lots_events::views::ROUTING.applies;
    let filter: Vec<String> = kinds.iter().map(|k| subjects.event(tenant, k)).collect();
    let mut config = subjects.consumer_config(&durable, kinds);
    config.filter_subjects = filter.clone();
    config.filter_subject = String::new();
    match stream.get_consumer::<pull::Config>(&durable).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(nats)?;
            if info.config.filter_subjects == filter {
                return Ok(existing);
            }
            // An update may change the filter but not the start position.
            config.deliver_policy = info.config.deliver_policy;
        }
        Err(_) => {
            if let Ok(mut shared) = stream.get_consumer::<pull::Config>(lots_events::views::ROUTING.service).await
                && let Ok(info) = shared.info().await
            {
                config.deliver_policy = jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: info.ack_floor.stream_sequence + 1,
                };
            }
        }
    }
    stream.create_consumer(config).await.map_err(nats)
}

/// Deletes the pre-writer shared consumer once every configured tenant has its own, so it
/// stops holding messages; its position was only needed to start the tenants' consumers.
async fn retire_shared_consumer(routing: &Routing) -> Result<bool> {
    let js = jetstream::new(routing.nats.clone());
    let stream = js.get_stream(routing.subjects.stream_name()).await.map_err(nats)?;
    let shared = lots_events::views::ROUTING.service;
    if stream.get_consumer::<pull::Config>(shared).await.is_err() {
        return Ok(true);
    }
    for tenant in routing.tenants.iter() {
        let durable = format!("{shared}-{}", tenant.kommunkod);
        if stream.get_consumer::<pull::Config>(&durable).await.is_err() {
            return Ok(false);
        }
    }
    stream.delete_consumer(shared).await.map_err(nats)?;
    tracing::info!("every tenant has its own routing consumer; the shared one is removed");
    Ok(true)
}

struct Writer {
    routing: Routing,
    config: Arc<TenantConfig>,
    state: TenantState,
    holder: Uuid,
    epoch: i64,
}

/// Why a batch did not commit.
enum BatchError {
    /// Another replica holds the tenant now: stop writing.
    LeaseLost,
    /// Anything else: reload and try again.
    Failed(Error),
}

impl<E: Into<Error>> From<E> for BatchError {
    fn from(err: E) -> Self {
        BatchError::Failed(err.into())
    }
}

/// What a batch did besides its rows, applied to memory only after it committed.
#[derive(Default)]
struct Effects {
    outcomes: Vec<Outcome>,
    replies: Vec<std::result::Result<Reply, WireError>>,
    /// Cases whose officers changed in SQL (ended, declined): their officers are re-read.
    cases: Vec<Uuid>,
    officers: Vec<String>,
    /// (outcome, registered) per decided case, for metrics.
    decided: Vec<(&'static str, DateTime<Utc>)>,
}

impl Writer {
    /// Re-reads the calendar files (from `now`) and the tenant's state that depends on them.
    async fn reload_calendars(&mut self, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.routing.pool.begin().await?;
        crate::officers::load_calendars(&mut tx, &self.config, &self.routing.config_dir, now, &self.routing.metrics)
            .await?;
        tx.commit().await?;
        self.state = load_state(&self.routing, &self.config).await?;
        Ok(())
    }

    /// Applies a batch in one transaction, retrying on fresh state when it fails. A batch that
    /// keeps failing is split, so one poisonous event or command cannot sink the others.
    async fn run(&mut self, events: Vec<Message>, requests: Vec<(Command, ReplyTx)>) -> Result<()> {
        let (commands, replies): (Vec<Command>, Vec<ReplyTx>) = requests.into_iter().unzip();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_batch(&events, &commands).await {
                Ok(effects) => {
                    self.after_commit(&events, replies, effects).await;
                    return Ok(());
                }
                Err(BatchError::LeaseLost) => {
                    // The new writer shares this consumer: hand the events over at once.
                    for msg in &events {
                        if let Err(err) = msg.ack_with(jetstream::AckKind::Nak(None)).await {
                            tracing::warn!(error = %err, "cannot hand an event back");
                        }
                    }
                    for reply in replies {
                        let _ = reply.send(Err(WireError {
                            code: "unavailable".into(),
                            message: "routing for this tenant moved to another replica; try again".into(),
                            field: None,
                        }));
                    }
                    return Err(Error::Config("lost the tenant's writer lease".into()));
                }
                Err(BatchError::Failed(err)) => {
                    let why = lots_platform::error::chain(&err);
                    self.routing.metrics.count(
                        "lots_routing_batch_retries_total",
                        "Routing batches retried after a failure.",
                        &[],
                        1.0,
                    );
                    // Memory may hold decisions of the batch that did not commit.
                    match load_state(&self.routing, &self.config).await {
                        Ok(state) => self.state = state,
                        Err(e) => tracing::warn!(error = %e, "cannot reload routing state"),
                    }
                    if events.len() + commands.len() > 1 && attempt >= 2 {
                        tracing::warn!(error = why, items = events.len() + commands.len(), "routing batch split");
                        for msg in events {
                            Box::pin(self.run(vec![msg], Vec::new())).await?;
                        }
                        for pair in commands.into_iter().zip(replies) {
                            Box::pin(self.run(Vec::new(), vec![pair])).await?;
                        }
                        return Ok(());
                    }
                    if attempt >= BATCH_ATTEMPTS {
                        tracing::error!(error = why, attempt, "routing batch failed; its events are redelivered");
                        for msg in &events {
                            let outcome = Outcome::Retry { readable: true, error: why.clone() };
                            consumer::settle(
                                &self.routing.pool,
                                Some(&self.routing.metrics),
                                MAX_DELIVERIES,
                                msg,
                                outcome,
                            )
                            .await;
                        }
                        for reply in replies {
                            let _ = reply
                                .send(Err(WireError::from(Error::Platform(lots_platform::Error::Nats(why.clone())))));
                        }
                        return Ok(());
                    }
                    tracing::warn!(error = why, attempt, "routing batch failed; retrying on fresh state");
                    let jitter = u64::from(Uuid::now_v7().as_u128() as u16 % 100);
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt) + jitter)).await;
                }
            }
        }
    }

    async fn try_batch(
        &mut self,
        events: &[Message],
        commands: &[Command],
    ) -> std::result::Result<Effects, BatchError> {
        let now = self.routing.clock.now();
        let tenant = self.config.kommunkod.clone();
        let mut tx = self.routing.pool.begin().await?;
        if !lease::renew(&mut *tx, &tenant, self.holder, self.epoch).await? {
            return Err(BatchError::LeaseLost);
        }
        let mut write = BatchWrite::default();
        let mut effects = Effects::default();
        for msg in events {
            let outcome = self.apply_event(&mut tx, &mut write, &mut effects, msg, now).await?;
            effects.outcomes.push(outcome);
        }
        for command in commands {
            // A retried command gets its first answer and is not applied again.
            if let Some(first) = stored_reply(&mut tx, command.id).await? {
                effects.replies.push(first);
                continue;
            }
            if let Request::Replay { event } = &command.request {
                let outcome = match self.apply_envelope(&mut tx, &mut write, &mut effects, &event.0, None, now).await? {
                    Applied::Done => ReplayOutcome::Applied,
                    Applied::Duplicate => ReplayOutcome::Duplicate,
                    Applied::Waiting { expected, .. } => ReplayOutcome::Waiting(expected),
                    Applied::Unreadable(why) => ReplayOutcome::Failed(why),
                };
                let answer = Ok(Reply::Replayed(outcome));
                store_reply(&mut tx, &tenant, command.id, &answer).await?;
                effects.replies.push(answer);
                continue;
            }
            // Commands work on rows in SQL; the batch's new rows must be there first.
            write.flush(&mut tx, &tenant, &self.routing.subjects, now).await?;
            let mut sp = tx.begin().await?;
            let answer = match self.apply_command(&mut sp, &mut effects, &command.request).await {
                Ok(reply) => {
                    // The change and who made it commit together.
                    if let Some(entry) = &command.audit {
                        lots_platform::audit::record(&mut *sp, entry).await?;
                    }
                    sp.commit().await?;
                    Ok(reply)
                }
                Err(Error::Database(e)) => return Err(BatchError::Failed(Error::Database(e))),
                Err(err) => {
                    sp.rollback().await?;
                    Err(WireError::from(err))
                }
            };
            store_reply(&mut tx, &tenant, command.id, &answer).await?;
            effects.replies.push(answer);
        }
        write.flush(&mut tx, &tenant, &self.routing.subjects, now).await?;
        tx.commit().await?;
        Ok(effects)
    }

    async fn apply_event(
        &mut self,
        tx: &mut sqlx::PgConnection,
        write: &mut BatchWrite,
        effects: &mut Effects,
        msg: &Message,
        now: DateTime<Utc>,
    ) -> std::result::Result<Outcome, BatchError> {
        let event: Envelope = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(err) => return Ok(Outcome::Retry { readable: false, error: format!("not a Lotsen event: {err}") }),
        };
        let headers = Some((msg.subject.as_str(), msg.headers.as_ref()));
        Ok(match self.apply_envelope(tx, write, effects, &event, headers, now).await? {
            Applied::Done => Outcome::Applied,
            Applied::Duplicate => Outcome::Skipped,
            Applied::Waiting { expected, source } => {
                let error = format!("waiting for version {expected} of this case from {source}");
                Outcome::Retry { readable: true, error }
            }
            Applied::Unreadable(error) => Outcome::Retry { readable: false, error },
        })
    }

    /// Applies one event (from the consumer, with its subject and headers, or replayed).
    async fn apply_envelope(
        &mut self,
        tx: &mut sqlx::PgConnection,
        write: &mut BatchWrite,
        effects: &mut Effects,
        event: &Envelope,
        delivery: Option<(&str, Option<&async_nats::HeaderMap>)>,
        now: DateTime<Utc>,
    ) -> std::result::Result<Applied, BatchError> {
        let registered = match event.decode::<CaseRegistered>().transpose() {
            Ok(r) => r,
            Err(err) => return Ok(Applied::Unreadable(format!("bad case.registered: {err}"))),
        };
        match consumer::admit(&mut *tx, lots_events::views::ROUTING.service, event).await? {
            Admit::Duplicate => return Ok(Applied::Duplicate),
            Admit::Gap { expected } => {
                sqlx::query("DELETE FROM inbox WHERE event_id = $1").bind(event.id).execute(&mut *tx).await?;
                return Ok(Applied::Waiting { expected, source: event.source.as_str() });
            }
            Admit::Fresh => {}
        }
        // One span per event, continuing the trace that produced it.
        let span = tracing::info_span!(
            "platform.consume",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.destination.name = delivery.map_or("replay", |d| d.0),
            case_id = %event.case_id,
        );
        if let Some((_, headers)) = delivery {
            lots_platform::nats::set_parent_from_headers(&span, headers);
        }
        if let Some(data) = registered {
            let _entered = span.enter();
            let _route = tracing::info_span!("routing.route_case", case_id = %event.case_id).entered();
            let outcome = self.route_new(write, event, data, now);
            effects.decided.push((outcome, event.occurred_at));
        } else if event.kind == CaseClosed::TYPE || event.kind == CaseWithdrawn::TYPE {
            write.flush(&mut *tx, &self.config.kommunkod, &self.routing.subjects, now).await?;
            let reason = if event.kind == CaseClosed::TYPE { "the case was closed" } else { "the case was withdrawn" };
            self.routing.on_ended(&mut *tx, event.case_id, reason).instrument(span).await?;
            effects.cases.push(event.case_id);
        }
        consumer::advance(&mut *tx, event).await?;
        Ok(Applied::Done)
    }

    /// Decides a new case in memory and adds its rows and its one event to the batch.
    fn route_new(
        &mut self,
        write: &mut BatchWrite,
        event: &Envelope,
        data: CaseRegistered,
        now: DateTime<Utc>,
    ) -> &'static str {
        let case = NewCase {
            case_type: data.case_type.clone(),
            company_key: data.company_key.clone(),
            registered_at: event.occurred_at,
        };
        let tenant = self.config.kommunkod.clone();
        let mut views = Views::default();
        let mut row = NewCaseRow {
            id: event.case_id,
            tenant: tenant.clone(),
            reference: data.reference,
            case_type: data.case_type,
            company_key: data.company_key,
            company_name: data.company_name,
            contact_name: data.contact.name,
            contact_email: data.contact.email,
            registered_at: event.occurred_at,
            unroutable_reason: None,
            views: Views::default(),
            owner: None,
        };
        let (outcome, raw) = match plan::decide(&self.state, &case, now) {
            Decision::Routed { slot, seats, owner } => {
                let meeting_id = Uuid::now_v7();
                let location = self
                    .config
                    .meeting_location
                    .clone()
                    .unwrap_or_else(|| format!("{}, näringslivskontoret", self.config.name));
                let mut offers = Vec::with_capacity(seats.len());
                for seat in &seats {
                    let task_id = Uuid::now_v7();
                    self.state.offered(&seat.officer_id, &row.company_key, &seat.competence, slot, now);
                    write.tasks.push(NewTask {
                        id: task_id,
                        case_id: row.id,
                        meeting_id,
                        officer_id: seat.officer_id.clone(),
                        unit: seat.unit.clone(),
                        competence: seat.competence.clone(),
                        optional: seat.optional,
                        slot,
                        company_key: row.company_key.clone(),
                    });
                    offers.push(SeatOffer {
                        task: TaskRef {
                            task_id,
                            meeting_id,
                            officer_id: seat.officer_id.clone(),
                            unit: seat.unit.clone(),
                            competence: seat.competence.clone(),
                        },
                        optional: seat.optional,
                    });
                }
                let owner =
                    seats.get(owner).map(|s| CaseOwner { officer_id: s.officer_id.clone(), unit: s.unit.clone() });
                let owner = owner.unwrap_or(CaseOwner { officer_id: String::new(), unit: String::new() });
                row.owner = Some(owner.officer_id.clone()).filter(|o| !o.is_empty());
                write.meetings.push((meeting_id, row.id, slot, location.clone()));
                let data =
                    CaseRouted { meeting_id, starts_at: slot.start, ends_at: slot.end, location, seats: offers, owner };
                ("routed", Envelope::new(&tenant, row.id, 1, "routing", now, data).stamped(&mut views).into_raw())
            }
            Decision::Unroutable { reason } => {
                tracing::warn!(case_id = %row.id, reason, "case unroutable");
                row.unroutable_reason = Some(reason.clone());
                let data = CaseUnroutable { reason };
                ("unroutable", Envelope::new(&tenant, row.id, 1, "routing", now, data).stamped(&mut views).into_raw())
            }
        };
        row.views = views;
        write.cases.push(row);
        match raw {
            Ok(event) => write.events.push((event, lots_platform::nats::current_traceparent())),
            Err(err) => tracing::error!(error = %err, "cannot serialise a routing event"),
        }
        outcome
    }

    async fn apply_command(
        &mut self,
        conn: &mut sqlx::PgConnection,
        effects: &mut Effects,
        command: &Request,
    ) -> Result<Reply> {
        command.validate()?;
        let tenant = self.config.kommunkod.clone();
        let routing = &self.routing;
        match command {
            Request::Accept { officer, task_id } => {
                Ok(Reply::Task(Box::new(routing.accept(conn, &tenant, officer, *task_id).await?)))
            }
            Request::Complete { officer, task_id } => {
                let task = routing.complete(conn, &tenant, officer, *task_id).await?;
                effects.officers.push(officer.clone());
                Ok(Reply::Task(Box::new(task)))
            }
            Request::Decline { officer, task_id, reason } => {
                let task = routing.decline(conn, &tenant, officer, *task_id, reason).await?;
                effects.cases.push(task.case_id);
                effects.officers.push(officer.clone());
                Ok(Reply::Task(Box::new(task)))
            }
            Request::SetBusy { officer, source, ranges } => {
                let stored = crate::officers::replace_busy(conn, &tenant, officer, source, ranges, None).await?;
                effects.officers.push(officer.clone());
                Ok(Reply::Stored(stored))
            }
            Request::AddAbsence { officer, period, note } => {
                let stored = crate::officers::add_absence(conn, &tenant, officer, *period, note.as_deref()).await?;
                effects.officers.push(officer.clone());
                Ok(Reply::Stored(stored))
            }
            Request::ReassignOwner { case_id, officer, reason, units } => {
                let (officer, unit) =
                    routing.reassign_owner(conn, &tenant, *case_id, officer, reason.trim(), units.as_deref()).await?;
                effects.cases.push(*case_id);
                Ok(Reply::Owner(officer, unit))
            }
            // Applied in the batch itself (see `try_batch`).
            Request::Replay { .. } => Err(Error::Config("a replay reached the command path".into())),
        }
    }

    async fn after_commit(&mut self, events: &[Message], replies: Vec<ReplyTx>, effects: Effects) {
        for (outcome, registered) in &effects.decided {
            self.routing.outcome(outcome, *registered);
        }
        self.routing.relay.notify_one();
        for (msg, outcome) in events.iter().zip(effects.outcomes) {
            consumer::settle(&self.routing.pool, Some(&self.routing.metrics), MAX_DELIVERIES, msg, outcome).await;
        }
        for (reply, answer) in replies.into_iter().zip(effects.replies) {
            let _ = reply.send(answer);
        }
        if effects.cases.is_empty() && effects.officers.is_empty() {
            return;
        }
        let now = self.routing.clock.now();
        let refreshed = async {
            let mut conn = self.routing.pool.acquire().await?;
            let mut officers: Vec<String> =
                sqlx::query_scalar("SELECT DISTINCT officer_id FROM tasks WHERE case_id = ANY ($1)")
                    .bind(&effects.cases)
                    // Planned per call, like every batch read by a key array (see lots_platform::consumer).
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await?;
            officers.extend(effects.officers.iter().cloned());
            officers.sort();
            officers.dedup();
            self.state.reload_officers(&mut conn, &officers, now).await
        }
        .await;
        if let Err(err) = refreshed {
            tracing::warn!(error = %err, "cannot re-read officers; reloading the tenant");
            if let Ok(state) = load_state(&self.routing, &self.config).await {
                self.state = state;
            }
        }
    }
}

/// Replays dead letters through the tenant's writer, wherever it runs: the writer owns the
/// tenant's state, so a replayed `case.registered` is decided like any other.
pub struct WriterReplayer(pub Writers);

impl lots_platform::dead_letters::Replayer for WriterReplayer {
    async fn replay(&self, event: Envelope) -> std::result::Result<lots_platform::dead_letters::Replayed, String> {
        use lots_platform::dead_letters::Replayed;
        let tenant = event.tenant.clone();
        // A new command id each time: replaying again after a fix must apply again.
        match self.0.call(&tenant, Request::Replay { event: ReplayedEvent(event) }, None, None).await {
            Ok(Reply::Replayed(ReplayOutcome::Applied)) => Ok(Replayed::Applied),
            Ok(Reply::Replayed(ReplayOutcome::Duplicate)) => Ok(Replayed::Duplicate),
            Ok(Reply::Replayed(ReplayOutcome::Waiting(expected))) => Ok(Replayed::Waiting { expected }),
            Ok(Reply::Replayed(ReplayOutcome::Failed(why))) => Err(why),
            Ok(_) => Err("unexpected reply from the routing writer".into()),
            Err(err) => Err(err.to_string()),
        }
    }
}
