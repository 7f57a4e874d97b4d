//! Retention: old rows that only served a while are deleted; what is still needed stays.

use std::time::Duration;

use lots_platform::retention::{self, Retention};
use lots_proto::v1 as pb;
use lots_testkit::TestNats;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn old_inbox_outbox_and_resolved_dead_letter_rows_go_and_the_rest_stays() {
    let app = TestApp::spawn().await;
    let sql = |s: &'static str| sqlx::query(s).execute(&app.pool);
    sql("INSERT INTO inbox (event_id, event_type, handled_at) VALUES
         (gen_random_uuid(), 'old', now() - interval '31 days'), (gen_random_uuid(), 'new', now())")
    .await
    .unwrap();
    sql("INSERT INTO outbox (id, subject, payload, status, created_at, sent_at) VALUES
         (gen_random_uuid(), 'old-sent', '', 'sent', now() - interval '9 days', now() - interval '8 days'),
         (gen_random_uuid(), 'old-pending', '', 'pending', now() - interval '9 days', NULL),
         (gen_random_uuid(), 'new-sent', '', 'sent', now(), now())")
    .await
    .unwrap();
    sql("INSERT INTO dead_letter (event_id, subject, payload, error, deliveries, created_at, status, resolved_at) VALUES
         (gen_random_uuid(), 'old-skipped', '', 'e', 1, now() - interval '100 days', 'skipped', now() - interval '95 days'),
         (gen_random_uuid(), 'old-open', '', 'e', 1, now() - interval '100 days', 'open', NULL)")
    .await
    .unwrap();

    let jobs = retention::platform_jobs();
    let done = retention::prune(&app.pool, &jobs, &Retention::default(), chrono::Utc::now()).await.unwrap();
    assert_eq!(done, [("inbox", 1), ("outbox", 1), ("dead_letter", 1)]);
    let left = |s: &'static str| sqlx::query_scalar::<_, String>(s).fetch_all(&app.pool);
    assert_eq!(left("SELECT event_type FROM inbox").await.unwrap(), ["new"]);
    let mut outbox = left("SELECT subject FROM outbox").await.unwrap();
    outbox.sort();
    assert_eq!(outbox, ["new-sent", "old-pending"], "an unsent event is never pruned");
    assert_eq!(left("SELECT subject FROM dead_letter").await.unwrap(), ["old-open"], "open letters stay");
    // Running again (another replica) finds nothing more.
    let again = retention::prune(&app.pool, &jobs, &Retention::default(), chrono::Utc::now()).await.unwrap();
    assert!(again.iter().all(|(_, n)| *n == 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ended_cases_clocks_go_after_the_retention_period_and_open_cases_stay() {
    let options = Options { routing: true, sla: true, ..Default::default() };
    let app = TestApp::spawn_with(TestNats::start().unwrap(), options).await;
    let ended = app.register(app.restaurant("r-1")).await.unwrap();
    let open = app.register(app.restaurant("r-2")).await.unwrap();
    app.close(&ended.id, "Beviljat").await.unwrap();
    let mut sla = app.alerts_as(NKP, Who::Naringslivschef).await;
    let clocks = |id: &str| pb::GetCaseClocksRequest {
        lookup: Some(pb::get_case_clocks_request::Lookup::CaseId(id.to_owned())),
    };
    // Wait until sla applied the close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let closed: i64 = sqlx::query_scalar("SELECT count(*) FROM case_events WHERE kind = 'case.closed'")
            .fetch_one(app.sla_pool())
            .await
            .unwrap();
        if closed == 1 && sla.get_case_clocks(clocks(&open.id)).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sla never saw the close");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = lots_sla::app::retention_jobs();
    let retention = Retention::default();
    // Not yet: the case closed today.
    let now = chrono::Utc::now();
    assert_eq!(retention::prune(app.sla_pool(), &jobs, &retention, now).await.unwrap(), [("ended_cases", 0)]);
    // 401 days later it goes; the open case stays.
    let later = now + chrono::Duration::days(401);
    assert_eq!(retention::prune(app.sla_pool(), &jobs, &retention, later).await.unwrap(), [("ended_cases", 1)]);
    assert_eq!(sla.get_case_clocks(clocks(&ended.id)).await.unwrap_err().code(), tonic::Code::NotFound);
    assert!(sla.get_case_clocks(clocks(&open.id)).await.is_ok());
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM case_events WHERE case_id = $1::uuid")
        .bind(&ended.id)
        .fetch_one(app.sla_pool())
        .await
        .unwrap();
    assert_eq!(events, 0);
}
