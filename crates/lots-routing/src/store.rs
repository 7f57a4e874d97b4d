//! Routing's queries. Callers own the transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lots_domain::slots::Interval;
use sqlx::{FromRow, PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use crate::plan::Candidate;

/// Routing's view of a case.
///
/// `Debug` is written by hand: `company_key` may be a personnummer and the contact is personal data.
#[derive(Clone, FromRow)]
pub struct CaseRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub case_type: String,
    pub company_key: String,
    pub company_name: String,
    pub contact_name: String,
    pub contact_email: String,
    pub registered_at: DateTime<Utc>,
    pub state: String,
    pub version: i64,
    /// JSON of `lots_events::Views`.
    pub views: String,
    pub owner_officer: Option<String>,
}

impl std::fmt::Debug for CaseRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseRow")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("reference", &self.reference)
            .field("case_type", &self.case_type)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A meeting row.
#[derive(Debug, Clone, FromRow)]
pub struct MeetingRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub tenant: String,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub location: String,
    pub sequence: i32,
}

/// A task row joined with what officers see about its case and meeting.
#[derive(Debug, Clone, FromRow, serde::Serialize, serde::Deserialize)]
pub struct TaskRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub meeting_id: Uuid,
    pub tenant: String,
    pub officer_id: String,
    pub unit: String,
    pub competence: String,
    pub optional: bool,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub case_reference: String,
    pub case_type: String,
    pub company_name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

const TASK_SELECT: &str = "SELECT t.id, t.case_id, t.meeting_id, t.tenant, t.officer_id, t.unit, t.competence,
        t.optional, t.status, t.reason, t.created_at, t.updated_at, c.reference AS case_reference,
        c.case_type, c.company_name, m.starts_at, m.ends_at
    FROM tasks t JOIN cases c ON c.id = t.case_id JOIN meetings m ON m.id = t.meeting_id";

/// Candidates for `competence` in `tenant`, with open tasks and continuity for `company_key`.
pub async fn candidates(
    db: impl PgExecutor<'_>,
    tenant: &str,
    competence: &str,
    company_key: &str,
) -> sqlx::Result<Vec<Candidate>> {
    #[derive(FromRow)]
    struct Row {
        id: String,
        unit: String,
        capacity: i32,
        last_assigned_at: Option<DateTime<Utc>>,
        open_tasks: i64,
        served: bool,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT o.id, o.unit, o.capacity, o.last_assigned_at,
            (SELECT count(*) FROM tasks t WHERE t.tenant = o.tenant AND t.officer_id = o.id
                AND t.status IN ('offered', 'accepted')) AS open_tasks,
            EXISTS (SELECT 1 FROM company_officers s
                WHERE s.tenant = o.tenant AND s.company_key = $3 AND $3 <> '' AND s.competence = $2 AND s.officer_id = o.id) AS served
         FROM officers o WHERE o.tenant = $1 AND o.active AND $2 = ANY (o.competences)",
    )
    .bind(tenant)
    .bind(competence)
    .bind(company_key)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            officer_id: r.id,
            unit: r.unit,
            open_tasks: r.open_tasks,
            capacity: i64::from(r.capacity),
            last_assigned_at: r.last_assigned_at,
            served_company: r.served,
        })
        .collect())
}

/// Busy time (calendar entries and booked meetings) of `officers` overlapping [from, to).
pub async fn busy(
    db: impl PgExecutor<'_>,
    tenant: &str,
    officers: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<HashMap<String, Vec<Interval>>> {
    let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT officer_id, lower(during), upper(during) FROM busy
           WHERE tenant = $1 AND officer_id = ANY ($2) AND during && tstzrange($3, $4)
         UNION ALL
         SELECT officer_id, lower(during), upper(during) FROM bookings
           WHERE active AND tenant = $1 AND officer_id = ANY ($2) AND during && tstzrange($3, $4)",
    )
    .bind(tenant)
    .bind(officers)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let mut map: HashMap<String, Vec<Interval>> = HashMap::new();
    for (officer, start, end) in rows {
        map.entry(officer).or_default().push(Interval::new(start, end));
    }
    Ok(map)
}

