//! Intake's queries. Callers own the transaction.

use chrono::{DateTime, Utc};
use lots_domain::CaseStatus;
use sqlx::{FromRow, PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A stored case.
#[derive(Clone, FromRow)]
pub struct CaseRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub org_nr: String,
    pub legal_form: String,
    pub company_name: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    pub case_type: String,
    pub description: String,
    pub channel: String,
    pub status: String,
    pub resume_status: Option<String>,
    pub waiting_reason: Option<String>,
    pub outcome: Option<String>,
    pub decision: Option<String>,
    pub version: i64,
    pub idempotency_key: String,
    pub request_fingerprint: String,
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub application_complete_at: Option<DateTime<Utc>>,
    pub deadline_extended_at: Option<DateTime<Utc>>,
    /// JSON of `lots_events::Views`: the last version emitted into each consumer's view.
    pub views: String,
}

impl CaseRow {
    /// The case's status.
    pub fn status(&self) -> Result<CaseStatus> {
        self.status.parse().map_err(|_| Error::Corrupt(format!("status {:?}", self.status)))
    }

    /// Where a waiting case returns to.
    pub fn resume_status(&self) -> Result<CaseStatus> {
        let s = self.resume_status.as_deref().unwrap_or("registered");
        s.parse().map_err(|_| Error::Corrupt(format!("resume_status {s:?}")))
    }
}

/// Columns of a new case.
pub struct Insert<'a> {
    pub id: Uuid,
    pub tenant: &'a str,
    pub reference: &'a str,
    pub ref_year: i32,
    pub ref_number: i64,
    pub org_nr: &'a str,
    pub legal_form: &'a str,
    pub company_name: &'a str,
    pub contact_name: &'a str,
    pub contact_phone: &'a str,
    pub contact_email: &'a str,
    pub case_type: &'a str,
    pub description: &'a str,
    pub channel: &'a str,
    pub idempotency_key: &'a str,
    pub request_fingerprint: &'a str,
    pub registered_by: &'a str,
    pub at: DateTime<Utc>,
}

/// Takes the next `n` reference numbers for `tenant` and `year` and returns the last of them
/// (the batch holds `last - n + 1 ..= last`). Row-locks the counter until the transaction ends,
/// so numbers are handed out in commit order without gaps; one registration writer per tenant
/// (see `registrar`) takes it once per batch, so the lock is held once per commit, not per case.
#[instrument(name = "intake.store.take_references", skip_all, fields(n))]
pub async fn take_reference_numbers(conn: &mut PgConnection, tenant: &str, year: i32, n: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO reference_counter (tenant, year, last) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, year) DO UPDATE SET last = reference_counter.last + $3
         RETURNING last",
    )
    .bind(tenant)
    .bind(year)
    .bind(n)
    .fetch_one(conn)
    .await?)
}

/// The cases registered earlier under any of these idempotency keys.
#[instrument(name = "intake.store.by_keys", skip_all, fields(keys = keys.len()))]
pub async fn by_idempotency_keys(db: impl PgExecutor<'_>, tenant: &str, keys: &[&str]) -> Result<Vec<CaseRow>> {
    Ok(sqlx::query_as("SELECT * FROM cases WHERE tenant = $1 AND idempotency_key = ANY($2)")
        .bind(tenant)
        .bind(keys)
        // Planned for each call, like the consumer's cursor read: a generic plan cached while
        // the table was small would keep scanning it.
        .persistent(false)
        .fetch_all(db)
        .await?)
}

