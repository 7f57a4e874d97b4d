//! End to end: cases per second through intake, routing, sla and insight on this machine, the
//! latencies users feel, nothing lost or duplicated, and how close that is to what Postgres and
//! JetStream themselves allow for the transactions and messages one case needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lots_domain::TenantConfig;
use lots_platform::auth::Bearer;
use lots_platform::{Clock, Tenants};
use lots_proto::v1 as pb;
use lots_testkit::{TestOidc, Who};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::env::{self, BenchDb};
use crate::report::{self, quantile};

/// Options of the load benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Open-loop rates to run, in cases per second.
    #[arg(long, value_delimiter = ',', default_values_t = [50u32, 200, 1000])]
    pub rates: Vec<u32>,
    /// Seconds per open-loop run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Also run a closed loop with this many concurrent clients to find the sustained maximum (0: none).
    #[arg(long, default_value_t = 64)]
    pub closed_loop_clients: usize,
    /// Copies of each example officer, so routing has room by construction.
    #[arg(long, default_value_t = 40)]
    pub officer_copies: usize,
    /// Concurrency of the Postgres and JetStream limit probes.
    #[arg(long, default_value_t = 64)]
    pub probe_concurrency: usize,
    /// Copies of the example municipality under other kommunkoder; cases are spread over them.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// `mixed`: the example's case types round robin; `restaurant`: five-seat restaurant starts only.
    #[arg(long, default_value = "mixed")]
    pub workload: String,
    /// Also offer three times this rate (the sustainable one, from an earlier run) for
    /// `--overload-seconds`, and report whether the completed rate held and the backlog drained.
    #[arg(long)]
    pub overload_of: Option<u32>,
    /// Seconds of the overload run.
    #[arg(long, default_value_t = 30)]
    pub overload_seconds: u64,
    /// Clients of the monolith probe (pgbench writing one case's rows per transaction).
    #[arg(long, default_value_t = 8)]
    pub monolith_clients: usize,
}

/// The example municipality with every officer copied `copies` times, as kommun `index`
/// (0 is the example itself). Meeting lengths, buffers, minimum notice and the promised windows
/// stay the example's own. Capacity (open tasks per officer) is raised, because the benchmark
/// never accepts or completes a task and would otherwise measure only how fast officers fill up.
fn load_tenant(example: &TenantConfig, copies: usize, index: usize) -> TenantConfig {
    let mut t = example.clone();
    t.officers = (0..copies)
        .flat_map(|i| {
            example.officers.iter().map(move |o| {
                let mut o = o.clone();
                if i > 0 {
                    o.id = format!("{}~{i}", o.id);
                }
                o.capacity = 1_000_000;
                o
            })
        })
        .collect();
    if index > 0 {
        t.kommunkod = format!("{:04}", 9000 + index);
        t.name = format!("{} (kopia {index})", example.name);
        t.reference_prefix = format!("{}{}", example.reference_prefix, (b'A' + (index % 26) as u8) as char);
    }
    t
}

struct Services {
    token: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    intake: std::net::SocketAddr,
    routing: std::net::SocketAddr,
    /// The OpenID provider the services trust; the bench's callers get their tokens there.
    oidc: Arc<TestOidc>,
}

