//! Klagomål and company visits: their own servicegaranti (acknowledge, answer, follow-ups),
//! kept by sla on the working-day calendar like a case's, through gRPC as users see it.

use std::time::Duration;

use lots_proto::v1 as pb;
use lots_testkit::TestNats;
use pb::complaint_service_client::ComplaintServiceClient;
use pb::visit_service_client::VisitServiceClient;

use crate::helpers::*;

const TENANT: &str = "9996";

const CONFIG: &str = r#"
kommunkod = "9996"
name = "Klagokommun"
reference_prefix = "KLG"
naringslivschef = "chef"
office_hours = { start = "08:00", end = "16:30" }

[[units]]
id = "ledning"
name = "Näringslivskontoret"
manager = "chef"

[[units]]
id = "u"
name = "Enheten"
manager = "boss"

[[officers]]
id = "chef"
name = "Näringslivschefen"
email = "chef@klago.se"
unit = "ledning"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "boss"
name = "Enhetschefen"
email = "boss@klago.se"
unit = "u"
competences = ["ledning"]
capacity = 10

[[officers]]
id = "handl"
name = "Handläggaren"
email = "handl@klago.se"
unit = "u"
competences = ["r"]
capacity = 100

[commitments.first_contact]
name = "Första kontakt inom 8 arbetstimmar"
starts_on = "case.registered"
stops_on = ["task.accepted"]
target = { working_hours = 8 }

[[case_types]]
key = "radgivning"
name = "Rådgivning"
seats = [{ competence = "r" }]
meeting_minutes = 30
min_notice_hours = 48
commitments = ["first_contact"]

[visits]
yearly_target = 100
"#;

type Complaints = ComplaintServiceClient<lots_platform::auth::AuthedChannel>;
type Visits = VisitServiceClient<lots_platform::auth::AuthedChannel>;

async fn spawn() -> TestApp {
    let options = Options {
        routing: false,
        sla: true,
        now: Some("2026-09-07 08:00"),
        extra_tenants: vec![CONFIG.to_owned()],
        ..Default::default()
    };
    TestApp::spawn_with(TestNats::start().unwrap(), options).await
}

async fn complaints(app: &TestApp, who: Who) -> Complaints {
    ComplaintServiceClient::new(app.channel_as(app.addr, TENANT, who).await)
}

async fn visits(app: &TestApp, who: Who) -> Visits {
    VisitServiceClient::new(app.channel_as(app.addr, TENANT, who).await)
}

fn complaint(key: &str) -> pb::RegisterComplaintRequest {
    pb::RegisterComplaintRequest {
        idempotency_key: key.into(),
        category: pb::ComplaintCategory::Bemotande as i32,
        channel: pb::Channel::Phone as i32,
        about: Some(pb::ComplaintAbout { unit: "u".into(), ..Default::default() }),
        description: "Blev otrevligt bemött i telefon".into(),
        anonymous: false,
        contact: Some(pb::Contact { name: "Sara Holm".into(), phone: "070-123 45 67".into(), email: String::new() }),
        org_nr: "556036-0793".into(),
        company_name: "Knäppingsborgs Krog AB".into(),
        secrecy: false,
    }
}

