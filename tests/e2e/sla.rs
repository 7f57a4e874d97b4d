//! The servicegaranti: clocks from events on the working-day calendar, alerts on time and
//! exactly once (also across restarts), pauses that do not count, and PBL's legal deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use lots_proto::v1 as pb;
use lots_testkit::TestNats;

use crate::helpers::*;

const SLA_TENANT: &str = r#"
kommunkod = "9997"
name = "Garantikommun"
reference_prefix = "SLA"
naringslivschef = "chef"
office_hours = { start = "08:00", end = "16:30" }

[[units]]
id = "u"
name = "Enheten"
manager = "boss"

[[officers]]
id = "chef"
name = "Näringslivschefen"
email = "chef@garanti.se"
unit = "u"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "boss"
name = "Enhetschefen"
email = "boss@garanti.se"
unit = "u"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "handl"
name = "Handläggaren"
email = "handl@garanti.se"
unit = "u"
competences = ["r"]
capacity = 100

[commitments.first_contact]
name = "Första kontakt inom 8 arbetstimmar"
starts_on = "case.registered"
stops_on = ["task.accepted"]
pauses_on = ["case.waiting_for_company"]
resumes_on = ["case.resumed"]
target = { working_hours = 8 }
warn_at = [50, 75]
escalation = [
    { to = "officer", after_hours = 0 },
    { to = "unit_manager", after_hours = 2 },
    { to = "naringslivschef", after_hours = 4 },
]

[commitments.beslut_pbl]
name = "Beslut inom 10 veckor från komplett ansökan"
starts_on = "case.application_complete"
stops_on = ["case.closed"]
target = { calendar_weeks = 10 }
extension = { calendar_weeks = 10 }
fee_reduction_percent_per_week = 20
warn_at = [50]

[[case_types]]
key = "radgivning"
name = "Rådgivning"
seats = [{ competence = "r" }]
meeting_minutes = 30
min_notice_hours = 48
commitments = ["first_contact"]

[[case_types]]
key = "bygglov"
name = "Bygglov"
seats = [{ competence = "r" }]
meeting_minutes = 30
min_notice_hours = 48
commitments = ["beslut_pbl"]
"#;

async fn spawn(nats: TestNats) -> TestApp {
    let options = Options {
        routing: true,
        sla: true,
        now: Some("2026-09-07 08:00"),
        extra_tenants: vec![SLA_TENANT.to_owned()],
        ..Default::default()
    };
    TestApp::spawn_with(nats, options).await
}

fn request(app: &TestApp, key: &str, case_type: &str) -> pb::RegisterCaseRequest {
    let mut req = app.restaurant(key);
    req.case_type = case_type.into();
    req
}