static REGISTERED_VIEWS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Inserts a new case with version 1 (its `case.registered` event).
#[instrument(name = "intake.store.insert", skip_all, fields(case_id = %c.id))]
pub async fn insert(conn: &mut PgConnection, c: &Insert<'_>) -> Result<CaseRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO cases (id, tenant, reference, ref_year, ref_number, org_nr, legal_form, company_name,
            contact_name, contact_phone, contact_email, case_type, description, channel, status, version,
            idempotency_key, request_fingerprint, registered_by, registered_at, updated_at, views)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'registered', 1,
            $15, $16, $17, $18, $18, $19)
         RETURNING *",
    )
    .bind(c.id)
    .bind(c.tenant)
    .bind(c.reference)
    .bind(c.ref_year)
    .bind(c.ref_number)
    .bind(c.org_nr)
    .bind(c.legal_form)
    .bind(c.company_name)
    .bind(c.contact_name)
    .bind(c.contact_phone)
    .bind(c.contact_email)
    .bind(c.case_type)
    .bind(c.description)
    .bind(c.channel)
    .bind(c.idempotency_key)
    .bind(c.request_fingerprint)
    .bind(c.registered_by)
    .bind(c.at)
    .bind(REGISTERED_VIEWS.get_or_init(|| {
        serde_json::to_string(&lots_events::Views::first(<lots_events::CaseRegistered as lots_events::Payload>::TYPE))
            .unwrap_or_default()
    }))
    .fetch_one(conn)
    .await
}

/// A case by id.
#[instrument(name = "intake.store.get", skip_all, fields(case_id = %id))]
pub async fn get(db: impl PgExecutor<'_>, tenant: &str, id: Uuid) -> Result<Option<CaseRow>> {
    Ok(sqlx::query_as("SELECT * FROM cases WHERE id = $1 AND tenant = $2")
        .bind(id)
        .bind(tenant)
        .fetch_optional(db)
        .await?)
}

/// A case by reference, e.g. `NKP-2026-000123`.
#[instrument(name = "intake.store.by_reference", skip_all)]
pub async fn by_reference(db: impl PgExecutor<'_>, tenant: &str, reference: &str) -> Result<Option<CaseRow>> {
    Ok(sqlx::query_as("SELECT * FROM cases WHERE reference = $1 AND tenant = $2")
        .bind(reference)
        .bind(tenant)
        .fetch_optional(db)
        .await?)
}

/// A case by id, row-locked for a status change.
#[instrument(name = "intake.store.lock", skip_all, fields(case_id = %id))]
pub async fn lock(conn: &mut PgConnection, tenant: Option<&str>, id: Uuid) -> Result<Option<CaseRow>> {
    Ok(sqlx::query_as("SELECT * FROM cases WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE")
        .bind(id)
        .bind(tenant)
        .fetch_optional(conn)
        .await?)
}

/// The fingerprint of the lifecycle call first made with this key, if any.
pub async fn lifecycle_request(conn: &mut PgConnection, tenant: &str, key: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT fingerprint FROM lifecycle_requests WHERE tenant = $1 AND idempotency_key = $2")
        .bind(tenant)
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

/// Records a lifecycle call under its key, in the caller's transaction.
pub async fn record_lifecycle_request(
    conn: &mut PgConnection,
    tenant: &str,
    key: &str,
    case_id: Uuid,
    fingerprint: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO lifecycle_requests (tenant, idempotency_key, case_id, fingerprint) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(key)
    .bind(case_id)
    .bind(fingerprint)
    .execute(conn)
    .await?;
    Ok(())
}

/// A status change; `emitted` says whether intake emits an event for it (bumping the version).
pub struct Change<'a> {
    pub status: CaseStatus,
    pub resume_status: Option<CaseStatus>,
    pub waiting_reason: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub emitted: bool,
    pub at: DateTime<Utc>,
}

