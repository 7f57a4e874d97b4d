//! Clocks from events: each case's clocks are recomputed from its recorded events, the
//! commitment (policy) and the calendar, and their stages (warnings, breach, escalations) are
//! kept in step. Nothing is patched in place, so a replay or restart gives the same answer.

use chrono::{DateTime, Utc};
use lots_domain::calendar::WorkCalendar;
use lots_domain::guarantee::{self, ClockEvent, State};
use std::borrow::Cow;

use lots_domain::tenant::{Commitment, FOLLOW_UP, TenantConfig};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::Result;

/// Namespace of the deterministic ids of clocks and alerts.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6c6f_7473_656e_2d73_6c61_0000_0000_0001);

/// A clock's id: the same case and commitment always give the same id.
pub fn clock_id(case_id: Uuid, commitment: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{case_id}/{commitment}").as_bytes())
}

/// The pseudo-clock an unroutable case's escalations hang on (derived, so they fire once).
pub fn unroutable_id(case_id: Uuid) -> Uuid {
    Uuid::new_v5(&case_id, b"unroutable")
}

/// An alert's id: clock + stage + deadline version, so firing twice yields one alert.
pub fn alert_id(clock: Uuid, stage: &str, version: u32) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{clock}/{stage}/{version}").as_bytes())
}

/// What sla knows about a case.
#[derive(Debug, Clone, FromRow)]
pub struct CaseRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub case_type: String,
    pub officer_id: Option<String>,
    pub unit: String,
    /// "case", "complaint" or "follow_up".
    pub kind: String,
    /// A complaint without a complainant: no answer is owed.
    pub anonymous: bool,
    /// A follow-up's target: working minutes from its creation to the end of its due date.
    pub target_minutes: Option<i32>,
    pub due_date: Option<chrono::NaiveDate>,
}

/// The commitments a case, complaint or follow-up runs on, by key: a case's from its case type,
/// a complaint's from the tenant's complaint policy, a follow-up's from its due date.
pub fn commitments<'a>(tenant: &'a TenantConfig, case: &CaseRow) -> Vec<(String, Cow<'a, Commitment>)> {
    match case.kind.as_str() {
        "complaint" => tenant
            .complaints
            .commitments(case.anonymous)
            .into_iter()
            .map(|(k, c)| (k.to_owned(), Cow::Owned(c)))
            .collect(),
        "follow_up" => match (case.target_minutes, case.due_date) {
            (Some(minutes), Some(due)) => {
                let c = tenant.visits.follow_up_commitment(minutes.max(1) as u32, due);
                vec![(FOLLOW_UP.to_owned(), Cow::Owned(c))]
            }
            _ => Vec::new(),
        },
        _ => tenant
            .case_commitments(&case.case_type)
            .into_iter()
            .map(|(k, c)| (k.to_owned(), Cow::Borrowed(c)))
            .collect(),
    }
}

/// The commitment `key` of a case, complaint or follow-up.
pub fn commitment<'a>(tenant: &'a TenantConfig, case: &CaseRow, key: &str) -> Option<Cow<'a, Commitment>> {
    commitments(tenant, case).into_iter().find(|(k, _)| k == key).map(|(_, c)| c)
}

/// The case's recorded events, in occurrence order.
pub async fn events(db: impl PgExecutor<'_>, case_id: Uuid) -> sqlx::Result<Vec<ClockEvent>> {
    let rows: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT kind, at FROM case_events WHERE case_id = $1 ORDER BY at, recorded")
            .bind(case_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(kind, at)| ClockEvent { kind, at }).collect())
}

/// A clock that has just been met or cancelled, for the caller to announce.
pub struct Stopped {
    pub clock_id: Uuid,
    pub commitment: String,
    pub clock: guarantee::Clock,
}

/// Recomputes every clock of `case` at `now` and aligns its stages. Returns clocks that
/// stopped with this recomputation (were running or paused, now met or cancelled).
#[tracing::instrument(name = "sla.clocks.recompute", skip_all, fields(case_id = %case.id))]
pub async fn recompute(
    conn: &mut PgConnection,
    tenant: &TenantConfig,
    case: &CaseRow,
    now: DateTime<Utc>,
) -> Result<Vec<Stopped>> {
    let commitments = commitments(tenant, case);
    if commitments.is_empty() {
        return Ok(Vec::new());
    }
    let events = events(&mut *conn, case.id).await?;
    let calendar = WorkCalendar::for_tenant(tenant);
    let mut stopped = Vec::new();
    for (key, commitment) in &commitments {
        let commitment: &Commitment = commitment;
        let id = clock_id(case.id, key);
        let clock = guarantee::evaluate(commitment, &calendar, &events, now);
        // Stages that fell due while the clock still ran count even if it stopped since
        // (a breach during downtime fires late rather than never).
        let schedule = match (clock.state, clock.stopped_at) {
            (State::Met | State::MetLate | State::Cancelled, Some(stop)) => {
                let before: Vec<ClockEvent> = events.iter().filter(|e| e.at < stop).cloned().collect();
                let ran = guarantee::evaluate(commitment, &calendar, &before, stop);
                ran.schedule.into_iter().filter(|d| d.at < stop).collect()
            }
            _ => clock.schedule.clone(),
        };
        let previous: Option<String> = sqlx::query_scalar(
            "INSERT INTO clocks (id, case_id, tenant, commitment, state, started_at, stopped_at, due_at, deadline_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, started_at = EXCLUDED.started_at,
                stopped_at = EXCLUDED.stopped_at, due_at = EXCLUDED.due_at,
                deadline_version = EXCLUDED.deadline_version
             RETURNING (SELECT state FROM clocks WHERE id = $1)",
        )
        .bind(id)
        .bind(case.id)
        .bind(&case.tenant)
        .bind(key)
        .bind(clock.state.as_str())
        .bind(clock.started_at)
        .bind(clock.stopped_at)
        .bind(clock.due_at)
        .bind(clock.deadline_version as i32)
        .fetch_one(&mut *conn)
        .await?;
        let keys: Vec<String> = schedule.iter().map(|d| d.stage.key()).collect();
        let dues: Vec<DateTime<Utc>> = schedule.iter().map(|d| d.at).collect();
        sqlx::query(
            "DELETE FROM stages WHERE clock_id = $1 AND fired_at IS NULL
               AND NOT (deadline_version = $2 AND stage = ANY ($3))",
        )
        .bind(id)
        .bind(clock.deadline_version as i32)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO stages (clock_id, stage, deadline_version, due_at)
             SELECT $1, s, $2, d FROM unnest($3::text[], $4::timestamptz[]) AS x(s, d)
             ON CONFLICT (clock_id, stage, deadline_version)
             DO UPDATE SET due_at = EXCLUDED.due_at WHERE stages.fired_at IS NULL",
        )
        .bind(id)
        .bind(clock.deadline_version as i32)
        .bind(&keys)
        .bind(&dues)
        .execute(&mut *conn)
        .await?;
        let was_live = matches!(previous.as_deref(), Some("running" | "paused" | "breached"));
        if was_live && matches!(clock.state, State::Met | State::MetLate | State::Cancelled) {
            stopped.push(Stopped { clock_id: id, commitment: key.clone(), clock });
        }
    }
    Ok(stopped)
}
