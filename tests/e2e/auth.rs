//! Who may do what: bearer tokens from a real OpenID provider (tools/oidc), verified by every
//! service; the role matrix; tenants kept apart; officers kept to their own tasks.

use std::time::Duration;

use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lots_platform::auth::{Bearer, MATRIX, Role};
use lots_proto::v1 as pb;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::*;

const SMALL: &str = r#"
kommunkod = "9999"
name = "Provkommun"
reference_prefix = "PRV"
naringslivschef = "chef"

office_hours = { start = "08:00", end = "16:30" }

[[units]]
id = "radgivning"
name = "Rådgivning"
manager = "chef"

[[officers]]
id = "chef"
name = "Chef"
email = "chef@prov.se"
unit = "radgivning"
competences = ["radgivning"]
capacity = 100

[[officers]]
id = "a1"
name = "A Ett"
email = "a1@prov.se"
unit = "radgivning"
competences = ["radgivning"]
capacity = 100

[commitments.dukat_bord]
name = "Dukat bord"
starts_on = "case.registered"
stops_on = ["meeting.booked"]
target = { working_days = 5 }

[[case_types]]
key = "radgivning"
name = "Rådgivning"
seats = [{ competence = "radgivning" }]
meeting_minutes = 30
min_notice_hours = 1
commitments = ["dukat_bord"]
"#;

async fn spawn() -> TestApp {
    let options = Options {
        routing: true,
        sla: true,
        insight: true,
        extra_tenants: vec![SMALL.to_owned()],
        ..Default::default()
    };
    TestApp::spawn_with(lots_testkit::TestNats::start().unwrap(), options).await
}

/// Channels to the four services, sending `bearer` (or nothing).
struct Endpoints {
    intake: Channel,
    routing: Channel,
    sla: Channel,
    insight: Channel,
}

async fn endpoints(app: &TestApp) -> Endpoints {
    let connect = |addr: std::net::SocketAddr| async move {
        Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
    };
    Endpoints {
        intake: connect(app.addr).await,
        routing: connect(app.routing.as_ref().unwrap().addr).await,
        sla: connect(app.sla.as_ref().unwrap().addr).await,
        insight: connect(app.insight.as_ref().unwrap().addr).await,
    }
}

