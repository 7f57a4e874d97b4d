//! A throwaway environment per run: a database and a subject prefix, removed afterwards.

use std::time::Duration;

use anyhow::Context;
use lots_events::Subjects;
use sqlx::{Connection, PgConnection, PgPool};

/// A database created for one run.
pub struct BenchDb {
    pub server: String,
    pub name: String,
}

impl BenchDb {
    /// Creates `lots_bench_<uuid>`.
    pub async fn create(server: &str) -> anyhow::Result<BenchDb> {
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("lots_bench_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .with_context(|| format!("connect to {server} (is PostgreSQL running? `just deps`)"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        Ok(BenchDb { server, name })
    }

    /// The database URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// A pool on `schema`.
    pub async fn pool(&self, schema: &str, size: u32) -> anyhow::Result<PgPool> {
        Ok(lots_platform::db::connect(&self.url(), schema, size, Duration::from_secs(10)).await?)
    }

    /// Drops the database.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&format!("{}/postgres", self.server)).await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
        Ok(())
    }
}

/// A unique subject prefix for one run.
pub fn subjects() -> anyhow::Result<Subjects> {
    Ok(Subjects::new(&format!("bench{}", uuid::Uuid::now_v7().simple()))?)
}

/// Deletes the run's stream.
pub async fn drop_stream(nats: &async_nats::Client, subjects: &Subjects) {
    let js = async_nats::jetstream::new(nats.clone());
    let _ = js.delete_stream(subjects.stream_name()).await;
}

/// Resident memory of this process in MiB (Linux).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}
