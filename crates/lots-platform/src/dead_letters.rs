//! `DeadLetterService`: what an operator can do about events a service could not apply. Every
//! service serves it for its own consumer's dead-letter table; only admins may call it, and only
//! for their own municipality's letters.
//!
//! The rule for later events: an event of a case whose earlier event (same producer) lies open
//! in the dead-letter table cannot be applied, so it is dead-lettered at once, *held behind*
//! that letter, instead of being retried until it fails too. When the operator replays the
//! letter (applies it again, e.g. after a fix) or skips it (gives it up: the case's order moves
//! past it), the held letters follow in version order, until one still cannot be applied.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lots_events::Envelope;
use lots_proto::time::timestamp;
use lots_proto::v1 as pb;
use pb::dead_letter_service_server::DeadLetterService;
use sqlx::{FromRow, PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::{ApiError, ApiResult};
use crate::auth::{self, Caller};
use crate::consumer::{self, Admit, Handler};

/// What replaying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Its effect committed.
    Applied,
    /// It had been applied already: nothing to do.
    Duplicate,
    /// An earlier event of its case is still missing.
    Waiting { expected: u64 },
}

/// Applies a dead-lettered event again, the way the service's consumer would.
pub trait Replayer: Send + Sync + 'static {
    /// Applies `event`; `Err` carries why it still fails.
    fn replay(&self, event: Envelope) -> impl Future<Output = Result<Replayed, String>> + Send;
}

/// Replays through a consumer [`Handler`] in one transaction (intake, sla).
pub struct HandlerReplayer<H> {
    pub pool: PgPool,
    pub handler: Arc<H>,
    /// The consuming service's name (its view of the per-case order).
    pub view: &'static str,
}

impl<H: Handler> Replayer for HandlerReplayer<H> {
    async fn replay(&self, event: Envelope) -> Result<Replayed, String> {
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let admitted = consumer::admit(&mut tx, self.view, &event).await.map_err(|e| e.to_string())?;
        match admitted {
            Admit::Duplicate => return Ok(Replayed::Duplicate),
            Admit::Gap { expected } => return Ok(Replayed::Waiting { expected }),
            Admit::Fresh => {}
        }
        self.handler.handle(&mut tx, &event).await.map_err(|e| crate::error::chain(e.as_ref()))?;
        consumer::advance(&mut tx, &event).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        self.handler.committed(&event);
        Ok(Replayed::Applied)
    }
}

/// The gRPC face of a service's dead letters.
pub struct DeadLetterApi<R> {
    pub pool: PgPool,
    pub replayer: Arc<R>,
}

#[derive(FromRow)]
struct Letter {
    event_id: Uuid,
    subject: String,
    payload: Vec<u8>,
    error: String,
    deliveries: i64,
    created_at: DateTime<Utc>,
    event_type: String,
    case_id: Option<Uuid>,
    source: Option<String>,
    version: Option<i64>,
    status: String,
    held_behind: Option<Uuid>,
    resolved_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    note: Option<String>,
}

fn to_pb(l: &Letter, with_payload: bool) -> pb::DeadLetter {
    let payload = if !with_payload {
        String::new()
    } else if l.case_id.is_some() {
        String::from_utf8_lossy(&l.payload).into_owned()
    } else {
        // Not a Lotsen event: no tenant is known, so its bytes are not shown.
        format!("({} bytes that are not a Lotsen event)", l.payload.len())
    };
    pb::DeadLetter {
        event_id: l.event_id.to_string(),
        subject: l.subject.clone(),
        event_type: l.event_type.clone(),
        case_id: l.case_id.map(|c| c.to_string()).unwrap_or_default(),
        source: l.source.clone().unwrap_or_default(),
        version: l.version.unwrap_or(0).max(0) as u64,
        // Not a Lotsen event: no tenant is known, and the error may quote its bytes.
        error: if l.case_id.is_some() { l.error.clone() } else { "(not a Lotsen event)".into() },
        deliveries: l.deliveries,
        created_at: Some(timestamp(l.created_at)),
        status: l.status.clone(),
        held_behind: l.held_behind.map(|h| h.to_string()).unwrap_or_default(),
        payload,
        resolved_by: l.resolved_by.clone().unwrap_or_default(),
        resolved_at: l.resolved_at.map(timestamp),
        note: l.note.clone().unwrap_or_default(),
    }
}

