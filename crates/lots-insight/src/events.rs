//! Applying events to the read models: each case or complaint event is kept as a fact, moves
//! the company-facing status, and re-evaluates the case's commitments — a pure function of its
//! facts, the tenant's policy and the calendar, as in sla — in the consumer's transaction.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lots_domain::calendar::WorkCalendar;
use lots_domain::guarantee;
use lots_domain::insight::{CaseFact, CompanyStatus, breach_reason};
use lots_domain::tenant::{Commitment, Target, TenantConfig};
use lots_events::*;
use lots_platform::Tenants;
use lots_platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;
use uuid::Uuid;

/// The read side's event handler (shared by the consumer, dead-letter replay and rebuild).
#[derive(Clone)]
pub struct Insight {
    pub tenants: Arc<Tenants>,
}

impl Handler for Insight {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        apply(tx, &self.tenants, event).await
    }
}

/// What the read side keeps of a case while applying an event.
#[derive(sqlx::FromRow)]
struct CaseRow {
    kind: String,
    case_type: String,
    anonymous: bool,
    status: String,
    status_before_wait: Option<String>,
    meeting_id: Option<Uuid>,
}

/// The case type key complaints are reported under.
pub const COMPLAINTS: &str = "klagomal";

/// Applies one event inside the consumer's transaction.
pub async fn apply(tx: &mut PgConnection, tenants: &Tenants, event: &Envelope) -> Result<(), HandlerError> {
    let Some(tenant) = tenants.get(&event.tenant).cloned() else {
        // A municipality this installation does not serve: nothing to show anyone.
        return Ok(());
    };
    if let Some(data) = event.decode::<CaseRegistered>() {
        register_case(tx, event, data?).await?;
    } else if let Some(data) = event.decode::<ComplaintRegistered>() {
        register_complaint(tx, event, data?).await?;
    }
    let case: Option<CaseRow> = sqlx::query_as(
        "SELECT kind, case_type, anonymous, status, status_before_wait, meeting_id FROM cases WHERE id = $1 FOR UPDATE",
    )
    .bind(event.case_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(case) = case else {
        // Its registration has not been applied yet: retry later, never skip.
        return Err(format!("case {} is not registered here yet", event.case_id).into());
    };
    let task = task_of(event)?;
    // The seats the event is about: a task event's one, a routing decision's required ones.
    let optional: bool = match &task {
        Some(t) => sqlx::query_scalar("SELECT optional FROM seats WHERE task_id = $1")
            .bind(t.task_id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(false),
        None => false,
    };
    let seats: Vec<String> = match (&task, event.decode::<CaseRouted>().transpose()?) {
        // An optional seat never holds the meeting up, so it is no reason for a broken promise.
        (Some(_), _) if optional => Vec::new(),
        (Some(t), _) => vec![t.task_id.to_string()],
        (None, Some(routed)) => {
            routed.seats.iter().filter(|s| !s.optional).map(|s| s.task.task_id.to_string()).collect()
        }
        (None, None) => Vec::new(),
    };
    sqlx::query(
        "INSERT INTO facts (event_id, case_id, tenant, kind, at, tasks) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.id)
    .bind(event.case_id)
    .bind(&event.tenant)
    .bind(&event.kind)
    .bind(event.occurred_at)
    .bind(&seats)
    .execute(&mut *tx)
    .await?;
    follow(tx, event, &case, task).await?;
    recompute(tx, &tenant, event.case_id, &case).await?;
    Ok(())
}

async fn register_case(tx: &mut PgConnection, event: &Envelope, data: CaseRegistered) -> sqlx::Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO cases (id, tenant, kind, reference, case_type, company_key, company_name, legal_form, org_nr,
             contact_name, contact_email, contact_phone, registered_at, status)
         VALUES ($1, $2, 'case', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'registered')
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.case_id)
    .bind(&event.tenant)
    .bind(&data.reference)
    .bind(&data.case_type)
    .bind(&data.company_key)
    .bind(&data.company_name)
    .bind(&data.legal_form)
    .bind(&data.org_nr)
    .bind(&data.contact.name)
    .bind(&data.contact.email)
    .bind(&data.contact.phone)
    .bind(event.occurred_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        history(tx, event, CompanyStatus::Registered).await?;
    }
    Ok(())
}

async fn register_complaint(tx: &mut PgConnection, event: &Envelope, data: ComplaintRegistered) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cases (id, tenant, kind, reference, case_type, anonymous, registered_at, status, owner_officer, unit)
         VALUES ($1, $2, 'complaint', $3, $4, $5, $6, 'registered', $7, $8)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.case_id)
    .bind(&event.tenant)
    .bind(&data.reference)
    .bind(COMPLAINTS)
    .bind(data.anonymous)
    .bind(event.occurred_at)
    .bind(&data.handler.officer_id)
    .bind(&data.handler.unit)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The seat a task event is about.