/// The alerts sla fired for `reference` so far as "kind:commitment:recipient:level", after
/// waiting until there are at least `settle`.
async fn alerts(app: &TestApp, reference: &str, settle: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<(String, String, String, i32)> = sqlx::query_as(
            "SELECT kind, commitment, recipient, level FROM alerts WHERE reference LIKE $1 || '%'
             ORDER BY due_at, severity, level, commitment",
        )
        .bind(reference)
        .fetch_all(app.sla_pool())
        .await
        .unwrap();
        if rows.len() >= settle || tokio::time::Instant::now() > deadline {
            return rows.into_iter().map(|r| format!("{}:{}:{}:{}", r.0, r.1, r.2, r.3)).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The clocks sla keeps for a complaint or follow-up, by commitment: (state, due), once `n` exist.
async fn clock_states(app: &TestApp, id: &str, n: usize) -> Vec<(String, String, chrono::DateTime<chrono::Utc>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<(String, String, Option<chrono::DateTime<chrono::Utc>>)> =
            sqlx::query_as("SELECT commitment, state, due_at FROM clocks WHERE case_id = $1::uuid ORDER BY commitment")
                .bind(id)
                .fetch_all(app.sla_pool())
                .await
                .unwrap();
        if rows.len() >= n || tokio::time::Instant::now() > deadline {
            return rows.into_iter().map(|r| (r.0, r.1, r.2.unwrap_or_default())).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the clock of `commitment` on `id` is in `state`.
async fn clock_in(app: &TestApp, id: &str, commitment: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Option<String> =
            sqlx::query_scalar("SELECT state FROM clocks WHERE case_id = $1::uuid AND commitment = $2")
                .bind(id)
                .bind(commitment)
                .fetch_optional(app.sla_pool())
                .await
                .unwrap();
        if found.as_deref() == Some(state) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{commitment} is {found:?}, not {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complaint_acknowledged_late_is_warned_breached_and_escalated_and_its_answer_in_time_is_met() {
    let app = spawn().await;
    let mut reception = complaints(&app, Who::Reception).await;
    let c = reception.register_complaint(complaint("k-1")).await.unwrap().into_inner();
    assert!(c.reference.starts_with("KLG-K-2026-"), "{}", c.reference);
    assert_eq!((c.handler.as_str(), c.handler_unit.as_str()), ("boss", "u"), "the unit's manager handles it");
    assert_eq!(c.status, pb::ComplaintStatus::Registered as i32);
    let again = reception.register_complaint(complaint("k-1")).await.unwrap().into_inner();
    assert_eq!(again.id, c.id, "a retry with the same key returns the first complaint");

    // Acknowledge within 2 working days (17 h): due Tuesday 16:30; answer within 10: in two weeks.
    let clocks = clock_states(&app, &c.id, 2).await;
    assert_eq!(clocks[0].0, "klagomal_bekraftelse");
    assert_eq!(clocks[0].2, local("2026-09-08 16:30"));
    assert_eq!(clocks[1].0, "klagomal_svar");
    assert_eq!(clocks[1].2, local("2026-09-18 16:30"));

    app.clock.set(local("2026-09-08 16:30"));
    let ack = "klagomal_bekraftelse";
    let expected = [
        format!("warning:{ack}:boss:50"),
        format!("warning:{ack}:boss:75"),
        format!("breached:{ack}:boss:0"),
        format!("escalated:{ack}:boss:1"),
    ];
    assert_eq!(alerts(&app, &c.reference, 4).await, expected);
    // Eight working hours after the breach the näringslivschef is reached.
    app.clock.set(local("2026-09-09 16:00"));
    let fired = alerts(&app, &c.reference, 5).await;
    assert_eq!(fired[4], format!("escalated:{ack}:chef:2"));

    // The handler acknowledges late, then answers well within ten working days.
    app.clock.set(local("2026-09-09 16:10"));
    let mut boss = complaints(&app, Who::Manager("boss".into())).await;
    let req = pb::AcknowledgeComplaintRequest { complaint_id: c.id.clone(), idempotency_key: "ack-1".into() };
    let acked = boss.acknowledge_complaint(req.clone()).await.unwrap().into_inner();
    assert_eq!(acked.status, pb::ComplaintStatus::Acknowledged as i32);
    let retried = boss.acknowledge_complaint(req).await.unwrap().into_inner();
    assert_eq!(retried.version, acked.version, "a retried acknowledgement changes nothing");
    clock_in(&app, &c.id, ack, "met_late").await;

    let mut handl = complaints(&app, Who::Officer("handl".into())).await;
    let answer = pb::AnswerComplaintRequest {
        complaint_id: c.id.clone(),
        answer: "Vi ber om ursäkt.".into(),
        action_taken: "Samtal med personalen om bemötande".into(),
        idempotency_key: String::new(),
    };
    let refused = handl.answer_complaint(answer.clone()).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::NotFound,
        "a handläggare of the unit does not see the unit manager's complaint"
    );
    app.clock.set(local("2026-09-10 09:00"));
    let answered = boss.answer_complaint(answer).await.unwrap().into_inner();
    assert_eq!(answered.status, pb::ComplaintStatus::Answered as i32);
    assert_eq!(answered.action_taken, "Samtal med personalen om bemötande");
    clock_in(&app, &c.id, "klagomal_svar", "met").await;
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE case_id = $1::uuid AND open")
        .bind(&c.id)
        .fetch_one(app.sla_pool())
        .await
        .unwrap();
    assert_eq!(open, 0, "met commitments leave no open alert");
    let closed = boss
        .close_complaint(pb::CloseComplaintRequest { complaint_id: c.id.clone(), idempotency_key: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.status, pb::ComplaintStatus::Closed as i32);
    let events = app.events_of(TENANT, "complaint.*", 4).await;
    let kinds: Vec<String> = events.iter().map(|m| envelope(m)["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["complaint.registered", "complaint.acknowledged", "complaint.answered", "complaint.closed"]);
    for m in &events {
        let text = String::from_utf8_lossy(&m.payload);
        assert!(!text.contains("556036") && !text.contains("Sara Holm"), "no number or contact in events: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anonymous_complaint_keeps_no_contact_and_owes_no_answer_and_one_about_a_case_links_to_it() {
    let app = spawn().await;
    let mut reception = complaints(&app, Who::Reception).await;
    let mut req = complaint("anon-1");
    req.anonymous = true;
    let refused = reception.register_complaint(req.clone()).await.unwrap_err();
    let named = ["contact", "org_nr", "company_name"];
    assert_eq!(violated_fields(&refused), named, "an anonymous complaint carries nothing that names the complainant");
    req.contact = None;
    req.org_nr.clear();
    req.company_name.clear();
    let c = reception.register_complaint(req).await.unwrap().into_inner();
    assert!(c.anonymous && c.contact.is_none());
    let stored: (String, String, String) =
        sqlx::query_as("SELECT contact_name, contact_phone, contact_email FROM complaints WHERE id = $1::uuid")
            .bind(&c.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, (String::new(), String::new(), String::new()));
    let clocks = clock_states(&app, &c.id, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(clock_states(&app, &c.id, 1).await.len(), 1, "only the acknowledgement: {clocks:?}");
    let mut boss = complaints(&app, Who::Manager("boss".into())).await;
    let id = c.id.clone();
    let ack = pb::AcknowledgeComplaintRequest { complaint_id: id.clone(), idempotency_key: String::new() };
    boss.acknowledge_complaint(ack).await.unwrap();
    let answer = pb::AnswerComplaintRequest {
        complaint_id: id.clone(),
        answer: "x".into(),
        action_taken: "y".into(),
        ..Default::default()
    };
    let refused = boss.answer_complaint(answer).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let close = pb::CloseComplaintRequest { complaint_id: id.clone(), idempotency_key: String::new() };
    assert_eq!(boss.close_complaint(close).await.unwrap().into_inner().status, pb::ComplaintStatus::Closed as i32);

    let mut case_req = app.restaurant("case-1");
    case_req.case_type = "radgivning".into();
    let case = app.register_in(TENANT, case_req).await.unwrap();
    let mut about_case = complaint("about-case");
    about_case.about = Some(pb::ComplaintAbout { case: case.reference.clone(), ..Default::default() });
    about_case.category = pb::ComplaintCategory::Handlaggningstid as i32;
    let linked = reception.register_complaint(about_case).await.unwrap().into_inner();
    assert_eq!(
        (linked.about_case_id.as_str(), linked.about_case_reference.as_str()),
        (case.id.as_str(), case.reference.as_str())
    );
    let list = pb::ListComplaintsRequest { about_case: case.reference.clone(), ..Default::default() };
    let found = reception.list_complaints(list).await.unwrap().into_inner().complaints;
    assert_eq!(found.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), [linked.id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complaint_about_an_officer_goes_to_their_manager_and_is_never_handed_to_them() {
    let app = spawn().await;
    let mut req = complaint("about-handl");
    req.about = Some(pb::ComplaintAbout { officer: "handl".into(), ..Default::default() });
    let c = complaints(&app, Who::Reception).await.register_complaint(req).await.unwrap().into_inner();
    assert_eq!(c.handler, "boss");
    let mut boss = complaints(&app, Who::Manager("boss".into())).await;
    let to = |handler: &str| pb::ReassignComplaintRequest {
        complaint_id: c.id.clone(),
        handler: handler.into(),
        reason: "Jäv".into(),
        idempotency_key: String::new(),
    };
    let refused = boss.reassign_complaint(to("handl")).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["handler"]);
    let moved = boss.reassign_complaint(to("chef")).await.unwrap().into_inner();
    assert_eq!((moved.handler.as_str(), moved.handler_unit.as_str()), ("chef", "ledning"));
    let reason: Option<String> = sqlx::query_scalar("SELECT reassign_reason FROM complaints WHERE id = $1::uuid")
        .bind(&c.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("Jäv"), "intake keeps the reason; the event does not carry it");
    // From now on sla warns the new handler.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let officer: Option<String> = sqlx::query_scalar("SELECT officer_id FROM cases WHERE id = $1::uuid")
            .bind(&c.id)
            .fetch_optional(app.sla_pool())
            .await
            .unwrap()
            .flatten();
        if officer.as_deref() == Some("chef") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sla still has {officer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut handl = complaints(&app, Who::Officer("handl".into())).await;
    let lookup = Some(pb::get_complaint_request::Lookup::Id(c.id.clone()));
    let read = handl.get_complaint(pb::GetComplaintRequest { lookup }).await;
    assert_eq!(read.unwrap_err().code(), tonic::Code::NotFound, "the officer complained about does not read it");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_complaints_and_visits_name_every_bad_field_and_store_nothing() {
    let app = spawn().await;
    let mut reception = complaints(&app, Who::Reception).await;
    let bad = pb::RegisterComplaintRequest {
        idempotency_key: "bad".into(),
        category: 0,
        channel: 0,
        about: Some(pb::ComplaintAbout { unit: "nowhere".into(), officer: "handl".into(), ..Default::default() }),
        description: " ".into(),
        contact: Some(pb::Contact { name: "A".into(), phone: "12".into(), email: "not-mail".into() }),
        org_nr: "556036-0794".into(),
        ..Default::default()
    };
    let err = reception.register_complaint(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let fields = violated_fields(&err);
    for f in ["category", "channel", "about", "about.unit", "description", "contact.email", "contact.phone", "org_nr"] {
        assert!(fields.contains(&f.to_owned()), "{f} not named in {fields:?}");
    }
    let mut handl = visits(&app, Who::Officer("handl".into())).await;
    let bad = pb::RegisterVisitRequest {
        idempotency_key: "bad-visit".into(),
        org_nr: "".into(),
        company_name: "Bolaget".into(),
        date: "2026-09-08".into(),
        kind: 0,
        participants: vec!["nobody".into()],
        topics: vec!["fiske".into()],
        follow_ups: vec![pb::NewFollowUp { what: "x".into(), owner: "handl".into(), due_date: "2026-09-01".into() }],
        ..Default::default()
    };
    let err = handl.register_visit(bad).await.unwrap_err();
    let fields = violated_fields(&err);
    for f in ["org_nr", "date", "kind", "participants", "topics", "follow_ups.due_date"] {
        assert!(fields.contains(&f.to_owned()), "{f} not named in {fields:?}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT (SELECT count(*) FROM complaints) + (SELECT count(*) FROM visits)")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let reception_visits = visits(&app, Who::Reception).await.register_visit(pb::RegisterVisitRequest::default()).await;
    assert_eq!(
        reception_visits.unwrap_err().code(),
        tonic::Code::PermissionDenied,
        "reception does not register visits"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visit_with_two_follow_ups_one_done_in_time_and_one_breached_and_escalated_counts_toward_the_target() {
    let app = spawn().await;
    let mut handl = visits(&app, Who::Officer("handl".into())).await;
    let req = pb::RegisterVisitRequest {
        idempotency_key: "v-1".into(),
        org_nr: "556036-0793".into(),
        company_name: "Knäppingsborgs Krog AB".into(),
        date: "2026-09-07".into(),
        kind: pb::VisitKind::Lotsande as i32,
        participants: vec!["handl".into(), "boss".into()],
        company_participants: vec![pb::Participant { name: "Sara Holm".into(), role: "VD".into() }],
        topics: vec!["etablering".into(), "lokaler".into()],
        notes: "Vill växa med en andra restaurang".into(),
        follow_ups: vec![
            pb::NewFollowUp { what: "Skicka checklistan".into(), owner: "handl".into(), due_date: "2026-09-07".into() },
            pb::NewFollowUp { what: "Boka dukat bord".into(), owner: "handl".into(), due_date: "2026-09-09".into() },
        ],
        story: Some(pb::CompanyStory { text: "Vi fick hjälp direkt".into(), consent_to_publish: true }),
    };
    let v = handl.register_visit(req.clone()).await.unwrap().into_inner();
    let mut other = req.clone();
    other.notes = "Något annat".into();
    assert_eq!(handl.register_visit(other).await.unwrap_err().code(), tonic::Code::AlreadyExists, "key reused");
    assert!(v.reference.starts_with("KLG-B-2026-"), "{}", v.reference);
    assert_eq!(v.follow_ups.len(), 2);
    assert_eq!(handl.register_visit(req.clone()).await.unwrap().into_inner().id, v.id, "retry returns the first visit");
    let (first, second) = (v.follow_ups[0].id.clone(), v.follow_ups[1].id.clone());
    assert_eq!(clock_states(&app, &first, 1).await[0].2, local("2026-09-07 16:30"), "due at the end of its day");
    assert_eq!(clock_states(&app, &second, 1).await[0].2, local("2026-09-09 16:30"));

    app.clock.set(local("2026-09-07 11:00"));
    let done = pb::CompleteFollowUpRequest {
        visit_id: v.id.clone(),
        number: 1,
        note: "Skickad".into(),
        idempotency_key: "d-1".into(),
    };
    let after = handl.complete_follow_up(done).await.unwrap().into_inner();
    assert!(after.follow_ups[0].done && !after.follow_ups[1].done);
    clock_in(&app, &first, "uppfoljning", "met").await;

    let add = |key: &str| pb::AddFollowUpRequest {
        visit_id: v.id.clone(),
        follow_up: Some(pb::NewFollowUp {
            what: "Ring upp".into(),
            owner: "boss".into(),
            due_date: "2026-09-30".into(),
        }),
        idempotency_key: key.into(),
    };
    assert_eq!(violated_fields(&handl.add_follow_up(add("")).await.unwrap_err()), ["idempotency_key"]);
    let added = handl.add_follow_up(add("fu-3")).await.unwrap().into_inner();
    assert_eq!(handl.add_follow_up(add("fu-3")).await.unwrap().into_inner().follow_ups.len(), 3, "once per key");
    assert_eq!(added.follow_ups[2].owner_unit, "u");
    let outsider = visits(&app, Who::Naringslivschef).await.add_follow_up(add("fu-4")).await;
    assert!(outsider.is_ok(), "the näringslivschef may add follow-ups to any visit");

    app.clock.set(local("2026-09-10 16:00"));
    let late_retry = handl.register_visit(req.clone()).await.unwrap().into_inner();
    assert_eq!(late_retry.id, v.id, "a retry days later, when follow-up 1's due date has passed, still answers");
    let fired = alerts(&app, &format!("{} uppföljning 2", v.reference), 4).await;
    let expected = [
        "warning:uppfoljning:handl:75",
        "breached:uppfoljning:handl:0",
        "escalated:uppfoljning:handl:1",
        "escalated:uppfoljning:boss:2",
    ];
    assert_eq!(fired, expected, "the owner is warned, then their manager is reached");
    let met = alerts(&app, &format!("{} uppföljning 1", v.reference), 1).await;
    assert_eq!(met, ["met:uppfoljning:handl:0"]);

    let progress = handl.get_visit_progress(pb::GetVisitProgressRequest { year: 0 }).await.unwrap().into_inner();
    assert_eq!(
        (progress.year, progress.target, progress.lotsande_visits, progress.percent_of_target),
        (2026, 100, 1, 1)
    );
    assert_eq!((progress.follow_ups_open, progress.follow_ups_done, progress.follow_ups_overdue), (3, 1, 1));
    assert_eq!(progress.expected_by_today, 100 * 253 / 365, "2026-09-10 is day 253");
    let listed = handl.list_visits(pb::ListVisitsRequest::default()).await.unwrap().into_inner().visits;
    let numbers: Vec<u32> = listed[0].follow_ups.iter().map(|f| f.number).collect();
    assert_eq!((listed.len(), numbers), (1, vec![1, 2, 3, 4]), "a listed visit carries its follow-ups in order");
}
