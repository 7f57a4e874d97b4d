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
    let done =
        retention::prune(&app.pool, &jobs, &Retention::default(), &app.tenants(), chrono::Utc::now()).await.unwrap();
    assert_eq!(done, [("inbox", 1), ("outbox", 1), ("dead_letter", 1), ("dead_letter_payloads", 0)]);
    let left = |s: &'static str| sqlx::query_scalar::<_, String>(s).fetch_all(&app.pool);
    assert_eq!(left("SELECT event_type FROM inbox").await.unwrap(), ["new"]);
    let mut outbox = left("SELECT subject FROM outbox").await.unwrap();
    outbox.sort();
    assert_eq!(outbox, ["new-sent", "old-pending"], "an unsent event is never pruned");
    assert_eq!(left("SELECT subject FROM dead_letter").await.unwrap(), ["old-open"], "open letters stay");
    // Running again (another replica) finds nothing more.
    let again =
        retention::prune(&app.pool, &jobs, &Retention::default(), &app.tenants(), chrono::Utc::now()).await.unwrap();
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
    assert_eq!(
        retention::prune(app.sla_pool(), &jobs, &retention, &app.tenants(), now).await.unwrap(),
        [("ended_cases", 0)]
    );
    // 401 days later it goes; the open case stays.
    let later = now + chrono::Duration::days(401);
    assert_eq!(
        retention::prune(app.sla_pool(), &jobs, &retention, &app.tenants(), later).await.unwrap(),
        [("ended_cases", 1)]
    );
    assert_eq!(sla.get_case_clocks(clocks(&ended.id)).await.unwrap_err().code(), tonic::Code::NotFound);
    assert!(sla.get_case_clocks(clocks(&open.id)).await.is_ok());
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM case_events WHERE case_id = $1::uuid")
        .bind(&ended.id)
        .fetch_one(app.sla_pool())
        .await
        .unwrap();
    assert_eq!(events, 0);
}

/// How many values in any text, JSON, array or byte column of the three services' tables hold
/// one of `needles`.
async fn occurrences(pool: &sqlx::PgPool, needles: &[&str]) -> Vec<String> {
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema IN ('intake', 'routing', 'sla', 'insight')
           AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(columns.len() > 20, "{columns:?}");
    let patterns: Vec<String> = needles.iter().map(|n| format!("%{n}%")).collect();
    let mut found = Vec::new();
    for (schema, table, column, kind) in columns {
        let value =
            if kind == "bytea" { format!("encode(\"{column}\", 'escape')") } else { format!("\"{column}\"::text") };
        let sql = format!("SELECT count(*) FROM \"{schema}\".\"{table}\" WHERE {value} LIKE ANY ($1)");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(&patterns).fetch_one(pool).await.unwrap();
        if n > 0 {
            found.push(format!("{schema}.{table}.{column}"));
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn after_gallring_no_table_of_any_service_holds_the_sole_traders_personnummer() {
    let options = Options { routing: true, sla: true, insight: true, ..Default::default() };
    let app = TestApp::spawn_with(TestNats::start().unwrap(), options).await;
    let mut req = app.restaurant("g-1");
    req.company.as_mut().unwrap().org_nr = "19121212-1212".into();
    let case = app.register(req).await.unwrap();
    app.eventually(&case.id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    app.close(&case.id, "Beviljat").await.unwrap();
    // The same sole trader complains, and is visited; both are done.
    let complaints = || async {
        let channel = app.channel_as(app.addr, NKP, Who::Naringslivschef).await;
        pb::complaint_service_client::ComplaintServiceClient::new(channel)
    };
    let complaint = pb::RegisterComplaintRequest {
        idempotency_key: "g-k".into(),
        category: pb::ComplaintCategory::Information as i32,
        channel: pb::Channel::Email as i32,
        description: "Fick fel besked".into(),
        contact: Some(pb::Contact { name: "Tolvan".into(), email: "tolvan@example.se".into(), ..Default::default() }),
        org_nr: "19121212-1212".into(),
        ..Default::default()
    };
    let k = complaints().await.register_complaint(complaint).await.unwrap().into_inner();
    let answer = pb::AnswerComplaintRequest {
        complaint_id: k.id.clone(),
        answer: "a".into(),
        action_taken: "b".into(),
        ..Default::default()
    };
    complaints().await.answer_complaint(answer).await.unwrap();
    let close = pb::CloseComplaintRequest { complaint_id: k.id.clone(), ..Default::default() };
    complaints().await.close_complaint(close).await.unwrap();
    let visit = pb::RegisterVisitRequest {
        idempotency_key: "g-v".into(),
        org_nr: "19121212-1212".into(),
        company_name: "Tolvans Cykel".into(),
        date: "2026-01-15".into(),
        kind: pb::VisitKind::Lotsande as i32,
        participants: vec!["johan.nystrom".into()],
        notes: "Tolvan 19121212-1212 vill expandera".into(),
        ..Default::default()
    };
    let channel = app.channel_as(app.addr, NKP, Who::Naringslivschef).await;
    pb::visit_service_client::VisitServiceClient::new(channel).register_visit(visit).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ended: i64 = sqlx::query_scalar("SELECT count(*) FROM routing.cases WHERE state = 'ended'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if ended == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "routing never ended the case");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let needles = ["19121212-1212", "191212121212", "121212-1212", "1212121212"];
    let held = ["intake.cases.org_nr", "intake.complaints.org_nr", "intake.visits.notes", "intake.visits.org_nr"];
    assert_eq!(occurrences(&app.pool, &needles).await, held, "only intake, the record, holds it");

    // A year and a day after the close (the default period is 365 days) every service's jobs run.
    let later = chrono::Utc::now() + chrono::Duration::days(366);
    let retention = Retention::default();
    let tenants = app.tenants();
    let with = |own: Vec<retention::Job>| [retention::platform_jobs(), own].concat();
    retention::prune(&app.pool, &with(lots_intake::app::retention_jobs()), &retention, &tenants, later).await.unwrap();
    let routing_jobs = with(lots_routing::app::retention_jobs());
    retention::prune(app.routing_pool(), &routing_jobs, &retention, &tenants, later).await.unwrap();
    retention::prune(app.sla_pool(), &with(lots_sla::app::retention_jobs()), &retention, &tenants, later)
        .await
        .unwrap();
    assert!(occurrences(&app.pool, &needles).await.is_empty());
    let erased: (String, String, String) =
        sqlx::query_as("SELECT org_nr, contact_email, company_name FROM intake.cases")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(erased, (String::new(), String::new(), "(gallrad)".to_owned()));
    let visit: (String, String) =
        sqlx::query_as("SELECT company_name, notes FROM intake.visits").fetch_one(&app.pool).await.unwrap();
    assert_eq!(visit, ("(gallrad)".to_owned(), "(gallrad)".to_owned()), "a sole trader's firm name names them");
    // What statistics need stays.
    let kept: (String, String) =
        sqlx::query_as("SELECT reference, status FROM intake.cases").fetch_one(&app.pool).await.unwrap();
    assert_eq!(kept, (case.reference.clone(), "closed".to_owned()));
}
