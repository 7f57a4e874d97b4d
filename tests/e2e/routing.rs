//! Routing: the dukat bord is assembled from the right officers at the earliest common time,
//! never double-booking anyone, and each handläggare sees their tasks live.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use lots_platform::db;
use lots_proto::v1 as pb;
use lots_testkit::TestNats;
use pb::task_update::Kind;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// A small municipality for capacity, unroutable and load tests.
const SMALL: &str = r#"
kommunkod = "9999"
name = "Testkommun"
reference_prefix = "TST"
naringslivschef = "chef"
office_hours = { start = "08:00", end = "16:30" }

[[units]]
id = "u"
name = "Enheten"
manager = "chef"

[[officers]]
id = "chef"
name = "Chef Chefsson"
email = "chef@test.se"
unit = "u"
competences = ["radgivning"]
capacity = 100

[[officers]]
id = "a1"
name = "Anna Ett"
email = "a1@test.se"
unit = "u"
competences = ["bygglov"]
capacity = 1

[[officers]]
id = "a2"
name = "Anna Två"
email = "a2@test.se"
unit = "u"
competences = ["bygglov"]
capacity = 1

[[officers]]
id = "p1"
name = "P Ett"
email = "p1@test.se"
unit = "u"
competences = ["x"]
capacity = 100

[[officers]]
id = "p2"
name = "P Två"
email = "p2@test.se"
unit = "u"
competences = ["x"]
capacity = 100

[[officers]]
id = "p3"
name = "P Tre"
email = "p3@test.se"
unit = "u"
competences = ["y"]
capacity = 100

[commitments.dukat_bord]
name = "Dukat bord inom 10 arbetsdagar"
starts_on = "case.registered"
stops_on = ["meeting.booked"]
target = { working_days = 10 }

[[case_types]]
key = "radgivning"
name = "Rådgivning"
seats = [{ competence = "radgivning" }]
meeting_minutes = 30
min_notice_hours = 1
commitments = ["dukat_bord"]

[[case_types]]
key = "bygglov"
name = "Bygglov"
seats = [{ competence = "bygglov" }]
meeting_minutes = 60
min_notice_hours = 1
commitments = ["dukat_bord"]

[[case_types]]
key = "tolkning"
name = "Tolkning"
seats = [{ competence = "radgivning" }, { competence = "tolk" }]
meeting_minutes = 30
min_notice_hours = 1

[[case_types]]
key = "par"
name = "Par"
seats = [{ competence = "x" }, { competence = "y" }]
meeting_minutes = 45
min_notice_hours = 1
buffer_minutes = 15
commitments = ["dukat_bord"]
"#;

async fn spawn(now: &'static str) -> TestApp {
    let options =
        Options { routing: true, now: Some(now), extra_tenants: vec![SMALL.to_owned()], ..Default::default() };
    TestApp::spawn_with(TestNats::start().unwrap(), options).await
}

fn small(app: &TestApp, key: &str, case_type: &str, org_nr: &str) -> pb::RegisterCaseRequest {
    let mut req = app.restaurant(key);
    req.case_type = case_type.into();
    req.company.as_mut().unwrap().org_nr = org_nr.into();
    req
}

fn range(start: &str, end: &str) -> pb::TimeRange {
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    pb::TimeRange { start: Some(ts(local(start))), end: Some(ts(local(end))) }
}

