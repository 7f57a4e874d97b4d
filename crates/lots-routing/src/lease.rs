//! Which routing replica writes a tenant: a lease row per tenant in Postgres.
//!
//! A replica takes a tenant's lease when it is free or expired (the epoch grows, fencing the
//! old holder), renews it inside every batch transaction of its writer, and gives it up on a
//! clean stop. A holder that dies stops renewing; another replica takes over once the lease
//! expires ([`TTL`]), within [`TAKEOVER_POLL`] after that.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(6);
/// How often an idle writer renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a replica looks for tenants without a writer.
pub const TAKEOVER_POLL: Duration = Duration::from_secs(1);

/// Takes `tenant`'s lease for `holder` if it is free, expired or already `holder`'s; returns
/// the new epoch.
pub async fn acquire(pool: &PgPool, tenant: &str, holder: Uuid) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO writer_leases (tenant, holder, epoch, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3))
         ON CONFLICT (tenant) DO UPDATE SET holder = EXCLUDED.holder, epoch = writer_leases.epoch + 1,
            expires_at = EXCLUDED.expires_at
         WHERE writer_leases.expires_at < now() OR writer_leases.holder = EXCLUDED.holder
         RETURNING epoch",
    )
    .bind(tenant)
    .bind(holder)
    .bind(TTL.as_secs_f64())
    .fetch_optional(pool)
    .await
}

/// Extends the lease if `holder` still holds it at `epoch`. Inside a batch transaction this
/// also locks the row, so nobody can take the lease before the batch commits.
pub async fn renew(db: impl PgExecutor<'_>, tenant: &str, holder: Uuid, epoch: i64) -> sqlx::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE writer_leases SET expires_at = now() + make_interval(secs => $4)
         WHERE tenant = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(tenant)
    .bind(holder)
    .bind(epoch)
    .bind(TTL.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// Gives the lease up, so a standby takes over at once.
pub async fn release(pool: &PgPool, tenant: &str, holder: Uuid, epoch: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE writer_leases SET expires_at = now() - interval '1 second' WHERE tenant = $1 AND holder = $2 AND epoch = $3")
        .bind(tenant)
        .bind(holder)
        .bind(epoch)
        .execute(pool)
        .await?;
    Ok(())
}
