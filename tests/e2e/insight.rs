//! The read side (lots-insight): what a company sees of its case, the guarantee-kept figures
//! from a scripted set of cases with known outcomes, a rebuild from the stream that gives the
//! same figures, NKI beside them, and the SKR Insikt case list.

use std::time::Duration;

use lots_domain::calendar::WorkCalendar;
use lots_proto::v1 as pb;
use lots_testkit::TestNats;

use crate::helpers::*;

const TENANT: &str = "9995";

const CONFIG: &str = r#"
kommunkod = "9995"
name = "Insiktkommun"
reference_prefix = "INS"
naringslivschef = "chef"
meeting_location = "Stadshuset, rum 3"
office_hours = { start = "08:00", end = "16:30" }

[[units]]
id = "ledning"
name = "Näringslivskontoret"
manager = "chef"

[[units]]
id = "bygg"
name = "Bygglovsenheten"
manager = "bchef"

[[units]]
id = "tillst"
name = "Tillståndsenheten"
manager = "tchef"

[[officers]]
id = "chef"
name = "Karin Chef"
email = "chef@insikt.se"
unit = "ledning"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "bchef"
name = "Bertil Chef"
email = "bchef@insikt.se"
unit = "bygg"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "tchef"
name = "Tove Chef"
email = "tchef@insikt.se"
unit = "tillst"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "anna"
name = "Anna Andersson"
email = "anna@insikt.se"
unit = "bygg"
competences = ["bygglov", "radgivning"]
capacity = 100

[[officers]]
id = "bo"
name = "Bo Berg"
email = "bo@insikt.se"
unit = "tillst"
competences = ["servering"]
capacity = 100

[commitments.first_contact]
name = "Första kontakt inom 8 arbetstimmar"
starts_on = "case.registered"
stops_on = ["task.accepted"]
target = { working_hours = 8 }

[commitments.beslut]
name = "Beslut inom 10 arbetsdagar"
starts_on = "case.registered"
stops_on = ["case.closed"]
pauses_on = ["case.waiting_for_company"]
resumes_on = ["case.resumed"]
target = { working_days = 10 }

[[case_types]]
key = "bygglov"
name = "Bygglov"
seats = [{ competence = "bygglov" }]
meeting_minutes = 60
min_notice_hours = 24
commitments = ["first_contact", "beslut"]
insikt_area = "bygglov"

[[case_types]]
key = "servering"
name = "Serveringstillstånd"
seats = [{ competence = "servering" }]
meeting_minutes = 60
min_notice_hours = 24
commitments = ["first_contact"]
insikt_area = "serveringstillstand"

[[case_types]]
key = "radgivning"
name = "Rådgivning"
seats = [{ competence = "radgivning" }]
meeting_minutes = 30
min_notice_hours = 24
commitments = []

[insight]
insikt_columns = ["arendenummer", "omrade", "beslutsdatum", "organisationsnummer", "foretagsnamn", "e_post"]

[insight.statuses]
meeting_booked = "Ni är inbokade på dukat bord"
"#;

async fn spawn() -> TestApp {
    let options = Options {
        routing: true,
        insight: true,
        now: Some("2026-09-07 08:00"),
        extra_tenants: vec![CONFIG.to_owned()],
        ..Default::default()
    };
    TestApp::spawn_with(TestNats::start().unwrap(), options).await
}

fn request(app: &TestApp, key: &str, case_type: &str, org_nr: &str, name: &str) -> pb::RegisterCaseRequest {
    let mut req = app.restaurant(key);
    req.case_type = case_type.into();
    let company = req.company.as_mut().unwrap();
    company.org_nr = org_nr.into();
    company.name = name.into();
    req
}