async fn start(
    db: &BenchDb,
    nats: &str,
    subjects: &lots_events::Subjects,
    tenants: &Tenants,
) -> anyhow::Result<Services> {
    let oidc = Arc::new(TestOidc::start(tenants)?);
    let tenants = &oidc.trusted_by(tenants)?;
    let token = CancellationToken::new();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    let intake = lots_intake::App::from_parts(lots_intake::Parts {
        pool: db.pool(lots_intake::app::SCHEMA, 16).await?,
        nats: async_nats::connect(nats).await?,
        subjects: subjects.clone(),
        tenants: tenants.clone(),
        grpc_addr: any,
        clock: Clock::system(),
        company_keys: lots_testkit::company_keys(),
    })
    .await?;
    let routing = lots_routing::App::from_parts(lots_routing::Parts {
        pool: db.pool(lots_routing::app::SCHEMA, 16).await?,
        nats: async_nats::connect(nats).await?,
        subjects: subjects.clone(),
        tenants: tenants.clone(),
        config_dir: std::path::PathBuf::from("deploy/config"),
        grpc_addr: any,
        clock: Clock::system(),
    })
    .await?;
    let sla = lots_sla::App::from_parts(lots_sla::Parts {
        pool: db.pool(lots_sla::app::SCHEMA, 16).await?,
        nats: async_nats::connect(nats).await?,
        subjects: subjects.clone(),
        tenants: tenants.clone(),
        grpc_addr: any,
        clock: Clock::system(),
        tick: Duration::from_secs(1),
    })
    .await?;
    let insight = lots_insight::App::from_parts(lots_insight::Parts {
        pool: db.pool(lots_insight::app::SCHEMA, 8).await?,
        nats: async_nats::connect(nats).await?,
        subjects: subjects.clone(),
        tenants: tenants.clone(),
        grpc_addr: any,
        clock: Clock::system(),
    })
    .await?;
    let (intake_addr, routing_addr) = (intake.local_addr()?, routing.local_addr()?);
    let handles = vec![
        tokio::spawn(intake.run(token.clone())),
        tokio::spawn(routing.run(token.clone())),
        tokio::spawn(sla.run(token.clone())),
        tokio::spawn(insight.run(token.clone())),
    ];
    Ok(Services { token, handles, intake: intake_addr, routing: routing_addr, oidc })
}

/// One measured run.
#[derive(Default)]
struct Run {
    label: String,
    sent: u64,
    ok: u64,
    seconds: f64,
    register_ms: Vec<f64>,
    task_ms: Vec<f64>,
    armed_ms: Vec<f64>,
    max_outbox_backlog: i64,
    max_consumer_pending: u64,
    drained_s: f64,
    /// Once a second from the start through the drain: (seconds, cases intake holds, cases
    /// routing decided), both counted from the run's start.
    progress: Vec<(f64, i64, i64)>,
}

/// Cases intake holds and cases routing has decided (routed or unroutable), in every tenant,
/// read in one statement; `None` when the read failed (the sample is skipped).
async fn progress_now(pool: &PgPool) -> Option<(i64, i64)> {
    sqlx::query_as("SELECT (SELECT count(*) FROM intake.cases), (SELECT count(*) FROM routing.cases)")
        .fetch_one(pool)
        .await
        .ok()
}

/// Completed cases per second over the run (decided by the end of the offered seconds,
/// interpolated between the samples around it, divided by those seconds), and the lowest rate
/// over any 5-second window in which every sample had cases waiting (intake ahead of routing).
fn completion(r: &Run) -> (f64, f64) {
    let p = &r.progress;
    let decided_at = |t: f64| -> f64 {
        match p.iter().position(|s| s.0 >= t) {
            Some(0) => p[0].2 as f64,
            Some(i) => {
                let (a, b) = (p[i - 1], p[i]);
                a.2 as f64 + (b.2 - a.2) as f64 * (t - a.0) / (b.0 - a.0).max(1e-9)
            }
            None => p.last().map_or(0.0, |s| s.2 as f64),
        }
    };
    let during = decided_at(r.seconds) / r.seconds;
    let mut lowest = f64::INFINITY;
    for (i, w) in p.iter().enumerate().filter(|(_, s)| s.0 >= 5.0) {
        let Some(j) = p.iter().position(|s| s.0 >= w.0 + 5.0) else { break };
        if p[i..=j].iter().all(|s| s.1 > s.2) {
            lowest = lowest.min((p[j].2 - w.2) as f64 / (p[j].0 - w.0));
        }
    }
    (during, if lowest.is_finite() { lowest } else { during })
}

/// When each case's registration was sent, and task updates that arrived before its response.
#[derive(Default)]
struct Seen {
    sent: HashMap<String, Instant>,
    early: HashMap<String, Instant>,
}

type Registered = Arc<Mutex<Seen>>;

