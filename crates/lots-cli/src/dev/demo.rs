//! `lots dev --demo`: a short, realistic day at the företagslots, played against the running
//! services through their public gRPC APIs with time sped up.
//!
//! A restaurant start and a bygglov are registered; one officer declines a seat and the seat
//! is re-routed; the other seats are accepted and the dukat bord is booked; the bygglov company
//! must complete its application first; and one case is left unanswered, so that the
//! servicegaranti warns and then breaches within a minute of real time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveTime, Utc};
use futures::StreamExt as _;
use lots_domain::TenantConfig;
use lots_domain::calendar::{self, TZ, WorkCalendar};
use lots_events::Subjects;
use lots_platform::Clock;
use lots_proto::v1 as pb;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{self, Alerts, Intake, Tasks};
use crate::commands::{alerts, clocks};
use lots_testkit::Who;

/// The demo's subject prefix; its stream is deleted at the start of every demo.
const PREFIX: &str = "demo";

/// What the services run on during a demo.
pub struct Setup {
    pub database_url: String,
    pub subjects: Subjects,
    pub clock: Clock,
}

/// Where the services listen, and the OpenID provider the demo's people get tokens from.
#[derive(Clone)]
pub struct Endpoints {
    pub intake: String,
    pub routing: String,
    pub sla: String,
    pub oidc: Arc<lots_testkit::TestOidc>,
}

impl Endpoints {
    async fn token(&self, tenant: &str, who: Who) -> anyhow::Result<String> {
        self.oidc.token(tenant, &who).await.with_context(|| format!("a token for {who:?}"))
    }
}

/// Resets the demo's database and stream, and starts the fast clock at the next working
/// day's 08:00 in Stockholm.
pub async fn prepare(database_url: &str, nats_url: &str, tenant: &TenantConfig, speed: u32) -> anyhow::Result<Setup> {
    let opts: PgConnectOptions = database_url.parse().context("LOTS_DATABASE_URL")?;
    let name = format!("{}_demo", opts.get_database().unwrap_or("lots"));
    let admin_opts = opts.clone().database("postgres").log_statements(tracing::log::LevelFilter::Off);
    let mut admin =
        PgConnection::connect_with(&admin_opts).await.context("connect to postgres to reset the demo database")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', ""))))
        .execute(&mut admin)
        .await
        .context("drop the previous demo database")?;
    admin.close().await.ok();

    let subjects = Subjects::new(PREFIX).context("demo subject prefix")?;
    let nc = lots_platform::nats::connect(nats_url, "lots-dev-demo", Duration::from_secs(10), None)
        .await
        .context("connect to nats")?;
    let js = async_nats::jetstream::new(nc.clone());
    // Not found is fine: there was no earlier demo.
    let _ = js.delete_stream(subjects.stream_name()).await;
    nc.drain().await.ok();

    let start = start_time(Utc::now(), tenant);
    Ok(Setup { database_url: with_database(database_url, &name), subjects, clock: Clock::accelerated(start, speed) })
}

/// 08:00 Stockholm time on the next working day of the tenant (today if it is still before 08:00).
pub fn start_time(now: DateTime<Utc>, tenant: &TenantConfig) -> DateTime<Utc> {
    let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default();
    let cal = WorkCalendar::for_tenant(tenant);
    let local = now.with_timezone(&TZ);
    let mut date = local.date_naive();
    if local.time() >= eight || !cal.is_working_day(date) {
        date = date.succ_opt().unwrap_or(date);
        while !cal.is_working_day(date) {
            date = date.succ_opt().unwrap_or(date);
        }
    }
    calendar::local_to_utc(date.and_time(eight))
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..].find('/').map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// What the demo hears from the services.
enum Heard {
    Task(pb::TaskUpdate),
    Alert(pb::Alert),
    Booked(pb::Meeting),
    Failed(String),
}

/// The part each demo case plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Seats are accepted, one after a decline.
    Restaurant,
    /// Waits for the company, resumes, gets a complete application; seats accepted.
    Bygglov,
    /// Nobody answers: the servicegaranti fires.
    Unanswered,
}

struct DemoCase {
    reference: String,
    role: Role,
}

/// A company of the demo (fictional, with a valid organisationsnummer) and its case.
struct Company {
    role: Role,
    case_type: &'static str,
    org_nr: &'static str,
    name: &'static str,
    contact: &'static str,
    email: &'static str,
    channel: pb::Channel,
    description: &'static str,
}