/// The task routing offered `officer` for `case`, once it is there.
async fn task_of(app: &TestApp, officer: &str, case: &str) -> pb::Task {
    let mut tasks = app.tasks(&format!("{TENANT}/{officer}")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = tasks.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks;
        if let Some(t) = list.into_iter().find(|t| t.case_id == case) {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "no task for {officer} on {case}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn accept(app: &TestApp, officer: &str, case: &str) {
    let task = task_of(app, officer, case).await;
    let mut tasks = app.tasks(&format!("{TENANT}/{officer}")).await;
    tasks.accept_task(pb::AcceptTaskRequest { task_id: task.id, ..Default::default() }).await.unwrap();
}

/// The company's view of `case` once `check` holds.
async fn status_when(app: &TestApp, case: &str, check: impl Fn(&pb::CaseStatusView) -> bool) -> pb::CaseStatusView {
    let mut client = app.status_as(TENANT, Who::Reception).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = client.get_case_status(pb::GetCaseStatusRequest { case: case.to_owned() }).await;
        match got {
            Ok(view) if check(view.get_ref()) => return view.into_inner(),
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("the status never got there: {other:?}"),
        }
    }
}

fn promised<'a>(view: &'a pb::CaseStatusView, commitment: &str) -> &'a pb::PromisedDate {
    view.promised.iter().find(|p| p.commitment == commitment).unwrap()
}