/// Calls `rpc` ("Service/Method") with an empty request, sending `bearer` if any, and returns
/// the status (OK when it answered, whatever the answer).
async fn call(e: &Endpoints, rpc: &str, bearer: Option<Bearer>) -> tonic::Status {
    use pb::alert_service_client::AlertServiceClient as A;
    use pb::case_status_service_client::CaseStatusServiceClient as S;
    use pb::complaint_service_client::ComplaintServiceClient as C;
    use pb::dead_letter_service_client::DeadLetterServiceClient as D;
    use pb::intake_service_client::IntakeServiceClient as I;
    use pb::officer_service_client::OfficerServiceClient as O;
    use pb::report_service_client::ReportServiceClient as Rep;
    use pb::task_service_client::TaskServiceClient as T;
    use pb::visit_service_client::VisitServiceClient as V;
    let with = |channel: &Channel| {
        let bearer = bearer.clone();
        tonic::service::interceptor::InterceptedService::new(channel.clone(), move |req: tonic::Request<()>| {
            match bearer.clone() {
                Some(mut b) => tonic::service::Interceptor::call(&mut b, req),
                None => Ok(req),
            }
        })
    };
    macro_rules! unary {
        ($client:expr, $method:ident, $req:ident) => {
            $client.$method(pb::$req::default()).await.map(|_| ())
        };
    }
    let result: Result<(), tonic::Status> = match rpc {
        "IntakeService/RegisterCase" => unary!(I::new(with(&e.intake)), register_case, RegisterCaseRequest),
        "IntakeService/GetCase" => unary!(I::new(with(&e.intake)), get_case, GetCaseRequest),
        "IntakeService/ListCases" => unary!(I::new(with(&e.intake)), list_cases, ListCasesRequest),
        "IntakeService/AwaitCompany" => unary!(I::new(with(&e.intake)), await_company, AwaitCompanyRequest),
        "IntakeService/ResumeCase" => unary!(I::new(with(&e.intake)), resume_case, ResumeCaseRequest),
        "IntakeService/CloseCase" => unary!(I::new(with(&e.intake)), close_case, CloseCaseRequest),
        "IntakeService/WithdrawCase" => unary!(I::new(with(&e.intake)), withdraw_case, WithdrawCaseRequest),
        "IntakeService/MarkApplicationComplete" => {
            unary!(I::new(with(&e.intake)), mark_application_complete, MarkApplicationCompleteRequest)
        }
        "IntakeService/ExtendDeadline" => unary!(I::new(with(&e.intake)), extend_deadline, ExtendDeadlineRequest),
        "TaskService/ListTasks" => unary!(T::new(with(&e.routing)), list_tasks, ListTasksRequest),
        "TaskService/WatchTasks" => unary!(T::new(with(&e.routing)), watch_tasks, WatchTasksRequest),
        "TaskService/AcceptTask" => unary!(T::new(with(&e.routing)), accept_task, AcceptTaskRequest),
        "TaskService/DeclineTask" => unary!(T::new(with(&e.routing)), decline_task, DeclineTaskRequest),
        "TaskService/CompleteTask" => unary!(T::new(with(&e.routing)), complete_task, CompleteTaskRequest),
        "TaskService/GetMeeting" => unary!(T::new(with(&e.routing)), get_meeting, GetMeetingRequest),
        "TaskService/ReassignCaseOwner" => {
            unary!(T::new(with(&e.routing)), reassign_case_owner, ReassignCaseOwnerRequest)
        }
        "DeadLetterService/ListDeadLetters" => {
            unary!(D::new(with(&e.intake)), list_dead_letters, ListDeadLettersRequest)
        }
        "DeadLetterService/GetDeadLetter" => unary!(D::new(with(&e.routing)), get_dead_letter, GetDeadLetterRequest),
        "DeadLetterService/ReplayDeadLetter" => {
            unary!(D::new(with(&e.sla)), replay_dead_letter, ReplayDeadLetterRequest)
        }
        "AuditService/ListAuditEntries" => pb::audit_service_client::AuditServiceClient::new(with(&e.sla))
            .list_audit_entries(pb::ListAuditEntriesRequest::default())
            .await
            .map(|_| ()),
        "AuditService/VerifyAuditChain" => pb::audit_service_client::AuditServiceClient::new(with(&e.routing))
            .verify_audit_chain(pb::VerifyAuditChainRequest {})
            .await
            .map(|_| ()),
        "DeadLetterService/SkipDeadLetter" => unary!(D::new(with(&e.intake)), skip_dead_letter, SkipDeadLetterRequest),
        "OfficerService/SetBusyTimes" => unary!(O::new(with(&e.routing)), set_busy_times, SetBusyTimesRequest),
        "OfficerService/SetAbsence" => unary!(O::new(with(&e.routing)), set_absence, SetAbsenceRequest),
        "AlertService/WatchAlerts" => unary!(A::new(with(&e.sla)), watch_alerts, WatchAlertsRequest),
        "AlertService/ListAlerts" => unary!(A::new(with(&e.sla)), list_alerts, ListAlertsRequest),
        "AlertService/GetCaseClocks" => unary!(A::new(with(&e.sla)), get_case_clocks, GetCaseClocksRequest),
        "ComplaintService/RegisterComplaint" => {
            unary!(C::new(with(&e.intake)), register_complaint, RegisterComplaintRequest)
        }
        "ComplaintService/GetComplaint" => unary!(C::new(with(&e.intake)), get_complaint, GetComplaintRequest),
        "ComplaintService/ListComplaints" => unary!(C::new(with(&e.intake)), list_complaints, ListComplaintsRequest),
        "ComplaintService/AcknowledgeComplaint" => {
            unary!(C::new(with(&e.intake)), acknowledge_complaint, AcknowledgeComplaintRequest)
        }
        "ComplaintService/AnswerComplaint" => unary!(C::new(with(&e.intake)), answer_complaint, AnswerComplaintRequest),
        "ComplaintService/CloseComplaint" => unary!(C::new(with(&e.intake)), close_complaint, CloseComplaintRequest),
        "ComplaintService/ReassignComplaint" => {
            unary!(C::new(with(&e.intake)), reassign_complaint, ReassignComplaintRequest)
        }
        "VisitService/RegisterVisit" => unary!(V::new(with(&e.intake)), register_visit, RegisterVisitRequest),
        "VisitService/GetVisit" => unary!(V::new(with(&e.intake)), get_visit, GetVisitRequest),
        "VisitService/ListVisits" => unary!(V::new(with(&e.intake)), list_visits, ListVisitsRequest),
        "VisitService/AddFollowUp" => unary!(V::new(with(&e.intake)), add_follow_up, AddFollowUpRequest),
        "VisitService/CompleteFollowUp" => unary!(V::new(with(&e.intake)), complete_follow_up, CompleteFollowUpRequest),
        "VisitService/GetVisitProgress" => unary!(V::new(with(&e.intake)), get_visit_progress, GetVisitProgressRequest),
        "CaseStatusService/GetCaseStatus" => unary!(S::new(with(&e.insight)), get_case_status, GetCaseStatusRequest),
        "ReportService/GetGuaranteeReport" => {
            unary!(Rep::new(with(&e.insight)), get_guarantee_report, GuaranteeReportRequest)
        }
        "ReportService/ListGuaranteeCases" => {
            unary!(Rep::new(with(&e.insight)), list_guarantee_cases, ListGuaranteeCasesRequest)
        }
        "ReportService/ExportInsikt" => unary!(Rep::new(with(&e.insight)), export_insikt, ExportInsiktRequest),
        "ReportService/ImportNki" => unary!(Rep::new(with(&e.insight)), import_nki, ImportNkiRequest),
        other => panic!("the test does not know {other}"),
    };
    result.err().unwrap_or_else(|| tonic::Status::ok(""))
}