/// Applies `change` to case `id` and returns the updated row.
#[instrument(name = "intake.store.update", skip_all, fields(case_id = %id, status = %change.status))]
pub async fn update(conn: &mut PgConnection, id: Uuid, change: &Change<'_>) -> Result<CaseRow> {
    Ok(sqlx::query_as(
        "UPDATE cases SET status = $2, resume_status = $3, waiting_reason = $4,
            outcome = COALESCE($5, outcome), decision = COALESCE($6, decision),
            version = version + CASE WHEN $7 THEN 1 ELSE 0 END, updated_at = $8
         WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(change.status.as_str())
    .bind(change.resume_status.map(CaseStatus::as_str))
    .bind(change.waiting_reason)
    .bind(change.outcome)
    .bind(change.decision)
    .bind(change.emitted)
    .bind(change.at)
    .fetch_one(conn)
    .await?)
}

/// Filters of `ListCases`; `None` matches everything.
pub struct Filter<'a> {
    pub tenant: &'a str,
    /// Only cases within this reach (a handläggare's or enhetschef's view); `None`: every case.
    pub reach: Option<&'a Reach>,
    pub status: Option<CaseStatus>,
    pub org_nr: Option<&'a str>,
    pub case_type: Option<&'a str>,
    /// Only cases with an id below this one (newest first paging).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// The cases a caller without tenant-wide reach may read: those where the officer sits, or with a
/// seat in one of the units; before routing (no seats yet) those of the case types.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub officer: Option<String>,
    pub units: Vec<String>,
    pub case_types: Vec<String>,
}

/// Whether case `id` is within `reach`.
pub async fn within(db: impl PgExecutor<'_>, id: Uuid, case_type: &str, reach: &Reach) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM case_seats s WHERE s.case_id = $1 AND (s.officer_id = $2 OR s.unit = ANY ($3)))
             OR (NOT EXISTS (SELECT 1 FROM case_seats s WHERE s.case_id = $1) AND $4 = ANY ($5))",
    )
    .bind(id)
    .bind(reach.officer.as_deref())
    .bind(&reach.units)
    .bind(case_type)
    .bind(&reach.case_types)
    .fetch_one(db)
    .await?)
}

/// Cases matching `f`, newest first.
#[instrument(name = "intake.store.list", skip_all)]
pub async fn list(db: impl PgExecutor<'_>, f: &Filter<'_>) -> Result<Vec<CaseRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM cases
         WHERE tenant = $1
           AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR org_nr = $3)
           AND ($4::text IS NULL OR case_type = $4)
           AND ($5::uuid IS NULL OR id < $5)
           AND (NOT $7 OR EXISTS (SELECT 1 FROM case_seats s WHERE s.case_id = cases.id
                                   AND (s.officer_id = $8 OR s.unit = ANY ($9)))
                OR (NOT EXISTS (SELECT 1 FROM case_seats s WHERE s.case_id = cases.id) AND case_type = ANY ($10)))
         ORDER BY id DESC LIMIT $6",
    )
    .bind(f.tenant)
    .bind(f.status.map(CaseStatus::as_str))
    .bind(f.org_nr)
    .bind(f.case_type)
    .bind(f.before)
    .bind(f.limit)
    .bind(f.reach.is_some())
    .bind(f.reach.and_then(|r| r.officer.as_deref()))
    .bind(f.reach.map(|r| r.units.clone()).unwrap_or_default())
    .bind(f.reach.map(|r| r.case_types.clone()).unwrap_or_default())
    .fetch_all(db)
    .await?)
}

/// Records that the application is complete, or that the legal deadline was extended.
#[instrument(name = "intake.store.mark", skip_all, fields(case_id = %id))]
pub async fn mark_legal(
    conn: &mut PgConnection,
    id: Uuid,
    complete_at: Option<DateTime<Utc>>,
    extended: Option<(DateTime<Utc>, &str)>,
) -> Result<CaseRow> {
    Ok(sqlx::query_as(
        "UPDATE cases SET application_complete_at = COALESCE($2, application_complete_at),
            deadline_extended_at = COALESCE($3, deadline_extended_at),
            extension_reason = COALESCE($4, extension_reason),
            version = version + 1, updated_at = COALESCE($2, $3, updated_at)
         WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(complete_at)
    .bind(extended.map(|e| e.0))
    .bind(extended.map(|e| e.1))
    .fetch_one(conn)
    .await?)
}