fn at(p: &pb::PromisedDate) -> Option<chrono::DateTime<chrono::Utc>> {
    lots_proto::time::utc(p.due_at.as_ref())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_company_follows_its_case_through_routing_komplettering_booking_and_decision() {
    let app = spawn().await;
    let case = app.register_in(TENANT, request(&app, "s-1", "bygglov", "556036-0793", "Bygg & Co AB")).await.unwrap();
    let view = status_when(&app, &case.reference, |v| v.status == "officer_assigned").await;
    assert_eq!(view.company_name, "Bygg & Co AB");
    assert_eq!(view.contact_officer, "Anna Andersson");
    assert_eq!(view.status_text, "Handläggare utsedd");
    assert!(view.meeting.is_none(), "not booked until the seat is accepted");
    let first = promised(&view, "first_contact");
    assert_eq!((at(first), first.state.as_str()), (Some(local("2026-09-07 16:00")), "pending"));
    let decision_due = at(promised(&view, "beslut")).unwrap();

    app.clock.set(local("2026-09-07 09:00"));
    accept(&app, "anna", &case.id).await;
    let view = status_when(&app, &case.id, |v| v.status == "meeting_booked").await;
    assert_eq!(view.status_text, "Ni är inbokade på dukat bord", "the municipality's own wording");
    let meeting = view.meeting.clone().unwrap();
    assert_eq!(meeting.location, "Stadshuset, rum 3");
    let attendees: Vec<(&str, &str)> = meeting.attendees.iter().map(|a| (a.name.as_str(), a.role.as_str())).collect();
    assert_eq!(attendees, [("Anna Andersson", "Bygglovsenheten")]);
    assert!(view.next_step.starts_with("Kom till mötet "), "{}", view.next_step);
    assert_eq!(promised(&view, "first_contact").state, "kept");

    // Waiting for the company's komplettering: the decision clock stands still for 8.5 working hours.
    app.clock.set(local("2026-09-08 10:00"));
    app.await_company(&case.id, "Ritningar och situationsplan saknas").await.unwrap();
    let view = status_when(&app, &case.id, |v| v.status == "waiting_for_company").await;
    assert_eq!(view.status_text, "Väntar på komplettering från er");
    assert_eq!(view.next_step, "Skicka in det som saknas: Ritningar och situationsplan saknas");
    let paused = promised(&view, "beslut");
    assert_eq!((paused.state.as_str(), paused.due_at), ("paused", None), "no promised date while it waits for you");
    app.clock.set(local("2026-09-09 10:00"));
    app.resume(&case.id).await.unwrap();
    let view = status_when(&app, &case.id, |v| v.status == "meeting_booked").await;
    let tenant = app.tenants().get(TENANT).cloned().unwrap();
    let moved = WorkCalendar::for_tenant(&tenant).add_working_time(decision_due, chrono::Duration::minutes(510));
    assert_eq!(at(promised(&view, "beslut")), Some(moved), "the promise moved by the time it waited");

    app.clock.set(local("2026-09-10 11:00"));
    app.close(&case.id, "Bygglov beviljat").await.unwrap();
    let view = status_when(&app, &case.id, |v| v.status == "decided").await;
    assert_eq!(view.status_text, "Beslut fattat");
    assert_eq!(promised(&view, "beslut").state, "kept");
    let walked: Vec<&str> = view.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(
        walked,
        ["registered", "officer_assigned", "meeting_booked", "waiting_for_company", "meeting_booked", "decided"]
    );
    let when: Vec<_> = view.history.iter().map(|h| lots_proto::time::utc(h.at.as_ref()).unwrap()).collect();
    assert_eq!(when[0], local("2026-09-07 08:00"));
    assert_eq!(when[5], local("2026-09-10 11:00"));

    // Another municipality's caller does not find it; a bad lookup names the field.
    let mut other = app.status_as(NKP, Who::Reception).await;
    let err = other.get_case_status(pb::GetCaseStatusRequest { case: case.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = other.get_case_status(pb::GetCaseStatusRequest { case: "nonsense".into() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["case"]);
}

/// The report for September 2026 once its rows are `expected` (keys "unit/case_type/commitment").
async fn report_when(app: &TestApp, who: Who, expected: usize) -> pb::GuaranteeReport {
    let mut reports = app.reports_as(TENANT, who).await;
    let req =
        pb::GuaranteeReportRequest { from_month: "2026-09".into(), to_month: "2026-09".into(), ..Default::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let report = reports.get_guarantee_report(req.clone()).await.unwrap().into_inner();
        let settled: u32 = report.rows.iter().map(|r| r.cases).sum();
        if settled as usize >= expected {
            return report;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {settled} of {expected} settled: {report:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until insight holds `case`'s first-contact clock in `state`.
async fn clock_state(app: &TestApp, case: &str, state: &str) {
    let id = uuid::Uuid::parse_str(case).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now: Option<String> =
            sqlx::query_scalar("SELECT state FROM clocks WHERE case_id = $1 AND commitment = 'first_contact'")
                .bind(id)
                .fetch_optional(app.insight_pool())
                .await
                .unwrap();
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the clock stayed {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row<'a>(report: &'a pb::GuaranteeReport, unit: &str, case_type: &str) -> &'a pb::GuaranteeRow {
    report
        .rows
        .iter()
        .find(|r| r.unit == unit && r.case_type == case_type && r.commitment == "first_contact")
        .unwrap_or_else(|| panic!("no row {unit}/{case_type}: {report:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn guarantee_figures_match_a_scripted_month_and_a_rebuild_from_the_stream_gives_the_same() {
    let mut app = spawn().await;
    let company = |key: &str, case_type: &str| request(&app, key, case_type, "556036-0793", "Bygg & Co AB");
    // A: answered in 30 minutes. B: answered the next morning, 1 hour late. C: in time.
    let a = app.register_in(TENANT, company("f-a", "bygglov")).await.unwrap();
    let b = app.register_in(TENANT, company("f-b", "bygglov")).await.unwrap();
    let c = app.register_in(TENANT, company("f-c", "servering")).await.unwrap();
    app.clock.set(local("2026-09-07 08:30"));
    accept(&app, "anna", &a.id).await;
    accept(&app, "bo", &c.id).await;
    // D: the only tillstånd officer is away for months, so no slot can be found.
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    let period = pb::TimeRange { start: Some(ts(local("2026-09-07 08:30"))), end: Some(ts(local("2027-03-01 00:00"))) };
    let absence = pb::SetAbsenceRequest { officer_id: "bo".into(), period: Some(period), ..Default::default() };
    app.officers_as(TENANT, Who::Admin).await.set_absence(absence).await.unwrap();
    let d = app.register_in(TENANT, company("f-d", "servering")).await.unwrap();
    app.eventually(&d.id, "unroutable", |x| status(x) == pb::CaseStatus::Unroutable).await;
    task_of(&app, "anna", &b.id).await;
    app.clock.set(local("2026-09-08 09:00"));
    accept(&app, "anna", &b.id).await;
    clock_state(&app, &b.id, "met_late").await;

    let report = report_when(&app, Who::Naringslivschef, 4).await;
    assert_eq!(report.target_percent, 90);
    let bygg = row(&report, "bygg", "bygglov");
    assert_eq!((bygg.cases, bygg.kept, bygg.breached), (2, 1, 1));
    assert_eq!(bygg.share_kept, 50.0);
    assert_eq!(bygg.unit_name, "Bygglovsenheten");
    // 30 minutes and 8.5 + 1 working hours (570 minutes): median 300, 90th percentile 516.
    assert_eq!((bygg.median_working_minutes, bygg.p90_working_minutes), (300.0, 516.0));
    let reasons: Vec<(&str, u32)> = bygg.reasons.iter().map(|r| (r.reason.as_str(), r.count)).collect();
    assert_eq!(reasons, [("seat_unanswered", 1)]);
    let tillst = row(&report, "tillst", "servering");
    assert_eq!((tillst.cases, tillst.kept, tillst.breached), (1, 1, 0));
    let nobody = row(&report, "", "servering");
    assert_eq!((nobody.cases, nobody.breached, nobody.unit_name.as_str()), (1, 1, "(ingen enhet)"));
    assert_eq!(nobody.reasons[0].reason, "no_slot");
    assert_eq!(report.rows.len(), 3, "{report:?}");

    // Drill-down to the broken case.
    let mut reports = app.reports_as(TENANT, Who::Naringslivschef).await;
    let drill = pb::ListGuaranteeCasesRequest {
        month: "2026-09".into(),
        unit: "bygg".into(),
        commitment: "first_contact".into(),
        outcome: "breached".into(),
        ..Default::default()
    };
    let cases = reports.list_guarantee_cases(drill).await.unwrap().into_inner().cases;
    let refs: Vec<(&str, &str, i64)> =
        cases.iter().map(|c| (c.reference.as_str(), c.reason.as_str(), c.working_minutes)).collect();
    assert_eq!(refs, [(b.reference.as_str(), "seat_unanswered", 570)]);

    // A unit manager sees their own unit only.
    let mine = report_when(&app, Who::Manager("tchef".into()), 1).await;
    assert!(mine.rows.iter().all(|r| r.unit == "tillst"), "{mine:?}");
    let other = pb::GuaranteeReportRequest {
        from_month: "2026-09".into(),
        to_month: "2026-09".into(),
        unit: "bygg".into(),
        ..Default::default()
    };
    let err = app.reports_as(TENANT, Who::Manager("tchef".into())).await.get_guarantee_report(other).await;
    assert_eq!(err.unwrap_err().code(), tonic::Code::PermissionDenied);

    // NKI from the survey appears beside the share kept; a bad row names its field and loads nothing.
    let nki = |area: &str, v: f64| pb::NkiResult { area: area.into(), period: "2026".into(), nki: v, respondents: 41 };
    let bad = pb::ImportNkiRequest { results: vec![nki("bygglov", 71.0), nki("fiske", 60.0)] };
    let err = reports.import_nki(bad).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["results.area"]);
    let good = pb::ImportNkiRequest { results: vec![nki("bygglov", 71.0)] };
    assert_eq!(reports.import_nki(good).await.unwrap().into_inner().imported, 1);
    let report = report_when(&app, Who::Naringslivschef, 4).await;
    assert_eq!(row(&report, "bygg", "bygglov").nki, Some(71.0));
    assert_eq!(row(&report, "tillst", "servering").nki, None);

    // Drop and rebuild the read models from the stream, with insight stopped: the same figures.
    app.stop_insight().await;
    let pool = lots_platform::db::connect(&app.db.service_url(), lots_insight::app::SCHEMA, 2, Duration::from_secs(5))
        .await
        .unwrap();
    let tenants = app.tenants();
    let rebuilt = lots_platform::db::scoped(
        lots_platform::db::SYSTEM,
        lots_insight::rebuild::rebuild(&pool, &app.js, &app.subjects, &tenants, false),
    )
    .await
    .unwrap();
    assert_eq!(rebuilt.waiting, 0);
    assert!(rebuilt.applied >= 12, "{rebuilt:?}");
    app.start_insight().await;
    let again = report_when(&app, Who::Naringslivschef, 4).await;
    assert_eq!(again, report, "a rebuild gives identical figures (NKI stays: it is imported, not derived)");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_insikt_case_list_holds_only_closed_company_cases_of_the_period_in_the_configured_columns() {
    let app = spawn().await;
    let ab = app.register_in(TENANT, request(&app, "i-ab", "bygglov", "556036-0793", "Bygg & Co AB")).await.unwrap();
    let sole =
        app.register_in(TENANT, request(&app, "i-ef", "bygglov", "19121212-1212", "Tolvans Bygg")).await.unwrap();
    let open =
        app.register_in(TENANT, request(&app, "i-open", "servering", "556036-0793", "Bygg & Co AB")).await.unwrap();
    let advice =
        app.register_in(TENANT, request(&app, "i-rad", "radgivning", "556036-0793", "Bygg & Co AB")).await.unwrap();
    let late = app.register_in(TENANT, request(&app, "i-late", "servering", "556677-8899", "Sent AB")).await.unwrap();
    app.clock.set(local("2026-09-10 10:00"));
    for case in [&ab, &sole, &advice] {
        app.close(&case.id, "Beviljat").await.unwrap();
    }
    app.clock.set(local("2026-10-01 09:00"));
    app.close(&late.id, "Beviljat").await.unwrap();
    let _ = &open;

    let mut reports = app.reports_as(TENANT, Who::Naringslivschef).await;
    let req = pb::ExportInsiktRequest { from: "2026-09-01".into(), to: "2026-09-30".into() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let export = loop {
        let export = reports.export_insikt(req.clone()).await.unwrap().into_inner();
        // Wait until insight has seen the last close (outside the period): then all are in.
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM cases WHERE decided_at IS NOT NULL")
            .fetch_one(app.insight_pool())
            .await
            .unwrap();
        if seen == 4 {
            break reports.export_insikt(req.clone()).await.unwrap().into_inner();
        }
        assert!(tokio::time::Instant::now() < deadline, "insight saw {seen} closes: {export:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(export.rows, 1);
    let text = String::from_utf8(export.csv).unwrap();
    assert!(text.starts_with('\u{feff}'), "UTF-8 with a byte order mark, for Excel");
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines,
        [
            "Ärendenummer;Område;Beslutsdatum;Organisationsnummer;Företagsnamn;E-post",
            &format!("{};Bygglov;2026-09-10;556036-0793;Bygg & Co AB;sara@knappingsborg.se", ab.reference),
        ]
    );
    assert!(!text.contains("19121212"), "a sole trader's personnummer never reaches insight");
    let bad = pb::ExportInsiktRequest { from: "2026-09-31".into(), to: "2026-09-30".into() };
    assert_eq!(violated_fields(&reports.export_insikt(bad).await.unwrap_err()), ["from"]);
    // The list carries contacts: only the näringslivschef and admin may take it.
    let err = app.reports_as(TENANT, Who::Manager("bchef".into())).await.export_insikt(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // No event carried the sole trader's number.
    for msg in app.read_events("case.registered").await {
        assert!(!String::from_utf8_lossy(&msg.payload).contains("19121212"));
    }
}