/// The `i`th registration and the tenant (kommunkod) it goes to.
fn request(tenants: &[TenantConfig], workload: &str, i: u64, run: &str) -> (String, pb::RegisterCaseRequest) {
    // Companies recur (continuity); case types rotate through the catalogue; tenants take turns.
    let companies = ["556036-0793", "212000-0142", "556016-0680", "556012-5790", "802002-4280"];
    let tenant = &tenants[(i as usize) % tenants.len()];
    let case_type = match workload {
        "restaurant" => tenant.case_type("restaurang_start").unwrap_or(&tenant.case_types[0]),
        _ => &tenant.case_types[(i as usize / tenants.len()) % tenant.case_types.len()],
    };
    let req = pb::RegisterCaseRequest {
        idempotency_key: format!("{run}-{i}"),
        company: Some(pb::Company {
            org_nr: companies[(i as usize) % companies.len()].into(),
            name: format!("Företag {}", i % 97),
            contact: Some(pb::Contact {
                name: "Kontakt Person".into(),
                phone: "070-123 45 67".into(),
                email: "kontakt@foretag.se".into(),
            }),
        }),
        case_type: case_type.key.clone(),
        description: "Lastprov".into(),
        channel: pb::Channel::Phone as i32,
    };
    (tenant.kommunkod.clone(), req)
}