const COMPANIES: [Company; 3] = [
    Company {
        role: Role::Restaurant,
        case_type: "restaurang_start",
        org_nr: "556036-0793",
        name: "Knäppingsborgs Krog AB",
        contact: "Sara Holm",
        email: "sara.holm@knappingsborgskrog.se",
        channel: pb::Channel::Phone,
        description: "Ny restaurang med uteservering och alkoholservering på Knäppingsborg",
    },
    Company {
        role: Role::Bygglov,
        case_type: "bygglov",
        org_nr: "559241-6381",
        name: "Kvarnholmens Fastighets AB",
        contact: "Omar Said",
        email: "omar.said@kvarnholmensfastighet.se",
        channel: pb::Channel::EService,
        description: "Ändrad användning av lokal till kafé, ny entré mot Saltängsgatan",
    },
    Company {
        role: Role::Unanswered,
        case_type: "livsmedelsregistrering",
        org_nr: "969778-1020",
        name: "Saltängens Bageri HB",
        contact: "Maria Lind",
        email: "maria@saltangensbageri.se",
        channel: pb::Channel::Visit,
        description: "Registrering av bageri med kafédel",
    },
];

/// The seat the demo declines once, for the restaurant.
const DECLINED_SEAT: &str = "bygglov";

/// Plays the scenario until `stop`; every helper task ends with it.
pub async fn play(
    endpoints: Endpoints,
    tenant: Arc<TenantConfig>,
    clock: Clock,
    speed: u32,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut helpers = JoinSet::new();
    let result = tokio::select! {
        r = script(&endpoints, &tenant, &clock, speed, &mut helpers) => r,
        _ = stop.cancelled() => Ok(()),
    };
    helpers.shutdown().await;
    if let Err(e) = &result {
        // Say so at once; the services keep running for client commands.
        eprintln!("lots dev: the demo stopped: {e:#}");
    }
    result
}

