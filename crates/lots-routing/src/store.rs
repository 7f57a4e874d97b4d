//! Routing's queries. Callers own the transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lots_domain::slots::Interval;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::plan::Candidate;

/// Routing's view of a case.
#[derive(Debug, Clone, FromRow)]
pub struct CaseRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub case_type: String,
    pub org_nr: String,
    pub company_name: String,
    pub contact_name: String,
    pub contact_email: String,
    pub registered_at: DateTime<Utc>,
    pub state: String,
    pub version: i64,
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
#[derive(Debug, Clone, FromRow)]
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

/// Candidates for `competence` in `tenant`, with open tasks and continuity for `org_nr`.
pub async fn candidates(
    db: impl PgExecutor<'_>,
    tenant: &str,
    competence: &str,
    org_nr: &str,
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
                WHERE s.tenant = o.tenant AND s.org_nr = $3 AND s.competence = $2 AND s.officer_id = o.id) AS served
         FROM officers o WHERE o.tenant = $1 AND o.active AND $2 = ANY (o.competences)",
    )
    .bind(tenant)
    .bind(competence)
    .bind(org_nr)
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
) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TASK_SELECT} WHERE t.tenant = $1 AND t.officer_id = $2 AND t.status = ANY ($3) ORDER BY m.starts_at, t.id"
    )))
    .bind(tenant)
    .bind(officer)
    .bind(statuses)
    .fetch_all(db)
    .await
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
