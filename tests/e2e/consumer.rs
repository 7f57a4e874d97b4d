//! The consuming side: per-case order, duplicates skipped, poison events dead-lettered.

use std::time::Duration;

use lots_events::{Envelope, MeetingBooked, TaskAccepted, TaskRef, Views};
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
    app.publish_as_routing(&case.id, 1, routed_stub(meeting_id, now)).await;
    app.eventually(&case.id, "meeting_booked", |c| status(c) == pb::CaseStatus::MeetingBooked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_consumer_keeps_per_case_order_across_events_it_never_sees() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let now = chrono::Utc::now();
    let meeting_id = uuid::Uuid::now_v7();
    let case_id = uuid::Uuid::parse_str(&case.id).unwrap();
    // Routing emits v1 case.routed, v2 task.accepted (outside intake's filter), v3 meeting.booked.
    let mut views = Views::default();
    fn event<T: lots_events::Payload>(id: uuid::Uuid, v: u64, views: &mut Views, data: T) -> Envelope {
        Envelope::new("0581", id, v, "routing", chrono::Utc::now(), data).stamped(views).into_raw().unwrap()
    }
    let routed = event(case_id, 1, &mut views, routed_stub(meeting_id, now));
    let task = TaskRef {
        task_id: uuid::Uuid::now_v7(),
        meeting_id,
        officer_id: "eva".into(),
        unit: "b".into(),
        competence: "b".into(),
    };
    let accepted = event(case_id, 2, &mut views, TaskAccepted { task });
    let booked = event(case_id, 3, &mut views, MeetingBooked { meeting_id, starts_at: now, ends_at: now });
    assert_eq!(booked.prev.get("intake"), Some(&1), "intake's view skips version 2");

    // meeting.booked arrives first: intake waits for case.routed, not for version 2.
    app.publish_event(&booked).await;
    app.publish_event(&accepted).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::Registered);
    app.publish_event(&routed).await;
    app.eventually(&case.id, "meeting_booked", |c| status(c) == pb::CaseStatus::MeetingBooked).await;

    // case.routed once more under a new message id (a re-published outbox row): changes nothing.
    let mut again = routed.clone();
    again.id = uuid::Uuid::now_v7();
    app.publish_event(&again).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::MeetingBooked);
    assert_eq!(app.count("SELECT count(*) FROM dead_letter").await, 0);
    // The filter kept task.accepted away from intake altogether.
    assert_eq!(app.count("SELECT count(*) FROM inbox WHERE event_type = 'task.accepted'").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_event_is_applied_once() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let now = chrono::Utc::now();
    let meeting_id = uuid::Uuid::now_v7();
    let routed = routed_stub(meeting_id, now);
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
