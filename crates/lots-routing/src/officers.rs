//! Officers and their calendars: a tenant's writer loads the configuration into routing's
//! tables when it starts, iCalendar files named there become busy times, and the admin API
//! adds more.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use lots_domain::TenantConfig;
use lots_platform::metrics::Metrics;
use sqlx::{PgConnection, PgPool};
use tracing::instrument;

use crate::error::{Error, Result};

/// How far ahead recurring calendar entries are expanded.
const ICAL_HORIZON_DAYS: i64 = 180;

/// Upserts the tenant's configured officers, deactivates removed ones (their tasks stay) and
/// loads their calendar files. Loading the same configuration twice changes nothing. Only the
/// tenant's writer calls this. A calendar file that cannot be read or parsed disables that
/// officer's calendar (logged and counted), never the tenant.
#[instrument(name = "routing.init.sync_officers", skip_all, fields(tenant = %tenant.kommunkod))]
pub async fn sync_tenant(
    pool: &PgPool,
    tenant: &TenantConfig,
    config_dir: &Path,
    now: DateTime<Utc>,
    metrics: &Metrics,
) -> Result<()> {
    let mut tx = pool.begin().await?;
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
    load_calendars(&mut tx, tenant, config_dir, now, metrics).await?;
    tx.commit().await?;
    Ok(())
}

/// Reads the officers' calendar files into busy time, recurring entries expanded from `now` for
/// [`ICAL_HORIZON_DAYS`]. The tenant's writer runs it at start and again every day, so the
/// horizon moves along with a long-running process.
pub async fn load_calendars(
    tx: &mut PgConnection,
    tenant: &TenantConfig,
    config_dir: &Path,
    now: DateTime<Utc>,
    metrics: &Metrics,
) -> Result<()> {
    for o in tenant.officers.iter() {
        let Some(file) = &o.calendar else { continue };
        let path = config_dir.join(file);
        let busy = std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|text| {
            lots_domain::ical::parse_busy(&text, now + Duration::days(ICAL_HORIZON_DAYS)).map_err(|e| e.to_string())
        });
        match busy {
            Ok(busy) => {
                let ranges: Vec<_> = busy.iter().map(|b| (b.start, b.end)).collect();
                replace_busy(&mut *tx, &tenant.kommunkod, &o.id, &format!("ical:{file}"), &ranges, None).await?;
            }
            Err(err) => {
                tracing::error!(officer = %o.id, file = %path.display(), error = %err, "calendar file ignored");
                metrics.count(
                    "lots_routing_calendar_errors_total",
                    "Officer calendar files that could not be read or parsed.",
                    &[("tenant", tenant.kommunkod.as_str())],
                    1.0,
                );
            }
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