/// A case by id, locked.
pub async fn lock_case(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<CaseRow>> {
    sqlx::query_as("SELECT * FROM cases WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(conn).await
}

/// The live (not cancelled) meeting of a case.
pub async fn live_meeting(db: impl PgExecutor<'_>, case_id: Uuid) -> sqlx::Result<Option<MeetingRow>> {
    sqlx::query_as("SELECT * FROM meetings WHERE case_id = $1 AND status <> 'cancelled'")
        .bind(case_id)
        .fetch_optional(db)
        .await
}

/// A meeting by id.
pub async fn meeting(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<MeetingRow>> {
    sqlx::query_as("SELECT * FROM meetings WHERE id = $1").bind(id).fetch_optional(db).await
}

/// A task with its case and meeting.
pub async fn task(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{TASK_SELECT} WHERE t.id = $1"))).bind(id).fetch_optional(db).await
}

/// Tasks of a meeting, oldest first.
pub async fn meeting_tasks(db: impl PgExecutor<'_>, meeting_id: Uuid) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{TASK_SELECT} WHERE t.meeting_id = $1 ORDER BY t.created_at, t.id")))
        .bind(meeting_id)
        .fetch_all(db)
        .await
}

/// An officer's tasks in the given statuses, soonest meeting first.
pub async fn officer_tasks(
    db: impl PgExecutor<'_>,
    tenant: &str,
    officer: &str,
    statuses: &[&str],
    page: Page,
) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TASK_SELECT} WHERE t.tenant = $1 AND t.officer_id = $2 AND t.status = ANY ($3)
           AND ($4::timestamptz IS NULL OR (m.starts_at, t.id) > ($4, $5))
         ORDER BY m.starts_at, t.id LIMIT $6"
    )))
    .bind(tenant)
    .bind(officer)
    .bind(statuses)
    .bind(page.after.map(|a| a.0))
    .bind(page.after.map(|a| a.1))
    .bind(page.limit)
    .fetch_all(db)
    .await
}

/// Which part of a task list: after the (meeting start, task id) of the previous page's last
/// task, at most `limit` (`None`: all).
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: Option<i64>,
}

/// Task changes of an officer after `seq`, in order, with the task as it is now.
pub async fn changes_after(
    db: impl PgExecutor<'_>,
    tenant: &str,
    officer: &str,
    seq: i64,
) -> sqlx::Result<Vec<(i64, String, TaskRow)>> {
    #[derive(FromRow)]
    struct Row {
        seq: i64,
        kind: String,
        #[sqlx(flatten)]
        task: TaskRow,
    }
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(
        "SELECT ch.seq, ch.kind, t.id, t.case_id, t.meeting_id, t.tenant, t.officer_id, t.unit, t.competence,
            t.optional, t.status, t.reason, t.created_at, t.updated_at, c.reference AS case_reference,
            c.case_type, c.company_name, m.starts_at, m.ends_at
         FROM task_changes ch JOIN tasks t ON t.id = ch.task_id JOIN cases c ON c.id = t.case_id
            JOIN meetings m ON m.id = t.meeting_id
         WHERE ch.tenant = $1 AND ch.officer_id = $2 AND ch.seq > $3 ORDER BY ch.seq LIMIT 1000"
            .to_owned(),
    ))
    .bind(tenant)
    .bind(officer)
    .bind(seq)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.kind, r.task)).collect())
}

/// The officer's last change number.
pub async fn change_seq(db: impl PgExecutor<'_>, tenant: &str, officer: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT change_seq FROM officers WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(officer)
        .fetch_optional(db)
        .await
}

/// Whether changes after `seq` were deleted by retention (the cursor is too old to resume from).
pub async fn cursor_pruned(db: impl PgExecutor<'_>, tenant: &str, officer: &str, seq: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT COALESCE((SELECT change_seq FROM officers WHERE tenant = $1 AND id = $2), 0) > $3
            AND COALESCE((SELECT min(seq) FROM task_changes WHERE tenant = $1 AND officer_id = $2 AND seq > $3),
                         $3 + 2) > $3 + 1",
    )
    .bind(tenant)
    .bind(officer)
    .bind(seq)
    .fetch_one(db)
    .await
}