async fn script(
    endpoints: &Endpoints,
    tenant: &TenantConfig,
    clock: &Clock,
    speed: u32,
    helpers: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    for c in &COMPANIES {
        if tenant.case_type(c.case_type).is_none() {
            anyhow::bail!("the demo needs case type {} in tenant {}", c.case_type, tenant.kommunkod);
        }
    }
    let code = tenant.kommunkod.as_str();
    let mut intake = client::intake_at(&endpoints.intake, &endpoints.token(code, Who::Reception).await?, None).await?;
    let mut sla = client::alerts_at(&endpoints.sla, &endpoints.token(code, Who::Naringslivschef).await?, None).await?;
    let say = Say { clock: clock.clone() };
    say.line(&format!(
        "demo: time runs {speed}× faster, from {} (a working hour every {:.0} s)",
        calendar_time(clock.now()),
        3600.0 / f64::from(speed)
    ));

    let (tx, mut rx) = mpsc::channel::<Heard>(256);
    let alerts_req = pb::WatchAlertsRequest::default();
    let mut alert_stream = sla.watch_alerts(alerts_req).await.context("watch alerts")?.into_inner();
    let alert_tx = tx.clone();
    helpers.spawn(async move {
        while let Some(next) = alert_stream.next().await {
            let heard = match next {
                Ok(alert) => Heard::Alert(alert),
                Err(e) => Heard::Failed(format!("the alert stream ended: {}", e.message())),
            };
            if alert_tx.send(heard).await.is_err() {
                return;
            }
        }
    });
    // Each officer watches their own tasks, with their own token.
    let mut officer_tasks: HashMap<String, Tasks> = HashMap::new();
    for officer in &tenant.officers {
        let token = endpoints.token(code, Who::Officer(officer.id.clone())).await?;
        let tasks = client::tasks_at(&endpoints.routing, &token, None).await?;
        officer_tasks.insert(officer.id.clone(), tasks.clone());
        let mut stream = tasks
            .clone()
            .watch_tasks(pb::WatchTasksRequest::default())
            .await
            .with_context(|| format!("watch the tasks of {}", officer.id))?
            .into_inner();
        let task_tx = tx.clone();
        helpers.spawn(async move {
            while let Some(next) = stream.next().await {
                let heard = match next {
                    Ok(update) => Heard::Task(update),
                    Err(e) => Heard::Failed(format!("a task stream ended: {}", e.message())),
                };
                if task_tx.send(heard).await.is_err() {
                    return;
                }
            }
        });
    }

    let mut cases: HashMap<String, DemoCase> = HashMap::new();
    for c in &COMPANIES {
        let (role, case_type, company) = (c.role, c.case_type, c.name);
        let req = pb::RegisterCaseRequest {
            idempotency_key: Uuid::now_v7().to_string(),
            company: Some(pb::Company {
                org_nr: c.org_nr.into(),
                name: company.into(),
                contact: Some(pb::Contact {
                    name: c.contact.into(),
                    phone: "011-15 00 00".into(),
                    email: c.email.into(),
                }),
            }),
            case_type: case_type.into(),
            description: c.description.into(),
            channel: c.channel as i32,
        };
        let case =
            intake.register_case(req).await.with_context(|| format!("register the {case_type} case"))?.into_inner();
        let note = match role {
            Role::Unanswered => " — nobody will answer this one",
            _ => "",
        };
        say.line(&format!("reception registers {}: {company} ({case_type}){note}", case.reference));
        if role == Role::Bygglov {
            helpers.spawn(complete_application(
                intake.clone(),
                sla.clone(),
                case.id.clone(),
                case.reference.clone(),
                say.clone(),
                speed,
            ));
        }
        cases.insert(case.id.clone(), DemoCase { reference: case.reference, role });
    }

    let mut declined = false;
    let mut offered: HashSet<String> = HashSet::new();
    let mut booked: HashSet<String> = HashSet::new();
    let mut told = false;
    let mut reaction = 0u32;
    while let Some(heard) = rx.recv().await {
        match heard {
            Heard::Failed(why) => say.line(&format!("demo: {why}")),
            Heard::Booked(m) => {
                if booked.insert(m.id.clone()) {
                    say.line(&booked_line(&m));
                }
            }
            Heard::Alert(a) => {
                let Some(case) = cases.get(&a.case_id) else { continue };
                say.line(&alert_line(&a));
                let first_warning = case.role == Role::Unanswered && !told && a.kind != pb::AlertKind::Met as i32;
                if first_warning {
                    told = true;
                    say.line(&finale(&cases, &a.recipient, night(tenant, speed)));
                }
            }
            Heard::Task(update) => {
                let Some(task) = update.task else { continue };
                let Some(case) = cases.get(&task.case_id) else {
                    continue;
                };
                let kind = pb::task_update::Kind::try_from(update.kind).unwrap_or(pb::task_update::Kind::Unspecified);
                say.line(&task_line(kind, &task, case));
                let fresh_offer = matches!(kind, pb::task_update::Kind::Offered | pb::task_update::Kind::Snapshot)
                    && task.status == pb::TaskStatus::Offered as i32
                    && offered.insert(task.id.clone());
                if !fresh_offer || case.role == Role::Unanswered {
                    continue;
                }
                reaction += 1;
                // Officers answer 10 to 40 minutes (simulated) after the offer.
                let after = sim(10 + (reaction * 13) % 31, speed);
                let decline = case.role == Role::Restaurant && !declined && task.competence == DECLINED_SEAT;
                declined |= decline;
                let Some(tasks) = officer_tasks.get(&task.officer_id) else { continue };
                helpers.spawn(answer(tasks.clone(), task, decline, after, tx.clone()));
            }
        }
    }
    Ok(())
}

/// Prints lines stamped with the demo's (fast) time.
#[derive(Clone)]
struct Say {
    clock: Clock,
}

impl Say {
    fn line(&self, text: &str) {
        println!("[{}] {text}", calendar_time(self.clock.now()));
    }
}

fn calendar_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%a %d %b %H:%M").to_string()
}

/// Real time for `minutes` of demo time.
fn sim(minutes: u32, speed: u32) -> Duration {
    Duration::from_millis(u64::from(minutes) * 60_000 / u64::from(speed.max(1)))
}

fn task_line(kind: pb::task_update::Kind, t: &pb::Task, case: &DemoCase) -> String {
    use pb::task_update::Kind;
    let when = crate::output::utc(t.meeting_starts_at.as_ref()).map(calendar_time).unwrap_or_default();
    let seat = format!("the {} seat of {}", t.competence, case.reference);
    match kind {
        Kind::Offered | Kind::Snapshot => {
            let tail = if case.role == Role::Unanswered { " (no answer will come)" } else { "" };
            format!("routing offers {} {seat}, dukat bord {when}{tail}", t.officer_id)
        }
        Kind::Accepted => format!("{} accepts {seat}", t.officer_id),
        Kind::Declined => format!("{} declines {seat}: \"{}\"", t.officer_id, t.reason),
        Kind::Completed => format!("{} completes {seat}", t.officer_id),
        Kind::Cancelled => format!("{}'s task for {seat} is cancelled", t.officer_id),
        Kind::Moved => format!("the dukat bord of {} moves to {when}", case.reference),
        Kind::Live | Kind::Unspecified => format!("{} {seat}", t.officer_id),
    }
}

