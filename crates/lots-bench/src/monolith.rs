//! The monolith limit: how many cases per second the same PostgreSQL takes when one case's rows
//! — the case, its meeting, four tasks and three clocks — are written as one durable
//! transaction by `clients` pgbench clients. It is what a single-database design could reach
//! at best on this machine, so Lotsen's completed rate is reported as a share of it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use sqlx::Connection;

use crate::env::BenchDb;

/// The tables, shaped like intake's, routing's and sla's rows of one case.
const SCHEMA: &str = "
CREATE SCHEMA monolith;
CREATE TABLE monolith.cases (id uuid PRIMARY KEY, tenant text NOT NULL, reference text NOT NULL,
    case_type text NOT NULL, org_nr text NOT NULL, company_name text NOT NULL, contact jsonb NOT NULL,
    description text NOT NULL, state text NOT NULL, registered_at timestamptz NOT NULL);
CREATE TABLE monolith.meetings (id uuid PRIMARY KEY, case_id uuid NOT NULL REFERENCES monolith.cases,
    starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL, status text NOT NULL);
CREATE TABLE monolith.tasks (id uuid PRIMARY KEY, case_id uuid NOT NULL REFERENCES monolith.cases,
    meeting_id uuid NOT NULL REFERENCES monolith.meetings, officer_id text NOT NULL, status text NOT NULL,
    offered_at timestamptz NOT NULL);
CREATE INDEX ON monolith.tasks (officer_id, status);
CREATE TABLE monolith.clocks (id uuid PRIMARY KEY, case_id uuid NOT NULL REFERENCES monolith.cases,
    commitment text NOT NULL, state text NOT NULL, due_at timestamptz, UNIQUE (case_id, commitment));
";

/// One case's rows in one transaction (pgbench script).
const SCRIPT: &str = r#"\set officer random(1, 1200)
\set ref random(1, 1000000000)
BEGIN;
INSERT INTO monolith.cases VALUES (gen_random_uuid(), '0581', 'NKP-' || :client_id || '-' || :ref,
    'restaurang_start', '556036-0793', 'Företag AB', '{"name": "Kontakt Person", "phone": "070-123 45 67"}',
    'Lastprov', 'open', now()) RETURNING id AS case_id \gset
INSERT INTO monolith.meetings VALUES (gen_random_uuid(), ':case_id', now() + interval '2 days',
    now() + interval '2 days 90 minutes', 'proposed') RETURNING id AS meeting_id \gset
INSERT INTO monolith.tasks VALUES (gen_random_uuid(), ':case_id', ':meeting_id', 'officer-' || :officer, 'offered', now());
INSERT INTO monolith.tasks VALUES (gen_random_uuid(), ':case_id', ':meeting_id', 'officer-' || (:officer + 1), 'offered', now());
INSERT INTO monolith.tasks VALUES (gen_random_uuid(), ':case_id', ':meeting_id', 'officer-' || (:officer + 2), 'offered', now());
INSERT INTO monolith.tasks VALUES (gen_random_uuid(), ':case_id', ':meeting_id', 'officer-' || (:officer + 3), 'offered', now());
INSERT INTO monolith.clocks VALUES (gen_random_uuid(), ':case_id', 'first_contact', 'running', now() + interval '1 day');
INSERT INTO monolith.clocks VALUES (gen_random_uuid(), ':case_id', 'dukat_bord', 'running', now() + interval '5 days');
INSERT INTO monolith.clocks VALUES (gen_random_uuid(), ':case_id', 'besked', 'running', now() + interval '10 days');
COMMIT;
"#;

/// Where pgbench is: PATH, then PostgreSQL's own bin folders, newest first.
fn pgbench() -> anyhow::Result<PathBuf> {
    lots_testkit::local::find_binary("pgbench", &lots_testkit::local::pg_bin_dirs())
        .context("pgbench is not installed; it comes with PostgreSQL (apt-get install postgresql-contrib)")
}

/// Cases per second the monolith writes with `clients` clients for `seconds`.
pub async fn probe(db: &BenchDb, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(&db.url()).await?;
    sqlx::raw_sql(SCHEMA).execute(&mut conn).await.context("create the monolith's tables")?;
    conn.close().await?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("case.sql");
    std::fs::write(&script, SCRIPT)?;
    let out = tokio::process::Command::from(Command::new(pgbench()?))
        .args(["--no-vacuum", "--client", &clients.to_string(), "--jobs", "2", "--time", &seconds.to_string()])
        .arg("--file")
        .arg(&script)
        .arg(db.url())
        .output()
        .await
        .context("run pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    // "tps = 3012.345678 (without initial connection time)"
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}