async fn clocks(app: &TestApp, reference: &str) -> BTreeMap<String, pb::Clock> {
    let lookup = Some(pb::get_case_clocks_request::Lookup::Reference(reference.to_owned()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match app
            .alerts_as("9997", Who::Naringslivschef)
            .await
            .get_case_clocks(pb::GetCaseClocksRequest { lookup: lookup.clone() })
            .await
        {
            Ok(r) => {
                return r.into_inner().clocks.into_iter().map(|c| (c.commitment.clone(), c)).collect();
            }
            Err(e) if e.code() == tonic::Code::NotFound && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Waits until the clock of `commitment` is armed (started) and sla knows the case's
/// handläggare (routing's task.offered has arrived), so recipients are deterministic.
async fn armed(app: &TestApp, reference: &str, commitment: &str) -> pb::Clock {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let officer: Option<Option<String>> = sqlx::query_scalar("SELECT officer_id FROM cases WHERE reference = $1")
            .bind(reference)
            .fetch_optional(app.sla_pool())
            .await
            .unwrap();
        if officer.flatten().is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sla never learnt the officer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let c = clocks(app, reference).await.remove(commitment);
        if let Some(c) = c.filter(|c| c.due_at.is_some()) {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "{commitment} not armed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every alert fired so far: (kind, recipient, level, late), in firing order.
async fn fired(app: &TestApp, settle: usize) -> Vec<(String, String, i32, bool)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<(String, String, i32, bool)> =
            sqlx::query_as("SELECT kind, recipient, level, late FROM alerts ORDER BY due_at, severity, level")
                .fetch_all(app.sla_pool())
                .await
                .unwrap();
        if rows.len() >= settle || tokio::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn due(c: &pb::Clock) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(c.due_at.unwrap().seconds, 0).unwrap()
}

fn kinds(rows: &[(String, String, i32, bool)]) -> Vec<String> {
    rows.iter().map(|r| format!("{}:{}:{}", r.0, r.1, r.2)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn warnings_breach_and_escalations_fire_in_order_once_each() {
    let app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "s-1", "radgivning")).await.unwrap();
    let clock = armed(&app, &case.reference, "first_contact").await;
    assert_eq!(due(&clock), local("2026-09-07 16:00"));
    assert_eq!(clock.state, pb::ClockState::Running as i32);

    let mut watch = app
        .alerts_as("9997", Who::Naringslivschef)
        .await
        .watch_alerts(pb::WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();

    app.clock.set(local("2026-09-07 12:00"));
    assert_eq!(kinds(&fired(&app, 1).await), ["warning:handl:50"]);
    app.clock.set(local("2026-09-07 14:00"));
    assert_eq!(kinds(&fired(&app, 2).await), ["warning:handl:50", "warning:handl:75"]);
    app.clock.set(local("2026-09-07 16:00"));
    let expected = ["warning:handl:50", "warning:handl:75", "breached:handl:0", "escalated:handl:1"];
    assert_eq!(kinds(&fired(&app, 4).await), expected);

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let a = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
        seen.push(a.kind);
    }
    assert!(seen.contains(&(pb::AlertKind::Breached as i32)), "the stream saw the breach");

    // 2 and 4 working hours after the breach: Tuesday 09:30 and 11:30.
    app.clock.set(local("2026-09-08 09:30"));
    fired(&app, 5).await;
    app.clock.set(local("2026-09-08 11:30"));
    let all = fired(&app, 6).await;
    assert_eq!(kinds(&all), [&expected[..], &["escalated:boss:2", "escalated:chef:3"]].concat(),);
    assert!(all.iter().all(|a| !a.3), "nothing fired late");

    // Each alert went out on NATS exactly once, with its derived id.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.read_events_of_tenant("9997", "sla.warning").await, 2);
    assert_eq!(app.read_events_of_tenant("9997", "sla.breached").await, 1);
    assert_eq!(app.read_events_of_tenant("9997", "sla.escalated").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_waiting_for_the_company_does_not_count_to_the_minute() {
    let app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "p-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    app.clock.set(local("2026-09-07 09:00"));
    app.await_company(&case.id, "Ritning saknas").await.unwrap();
    // Let sla see the pause before time moves on (in real time it is there within milliseconds).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while clocks(&app, &case.reference).await["first_contact"].state != pb::ClockState::Paused as i32 {
        assert!(tokio::time::Instant::now() < deadline, "the clock did not pause");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.clock.set(local("2026-09-08 11:00"));
    let paused = clocks(&app, &case.reference).await.remove("first_contact").unwrap();
    assert_eq!(paused.state, pb::ClockState::Paused as i32);
    assert_eq!(paused.minutes_left, 7 * 60, "1 of 8 working hours used before the pause");
    assert!(paused.due_at.is_none());
    app.clock.set(local("2026-09-09 13:17"));
    app.resume(&case.id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let running = loop {
        let c = clocks(&app, &case.reference).await.remove("first_contact").unwrap();
        if c.state == pb::ClockState::Running as i32 {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // 7 h left from Wednesday 13:17: 3 h 13 min on Wednesday, 3 h 47 min on Thursday.
    assert_eq!(due(&running), local("2026-09-10 11:47"));
    // Paused Monday 09:00 to Wednesday 13:17: 7 h 30 + 8 h 30 + 5 h 17 of working time.
    assert_eq!(running.paused_minutes, 7 * 60 + 30 + 8 * 60 + 30 + 5 * 60 + 17);
    // The 50 % warning moved with the pause: it is not due on Monday 12:00 any more.
    assert!(fired(&app, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_that_fell_due_while_sla_was_down_fire_once_marked_late() {
    let mut app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "r-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    app.stop_sla().await;
    app.clock.set(local("2026-09-08 10:00"));
    app.start_sla().await;
    let all = fired(&app, 5).await;
    assert_eq!(
        kinds(&all),
        ["warning:handl:50", "warning:handl:75", "breached:handl:0", "escalated:handl:1", "escalated:boss:2"]
    );
    assert!(all.iter().all(|a| a.3), "every alert is marked late");
    // Operators see the lateness too: both warnings fired hours after they fell due.
    let text = app.scrape_sla().await;
    let late = |series: &str| metric(&text, &format!("lots_alert_lateness_seconds_{series}"));
    assert_eq!(late("count{service=\"sla\",kind=\"sla.warning\"}"), 2.0, "{text}");
    let within_a_minute = "lots_alert_lateness_seconds_bucket{service=\"sla\",le=\"60.0\",kind=\"sla.warning\"} 0";
    assert!(text.lines().any(|l| l == within_a_minute), "{text}");
    assert!(late("sum{service=\"sla\",kind=\"sla.warning\"}") > 2.0 * 3600.0, "{text}");

    // A restart and a redelivered registration change nothing.
    app.stop_sla().await;
    app.start_sla().await;
    let original = app.events_of("9997", "case.registered", 1).await;
    app.publish_raw_for("9997", "case.registered", uuid::Uuid::now_v7(), original[0].payload.to_vec()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fired(&app, 0).await.len(), 5);
    let clocks: i64 = sqlx::query_scalar("SELECT count(*) FROM clocks").fetch_one(app.sla_pool()).await.unwrap();
    assert_eq!(clocks, 1);
    assert_eq!(app.read_events_of_tenant("9997", "sla.escalated").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bygglov_deadline_is_extended_once_and_the_fee_reduction_shows() {
    let app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "b-1", "bygglov")).await.unwrap();
    let mut client = app.intake_as("9997", Who::Reception).await;
    let extend = |reason: &str| pb::ExtendDeadlineRequest {
        case_id: case.id.clone(),
        reason: reason.to_owned(),
        ..Default::default()
    };
    let err = client.extend_deadline(extend("Utredning")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "not before the application is complete");

    app.clock.set(local("2026-09-07 10:00"));
    let complete = pb::MarkApplicationCompleteRequest { case_id: case.id.clone(), ..Default::default() };
    client.mark_application_complete(complete).await.unwrap();
    let clock = armed(&app, &case.reference, "beslut_pbl").await;
    assert_eq!(due(&clock), local("2026-11-16 16:30"), "10 weeks");
    assert_eq!(clock.time_basis, "calendar");

    client.extend_deadline(extend("Särskilda skäl: grannehöranden")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let extended = loop {
        let c = clocks(&app, &case.reference).await.remove("beslut_pbl").unwrap();
        if c.extended {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(due(&extended), local("2027-01-25 16:30"), "10 more weeks");
    let err = client.extend_deadline(extend("Igen")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("once"), "{}", err.message());

    app.clock.set(local("2027-01-26 16:30"));
    let late = clocks(&app, &case.reference).await.remove("beslut_pbl").unwrap();
    assert_eq!(late.state, pb::ClockState::Breached as i32);
    assert_eq!(late.fee_reduction_percent, 20, "one fifth after 1 day");
    app.clock.set(local("2027-02-09 16:30"));
    let later = clocks(&app, &case.reference).await.remove("beslut_pbl").unwrap();
    assert_eq!(later.fee_reduction_percent, 60, "three fifths after 2 weeks and 1 day");

    // The breach also tells the case owner to inform the company (förvaltningslagen 11 §).
    let all = fired(&app, 3).await;
    assert!(all.iter().any(|a| a.0 == "delay_notice"), "{all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unroutable_case_is_escalated_at_once_to_the_unit_manager_and_the_naringslivschef() {
    let app = spawn(TestNats::start().unwrap()).await;
    // The only officer with the case type's competence is away for months: nobody can take it.
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    let period = pb::TimeRange { start: Some(ts(local("2026-09-01 00:00"))), end: Some(ts(local("2027-03-01 00:00"))) };
    let absence = pb::SetAbsenceRequest { officer_id: "handl".into(), period: Some(period), ..Default::default() };
    app.officers_as("9997", Who::Admin).await.set_absence(absence).await.unwrap();
    let case = app.register_in("9997", request(&app, "u-1", "radgivning")).await.unwrap();
    app.eventually(&case.id, "unroutable", |c| status(c) == pb::CaseStatus::Unroutable).await;
    let alerts = fired(&app, 2).await;
    assert_eq!(kinds(&alerts), ["escalated:boss:1", "escalated:chef:2"]);
    // Closing the case settles them.
    app.close(&case.id, "Hänvisad till annan myndighet").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM alerts WHERE open").fetch_one(app.sla_pool()).await.unwrap();
        if open == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the escalations stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warning_that_fires_after_its_clock_stopped_is_not_left_open() {
    let mut app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "late-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    // sla is down while the 50 % warning falls due and the officer then answers.
    app.stop_sla().await;
    app.clock.set(local("2026-09-07 13:00"));
    let mut handl = app.tasks("9997/handl").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let task = loop {
        let tasks = handl.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks;
        if let Some(t) = tasks.into_iter().find(|t| t.case_id == case.id) {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "no task for the case");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    handl.accept_task(pb::AcceptTaskRequest { task_id: task.id, ..Default::default() }).await.unwrap();
    app.start_sla().await;
    // The late warning still fires (it fell due while the clock ran), and nothing stays open.
    let alerts = fired(&app, 2).await;
    assert!(kinds(&alerts).contains(&"warning:handl:50".to_owned()), "{alerts:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alerts WHERE open").fetch_one(app.sla_pool()).await.unwrap();
    assert_eq!(open, 0, "an alert about a stopped clock stayed open");
}

/// Writes `n` alerts of tenant 9997 in the given transaction (as the timer would, in bulk).
async fn insert_alerts(conn: &mut sqlx::PgConnection, n: i64, open: bool) {
    sqlx::query(
        "INSERT INTO alerts (id, kind, severity, tenant, unit, case_id, reference, clock_id, commitment,
            commitment_name, recipient, due_at, fired_at, late, open, message)
         SELECT gen_random_uuid(), 'warning', 2, '9997', 'u', gen_random_uuid(), 'SLA-2026-000001',
            gen_random_uuid(), 'first_contact', 'Första kontakt', 'handl', now(), now(), false, $2, 'probe'
         FROM generate_series(1, $1)",
    )
    .bind(n)
    .bind(open)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_alert_committed_after_a_streams_snapshot_reaches_it_once_whatever_the_commit_order() {
    let app = spawn(TestNats::start().unwrap()).await;
    // More open alerts than the old snapshot's silent cap of 10,000.
    let mut conn = app.sla_pool().acquire().await.unwrap();
    insert_alerts(&mut conn, 10_050, true).await;
    drop(conn);
    sqlx::query("SELECT pg_notify('lots_sla_alerts', '')").execute(app.sla_pool()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut watch = app
        .alerts_as("9997", Who::Naringslivschef)
        .await
        .watch_alerts(pb::WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Transaction A writes one alert but commits only after B wrote 1,500 more.
    let mut a = app.sla_pool().begin().await.unwrap();
    insert_alerts(&mut a, 1, false).await;
    let mut b = app.sla_pool().begin().await.unwrap();
    insert_alerts(&mut b, 1_500, false).await;
    b.commit().await.unwrap();
    sqlx::query("SELECT pg_notify('lots_sla_alerts', '')").execute(app.sla_pool()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.commit().await.unwrap();
    sqlx::query("SELECT pg_notify('lots_sla_alerts', '')").execute(app.sla_pool()).await.unwrap();

    let mut seen = std::collections::HashMap::<String, usize>::new();
    let expected = 10_050 + 1_500 + 1;
    while seen.len() < expected {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
        let a = next.unwrap_or_else(|_| panic!("only {} of {expected} alerts arrived", seen.len()));
        *seen.entry(a.unwrap().unwrap().id).or_default() += 1;
    }
    // A few more polls of the hub: nothing arrives twice.
    let extra = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    assert!(extra.is_err(), "an alert arrived after all had: {extra:?}");
    assert!(seen.values().all(|n| *n == 1), "an alert arrived twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_alert_streams_hold_no_connection_and_a_caller_may_keep_eight() {
    let app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "w-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    // Sixteen streams against a pool of eight connections.
    let mut streams = Vec::new();
    for who in [Who::Naringslivschef, Who::Manager("boss".into())] {
        let mut client = app.alerts_as("9997", who).await;
        for _ in 0..8 {
            streams.push(client.watch_alerts(pb::WatchAlertsRequest::default()).await.unwrap().into_inner());
        }
    }
    let lookup = Some(pb::get_case_clocks_request::Lookup::Reference(case.reference.clone()));
    let mut reception = app.alerts_as("9997", Who::Reception).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(3),
        reception.get_case_clocks(pb::GetCaseClocksRequest { lookup: lookup.clone() }),
    )
    .await;
    assert!(answer.expect("GetCaseClocks starved by open streams").is_ok());
    // A ninth stream of the same caller is refused, naming the limit; closing one frees a place.
    let mut chef = app.alerts_as("9997", Who::Naringslivschef).await;
    let refused = chef.watch_alerts(pb::WatchAlertsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(refused.message().contains("streams per caller"), "{}", refused.message());
    drop(streams.remove(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while chef.watch_alerts(pb::WatchAlertsRequest::default()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "a closed stream kept its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The open streams still get new alerts: the 50 % warning reaches every one.
    app.clock.set(local("2026-09-07 12:00"));
    for s in &mut streams {
        let a = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(a.kind, pb::AlertKind::Warning as i32);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_never_contradicts_an_event_that_was_in_the_stream_when_it_fell_due() {
    let mut app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "stale-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    // sla is down; a backlog builds up, and last the case waits for the company (pausing its
    // clock at 11:00, before any stage falls due).
    app.stop_sla().await;
    for i in 0..150 {
        app.register_in("9997", request(&app, &format!("backlog-{i}"), "radgivning")).await.unwrap();
    }
    app.clock.set(local("2026-09-07 11:00"));
    app.await_company(&case.id, "Ritningar saknas").await.unwrap();
    // The warnings and the breach of the case would have fallen due by now.
    app.clock.set(local("2026-09-07 17:00"));
    app.start_sla().await;
    // Once the backlog is applied the clock is paused, and the case never got an alert.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = clocks(&app, &case.reference).await.remove("first_contact").unwrap();
        if c.state == pb::ClockState::Paused as i32 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the pause was never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts: Vec<String> = sqlx::query_scalar("SELECT kind FROM alerts WHERE reference = $1")
        .bind(&case.reference)
        .fetch_all(app.sla_pool())
        .await
        .unwrap();
    assert!(alerts.is_empty(), "alerts fired on stale knowledge: {alerts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_that_keeps_failing_backs_off_and_says_so() {
    let app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "fail-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    // The service loses the right to mark stages fired: every firing fails.
    sqlx::query("REVOKE UPDATE ON stages FROM lots_service").execute(app.sla_pool()).await.unwrap();
    app.clock.set(local("2026-09-07 12:00"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errors = metric(&app.scrape_sla().await, "lots_sla_timer_errors_total{service=\"sla\"}");
    assert!((1.0..=12.0).contains(&errors), "{errors} failed rounds in 3 s: no backoff (or no failure)");
    // Given the right back, the warning fires.
    sqlx::query("GRANT UPDATE ON stages TO lots_service").execute(app.sla_pool()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while fired(&app, 0).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the warning never fired after recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_of_a_commitment_removed_from_the_configuration_is_counted_and_logged() {
    let mut app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "gone-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    app.stop_sla().await;
    // The municipality drops the commitment (and its use by the case type).
    let start = SLA_TENANT.find("[commitments.first_contact]").unwrap();
    let end = SLA_TENANT.find("[commitments.beslut_pbl]").unwrap();
    let config = format!("{}{}", &SLA_TENANT[..start], &SLA_TENANT[end..])
        .replace("commitments = [\"first_contact\"]", "commitments = []");
    app.options.extra_tenants = vec![config];
    app.start_sla().await;
    app.clock.set(local("2026-09-07 12:00"));
    let series = "lots_sla_stages_skipped_total{service=\"sla\",reason=\"commitment_removed\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&app.scrape_sla().await, series) < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the skipped stage left no trace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fired(&app, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_reassigns_the_case_and_warnings_go_to_the_new_owner() {
    let app = spawn(TestNats::start().unwrap()).await;
    let case = app.register_in("9997", request(&app, "own-1", "radgivning")).await.unwrap();
    armed(&app, &case.reference, "first_contact").await;
    let routing = app.routing.as_ref().unwrap().addr;
    let mut boss = pb::task_service_client::TaskServiceClient::new(
        app.channel_as(routing, "9997", Who::Manager("boss".into())).await,
    );
    let req = |officer: &str, reason: &str| pb::ReassignCaseOwnerRequest {
        case_id: case.id.clone(),
        officer_id: officer.into(),
        reason: reason.into(),
        idempotency_key: format!("{officer}/{reason}"),
    };
    // Refused input names the field and changes nothing.
    let err = boss.reassign_case_owner(req("nobody", "Semester")).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["officer_id"]);
    let err = boss.reassign_case_owner(req("boss", " ")).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    // A handläggare may not.
    let mut handl = app.tasks("9997/handl").await;
    let denied = handl.reassign_case_owner(req("boss", "Semester")).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let owner = boss.reassign_case_owner(req("boss", "Handläggaren är föräldraledig")).await.unwrap().into_inner();
    assert_eq!((owner.officer_id.as_str(), owner.unit.as_str()), ("boss", "u"));
    assert_eq!(app.read_events_of_tenant("9997", "case.owner_changed").await, 1);
    // A retry with the same key is answered without a second change.
    boss.reassign_case_owner(req("boss", "Handläggaren är föräldraledig")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.read_events_of_tenant("9997", "case.owner_changed").await, 1);

    // sla follows: the 50 % warning goes to the new owner.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let officer: Option<String> = sqlx::query_scalar("SELECT officer_id FROM cases WHERE reference = $1")
            .bind(&case.reference)
            .fetch_one(app.sla_pool())
            .await
            .unwrap();
        if officer.as_deref() == Some("boss") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sla never learnt the new owner");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.clock.set(local("2026-09-07 12:00"));
    assert_eq!(kinds(&fired(&app, 1).await), ["warning:boss:50"]);
}
