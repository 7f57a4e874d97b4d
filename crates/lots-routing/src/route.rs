//! Routing's operations on existing cases: answer tasks, re-seat a declined seat, move a
//! meeting, end a case. They run only inside the tenant writer's transaction (see `writer`),
//! on rows the writer has already flushed, so they never race the writer's decisions.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lots_domain::calendar::WorkCalendar;
use lots_domain::slots::{self, Interval, SlotQuery};
use lots_domain::tenant::{CaseType, TenantConfig};
use lots_events::{
    CaseOwner, CaseOwnerChanged, CaseUnroutable, Envelope, MeetingBooked, MeetingCancelled, MeetingProposed, Payload,
    Subjects, TaskAccepted, TaskCancelled, TaskCompleted, TaskDeclined, TaskOffered, TaskRef, Views,
};
use lots_platform::{Clock, Tenants, outbox};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::instrument;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::plan::{self, Choice, Seat};
use crate::store::{self, CaseRow, MeetingRow, TaskRow};

/// Routing's shared state.
#[derive(Clone)]
pub struct Routing {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    pub tenants: Arc<Tenants>,
    /// Where calendar files named in the configuration are looked up.
    pub config_dir: std::path::PathBuf,
    pub clock: Clock,
    pub relay: Arc<Notify>,
    pub metrics: lots_platform::metrics::Metrics,
}

impl Routing {
    pub(crate) fn tenant(&self, code: &str) -> Result<&Arc<TenantConfig>> {
        self.tenants.get(code).ok_or_else(|| Error::Config(format!("tenant {code} is not configured")))
    }

    /// Counts a routing outcome and its latency from registration.
    pub(crate) fn outcome(&self, outcome: &str, registered: DateTime<Utc>) {
        let labels = [("outcome", outcome)];
        self.metrics.count("lots_routing_outcomes_total", "Cases routed or unroutable.", &labels, 1.0);
        let seconds = (self.clock.now() - registered).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics.observe("lots_routing_seconds", "Registration to routing decision.", &labels, seconds);
    }

    /// Chooses officers and a slot over the calendars in Postgres (the re-seating path).
    async fn search(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantConfig,
        seats: &[Seat],
        query: &SlotQuery,
        case_type: &CaseType,
    ) -> Result<Result<Choice, String>> {
        let officers: Vec<String> =
            seats.iter().flat_map(|s| s.candidates.iter().map(|c| c.officer_id.clone())).collect();
        let free = self.free_time(&mut *conn, tenant, &officers, query, case_type).await?;
        Ok(plan::choose(seats, &free, query, &plan::window_text(query), true))
    }

    async fn free_time(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantConfig,
        officers: &[String],
        query: &SlotQuery,
        case_type: &CaseType,
    ) -> Result<HashMap<String, Vec<Interval>>> {
        let busy = store::busy(&mut *conn, &tenant.kommunkod, officers, query.not_before, query.not_after).await?;
        let buffer = Duration::minutes(i64::from(case_type.buffer_minutes));
        let mut free = HashMap::with_capacity(officers.len());
        for id in officers {
            let Some(officer) = tenant.officer(id) else {
                continue;
            };
            let calendar = WorkCalendar::for_officer(tenant, officer);
            let working: Vec<Interval> = calendar
                .working_intervals(query.not_before, query.not_after)
                .into_iter()
                .map(|(s, e)| Interval::new(s, e))
                .collect();
            let officer_busy = busy.get(id).map(Vec::as_slice).unwrap_or_default();
            free.insert(id.clone(), slots::free_time(&working, officer_busy, buffer));
        }
        Ok(free)
    }

