//! The audit log: every read, change and refusal is recorded by the service that answers, chained
//! per municipality, and cannot be rewritten without the chain saying where.

use std::time::Duration;

use lots_proto::v1 as pb;
use lots_testkit::TestNats;

use crate::helpers::*;

/// (action, rpc, objects, result) of every entry in `pool`'s audit log, oldest first.
async fn entries(pool: &sqlx::PgPool) -> Vec<(String, String, Vec<String>, String)> {
    sqlx::query_as("SELECT action, rpc, objects, result FROM audit_log ORDER BY xid, id").fetch_all(pool).await.unwrap()
}

/// Waits until every entry is chained, then verifies the municipality's chain as its admin.
async fn verified(app: &TestApp, addr: std::net::SocketAddr) -> pb::AuditVerification {
    verified_at_least(app, addr, 0).await
}

/// Like [`verified`], once the chain links at least `entries` entries (the chainer runs on its
/// own schedule: CI once saw a verification count none right after the calls; the cause is not
/// known yet).
async fn verified_at_least(app: &TestApp, addr: std::net::SocketAddr, entries: u64) -> pb::AuditVerification {
    let mut audit = pb::audit_service_client::AuditServiceClient::new(app.channel_as(addr, NKP, Who::Admin).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = audit.verify_audit_chain(pb::VerifyAuditChainRequest {}).await.unwrap().into_inner();
        if (v.unchained == 0 && v.entries >= entries) || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_changes_and_refusals_are_recorded_and_chained() {
    let options = Options { routing: true, ..Default::default() };
    let app = TestApp::spawn_with(TestNats::start().unwrap(), options).await;
    let case = app.register(app.restaurant("a-1")).await.unwrap();
    app.get(&case.id).await;
    app.client.clone().list_cases(pb::ListCasesRequest::default()).await.unwrap();
    // A handläggare may not register; nobody without a token may read.
    let mut officer = app.intake_as(NKP, Who::Officer("karin.ekstrom".into())).await;
    assert!(officer.register_case(app.restaurant("a-2")).await.is_err());
    let anonymous =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut anonymous = pb::intake_service_client::IntakeServiceClient::new(anonymous);
    assert!(anonymous.list_cases(pb::ListCasesRequest::default()).await.is_err());
    // Another tenant's case is not found, and that refusal is recorded too.
    let lookup = Some(pb::get_case_request::Lookup::Id(uuid::Uuid::now_v7().to_string()));
    assert!(app.client.clone().get_case(pb::GetCaseRequest { lookup }).await.is_err());

    let log = entries(&app.pool).await;
    let id = vec![case.id.clone()];
    assert_eq!(log[0], ("change".into(), "IntakeService/RegisterCase".into(), id.clone(), "ok".into()));
    let has = |action: &str, rpc: &str, objects: Option<&Vec<String>>, result: &str| {
        log.iter().any(|e| e.0 == action && e.1 == rpc && objects.is_none_or(|o| &e.2 == o) && e.3 == result)
    };
    assert!(has("read", "IntakeService/GetCase", Some(&id), "ok"), "{log:?}");
    assert!(has("read", "IntakeService/ListCases", Some(&id), "ok"), "{log:?}");
    assert!(has("refused", "IntakeService/RegisterCase", None, "permission_denied"), "{log:?}");
    assert!(has("refused", "IntakeService/ListCases", None, "unauthenticated"), "{log:?}");
    assert!(has("refused", "IntakeService/GetCase", None, "not_found"), "{log:?}");
    let who: (String, Vec<String>) = sqlx::query_as(
        "SELECT subject, roles FROM audit_log WHERE rpc = 'IntakeService/RegisterCase' AND action = 'change'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(who, ("reception".to_owned(), vec!["reception".to_owned()]));

    // Routing records the handläggare's list and acceptance, the change in its own transaction.
    let task = loop {
        let mut tasks = app.tasks("karin.ekstrom").await;
        let list = tasks.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks;
        if let Some(t) = list.into_iter().find(|t| t.case_id == case.id) {
            break t;
        }
        let mut other = None;
        for o in ["jenny.hallberg", "ahmed.hassan", "erik.sandberg", "rasmus.holm", "emma.forsberg"] {
            let list = app.tasks(o).await.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks;
            if let Some(t) = list.into_iter().find(|t| t.case_id == case.id) {
                other = Some(t);
                break;
            }
        }
        if let Some(t) = other {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut seat = app.tasks(&task.officer_id).await;
    seat.accept_task(pb::AcceptTaskRequest { task_id: task.id.clone(), ..Default::default() }).await.unwrap();
    let routing = entries(app.routing_pool()).await;
    assert!(routing.contains(&("change".into(), "TaskService/AcceptTask".into(), vec![task.id.clone()], "ok".into())));
    assert!(routing.iter().any(|e| e.1 == "TaskService/ListTasks" && e.2.contains(&task.id)));

    // Who looked at or changed this case: an extract per service (itself recorded as a read).
    let extract = |addr: std::net::SocketAddr| {
        let (app, id) = (&app, case.id.clone());
        async move {
            let mut audit =
                pb::audit_service_client::AuditServiceClient::new(app.channel_as(addr, NKP, Who::Admin).await);
            let req = pb::ListAuditEntriesRequest { objects: vec![id] };
            let mut stream = audit.list_audit_entries(req).await.unwrap().into_inner();
            let mut rpcs = Vec::new();
            while let Some(e) = stream.message().await.unwrap() {
                rpcs.push(format!("{} {} {}", e.subject, e.action, e.rpc));
            }
            rpcs
        }
    };
    let intake = extract(app.addr).await;
    assert_eq!(intake[0], "reception change IntakeService/RegisterCase", "{intake:?}");
    assert!(intake.contains(&"reception read IntakeService/GetCase".to_owned()), "{intake:?}");
    let routing = extract(app.routing.as_ref().unwrap().addr).await;
    assert!(routing.iter().any(|r| r.ends_with("read TaskService/ListTasks")), "{routing:?}");
    let asked: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE rpc = 'AuditService/ListAuditEntries'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(asked, 1, "the extract is recorded");

    // Both chains hold.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (v, own) = loop {
        let v = verified(&app, app.addr).await;
        let own: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant = '0581'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if v.entries == own as u64 || tokio::time::Instant::now() > deadline {
            break (v, own);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(v.ok, "{v:?}");
    assert_eq!((v.entries, v.unchained), (own as u64, 0), "the municipality's own entries: {v:?}");
    let v = verified_at_least(&app, app.routing.as_ref().unwrap().addr, 2).await;
    assert!(v.ok && v.entries >= 2, "{v:?}");
    // The chain's head goes out as an event, for a system outside Lotsen to keep.
    let heads = app.events_of(NKP, "audit.intake.chain_head", 1).await;
    let head = envelope(&heads[0]);
    assert!(head["data"]["seq"].as_i64().unwrap() >= 1, "{head}");
    assert_eq!(head["data"]["hash"].as_str().unwrap().len(), 64, "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_cannot_be_rewritten_and_a_rewrite_is_found() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("t-1")).await.unwrap();
    app.get(&case.id).await;
    app.get(&case.id).await;
    assert!(verified(&app, app.addr).await.ok);
    // Neither the service's role nor the database owner may change or delete an entry.
    let service =
        lots_platform::db::connect(&app.db.service_url(), lots_intake::app::SCHEMA, 1, Duration::from_secs(5))
            .await
            .unwrap();
    for sql in ["UPDATE audit_log SET rpc = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log CASCADE"] {
        for pool in [&service, &app.pool] {
            let err = sqlx::query(sql).execute(pool).await.unwrap_err().to_string();
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
    }
    // Someone with the power to turn the guard off rewrites the second entry: verify names it.
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only").execute(&app.pool).await.unwrap();
    sqlx::query(
        "UPDATE audit_log SET subject = 'someone-else' WHERE id = (SELECT entry_id FROM audit_chain WHERE seq = 2)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let v = verified(&app, app.addr).await;
    assert!(!v.ok);
    assert_eq!(v.first_broken_seq, 2, "{v:?}");
    assert!(v.reason.contains("changed"), "{v:?}");
    // Put it back; then delete the third entry outright, chain link and all.
    sqlx::query(
        "UPDATE audit_log SET subject = 'reception' WHERE id = (SELECT entry_id FROM audit_chain WHERE seq = 2)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert!(verified(&app, app.addr).await.ok);
    sqlx::query("ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only").execute(&app.pool).await.unwrap();
    let third: uuid::Uuid = sqlx::query_scalar("DELETE FROM audit_chain WHERE seq = 3 RETURNING entry_id")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE id = $1").bind(third).execute(&app.pool).await.unwrap();
    let v = verified(&app, app.addr).await;
    assert_eq!((v.ok, v.first_broken_seq), (false, 3), "{v:?}");
    assert!(v.reason.contains("missing"), "{v:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reordered_entries_are_found() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("o-1")).await.unwrap();
    app.get(&case.id).await;
    app.client.clone().list_cases(pb::ListCasesRequest::default()).await.unwrap();
    assert!(verified(&app, app.addr).await.ok);
    // Swap the second and third links.
    sqlx::query("ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only").execute(&app.pool).await.unwrap();
    for sql in [
        "UPDATE audit_chain SET seq = -2 WHERE seq = 2",
        "UPDATE audit_chain SET seq = 2 WHERE seq = 3",
        "UPDATE audit_chain SET seq = 3 WHERE seq = -2",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    let v = verified(&app, app.addr).await;
    assert_eq!((v.ok, v.first_broken_seq), (false, 2), "{v:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_that_cannot_be_recorded_is_not_answered() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("r-1")).await.unwrap();
    sqlx::query("REVOKE INSERT ON audit_log FROM lots_service").execute(&app.pool).await.unwrap();
    let lookup = Some(pb::get_case_request::Lookup::Id(case.id.clone()));
    let err = app.client.clone().get_case(pb::GetCaseRequest { lookup: lookup.clone() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    sqlx::query("GRANT INSERT ON audit_log TO lots_service").execute(&app.pool).await.unwrap();
    assert!(app.client.clone().get_case(pb::GetCaseRequest { lookup }).await.is_ok());
}
