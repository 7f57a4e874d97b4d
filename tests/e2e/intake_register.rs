//! Registering a case: validated, stored and announced exactly once.

use std::collections::BTreeSet;

use lots_proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_case_is_stored_and_announced_once() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();

    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(case.reference, format!("NKP-{year}-000001"));
    assert_eq!(status(&case), pb::CaseStatus::Registered);
    assert_eq!(case.legal_form, "aktiebolag");
    let company = case.company.clone().unwrap();
    assert_eq!(company.org_nr, "556036-0793");
    assert_eq!(company.contact.unwrap().phone, "+46701234567");

    let stored: (String, String) = sqlx::query_as("SELECT reference, status FROM cases WHERE id = $1::uuid")
        .bind(&case.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, (case.reference.clone(), "registered".to_owned()));

    let events = app.events("case.registered", 1).await;
    assert_eq!(events.len(), 1);
    let msg = &events[0];
    assert_eq!(msg.subject.as_str(), app.subjects.event("0581", "case.registered"));
    let env = envelope(msg);
    let msg_id = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
    assert_eq!(msg_id.as_deref(), env["id"].as_str());
    assert_eq!(env["type"], "case.registered");
    assert_eq!(env["tenant"], "0581");
    assert_eq!(env["case_id"], case.id.as_str());
    assert_eq!(env["version"], 1);
    // Who acted comes from the verified token, not from the request.
    assert_eq!(env["actor"], "reception:reception");
    assert_eq!(env["data"]["reference"], case.reference.as_str());
    assert_eq!(env["data"]["case_type"], "restaurang_start");
    // The event names the company by its key; a legal person's number (a public record) travels
    // once, for the SKR Insikt case list, and a sole trader's never (see insight's tests).
    let org = lots_domain::OrgNr::parse("556036-0793").unwrap();
    assert_eq!(env["data"]["company_key"], lots_testkit::company_keys().key("0581", &org));
    assert_eq!(env["data"]["org_nr"], "556036-0793");
    let raw = String::from_utf8_lossy(&msg.payload);
    assert_eq!(raw.matches("556036").count(), 1, "{raw}");

    // A retry with the same key answers with the first case and announces nothing new.
    let again = app.register(app.restaurant("k-1")).await.unwrap();
    assert_eq!(again.id, case.id);
    assert_eq!(again.reference, case.reference);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.read_events("case.registered").await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_with_a_different_request_is_refused() {
    let app = TestApp::spawn().await;
    let first = app.register(app.restaurant("k-1")).await.unwrap();
    let mut other = app.restaurant("k-1");
    other.case_type = "bygglov".into();
    let err = app.register(other).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("idempotency_key"), "{}", err.message());
    assert!(err.message().contains(&first.reference), "{}", err.message());
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_org_nr_is_named_and_nothing_is_stored_or_sent() {
    let app = TestApp::spawn().await;
    let mut req = app.restaurant("k-bad");
    req.company.as_mut().unwrap().org_nr = "556036-0794".into();
    let err = app.register(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["company.org_nr"]);
    assert!(err.message().contains("check digit"), "{}", err.message());
    assert!(!err.message().contains("0794"), "the number must not be echoed: {}", err.message());

    assert_eq!(app.count("SELECT count(*) FROM cases").await, 0);
    // (Only the audit chain's head may go out: the refusal is recorded.)
    assert_eq!(app.count("SELECT count(*) FROM outbox WHERE subject NOT LIKE '%.chain_head'").await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.read_events("case.registered").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_field_is_named_at_once() {
    let app = TestApp::spawn().await;
    let req = pb::RegisterCaseRequest {
        idempotency_key: String::new(),
        company: Some(pb::Company {
            org_nr: "19121212-1212".into(),
            name: "x".repeat(201),
            contact: Some(pb::Contact { name: "Per".into(), phone: "12ab".into(), email: "per.at.firma.se".into() }),
        }),
        case_type: "hundkoja".into(),
        description: String::new(),
        channel: pb::Channel::Unspecified as i32,
    };
    let err = app.register(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: BTreeSet<_> = violated_fields(&err).into_iter().collect();
    let expected: BTreeSet<_> =
        ["idempotency_key", "company.name", "company.contact.email", "company.contact.phone", "case_type", "channel"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(fields, expected);
    assert!(err.message().contains("restaurang_start"), "known case types are listed: {}", err.message());
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sole_trader_is_registered_with_a_personnummer() {
    let app = TestApp::spawn().await;
    let mut req = app.restaurant("k-sole");
    req.company.as_mut().unwrap().org_nr = "121212+1212".into();
    let case = app.register(req).await.unwrap();
    assert_eq!(case.legal_form, "enskild firma");
    assert_eq!(case.company.unwrap().org_nr, "19121212-1212");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_registrations_get_gap_free_references() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (client, mut req) = (app.client.clone(), app.restaurant(&format!("k-{i}")));
        req.case_type = if i % 2 == 0 { "bygglov".into() } else { "livsmedelsregistrering".into() };
        tasks.push(tokio::spawn(async move { client.clone().register_case(req).await.map(|r| r.into_inner()) }));
    }
    let mut numbers = Vec::new();
    let mut ids = BTreeSet::new();
    for t in tasks {
        let case = t.await.unwrap().unwrap();
        ids.insert(case.id.clone());
        numbers.push(case.reference.rsplit('-').next().unwrap().parse::<u32>().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=50).collect::<Vec<_>>());
    assert_eq!(ids.len(), 50);
    assert_eq!(app.events("case.registered", 50).await.len(), 50);
}

/// Many writers at once: two intake replicas, every request sent three times at the same
/// moment (twice to one replica, once to the other), and a few keys reused for a different
/// request. Each key registers one case, its retries answer with it, the references have no
/// gaps and every case is announced once.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_and_concurrent_retries_register_each_key_once_without_gaps() {
    let app = TestApp::spawn().await;
    let replica = app.start_intake_replica().await;
    let (a, b) = (app.client.clone(), app.channel_as(replica.addr, NKP, Who::Reception).await);
    let b = pb::intake_service_client::IntakeServiceClient::new(b);
    const KEYS: usize = 150;
    let mut tasks = Vec::new();
    for i in 0..KEYS {
        let req = app.restaurant(&format!("k-{i}"));
        for client in [a.clone(), b.clone(), a.clone()] {
            let req = req.clone();
            let mut client = client;
            tasks.push(tokio::spawn(async move { (i, false, register_retrying(&mut client, req).await) }));
        }
        if i % 15 == 0 {
            let mut other = req.clone();
            other.case_type = "bygglov".into();
            let mut client = b.clone();
            tasks.push(tokio::spawn(async move { (i, true, register_retrying(&mut client, other).await) }));
        }
    }
    let mut by_key: std::collections::BTreeMap<usize, BTreeSet<String>> = Default::default();
    for t in tasks {
        let (i, reused, answer) = t.await.unwrap();
        match answer {
            Ok(case) => {
                by_key.entry(i).or_default().insert(case.id.clone());
                if !reused {
                    assert_eq!(case.case_type, "restaurang_start", "key k-{i} answered with another request's case");
                }
            }
            // The key's first request decides; a different one under the same key is refused.
            Err(e) => assert_eq!(e.code(), Code::AlreadyExists, "key k-{i}: {e:?}"),
        }
    }
    assert_eq!(by_key.len(), KEYS);
    for (i, ids) in &by_key {
        assert_eq!(ids.len(), 1, "key k-{i} registered {} cases", ids.len());
    }
    let mut numbers: Vec<u32> = sqlx::query_scalar("SELECT ref_number::int4 FROM cases ORDER BY ref_number")
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|n: i32| n as u32)
        .collect();
    numbers.dedup();
    assert_eq!(numbers, (1..=KEYS as u32).collect::<Vec<_>>());
    assert_eq!(app.events("case.registered", KEYS).await.len(), KEYS);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.read_events("case.registered").await.len(), KEYS);
    let audited = app
        .count("SELECT count(*) FROM audit_log WHERE rpc = 'IntakeService/RegisterCase' AND action = 'change'")
        .await;
    assert_eq!(audited, KEYS as i64, "one audit entry per registered case");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn().await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let health = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest { service: "lots.v1.IntakeService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"lots.v1.IntakeService".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sees_registrations_and_the_outbox() {
    let app = TestApp::spawn().await;
    app.register(app.restaurant("k-1")).await.unwrap();
    // The relay counts an event once JetStream has acknowledged it; wait for that.
    // (The audit chain's head may be published beside the case's event.)
    let published = "lots_outbox_published_total{service=\"intake\"}";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = app.scrape().await;
    while metric(&text, published) < 1.0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = app.scrape().await;
    }
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let registered = "lots_cases_registered_total{service=\"intake\",tenant=\"0581\",case_type=\"restaurang_start\"}";
    assert_eq!(metric(&text, registered), 1.0, "{text}");
    assert!(metric(&text, published) >= 1.0, "{text}");
    // The consumer's lag is read from JetStream; nothing is waiting for intake here.
    while !text.contains("lots_consumer_lag{service=\"intake\",consumer=\"intake\"}")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = app.scrape().await;
    }
    assert!(text.contains("lots_consumer_lag{service=\"intake\",consumer=\"intake\"}"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn just_after_midnight_on_new_years_day_a_case_gets_the_new_years_reference() {
    // 00:30 in Stockholm is still 23:30 on 31 December in UTC.
    let options = Options { now: Some("2027-01-01 00:30"), ..Default::default() };
    let app = TestApp::spawn_with(lots_testkit::TestNats::start().unwrap(), options).await;
    let case = app.register(app.restaurant("ny-1")).await.unwrap();
    assert!(case.reference.starts_with("NKP-2027-"), "{}", case.reference);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_certificate_intake_serves_grpc_over_tls_only() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
    let app = TestApp::spawn().await;
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (issued.cert.pem(), issued.signing_key.serialize_pem());
    let parts = lots_intake::Parts {
        pool: lots_platform::db::connect(
            &app.db.service_url(),
            lots_intake::app::SCHEMA,
            4,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap(),
        nats: app.nats.connect_as("intake").await.unwrap(),
        subjects: app.subjects.clone(),
        tenants: app.tenants(),
        grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        clock: app.clock.clone(),
        company_keys: lots_testkit::company_keys(),
    };
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&cert, &key));
    let intake = lots_intake::App::from_parts(parts).await.unwrap().with_grpc_tls(tls);
    let port = intake.local_addr().unwrap().port();
    let token = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(intake.run(token.clone()));
    let bearer = app.bearer(NKP, Who::Reception).await;

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cert)).domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(tls).unwrap();
    let mut client = pb::intake_service_client::IntakeServiceClient::with_interceptor(
        channel.connect().await.unwrap(),
        bearer.clone(),
    );
    let case = client.register_case(app.restaurant("tls-1")).await.unwrap().into_inner();
    assert!(case.reference.starts_with("NKP-"));

    // Plain HTTP/2 gets no answer from a TLS port.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await;
    if let Ok(plain) = plain {
        let mut client = pb::intake_service_client::IntakeServiceClient::with_interceptor(plain, bearer);
        assert!(client.register_case(app.restaurant("tls-2")).await.is_err());
    }
    token.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_statement_may_run_longer_than_the_limit() {
    let app = TestApp::spawn().await;
    let url = app.db.service_url();
    let pool =
        lots_platform::db::connect(&url, lots_intake::app::SCHEMA, 1, std::time::Duration::from_secs(5)).await.unwrap();
    let limit: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&pool).await.unwrap();
    assert_eq!(limit, lots_platform::db::STATEMENT_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_whose_consumer_cannot_run_stops_with_the_reason_instead_of_serving_on() {
    let app = TestApp::spawn().await;
    let url = app.db.service_url();
    let parts = lots_intake::Parts {
        pool: lots_platform::db::connect(&url, lots_intake::app::SCHEMA, 4, std::time::Duration::from_secs(5))
            .await
            .unwrap(),
        nats: app.nats.connect_as("intake").await.unwrap(),
        subjects: app.subjects.clone(),
        tenants: app.tenants(),
        grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        clock: app.clock.clone(),
        company_keys: lots_testkit::company_keys(),
    };
    let intake = lots_intake::App::from_parts(parts).await.unwrap();
    // The stream disappears before the replica's consumer starts (an operator mistake).
    app.js.delete_stream(app.subjects.stream_name()).await.unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), intake.run(token)).await;
    let err = ended.expect("the service kept running without its consumer").unwrap_err();
    assert!(format!("{err:#}").contains("consumer"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sole_traders_personnummer_never_reaches_the_stream() {
    let app = TestApp::spawn().await;
    let mut req = app.restaurant("enskild-1");
    req.company.as_mut().unwrap().org_nr = "19121212-1212".into();
    let case = app.register(req).await.unwrap();
    assert_eq!(case.company.unwrap().org_nr, "19121212-1212", "reception still sees it");
    let events = app.events("case.registered", 1).await;
    let raw = String::from_utf8_lossy(&events[0].payload);
    for form in ["19121212-1212", "191212121212", "121212-1212", "1212121212"] {
        assert!(!raw.contains(form), "{form} in {raw}");
    }
    assert!(envelope(&events[0])["data"]["company_key"].as_str().unwrap().starts_with("ck_"));
}

/// Past its capacity intake answers at once. While another transaction holds the tenant's
/// reference counter, 400 registrations sent at once over one connection fill the in-flight
/// bound and the rest are refused RESOURCE_EXHAUSTED without waiting; once the lock goes, the
/// accepted ones are registered, and a refused one retried with its key is registered once.
#[tokio::test(flavor = "multi_thread")]
async fn past_capacity_registrations_are_refused_at_once_and_a_retry_registers() {
    use lots_intake::grpc::MAX_IN_FLIGHT_REGISTRATIONS as BOUND;
    const SENT: usize = 400;
    let app = TestApp::spawn().await;
    app.register(app.restaurant("first")).await.unwrap();
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT last FROM reference_counter FOR UPDATE").execute(&mut *blocker).await.unwrap();
    let (done, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..SENT {
        let (mut client, req, done) = (app.client.clone(), app.restaurant(&format!("k-{i}")), done.clone());
        tokio::spawn(async move {
            let _ = done.send((i, client.register_case(req).await.map(|r| r.into_inner())));
        });
    }
    // Every answer that comes while the counter is locked is a refusal that names the bound.
    let mut refused = Vec::new();
    while refused.len() < SENT - BOUND {
        let (i, answer) = tokio::time::timeout(std::time::Duration::from_secs(20), answers.recv())
            .await
            .expect("a registration past the bound waited instead of being refused")
            .unwrap();
        let status = answer.expect_err("a registration was answered while the reference counter was locked");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("retry"), "the refusal says what to do: {}", status.message());
        refused.push(i);
    }
    blocker.rollback().await.unwrap();
    let mut registered = BTreeSet::new();
    for _ in 0..BOUND {
        let (i, answer) = answers.recv().await.unwrap();
        let case = answer.unwrap_or_else(|e| panic!("k-{i} was accepted but not registered: {e:?}"));
        registered.insert(case.id);
    }
    assert_eq!(registered.len(), BOUND);
    let retried = app.register(app.restaurant(&format!("k-{}", refused[0]))).await.unwrap();
    assert_eq!(app.register(app.restaurant(&format!("k-{}", refused[0]))).await.unwrap().id, retried.id);
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 1 + BOUND as i64 + 1);
}
