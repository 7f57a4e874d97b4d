//! Routing's operations: route a registered case, answer tasks, end a case. Each writes its
//! state and the events it emits in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lots_domain::calendar::WorkCalendar;
use lots_domain::slots::{self, Interval, SlotQuery};
use lots_domain::tenant::{CaseType, TenantConfig};
use lots_events::{
    CaseRegistered, CaseRouted, CaseUnroutable, Envelope, MeetingBooked, MeetingCancelled, MeetingProposed, Payload,
    Subjects, TaskAccepted, TaskCancelled, TaskCompleted, TaskDeclined, TaskOffered, TaskRef,
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
    pub subjects: Subjects,
    pub tenants: Arc<Tenants>,
    pub clock: Clock,
    pub relay: Arc<Notify>,
    pub metrics: lots_platform::metrics::Metrics,
}

/// How many times booking is retried when a concurrent case took the chosen time.
const BOOKING_ATTEMPTS: usize = 8;
/// Working days searched first, with the first choice of officers only.
const NEAR_WORKING_DAYS: u32 = 3;
/// Candidates per seat whose calendars are searched, best first.
const CANDIDATES_PER_SEAT: usize = 12;
/// Meetings start on the quarter hour.
const GRANULARITY_MINUTES: i64 = 15;
/// Working days searched when a case type promises no dukat bord deadline.
const DEFAULT_HORIZON_DAYS: u32 = 20;

impl Routing {
    fn tenant(&self, code: &str) -> Result<&Arc<TenantConfig>> {
        self.tenants.get(code).ok_or_else(|| Error::Config(format!("tenant {code} is not configured")))
    }

