//! Queries over the read models for the gRPC calls.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lots_proto::v1 as pb;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// How a caller names a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(Uuid),
    Reference(String),
}

impl Lookup {
    /// A case id (UUID) or a reference such as "NKP-2026-000123".
    pub fn parse(text: &str) -> Option<Lookup> {
        let text = text.trim();
        if let Ok(id) = Uuid::parse_str(text) {
            return Some(Lookup::Id(id));
        }
        lots_domain::Reference::parse(text).map(|r| Lookup::Reference(r.to_string()))
    }
}

/// A case as its status view needs it.
#[derive(Debug, Clone, FromRow)]
pub struct StatusRow {
    pub id: Uuid,
    pub reference: String,
    pub case_type: String,
    pub company_name: String,
    pub status: String,
    pub waiting_reason: String,
    pub owner_officer: String,
    pub meeting_id: Option<Uuid>,
    pub meeting_starts_at: Option<DateTime<Utc>>,
    pub meeting_ends_at: Option<DateTime<Utc>>,
    pub meeting_location: String,
    pub meeting_booked: bool,
}

/// The case `lookup` names in `tenant`.
pub async fn status_row(db: impl PgExecutor<'_>, tenant: &str, lookup: &Lookup) -> sqlx::Result<Option<StatusRow>> {
    const COLUMNS: &str =
        "SELECT id, reference, case_type, company_name, status, waiting_reason, owner_officer, meeting_id,
                meeting_starts_at, meeting_ends_at, meeting_location, meeting_booked
         FROM cases WHERE tenant = $1 AND kind = 'case'";
    match lookup {
        Lookup::Id(id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLUMNS} AND id = $2")))
                .bind(tenant)
                .bind(id)
                .fetch_optional(db)
                .await
        }
        Lookup::Reference(r) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLUMNS} AND reference = $2")))
                .bind(tenant)
                .bind(r)
                .fetch_optional(db)
                .await
        }
    }
}

/// Whether `officer` was offered a seat at the case.
pub async fn sits_at(db: impl PgExecutor<'_>, case: Uuid, officer: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM seats WHERE case_id = $1 AND officer_id = $2)")
        .bind(case)
        .bind(officer)
        .fetch_one(db)
        .await
}

/// The case's company-facing status changes, oldest first.
pub async fn history(db: impl PgExecutor<'_>, case: Uuid) -> sqlx::Result<Vec<(DateTime<Utc>, String)>> {
    sqlx::query_as("SELECT at, status FROM history WHERE case_id = $1 ORDER BY at, event_id")
        .bind(case)
        .fetch_all(db)
        .await
}

/// One commitment as the status view shows it.
#[derive(Debug, Clone, FromRow)]
pub struct PromiseRow {
    pub commitment: String,
    pub name: String,
    pub legal: bool,
    pub state: String,
    pub due_at: Option<DateTime<Utc>>,
}

/// The case's commitments.
pub async fn clocks(db: impl PgExecutor<'_>, case: Uuid) -> sqlx::Result<Vec<PromiseRow>> {
    sqlx::query_as("SELECT commitment, name, legal, state, due_at FROM clocks WHERE case_id = $1 ORDER BY commitment")
        .bind(case)
        .fetch_all(db)
        .await
}

/// Officers (and their units) who accepted a seat at the meeting, in seat order of acceptance.
pub async fn attendees(db: impl PgExecutor<'_>, case: Uuid, meeting: Uuid) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT officer_id, unit FROM seats WHERE case_id = $1 AND meeting_id = $2 AND state IN ('accepted', 'completed')
         ORDER BY optional, competence",
    )
    .bind(case)
    .bind(meeting)
    .fetch_all(db)
    .await
}

/// NKI by (area, period).
pub async fn nki(db: impl PgExecutor<'_>, tenant: &str) -> sqlx::Result<HashMap<(String, String), f64>> {
    let rows: Vec<(String, String, f64)> =
        sqlx::query_as("SELECT area, period, nki FROM nki WHERE tenant = $1").bind(tenant).fetch_all(db).await?;
    Ok(rows.into_iter().map(|(a, p, n)| ((a, p), n)).collect())
}

/// Stores one survey result; a period loaded again replaces the earlier figure.
pub async fn upsert_nki(db: impl PgExecutor<'_>, tenant: &str, n: &pb::NkiResult) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO nki (tenant, area, period, nki, respondents) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, area, period) DO UPDATE SET nki = EXCLUDED.nki, respondents = EXCLUDED.respondents,
             imported_at = now()",
    )
    .bind(tenant)
    .bind(n.area.trim())
    .bind(n.period.trim())
    .bind(n.nki)
    .bind(i32::try_from(n.respondents).unwrap_or(i32::MAX))
    .execute(db)
    .await?;
    Ok(())
}
