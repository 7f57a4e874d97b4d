//! Officers and their calendars: the configuration is loaded into routing's tables at start,
//! iCalendar files named there become busy times, and the admin API adds more.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use lots_platform::Tenants;
use sqlx::{PgConnection, PgPool};
use tracing::instrument;

use crate::error::{Error, Result};

/// How far ahead recurring calendar entries are expanded.
const ICAL_HORIZON_DAYS: i64 = 180;

/// Upserts every configured officer and deactivates removed ones; their tasks stay.
/// Loading the same configuration twice changes nothing.
#[instrument(name = "routing.init.sync_officers", skip_all)]
pub async fn sync(pool: &PgPool, tenants: &Tenants, config_dir: &Path, now: DateTime<Utc>) -> Result<()> {
    let mut tx = pool.begin().await?;
    for tenant in tenants.iter() {
        let ids: Vec<String> = tenant.officers.iter().map(|o| o.id.clone()).collect();
        for o in &tenant.officers {
            sqlx::query(
                "INSERT INTO officers (tenant, id, name, email, unit, competences, capacity, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, true)
                 ON CONFLICT (tenant, id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,
                    unit = EXCLUDED.unit, competences = EXCLUDED.competences, capacity = EXCLUDED.capacity,
                    active = true",
            )
            .bind(&tenant.kommunkod)
            .bind(&o.id)
            .bind(&o.name)
            .bind(&o.email)
            .bind(&o.unit)
            .bind(&o.competences)
            .bind(o.capacity as i32)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE officers SET active = false WHERE tenant = $1 AND NOT (id = ANY ($2))")
            .bind(&tenant.kommunkod)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    for tenant in tenants.iter() {
        for o in tenant.officers.iter() {
            let Some(file) = &o.calendar else { continue };
            let path = config_dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Config(format!("{}: {e} (calendar of {})", path.display(), o.id)))?;
            let busy = lots_domain::ical::parse_busy(&text, now + Duration::days(ICAL_HORIZON_DAYS))
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            let ranges: Vec<_> = busy.iter().map(|b| (b.start, b.end)).collect();
            let source = format!("ical:{file}");
            let mut tx = pool.begin().await?;
            replace_busy(&mut tx, &tenant.kommunkod, &o.id, &source, &ranges, None).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

async fn ensure_officer(conn: &mut PgConnection, tenant: &str, officer: &str) -> Result<()> {
    let known: Option<bool> = sqlx::query_scalar("SELECT active FROM officers WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(officer)
        .fetch_optional(&mut *conn)
        .await?;
    match known {
        Some(true) => Ok(()),
        Some(false) => Err(Error::Precondition(format!("officer {officer} is no longer in the configuration"))),
        None => Err(Error::NotFound(format!("no officer {officer:?} in tenant {tenant:?}"))),
    }
}

/// Replaces the officer's busy times from `source` with `ranges`, in the caller's transaction.
pub async fn replace_busy(
    tx: &mut PgConnection,
    tenant: &str,
    officer: &str,
    source: &str,
    ranges: &[(DateTime<Utc>, DateTime<Utc>)],
    note: Option<&str>,
) -> Result<u32> {
    ensure_officer(&mut *tx, tenant, officer).await?;
    sqlx::query("DELETE FROM busy WHERE tenant = $1 AND officer_id = $2 AND source = $3")
        .bind(tenant)
        .bind(officer)
        .bind(source)
        .execute(&mut *tx)
        .await?;
    let starts: Vec<DateTime<Utc>> = ranges.iter().map(|r| r.0).collect();
    let ends: Vec<DateTime<Utc>> = ranges.iter().map(|r| r.1).collect();
    sqlx::query(
        "INSERT INTO busy (tenant, officer_id, source, during, note)
         SELECT $1, $2, $3, tstzrange(s, e), $6 FROM unnest($4::timestamptz[], $5::timestamptz[]) AS r(s, e)",
    )
    .bind(tenant)
    .bind(officer)
    .bind(source)
    .bind(&starts)
    .bind(&ends)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    Ok(ranges.len() as u32)
}

/// Adds an absence (vacation, sick leave) to the officer's busy time.
pub async fn add_absence(
    conn: &mut PgConnection,
    tenant: &str,
    officer: &str,
    period: (DateTime<Utc>, DateTime<Utc>),
    note: Option<&str>,
) -> Result<u32> {
    ensure_officer(&mut *conn, tenant, officer).await?;
    sqlx::query(
        "INSERT INTO busy (tenant, officer_id, source, during, note) VALUES ($1, $2, 'absence', tstzrange($3, $4), $5)",
    )
    .bind(tenant)
    .bind(officer)
    .bind(period.0)
    .bind(period.1)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(1)
}