    /// Routes a newly registered case: seats, officers, a common slot, tasks; or unroutable.
    #[instrument(name = "routing.route_case", skip_all, fields(case_id = %event.case_id))]
    pub async fn on_registered(&self, conn: &mut PgConnection, event: &Envelope, data: CaseRegistered) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO cases (id, tenant, reference, case_type, org_nr, company_name, contact_name, contact_email,
                registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.case_id)
        .bind(&event.tenant)
        .bind(&data.reference)
        .bind(&data.case_type)
        .bind(&data.org_nr)
        .bind(&data.company_name)
        .bind(&data.contact.name)
        .bind(&data.contact.email)
        .bind(event.occurred_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(());
        }
        let case = store::lock_case(conn, event.case_id).await?.ok_or_else(|| Error::NotFound("case".into()))?;
        let tenant = self.tenant(&case.tenant)?.clone();
        let Some(case_type) = tenant.case_type(&case.case_type) else {
            let reason = format!("the case type \"{}\" is not in the catalogue", case.case_type);
            return self.mark_unroutable(conn, &case, None, &reason).await;
        };
        let now = self.clock.now();
        let query = self.window(&tenant, case_type, case.registered_at, now);
        let mut last_error = None;
        for _ in 0..BOOKING_ATTEMPTS {
            let seats = self.seats(&mut *conn, &case, case_type, &[]).await?;
            let choice = match self.search(&mut *conn, &tenant, &seats, &query, case_type).await? {
                Ok(choice) => choice,
                Err(reason) => {
                    self.outcome("unroutable", event.occurred_at);
                    return self.mark_unroutable(conn, &case, None, &reason).await;
                }
            };
            let mut sp = conn.begin().await?;
            match self.book(&mut sp, &case, &tenant, &seats, &choice).await {
                Ok(()) => {
                    sp.commit().await?;
                    self.outcome("routed", event.occurred_at);
                    return Ok(());
                }
                Err(Error::Database(e)) if is_overlap(&e) => {
                    // Another case booked one of these officers at this time; look again.
                    sp.rollback().await?;
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.map(Error::Database).unwrap_or_else(|| Error::Config("booking failed".into())))
    }

    fn outcome(&self, outcome: &str, registered: DateTime<Utc>) {
        let labels = [("outcome", outcome)];
        self.metrics.count("lots_routing_outcomes_total", "Cases routed or unroutable.", &labels, 1.0);
        let seconds = (self.clock.now() - registered).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics.observe("lots_routing_seconds", "Registration to routing decision.", &labels, seconds);
    }

    /// The search window: after the minimum notice, before the dukat bord promise.
    fn window(
        &self,
        tenant: &TenantConfig,
        case_type: &CaseType,
        registered: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> SlotQuery {
        let calendar = WorkCalendar::for_tenant(tenant);
        let not_before = now.max(registered) + Duration::hours(i64::from(case_type.min_notice_hours));
        let promise = case_type
            .commitments
            .iter()
            .filter_map(|k| tenant.commitments.get(k))
            .find(|c| c.stops_on.iter().any(|e| e == MeetingBooked::TYPE));
        let mut not_after = match promise.map(|c| c.target) {
            Some(lots_domain::tenant::Target::WorkingDays(n)) => calendar.add_working_days(registered, n),
            Some(lots_domain::tenant::Target::WorkingHours(n)) => calendar.add_working_hours(registered, n),
            Some(lots_domain::tenant::Target::CalendarWeeks(w)) => calendar.legal_deadline(registered, w),
            None => calendar.add_working_days(registered, DEFAULT_HORIZON_DAYS),
        };
        if not_after <= not_before {
            // The promise can no longer be kept; still find the earliest time rather than none.
            not_after = calendar.add_working_days(not_before, DEFAULT_HORIZON_DAYS);
        }
        SlotQuery {
            length: Duration::minutes(i64::from(case_type.meeting_minutes)),
            not_before,
            not_after,
            granularity: Duration::minutes(GRANULARITY_MINUTES),
        }
    }

    async fn seats(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        case_type: &CaseType,
        exclude: &[String],
    ) -> Result<Vec<Seat>> {
        let mut seats = Vec::with_capacity(case_type.seats.len());
        for seat in &case_type.seats {
            let all = store::candidates(&mut *conn, &case.tenant, &seat.competence, &case.org_nr).await?;
            let holders = all.len();
            let mut candidates = plan::order(all.into_iter().filter(|c| !exclude.contains(&c.officer_id)).collect());
            // The best few are enough for the first choice and its alternates; computing free
            // time for every holder of a common competence would make routing scale with staff.
            candidates.truncate(CANDIDATES_PER_SEAT);
            seats.push(Seat { competence: seat.competence.clone(), optional: seat.optional, candidates, holders });
        }
        Ok(seats)
    }

    /// Chooses officers and a slot: first the best officers within the next few working days
    /// (little calendar to read), then the whole window with alternates. The first step only
    /// accepts the first choice of officers, so it finds exactly what the whole search would.
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
        let near = WorkCalendar::for_tenant(tenant).add_working_days(query.not_before, NEAR_WORKING_DAYS);
        if near < query.not_after {
            // The first choice for each required seat; every candidate of an optional seat, which
            // joins if anyone is free at the chosen time.
            let first: Vec<String> = seats
                .iter()
                .flat_map(|s| s.candidates.iter().take(if s.optional { usize::MAX } else { 1 }))
                .map(|c| c.officer_id.clone())
                .collect();
            let short = SlotQuery { not_after: near, ..*query };
            let free = self.free_time(&mut *conn, tenant, &first, &short, case_type).await?;
            if let Ok(choice) = plan::choose(seats, &free, &short, "", false) {
                return Ok(Ok(choice));
            }
        }
        let free = self.free_time(&mut *conn, tenant, &officers, query, case_type).await?;
        Ok(plan::choose(seats, &free, query, &window_text(query), true))
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

    async fn book(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        tenant: &TenantConfig,
        seats: &[Seat],
        choice: &Choice,
    ) -> Result<()> {
        let now = self.clock.now();
        let meeting_id = Uuid::now_v7();
        let location =
            tenant.meeting_location.clone().unwrap_or_else(|| format!("{}, näringslivskontoret", tenant.name));
        sqlx::query(
            "INSERT INTO meetings (id, case_id, tenant, status, starts_at, ends_at, location)
             VALUES ($1, $2, $3, 'proposed', $4, $5, $6)",
        )
        .bind(meeting_id)
        .bind(case.id)
        .bind(&case.tenant)
        .bind(choice.slot.start)
        .bind(choice.slot.end)
        .bind(&location)
        .execute(&mut *conn)
        .await?;
        let mut offered = Vec::new();
        let mut seated: Vec<(&Seat, &String)> =
            seats.iter().zip(&choice.officers).filter_map(|(s, o)| Some((s, o.as_ref()?))).collect();
        // Officer rows are locked while numbering changes; a fixed order avoids deadlocks.
        seated.sort_by(|a, b| a.1.cmp(b.1));
        for (seat, officer) in seated {
            let unit =
                seat.candidates.iter().find(|c| &c.officer_id == officer).map(|c| c.unit.clone()).unwrap_or_default();
            let task = self
                .offer(conn, case, meeting_id, officer, &unit, &seat.competence, seat.optional, choice.slot, now)
                .await?;
            offered.push(task);
        }
        let officers: Vec<String> = offered.iter().map(|t| t.officer_id.clone()).collect();
        self.emit(conn, case, CaseRouted { meeting_id, officers: officers.clone(), starts_at: choice.slot.start })
            .await?;
        self.emit(
            conn,
            case,
            MeetingProposed {
                meeting_id,
                starts_at: choice.slot.start,
                ends_at: choice.slot.end,
                officers,
                sequence: 0,
            },
        )
        .await?;
        for task in offered {
            self.emit(conn, case, TaskOffered { task }).await?;
        }
        tracing::info!(%meeting_id, starts_at = %choice.slot.start, "case routed");
        Ok(())
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
            "INSERT INTO company_officers (tenant, org_nr, competence, officer_id, last_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, org_nr, competence, officer_id) DO UPDATE SET last_at = EXCLUDED.last_at",
        )
        .bind(&case.tenant)
        .bind(&case.org_nr)
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
        sqlx::query("UPDATE cases SET state = 'ended' WHERE id = $1").bind(case.id).execute(&mut *conn).await?;
        if let Some(meeting) = store::live_meeting(&mut *conn, case.id).await? {
            self.cancel_meeting(conn, &case, &meeting, reason).await?;
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
    pub async fn accept(&self, tenant: &str, officer: &str, task_id: Uuid) -> Result<TaskRow> {
        let mut tx = self.pool.begin().await?;
        let (task, case) = self.lock_own_task(&mut tx, tenant, officer, task_id).await?;
        if task.status != "offered" {
            return Err(Error::Precondition(format!(
                "the task is {}, only an offered task can be accepted",
                task.status
            )));
        }
        self.set_status(&mut tx, &task, "accepted", None).await?;
        self.emit(&mut tx, &case, TaskAccepted { task: task_ref(&task) }).await?;
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE meeting_id = $1 AND status = 'offered'")
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
                self.emit(&mut tx, &case, data).await?;
                tracing::info!(meeting_id = %task.meeting_id, "dukat bord booked");
            }
        }
        let task = store::task(&mut *tx, task_id).await?.ok_or_else(|| Error::NotFound("task".into()))?;
        tx.commit().await?;
        self.relay.notify_one();
        Ok(task)
    }

    /// The officer completes their part.
    #[instrument(name = "routing.complete", skip_all, fields(task_id = %task_id))]
    pub async fn complete(&self, tenant: &str, officer: &str, task_id: Uuid) -> Result<TaskRow> {
        let mut tx = self.pool.begin().await?;
        let (task, case) = self.lock_own_task(&mut tx, tenant, officer, task_id).await?;
        if task.status != "accepted" {
            return Err(Error::Precondition(format!(
                "the task is {}, only an accepted task can be completed",
                task.status
            )));
        }
        self.set_status(&mut tx, &task, "completed", None).await?;
        self.emit(&mut tx, &case, TaskCompleted { task: task_ref(&task) }).await?;
        let task = store::task(&mut *tx, task_id).await?.ok_or_else(|| Error::NotFound("task".into()))?;
        tx.commit().await?;
        self.relay.notify_one();
        Ok(task)
    }

    /// The officer declines; the seat goes to another officer with the competence, at the
    /// same time if someone is free then, else the meeting moves; else the case is unroutable.
    #[instrument(name = "routing.decline", skip_all, fields(task_id = %task_id))]
    pub async fn decline(&self, tenant_code: &str, officer: &str, task_id: Uuid, reason: &str) -> Result<TaskRow> {
        let mut tx = self.pool.begin().await?;
        let (task, case) = self.lock_own_task(&mut tx, tenant_code, officer, task_id).await?;
        if task.status != "offered" && task.status != "accepted" {
            return Err(Error::Precondition(format!("the task is {}, it cannot be declined", task.status)));
        }
        self.set_status(&mut tx, &task, "declined", Some(reason)).await?;
        sqlx::query("UPDATE bookings SET active = false WHERE meeting_id = $1 AND officer_id = $2")
            .bind(task.meeting_id)
            .bind(officer)
            .execute(&mut *tx)
            .await?;
        self.emit(&mut tx, &case, TaskDeclined { task: task_ref(&task), reason: reason.to_owned() }).await?;
        // Whoever declined is not this company's contact for the competence.
        sqlx::query(
            "DELETE FROM company_officers WHERE tenant = $1 AND org_nr = $2 AND competence = $3 AND officer_id = $4",
        )
        .bind(&case.tenant)
        .bind(&case.org_nr)
        .bind(&task.competence)
        .bind(officer)
        .execute(&mut *tx)
        .await?;
        self.reseat(&mut tx, &case, &task).await?;
        let declined = store::task(&mut *tx, task_id).await?.ok_or_else(|| Error::NotFound("task".into()))?;
        tx.commit().await?;
        self.relay.notify_one();
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
        let all = store::candidates(&mut *conn, &case.tenant, &declined.competence, &case.org_nr).await?;
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
            let mine = store::candidates(&mut *conn, &case.tenant, &t.competence, &case.org_nr).await?;
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
        let query = self.window(&tenant, case_type, case.registered_at, now);
        match self.search(&mut *conn, &tenant, &seats, &query, case_type).await? {
            Ok(choice) => self.move_meeting(conn, case, &meeting, &keep, &seats, &choice).await,
            Err(reason) => {
                let reason = format!("after {} declined: {reason}", declined.officer_id);
                self.mark_unroutable(conn, case, Some(&meeting), &reason).await
            }
        }
    }

    async fn move_meeting(
        &self,
        conn: &mut PgConnection,
        case: &CaseRow,
        meeting: &MeetingRow,
        keep: &[&TaskRow],
        seats: &[Seat],
        choice: &Choice,
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
        tracing::info!(meeting_id = %meeting.id, starts_at = %choice.slot.start, "meeting moved");
        Ok(())
    }

    async fn lock_own_task(
        &self,
        conn: &mut PgConnection,
        tenant: &str,
        officer: &str,
        task_id: Uuid,
    ) -> Result<(TaskRow, CaseRow)> {
        let case_id: Option<Uuid> = sqlx::query_scalar("SELECT case_id FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await?;
        let case_id = case_id.ok_or_else(|| Error::NotFound(format!("no task {task_id}")))?;
        // Lock order: case, then task; every writer of a case's tasks takes the case first.
        let case = store::lock_case(conn, case_id).await?.ok_or_else(|| Error::NotFound("case".into()))?;
        sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE").bind(task_id).execute(&mut *conn).await?;
        let task =
            store::task(&mut *conn, task_id).await?.ok_or_else(|| Error::NotFound(format!("no task {task_id}")))?;
        if task.tenant != tenant || task.officer_id != officer {
            return Err(Error::PermissionDenied("the task belongs to another officer".into()));
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
        let version: i64 = sqlx::query_scalar("UPDATE cases SET version = version + 1 WHERE id = $1 RETURNING version")
            .bind(case.id)
            .fetch_one(&mut *conn)
            .await?;
        let event = Envelope::new(&case.tenant, case.id, version as u64, "routing", self.clock.now(), data)
            .into_raw()
            .map_err(lots_platform::Error::from)?;
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

fn window_text(q: &SlotQuery) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&lots_domain::calendar::TZ).format("%Y-%m-%d %H:%M");
    format!("between {} and {}", local(q.not_before), local(q.not_after))
}
