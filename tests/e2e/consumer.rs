//! The consuming side: per-case order, duplicates skipped, poison events dead-lettered.

use std::time::Duration;

use lots_events::{CaseRouted, MeetingBooked};
use lots_proto::v1 as pb;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn events_are_applied_in_version_order_even_when_they_arrive_out_of_order() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let now = chrono::Utc::now();
    let meeting_id = uuid::Uuid::now_v7();
    // Version 2 first: applied alone it would be refused (a registered case cannot be booked).
    app.publish_as_routing(&case.id, 2, MeetingBooked { meeting_id, starts_at: now, ends_at: now }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::Registered);
    app.publish_as_routing(&case.id, 1, CaseRouted { meeting_id, officers: vec![], starts_at: now }).await;
    app.eventually(&case.id, "meeting_booked", |c| status(c) == pb::CaseStatus::MeetingBooked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_event_is_applied_once() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let now = chrono::Utc::now();
    let meeting_id = uuid::Uuid::now_v7();
    let routed = CaseRouted { meeting_id, officers: vec![], starts_at: now };
    app.publish_as_routing(&case.id, 1, routed.clone()).await;
    app.publish_as_routing(&case.id, 2, MeetingBooked { meeting_id, starts_at: now, ends_at: now }).await;
    app.eventually(&case.id, "meeting_booked", |c| status(c) == pb::CaseStatus::MeetingBooked).await;
    // Version 1 again, as a re-published outbox row would arrive after JetStream's duplicate
    // window. Applied a second time it would move the booked case back to routed.
    app.publish_as_routing(&case.id, 1, routed).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::MeetingBooked);
    assert_eq!(app.count("SELECT count(*) FROM dead_letter").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_cannot_be_read_is_dead_lettered_not_dropped() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7();
    app.publish_raw("case.routed", id, b"{not json".to_vec()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored: Option<(String, String)> =
            sqlx::query_as("SELECT subject, error FROM dead_letter").fetch_optional(&app.pool).await.unwrap();
        if let Some((subject, error)) = stored {
            assert_eq!(subject, app.subjects.event("0581", "case.routed"));
            assert!(error.contains("not a Lotsen event"), "{error}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the poison event was not dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
