//! The case lifecycle: allowed transitions emit events, refused ones change nothing.

use lots_events::{CaseRouted, MeetingBooked};
use lots_proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

fn routed() -> CaseRouted {
    routed_stub(uuid::Uuid::now_v7(), chrono::Utc::now())
}

fn booked() -> MeetingBooked {
    let now = chrono::Utc::now();
    MeetingBooked { meeting_id: uuid::Uuid::now_v7(), starts_at: now, ends_at: now }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_goes_through_its_lifecycle_and_every_step_is_announced() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let id = case.id.as_str();

    let waiting = app.await_company(id, "Planritning saknas").await.unwrap();
    assert_eq!(status(&waiting), pb::CaseStatus::WaitingForCompany);
    assert_eq!(waiting.waiting_reason, "Planritning saknas");
    let err = app.await_company(id, "igen").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = app.close(id, "Beviljas").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a waiting case must be resumed first");

    let resumed = app.resume(id).await.unwrap();
    assert_eq!(status(&resumed), pb::CaseStatus::Registered);
    assert_eq!(app.resume(id).await.unwrap_err().code(), Code::FailedPrecondition);

    // Routing's events move the case on.
    app.publish_as_routing(id, 1, routed()).await;
    app.eventually(id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    app.publish_as_routing(id, 2, booked()).await;
    app.eventually(id, "meeting_booked", |c| status(c) == pb::CaseStatus::MeetingBooked).await;

    let err = app.close(id, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["decision"]);
    let closed = app.close(id, "Serveringstillstånd beviljas").await.unwrap();
    assert_eq!(status(&closed), pb::CaseStatus::Closed);
    assert_eq!(closed.decision, "Serveringstillstånd beviljas");
    assert_eq!(closed.outcome, pb::Outcome::Granted as i32);
    assert_eq!(app.withdraw(id, "ångrat sig").await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(app.await_company(id, "x").await.unwrap_err().code(), Code::FailedPrecondition);

    let mut seen = Vec::new();
    for kind in ["case.registered", "case.waiting_for_company", "case.resumed", "case.closed"] {
        for msg in app.events(kind, 1).await {
            let env = envelope(&msg);
            seen.push((env["version"].as_u64().unwrap(), env["type"].as_str().unwrap().to_owned()));
        }
    }
    seen.sort();
    let expected: Vec<(u64, String)> =
        [(1, "case.registered"), (2, "case.waiting_for_company"), (3, "case.resumed"), (4, "case.closed")]
            .into_iter()
            .map(|(v, k)| (v, k.to_owned()))
            .collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_case_cannot_change_again() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let err = app.withdraw(&case.id, " ").await.unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    let withdrawn = app.withdraw(&case.id, "Företaget har valt en annan lokal").await.unwrap();
    assert_eq!(status(&withdrawn), pb::CaseStatus::Withdrawn);
    for err in [
        app.resume(&case.id).await.unwrap_err(),
        app.await_company(&case.id, "x").await.unwrap_err(),
        app.close(&case.id, "x").await.unwrap_err(),
        app.withdraw(&case.id, "x").await.unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("withdrawn"), "{}", err.message());
    }
    let withdrawn_events = app.events("case.withdrawn", 1).await;
    assert_eq!(withdrawn_events.len(), 1);
    assert_eq!(envelope(&withdrawn_events[0])["data"]["reason"], "Företaget har valt en annan lokal");

    // Routing finishing late does not revive a withdrawn case.
    app.publish_as_routing(&case.id, 1, routed()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::Withdrawn);
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_while_waiting_is_kept_for_the_resume() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    app.await_company(&case.id, "Ritning saknas").await.unwrap();
    app.publish_as_routing(&case.id, 1, routed()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::WaitingForCompany);
    let resumed = app.resume(&case.id).await.unwrap();
    assert_eq!(status(&resumed), pb::CaseStatus::Routed);
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_requests_name_bad_fields_and_unknown_cases() {
    let app = TestApp::spawn().await;
    let err = app.resume("NKP-2026-000001").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["case_id"]);
    let err = app.resume(&uuid::Uuid::now_v7().to_string()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_close_with_its_key_is_applied_once_and_answers_with_the_case() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let close = |decision: &str| pb::CloseCaseRequest {
        case_id: case.id.clone(),
        outcome: pb::Outcome::Granted as i32,
        decision: decision.into(),
        idempotency_key: "close-1".into(),
    };
    let first = app.client.clone().close_case(close("Beviljas")).await.unwrap().into_inner();
    // The answer was lost; the client sends the same call again.
    let again = app.client.clone().close_case(close("Beviljas")).await.unwrap().into_inner();
    assert_eq!(status(&again), pb::CaseStatus::Closed);
    assert_eq!((again.version, again.decision.as_str()), (first.version, "Beviljas"));
    assert_eq!(app.events("case.closed", 1).await.len(), 1, "closed once");
    // The same key for a different call is a mistake the caller hears about.
    let err = app.client.clone().close_case(close("Avslås")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Without a key a repeated close is refused, as before.
    assert_eq!(app.close(&case.id, "Beviljas").await.unwrap_err().code(), Code::FailedPrecondition);
}