fn task_of(event: &Envelope) -> Result<Option<TaskRef>, serde_json::Error> {
    if !event.kind.starts_with("task.") {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Seat {
        #[serde(flatten)]
        task: TaskRef,
    }
    serde_json::from_value::<Seat>(event.data.clone()).map(|s| Some(s.task))
}

/// Moves the company-facing status and the case's owner, meeting and seats.
async fn follow(
    tx: &mut PgConnection,
    event: &Envelope,
    case: &CaseRow,
    task: Option<TaskRef>,
) -> Result<(), HandlerError> {
    let current = CompanyStatus::from_key(&case.status).unwrap_or(CompanyStatus::Registered);
    let ended = matches!(current, CompanyStatus::Decided | CompanyStatus::Closed);
    let id = event.case_id;
    match event.kind.as_str() {
        CaseRouted::TYPE => {
            let Some(routed) = event.decode::<CaseRouted>().transpose()? else { return Ok(()) };
            set_owner(tx, id, &routed.owner).await?;
            sqlx::query(
                "UPDATE cases SET meeting_id = $2, meeting_starts_at = $3, meeting_ends_at = $4, meeting_location = $5,
                     meeting_booked = false WHERE id = $1",
            )
            .bind(id)
            .bind(routed.meeting_id)
            .bind(routed.starts_at)
            .bind(routed.ends_at)
            .bind(&routed.location)
            .execute(&mut *tx)
            .await?;
            for seat in &routed.seats {
                upsert_seat(tx, event, &seat.task, seat.optional, "offered").await?;
            }
            // Routed again (a re-seat): a meeting booked before is booked no more.
            unbook(tx, event, case, current).await?;
            if current == CompanyStatus::Registered {
                move_to(tx, event, CompanyStatus::OfficerAssigned).await?;
            }
        }
        CaseOwnerChanged::TYPE => {
            if let Some(changed) = event.decode::<CaseOwnerChanged>().transpose()? {
                set_owner(tx, id, &changed.owner).await?;
            }
        }
        ComplaintReassigned::TYPE => {
            if let Some(r) = event.decode::<ComplaintReassigned>().transpose()? {
                let owner = CaseOwner { officer_id: r.handler.officer_id, unit: r.handler.unit };
                set_owner(tx, id, &owner).await?;
            }
        }
        MeetingProposed::TYPE => {
            let Some(p) = event.decode::<MeetingProposed>().transpose()? else { return Ok(()) };
            sqlx::query(
                "UPDATE cases SET meeting_id = $2, meeting_starts_at = $3, meeting_ends_at = $4, meeting_booked = false
                 WHERE id = $1",
            )
            .bind(id)
            .bind(p.meeting_id)
            .bind(p.starts_at)
            .bind(p.ends_at)
            .execute(&mut *tx)
            .await?;
            unbook(tx, event, case, current).await?;
        }
        MeetingBooked::TYPE => {
            let Some(b) = event.decode::<MeetingBooked>().transpose()? else { return Ok(()) };
            sqlx::query(
                "UPDATE cases SET meeting_id = $2, meeting_starts_at = $3, meeting_ends_at = $4, meeting_booked = true
                 WHERE id = $1",
            )
            .bind(id)
            .bind(b.meeting_id)
            .bind(b.starts_at)
            .bind(b.ends_at)
            .execute(&mut *tx)
            .await?;
            match current {
                CompanyStatus::WaitingForCompany => set_return(tx, id, CompanyStatus::MeetingBooked).await?,
                CompanyStatus::Registered | CompanyStatus::OfficerAssigned => {
                    move_to(tx, event, CompanyStatus::MeetingBooked).await?
                }
                _ => {}
            }
        }
        MeetingCancelled::TYPE => {
            let Some(c) = event.decode::<MeetingCancelled>().transpose()? else { return Ok(()) };
            if case.meeting_id == Some(c.meeting_id) {
                sqlx::query("UPDATE cases SET meeting_booked = false, meeting_starts_at = NULL, meeting_ends_at = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                unbook(tx, event, case, current).await?;
            }
        }
        CaseWaitingForCompany::TYPE if !ended => {
            let Some(w) = event.decode::<CaseWaitingForCompany>().transpose()? else { return Ok(()) };
            if current != CompanyStatus::WaitingForCompany {
                sqlx::query("UPDATE cases SET status_before_wait = status WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE cases SET waiting_reason = $2 WHERE id = $1")
                .bind(id)
                .bind(&w.reason)
                .execute(&mut *tx)
                .await?;
            move_to(tx, event, CompanyStatus::WaitingForCompany).await?;
        }
        CaseResumed::TYPE if current == CompanyStatus::WaitingForCompany => {
            let back = case
                .status_before_wait
                .as_deref()
                .and_then(CompanyStatus::from_key)
                .unwrap_or(CompanyStatus::OfficerAssigned);
            sqlx::query("UPDATE cases SET waiting_reason = '', status_before_wait = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            move_to(tx, event, back).await?;
        }
        CaseClosed::TYPE if !ended => {
            sqlx::query("UPDATE cases SET decided_at = $2, ended_at = $2, waiting_reason = '' WHERE id = $1")
                .bind(id)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            move_to(tx, event, CompanyStatus::Decided).await?;
        }
        CaseWithdrawn::TYPE if !ended => {
            sqlx::query("UPDATE cases SET ended_at = $2, waiting_reason = '' WHERE id = $1")
                .bind(id)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            move_to(tx, event, CompanyStatus::Closed).await?;
        }
        ComplaintClosed::TYPE => {
            sqlx::query("UPDATE cases SET ended_at = $2 WHERE id = $1")
                .bind(id)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
        }
        _ => {}
    }
    if let Some(task) = task {
        let state = event.kind.trim_start_matches("task.");
        upsert_seat(tx, event, &task, false, state).await?;
    }
    Ok(())
}

/// A booked meeting that moved or was cancelled is no longer booked.
async fn unbook(tx: &mut PgConnection, event: &Envelope, case: &CaseRow, current: CompanyStatus) -> sqlx::Result<()> {
    match current {
        CompanyStatus::MeetingBooked => move_to(tx, event, CompanyStatus::OfficerAssigned).await,
        CompanyStatus::WaitingForCompany if case.status_before_wait.as_deref() == Some("meeting_booked") => {
            set_return(tx, event.case_id, CompanyStatus::OfficerAssigned).await
        }
        _ => Ok(()),
    }
}

async fn set_return(tx: &mut PgConnection, id: Uuid, status: CompanyStatus) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET status_before_wait = $2 WHERE id = $1")
        .bind(id)
        .bind(status.key())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn set_owner(tx: &mut PgConnection, id: Uuid, owner: &CaseOwner) -> sqlx::Result<()> {
    if owner.officer_id.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE cases SET owner_officer = $2, unit = $3 WHERE id = $1")
        .bind(id)
        .bind(&owner.officer_id)
        .bind(&owner.unit)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn upsert_seat(
    tx: &mut PgConnection,
    event: &Envelope,
    t: &TaskRef,
    optional: bool,
    state: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO seats (task_id, case_id, tenant, meeting_id, officer_id, unit, competence, optional, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (task_id) DO UPDATE SET state = EXCLUDED.state, meeting_id = EXCLUDED.meeting_id",
    )
    .bind(t.task_id)
    .bind(event.case_id)
    .bind(&event.tenant)
    .bind(t.meeting_id)
    .bind(&t.officer_id)
    .bind(&t.unit)
    .bind(&t.competence)
    .bind(optional)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn move_to(tx: &mut PgConnection, event: &Envelope, status: CompanyStatus) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET status = $2 WHERE id = $1")
        .bind(event.case_id)
        .bind(status.key())
        .execute(&mut *tx)
        .await?;
    history(tx, event, status).await
}

async fn history(tx: &mut PgConnection, event: &Envelope, status: CompanyStatus) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO history (event_id, case_id, tenant, at, status) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.id)
    .bind(event.case_id)
    .bind(&event.tenant)
    .bind(event.occurred_at)
    .bind(status.key())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The commitments a case or complaint runs on, by key.
fn commitments<'a>(
    tenant: &'a TenantConfig,
    kind: &str,
    case_type: &str,
    anonymous: bool,
) -> Vec<(String, Cow<'a, Commitment>)> {
    if kind == "complaint" {
        return tenant
            .complaints
            .commitments(anonymous)
            .into_iter()
            .map(|(k, c)| (k.to_owned(), Cow::Owned(c)))
            .collect();
    }
    tenant.case_commitments(case_type).into_iter().map(|(k, c)| (k.to_owned(), Cow::Borrowed(c))).collect()
}

/// Whether a commitment is a deadline set by law rather than only the municipality's promise.
pub fn is_legal(c: &Commitment) -> bool {
    c.extension.is_some() || matches!(c.target, Target::CalendarWeeks(_))
}

/// Working minutes `commitment`'s clock counted, pauses left out, up to its stop or `now`
/// (a started minute counts).
pub fn working_minutes(
    commitment: &Commitment,
    calendar: &WorkCalendar,
    events: &[guarantee::ClockEvent],
    now: DateTime<Utc>,
) -> i64 {
    let worked = guarantee::worked(commitment, calendar, events, now);
    let whole = worked.num_minutes();
    if worked > chrono::Duration::minutes(whole) { whole + 1 } else { whole }.max(0)
}

/// Re-evaluates every commitment of the case as of its latest fact.
async fn recompute(tx: &mut PgConnection, tenant: &TenantConfig, id: Uuid, case: &CaseRow) -> sqlx::Result<()> {
    let list = commitments(tenant, &case.kind, &case.case_type, case.anonymous);
    if list.is_empty() {
        return Ok(());
    }
    let rows: Vec<(String, DateTime<Utc>, Vec<String>)> =
        sqlx::query_as("SELECT kind, at, tasks FROM facts WHERE case_id = $1 ORDER BY at, recorded")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let facts: Vec<CaseFact> = rows.into_iter().map(|(kind, at, tasks)| CaseFact { kind, at, tasks }).collect();
    let events: Vec<guarantee::ClockEvent> = facts.iter().map(CaseFact::clock_event).collect();
    // As of the latest fact, so a replay evaluates exactly as the first pass did.
    let Some(now) = facts.iter().map(|f| f.at).max() else { return Ok(()) };
    let calendar = WorkCalendar::for_tenant(tenant);
    for (key, commitment) in &list {
        let commitment: &Commitment = commitment;
        let clock = guarantee::evaluate(commitment, &calendar, &events, now);
        let reason = clock.due_at.map(|due| breach_reason(commitment, &facts, due).key());
        sqlx::query(
            "INSERT INTO clocks (case_id, tenant, commitment, name, legal, state, started_at, stopped_at, due_at,
                 working_minutes, reason)
             VALUES ($1, $11, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (case_id, commitment) DO UPDATE SET name = EXCLUDED.name, legal = EXCLUDED.legal,
                 state = EXCLUDED.state, started_at = EXCLUDED.started_at, stopped_at = EXCLUDED.stopped_at,
                 due_at = EXCLUDED.due_at, working_minutes = EXCLUDED.working_minutes, reason = EXCLUDED.reason",
        )
        .bind(id)
        .bind(key)
        .bind(&commitment.name)
        .bind(is_legal(commitment))
        .bind(clock.state.as_str())
        .bind(clock.started_at)
        .bind(clock.stopped_at)
        .bind(clock.due_at)
        .bind(working_minutes(commitment, &calendar, &events, now))
        .bind(reason)
        .bind(&tenant.kommunkod)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