async fn watch_officers(
    routing: std::net::SocketAddr,
    oidc: &TestOidc,
    tenant: &TenantConfig,
    registered: Registered,
    task_ms: Arc<Mutex<Vec<f64>>>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let channel = Channel::from_shared(format!("http://{routing}"))?.connect().await?;
    // Watch the first copy of every officer: a sample of the tasks, each with its latency.
    for officer in tenant.officers.iter().filter(|o| !o.id.contains('~')).map(|o| o.id.clone()) {
        let bearer = Bearer::new(&oidc.token(&tenant.kommunkod, &Who::Officer(officer.clone())).await?)?;
        let mut client = pb::task_service_client::TaskServiceClient::with_interceptor(channel.clone(), bearer);
        let mut stream = client.watch_tasks(pb::WatchTasksRequest::default()).await?.into_inner();
        let (registered, task_ms, token) = (registered.clone(), task_ms.clone(), token.clone());
        tokio::spawn(async move {
            loop {
                let update = tokio::select! {
                    _ = token.cancelled() => return,
                    u = stream.next() => u,
                };
                let update = match update {
                    Some(Ok(u)) => u,
                    Some(Err(e)) => {
                        eprintln!("watch ended: {e}");
                        return;
                    }
                    None => return,
                };
                if update.kind != pb::task_update::Kind::Offered as i32 {
                    continue;
                }
                let Some(task) = update.task else { continue };
                let Ok(mut seen) = registered.lock() else { return };
                match seen.sent.get(&task.case_id).copied() {
                    Some(at) => {
                        if let Ok(mut ms) = task_ms.lock() {
                            ms.push(at.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    // The task was visible before RegisterCase's answer reached the client.
                    None => {
                        seen.early.insert(task.case_id, Instant::now());
                    }
                }
            }
        });
    }
    Ok(())
}

async fn backlog(pools: &[PgPool]) -> i64 {
    let mut total = 0;
    for p in pools {
        total += sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE status = 'pending'")
            .fetch_one(p)
            .await
            .unwrap_or(0);
    }
    total
}

async fn consumer_pending(js: &async_nats::jetstream::Context, subjects: &lots_events::Subjects) -> u64 {
    let Ok(stream) = js.get_stream(subjects.stream_name()).await else { return 0 };
    let mut total = 0;
    let names: Vec<String> = stream.consumer_names().filter_map(|n| async move { n.ok() }).collect().await;
    for name in names {
        if let Ok(mut c) = stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name).await
            && let Ok(info) = c.info().await
        {
            total += info.num_pending + info.num_ack_pending as u64;
        }
    }
    total
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    label: String,
    rate: Option<u32>,
    clients: usize,
    seconds: u64,
    svc: &Services,
    tenants: &[TenantConfig],
    workload: &str,
    pools: &[PgPool],
    js: &async_nats::jetstream::Context,
    subjects: &lots_events::Subjects,
) -> anyhow::Result<Run> {
    let channel = Channel::from_shared(format!("http://{}", svc.intake))?.connect().await?;
    let registered: Registered = Arc::default();
    let task_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let register_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let watch_token = CancellationToken::new();
    watch_officers(svc.routing, &svc.oidc, &tenants[0], registered.clone(), task_ms.clone(), watch_token.clone())
        .await?;
    // Each tenant's reception registers its cases, with a token from the tenant's issuer.
    let mut reception = HashMap::new();
    for t in tenants {
        let token = svc.oidc.token(&t.kommunkod, &Who::Reception).await?;
        reception.insert(t.kommunkod.clone(), Bearer::new(&token)?);
    }
    let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    // Progress, sampled once a second until the drain is over.
    let progress: Arc<Mutex<Vec<(f64, i64, i64)>>> = Arc::default();
    let sampling = CancellationToken::new();
    let sampler = {
        let (pool, progress, sampling) = (pools[1].clone(), progress.clone(), sampling.clone());
        let base = progress_now(&pool).await.context("read intake's and routing's case counts")?;
        tokio::spawn(async move {
            loop {
                let stop = sampling.is_cancelled();
                if let Some((registered, decided)) = progress_now(&pool).await
                    && let Ok(mut p) = progress.lock()
                {
                    p.push((start.elapsed().as_secs_f64(), registered - base.0, decided - base.1));
                }
                if stop {
                    return; // the sample after the drain is the last one
                }
                tokio::select! {
                    _ = sampling.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    };
    let end = start + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let mut max_backlog = 0;
    let mut max_pending = 0;
    let mut last_sample = Instant::now();
    let send = |i: u64| {
        let (tenant, req) = request(tenants, workload, i, &label);
        let bearer = reception[&tenant].clone();
        let (mut client, registered, register_ms, ok, task_ms_for_early) = (
            pb::intake_service_client::IntakeServiceClient::with_interceptor(channel.clone(), bearer),
            registered.clone(),
            register_ms.clone(),
            ok.clone(),
            task_ms.clone(),
        );
        async move {
            let t = Instant::now();
            if let Ok(case) = client.register_case(req).await {
                let case = case.into_inner();
                if let Ok(mut seen) = registered.lock() {
                    if let Some(visible) = seen.early.remove(&case.id)
                        && let Ok(mut ms) = task_ms_for_early.lock()
                    {
                        ms.push(visible.saturating_duration_since(t).as_secs_f64() * 1000.0);
                    }
                    seen.sent.insert(case.id, t);
                }
                if let Ok(mut ms) = register_ms.lock() {
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    match rate {
        Some(rate) => {
            // Open loop: send on schedule whatever the latency, as real traffic does.
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
            let mut tasks = Vec::new();
            while Instant::now() < end {
                let due = start + interval.mul_f64(sent as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                tasks.push(tokio::spawn(send(sent)));
                sent += 1;
                if last_sample.elapsed() > Duration::from_millis(500) {
                    max_backlog = max_backlog.max(backlog(&pools[..3]).await);
                    max_pending = max_pending.max(consumer_pending(js, subjects).await);
                    last_sample = Instant::now();
                }
            }
            futures::future::join_all(tasks).await;
        }
        None => {
            // Closed loop: `clients` callers each send the next case as soon as one returns.
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut workers = Vec::new();
            for _ in 0..clients {
                let (next, send) = (next.clone(), &send);
                workers.push(async move {
                    while Instant::now() < end {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        send(i).await;
                    }
                });
            }
            let sampler = async {
                while Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    max_backlog = max_backlog.max(backlog(&pools[..3]).await);
                    max_pending = max_pending.max(consumer_pending(js, subjects).await);
                }
            };
            futures::join!(futures::future::join_all(workers), sampler);
            sent = next.load(std::sync::atomic::Ordering::Relaxed);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Drain: wait until every event is published and consumed.
    let drain = Instant::now();
    while (backlog(&pools[..3]).await > 0 || consumer_pending(js, subjects).await > 0)
        && drain.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_s = drain.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sampling.cancel();
    sampler.await?;
    watch_token.cancel();
    let armed_ms: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(k.armed_at) - c.registered_at)::float8 * 1000
         FROM intake.cases c JOIN sla.clocks k ON k.case_id = c.id
         WHERE c.idempotency_key LIKE $1 GROUP BY c.id, c.registered_at",
    )
    .bind(format!("{label}-%"))
    .fetch_all(&pools[0])
    .await?;
    let take = |v: &Arc<Mutex<Vec<f64>>>| v.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(Run {
        label,
        sent,
        ok: ok.load(std::sync::atomic::Ordering::Relaxed),
        seconds: elapsed,
        register_ms: take(&register_ms),
        task_ms: take(&task_ms),
        armed_ms,
        max_outbox_backlog: max_backlog,
        max_consumer_pending: max_pending,
        drained_s,
        progress: progress.lock().map(|p| p.clone()).unwrap_or_default(),
    })
}

/// Small durable write transactions per second at `concurrency` (Postgres's limit for this work).
async fn probe_postgres(db: &BenchDb, concurrency: usize) -> anyhow::Result<f64> {
    let pool = db.pool("probe", concurrency as u32).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS probe (id bigserial PRIMARY KEY, payload text NOT NULL)")
        .execute(&pool)
        .await?;
    let end = Instant::now() + Duration::from_secs(5);
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pool, count) = (pool.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO probe (payload) VALUES ($1)").bind("x".repeat(200)).execute(&mut *tx).await?;
                tx.commit().await?;
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    pool.close().await;
    Ok(count.load(std::sync::atomic::Ordering::Relaxed) as f64 / 5.0)
}

/// JetStream publishes per second with acks awaited, `concurrency` in flight.
async fn probe_jetstream(nats: &async_nats::Client, concurrency: usize) -> anyhow::Result<f64> {
    let js = async_nats::jetstream::new(nats.clone());
    let name = format!("PROBE_{}", uuid::Uuid::now_v7().simple());
    let subject = format!("probe.{}", uuid::Uuid::now_v7().simple());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("create probe stream: {e}"))?;
    let end = Instant::now() + Duration::from_secs(5);
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (js, subject, count) = (js.clone(), subject.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let ack = js.publish(subject.clone(), bytes::Bytes::from(vec![b'x'; 400])).await;
                if let Ok(ack) = ack
                    && ack.await.is_ok()
                {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let _ = js.delete_stream(&name).await;
    Ok(count.load(std::sync::atomic::Ordering::Relaxed) as f64 / 5.0)
}

async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(pool)
        .await?)
}

fn print_progress(r: &Run) {
    let (rp50, rp99, _) = ms(&r.register_ms);
    let (tp50, tp99, _) = ms(&r.task_ms);
    let rate = r.ok as f64 / r.seconds;
    println!(
        "  {}: {rate:.0} cases/s, register p50 {rp50:.1} / p99 {rp99:.1} ms, task visible p50 {tp50:.1} / p99 {tp99:.1} ms, \
         drained in {:.1} s",
        r.label, r.drained_s
    );
}

fn ms(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (quantile(&v, 0.5), quantile(&v, 0.99), quantile(&v, 1.0))
}

/// Runs the benchmark.
pub async fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<()> {
    let example = Tenants::load(&cli.config)?;
    let example = example.get("0581").context("the example config must hold Norrköping (0581)")?;
    let all: Vec<TenantConfig> =
        (0..args.tenants.max(1)).map(|i| load_tenant(example, args.officer_copies, i)).collect();
    let tenant = all[0].clone();
    let tenants = Tenants::from_configs(all.clone())?;
    let db = BenchDb::create(&cli.database).await?;
    let subjects = env::subjects()?;
    let nats = async_nats::connect(&cli.nats).await.context("connect to nats")?;
    let js = async_nats::jetstream::new(nats.clone());
    println!(
        "load ({} workload): {} tenant(s) of {} officers each ({} copies of the example's {}), case types {:?}",
        args.workload,
        all.len(),
        tenant.officers.len(),
        args.officer_copies,
        example.officers.len(),
        tenant.case_types.iter().map(|c| c.key.as_str()).collect::<Vec<_>>()
    );
    let svc = start(&db, &cli.nats, &subjects, &tenants).await?;
    let pools = vec![
        db.pool(lots_intake::app::SCHEMA, 2).await?,
        db.pool(lots_routing::app::SCHEMA, 2).await?,
        db.pool(lots_sla::app::SCHEMA, 2).await?,
        db.pool(lots_insight::app::SCHEMA, 2).await?,
    ];
    let stream_msgs = |js: async_nats::jetstream::Context, name: String| async move {
        match js.get_stream(name).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    };

    let mut runs = Vec::new();
    let (commits_before, msgs_before) =
        (commits(&pools[0]).await?, stream_msgs(js.clone(), subjects.stream_name()).await);
    let open_loop = async |label: String, rate: u32, seconds: u64| {
        let run = run_once(label, Some(rate), 0, seconds, &svc, &all, &args.workload, &pools, &js, &subjects).await?;
        print_progress(&run);
        anyhow::Ok(run)
    };
    for &rate in &args.rates {
        println!("open loop at {rate} cases/s for {} s ...", args.seconds);
        let run = open_loop(format!("open{rate}"), rate, args.seconds).await?;
        runs.push(run);
    }
    if let Some(sustainable) = args.overload_of {
        let rate = sustainable * 3;
        println!("overload: open loop at {rate} cases/s (3 × {sustainable}) for {} s ...", args.overload_seconds);
        let run = open_loop(format!("overload{rate}"), rate, args.overload_seconds).await?;
        let (during, lowest) = completion(&run);
        println!(
            "  overload: completed {during:.0} cases/s while offered, lowest 5-s window {lowest:.0}/s (sustainable \
             {sustainable}/s): {}; backlog {} after {:.1} s",
            if lowest >= f64::from(sustainable) { "held" } else { "FELL BELOW" },
            if run.drained_s < 60.0 { "drained" } else { "NOT drained" },
            run.drained_s
        );
        runs.push(run);
        // Its leftovers must not count for the next run: wait until every service holds
        // every case intake holds (bounded).
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(300) {
            let behind: Option<bool> = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM intake.cases) > LEAST((SELECT count(*) FROM routing.cases),
                        (SELECT count(*) FROM sla.cases), (SELECT count(*) FROM insight.cases))",
            )
            .fetch_one(&pools[0])
            .await
            .ok();
            if behind == Some(false) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!("  overload: every service caught up {:.0} s after the drain", settle.elapsed().as_secs_f64());
    }
    // `--closed-loop-clients 0` leaves the closed loop out.
    if args.closed_loop_clients > 0 {
        println!("closed loop with {} clients for {} s ...", args.closed_loop_clients, args.seconds);
        let closed = run_once(
            "closed".into(),
            None,
            args.closed_loop_clients,
            args.seconds,
            &svc,
            &all,
            &args.workload,
            &pools,
            &js,
            &subjects,
        )
        .await?;
        print_progress(&closed);
        runs.push(closed);
    }
    let total_ok: u64 = runs.iter().map(|r| r.ok).sum();
    let commits_per_case = (commits(&pools[0]).await? - commits_before) as f64 / total_ok.max(1) as f64;
    let msgs_per_case =
        (stream_msgs(js.clone(), subjects.stream_name()).await - msgs_before) as f64 / total_ok.max(1) as f64;

    // Lost or duplicated: every accepted registration is one case in each service, once.
    let counts: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM intake.cases),
                (SELECT count(*) FROM routing.cases),
                (SELECT count(*) FROM sla.cases),
                (SELECT count(*) FROM (SELECT case_id FROM routing.meetings WHERE status <> 'cancelled'
                                        GROUP BY case_id HAVING count(*) > 1) d),
                (SELECT count(*) FROM routing.cases WHERE state = 'unroutable'),
                (SELECT count(*) FROM insight.cases)",
    )
    .fetch_one(&pools[0])
    .await?;
    // Intake's cases are the truth: a registration whose answer the client gave up on may
    // still have committed (it is then neither lost nor a duplicate). A service holding fewer
    // cases than intake lost them, unless its backlog had not drained when the run stopped.
    let lost_accepted = (total_ok as i64 - counts.0).max(0);
    let behind = [counts.1, counts.2, counts.5].map(|n| (counts.0 - n).max(0));
    let undrained = runs.iter().any(|r| r.drained_s >= 60.0);
    let lost = lost_accepted + if undrained { 0 } else { behind.iter().sum() };
    let duplicated = [counts.1, counts.2, counts.5].iter().map(|n| (n - counts.0).max(0)).sum::<i64>() + counts.3;
    if undrained {
        println!(
            "a backlog did not drain within 60 s: routing, sla and insight were {behind:?} cases behind intake when \
             the services stopped (not counted as lost)"
        );
    }
    let unanswered = (counts.0 - total_ok as i64).max(0);

    println!("probing the machine's limits at concurrency {} ...", args.probe_concurrency);
    svc.token.cancel();
    for h in svc.handles {
        // A backlog still being worked off must not hold the limit probes hostage.
        if tokio::time::timeout(Duration::from_secs(30), h).await.is_err() {
            println!("a service did not drain within 30 s; continuing");
        }
    }
    let pg_tps = probe_postgres(&db, args.probe_concurrency).await?;
    let js_rate = probe_jetstream(&nats, args.probe_concurrency).await?;
    let limit = (pg_tps / commits_per_case).min(js_rate / msgs_per_case);
    println!("the monolith limit: pgbench, {} clients, one case's rows per transaction ...", args.monolith_clients);
    let monolith = crate::monolith::probe(&db, args.monolith_clients, 10).await?;

    let mut rows = Vec::new();
    let mut json_runs = Vec::new();
    for r in &runs {
        let rate = r.ok as f64 / r.seconds;
        // Out the other end: accepted cases over the run plus the time to work off the backlog.
        let routed = r.ok as f64 / (r.seconds + r.drained_s);
        let (rp50, rp99, rmax) = ms(&r.register_ms);
        let (tp50, tp99, tmax) = ms(&r.task_ms);
        let (ap50, ap99, amax) = ms(&r.armed_ms);
        let (completed, lowest) = completion(r);
        rows.push(vec![
            r.label.clone(),
            format!("{rate:.0}"),
            format!("{completed:.0} (lowest 5 s: {lowest:.0})"),
            format!("{routed:.0}"),
            format!("{rp50:.1}/{rp99:.1}/{rmax:.0}"),
            format!("{tp50:.1}/{tp99:.1}/{tmax:.0} (n={})", r.task_ms.len()),
            format!("{ap50:.1}/{ap99:.1}/{amax:.0}"),
            format!("{}/{}", r.max_outbox_backlog, r.max_consumer_pending),
            format!("{:.1}", r.drained_s),
            format!("{:.0} %", 100.0 * completed / monolith),
        ]);
        json_runs.push(json!({
            "run": r.label, "sent": r.sent, "accepted": r.ok, "seconds": r.seconds, "cases_per_s": rate, "routed_cases_per_s": routed,
            "register_ms": {"p50": rp50, "p99": rp99, "max": rmax},
            "register_to_task_visible_ms": {"p50": tp50, "p99": tp99, "max": tmax, "samples": r.task_ms.len()},
            "register_to_clocks_armed_ms": {"p50": ap50, "p99": ap99, "max": amax},
            "max_outbox_backlog": r.max_outbox_backlog, "max_consumer_pending": r.max_consumer_pending,
            "drain_s": r.drained_s, "share_of_limit": routed / limit,
            "completed_cases_per_s": completed, "lowest_5s_completed_per_s": lowest,
            "share_of_monolith": completed / monolith,
        }));
    }
    report::table(
        &[
            "run",
            "accepted/s",
            "completed/s while offered",
            "incl. drain/s",
            "register ms p50/p99/max",
            "→ task visible ms p50/p99/max",
            "→ clocks armed ms p50/p99/max",
            "max backlog outbox/consumers",
            "drain s",
            "of monolith",
        ],
        &rows,
    );
    println!(
        "limits: postgres {pg_tps:.0} durable tx/s, jetstream {js_rate:.0} acked msgs/s; one case = {commits_per_case:.1} \
         commits + {msgs_per_case:.1} stream messages → limit {limit:.0} cases/s; monolith (pgbench, {} clients, one \
         case's rows per transaction) {monolith:.0} cases/s",
        args.monolith_clients
    );
    println!(
        "cases: {} accepted, intake {} ({unanswered} committed but not answered in time), routing {}, sla {}, insight {}, \
         unroutable {}; lost {lost}, duplicated {duplicated}",
        total_ok, counts.0, counts.1, counts.2, counts.5, counts.4
    );
    report::write_json(
        &cli.out,
        "load",
        &json!({
            "officers": tenant.officers.len(), "runs": json_runs,
            "limits": {"postgres_tx_per_s": pg_tps, "jetstream_msgs_per_s": js_rate,
                       "commits_per_case": commits_per_case, "messages_per_case": msgs_per_case,
                       "implied_cases_per_s": limit, "monolith_cases_per_s": monolith,
                       "monolith_clients": args.monolith_clients},
            "lost": lost, "duplicated": duplicated, "unroutable": counts.4, "committed_unanswered": unanswered,
            "behind_at_stop": {"routing": behind[0], "sla": behind[1], "insight": behind[2]},
        }),
    )?;
    for p in pools {
        p.close().await;
    }
    env::drop_stream(&nats, &subjects).await;
    db.drop_now().await?;
    Ok(())
}