/// Records a change to one of `officer`'s tasks and wakes watchers on commit.
pub async fn record_change(
    conn: &mut PgConnection,
    tenant: &str,
    officer: &str,
    task_id: Uuid,
    kind: &str,
) -> sqlx::Result<()> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE officers SET change_seq = change_seq + 1 WHERE tenant = $1 AND id = $2 RETURNING change_seq",
    )
    .bind(tenant)
    .bind(officer)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO task_changes (tenant, officer_id, seq, task_id, kind) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant)
        .bind(officer)
        .bind(seq)
        .bind(task_id)
        .bind(kind)
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::watch::CHANNEL)
        .bind(format!("{tenant}/{officer}"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A routed or unroutable new case, as the writer's batch stores it.
pub struct NewCaseRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub case_type: String,
    pub company_key: String,
    pub company_name: String,
    pub contact_name: String,
    pub contact_email: String,
    pub registered_at: DateTime<Utc>,
    pub unroutable_reason: Option<String>,
    pub views: lots_events::Views,
    pub owner: Option<String>,
}

/// A new task with its booking.
pub struct NewTask {
    pub id: Uuid,
    pub case_id: Uuid,
    pub meeting_id: Uuid,
    pub officer_id: String,
    pub unit: String,
    pub competence: String,
    pub optional: bool,
    pub slot: Interval,
    pub company_key: String,
}

/// Everything one writer batch creates for new cases, written with one statement per table.
#[derive(Default)]
pub struct BatchWrite {
    pub cases: Vec<NewCaseRow>,
    /// (id, case id, start, end, location)
    pub meetings: Vec<(Uuid, Uuid, Interval, String)>,
    pub tasks: Vec<NewTask>,
    /// Events with the trace context of the event that caused them.
    pub events: Vec<(lots_events::Envelope, Option<String>)>,
}

impl BatchWrite {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty() && self.events.is_empty()
    }

    /// Writes the batch in the caller's transaction and empties it.
    #[instrument(name = "routing.store.flush", skip_all, fields(cases = self.cases.len(), tasks = self.tasks.len()))]
    pub async fn flush(
        &mut self,
        conn: &mut PgConnection,
        tenant: &str,
        subjects: &lots_events::Subjects,
        now: DateTime<Utc>,
    ) -> lots_platform::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let cases = std::mem::take(&mut self.cases);
        let views: Vec<String> = cases.iter().map(|c| serde_json::to_string(&c.views)).collect::<Result<_, _>>()?;
        sqlx::query(
            "INSERT INTO cases (id, tenant, reference, case_type, company_key, company_name, contact_name, contact_email,
                registered_at, state, unroutable_reason, version, views, owner_officer)
             SELECT c.id, $1, c.reference, c.case_type, c.company_key, c.company_name, c.contact_name, c.contact_email,
                c.registered_at, CASE WHEN c.reason IS NULL THEN 'open' ELSE 'unroutable' END, c.reason, 1,
                c.views, c.owner
             FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::timestamptz[], $10::text[], $11::text[], $12::text[])
                AS c(id, reference, case_type, company_key, company_name, contact_name, contact_email, registered_at,
                     reason, views, owner)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(tenant)
        .bind(cases.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.reference.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.case_type.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.company_key.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.company_name.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.contact_name.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.contact_email.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.registered_at).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.unroutable_reason.clone()).collect::<Vec<_>>())
        .bind(views)
        .bind(cases.iter().map(|c| c.owner.clone()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;

        let meetings = std::mem::take(&mut self.meetings);
        if !meetings.is_empty() {
            sqlx::query(
                "INSERT INTO meetings (id, case_id, tenant, status, starts_at, ends_at, location)
                 SELECT m.id, m.case_id, $1, 'proposed', m.s, m.e, m.location
                 FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[])
                    AS m(id, case_id, s, e, location)",
            )
            .bind(tenant)
            .bind(meetings.iter().map(|m| m.0).collect::<Vec<_>>())
            .bind(meetings.iter().map(|m| m.1).collect::<Vec<_>>())
            .bind(meetings.iter().map(|m| m.2.start).collect::<Vec<_>>())
            .bind(meetings.iter().map(|m| m.2.end).collect::<Vec<_>>())
            .bind(meetings.iter().map(|m| m.3.clone()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }

        let mut tasks = std::mem::take(&mut self.tasks);
        if !tasks.is_empty() {
            // Officer rows are touched in one order, whoever else writes them.
            tasks.sort_by(|a, b| a.officer_id.cmp(&b.officer_id).then(a.id.cmp(&b.id)));
            let officer: Vec<String> = tasks.iter().map(|t| t.officer_id.clone()).collect();
            let meeting: Vec<Uuid> = tasks.iter().map(|t| t.meeting_id).collect();
            let starts: Vec<DateTime<Utc>> = tasks.iter().map(|t| t.slot.start).collect();
            let ends: Vec<DateTime<Utc>> = tasks.iter().map(|t| t.slot.end).collect();
            sqlx::query(
                "INSERT INTO bookings (meeting_id, tenant, officer_id, during)
                 SELECT b.m, $1, b.o, tstzrange(b.s, b.e)
                 FROM unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS b(m, o, s, e)",
            )
            .bind(tenant)
            .bind(&meeting)
            .bind(&officer)
            .bind(&starts)
            .bind(&ends)
            .execute(&mut *conn)
            .await?;
            let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
            sqlx::query(
                "INSERT INTO tasks (id, case_id, meeting_id, tenant, officer_id, unit, competence, optional, status,
                    created_at, updated_at)
                 SELECT t.id, t.case_id, t.m, $1, t.o, t.unit, t.competence, t.optional, 'offered', $9, $9
                 FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::bool[])
                    AS t(id, case_id, m, o, unit, competence, optional)",
            )
            .bind(tenant)
            .bind(&ids)
            .bind(tasks.iter().map(|t| t.case_id).collect::<Vec<_>>())
            .bind(&meeting)
            .bind(&officer)
            .bind(tasks.iter().map(|t| t.unit.clone()).collect::<Vec<_>>())
            .bind(tasks.iter().map(|t| t.competence.clone()).collect::<Vec<_>>())
            .bind(tasks.iter().map(|t| t.optional).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO company_officers (tenant, company_key, competence, officer_id, last_at)
                 SELECT DISTINCT ON (s.org, s.competence, s.o) $1, s.org, s.competence, s.o, $5
                 FROM unnest($2::text[], $3::text[], $4::text[]) AS s(org, competence, o)
                 WHERE s.org <> ''
                 ON CONFLICT (tenant, company_key, competence, officer_id) DO UPDATE SET last_at = EXCLUDED.last_at",
            )
            .bind(tenant)
            .bind(tasks.iter().map(|t| t.company_key.clone()).collect::<Vec<_>>())
            .bind(tasks.iter().map(|t| t.competence.clone()).collect::<Vec<_>>())
            .bind(&officer)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            record_changes(conn, tenant, &officer, &ids, "offered", Some(now)).await?;
        }
        let events = std::mem::take(&mut self.events);
        let traced: Vec<_> = events.iter().map(|(e, t)| (e, t.clone())).collect();
        lots_platform::outbox::enqueue_traced(conn, subjects, &traced).await?;
        Ok(())
    }
}

