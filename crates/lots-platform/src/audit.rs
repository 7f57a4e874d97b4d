//! The audit log every service keeps: who read, changed or was refused what (table
//! `audit_log`, platform migration 9005).
//!
//! Who writes what, when:
//! - A **change** is recorded by the service that makes it, in the same transaction
//!   ([`record`] on that transaction's connection).
//! - A **read** of case or company data is recorded before the answer is sent ([`read`]); if the
//!   entry cannot be written the read fails.
//! - A **refused** call is recorded by the auth layer, whatever refused it (the token, the role
//!   matrix or the handler).
//!
//! Entries never change (a trigger refuses UPDATE, DELETE and TRUNCATE). One **chainer** per
//! service (an advisory lock per schema picks one replica) links them into a hash chain per
//! tenant: it takes only entries of transactions older than its snapshot's `xmin` (so none can
//! still appear before them), orders them by writing transaction (`xid`, which is final once
//! below `xmin`) and id, and gives each the next sequence number and
//! `sha256(previous hash ‖ canonical form)`. Refusals of callers without a valid token form a
//! chain of their own (tenant `''`), which is not published. [`verify`] walks a tenant's
//! chain and names the first link that does not hold.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgExecutor, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Caller;

/// Who acted, as the token said.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Actor {
    pub tenant: String,
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub client_id: Option<String>,
}

impl Actor {
    pub fn of(caller: &Caller) -> Actor {
        Actor {
            tenant: caller.tenant.clone(),
            issuer: caller.issuer.clone(),
            subject: caller.subject.clone(),
            name: caller.name.clone(),
            roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            client_id: caller.client_id.clone(),
        }
    }
}

/// One entry, before it is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub actor: Actor,
    /// "read", "change" or "refused".
    pub action: String,
    /// "Service/Method".
    pub rpc: String,
    /// Ids of what was read or changed (cases, tasks, meetings, alerts, events).
    pub objects: Vec<String>,
    /// "ok", or the gRPC code of a refusal.
    pub result: String,
    pub reason: Option<String>,
    /// What changed, without personal data.
    pub changes: Option<serde_json::Value>,
}

impl Entry {
    /// A change by `caller` through `rpc` to `objects`.
    pub fn change(caller: &Caller, rpc: &str, objects: Vec<String>, changes: serde_json::Value) -> Entry {
        Entry {
            actor: Actor::of(caller),
            action: "change".into(),
            rpc: rpc.into(),
            objects,
            result: "ok".into(),
            reason: None,
            changes: Some(changes),
        }
    }

    /// A read by `caller` through `rpc` of `objects`.
    pub fn read(caller: &Caller, rpc: &str, objects: Vec<String>) -> Entry {
        Entry {
            actor: Actor::of(caller),
            action: "read".into(),
            rpc: rpc.into(),
            objects,
            result: "ok".into(),
            reason: None,
            changes: None,
        }
    }

    /// A call through `rpc` refused with `status` (`actor` is empty when no token was valid).
    pub fn refused(actor: Actor, rpc: &str, status: &tonic::Status) -> Entry {
        Entry {
            actor,
            action: "refused".into(),
            rpc: rpc.into(),
            objects: Vec::new(),
            result: code_name(status.code()),
            reason: Some(status.message().chars().take(500).collect()),
            changes: None,
        }
    }
}

/// The gRPC code as a word, e.g. "permission_denied".
pub fn code_name(code: tonic::Code) -> String {
    format!("{code:?}").chars().fold(String::new(), |mut out, c| {
        if c.is_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        out
    })
}