fn event_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| ApiError::Invalid { field: "event_id", message: "must be a UUID".into() })
}

/// The caller's tenant's letter (an unreadable one belongs to no tenant), locked.
async fn locked(conn: &mut PgConnection, caller: &Caller, id: Uuid) -> ApiResult<Letter> {
    sqlx::query_as("SELECT * FROM dead_letter WHERE event_id = $1 AND tenant IN ($2, '') FOR UPDATE")
        .bind(id)
        .bind(&caller.tenant)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))
}

async fn resolve(conn: &mut PgConnection, caller: &Caller, id: Uuid, status: &str, note: &str) -> ApiResult<Letter> {
    let rpc =
        if status == "skipped" { "DeadLetterService/SkipDeadLetter" } else { "DeadLetterService/ReplayDeadLetter" };
    let entry = crate::audit::Entry::change(caller, rpc, vec![id.to_string()], serde_json::json!({ "status": status }));
    crate::audit::record(&mut *conn, &entry).await?;
    let actor = caller.actor();
    Ok(sqlx::query_as(
        "UPDATE dead_letter SET status = $2, resolved_by = $3, resolved_at = now(), note = NULLIF($4, '')
         WHERE event_id = $1 RETURNING *",
    )
    .bind(id)
    .bind(status)
    .bind(actor)
    .bind(note)
    .fetch_one(conn)
    .await?)
}

fn envelope(letter: &Letter) -> Option<Envelope> {
    letter.case_id.and_then(|_| serde_json::from_slice(&letter.payload).ok())
}