/// Records one change per (officer, task) in one go: numbers them per officer in order,
/// bumps `last_assigned_at` when `assigned` is given, and wakes watchers on commit.
/// `officers` must be sorted, so officer rows are locked in one order.
pub async fn record_changes(
    conn: &mut PgConnection,
    tenant: &str,
    officers: &[String],
    tasks: &[Uuid],
    kind: &str,
    assigned: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    let mut counts: Vec<(String, i64)> = Vec::new();
    for o in officers {
        match counts.last_mut() {
            Some((last, n)) if last == o => *n += 1,
            _ => counts.push((o.clone(), 1)),
        }
    }
    let ids: Vec<String> = counts.iter().map(|c| c.0.clone()).collect();
    let ns: Vec<i64> = counts.iter().map(|c| c.1).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE officers o SET change_seq = o.change_seq + d.n,
            last_assigned_at = COALESCE($4, o.last_assigned_at)
         FROM unnest($2::text[], $3::bigint[]) AS d(id, n)
         WHERE o.tenant = $1 AND o.id = d.id
         RETURNING o.id, o.change_seq",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&ns)
    .bind(assigned)
    .fetch_all(&mut *conn)
    .await?;
    let last: HashMap<String, i64> = rows.into_iter().collect();
    let mut next: HashMap<&str, i64> = HashMap::new();
    for (o, n) in &counts {
        if let Some(l) = last.get(o) {
            next.insert(o.as_str(), l - n + 1);
        }
    }
    let mut seqs = Vec::with_capacity(officers.len());
    for o in officers {
        let seq = next.get_mut(o.as_str()).map(|s| {
            *s += 1;
            *s - 1
        });
        seqs.push(seq.unwrap_or(0));
    }
    sqlx::query(
        "INSERT INTO task_changes (tenant, officer_id, seq, task_id, kind)
         SELECT $1, c.o, c.seq, c.t, $5 FROM unnest($2::text[], $3::bigint[], $4::uuid[]) AS c(o, seq, t)",
    )
    .bind(tenant)
    .bind(officers)
    .bind(&seqs)
    .bind(tasks)
    .bind(kind)
    .execute(&mut *conn)
    .await?;
    let keys: Vec<String> = ids.iter().map(|o| format!("{tenant}/{o}")).collect();
    sqlx::query("SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k")
        .bind(crate::watch::CHANNEL)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