/// Writes `entry` with `db` (a change's transaction, or the pool).
pub async fn record<'c, E: PgExecutor<'c>>(db: E, entry: &Entry) -> sqlx::Result<()> {
    let trace_id = crate::nats::current_traceparent().and_then(|t| t.split('-').nth(1).map(str::to_owned));
    sqlx::query(
        "INSERT INTO audit_log (id, tenant, at, issuer, subject, name, roles, client_id, action, rpc, objects,
             result, reason, trace_id, changes)
         VALUES ($1, $2, now(), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(Uuid::now_v7())
    .bind(&entry.actor.tenant)
    .bind(&entry.actor.issuer)
    .bind(&entry.actor.subject)
    .bind(&entry.actor.name)
    .bind(&entry.actor.roles)
    .bind(&entry.actor.client_id)
    .bind(&entry.action)
    .bind(&entry.rpc)
    .bind(&entry.objects)
    .bind(&entry.result)
    .bind(&entry.reason)
    .bind(trace_id)
    .bind(&entry.changes)
    .execute(db)
    .await?;
    Ok(())
}

/// Records a read before its answer goes out; the read fails if the entry cannot be written.
pub async fn read(pool: &PgPool, caller: &Caller, rpc: &str, objects: Vec<String>) -> Result<(), tonic::Status> {
    record(pool, &Entry::read(caller, rpc, objects)).await.map_err(|err| {
        tracing::error!(error = %err, rpc, "cannot record a read in the audit log; the read is refused");
        tonic::Status::unavailable("the read could not be recorded in the audit log; try again")
    })
}

#[derive(Debug, Clone, FromRow)]
struct Row {
    id: Uuid,
    tenant: String,
    at: DateTime<Utc>,
    issuer: String,
    subject: String,
    name: Option<String>,
    roles: Vec<String>,
    client_id: Option<String>,
    action: String,
    rpc: String,
    objects: Vec<String>,
    result: String,
    reason: Option<String>,
    trace_id: Option<String>,
    changes: Option<serde_json::Value>,
}

/// The entry's canonical form: JSON of its fields in a fixed order, with its place in the chain.
fn canonical(seq: i64, row: &Row) -> Vec<u8> {
    let value = serde_json::json!([
        seq,
        row.id,
        row.tenant,
        row.at.timestamp_micros(),
        row.issuer,
        row.subject,
        row.name,
        row.roles,
        row.client_id,
        row.action,
        row.rpc,
        row.objects,
        row.result,
        row.reason,
        row.trace_id,
        row.changes,
    ]);
    value.to_string().into_bytes()
}

fn link(prev: &[u8], seq: i64, row: &Row) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical(seq, row));
    h.finalize().to_vec()
}

/// Entries linked per round, so a backlog (a long transaction elsewhere held xmin back) is worked
/// off in bounded statements.
const CHAIN_BATCH: i64 = 10_000;

/// The hash before a tenant's first entry.
const GENESIS: [u8; 32] = [0; 32];

/// Where and how often chain heads are published.
pub struct HeadPublisher {
    pub service: &'static str,
    pub subjects: lots_events::Subjects,
    /// Wakes the outbox relay.
    pub relay: std::sync::Arc<tokio::sync::Notify>,
    /// When each tenant's head was last published.
    last: std::collections::HashMap<String, std::time::Instant>,
    /// Heads that moved and wait for their minute.
    pending: std::collections::HashMap<String, (i64, Vec<u8>)>,
}

/// A tenant's head is published at most this often (and only when it moved).
const HEAD_EVERY: Duration = Duration::from_secs(60);

impl HeadPublisher {
    pub fn new(
        service: &'static str,
        subjects: lots_events::Subjects,
        relay: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        HeadPublisher { service, subjects, relay, last: Default::default(), pending: Default::default() }
    }

    fn event(&self, tenant: &str, seq: i64, hash: &[u8]) -> Option<lots_events::Envelope> {
        use lots_events::{
            AuditChainHead, Envelope, InsightAuditHead, IntakeAuditHead, RoutingAuditHead, SlaAuditHead,
        };
        let head = AuditChainHead { seq, hash: hex::encode(hash) };
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("audit-head/{}/{tenant}/{seq}", self.service).as_bytes());
        let (nil, now) = (Uuid::nil(), Utc::now());
        let event = match self.service {
            "intake" => Envelope::new(tenant, nil, 0, "intake", now, IntakeAuditHead(head)).with_id(id).into_raw(),
            "routing" => Envelope::new(tenant, nil, 0, "routing", now, RoutingAuditHead(head)).with_id(id).into_raw(),
            "sla" => Envelope::new(tenant, nil, 0, "sla", now, SlaAuditHead(head)).with_id(id).into_raw(),
            "insight" => Envelope::new(tenant, nil, 0, "insight", now, InsightAuditHead(head)).with_id(id).into_raw(),
            _ => return None,
        };
        event.ok()
    }
}

