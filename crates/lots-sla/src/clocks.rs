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
///
/// All of the case's clocks are written together: one statement upserts them (and reads their
/// states before), one drops stages that no longer apply (skipped when every clock is new), one
/// upserts the stages. Fired stages are never touched.
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
    let mut computed = Vec::with_capacity(commitments.len());
    let mut stages = Stages::default();
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
        for due in &schedule {
            stages.clock_ids.push(id);
            stages.keys.push(due.stage.key());
            stages.versions.push(clock.deadline_version as i32);
            stages.dues.push(due.at);
        }
        computed.push((id, key, clock));
    }
    let ids: Vec<Uuid> = computed.iter().map(|(id, _, _)| *id).collect();
    let previous: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "WITH before AS (SELECT id, state FROM clocks WHERE id = ANY ($1)),
              written AS (
                INSERT INTO clocks (id, case_id, tenant, commitment, state, started_at, stopped_at, due_at,
                    deadline_version)
                SELECT id, $2, $3, commitment, state, started_at, stopped_at, due_at, deadline_version
                FROM unnest($1::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
                    $8::timestamptz[], $9::int4[])
                    AS c(id, commitment, state, started_at, stopped_at, due_at, deadline_version)
                ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, started_at = EXCLUDED.started_at,
                   stopped_at = EXCLUDED.stopped_at, due_at = EXCLUDED.due_at,
                   deadline_version = EXCLUDED.deadline_version
                RETURNING id)
         SELECT written.id, before.state FROM written LEFT JOIN before USING (id)",
    )
    .bind(&ids)
    .bind(case.id)
    .bind(&case.tenant)
    .bind(computed.iter().map(|(_, key, _)| key.as_str()).collect::<Vec<_>>())
    .bind(computed.iter().map(|(_, _, c)| c.state.as_str()).collect::<Vec<_>>())
    .bind(computed.iter().map(|(_, _, c)| c.started_at).collect::<Vec<_>>())
    .bind(computed.iter().map(|(_, _, c)| c.stopped_at).collect::<Vec<_>>())
    .bind(computed.iter().map(|(_, _, c)| c.due_at).collect::<Vec<_>>())
    .bind(computed.iter().map(|(_, _, c)| c.deadline_version as i32).collect::<Vec<_>>())
    // Planned for each call: a cached generic plan made while the table was small keeps
    // scanning all of it once it is large (measured: 40 ms a call at 30,000 clocks).
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let previous_of = |id: Uuid| previous.iter().find(|(p, _)| *p == id).and_then(|(_, s)| s.as_deref());
    // A clock seen before may hold unfired stages its new schedule no longer has.
    if ids.iter().any(|id| previous_of(*id).is_some()) {
        sqlx::query(
            "DELETE FROM stages s
             USING unnest($1::uuid[], $2::int4[]) AS c(id, deadline_version)
             WHERE s.clock_id = c.id AND s.fired_at IS NULL
               AND NOT (s.deadline_version = c.deadline_version
                        AND EXISTS (SELECT 1 FROM unnest($3::uuid[], $4::text[]) AS k(clock_id, stage)
                                    WHERE k.clock_id = s.clock_id AND k.stage = s.stage))",
        )
        .bind(&ids)
        .bind(computed.iter().map(|(_, _, c)| c.deadline_version as i32).collect::<Vec<_>>())
        .bind(&stages.clock_ids)
        .bind(&stages.keys)
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    if !stages.clock_ids.is_empty() {
        sqlx::query(
            "INSERT INTO stages (clock_id, stage, deadline_version, due_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::timestamptz[])
             ON CONFLICT (clock_id, stage, deadline_version)
             DO UPDATE SET due_at = EXCLUDED.due_at WHERE stages.fired_at IS NULL",
        )
        .bind(&stages.clock_ids)
        .bind(&stages.keys)
        .bind(&stages.versions)
        .bind(&stages.dues)
        .execute(&mut *conn)
        .await?;
    }
    let mut stopped = Vec::new();
    for (id, key, clock) in computed {
        let was_live = matches!(previous_of(id), Some("running" | "paused" | "breached"));
        if was_live && matches!(clock.state, State::Met | State::MetLate | State::Cancelled) {
            stopped.push(Stopped { clock_id: id, commitment: key.clone(), clock });
        }
    }
    Ok(stopped)
}

/// The stages of a case's clocks as columns, for one statement.
#[derive(Default)]
struct Stages {
    clock_ids: Vec<Uuid>,
    keys: Vec<String>,
    versions: Vec<i32>,
    dues: Vec<DateTime<Utc>>,
}