impl<R: Replayer> DeadLetterApi<R> {
    /// Applies one open letter again; on success it is marked replayed.
    async fn replay_one(&self, caller: &Caller, id: Uuid, note: &str) -> ApiResult<Letter> {
        let mut tx = self.pool.begin().await?;
        let letter = locked(&mut tx, caller, id).await?;
        match letter.status.as_str() {
            "open" => {}
            // A retried replay gets its first result.
            "replayed" => return Ok(letter),
            other => return Err(ApiError::Precondition(format!("dead letter {id} was {other} already"))),
        }
        let Some(event) = envelope(&letter) else {
            return Err(ApiError::Precondition("the payload is not a Lotsen event; it can only be skipped".into()));
        };
        if let Some(behind) = letter.held_behind {
            let open: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM dead_letter WHERE event_id = $1 AND status = 'open')")
                    .bind(behind)
                    .fetch_one(&mut *tx)
                    .await?;
            if open {
                return Err(ApiError::Precondition(format!(
                    "held behind dead letter {behind}: replay or skip that one first"
                )));
            }
        }
        match self.replayer.replay(event).await {
            Ok(Replayed::Applied | Replayed::Duplicate) => {}
            Ok(Replayed::Waiting { expected }) => {
                return Err(ApiError::Precondition(format!(
                    "an earlier event of the case is missing (waiting for version {expected} from {}); \
                     replay this one once that is applied, or skip it",
                    letter.source.as_deref().unwrap_or("?")
                )));
            }
            Err(why) => {
                sqlx::query("UPDATE dead_letter SET error = $2 WHERE event_id = $1")
                    .bind(id)
                    .bind(&why)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Err(ApiError::Precondition(format!("the event still cannot be applied: {why}")));
            }
        }
        let letter = resolve(&mut tx, caller, id, "replayed", note).await?;
        tx.commit().await?;
        Ok(letter)
    }

    /// Gives up an open letter: the case's order moves past it, so later events need not wait.
    async fn skip_one(&self, caller: &Caller, id: Uuid, note: &str) -> ApiResult<Letter> {
        let mut tx = self.pool.begin().await?;
        let letter = locked(&mut tx, caller, id).await?;
        match letter.status.as_str() {
            "open" => {}
            "skipped" => return Ok(letter),
            other => return Err(ApiError::Precondition(format!("dead letter {id} was {other} already"))),
        }
        if let Some(event) = envelope(&letter) {
            // As if applied without effect: a redelivery is a duplicate, the next version is due.
            sqlx::query("INSERT INTO inbox (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(event.id)
                .bind(&event.kind)
                .execute(&mut *tx)
                .await?;
            consumer::advance(&mut tx, &event).await?;
        }
        let letter = resolve(&mut tx, caller, id, "skipped", note).await?;
        tx.commit().await?;
        Ok(letter)
    }

    /// Replays the letters held behind `letter`, in version order, until one fails.
    async fn follow(&self, caller: &Caller, letter: &Letter) -> ApiResult<(Vec<String>, String)> {
        let (Some(case_id), Some(source), Some(version)) = (letter.case_id, &letter.source, letter.version) else {
            return Ok((Vec::new(), String::new()));
        };
        let held: Vec<Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM dead_letter
             WHERE case_id = $1 AND source = $2 AND version > $3 AND status = 'open' ORDER BY version",
        )
        .bind(case_id)
        .bind(source)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        let mut applied = Vec::new();
        for id in held {
            let note = format!("followed {}", letter.event_id);
            match self.replay_one(caller, id, &note).await {
                Ok(_) => applied.push(id.to_string()),
                Err(_) => {
                    // The reason may quote the payload: it is in the letter, not the log.
                    tracing::info!(event_id = %id, "a held dead letter still cannot be applied");
                    return Ok((applied, id.to_string()));
                }
            }
        }
        Ok((applied, String::new()))
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<R: Replayer> DeadLetterService for DeadLetterApi<R> {
    async fn list_dead_letters(&self, req: Request<pb::ListDeadLettersRequest>) -> Reply<pb::ListDeadLettersResponse> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let limit = match req.limit {
            0 => 100,
            n @ 1..=1000 => i64::from(n),
            _ => return Err(ApiError::Invalid { field: "limit", message: "must be between 1 and 1000".into() }.into()),
        };
        let letters: Vec<Letter> = sqlx::query_as(
            "SELECT * FROM dead_letter WHERE tenant IN ($1, '') AND (NOT $2 OR status = 'open')
             ORDER BY created_at DESC LIMIT $3",
        )
        .bind(&caller.tenant)
        .bind(req.open_only)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(ApiError::from)?;
        let read = letters.iter().map(|l| l.event_id.to_string()).collect();
        crate::audit::read(&self.pool, &caller, "DeadLetterService/ListDeadLetters", read).await?;
        Ok(Response::new(pb::ListDeadLettersResponse { letters: letters.iter().map(|l| to_pb(l, false)).collect() }))
    }

    async fn get_dead_letter(&self, req: Request<pb::GetDeadLetterRequest>) -> Reply<pb::DeadLetter> {
        let caller = auth::caller(&req)?;
        let id = event_id(&req.get_ref().event_id)?;
        let letter: Letter = sqlx::query_as("SELECT * FROM dead_letter WHERE event_id = $1 AND tenant IN ($2, '')")
            .bind(id)
            .bind(&caller.tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
        crate::audit::read(&self.pool, &caller, "DeadLetterService/GetDeadLetter", vec![id.to_string()]).await?;
        Ok(Response::new(to_pb(&letter, true)))
    }

    async fn replay_dead_letter(&self, req: Request<pb::ReplayDeadLetterRequest>) -> Reply<pb::DeadLetterResolution> {
        let caller = auth::caller(&req)?;
        let id = event_id(&req.get_ref().event_id)?;
        let letter = self.replay_one(&caller, id, req.get_ref().note.trim()).await?;
        let (also_applied, still_held) = self.follow(&caller, &letter).await?;
        Ok(Response::new(pb::DeadLetterResolution { letter: Some(to_pb(&letter, false)), also_applied, still_held }))
    }

    async fn skip_dead_letter(&self, req: Request<pb::SkipDeadLetterRequest>) -> Reply<pb::DeadLetterResolution> {
        let caller = auth::caller(&req)?;
        let id = event_id(&req.get_ref().event_id)?;
        let note = req.get_ref().note.trim();
        if note.is_empty() {
            let message = "is required: say why the event is given up".into();
            return Err(ApiError::Invalid { field: "note", message }.into());
        }
        let letter = self.skip_one(&caller, id, note).await?;
        let (also_applied, still_held) = self.follow(&caller, &letter).await?;
        Ok(Response::new(pb::DeadLetterResolution { letter: Some(to_pb(&letter, false)), also_applied, still_held }))
    }
}