/// Chains what can be chained now; returns how many entries were linked. With `publish`, moved
/// heads are written to the outbox (at most once a minute per tenant) in the same transaction.
pub async fn chain_round(pool: &PgPool, mut publish: Option<&mut HeadPublisher>) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    // One chainer at a time across replicas; the others try again next round.
    sqlx::query("SET LOCAL idle_in_transaction_session_timeout = '60s'").execute(&mut *tx).await?;
    let mine: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('lots-audit-chain/' || current_schema()))")
            .fetch_one(&mut *tx)
            .await?;
    if !mine {
        return Ok(0);
    }
    let xmin: String =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetch_one(&mut *tx).await?;
    let from: Option<String> =
        sqlx::query_scalar("SELECT chained_to::text FROM audit_chain_cursor").fetch_optional(&mut *tx).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.id, e.tenant, e.at, e.issuer, e.subject, e.name, e.roles, e.client_id, e.action, e.rpc, e.objects,
                e.result, e.reason, e.trace_id, e.changes
         FROM audit_log e
         WHERE e.xid < $1::text::xid8 AND ($2::text IS NULL OR e.xid >= $2::text::xid8)
           AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.entry_id = e.id)
         ORDER BY e.xid, e.id LIMIT $3",
    )
    .bind(&xmin)
    .bind(&from)
    .bind(CHAIN_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    // A full batch: the cursor stops at the last transaction chained (its other entries, if
    // any, come next round); else everything below xmin is chained.
    let chained_to = if rows.len() as i64 == CHAIN_BATCH {
        sqlx::query_scalar::<_, String>("SELECT xid::text FROM audit_log WHERE id = $1")
            .bind(rows.last().map(|r| r.id))
            .fetch_one(&mut *tx)
            .await?
    } else {
        xmin.clone()
    };
    let mut heads: std::collections::HashMap<String, (i64, Vec<u8>)> = std::collections::HashMap::new();
    let (mut tenants, mut seqs, mut ids, mut prevs, mut hashes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        if !heads.contains_key(&row.tenant) {
            let head: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT seq, hash FROM audit_chain WHERE tenant = $1 ORDER BY seq DESC LIMIT 1")
                    .bind(&row.tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
            heads.insert(row.tenant.clone(), head.unwrap_or((0, GENESIS.to_vec())));
        }
        let head = heads.get_mut(&row.tenant).unwrap_or_else(|| unreachable!("inserted above"));
        let seq = head.0 + 1;
        let hash = link(&head.1, seq, row);
        tenants.push(row.tenant.clone());
        seqs.push(seq);
        ids.push(row.id);
        prevs.push(head.1.clone());
        hashes.push(hash.clone());
        *head = (seq, hash);
    }
    if !rows.is_empty() {
        sqlx::query(
            "INSERT INTO audit_chain (tenant, seq, entry_id, prev_hash, hash)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::bytea[], $5::bytea[])",
        )
        .bind(&tenants)
        .bind(&seqs)
        .bind(&ids)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
    }
    let mut published = false;
    if let Some(p) = publish.as_deref_mut() {
        // Refusals of unknown callers form the chain of no municipality: it has no subject.
        p.pending.extend(heads.into_iter().filter(|(tenant, _)| !tenant.is_empty()));
        let due: Vec<String> =
            p.pending.keys().filter(|t| p.last.get(*t).is_none_or(|at| at.elapsed() >= HEAD_EVERY)).cloned().collect();
        let mut events = Vec::new();
        for tenant in due {
            if let Some((seq, hash)) = p.pending.remove(&tenant)
                && let Some(e) = p.event(&tenant, seq, &hash)
            {
                events.push(e);
                p.last.insert(tenant, std::time::Instant::now());
            }
        }
        if !events.is_empty() {
            crate::outbox::enqueue_many(&mut tx, &p.subjects, &events)
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            published = true;
        }
    }
    sqlx::query(
        "INSERT INTO audit_chain_cursor (one, chained_to) VALUES (true, $1::text::xid8)
         ON CONFLICT (one) DO UPDATE SET chained_to = EXCLUDED.chained_to",
    )
    .bind(&chained_to)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if published && let Some(p) = publish {
        p.relay.notify_one();
    }
    Ok(rows.len())
}

/// Links new entries every second until cancelled, publishing moved heads.
pub async fn run_chainer(pool: PgPool, mut publish: HeadPublisher, token: CancellationToken) {
    loop {
        if let Err(err) = chain_round(&pool, Some(&mut publish)).await {
            tracing::warn!(error = %err, "cannot chain audit entries; retrying");
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// What walking a tenant's chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Links checked.
    pub entries: u64,
    /// The last link's sequence number and hash.
    pub head: Option<(i64, Vec<u8>)>,
    /// The first link that does not hold, and why.
    pub broken: Option<(i64, String)>,
    /// Entries written but not chained yet (the chainer runs every second).
    pub unchained: u64,
}

/// Walks `tenant`'s chain from the start.
pub async fn verify(pool: &PgPool, tenant: &str) -> sqlx::Result<Verification> {
    #[derive(FromRow)]
    struct Link {
        seq: i64,
        prev_hash: Vec<u8>,
        hash: Vec<u8>,
        #[sqlx(flatten)]
        row: Row,
    }
    let mut out = Verification { entries: 0, head: None, broken: None, unchained: 0 };
    let mut prev = GENESIS.to_vec();
    let mut expected_seq = 1;
    let mut after = 0i64;
    loop {
        let links: Vec<Link> = sqlx::query_as(
            "SELECT c.seq, c.prev_hash, c.hash, e.id, e.tenant, e.at, e.issuer, e.subject, e.name, e.roles,
                    e.client_id, e.action, e.rpc, e.objects, e.result, e.reason, e.trace_id, e.changes
             FROM audit_chain c JOIN audit_log e ON e.id = c.entry_id
             WHERE c.tenant = $1 AND c.seq > $2 ORDER BY c.seq LIMIT 5000",
        )
        .bind(tenant)
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some(last) = links.last() else { break };
        after = last.seq;
        for l in &links {
            let broken = if l.seq != expected_seq {
                Some(format!("sequence number {expected_seq} is missing"))
            } else if l.row.tenant != tenant {
                Some("the entry belongs to another municipality".to_owned())
            } else if l.prev_hash != prev {
                Some("it does not continue the previous link".to_owned())
            } else if l.hash != link(&prev, l.seq, &l.row) {
                Some("the entry does not match its hash (it was changed)".to_owned())
            } else {
                None
            };
            if let Some(why) = broken {
                out.broken = Some((l.seq.min(expected_seq), why));
                return Ok(out);
            }
            out.entries += 1;
            prev = l.hash.clone();
            expected_seq += 1;
            out.head = Some((l.seq, l.hash.clone()));
        }
    }
    // Only entries past the chainer's cursor can be unchained.
    out.unchained = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM audit_log e WHERE e.tenant = $1
           AND e.xid >= COALESCE((SELECT chained_to FROM audit_chain_cursor), '0'::xid8)
           AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.entry_id = e.id)",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?
    .max(0) as u64;
    Ok(out)
}

/// The gRPC face of a service's audit log.
pub struct AuditApi {
    pub pool: PgPool,
}

/// Entries fetched per query of an extract.
const EXTRACT_PAGE: i64 = 1000;

#[tonic::async_trait]
impl lots_proto::v1::audit_service_server::AuditService for AuditApi {
    type ListAuditEntriesStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<lots_proto::v1::AuditEntry, tonic::Status>> + Send>>;

    async fn list_audit_entries(
        &self,
        req: tonic::Request<lots_proto::v1::ListAuditEntriesRequest>,
    ) -> Result<tonic::Response<Self::ListAuditEntriesStream>, tonic::Status> {
        let caller = crate::auth::caller(&req)?;
        let objects: Vec<String> =
            req.into_inner().objects.iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        if objects.is_empty() || objects.len() > 1000 {
            let message = "give between 1 and 1000 object ids".to_owned();
            return Err(crate::api::ApiError::Invalid { field: "objects", message }.into());
        }
        read(&self.pool, &caller, "AuditService/ListAuditEntries", objects.clone()).await?;
        let (pool, tenant) = (self.pool.clone(), caller.tenant.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(crate::db::scoped(tenant.clone(), async move {
            #[derive(FromRow)]
            struct Found {
                seq: Option<i64>,
                #[sqlx(flatten)]
                row: Row,
            }
            let mut after: Option<(DateTime<Utc>, Uuid)> = None;
            loop {
                let page: Result<Vec<Found>, _> = sqlx::query_as(
                    "SELECT c.seq, e.id, e.tenant, e.at, e.issuer, e.subject, e.name, e.roles, e.client_id, e.action,
                            e.rpc, e.objects, e.result, e.reason, e.trace_id, e.changes
                     FROM audit_log e LEFT JOIN audit_chain c ON c.entry_id = e.id
                     WHERE e.tenant = $1 AND e.objects && $2
                       AND ($3::timestamptz IS NULL OR (e.at, e.id) > ($3, $4))
                     ORDER BY e.at, e.id LIMIT $5",
                )
                .bind(&tenant)
                .bind(&objects)
                .bind(after.map(|a| a.0))
                .bind(after.map(|a| a.1))
                .bind(EXTRACT_PAGE)
                .fetch_all(&pool)
                .await;
                let page = match page {
                    Ok(page) => page,
                    Err(err) => {
                        let _ = tx.send(Err(crate::api::ApiError::from(err).into())).await;
                        return;
                    }
                };
                let done = (page.len() as i64) < EXTRACT_PAGE;
                for f in page {
                    after = Some((f.row.at, f.row.id));
                    let r = f.row;
                    let entry = lots_proto::v1::AuditEntry {
                        seq: f.seq.unwrap_or(0),
                        at: Some(lots_proto::time::timestamp(r.at)),
                        issuer: r.issuer,
                        subject: r.subject,
                        name: r.name.unwrap_or_default(),
                        roles: r.roles,
                        client_id: r.client_id.unwrap_or_default(),
                        action: r.action,
                        rpc: r.rpc,
                        objects: r.objects,
                        result: r.result,
                        reason: r.reason.unwrap_or_default(),
                        trace_id: r.trace_id.unwrap_or_default(),
                        changes: r.changes.map(|c| c.to_string()).unwrap_or_default(),
                    };
                    if tx.send(Ok(entry)).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
            }
        }));
        Ok(tonic::Response::new(crate::auth::until_expiry(tokio_stream::wrappers::ReceiverStream::new(rx), &caller)))
    }

    async fn verify_audit_chain(
        &self,
        req: tonic::Request<lots_proto::v1::VerifyAuditChainRequest>,
    ) -> Result<tonic::Response<lots_proto::v1::AuditVerification>, tonic::Status> {
        let caller = crate::auth::caller(&req)?;
        let v = verify(&self.pool, &caller.tenant).await.map_err(crate::api::ApiError::from)?;
        let (head_seq, head_hash) = v.head.map(|(s, h)| (s, hex::encode(h))).unwrap_or_default();
        let (first_broken_seq, reason) = v.broken.clone().unwrap_or_default();
        Ok(tonic::Response::new(lots_proto::v1::AuditVerification {
            entries: v.entries,
            head_seq,
            head_hash,
            ok: v.broken.is_none(),
            first_broken_seq,
            reason,
            unchained: v.unchained,
        }))
    }
}