fn refused_for_role(status: &tonic::Status) -> bool {
    status.code() == Code::PermissionDenied && status.message().contains("not allowed for this caller's role")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_but_health_and_reflection_refuses_an_anonymous_call() {
    let app = spawn().await;
    let e = endpoints(&app).await;
    for (rpc, _) in MATRIX {
        let status = call(&e, rpc, None).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc} answered an anonymous call: {status:?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_may_call_exactly_the_rpcs_of_the_matrix() {
    let app = spawn().await;
    let e = endpoints(&app).await;
    let nkp = app.tenants().get(NKP).cloned().unwrap();
    let manager = nkp.units[0].manager.clone();
    let officer = nkp.officers.iter().find(|o| !nkp.units.iter().any(|u| u.manager == o.id)).unwrap().id.clone();
    let people = [
        (Who::Reception, Role::Reception),
        (Who::Officer(officer), Role::Handlaggare),
        (Who::Manager(manager), Role::Enhetschef),
        (Who::Naringslivschef, Role::Naringslivschef),
        (Who::Integrator, Role::Integrator),
        (Who::Admin, Role::Admin),
    ];
    // Written out from the issue, independently of lots_platform::auth::MATRIX:
    // R reception, H handläggare, E enhetschef, N näringslivschef, A admin; I integrator (by config).
    let expected: &[(&str, &str)] = &[
        ("IntakeService/RegisterCase", "RI"),
        ("IntakeService/GetCase", "RHENIA"),
        ("IntakeService/ListCases", "RHENA"),
        ("IntakeService/AwaitCompany", "R"),
        ("IntakeService/ResumeCase", "R"),
        ("IntakeService/CloseCase", "R"),
        ("IntakeService/WithdrawCase", "R"),
        ("IntakeService/MarkApplicationComplete", "R"),
        ("IntakeService/ExtendDeadline", "R"),
        ("TaskService/ListTasks", "HE"),
        ("TaskService/WatchTasks", "HE"),
        ("TaskService/AcceptTask", "H"),
        ("TaskService/DeclineTask", "H"),
        ("TaskService/CompleteTask", "H"),
        ("TaskService/GetMeeting", "RHEN"),
        ("TaskService/ReassignCaseOwner", "EN"),
        ("DeadLetterService/ListDeadLetters", "A"),
        ("DeadLetterService/GetDeadLetter", "A"),
        ("DeadLetterService/ReplayDeadLetter", "A"),
        ("DeadLetterService/SkipDeadLetter", "A"),
        ("AuditService/VerifyAuditChain", "A"),
        ("AuditService/ListAuditEntries", "A"),
        ("OfficerService/SetBusyTimes", "HEA"),
        ("OfficerService/SetAbsence", "HEA"),
        ("AlertService/WatchAlerts", "EN"),
        ("AlertService/ListAlerts", "EN"),
        ("AlertService/GetCaseClocks", "REN"),
        ("ComplaintService/RegisterComplaint", "RHEN"),
        ("ComplaintService/GetComplaint", "RHENA"),
        ("ComplaintService/ListComplaints", "RHENA"),
        ("ComplaintService/AcknowledgeComplaint", "HEN"),
        ("ComplaintService/AnswerComplaint", "HEN"),
        ("ComplaintService/CloseComplaint", "HEN"),
        ("ComplaintService/ReassignComplaint", "EN"),
        ("VisitService/RegisterVisit", "HEN"),
        ("VisitService/GetVisit", "RHENA"),
        ("VisitService/ListVisits", "RHENA"),
        ("VisitService/AddFollowUp", "HEN"),
        ("VisitService/CompleteFollowUp", "HEN"),
        ("VisitService/GetVisitProgress", "RHENA"),
        // The example lets its integrator (the e-service portal) read a case's status.
        ("CaseStatusService/GetCaseStatus", "RHENI"),
        ("ReportService/GetGuaranteeReport", "ENA"),
        ("ReportService/ListGuaranteeCases", "ENA"),
        ("ReportService/ExportInsikt", "NA"),
        ("ReportService/ImportNki", "NA"),
    ];
    assert_eq!(expected.len(), MATRIX.len(), "every RPC is in the table");
    for (who, role) in people {
        let letter = match role {
            Role::Reception => 'R',
            Role::Handlaggare => 'H',
            Role::Enhetschef => 'E',
            Role::Naringslivschef => 'N',
            Role::Integrator => 'I',
            Role::Admin => 'A',
        };
        let bearer = app.bearer(NKP, who.clone()).await;
        for (rpc, allowed) in expected {
            let allowed = allowed.contains(letter);
            let status = call(&e, rpc, Some(bearer.clone())).await;
            assert_ne!(status.code(), Code::Unauthenticated, "{who:?} on {rpc}: {status:?}");
            assert_eq!(refused_for_role(&status), !allowed, "{who:?} on {rpc}: {status:?}");
        }
    }
}

/// The provider's current key id.
fn kid(app: &TestApp) -> String {
    let keys: serde_json::Value = serde_json::from_slice(&std::fs::read(app.oidc.keys_file()).unwrap()).unwrap();
    keys["keys"][0]["kid"].as_str().unwrap().to_owned()
}

/// A token signed with the provider's real key, with claims the test chooses.
fn forged(app: &TestApp, alg: Algorithm, claims: serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid(app));
    header.typ = Some("at+jwt".into());
    let key = EncodingKey::from_rsa_pem(&app.oidc.private_key_pem().unwrap()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(app: &TestApp, tenant: &str, from_now: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": app.oidc.issuer(tenant), "sub": "reception", "aud": "lots", "iat": now,
        "exp": now + from_now, "lots_role": "reception", "client_id": "lots-test"
    })
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_and_change_nothing() {
    let app = spawn().await;
    let e = endpoints(&app).await;
    let good = app.oidc.token(NKP, &Who::Reception).await.unwrap();
    // The forged tokens below are right in everything but what each case names.
    let sound = forged(&app, Algorithm::RS256, claims(&app, NKP, 600));
    assert_eq!(call(&e, "IntakeService/ListCases", Some(Bearer::new(&sound).unwrap())).await.code(), Code::Ok);

    let mut cases: Vec<(&str, String)> = Vec::new();
    cases.push(("expired beyond the leeway", forged(&app, Algorithm::RS256, claims(&app, NKP, -120))));
    let mut early = claims(&app, NKP, 600);
    early["nbf"] = json!(chrono::Utc::now().timestamp() + 300);
    cases.push(("not yet valid", forged(&app, Algorithm::RS256, early)));
    let mut audience = claims(&app, NKP, 600);
    audience["aud"] = json!("another-api");
    cases.push(("wrong audience", forged(&app, Algorithm::RS256, audience)));
    let mut issuer = claims(&app, NKP, 600);
    issuer["iss"] = json!("https://idp.example.org/unknown");
    cases.push(("unknown issuer", forged(&app, Algorithm::RS256, issuer)));
    let parts: Vec<&str> = good.split('.').collect();
    let none_header = b64(br#"{"alg":"none","typ":"at+jwt"}"#);
    cases.push(("alg none", format!("{none_header}.{}.", parts[1])));
    let public = std::fs::read_to_string(app.oidc.keys_file()).unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid(&app));
    let hs256 = jsonwebtoken::encode(&hs, &claims(&app, NKP, 600), &EncodingKey::from_secret(public.as_bytes()));
    cases.push(("HS256 signed with the public key", hs256.unwrap()));
    let mut sig = parts[2].to_owned().into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    cases.push(("tampered signature", format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap())));
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1]).unwrap(),
    )
    .unwrap();
    payload["lots_role"] = json!("admin");
    cases.push(("tampered claims", format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2])));
    cases.push(("not a token", "hello".into()));

    for (what, token) in cases {
        let status = call(&e, "IntakeService/RegisterCase", Some(Bearer::new(&token).unwrap())).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    // A malformed Authorization header.
    let mut client = pb::intake_service_client::IntakeServiceClient::with_interceptor(
        e.intake.clone(),
        |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", "Basic cmVjZXB0aW9uOng=".parse().unwrap());
            Ok(req)
        },
    );
    let status = client.register_case(app.restaurant("x")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 0, "a refused call changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_signing_key_is_picked_up_without_restarting_lotsen() {
    let mut app = spawn().await;
    app.register(app.restaurant("r-1")).await.unwrap();
    app.oidc.rotate_key().unwrap();
    // Lotsen refetches the issuer's keys on an unknown key id, at most every few seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let fresh = app.intake_as(NKP, Who::Reception).await;
    fresh.clone().register_case(app.restaurant("r-2")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_case_is_as_unknown_as_none_by_id_and_by_reference() {
    let app = spawn().await;
    let case = app.register(app.restaurant("t-1")).await.unwrap();
    let mut other = app.intake_as("9999", Who::Reception).await;
    for lookup in [
        pb::get_case_request::Lookup::Id(case.id.clone()),
        pb::get_case_request::Lookup::Reference(case.reference.clone()),
    ] {
        let err = other.get_case(pb::GetCaseRequest { lookup: Some(lookup) }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    let listed = other.list_cases(pb::ListCasesRequest::default()).await.unwrap().into_inner();
    assert!(listed.cases.is_empty(), "9999's reception sees Norrköping's cases");
    let err = other.close_case(pb::CloseCaseRequest {
        case_id: case.id.clone(),
        outcome: pb::Outcome::Granted as i32,
        decision: "Beviljas".into(),
        ..Default::default()
    });
    assert_eq!(err.await.unwrap_err().code(), Code::NotFound);
    assert_ne!(app.get(&case.id).await.status, pb::CaseStatus::Closed as i32, "nothing changed");
    let mut alerts = app.alerts_as("9999", Who::Naringslivschef).await;
    let lookup = Some(pb::get_case_clocks_request::Lookup::CaseId(case.id.clone()));
    let clocks = alerts.get_case_clocks(pb::GetCaseClocksRequest { lookup }).await;
    assert_eq!(clocks.unwrap_err().code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handlaggare_sees_only_their_own_tasks_and_a_manager_their_units() {
    let app = spawn().await;
    let case = app.register_in("9999", {
        let mut r = app.restaurant("h-1");
        r.case_type = "radgivning".into();
        r
    });
    let case = case.await.unwrap();
    app.eventually(&case.id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    let mut a1 = app.tasks("9999/a1").await;
    let own = a1.list_tasks(pb::ListTasksRequest::default()).await;
    let theirs = a1.list_tasks(pb::ListTasksRequest { officer_id: "chef".into(), ..Default::default() }).await;
    assert_eq!(theirs.unwrap_err().code(), Code::PermissionDenied);
    let watch = a1.watch_tasks(pb::WatchTasksRequest { officer_id: "chef".into(), ..Default::default() }).await;
    assert_eq!(watch.err().map(|s| s.code()), Some(Code::PermissionDenied));
    // The unit's manager may look at a1's list: the same tasks a1 sees.
    let routing = app.routing.as_ref().unwrap().addr;
    let mut chef = pb::task_service_client::TaskServiceClient::new(
        app.channel_as(routing, "9999", Who::Manager("chef".into())).await,
    );
    let seen = chef.list_tasks(pb::ListTasksRequest { officer_id: "a1".into(), ..Default::default() }).await;
    assert_eq!(seen.unwrap().into_inner().tasks.len(), own.unwrap().into_inner().tasks.len());
    // Norrköping's managers are strangers here.
    let nkp_manager = app.tenants().get(NKP).unwrap().units[0].manager.clone();
    let mut stranger =
        pb::task_service_client::TaskServiceClient::new(app.channel_as(routing, NKP, Who::Manager(nkp_manager)).await);
    let err = stranger.list_tasks(pb::ListTasksRequest { officer_id: "a1".into(), ..Default::default() }).await;
    assert_eq!(err.unwrap_err().code(), Code::PermissionDenied);
    // A handläggare may not set another officer's busy time; the manager may.
    let mut officers = app.officers_as("9999", Who::Officer("a1".into())).await;
    let busy = |officer: &str| pb::SetBusyTimesRequest {
        officer_id: officer.into(),
        source: "exchange".into(),
        busy: Vec::new(),
        ..Default::default()
    };
    assert_eq!(officers.set_busy_times(busy("chef")).await.unwrap_err().code(), Code::PermissionDenied);
    officers.set_busy_times(busy("")).await.unwrap();
    app.officers_as("9999", Who::Manager("chef".into())).await.set_busy_times(busy("a1")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_ends_unauthenticated_when_its_token_expires() {
    let app = spawn().await;
    let expires = chrono::Utc::now().timestamp() + 4;
    let nearly = forged(&app, Algorithm::RS256, {
        let mut c = claims(&app, NKP, 4);
        c["sub"] = json!("naringslivschef");
        c["lots_role"] = json!("naringslivschef");
        c
    });
    let channel = Channel::from_shared(format!("http://{}", app.sla.as_ref().unwrap().addr)).unwrap();
    let mut alerts = pb::alert_service_client::AlertServiceClient::with_interceptor(
        channel.connect().await.unwrap(),
        Bearer::new(&nearly).unwrap(),
    );
    let mut stream = alerts.watch_alerts(pb::WatchAlertsRequest::default()).await.unwrap().into_inner();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap();
    assert_eq!(end.unwrap().unwrap_err().code(), Code::Unauthenticated);
    // It ended because the token ran out, not at once.
    let ended = chrono::Utc::now().timestamp();
    assert!(ended >= expires, "ended at {ended}, before the token expired at {expires}");
}

/// Collects every log line of the process.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_log_line_holds_a_token() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,h2=info,hyper=info,tower=info"))
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();
    let app = spawn().await;
    let e = endpoints(&app).await;
    let good = app.oidc.token(NKP, &Who::Reception).await.unwrap();
    let expired = forged(&app, Algorithm::RS256, claims(&app, NKP, -300));
    // Allowed, refused for the role, and refused as expired: every path that logs.
    app.register(app.restaurant("l-1")).await.unwrap();
    call(&e, "AlertService/ListAlerts", Some(Bearer::new(&good).unwrap())).await;
    call(&e, "IntakeService/ListCases", Some(Bearer::new(&expired).unwrap())).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("call refused"), "refusals are logged");
    for token in [&good, &expired] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a token reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row_level_security_hides_other_tenants_from_a_query_without_a_tenant_filter() {
    use lots_platform::db;
    let app = spawn().await;
    app.register(app.restaurant("rls-1")).await.unwrap();
    let mut small = app.restaurant("rls-2");
    small.case_type = "radgivning".into();
    app.register_in("9999", small).await.unwrap();
    // The services' role, as they connect; the queries below forget their tenant filter.
    let url = app.db.service_url();
    let pool = db::connect(&url, lots_intake::app::SCHEMA, 2, Duration::from_secs(5)).await.unwrap();
    let count = || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cases").fetch_one(&pool).await.unwrap() };
    assert_eq!(count().await, 0, "outside any scope no tenant's rows are visible");
    assert_eq!(db::scoped("9999", count()).await, 1);
    assert_eq!(db::scoped(NKP, count()).await, 1);
    assert_eq!(db::scoped(db::SYSTEM, count()).await, 2);
    // Nor can a scoped connection write into another tenant.
    let moved =
        db::scoped("9999", sqlx::query("UPDATE cases SET tenant = '9999' WHERE tenant = '0581'").execute(&pool));
    assert_eq!(moved.await.unwrap().rows_affected(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handlaggare_reads_the_cases_they_sit_on_and_a_manager_those_of_their_units() {
    let app = spawn().await;
    let mut req = app.restaurant("seat-1");
    req.case_type = "radgivning".into();
    let case = app.register_in("9999", req).await.unwrap();
    app.eventually(&case.id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    let seated: Vec<String> = sqlx::query_scalar("SELECT officer_id FROM tasks WHERE case_id = $1::uuid")
        .bind(&case.id)
        .fetch_all(app.routing_pool())
        .await
        .unwrap();
    let lookup = || pb::GetCaseRequest { lookup: Some(pb::get_case_request::Lookup::Id(case.id.clone())) };
    // Intake records the seats from case.routed; it may take a moment.
    let sitter = app.intake_as("9999", Who::Officer(seated[0].clone())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sitter.clone().get_case(lookup()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the seated officer never saw the case");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = sitter.clone().list_cases(pb::ListCasesRequest::default()).await.unwrap().into_inner().cases;
    assert_eq!(listed.len(), 1);
    let other = if seated[0] == "a1" { "chef" } else { "a1" };
    let mut stranger = app.intake_as("9999", Who::Officer(other.into())).await;
    assert_eq!(stranger.get_case(lookup()).await.unwrap_err().code(), Code::NotFound);
    assert!(stranger.list_cases(pb::ListCasesRequest::default()).await.unwrap().into_inner().cases.is_empty());
    let mut manager = app.intake_as("9999", Who::Manager("chef".into())).await;
    manager.get_case(lookup()).await.unwrap();
    // The seated officer declines: the seat and the right to read move to the other one.
    let mut tasks = app.tasks(&format!("9999/{}", seated[0])).await;
    let task = tasks.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks.remove(0);
    let decline = pb::DeclineTaskRequest { task_id: task.id, reason: "Jävig".into(), ..Default::default() };
    tasks.decline_task(decline).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stranger.get_case(lookup()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the new officer never saw the case");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sitter.clone().get_case(lookup()).await.unwrap_err().code(), Code::NotFound);
}
