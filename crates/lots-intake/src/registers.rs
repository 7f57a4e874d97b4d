//! What the complaint and visit registers share with each other: gapless series references,
//! events stamped for their consumers' views, and idempotency keys of their lifecycle calls.

use chrono::{DateTime, Datelike, Utc};
use lots_domain::SeriesReference;
use lots_events::{Envelope, Payload, Subjects, Views};
use lots_platform::outbox;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store;

/// Takes the next reference in `series` for the tenant, in the Swedish year of `now`. The counter
/// row stays locked until the transaction ends, so numbers come in commit order without gaps.
pub async fn next_reference(
    conn: &mut PgConnection,
    tenant: &str,
    prefix: &str,
    series: char,
    now: DateTime<Utc>,
) -> Result<(SeriesReference, i64)> {
    let year = now.with_timezone(&lots_domain::calendar::TZ).year();
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO series_counter (tenant, series, year, last) VALUES ($1, $2, $3, 1)
         ON CONFLICT (tenant, series, year) DO UPDATE SET last = series_counter.last + 1
         RETURNING last",
    )
    .bind(tenant)
    .bind(series.to_string())
    .bind(year)
    .fetch_one(conn)
    .await?;
    Ok((SeriesReference { prefix: prefix.to_owned(), series, year, number: number as u64 }, number))
}

/// One record's event: its id, version and the consumers' views so far (JSON).
pub struct Emit<'a> {
    pub tenant: &'a str,
    pub id: Uuid,
    pub version: i64,
    pub actor: &'a str,
    pub at: DateTime<Utc>,
}

/// Queues `data` as version `e.version` of the record, stamped from `views` (advanced in place).
pub async fn enqueue<T: Payload>(
    conn: &mut PgConnection,
    subjects: &Subjects,
    views: &mut Views,
    e: Emit<'_>,
    data: T,
) -> Result<()> {
    let event = Envelope::new(e.tenant, e.id, e.version as u64, e.actor, e.at, data)
        .stamped(views)
        .into_raw()
        .map_err(lots_platform::Error::from)?;
    outbox::enqueue(conn, subjects, &event).await?;
    Ok(())
}

/// The stored views of a record.
pub fn views(json: &str) -> Result<Views> {
    Ok(serde_json::from_str(json).map_err(lots_platform::Error::from)?)
}

/// Views as stored.
pub fn views_json(views: &Views) -> Result<String> {
    Ok(serde_json::to_string(views).map_err(lots_platform::Error::from)?)
}

/// Whether a lifecycle call with idempotency `key` on record `id` was already applied: `true`
/// if so (answer with the record as it stands), an error if the key was used for another call.
/// Call with the record's row locked, so retries of the same call are ordered.
pub async fn already_applied(
    conn: &mut PgConnection,
    tenant: &str,
    key: Option<&str>,
    id: Uuid,
    call: &str,
    reference: &str,
) -> Result<bool> {
    let Some(key) = key else { return Ok(false) };
    // A digest, so the table holds no answer or note text.
    let fingerprint = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{id}:{call}").as_bytes()).to_string();
    match store::lifecycle_request(conn, tenant, key).await? {
        Some(first) if first == fingerprint => Ok(true),
        Some(_) => Err(Error::KeyReused { key: key.to_owned(), reference: reference.to_owned() }),
        None => {
            store::record_lifecycle_request(conn, tenant, key, id, &fingerprint).await?;
            Ok(false)
        }
    }
}