    #[allow(clippy::too_many_arguments)]
    async fn offer(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        meeting_id: Uuid,
        officer: &str,
        unit: &str,
        competence: &str,
        optional: bool,
        slot: Interval,
        now: DateTime<Utc>,
    ) -> Result<TaskRef> {
        sqlx::query(
            "INSERT INTO bookings (meeting_id, tenant, officer_id, during) VALUES ($1, $2, $3, tstzrange($4, $5))",
        )
        .bind(meeting_id)
        .bind(&case.tenant)
        .bind(officer)
        .bind(slot.start)
        .bind(slot.end)
        .execute(&mut *conn)
        .await?;
        let task_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO tasks (id, case_id, meeting_id, tenant, officer_id, unit, competence, optional, status,
                created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'offered', $9, $9)",
        )
        .bind(task_id)
        .bind(case.id)
        .bind(meeting_id)
        .bind(&case.tenant)
        .bind(officer)
        .bind(unit)
        .bind(competence)
        .bind(optional)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO company_officers (tenant, company_key, competence, officer_id, last_at)
             SELECT $1, $2, $3, $4, $5 WHERE $2 <> ''
             ON CONFLICT (tenant, company_key, competence, officer_id) DO UPDATE SET last_at = EXCLUDED.last_at",
        )
        .bind(&case.tenant)
        .bind(&case.company_key)
        .bind(competence)
        .bind(officer)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE officers SET last_assigned_at = $3 WHERE tenant = $1 AND id = $2")
            .bind(&case.tenant)
            .bind(officer)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        store::record_change(conn, &case.tenant, officer, task_id, "offered").await?;
        Ok(TaskRef {
            task_id,
            meeting_id,
            officer_id: officer.to_owned(),
            unit: unit.to_owned(),
            competence: competence.to_owned(),
        })
    }

    async fn mark_unroutable(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        meeting: Option<&MeetingRow>,
        reason: &str,
    ) -> Result<()> {
        if let Some(m) = meeting {
            self.cancel_meeting(conn, case, m, reason).await?;
        }
        sqlx::query("UPDATE cases SET state = 'unroutable', unroutable_reason = $2 WHERE id = $1")
            .bind(case.id)
            .bind(reason)
            .execute(&mut *conn)
            .await?;
        self.emit(conn, case, CaseUnroutable { reason: reason.to_owned() }).await?;
        tracing::warn!(reason, "case unroutable");
        Ok(())
    }

    /// Ends routing's part of a case: open tasks are cancelled and the officers' time freed.
    #[instrument(name = "routing.end_case", skip_all, fields(case_id = %case_id))]
    pub async fn on_ended(&self, conn: &mut PgConnection, case_id: Uuid, reason: &str) -> Result<()> {
        let Some(case) = store::lock_case(conn, case_id).await? else {
            return Ok(());
        };
        sqlx::query("UPDATE cases SET state = 'ended', ended_at = now() WHERE id = $1")
            .bind(case.id)
            .execute(&mut *conn)
            .await?;
        if let Some(meeting) = store::live_meeting(&mut *conn, case.id).await? {
            // A dukat bord that already took place stays in everyone's calendar: cancelling it
            // would send METHOD:CANCEL, which calendar clients treat as deleting it.
            if meeting.starts_at > self.clock.now() {
                self.cancel_meeting(conn, &case, &meeting, reason).await?;
            }
        }
        Ok(())
    }

    async fn cancel_meeting(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        m: &MeetingRow,
        reason: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tasks = store::meeting_tasks(&mut *conn, m.id).await?;
        tasks.retain(|t| t.status == "offered" || t.status == "accepted");
        tasks.sort_by(|a, b| a.officer_id.cmp(&b.officer_id));
        for t in &tasks {
            sqlx::query("UPDATE tasks SET status = 'cancelled', reason = $2, updated_at = $3 WHERE id = $1")
                .bind(t.id)
                .bind(reason)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            store::record_change(conn, &t.tenant, &t.officer_id, t.id, "cancelled").await?;
        }
        sqlx::query("UPDATE bookings SET active = false WHERE meeting_id = $1").bind(m.id).execute(&mut *conn).await?;
        sqlx::query("UPDATE meetings SET status = 'cancelled' WHERE id = $1").bind(m.id).execute(&mut *conn).await?;
        for t in tasks {
            self.emit(conn, case, TaskCancelled { task: task_ref(&t), reason: reason.to_owned() }).await?;
        }
        self.emit(conn, case, MeetingCancelled { meeting_id: m.id, reason: reason.to_owned() }).await?;
        Ok(())
    }

    /// The officer accepts a seat; when every seat is accepted the meeting is booked.
    #[instrument(name = "routing.accept", skip_all, fields(task_id = %task_id))]
    pub async fn accept(&self, tx: &mut PgConnection, tenant: &str, officer: &str, task_id: Uuid) -> Result<TaskRow> {
        let (task, case) = self.lock_own_task(&mut *tx, tenant, officer, task_id).await?;
        if task.status != "offered" {
            return Err(Error::Precondition(format!(
                "the task is {}, only an offered task can be accepted",
                task.status
            )));
        }
        self.set_status(&mut *tx, &task, "accepted", None).await?;
        self.emit(&mut *tx, &case, TaskAccepted { task: task_ref(&task) }).await?;
        // Booked when every required seat has accepted; optional attendees join if they do.
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE meeting_id = $1 AND status = 'offered' AND NOT optional",
        )
        .bind(task.meeting_id)
        .fetch_one(&mut *tx)
        .await?;
        if open == 0 {
            let booked = sqlx::query("UPDATE meetings SET status = 'booked' WHERE id = $1 AND status = 'proposed'")
                .bind(task.meeting_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if booked == 1 {
                let data =
                    MeetingBooked { meeting_id: task.meeting_id, starts_at: task.starts_at, ends_at: task.ends_at };
                self.emit(&mut *tx, &case, data).await?;
                tracing::info!(meeting_id = %task.meeting_id, "dukat bord booked");
            }
        }
        let task = store::task(&mut *tx, task_id).await?.ok_or_else(|| Error::NotFound("task".into()))?;
        Ok(task)
    }

    /// The officer completes their part.
    #[instrument(name = "routing.complete", skip_all, fields(task_id = %task_id))]
    pub async fn complete(&self, tx: &mut PgConnection, tenant: &str, officer: &str, task_id: Uuid) -> Result<TaskRow> {
        let (task, case) = self.lock_own_task(&mut *tx, tenant, officer, task_id).await?;
        if task.status != "accepted" {
            return Err(Error::Precondition(format!(
                "the task is {}, only an accepted task can be completed",
                task.status
            )));
        }
        self.set_status(&mut *tx, &task, "completed", None).await?;
        self.emit(&mut *tx, &case, TaskCompleted { task: task_ref(&task) }).await?;
        let task = store::task(&mut *tx, task_id).await?.ok_or_else(|| Error::NotFound("task".into()))?;
        Ok(task)
    }

    /// The officer declines; the seat goes to another officer with the competence, at the
    /// same time if someone is free then, else the meeting moves; else the case is unroutable.
    #[instrument(name = "routing.decline", skip_all, fields(task_id = %task_id))]
    pub async fn decline(
        &self,
        tx: &mut PgConnection,
        tenant_code: &str,
        officer: &str,
        task_id: Uuid,
        reason: &str,
    ) -> Result<TaskRow> {
        let (task, case) = self.lock_own_task(&mut *tx, tenant_code, officer, task_id).await?;
        if task.status != "offered" && task.status != "accepted" {
            return Err(Error::Precondition(format!("the task is {}, it cannot be declined", task.status)));
        }
        self.set_status(&mut *tx, &task, "declined", Some(reason)).await?;
        sqlx::query("UPDATE bookings SET active = false WHERE meeting_id = $1 AND officer_id = $2")
            .bind(task.meeting_id)
            .bind(officer)
            .execute(&mut *tx)
            .await?;
        self.emit(&mut *tx, &case, TaskDeclined { task: task_ref(&task), reason: reason.to_owned() }).await?;
        // Whoever declined is not this company's contact for the competence.
        sqlx::query(
            "DELETE FROM company_officers WHERE tenant = $1 AND company_key = $2 AND competence = $3 AND officer_id = $4",
        )
        .bind(&case.tenant)
        .bind(&case.company_key)
        .bind(&task.competence)
        .bind(officer)
        .execute(&mut *tx)
        .await?;
        self.reseat(&mut *tx, &case, &task).await?;
        let declined = store::task(&mut *tx, task_id).await?.ok_or_else(|| Error::NotFound("task".into()))?;
        Ok(declined)
    }

    async fn reseat(&self, conn: &mut PgConnection, case: &CaseRow, declined: &TaskRow) -> Result<()> {
        let tenant = self.tenant(&case.tenant)?.clone();
        let case_type = tenant.case_type(&case.case_type).ok_or_else(|| Error::Config("case type gone".into()))?;
        let meeting =
            store::meeting(&mut *conn, declined.meeting_id).await?.ok_or_else(|| Error::NotFound("meeting".into()))?;
        let tasks = store::meeting_tasks(&mut *conn, meeting.id).await?;
        // Nobody who already sits at this table or declined it gets the seat.
        let exclude: Vec<String> = tasks.iter().map(|t| t.officer_id.clone()).collect();
        let all = store::candidates(&mut *conn, &case.tenant, &declined.competence, &case.company_key).await?;
        let holders = all.len();
        let candidates = plan::order(all.into_iter().filter(|c| !exclude.contains(&c.officer_id)).collect());
        let now = self.clock.now();
        let slot = Interval::new(meeting.starts_at, meeting.ends_at);
        let at_same_time = SlotQuery {
            length: slot.len(),
            not_before: slot.start,
            not_after: slot.end,
            granularity: Duration::zero(),
        };
        let ids: Vec<String> = candidates.iter().map(|c| c.officer_id.clone()).collect();
        let free = self.free_time(&mut *conn, &tenant, &ids, &at_same_time, case_type).await?;
        for c in &candidates {
            let fits = free
                .get(&c.officer_id)
                .is_some_and(|f| f.iter().any(|iv| iv.start <= slot.start && slot.end <= iv.end));
            if !fits {
                continue;
            }
            let mut sp = conn.begin().await?;
            match self
                .offer(
                    &mut sp,
                    case,
                    meeting.id,
                    &c.officer_id,
                    &c.unit,
                    &declined.competence,
                    declined.optional,
                    slot,
                    now,
                )
                .await
            {
                Ok(task) => {
                    sqlx::query("UPDATE meetings SET status = 'proposed' WHERE id = $1")
                        .bind(meeting.id)
                        .execute(&mut *sp)
                        .await?;
                    sp.commit().await?;
                    self.emit(conn, case, TaskOffered { task }).await?;
                    if case.owner_officer.as_deref() == Some(declined.officer_id.as_str()) {
                        self.set_owner(conn, case, &c.officer_id, &c.unit, "the case owner declined the seat").await?;
                    }
                    return Ok(());
                }
                Err(Error::Database(e)) if is_overlap(&e) => sp.rollback().await?,
                Err(e) => return Err(e),
            }
        }
        if declined.optional {
            return Ok(());
        }
        // Nobody is free then: move the meeting, keeping the others and finding a new officer.
        let keep: Vec<&TaskRow> = tasks
            .iter()
            .filter(|t| t.id != declined.id && (t.status == "offered" || t.status == "accepted") && !t.optional)
            .collect();
        let mut seats: Vec<Seat> = Vec::new();
        for t in &keep {
            let mine = store::candidates(&mut *conn, &case.tenant, &t.competence, &case.company_key).await?;
            let me: Vec<_> = mine
                .into_iter()
                .filter(|c| c.officer_id == t.officer_id)
                .map(|mut c| {
                    // Their current task for this case counts as already held, not as extra load.
                    c.open_tasks -= 1;
                    c
                })
                .collect();
            seats.push(Seat { competence: t.competence.clone(), optional: false, candidates: me, holders: 1 });
        }
        seats.push(Seat { competence: declined.competence.clone(), optional: false, candidates, holders });
        // Free the kept officers' current meeting time so the search may reuse it.
        sqlx::query("UPDATE bookings SET active = false WHERE meeting_id = $1")
            .bind(meeting.id)
            .execute(&mut *conn)
            .await?;
        let query = plan::window(&tenant, case_type, case.registered_at, now);
        match self.search(&mut *conn, &tenant, &seats, &query, case_type).await? {
            Ok(choice) => {
                // Optional attendees are not moved along: their seats are cancelled, never left
                // at the new time without a booking.
                for t in tasks.iter().filter(|t| t.optional && (t.status == "offered" || t.status == "accepted")) {
                    let why = "the dukat bord moved";
                    sqlx::query("UPDATE tasks SET status = 'cancelled', reason = $2, updated_at = $3 WHERE id = $1")
                        .bind(t.id)
                        .bind(why)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    store::record_change(conn, &case.tenant, &t.officer_id, t.id, "cancelled").await?;
                    self.emit(conn, case, TaskCancelled { task: task_ref(t), reason: why.to_owned() }).await?;
                }
                self.move_meeting(conn, case, &meeting, &keep, &seats, &choice, declined).await
            }
            Err(reason) => {
                let reason = format!("after {} declined: {reason}", declined.officer_id);
                self.mark_unroutable(conn, case, Some(&meeting), &reason).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn move_meeting(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        meeting: &MeetingRow,
        keep: &[&TaskRow],
        seats: &[Seat],
        choice: &Choice,
        declined: &TaskRow,
    ) -> Result<()> {
        let now = self.clock.now();
        let sequence = meeting.sequence + 1;
        sqlx::query(
            "UPDATE meetings SET starts_at = $2, ends_at = $3, sequence = $4, status = 'proposed' WHERE id = $1",
        )
        .bind(meeting.id)
        .bind(choice.slot.start)
        .bind(choice.slot.end)
        .bind(sequence)
        .execute(&mut *conn)
        .await?;
        let mut kept: Vec<&&TaskRow> = keep.iter().collect();
        kept.sort_by(|a, b| a.officer_id.cmp(&b.officer_id));
        for t in kept {
            sqlx::query(
                "INSERT INTO bookings (meeting_id, tenant, officer_id, during) VALUES ($1, $2, $3, tstzrange($4, $5))",
            )
            .bind(meeting.id)
            .bind(&case.tenant)
            .bind(&t.officer_id)
            .bind(choice.slot.start)
            .bind(choice.slot.end)
            .execute(&mut *conn)
            .await?;
            // A moved meeting must be accepted again.
            sqlx::query("UPDATE tasks SET status = 'offered', updated_at = $2 WHERE id = $1")
                .bind(t.id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            store::record_change(conn, &case.tenant, &t.officer_id, t.id, "moved").await?;
        }
        let new_seat = seats.last().ok_or_else(|| Error::Config("no seat".into()))?;
        let Some(Some(officer)) = choice.officers.last() else {
            return Err(Error::Config("no officer".into()));
        };
        let unit =
            new_seat.candidates.iter().find(|c| &c.officer_id == officer).map(|c| c.unit.clone()).unwrap_or_default();
        let task =
            self.offer(conn, case, meeting.id, officer, &unit, &new_seat.competence, false, choice.slot, now).await?;
        let officers: Vec<String> = choice.officers.iter().flatten().cloned().collect();
        let data = MeetingProposed {
            meeting_id: meeting.id,
            starts_at: choice.slot.start,
            ends_at: choice.slot.end,
            officers,
            sequence: sequence as u32,
        };
        self.emit(conn, case, data).await?;
        self.emit(conn, case, TaskOffered { task }).await?;
        if case.owner_officer.as_deref() == Some(declined.officer_id.as_str()) {
            self.set_owner(conn, case, officer, &unit, "the case owner declined the seat").await?;
        }
        tracing::info!(meeting_id = %meeting.id, starts_at = %choice.slot.start, "meeting moved");
        Ok(())
    }

    /// Makes `officer` the owner of `case_id` at a manager's request. `units` are the caller's
    /// (None: the näringslivschef, any unit): the current or the new owner must be in one.
    pub async fn reassign_owner(
        &self,
        conn: &mut PgConnection,
        tenant: &str,
        case_id: Uuid,
        officer: &str,
        reason: &str,
        units: Option<&[String]>,
    ) -> Result<(String, String)> {
        let case: CaseRow = sqlx::query_as("SELECT * FROM cases WHERE id = $1 AND tenant = $2 FOR UPDATE")
            .bind(case_id)
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::NotFound("no such case in routing".into()))?;
        if case.state != "open" {
            return Err(Error::Precondition(format!(
                "the case is {}: only an open case's owner can change",
                case.state
            )));
        }
        let unit_of = |id: String| {
            sqlx::query_scalar::<_, String>("SELECT unit FROM officers WHERE tenant = $1 AND id = $2 AND active")
                .bind(tenant.to_owned())
                .bind(id)
        };
        let unit = unit_of(officer.to_owned()).fetch_optional(&mut *conn).await?.ok_or_else(|| Error::Invalid {
            field: "officer_id",
            message: format!("{officer:?} is not an active officer of the municipality"),
        })?;
        let current = match &case.owner_officer {
            Some(o) => unit_of(o.clone()).fetch_optional(&mut *conn).await?,
            None => None,
        };
        // An enhetschef hands on a case of their own unit (one without an owner: into their unit).
        if let Some(units) = units
            && !units.contains(current.as_ref().unwrap_or(&unit))
        {
            return Err(Error::PermissionDenied("the case's owner is not in a unit the caller manages".into()));
        }
        if case.owner_officer.as_deref() != Some(officer) {
            self.set_owner(conn, &case, officer, &unit, reason).await?;
        }
        Ok((officer.to_owned(), unit))
    }

    /// Makes `officer` the case's owner and says so.
    async fn set_owner(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        officer: &str,
        unit: &str,
        reason: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE cases SET owner_officer = $2 WHERE id = $1")
            .bind(case.id)
            .bind(officer)
            .execute(&mut *conn)
            .await?;
        let owner = CaseOwner { officer_id: officer.to_owned(), unit: unit.to_owned() };
        self.emit(conn, case, CaseOwnerChanged { owner, reason: reason.to_owned() }).await
    }

    async fn lock_own_task(
        &self,
        conn: &mut PgConnection,
        tenant: &str,
        officer: &str,
        task_id: Uuid,
    ) -> Result<(TaskRow, CaseRow)> {
        // Another officer's or another tenant's task is as unknown as none, and its rows stay
        // untouched (each tenant's writer locks only its own tenant's rows).
        let case_id: Option<Uuid> =
            sqlx::query_scalar("SELECT case_id FROM tasks WHERE id = $1 AND tenant = $2 AND officer_id = $3")
                .bind(task_id)
                .bind(tenant)
                .bind(officer)
                .fetch_optional(&mut *conn)
                .await?;
        let case_id = case_id.ok_or_else(|| Error::NotFound(format!("no task {task_id} of yours")))?;
        // Lock order: case, then task; every writer of a case's tasks takes the case first.
        let case = store::lock_case(conn, case_id).await?.ok_or_else(|| Error::NotFound("case".into()))?;
        sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE").bind(task_id).execute(&mut *conn).await?;
        let task =
            store::task(&mut *conn, task_id).await?.ok_or_else(|| Error::NotFound(format!("no task {task_id}")))?;
        if task.tenant != tenant || task.officer_id != officer {
            return Err(Error::NotFound(format!("no task {task_id} of yours")));
        }
        Ok((task, case))
    }

    async fn set_status(
        &self,
        conn: &mut PgConnection,
        task: &TaskRow,
        status: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE tasks SET status = $2, reason = COALESCE($3, reason), updated_at = $4 WHERE id = $1")
            .bind(task.id)
            .bind(status)
            .bind(reason)
            .bind(self.clock.now())
            .execute(&mut *conn)
            .await?;
        store::record_change(conn, &task.tenant, &task.officer_id, task.id, status).await?;
        Ok(())
    }

    async fn emit<T: Payload>(&self, conn: &mut PgConnection, case: &CaseRow, data: T) -> Result<()> {
        let (version, views): (i64, String) =
            sqlx::query_as("UPDATE cases SET version = version + 1 WHERE id = $1 RETURNING version, views")
                .bind(case.id)
                .fetch_one(&mut *conn)
                .await?;
        let mut views: Views = serde_json::from_str(&views).map_err(lots_platform::Error::from)?;
        let event = Envelope::new(&case.tenant, case.id, version as u64, "routing", self.clock.now(), data)
            .stamped(&mut views)
            .into_raw()
            .map_err(lots_platform::Error::from)?;
        let views = serde_json::to_string(&views).map_err(lots_platform::Error::from)?;
        sqlx::query("UPDATE cases SET views = $2 WHERE id = $1").bind(case.id).bind(views).execute(&mut *conn).await?;
        outbox::enqueue(conn, &self.subjects, &event).await?;
        Ok(())
    }
}

fn task_ref(t: &TaskRow) -> TaskRef {
    TaskRef {
        task_id: t.id,
        meeting_id: t.meeting_id,
        officer_id: t.officer_id.clone(),
        unit: t.unit.clone(),
        competence: t.competence.clone(),
    }
}

fn is_overlap(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.constraint() == Some("bookings_no_overlap"))
}
