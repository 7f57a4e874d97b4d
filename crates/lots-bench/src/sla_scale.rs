//! One sla process with a million open clocks: resident memory, how late alerts fire when
//! 10,000 fall due in the same second, and how long a restart takes to catch up.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use lots_platform::{Clock, Tenants};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::env::{self, BenchDb};
use crate::report;

/// Options of the sla scale benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Open clocks loaded before the sla service starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub clocks: i64,
    /// Clocks that fall due in the same second.
    #[arg(long, default_value_t = 10_000)]
    pub burst: i64,
    /// Clocks that fall due while the service is stopped.
    #[arg(long, default_value_t = 10_000)]
    pub overdue: i64,
}

type Running = (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>);

async fn start(
    db: &BenchDb,
    cli: &crate::Cli,
    nats_url: &str,
    subjects: &lots_events::Subjects,
) -> anyhow::Result<Running> {
    let parts = lots_sla::Parts {
        pool: db.pool(lots_sla::app::SCHEMA, 16).await?,
        nats: async_nats::connect(nats_url).await?,
        subjects: subjects.clone(),
        tenants: Tenants::load(&cli.config)?,
        grpc_addr: "127.0.0.1:0".parse()?,
        clock: Clock::system(),
        tick: Duration::from_millis(250),
    };
    let app = lots_sla::App::from_parts(parts).await?;
    let token = CancellationToken::new();
    let handle = tokio::spawn(app.run(token.clone()));
    Ok((token, handle))
}

async fn alerts(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM alerts").fetch_one(pool).await?)
}

/// Waits until `target` alerts exist, recording when each percentile of them was there.
async fn wait_for(pool: &sqlx::PgPool, base: i64, n: i64, due: chrono::DateTime<Utc>) -> anyhow::Result<Vec<f64>> {
    let mut lateness = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = 0;
    while seen < n {
        let count = alerts(pool).await? - base;
        let late = (Utc::now() - due).num_milliseconds() as f64 / 1000.0;
        // Every alert committed since the last look gets the current lateness (a 20 ms sampling error).
        for _ in seen..count.min(n) {
            lateness.push(late.max(0.0));
        }
        seen = seen.max(count);
        anyhow::ensure!(Instant::now() < deadline, "only {seen} of {n} alerts fired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(lateness)
}

/// Runs the benchmark.
pub async fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<()> {
    let db = BenchDb::create(&cli.database).await?;
    let subjects = env::subjects()?;
    let nats = async_nats::connect(&cli.nats).await.context("connect to nats")?;
    let rss_start = env::rss_mib();
    println!("sla scale: {} open clocks, burst {}, overdue {}", args.clocks, args.burst, args.overdue);

    // Migrate by starting once, then stop and bulk-load the clocks.
    let (token, handle) = start(&db, cli, &cli.nats, &subjects).await?;
    token.cancel();
    handle.await??;
    let pool = db.pool(lots_sla::app::SCHEMA, 4).await?;
    let load = Instant::now();
    let far = Utc::now() + chrono::Duration::days(60);
    sqlx::query(
        "INSERT INTO cases (id, tenant, reference, case_type, officer_id, unit)
         SELECT md5('case' || i)::uuid, '0581', 'NKP-2026-' || lpad(i::text, 7, '0'), 'allman_radgivning',
                'anna.lindqvist', 'naringsliv'
         FROM generate_series(1, $1) AS i",
    )
    .bind(args.clocks)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO clocks (id, case_id, tenant, commitment, state, started_at, due_at)
         SELECT md5('clock' || i)::uuid, md5('case' || i)::uuid, '0581', 'first_contact', 'running', now(), $2
         FROM generate_series(1, $1) AS i",
    )
    .bind(args.clocks)
    .bind(far)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO stages (clock_id, stage, deadline_version, due_at)
         SELECT md5('clock' || i)::uuid, 'breach', 0, $2 + i * interval '1 second'
         FROM generate_series(1, $1) AS i",
    )
    .bind(args.clocks)
    .bind(far)
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE stages").execute(&pool).await?;
    println!("loaded {} clocks in {:.1} s", args.clocks, load.elapsed().as_secs_f64());

    // A burst: `burst` clocks fall due in the same second, a few seconds after the start.
    let due = Utc::now() + chrono::Duration::seconds(8);
    sqlx::query(
        "UPDATE stages SET due_at = $2 WHERE clock_id IN
            (SELECT md5('clock' || i)::uuid FROM generate_series(1, $1) AS i)",
    )
    .bind(args.burst)
    .bind(due)
    .execute(&pool)
    .await?;
    let (token, handle) = start(&db, cli, &cli.nats, &subjects).await?;
    let mut lateness = wait_for(&pool, 0, args.burst, due).await?;
    lateness.sort_by(f64::total_cmp);
    let rss = env::rss_mib();
    token.cancel();
    handle.await??;

    // Downtime: `overdue` clocks fall due while the service is stopped.
    sqlx::query(
        "UPDATE stages SET due_at = now() - interval '5 minutes' WHERE clock_id IN
            (SELECT md5('clock' || i)::uuid FROM generate_series($1 + 1, $1 + $2) AS i)",
    )
    .bind(args.burst)
    .bind(args.overdue)
    .execute(&pool)
    .await?;
    let restart = Instant::now();
    let (token, handle) = start(&db, cli, &cli.nats, &subjects).await?;
    let base = alerts(&pool).await?.min(args.burst);
    wait_for(&pool, base, args.overdue, Utc::now()).await?;
    let catch_up = restart.elapsed().as_secs_f64();
    let late_marked: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE late").fetch_one(&pool).await?;
    token.cancel();
    handle.await??;

    let (p50, p99, max) =
        (report::quantile(&lateness, 0.5), report::quantile(&lateness, 0.99), report::quantile(&lateness, 1.0));
    report::table(
        &["figure", "value", "goal"],
        &[
            vec!["open clocks".into(), args.clocks.to_string(), "1,000,000".into()],
            vec!["resident memory (MiB)".into(), format!("{rss:.0}"), "<= 300".into()],
            vec![format!("lateness of {} due at once, p50 (s)", args.burst), format!("{p50:.2}"), "".into()],
            vec![format!("lateness of {} due at once, p99 (s)", args.burst), format!("{p99:.2}"), "<= 1".into()],
            vec!["lateness max (s)".into(), format!("{max:.2}"), "".into()],
            vec![format!("restart catch-up, {} overdue (s)", args.overdue), format!("{catch_up:.2}"), "<= 10".into()],
            vec!["alerts marked late after restart".into(), late_marked.to_string(), args.overdue.to_string()],
        ],
    );
    report::write_json(
        &cli.out,
        "sla-scale",
        &json!({
            "clocks": args.clocks, "burst": args.burst, "overdue": args.overdue,
            "rss_mib_start": rss_start, "rss_mib": rss,
            "lateness_s": { "p50": p50, "p99": p99, "max": max },
            "restart_catch_up_s": catch_up, "late_marked": late_marked,
        }),
    )?;
    pool.close().await;
    env::drop_stream(&nats, &subjects).await;
    db.drop_now().await?;
    Ok(())
}
