//! Retention: rows that only serve a while (handled event ids, sent outbox rows, resolved dead
//! letters, and each service's own history) are deleted once older than a configured age.
//!
//! Safe with replicas: every job deletes in small batches of rows it locks with SKIP LOCKED,
//! so replicas running the same job at once split the rows instead of waiting on each other, and
//! a row is deleted once. Jobs run hourly in the background scope (every tenant).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How long rows are kept, in days (flattened into every service's configuration; each service
/// uses the ages of the tables it has).
#[derive(Debug, Clone, clap::Args)]
pub struct Retention {
    /// Days to keep the ids of handled events (duplicate detection). Keep it longer than any
    /// redelivery can come late.
    #[arg(long, env = "LOTS_RETAIN_INBOX_DAYS", default_value_t = 30)]
    pub inbox_days: u32,
    /// Days to keep outbox rows after they were published.
    #[arg(long, env = "LOTS_RETAIN_SENT_OUTBOX_DAYS", default_value_t = 7)]
    pub sent_outbox_days: u32,
    /// Days to keep dead letters after they were replayed or skipped (open ones stay).
    #[arg(long, env = "LOTS_RETAIN_DEAD_LETTERS_DAYS", default_value_t = 90)]
    pub dead_letters_days: u32,
    /// Routing: days to keep task changes (a `WatchTasks` cursor older than that gets a fresh
    /// snapshot).
    #[arg(long, env = "LOTS_RETAIN_TASK_CHANGES_DAYS", default_value_t = 30)]
    pub task_changes_days: u32,
    /// Routing: days to keep busy time after it ended.
    #[arg(long, env = "LOTS_RETAIN_PAST_BUSY_DAYS", default_value_t = 30)]
    pub past_busy_days: u32,
    /// sla: days to keep an ended case's clocks and events after the case closed (its alerts stay).
    #[arg(long, env = "LOTS_RETAIN_ENDED_CASE_DAYS", default_value_t = 400)]
    pub ended_case_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            inbox_days: 30,
            sent_outbox_days: 7,
            dead_letters_days: 90,
            task_changes_days: 30,
            past_busy_days: 30,
            ended_case_days: 400,
        }
    }
}

/// Rows deleted per statement.
pub const BATCH: i64 = 5_000;
/// How often the jobs run.
const EVERY: Duration = Duration::from_secs(3600);

/// One retention job: `sql` deletes (or erases) at most `$2` rows older than the cutoff `$1`,
/// locking them with SKIP LOCKED; `age` says how old.
#[derive(Clone)]
pub struct Job {
    /// What is pruned, for logs and the metric's label.
    pub what: &'static str,
    pub sql: &'static str,
    pub age: Age,
}

/// How old a job's rows must be.
#[derive(Clone, Copy)]
pub enum Age {
    /// The same for every tenant, from the service's settings.
    Days(fn(&Retention) -> u32),
    /// Gallring: each tenant's own period for personal data (`[privacy]`); the job's SQL takes
    /// the tenant as `$3`.
    PersonalData,
}

/// The platform tables' jobs (every service has these tables).
pub fn platform_jobs() -> Vec<Job> {
    vec![
        Job {
            what: "inbox",
            sql: "DELETE FROM inbox WHERE event_id IN (
                      SELECT event_id FROM inbox WHERE handled_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::Days(|r| r.inbox_days),
        },
        Job {
            what: "outbox",
            sql: "DELETE FROM outbox WHERE id IN (
                      SELECT id FROM outbox WHERE status = 'sent' AND sent_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::Days(|r| r.sent_outbox_days),
        },
        Job {
            what: "dead_letter",
            sql: "DELETE FROM dead_letter WHERE event_id IN (
                      SELECT event_id FROM dead_letter WHERE status <> 'open' AND resolved_at < $1
                      LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::Days(|r| r.dead_letters_days),
        },
        Job {
            what: "dead_letter_payloads",
            sql: "UPDATE dead_letter SET payload = convert_to('{}', 'UTF8'), error = '(gallrad)'
                  WHERE event_id IN (
                      SELECT event_id FROM dead_letter WHERE tenant = $3 AND status <> 'open'
                        AND error <> '(gallrad)' AND created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            age: Age::PersonalData,
        },
    ]
}

/// Runs every job once, as of `now`; returns rows deleted per job. A job that fails does not
/// keep the others from running; the first failure is returned after all ran.
pub async fn prune(
    pool: &PgPool,
    jobs: &[Job],
    retention: &Retention,
    tenants: &crate::Tenants,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(&'static str, u64)>> {
    let mut out = Vec::with_capacity(jobs.len());
    let mut failed = None;
    for job in jobs {
        match prune_one(pool, job, retention, tenants, now).await {
            Ok(n) => out.push((job.what, n)),
            Err(err) => {
                tracing::warn!(what = job.what, error = %err, "retention job failed");
                failed.get_or_insert(err);
            }
        }
    }
    failed.map_or(Ok(out), Err)
}

async fn prune_one(
    pool: &PgPool,
    job: &Job,
    retention: &Retention,
    tenants: &crate::Tenants,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let days = |d: u32| now - chrono::Duration::days(i64::from(d));
    let mut deleted = 0;
    match job.age {
        Age::Days(days_of) => loop {
            let query = sqlx::query(sqlx::AssertSqlSafe(job.sql)).bind(days(days_of(retention))).bind(BATCH);
            let n = query.execute(pool).await?.rows_affected();
            deleted += n;
            if (n as i64) < BATCH {
                return Ok(deleted);
            }
        },
        Age::PersonalData => {
            for tenant in tenants.iter() {
                let cutoff = days(tenant.privacy.personal_data_days);
                loop {
                    let query =
                        sqlx::query(sqlx::AssertSqlSafe(job.sql)).bind(cutoff).bind(BATCH).bind(&tenant.kommunkod);
                    let n = query.execute(pool).await?.rows_affected();
                    deleted += n;
                    if (n as i64) < BATCH {
                        break;
                    }
                }
            }
            Ok(deleted)
        }
    }
}

/// Runs the jobs hourly (the first time a minute after start) until cancelled.
pub async fn run(
    pool: PgPool,
    jobs: Vec<Job>,
    retention: Retention,
    tenants: crate::Tenants,
    clock: crate::Clock,
    metrics: Metrics,
    token: CancellationToken,
) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        for job in &jobs {
            match prune_one(&pool, job, &retention, &tenants, clock.now()).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(what = job.what, deleted = n, "retention: old rows deleted");
                    }
                    let help = "Rows deleted by retention jobs.";
                    metrics.count("lots_retention_deleted_total", help, &[("what", job.what)], n as f64);
                }
                Err(err) => {
                    tracing::warn!(what = job.what, error = %err, "retention job failed; it runs again in an hour");
                    let help = "Retention job runs that failed.";
                    metrics.count("lots_retention_failures_total", help, &[("what", job.what)], 1.0);
                }
            }
        }
    }
}
