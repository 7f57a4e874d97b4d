//! PostgreSQL: a pool whose connections live in the service's own schema, migrations, and the
//! tenant scope row-level security sees.
//!
//! Every connection taken from a pool first sets `lots.tenant` to the task's scope: the caller's
//! kommunkod while a gRPC call is served ([`scoped`], set by the auth layer), [`SYSTEM`] in the
//! background work that serves every tenant (consumers, relays, timers, routing's writers), and
//! nothing elsewhere, so a query outside any scope sees no tenant's rows. The policies on the
//! tables that hold company or case data compare their `tenant` column with it.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tracing::instrument;

use crate::{Error, Result};

static PLATFORM_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The longest any statement may run (Postgres `statement_timeout`).
pub const STATEMENT_TIMEOUT: &str = "30s";

/// The scope of background work that serves every tenant.
pub const SYSTEM: &str = "*";

tokio::task_local! {
    static TENANT: String;
}

/// Runs `work` with row-level security scoped to `tenant` (a kommunkod, or [`SYSTEM`]). A task
/// spawned from it must be scoped again: tokio tasks do not inherit the scope.
pub fn scoped<F: std::future::Future>(
    tenant: impl Into<String>,
    work: F,
) -> impl std::future::Future<Output = F::Output> {
    TENANT.scope(tenant.into(), work)
}

/// Connects to `url` with `search_path` set to `schema`, creating the database and the schema
/// if they are missing, and retrying until `timeout` while the server is unreachable.
#[instrument(name = "platform.init.connect_postgres", skip_all, fields(schema))]
pub async fn connect(url: &str, schema: &str, max_connections: u32, timeout: Duration) -> Result<PgPool> {
    if !schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(Error::Config(format!("schema name {schema:?} must be lowercase letters and _")));
    }
    let base: PgConnectOptions =
        url.parse().map_err(|e| Error::Config(format!("LOTS_DATABASE_URL is not a PostgreSQL URL: {e}")))?;
    let base = base.log_statements(tracing::log::LevelFilter::Trace);
    let deadline = Instant::now() + timeout;
    let mut conn = loop {
        match connect_or_create(&base).await {
            Ok(conn) => break conn,
            Err(err) if Instant::now() < deadline => {
                tracing::warn!(error = %err, "postgres not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err.into()),
        }
    };
    match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).execute(&mut conn).await {
        Ok(_) => {}
        // Two replicas starting at once race on the catalog; the loser finds the schema there.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
        Err(e) => return Err(e.into()),
    }
    conn.close().await?;
    // No statement runs longer than this: a stuck query fails instead of holding a connection.
    let opts = base.options([("search_path", schema), ("statement_timeout", STATEMENT_TIMEOUT)]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        // A connection opened for this acquire skips `before_acquire`, so both set the scope.
        .after_connect(|conn, _| Box::pin(set_scope(conn)))
        .before_acquire(|conn, _| {
            Box::pin(async move {
                set_scope(conn).await?;
                Ok(true)
            })
        })
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// Sets `lots.tenant` on `conn` to the current task's scope (nothing outside any scope).
async fn set_scope(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let tenant = TENANT.try_with(String::clone).unwrap_or_default();
    sqlx::query("SELECT set_config('lots.tenant', $1, false)").bind(tenant).execute(conn).await?;
    Ok(())
}

async fn connect_or_create(opts: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match PgConnection::connect_with(opts).await {
        // 3D000: the database does not exist yet; create it, as a fresh install needs.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let name = opts.get_database().unwrap_or("lots").to_owned();
            let mut admin = PgConnection::connect_with(&opts.clone().database("postgres")).await?;
            let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{}\"", name.replace('"', ""))))
                .execute(&mut admin)
                .await;
            match created {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e),
            }
            admin.close().await?;
            PgConnection::connect_with(opts).await
        }
        other => other,
    }
}

/// Runs the platform's tables (outbox, inbox, dead letters) and then the service's migrations,
/// both in the pool's schema. Versions 9000+ belong to the platform.
#[instrument(name = "platform.init.migrate", skip_all)]
pub async fn migrate(pool: &PgPool, service: &Migrator) -> Result<()> {
    for migrator in [&PLATFORM_MIGRATIONS, service] {
        // Both sets share one history table; each ignores the other's versions.
        let mut m = Migrator::with_migrations(migrator.iter().cloned().collect());
        m.set_ignore_missing(true);
        m.run(pool).await?;
    }
    Ok(())
}