fn booked_line(m: &pb::Meeting) -> String {
    let people: Vec<&str> = m.attendees.iter().filter(|a| !a.officer_id.is_empty()).map(|a| a.name.as_str()).collect();
    format!(
        "dukat bord booked for {}: {} at {}, with {}",
        m.case_reference,
        crate::output::utc(m.starts_at.as_ref()).map(calendar_time).unwrap_or_default(),
        m.location,
        people.join(", ")
    )
}

fn finale(cases: &HashMap<String, DemoCase>, officer: &str, night: Duration) -> String {
    let reference =
        |role: Role| cases.values().find(|c| c.role == role).map_or_else(String::new, |c| c.reference.clone());
    format!(
        "demo: nobody answers {unanswered}, so the servicegaranti warns; the breach and escalations follow \
         tomorrow morning (a night passes in {night}s). Lotsen keeps running; Ctrl-C stops it. Meanwhile, try:\n    \
         lots login                       # log in as naringslivschef\n    \
         lots alerts list --open\n    \
         lots clocks {unanswered}\n    \
         lots meeting show {restaurant}\n    \
         lots clocks {bygglov}\n    \
         lots login                       # log in as {officer}\n    \
         lots tasks list",
        unanswered = reference(Role::Unanswered),
        restaurant = reference(Role::Restaurant),
        bygglov = reference(Role::Bygglov),
        night = night.as_secs(),
    )
}

/// Real time from closing to opening.
fn night(tenant: &TenantConfig, speed: u32) -> Duration {
    let open = (tenant.office_hours.end - tenant.office_hours.start).num_minutes();
    let closed = u32::try_from(24 * 60 - open).unwrap_or(0);
    sim(closed, speed)
}

/// An alert as the demo tells it: what, for which case, who must act, when it is due.
fn alert_line(a: &pb::Alert) -> String {
    let what = match pb::AlertKind::try_from(a.kind) {
        Ok(pb::AlertKind::Met) => "servicegaranti kept".to_owned(),
        _ => format!("servicegaranti {}", alerts::kind_text(a).to_uppercase()),
    };
    let message = a.message.strip_prefix(&format!("{}: ", a.case_reference)).unwrap_or(&a.message);
    let mut line = format!("{what}: {} → {} ({}): {message}", a.case_reference, a.recipient, a.unit);
    // A warning's or an escalation's due time is its own instant; a breach's is the promise's.
    if a.kind == pb::AlertKind::Breached as i32
        && let Some(due) = crate::output::utc(a.due_at.as_ref())
    {
        line.push_str(&format!("; it was due {}", calendar_time(due)));
    }
    line
}

/// An officer answers an offer after a while; a booked meeting is reported back.
async fn answer(mut tasks: Tasks, task: pb::Task, decline: bool, after: Duration, tx: mpsc::Sender<Heard>) {
    tokio::time::sleep(after).await;
    let officer = task.officer_id.clone();
    let result = if decline {
        let req = pb::DeclineTaskRequest {
            task_id: task.id.clone(),
            reason: "på kurs hela veckan".into(),
            ..Default::default()
        };
        tasks.decline_task(req).await.map(|_| ())
    } else {
        tasks.accept_task(pb::AcceptTaskRequest { task_id: task.id.clone(), ..Default::default() }).await.map(|_| ())
    };
    if let Err(status) = result {
        let verb = if decline { "decline" } else { "accept" };
        let _ = tx
            .send(Heard::Failed(format!(
                "{officer} could not {verb} the {} seat of {}: {}",
                task.competence,
                task.case_reference,
                status.message()
            )))
            .await;
        return;
    }
    let req = pb::GetMeetingRequest { lookup: Some(pb::get_meeting_request::Lookup::CaseId(task.case_id.clone())) };
    if let Ok(meeting) = tasks.get_meeting(req).await {
        let meeting = meeting.into_inner();
        if meeting.status == pb::MeetingStatus::Booked as i32 {
            let _ = tx.send(Heard::Booked(meeting)).await;
        }
    }
}