/// Routing's tasks for a case, waiting until `min` exist.
async fn tasks_of(app: &TestApp, case_id: &str, min: usize) -> Vec<(String, String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT officer_id, competence, status FROM tasks WHERE case_id = $1::uuid ORDER BY created_at, officer_id",
        )
        .bind(case_id)
        .fetch_all(app.routing_pool())
        .await
        .unwrap();
        if rows.len() >= min || tokio::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn holders(app: &TestApp, competence: &str) -> Vec<String> {
    let tenants = app.tenants();
    let nkp = tenants.get(NKP).unwrap();
    nkp.officers.iter().filter(|o| o.competences.iter().any(|c| c == competence)).map(|o| o.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restaurant_gets_four_officers_at_the_earliest_common_time_after_holidays() {
    // Wednesday before Kristi himmelsfärd: Thursday is a holiday, Friday a klämdag, then a weekend.
    let app = spawn("2026-05-13 08:00").await;
    let mut officers = app.officers().await;
    for id in holders(&app, "serveringstillstand") {
        let req = pb::SetBusyTimesRequest {
            officer_id: id,
            source: "exchange".into(),
            busy: vec![range("2026-05-18 08:00", "2026-05-18 10:00")],
            ..Default::default()
        };
        officers.set_busy_times(req).await.unwrap();
    }
    // Nobody with the optional competence is free, so the table has exactly the four required seats.
    for id in holders(&app, "etablering") {
        let period = Some(range("2026-05-11 00:00", "2026-06-30 00:00"));
        officers
            .set_absence(pb::SetAbsenceRequest {
                officer_id: id,
                period,
                reason: "semester".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let case = app.register(app.restaurant("r-1")).await.unwrap();
    let tasks = tasks_of(&app, &case.id, 4).await;
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    let competences: BTreeSet<_> = tasks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(competences, BTreeSet::from(["brandskydd", "bygglov", "livsmedel", "serveringstillstand"]));
    let distinct: BTreeSet<_> = tasks.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(distinct.len(), 4);
    for (officer, competence, status) in &tasks {
        assert!(holders(&app, competence).contains(officer), "{officer} lacks {competence}");
        assert_eq!(status, "offered");
    }

    let meeting = app
        .tasks(&tasks[0].0)
        .await
        .get_meeting(pb::GetMeetingRequest { lookup: Some(pb::get_meeting_request::Lookup::CaseId(case.id.clone())) })
        .await
        .unwrap()
        .into_inner();
    // Busy until 10:00, plus the case type's 15-minute buffer.
    assert_eq!(meeting.starts_at.unwrap().seconds, local("2026-05-18 10:15").timestamp());
    assert_eq!(meeting.ends_at.unwrap().seconds, local("2026-05-18 11:45").timestamp());
    app.eventually(&case.id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;

    // The invite is real iCalendar with every attendee: four officers and the company.
    let calendar: icalendar::Calendar = meeting.ics.parse().unwrap();
    let ics = meeting.ics.to_lowercase();
    assert_eq!(calendar.components.len(), 1);
    for a in &meeting.attendees {
        assert!(ics.contains(&format!("mailto:{}", a.email.to_lowercase())), "{} missing", a.email);
    }
    assert_eq!(meeting.attendees.len(), 5);
    assert!(meeting.ics.contains(&format!("UID:{}@lotsen", meeting.id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_company_keeps_its_officers() {
    let app = spawn("2026-09-07 08:00").await;
    let first = app.register(app.restaurant("r-1")).await.unwrap();
    let first_officers: BTreeMap<_, _> = tasks_of(&app, &first.id, 4).await.into_iter().map(|t| (t.1, t.0)).collect();
    let mut second_req = app.restaurant("r-2");
    second_req.description = "Andra restaurangen, vid Strömparken".into();
    let second = app.register(second_req).await.unwrap();
    let second_officers: BTreeMap<_, _> = tasks_of(&app, &second.id, 4).await.into_iter().map(|t| (t.1, t.0)).collect();
    for (competence, officer) in &second_officers {
        if let Some(earlier) = first_officers.get(competence) {
            assert_eq!(officer, earlier, "{competence} changed officer");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_officer_is_passed_over_and_no_capacity_makes_the_case_unroutable() {
    let app = spawn("2026-09-07 08:00").await;
    let one = app.register_in("9999", small(&app, "b-1", "bygglov", "556036-0793")).await.unwrap();
    assert_eq!(tasks_of(&app, &one.id, 1).await[0].0, "a1");
    let two = app.register_in("9999", small(&app, "b-2", "bygglov", "212000-0142")).await.unwrap();
    assert_eq!(tasks_of(&app, &two.id, 1).await[0].0, "a2", "a1 is full (capacity 1)");
    let three = app.register_in("9999", small(&app, "b-3", "bygglov", "556036-0793")).await.unwrap();
    app.eventually(&three.id, "unroutable", |c| status(c) == pb::CaseStatus::Unroutable).await;
    let events = app.events_of("9999", "case.unroutable", 1).await;
    let reason = envelope(&events[0])["data"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("bygglov") && reason.contains("full capacity"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_competence_nobody_has_makes_the_case_unroutable_with_that_reason() {
    let app = spawn("2026-09-07 08:00").await;
    let case = app.register_in("9999", small(&app, "t-1", "tolkning", "556036-0793")).await.unwrap();
    app.eventually(&case.id, "unroutable", |c| status(c) == pb::CaseStatus::Unroutable).await;
    let events = app.events_of("9999", "case.unroutable", 1).await;
    let reason = envelope(&events[0])["data"]["reason"].as_str().unwrap().to_owned();
    assert_eq!(reason, "no officer has the competence \"tolk\"");
    assert!(tasks_of(&app, &case.id, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_seat_goes_to_another_officer_and_acceptance_books_the_meeting() {
    let app = spawn("2026-09-07 08:00").await;
    let case = app.register(app.restaurant("r-1")).await.unwrap();
    let tasks = tasks_of(&app, &case.id, 4).await;
    let task_ids: HashMap<String, String> = {
        let rows: Vec<(String, uuid::Uuid)> =
            sqlx::query_as("SELECT officer_id, id FROM tasks WHERE case_id = $1::uuid")
                .bind(&case.id)
                .fetch_all(app.routing_pool())
                .await
                .unwrap();
        rows.into_iter().map(|(o, id)| (o, id.to_string())).collect()
    };
    let (decliner, competence, _) = tasks.iter().find(|t| t.1 == "bygglov").unwrap().clone();
    let mut client = app.tasks(&decliner).await;
    let err = client
        .decline_task(pb::DeclineTaskRequest {
            task_id: task_ids[&decliner].clone(),
            reason: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    let declined = client
        .decline_task(pb::DeclineTaskRequest {
            task_id: task_ids[&decliner].clone(),
            reason: "Jävig".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declined.status, pb::TaskStatus::Declined as i32);

    let after = tasks_of(&app, &case.id, tasks.len() + 1).await;
    let open: Vec<_> = after.iter().filter(|t| t.2 == "offered").collect();
    assert_eq!(open.len(), tasks.len(), "every seat is filled again");
    let replacement = open.iter().find(|t| t.1 == competence).unwrap();
    assert_ne!(replacement.0, decliner);
    assert!(holders(&app, &competence).contains(&replacement.0));

    for (officer, _, _) in open.iter().copied() {
        let mut c = app.tasks(officer).await;
        let listed = c.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks;
        let mine = listed.iter().find(|t| t.case_id == case.id).unwrap();
        c.accept_task(pb::AcceptTaskRequest { task_id: mine.id.clone(), ..Default::default() }).await.unwrap();
    }
    app.eventually(&case.id, "meeting_booked", |c| status(c) == pb::CaseStatus::MeetingBooked).await;
    assert_eq!(app.events("meeting.booked", 1).await.len(), 1);
    // A completion retried with its key is applied once and answered the same.
    let (officer, _, _) = open[0];
    let mut c = app.tasks(officer).await;
    let mine = c.list_tasks(pb::ListTasksRequest::default()).await.unwrap().into_inner().tasks;
    let task_id = mine.iter().find(|t| t.case_id == case.id).unwrap().id.clone();
    let complete =
        || pb::CompleteTaskRequest { task_id: task_id.clone(), idempotency_key: "done-1".into(), ..Default::default() };
    let first = c.complete_task(complete()).await.unwrap().into_inner();
    let again = c.complete_task(complete()).await.unwrap().into_inner();
    assert_eq!((first.status, first.updated_at), (again.status, again.updated_at));
    let without_key = pb::CompleteTaskRequest { task_id: task_id.clone(), ..Default::default() };
    assert_eq!(c.complete_task(without_key).await.unwrap_err().code(), tonic::Code::FailedPrecondition);
    // Someone else's task cannot be answered.
    let err = app
        .tasks(&decliner)
        .await
        .accept_task(pb::AcceptTaskRequest { task_id: task_ids[&tasks[0].0].clone(), ..Default::default() })
        .await
        .unwrap_err();
    // As unknown as a task that does not exist: no hint, nothing locked.
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_cases_at_once_never_double_book_an_officer() {
    let app = spawn("2026-09-07 08:00").await;
    let mut handles = Vec::new();
    let reception = app.intake_as("9999", Who::Reception).await;
    for i in 0..50 {
        let org = if i % 2 == 0 { "556036-0793" } else { "212000-0142" };
        let (client, req) = (reception.clone(), small(&app, &format!("p-{i}"), "par", org));
        handles.push(tokio::spawn(async move { client.clone().register_case(req).await.unwrap().into_inner() }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap().id);
    }
    for id in &ids {
        app.eventually(id, "routed or unroutable", |c| {
            matches!(status(c), pb::CaseStatus::Routed | pb::CaseStatus::Unroutable)
        })
        .await;
    }
    let overlaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings a JOIN bookings b ON a.officer_id = b.officer_id AND a.ctid < b.ctid
         WHERE a.active AND b.active AND a.during && b.during",
    )
    .fetch_one(app.routing_pool())
    .await
    .unwrap();
    assert_eq!(overlaps, 0);
    let per_case: Vec<(i64,)> = sqlx::query_as(
        "SELECT count(*) FROM tasks WHERE status <> 'cancelled' GROUP BY case_id, competence HAVING count(*) > 1",
    )
    .fetch_all(app.routing_pool())
    .await
    .unwrap();
    assert!(per_case.is_empty(), "a seat was offered twice");
    let routed: i64 = sqlx::query_scalar("SELECT count(*) FROM meetings WHERE status <> 'cancelled'")
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    let unroutable = app.events_of("9999", "case.unroutable", 0).await;
    assert_eq!(routed as usize + unroutable.len(), 50);
    for msg in unroutable {
        assert!(!envelope(&msg)["data"]["reason"].as_str().unwrap().is_empty());
    }
}

/// The case ids of a `WatchTasks` stream's snapshot, read up to its `Live` marker, sorted.
async fn snapshot_cases(stream: &mut tonic::Streaming<pb::TaskUpdate>) -> Vec<String> {
    let mut snapshot = Vec::new();
    loop {
        let u = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        if u.kind == Kind::Live as i32 {
            return sorted(snapshot);
        }
        assert_eq!(u.kind, Kind::Snapshot as i32);
        snapshot.push(u.task.unwrap().case_id);
    }
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_tasks_streams_new_tasks_and_resumes_from_a_cursor() {
    let app = spawn("2026-09-07 08:00").await;
    let mut watcher = app.tasks("9999/chef").await;
    let mut stream = watcher.watch_tasks(pb::WatchTasksRequest::default()).await.unwrap().into_inner();
    let live = stream.next().await.unwrap().unwrap();
    assert_eq!(live.kind, Kind::Live as i32, "no open tasks: the snapshot is empty");

    let first = app.register_in("9999", small(&app, "w-1", "radgivning", "556036-0793")).await.unwrap();
    let update = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(update.kind, Kind::Offered as i32);
    assert_eq!(update.task.as_ref().unwrap().case_id, first.id);
    let cursor = update.cursor.clone();
    drop(stream);

    let second = app.register_in("9999", small(&app, "w-2", "radgivning", "212000-0142")).await.unwrap();
    tasks_of(&app, &second.id, 1).await;
    let mut resumed =
        watcher.watch_tasks(pb::WatchTasksRequest { cursor, ..Default::default() }).await.unwrap().into_inner();
    let live = resumed.next().await.unwrap().unwrap();
    assert_eq!(live.kind, Kind::Live as i32);
    let missed = tokio::time::timeout(Duration::from_secs(10), resumed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(missed.kind, Kind::Offered as i32);
    assert_eq!(missed.task.unwrap().case_id, second.id);

    // A fresh watcher starts with a snapshot of both open tasks.
    let mut fresh = watcher.watch_tasks(pb::WatchTasksRequest::default()).await.unwrap().into_inner();
    assert_eq!(snapshot_cases(&mut fresh).await, sorted([first.id.clone(), second.id.clone()]));

    // An open stream does not hold up shutdown: the service ends it and drains at once.
    let mut app = app;
    let started = std::time::Instant::now();
    app.stop_routing().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited {:?}", started.elapsed());
    assert!(fresh.next().await.is_none_or(|u| u.is_err()), "the stream ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_registration_books_nothing_twice() {
    let app = spawn("2026-09-07 08:00").await;
    let case = app.register_in("9999", small(&app, "d-1", "radgivning", "556036-0793")).await.unwrap();
    assert_eq!(tasks_of(&app, &case.id, 1).await.len(), 1);
    let original = app.events_of("9999", "case.registered", 1).await;
    // The same event again under a new message id, as after JetStream's duplicate window.
    app.publish_raw_for("9999", "case.registered", uuid::Uuid::now_v7(), original[0].payload.to_vec()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(tasks_of(&app, &case.id, 0).await.len(), 1);
    let meetings: i64 =
        sqlx::query_scalar("SELECT count(*) FROM meetings").fetch_one(app.routing_pool()).await.unwrap();
    assert_eq!(meetings, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_case_frees_its_officers() {
    let app = spawn("2026-09-07 08:00").await;
    let case = app.register_in("9999", small(&app, "x-1", "bygglov", "556036-0793")).await.unwrap();
    assert_eq!(tasks_of(&app, &case.id, 1).await[0].2, "offered");
    app.withdraw(&case.id, "Företaget lägger ned").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tasks_of(&app, &case.id, 1).await[0].2 != "cancelled" {
        assert!(tokio::time::Instant::now() < deadline, "task not cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bookings WHERE active").fetch_one(app.routing_pool()).await.unwrap();
    assert_eq!(active, 0);
    // a1 has room again: two more cases fit both officers of capacity 1.
    let mut seated = BTreeSet::new();
    for key in ["x-2", "x-3"] {
        let next = app.register_in("9999", small(&app, key, "bygglov", "212000-0142")).await.unwrap();
        seated.insert(tasks_of(&app, &next.id, 1).await[0].0.clone());
    }
    assert_eq!(seated, BTreeSet::from(["a1".to_owned(), "a2".to_owned()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_registered_while_routing_is_down_is_routed_when_it_returns() {
    let mut app = spawn("2026-09-07 08:00").await;
    app.stop_routing().await;
    let case = app.register_in("9999", small(&app, "down-1", "radgivning", "556036-0793")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&app.get(&case.id).await), pb::CaseStatus::Registered);
    app.start_routing().await;
    app.eventually(&case.id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    assert_eq!(tasks_of(&app, &case.id, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_files_named_in_the_configuration_become_busy_time() {
    let app = spawn("2026-09-07 08:00").await;
    // The tenant's writer loads the calendars when it starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let busy: Vec<(String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT source, lower(during), upper(during) FROM busy WHERE officer_id = 'karin.ekstrom'
             ORDER BY lower(during)",
        )
        .fetch_all(app.routing_pool())
        .await
        .unwrap();
        if !busy.is_empty() || tokio::time::Instant::now() > deadline {
            break busy;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(busy.iter().all(|b| b.0 == "ical:calendars/karin.ekstrom.ics"));
    // The weekly Friday meeting, 13:00–15:00 local, also after the October DST change.
    assert!(busy.iter().any(|b| b.1 == local("2026-09-11 13:00") && b.2 == local("2026-09-11 15:00")));
    assert!(busy.iter().any(|b| b.1 == local("2026-10-30 13:00") && b.2 == local("2026-10-30 15:00")));
    // The vacation, as whole days.
    assert!(busy.iter().any(|b| b.1 == local("2026-07-06 00:00") && b.2 == local("2026-08-01 00:00")));

    // Loading the same configuration again (a restart) changes nothing.
    let mut app = app;
    app.stop_routing().await;
    app.start_routing().await;
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM busy WHERE officer_id = 'karin.ekstrom'")
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(again as usize, busy.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_five_seat_cases_at_once_all_end_routed_or_unroutable_without_double_booking() {
    let app = spawn("2026-09-07 08:00").await;
    let mut handles = Vec::new();
    for i in 0..300 {
        let (mut client, req) = (app.client.clone(), app.restaurant(&format!("rush-{i}")));
        handles.push(tokio::spawn(async move {
            // Past intake's in-flight limit the answer is RESOURCE_EXHAUSTED: retry, same key.
            register_retrying(&mut client, req).await.unwrap_or_else(|s| panic!("register: {s}")).id
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // A generous bound, not a timing assertion: it fails only if routing stops making progress.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM cases WHERE status NOT IN ('routed', 'unroutable')")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{open} of 300 cases were never routed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let overlaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings a JOIN bookings b ON a.officer_id = b.officer_id AND a.ctid < b.ctid
         WHERE a.active AND b.active AND a.during && b.during",
    )
    .fetch_one(app.routing_pool())
    .await
    .unwrap();
    assert_eq!(overlaps, 0, "an officer is double-booked");
    let decided: i64 = sqlx::query_scalar("SELECT count(*) FROM cases WHERE state IN ('open', 'unroutable')")
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(decided, 300);
    let live_meetings: Vec<(i64,)> = sqlx::query_as(
        "SELECT count(*) FROM meetings WHERE status <> 'cancelled' GROUP BY case_id HAVING count(*) > 1",
    )
    .fetch_all(app.routing_pool())
    .await
    .unwrap();
    assert!(live_meetings.is_empty(), "a case has two live meetings");
    // One routing decision per case, as one event.
    let routed = app.events_of(NKP, "case.routed", 0).await.len();
    let unroutable = app.events_of(NKP, "case.unroutable", 0).await.len();
    assert_eq!(routed + unroutable, 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_route_each_case_once_and_a_standby_takes_over() {
    let mut app = spawn("2026-09-07 08:00").await;
    // A second replica: routing for Norrköping is written by whichever holds the lease.
    let standby_token = CancellationToken::new();
    let (standby, standby_run) = app.start_routing_replica(standby_token.clone()).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(app.register(app.restaurant(&format!("rep-{i}"))).await.unwrap().id);
        if i == 19 {
            // The first replica goes away mid-load; the standby must take over.
            app.stop_routing().await;
        }
    }
    for id in &ids {
        app.eventually(id, "routed or unroutable", |c| {
            matches!(status(c), pb::CaseStatus::Routed | pb::CaseStatus::Unroutable)
        })
        .await;
    }
    let pool = db::connect(&app.db.url(), lots_routing::app::SCHEMA, 2, Duration::from_secs(5)).await.unwrap();
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT case_id FROM meetings WHERE status <> 'cancelled'
                               GROUP BY case_id HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(twice, 0, "a case was routed twice");
    let decided: i64 = sqlx::query_scalar("SELECT count(*) FROM cases").fetch_one(&pool).await.unwrap();
    assert_eq!(decided, 40);
    let routed = app.events_of(NKP, "case.routed", 0).await.len();
    let unroutable = app.events_of(NKP, "case.unroutable", 0).await.len();
    assert_eq!(routed + unroutable, 40, "one routing decision per case");
    // A task command sent to the standby reaches the tenant's writer.
    let (task_id, officer): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, officer_id FROM tasks WHERE status = 'offered' LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let accepted = app
        .tasks_at(standby, &officer)
        .await
        .accept_task(pb::AcceptTaskRequest { task_id: task_id.to_string(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status, pb::TaskStatus::Accepted as i32);
    standby_token.cancel();
    standby_run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_retried_after_a_lost_reply_is_applied_once_and_answered_the_same() {
    use lots_routing::writer::{Command, Reply, Request, WireError};
    let app = spawn("2026-09-07 08:00").await;
    let period = (local("2026-10-05 08:00"), local("2026-10-09 17:00"));
    let command = Command {
        id: uuid::Uuid::now_v7(),
        request: Request::AddAbsence { officer: "a1".into(), period, note: Some("Semester".into()) },
        audit: None,
    };
    // Another routing replica's connection, as forwarded commands come.
    let nats = app.nats.connect_as("routing").await.unwrap();
    let subject = app.subjects.control("routing", "9999");
    let body = serde_json::to_vec(&command).unwrap();
    // The caller did not hear the first answer and sends the same command again.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let answer = loop {
            match nats.request(subject.clone(), body.clone().into()).await {
                Ok(msg) => break msg,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(err) => panic!("no writer answered: {err}"),
            }
        };
        let answer: Result<Reply, WireError> = serde_json::from_slice(&answer.payload).unwrap();
        answers.push(format!("{answer:?}"));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].starts_with("Ok(Stored(1))"), "{}", answers[0]);
    let absences: i64 = sqlx::query_scalar("SELECT count(*) FROM busy WHERE officer_id = 'a1' AND source = 'absence'")
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(absences, 1, "the retried absence was stored twice");
    // A command that bypasses the gRPC edge is still checked by the writer.
    let backwards = Command {
        id: uuid::Uuid::now_v7(),
        request: Request::AddAbsence { officer: "a1".into(), period: (period.1, period.0), note: None },
        audit: None,
    };
    let answer = nats.request(subject, serde_json::to_vec(&backwards).unwrap().into()).await.unwrap();
    let answer: Result<Reply, WireError> = serde_json::from_slice(&answer.payload).unwrap();
    assert!(answer.is_err_and(|e| e.field.as_deref() == Some("period.end")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poisonous_event_does_not_hold_up_the_cases_batched_with_it() {
    let mut app = spawn("2026-09-07 08:00").await;
    let first = app.register_in("9999", small(&app, "p-0", "radgivning", "556036-0793")).await.unwrap();
    app.eventually(&first.id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    app.stop_routing().await;
    // A registration routing can never store (Postgres refuses NUL in text), first in the queue.
    let mut poison = envelope(&app.events_of("9999", "case.registered", 1).await[0]);
    let poison_case = uuid::Uuid::now_v7();
    poison["id"] = serde_json::json!(uuid::Uuid::now_v7());
    poison["case_id"] = serde_json::json!(poison_case);
    poison["data"]["company_name"] = serde_json::json!("Giftig\u{0}AB");
    let id = uuid::Uuid::parse_str(poison["id"].as_str().unwrap()).unwrap();
    app.publish_raw_for("9999", "case.registered", id, serde_json::to_vec(&poison).unwrap()).await;
    let mut ids = Vec::new();
    for i in 1..=20 {
        ids.push(
            app.register_in("9999", small(&app, &format!("p-{i}"), "radgivning", "212000-0142")).await.unwrap().id,
        );
    }
    app.start_routing().await;
    for id in &ids {
        app.eventually(id, "routed or unroutable", |c| {
            matches!(status(c), pb::CaseStatus::Routed | pb::CaseStatus::Unroutable)
        })
        .await;
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM cases WHERE id = $1")
        .bind(poison_case)
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_routing_may_reach_the_writers_or_emit_routing_events_on_nats() {
    use lots_routing::writer::{Command, Request};
    let app = spawn("2026-09-07 08:00").await;
    let period = (local("2026-10-05 08:00"), local("2026-10-09 17:00"));
    let command = Command {
        id: uuid::Uuid::now_v7(),
        request: Request::AddAbsence { officer: "a1".into(), period, note: None },
        audit: None,
    };
    let body = serde_json::to_vec(&command).unwrap();
    let subject = app.subjects.control("routing", "9999");
    // Intake's and sla's NATS users may not command a routing writer.
    for service in ["intake", "sla"] {
        let nc = app.nats.connect_as(service).await.unwrap();
        let answer =
            tokio::time::timeout(Duration::from_secs(3), nc.request(subject.clone(), body.clone().into())).await;
        assert!(!matches!(answer, Ok(Ok(_))), "{service} reached the routing writer");
    }
    // Nor emit routing's events: the stream never gets them.
    let js = async_nats::jetstream::new(app.nats.connect_as("intake").await.unwrap());
    let published = async { js.publish(app.subjects.event("9999", "task.accepted"), "{}".into()).await?.await };
    let stored = tokio::time::timeout(Duration::from_secs(3), published).await;
    assert!(!matches!(stored, Ok(Ok(_))), "intake published a routing event");
    let absences: i64 = sqlx::query_scalar("SELECT count(*) FROM busy WHERE source = 'absence'")
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(absences, 0);
    // No service may delete the stream, nor sla a consumer of another service.
    let sla = async_nats::jetstream::new(app.nats.connect_as("sla").await.unwrap());
    let deleted = tokio::time::timeout(Duration::from_secs(3), sla.delete_stream(app.subjects.stream_name())).await;
    assert!(!matches!(deleted, Ok(Ok(_))), "sla deleted the stream");
    let stream = sla.get_stream(app.subjects.stream_name()).await.expect("the stream is still there");
    let dropped = tokio::time::timeout(Duration::from_secs(3), stream.delete_consumer("intake")).await;
    assert!(!matches!(dropped, Ok(Ok(_))), "sla deleted intake's consumer");
    // Routing's own user is answered.
    let nc = app.nats.connect_as("routing").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while nc.request(subject.clone(), body.clone().into()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "routing's user got no answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_busy_ranges_are_refused_by_name_and_nothing_is_stored() {
    let app = spawn("2026-09-07 08:00").await;
    let ranges: Vec<pb::TimeRange> = (0..5_001)
        .map(|i| {
            let start = local("2026-10-05 08:00") + chrono::Duration::minutes(i);
            let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
            pb::TimeRange { start: Some(ts(start)), end: Some(ts(start + chrono::Duration::seconds(30))) }
        })
        .collect();
    let req = pb::SetBusyTimesRequest {
        officer_id: "a1".into(),
        source: "exchange".into(),
        busy: ranges,
        ..Default::default()
    };
    let err = app.officers_as("9999", Who::Admin).await.set_busy_times(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["busy"], "{err:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM busy WHERE source = 'exchange'")
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_task_list_comes_in_pages_in_meeting_order() {
    let app = spawn("2026-09-07 08:00").await;
    let mut ids = Vec::new();
    for (i, org) in ["556036-0793", "212000-0142", "556016-0680"].into_iter().enumerate() {
        ids.push(app.register_in("9999", small(&app, &format!("pg-{i}"), "radgivning", org)).await.unwrap().id);
    }
    for id in &ids {
        app.eventually(id, "routed", |c| status(c) == pb::CaseStatus::Routed).await;
    }
    let mut chef = app.tasks("9999/chef").await;
    let page = |token: String| pb::ListTasksRequest { page_size: 2, page_token: token, ..Default::default() };
    let first = chef.list_tasks(page(String::new())).await.unwrap().into_inner();
    assert_eq!(first.tasks.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = chef.list_tasks(page(first.next_page_token.clone())).await.unwrap().into_inner();
    assert_eq!(second.tasks.len(), 1);
    assert!(second.next_page_token.is_empty(), "the last page says so");
    let all: BTreeSet<String> = first.tasks.iter().chain(&second.tasks).map(|t| t.case_id.clone()).collect();
    assert_eq!(all, ids.iter().cloned().collect::<BTreeSet<_>>());
    let starts: Vec<i64> =
        first.tasks.iter().chain(&second.tasks).map(|t| t.meeting_starts_at.unwrap().seconds).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "in meeting order");
    let err = chef.list_tasks(page("nonsense".into())).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["page_token"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_skips_a_poisoned_event_and_the_later_events_of_its_case_follow() {
    use lots_events::{CaseClosed, Envelope};
    let app = TestApp::spawn_with(TestNats::start().unwrap(), Options { routing: true, ..Default::default() }).await;
    let case_id = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    let closed = CaseClosed { outcome: "avslutat".into(), decision: "Klart".into() };
    // Version 1 is a case.registered routing cannot read; version 2 closes the case.
    let mut first = Envelope::new(NKP, case_id, 1, "intake", now, closed.clone()).into_raw().unwrap();
    first.kind = "case.registered".into();
    first.data = serde_json::json!({ "case_type": 42 });
    app.publish_event(&first).await;
    let second = Envelope::new(NKP, case_id, 2, "intake", now, closed).into_raw().unwrap();
    app.publish_event(&second).await;

    let addr = app.routing.as_ref().unwrap().addr;
    let mut admin =
        pb::dead_letter_service_client::DeadLetterServiceClient::new(app.channel_as(addr, NKP, Who::Admin).await);
    // The first is dead-lettered at once (it cannot be read); the second is held behind it
    // instead of being retried ten times.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let req = pb::ListDeadLettersRequest { open_only: true, limit: 0 };
        let letters = admin.list_dead_letters(req).await.unwrap().into_inner().letters;
        if letters.len() == 2 {
            break letters;
        }
        assert!(tokio::time::Instant::now() < deadline, "dead letters: {letters:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let held = letters.iter().find(|l| l.version == 2).unwrap();
    assert_eq!(held.held_behind, first.id.to_string());
    assert!(held.deliveries <= 2, "the held event was retried {} times", held.deliveries);
    let shown =
        admin.get_dead_letter(pb::GetDeadLetterRequest { event_id: first.id.to_string() }).await.unwrap().into_inner();
    assert!(shown.payload.contains("\"case_type\":42"), "{}", shown.payload);
    assert_eq!(shown.source, "intake");

    // Replaying the poisoned one fails again and says why; the held one cannot jump the queue.
    let replay = pb::ReplayDeadLetterRequest { event_id: first.id.to_string(), note: String::new() };
    let err = admin.replay_dead_letter(replay).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("bad case.registered"), "{}", err.message());
    let replay = pb::ReplayDeadLetterRequest { event_id: second.id.to_string(), note: String::new() };
    let err = admin.replay_dead_letter(replay).await.unwrap_err();
    assert!(err.message().contains("held behind"), "{}", err.message());

    // Skipping needs a reason; with one, the held event follows and is applied.
    let skip = pb::SkipDeadLetterRequest { event_id: first.id.to_string(), note: " ".into() };
    assert_eq!(violated_fields(&admin.skip_dead_letter(skip).await.unwrap_err()), ["note"]);
    let skip = pb::SkipDeadLetterRequest { event_id: first.id.to_string(), note: "Felaktig testhändelse".into() };
    let resolution = admin.skip_dead_letter(skip.clone()).await.unwrap().into_inner();
    assert_eq!(resolution.letter.as_ref().unwrap().status, "skipped");
    assert!(resolution.letter.as_ref().unwrap().resolved_by.contains("admin"));
    assert_eq!(resolution.also_applied, [second.id.to_string()]);
    assert_eq!(resolution.still_held, "");
    // A retried skip returns the first result.
    let again = admin.skip_dead_letter(skip).await.unwrap().into_inner();
    assert_eq!(again.letter.unwrap().status, "skipped");
    let open = admin.list_dead_letters(pb::ListDeadLettersRequest { open_only: true, limit: 0 }).await.unwrap();
    assert!(open.into_inner().letters.is_empty());
    let cursor: i64 = sqlx::query_scalar("SELECT version FROM case_cursor WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(cursor, 2, "the case's order moved past both");

    // Only admins see dead letters.
    let mut reception =
        pb::dead_letter_service_client::DeadLetterServiceClient::new(app.channel_as(addr, NKP, Who::Reception).await);
    let denied = reception.list_dead_letters(pb::ListDeadLettersRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn pruned_task_changes_give_an_old_cursor_a_fresh_snapshot_and_past_busy_time_goes() {
    let app = spawn("2026-09-07 08:00").await;
    let mut watcher = app.tasks("9999/chef").await;
    let first = app.register_in("9999", small(&app, "p-1", "radgivning", "556036-0793")).await.unwrap();
    tasks_of(&app, &first.id, 1).await;
    let second = app.register_in("9999", small(&app, "p-2", "radgivning", "212000-0142")).await.unwrap();
    tasks_of(&app, &second.id, 1).await;
    // A client last saw change 1; both changes are then older than the retention period.
    sqlx::query("UPDATE task_changes SET at = now() - interval '31 days'").execute(app.routing_pool()).await.unwrap();
    sqlx::query(
        "INSERT INTO busy (tenant, officer_id, source, during) VALUES
           ('9999', 'chef', 'probe', tstzrange(now() - interval '40 days', now() - interval '39 days')),
           ('9999', 'chef', 'probe', tstzrange(now() + interval '1 day', now() + interval '2 days'))",
    )
    .execute(app.routing_pool())
    .await
    .unwrap();
    let jobs = lots_routing::app::retention_jobs();
    let retention = lots_platform::retention::Retention::default();
    let done =
        lots_platform::retention::prune(app.routing_pool(), &jobs, &retention, &app.tenants(), chrono::Utc::now())
            .await;
    assert_eq!(done.unwrap()[0], ("task_changes", 2));
    let probes: Vec<bool> = sqlx::query_scalar("SELECT upper(during) > now() FROM busy WHERE source = 'probe'")
        .fetch_all(app.routing_pool())
        .await
        .unwrap();
    assert_eq!(probes, [true], "busy time that ended long ago goes; future busy time stays");

    // Resuming from change 1 would silently miss change 2: the watcher gets a snapshot instead.
    let req = pb::WatchTasksRequest { cursor: "1".into(), ..Default::default() };
    let mut resumed = watcher.watch_tasks(req).await.unwrap().into_inner();
    assert_eq!(snapshot_cases(&mut resumed).await, sorted([first.id.clone(), second.id.clone()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn recurring_calendar_entries_are_expanded_again_each_day() {
    let options = Options { routing: true, now: Some("2026-09-07 08:00"), ..Default::default() };
    let app = TestApp::spawn_with(TestNats::start().unwrap(), options).await;
    // Karin's calendar file has a weekly Friday entry; it is expanded 180 days ahead.
    let later = |app: &TestApp| {
        let pool = app.routing_pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM busy WHERE source LIKE 'ical:%' AND lower(during) > '2027-04-01'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM busy WHERE source LIKE 'ical:%'")
        .fetch_one(app.routing_pool())
        .await
        .unwrap()
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "the calendar was never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(later(&app).await, 0, "nothing beyond the horizon yet");
    // Months later, in a process that kept running, the Fridays of April 2027 are busy too.
    app.clock.set(local("2026-12-01 08:00"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while later(&app).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "recurring busy time was not expanded again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
