//! `lots dev`: Lotsen on one machine. It finds or starts NATS and PostgreSQL, runs intake,
//! routing, sla and insight in this process, prints where they listen, and on Ctrl-C or SIGTERM
//! drains the services and then stops every server it started.

pub mod demo;
pub mod deps;
pub mod process;
pub mod services;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Datelike as _;
use lots_events::Subjects;
use lots_platform::{Clock, Tenants, shutdown};
use tokio_util::sync::CancellationToken;

use crate::args::DevArgs;
use crate::dev::deps::Dependency;
use crate::dev::process::Children;
use crate::dev::services::{Stack, StackConfig};

/// How long the services get to drain on shutdown.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Runs the local stack until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    init_logging();
    let signal = shutdown::on_signal();
    let mut children = Children::default();
    let result = run_stack(&args, &signal, &mut children).await;
    // The services have drained; now the servers they used can go.
    let reports = tokio::task::spawn_blocking(move || children.stop_all()).await.context("stop the servers")?;
    for report in reports {
        println!("lots dev: {report}");
    }
    result
}

async fn run_stack(args: &DevArgs, signal: &CancellationToken, children: &mut Children) -> anyhow::Result<()> {
    let configured = Tenants::load(&args.config).with_context(|| {
        format!("load the municipality configuration from {} (set --config or LOTS_CONFIG)", args.config.display())
    })?;
    // A local OpenID provider stands in for the municipalities' IdPs: every tenant trusts its
    // issuer there, and its people are the configuration's officers and managers.
    let keys = std::path::absolute(args.state_dir.join("oidc").join("jwks.json")).context("--state-dir")?;
    std::fs::create_dir_all(keys.parent().unwrap_or(&args.state_dir)).context("create the OpenID key folder")?;
    let oidc = tokio::task::block_in_place(|| lots_testkit::TestOidc::start_at(&configured, args.oidc_port, keys))
        .with_context(|| format!("start the local OpenID provider on port {} (--oidc-port)", args.oidc_port))?;
    let oidc = std::sync::Arc::new(oidc);
    let tenants = oidc.trusted_by(&configured)?;
    let Some(nats) = until(signal, deps::nats(&args.nats_url, &args.state_dir, children)).await? else {
        return Ok(());
    };
    let Some(pg) = until(signal, deps::postgres(&args.database_url, &args.state_dir, children)).await? else {
        return Ok(());
    };

    let mut cfg = StackConfig {
        database_url: pg.url.clone(),
        nats_url: nats.url.clone(),
        nats_password: nats.password.clone(),
        subjects: Subjects::new(&args.subject_prefix).context("--subject-prefix")?,
        tenants: tenants.clone(),
        config_dir: services::config_dir(&args.config),
        clock: Clock::system(),
        sla_tick: Duration::from_secs(1),
        intake: SocketAddr::new(args.host, args.intake_port),
        routing: SocketAddr::new(args.host, args.routing_port),
        sla: SocketAddr::new(args.host, args.sla_port),
        insight: SocketAddr::new(args.host, args.insight_port),
        company_keys: company_keys(&args.state_dir)?,
    };
    let mut demo_tenant = None;
    if args.demo {
        let tenant = tenants
            .get(&args.tenant)
            .cloned()
            .with_context(|| format!("--tenant {} is not in the configuration", args.tenant))?;
        let setup = demo::prepare(&pg.url, &nats.url, &tenant, args.speed).await?;
        cfg.database_url = setup.database_url;
        cfg.subjects = setup.subjects;
        cfg.clock = setup.clock;
        // The sla timer sleeps real time; look often enough that alerts are not marked late.
        cfg.sla_tick = Duration::from_millis(u64::from(25_000 / args.speed).clamp(20, 1000));
        demo_tenant = Some(tenant);
    }

    let services = CancellationToken::new();
    let mut stack = match until(signal, Stack::start(&cfg, &services)).await {
        Ok(Some(stack)) => stack,
        Ok(None) => return Ok(()),
        Err(e) => {
            services.cancel();
            return Err(e);
        }
    };
    println!("{}", banner(&stack, &nats, &pg, args, &tenants, &cfg, &oidc));

    let demo_stop = CancellationToken::new();
    let demo_run = demo_tenant.map(|tenant| {
        let endpoints = demo::Endpoints {
            intake: url(stack.intake),
            routing: url(stack.routing),
            sla: url(stack.sla),
            oidc: oidc.clone(),
        };
        tokio::spawn(demo::play(endpoints, tenant, cfg.clock.clone(), args.speed, demo_stop.clone()))
    });

    let mut failure = None;
    tokio::select! {
        _ = signal.cancelled() => {}
        exited = stack.first_exit() => {
            if let Some((name, result)) = exited {
                let why = result.err().map_or("it stopped".to_owned(), |e| format!("{e:#}"));
                failure = Some(anyhow::anyhow!("{name} stopped unexpectedly: {why}"));
            }
        }
    }
    println!("\nlots dev: stopping…");
    // Open streams hold the servers' graceful shutdown, so the demo's clients go first.
    demo_stop.cancel();
    if let Some(run) = demo_run {
        if let Err(e) = run.await {
            eprintln!("lots dev: the demo panicked: {e}");
        }
        // Let the servers see the demo's streams close before their pools do.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    services.cancel();
    for (name, result) in stack.drain(DRAIN_GRACE).await {
        match result {
            Ok(()) => println!("lots dev: stopped {name}"),
            Err(e) => eprintln!("lots dev: {name}: {e:#}"),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Runs `work` unless `signal` comes first (then `None`).
async fn until<T>(
    signal: &CancellationToken,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Option<T>> {
    tokio::select! {
        result = work => result.map(Some),
        _ = signal.cancelled() => Ok(None),
    }
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Logs go to stderr; `RUST_LOG` chooses (default: warnings only, so the demo stays readable).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn origin(dep: &Dependency) -> String {
    match &dep.started_in {
        Some(dir) => format!("started by lots dev, data in {}", dir.display()),
        None => "already running".to_owned(),
    }
}

/// Where everything listens, and what to try next.
fn banner(
    stack: &Stack,
    nats: &Dependency,
    pg: &Dependency,
    args: &DevArgs,
    tenants: &Tenants,
    cfg: &StackConfig,
    oidc: &lots_testkit::TestOidc,
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "\nLotsen is running. Ctrl-C stops everything.\n");
    let nats_note = match cfg.subjects.stream_name().as_str() {
        "LOTS" => origin(nats),
        stream => format!("stream {stream}; {}", origin(nats)),
    };
    let mut rows = vec![
        ("intake", url(stack.intake), "IntakeService, ComplaintService, VisitService".to_owned()),
        ("routing", url(stack.routing), "TaskService, OfficerService".to_owned()),
        ("sla", url(stack.sla), "AlertService".to_owned()),
        ("insight", url(stack.insight), "CaseStatusService, ReportService".to_owned()),
        ("nats", nats.url.clone(), nats_note),
        ("postgres", deps::redact(&cfg.database_url), format!("schemas intake, routing, sla, insight; {}", origin(pg))),
        ("openid", oidc.base_url().to_owned(), "issuer <url>/<kommunkod>; started by lots dev".to_owned()),
    ];
    for t in tenants.iter() {
        let what = format!("{} officers, {} case types", t.officers.len(), t.case_types.len());
        rows.push(("tenant", format!("{} {}", t.kommunkod, t.name), what));
    }
    rows.push(("config", args.config.display().to_string(), String::new()));
    let width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (name, address, note) in rows {
        let line = format!("  {name:<9} {address:<width$}  {note}");
        let _ = writeln!(text, "{}", line.trim_end());
    }
    let _ = writeln!(text, "\nLog in first (a device login: open the link, type a login name, any password):");
    if let Some(t) = tenants.iter().next() {
        let manager = t.units.first().map_or("", |u| u.manager.as_str());
        let officer =
            t.officers.iter().find(|o| !t.units.iter().any(|u| u.manager == o.id)).map_or("", |o| o.id.as_str());
        let _ = writeln!(text, "  lots login --issuer {}", oidc.issuer(&t.kommunkod));
        let _ = writeln!(
            text,
            "    login names: reception, {officer} (any officer id: handläggare), enhetschef.{manager}, naringslivschef"
        );
        let _ = writeln!(
            text,
            "  lots login --issuer {} --client-id admin --client-secret admin-secret   # a script, as admin",
            oidc.issuer(&t.kommunkod)
        );
    }
    let _ = writeln!(text, "\nThen try, in another terminal:");
    let defaults = [
        (stack.intake.port(), 50051, "LOTS_INTAKE_URL", stack.intake),
        (stack.routing.port(), 50052, "LOTS_ROUTING_URL", stack.routing),
        (stack.sla.port(), 50053, "LOTS_SLA_URL", stack.sla),
        (stack.insight.port(), 50054, "LOTS_INSIGHT_URL", stack.insight),
    ];
    for (port, default, var, addr) in defaults {
        if port != default || !addr.ip().is_loopback() {
            let _ = writeln!(text, "  export {var}={}", url(addr));
        }
    }
    let first = tenants.iter().next();
    let reference = format!(
        "{}-{}-000001",
        first.map_or("NKP", |t| t.reference_prefix.as_str()),
        cfg.clock.now().with_timezone(&lots_domain::calendar::TZ).year()
    );
    let _ = writeln!(
        text,
        "  lots case register --org-nr 556036-0793 --company \"Knäppingsborgs Krog AB\" \\\n    \
         --contact-name \"Sara Holm\" --phone \"070-123 45 67\" --email sara@example.se \\\n    \
         --type restaurang_start --channel phone\n  \
         lots case list\n  \
         lots meeting show {reference}          # the dukat bord and its officers\n  \
         lots tasks list                      # logged in as a handläggare; then tasks accept|decline\n  \
         lots tasks watch\n  \
         lots clocks {reference}                # the servicegaranti\n  \
         lots alerts watch"
    );
    if args.demo {
        let _ = writeln!(
            text,
            "\nThe demo runs in its own database and stream (reset on every --demo); time runs {}× faster.",
            args.speed
        );
    }
    text
}

/// The company-key secret of this machine's `lots dev`: made once, kept in the state folder.
fn company_keys(state_dir: &std::path::Path) -> anyhow::Result<lots_domain::CompanyKeys> {
    let path = state_dir.join("company-key");
    if !path.exists() {
        std::fs::create_dir_all(state_dir).context("create the state folder")?;
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        std::fs::write(&path, secret).with_context(|| format!("write {}", path.display()))?;
    }
    let secret = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    lots_domain::CompanyKeys::new(&secret).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