/// The bygglov company must complete its application before PBL's ten weeks start.
async fn complete_application(
    mut intake: Intake,
    mut sla: Alerts,
    case_id: String,
    reference: String,
    say: Say,
    speed: u32,
) {
    let steps = async {
        tokio::time::sleep(sim(30, speed)).await;
        let reason = "situationsplan och fasadritningar saknas";
        intake
            .await_company(pb::AwaitCompanyRequest {
                case_id: case_id.clone(),
                reason: reason.into(),
                ..Default::default()
            })
            .await
            .context("wait for the company")?;
        say.line(&format!("{reference} waits for the company: {reason} (its clocks pause)"));
        tokio::time::sleep(sim(150, speed)).await;
        intake
            .resume_case(pb::ResumeCaseRequest { case_id: case_id.clone(), ..Default::default() })
            .await
            .context("resume the case")?;
        say.line(&format!("the company sends the drawings: {reference} resumes"));
        intake
            .mark_application_complete(pb::MarkApplicationCompleteRequest {
                case_id: case_id.clone(),
                ..Default::default()
            })
            .await
            .context("mark the application complete")?;
        say.line(&format!("{reference}'s application is complete: PBL's ten weeks to a decision start now"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let clocks = sla
            .get_case_clocks(pb::GetCaseClocksRequest {
                lookup: Some(pb::get_case_clocks_request::Lookup::CaseId(case_id.clone())),
            })
            .await
            .context("get the clocks")?
            .into_inner();
        let table: String = clocks::clocks_text(&clocks).lines().map(|l| format!("    {l}\n")).collect();
        say.line(&format!("the servicegaranti clocks of {reference}:\n{}", table.trim_end()));
        anyhow::Ok(())
    };
    if let Err(e) = steps.await {
        say.line(&format!("demo: {reference}: {e:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantConfig {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/norrkoping.toml"),
        )
        .unwrap();
        TenantConfig::from_toml_str(&text).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_demo_starts_at_eight_on_the_next_working_day() {
        let t = tenant();
        // Tuesday 00:19 in Stockholm: the same day at 08:00 (07:00 UTC in winter).
        assert_eq!(start_time(utc("2026-11-23T23:19:00Z"), &t), utc("2026-11-24T07:00:00Z"));
        // Friday afternoon: Monday.
        assert_eq!(start_time(utc("2026-11-27T14:00:00Z"), &t), utc("2026-11-30T07:00:00Z"));
        // Julafton and juldagen are not working days.
        assert_eq!(start_time(utc("2026-12-23T12:00:00Z"), &t), utc("2026-12-28T07:00:00Z"));
    }

    #[test]
    fn the_demo_database_replaces_the_name_only() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/lots", "lots_demo"),
            "postgres://postgres@127.0.0.1:5432/lots_demo"
        );
        assert_eq!(
            with_database("postgres://u:p@db/lots?sslmode=disable", "lots_demo"),
            "postgres://u:p@db/lots_demo?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db:5432", "x"), "postgres://db:5432/x");
    }

    #[test]
    fn demo_companies_have_valid_organisationsnummer() {
        for c in &COMPANIES {
            assert!(c.org_nr.parse::<lots_domain::OrgNr>().is_ok(), "{}", c.org_nr);
            assert!(tenant().case_type(c.case_type).is_some(), "{}", c.case_type);
        }
    }

    #[test]
    fn demo_alerts_read_as_a_story() {
        let alert = pb::Alert {
            kind: pb::AlertKind::Warning as i32,
            severity: pb::Severity::Warning as i32,
            level: 50,
            unit: "miljo_livsmedel".into(),
            case_reference: "NKP-2026-000003".into(),
            recipient: "erik.sandberg".into(),
            due_at: Some(prost_types::Timestamp { seconds: 1_795_537_800, nanos: 0 }),
            message: "NKP-2026-000003: Första kontakt inom 1 arbetsdag: 50 % of the time used".into(),
            ..Default::default()
        };
        assert_eq!(
            alert_line(&alert),
            "servicegaranti WARNING 50%: NKP-2026-000003 → erik.sandberg (miljo_livsmedel): \
             Första kontakt inom 1 arbetsdag: 50 % of the time used"
        );
        let breach = pb::Alert {
            kind: pb::AlertKind::Breached as i32,
            message: "NKP-2026-000003: X was not met".into(),
            ..alert
        };
        assert!(alert_line(&breach).ends_with("(miljo_livsmedel): X was not met; it was due Tue 24 Nov 17:30"));
    }

    #[test]
    fn simulated_minutes_become_real_time() {
        assert_eq!(night(&tenant(), 600), Duration::from_secs(93));
        assert_eq!(sim(60, 600), Duration::from_secs(6));
        assert_eq!(sim(10, 600), Duration::from_secs(1));
    }
}
