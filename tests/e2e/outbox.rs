//! The outbox: an event committed while NATS is down is published once NATS is back, also
//! across a restart of the service.

use std::time::Duration;

use lots_testkit::TestNats;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn events_left_unsent_at_stop_are_published_after_the_next_start() {
    let mut app = TestApp::spawn_on(TestNats::start_owned().unwrap()).await;
    let first = app.register(app.restaurant("k-1")).await.unwrap();
    assert_eq!(app.events("case.registered", 1).await.len(), 1);

    // NATS crashes; registration still works (Postgres is the record), the event waits.
    app.nats.stop().unwrap();
    let second = app.register(app.restaurant("k-2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    // (The audit chain's head may wait there too.)
    let pending = "SELECT count(*) FROM outbox WHERE status = 'pending' AND subject LIKE '%.case.registered'";
    assert_eq!(app.count(pending).await, 1);

    app.nats.restart().unwrap();
    app.js = async_nats::jetstream::new(async_nats::connect(app.nats.url()).await.unwrap());
    app.start().await;
    let events = app.events("case.registered", 2).await;
    let ids: Vec<_> = events.iter().map(|m| envelope(m)["case_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [first.id.clone(), second.id.clone()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.read_events("case.registered").await.len(), 2, "nothing is published twice");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.count("SELECT count(*) FROM outbox WHERE status = 'pending'").await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the outbox was not emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
