//! The gRPC services of routing: `TaskService` for handläggare, `OfficerService` for calendars.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lots_domain::ical::{Attendee, Invite, render_invite};
use lots_platform::auth::{self, Caller};
use lots_proto::time::{timestamp, utc};
use lots_proto::v1 as pb;
use pb::officer_service_server::OfficerService;
use pb::task_service_server::TaskService;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::instrument;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::route::Routing;
use crate::store::{self, TaskRow};
use crate::watch::Hub;
use crate::writer::{Request as Command, Writers};
use lots_platform::audit::{self, Entry};
use serde_json::json;

/// The gRPC face of routing.
#[derive(Clone)]
pub struct RoutingApi {
    pub(crate) routing: Routing,
    pub(crate) hub: Hub,
    pub(crate) writers: Writers,
    /// Ends open `WatchTasks` streams when the service shuts down, so draining does not wait.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    pub(crate) streams: lots_platform::streams::StreamLimits,
}

type Reply<T> = std::result::Result<Response<T>, Status>;

/// The verified caller, and the officer whose tasks or calendar the call is about: `requested`,
/// or the caller's own when empty. Only that officer, their unit's manager or (for calendars) an
/// admin may act for them.
fn acting<T>(req: &Request<T>, requested: &str, calendar: bool) -> std::result::Result<(Caller, String), Status> {
    let caller = auth::caller(req)?;
    let officer = match requested.trim() {
        "" => caller.officer()?.to_owned(),
        other => other.to_owned(),
    };
    if !caller.may_act_for(&officer, calendar) {
        return Err(Status::permission_denied(format!("the caller may not act for officer {officer:?}")));
    }
    Ok((caller, officer))
}

/// The verified caller and their own officer id, for calls only the officer makes.
fn own<T>(req: &Request<T>) -> std::result::Result<(String, String), Status> {
    let caller = auth::caller(req)?;
    let officer = caller.officer()?.to_owned();
    Ok((caller.tenant, officer))
}

/// The writer command id for a call with an idempotency key: the same caller, call and key
/// give the same id, so the writer applies a retry once and answers with the first reply.
fn command_id<T>(req: &Request<T>, rpc: &str, key: &str) -> Option<Uuid> {
    let key = key.trim();
    let caller = req.extensions().get::<Caller>()?;
    let name = format!("{}\n{}\n{rpc}\n{key}", caller.issuer, caller.subject);
    (!key.is_empty()).then(|| Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()))
}

/// The (meeting start, task id) a ListTasks page token stands for.
fn page_token(token: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = token.split_once('_')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

fn task_id(value: &str) -> Result<Uuid> {
    Uuid::parse_str(value.trim())
        .map_err(|_| Error::Invalid { field: "task_id", message: "must be a task id (a UUID)".into() })
}

fn from_ts(field: &'static str, t: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>> {
    utc(t).ok_or_else(|| Error::Invalid { field, message: "is required".into() })
}

fn status_to_pb(s: &str) -> pb::TaskStatus {
    match s {
        "offered" => pb::TaskStatus::Offered,
        "accepted" => pb::TaskStatus::Accepted,
        "declined" => pb::TaskStatus::Declined,
        "completed" => pb::TaskStatus::Completed,
        "cancelled" => pb::TaskStatus::Cancelled,
        _ => pb::TaskStatus::Unspecified,
    }
}

fn status_from_pb(s: pb::TaskStatus) -> Option<&'static str> {
    match s {
        pb::TaskStatus::Unspecified => None,
        pb::TaskStatus::Offered => Some("offered"),
        pb::TaskStatus::Accepted => Some("accepted"),
        pb::TaskStatus::Declined => Some("declined"),
        pb::TaskStatus::Completed => Some("completed"),
        pb::TaskStatus::Cancelled => Some("cancelled"),
    }
}

/// The proto form of a task.
pub fn task_to_pb(t: TaskRow) -> pb::Task {
    pb::Task {
        id: t.id.to_string(),
        case_id: t.case_id.to_string(),
        case_reference: t.case_reference,
        case_type: t.case_type,
        company_name: t.company_name,
        meeting_id: t.meeting_id.to_string(),
        tenant: t.tenant,
        officer_id: t.officer_id,
        competence: t.competence,
        status: status_to_pb(&t.status) as i32,
        reason: t.reason.unwrap_or_default(),
        meeting_starts_at: Some(timestamp(t.starts_at)),
        meeting_ends_at: Some(timestamp(t.ends_at)),
        created_at: Some(timestamp(t.created_at)),
        updated_at: Some(timestamp(t.updated_at)),
    }
}

fn kind_to_pb(kind: &str) -> pb::task_update::Kind {
    use pb::task_update::Kind;
    match kind {
        "offered" => Kind::Offered,
        "accepted" => Kind::Accepted,
        "declined" => Kind::Declined,
        "completed" => Kind::Completed,
        "cancelled" => Kind::Cancelled,
        "moved" => Kind::Moved,
        _ => Kind::Unspecified,
    }
}

impl RoutingApi {
    /// Applies a task command through the tenant's writer.
    async fn task_command(&self, tenant: &str, command: Command, id: Option<Uuid>, audit: Entry) -> Reply<pb::Task> {
        if self.routing.tenants.get(tenant).is_none() {
            return Err(Error::NotFound(format!("no tenant {tenant:?}")).into());
        }
        match self.writers.call(tenant, command, id, Some(audit)).await? {
            crate::writer::Reply::Task(task) => Ok(Response::new(task_to_pb(*task))),
            _ => Err(Status::internal("unexpected reply from the routing writer")),
        }
    }

    /// Applies a calendar command through the tenant's writer.
    async fn stored_command(
        &self,
        tenant: &str,
        command: Command,
        id: Option<Uuid>,
        audit: Entry,
    ) -> Reply<pb::SetBusyTimesResponse> {
        if self.routing.tenants.get(tenant).is_none() {
            return Err(Error::NotFound(format!("no tenant {tenant:?}")).into());
        }
        match self.writers.call(tenant, command, id, Some(audit)).await? {
            crate::writer::Reply::Stored(stored) => Ok(Response::new(pb::SetBusyTimesResponse { stored })),
            _ => Err(Status::internal("unexpected reply from the routing writer")),
        }
    }
}

#[tonic::async_trait]
impl TaskService for RoutingApi {
    #[instrument(name = "routing.grpc.list_tasks", skip_all)]
    async fn list_tasks(&self, req: Request<pb::ListTasksRequest>) -> Reply<pb::ListTasksResponse> {
        let (caller, officer) = acting(&req, &req.get_ref().officer_id, false)?;
        let tenant = caller.tenant.clone();
        let mut statuses = Vec::new();
        for s in &req.get_ref().statuses {
            match pb::TaskStatus::try_from(*s).ok().and_then(status_from_pb) {
                Some(s) => statuses.push(s),
                None => {
                    return Err(Error::Invalid { field: "statuses", message: "holds an unknown status".into() }.into());
                }
            }
        }
        if statuses.is_empty() {
            statuses = vec!["offered", "accepted"];
        }
        let req = req.get_ref();
        let page_size = match req.page_size {
            0 => 100,
            n @ 1..=500 => i64::from(n),
            _ => return Err(Error::Invalid { field: "page_size", message: "must be between 1 and 500".into() }.into()),
        };
        let after = match req.page_token.trim() {
            "" => None,
            token => Some(page_token(token).ok_or_else(|| Error::Invalid {
                field: "page_token",
                message: "is not a token from a previous ListTasks".into(),
            })?),
        };
        // One extra row tells whether another page exists.
        let page = store::Page { after, limit: Some(page_size + 1) };
        let mut tasks =
            store::officer_tasks(&self.routing.pool, &tenant, &officer, &statuses, page).await.map_err(Error::from)?;
        let more = tasks.len() as i64 > page_size;
        tasks.truncate(page_size as usize);
        let next_page_token = match (more, tasks.last()) {
            (true, Some(last)) => format!("{}_{}", last.starts_at.timestamp_micros(), last.id),
            _ => String::new(),
        };
        // Each task, and its case: "who looked at this case" finds the task lists too.
        let read = tasks.iter().flat_map(|t| [t.id.to_string(), t.case_id.to_string()]).collect();
        audit::read(&self.routing.pool, &caller, "TaskService/ListTasks", read).await?;
        Ok(Response::new(pb::ListTasksResponse { tasks: tasks.into_iter().map(task_to_pb).collect(), next_page_token }))
    }

    type WatchTasksStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = std::result::Result<pb::TaskUpdate, Status>> + Send>>;

    #[instrument(name = "routing.grpc.watch_tasks", skip_all)]
    async fn watch_tasks(&self, req: Request<pb::WatchTasksRequest>) -> Reply<Self::WatchTasksStream> {
        let (caller, officer) = acting(&req, &req.get_ref().officer_id, false)?;
        let tenant = caller.tenant.clone();
        let cursor = req.get_ref().cursor.trim();
        let resume = if cursor.is_empty() {
            None
        } else {
            Some(cursor.parse::<i64>().map_err(|_| Error::Invalid {
                field: "cursor",
                message: "is not a cursor from an earlier TaskUpdate".into(),
            })?)
        };
        let permit = self.streams.admit(&caller)?;
        audit::read(&self.routing.pool, &caller, "TaskService/WatchTasks", vec![officer.clone()]).await?;
        let pool = self.routing.pool.clone();
        let stopping = self.stopping.clone();
        let mut wake = self.hub.subscribe(&format!("{tenant}/{officer}"));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        // The stream's queries run in its own task, scoped to the caller's tenant.
        let scope = caller.tenant.clone();
        tokio::spawn(lots_platform::db::scoped(scope, async move {
            let _permit = permit;
            let result: Result<()> = async {
                // A cursor from before retention deleted its changes gets a fresh snapshot.
                let resume = match resume {
                    Some(seq) if !store::cursor_pruned(&pool, &tenant, &officer, seq).await? => Some(seq),
                    _ => None,
                };
                let mut seq = match resume {
                    Some(seq) => seq,
                    None => {
                        let seq = store::change_seq(&pool, &tenant, &officer).await?.unwrap_or(0);
                        let all = store::Page::default();
                        let open =
                            store::officer_tasks(&pool, &tenant, &officer, &["offered", "accepted"], all).await?;
                        for t in open {
                            let update = pb::TaskUpdate {
                                kind: pb::task_update::Kind::Snapshot as i32,
                                task: Some(task_to_pb(t)),
                                cursor: seq.to_string(),
                            };
                            if tx.send(Ok(update)).await.is_err() {
                                return Ok(());
                            }
                        }
                        seq
                    }
                };
                let live =
                    pb::TaskUpdate { kind: pb::task_update::Kind::Live as i32, task: None, cursor: seq.to_string() };
                if tx.send(Ok(live)).await.is_err() {
                    return Ok(());
                }
                loop {
                    for (s, kind, task) in store::changes_after(&pool, &tenant, &officer, seq).await? {
                        seq = s;
                        let update = pb::TaskUpdate {
                            kind: kind_to_pb(&kind) as i32,
                            task: Some(task_to_pb(task)),
                            cursor: s.to_string(),
                        };
                        if tx.send(Ok(update)).await.is_err() {
                            return Ok(());
                        }
                    }
                    // The replica's one listener wakes us when this officer's tasks change (and
                    // everyone after it reconnects); the slow timer is only a safety net.
                    tokio::select! {
                        _ = tx.closed() => return Ok(()),
                        _ = stopping.cancelled() => return Ok(()),
                        _ = wake.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                }
            }
            .await;
            if let Err(err) = result {
                let _ = tx.send(Err(err.into())).await;
            }
        }));
        Ok(Response::new(auth::until_expiry(ReceiverStream::new(rx), &caller)))
    }

    #[instrument(name = "routing.grpc.accept_task", skip_all)]
    async fn accept_task(&self, req: Request<pb::AcceptTaskRequest>) -> Reply<pb::Task> {
        let (tenant, officer) = own(&req)?;
        let id = task_id(&req.get_ref().task_id)?;
        let key = command_id(&req, "accept", &req.get_ref().idempotency_key);
        let audit = Entry::change(
            &auth::caller(&req)?,
            "TaskService/AcceptTask",
            vec![id.to_string()],
            json!({ "status": "accepted" }),
        );
        self.task_command(&tenant, Command::Accept { officer, task_id: id }, key, audit).await
    }

    #[instrument(name = "routing.grpc.decline_task", skip_all)]
    async fn decline_task(&self, req: Request<pb::DeclineTaskRequest>) -> Reply<pb::Task> {
        let (tenant, officer) = own(&req)?;
        let id = task_id(&req.get_ref().task_id)?;
        // The writer's command checks the reason (Request::validate).
        let reason = req.get_ref().reason.trim().to_owned();
        let key = command_id(&req, "decline", &req.get_ref().idempotency_key);
        let audit = Entry::change(
            &auth::caller(&req)?,
            "TaskService/DeclineTask",
            vec![id.to_string()],
            json!({ "status": "declined" }),
        );
        self.task_command(&tenant, Command::Decline { officer, task_id: id, reason }, key, audit).await
    }

    #[instrument(name = "routing.grpc.reassign_case_owner", skip_all)]
    async fn reassign_case_owner(&self, req: Request<pb::ReassignCaseOwnerRequest>) -> Reply<pb::CaseOwnership> {
        let caller = auth::caller(&req)?;
        let case_id = Uuid::parse_str(req.get_ref().case_id.trim())
            .map_err(|_| Error::Invalid { field: "case_id", message: "must be a case id (a UUID)".into() })?;
        let officer = req.get_ref().officer_id.trim().to_owned();
        let reason = req.get_ref().reason.trim().to_owned();
        let key = command_id(&req, "reassign-owner", &req.get_ref().idempotency_key);
        let units = caller.units();
        let changes = json!({ "owner": officer });
        let audit = Entry::change(&caller, "TaskService/ReassignCaseOwner", vec![case_id.to_string()], changes);
        let command = Command::ReassignOwner { case_id, officer, reason, units };
        match self.writers.call(&caller.tenant, command, key, Some(audit)).await? {
            crate::writer::Reply::Owner(officer_id, unit) => {
                Ok(Response::new(pb::CaseOwnership { case_id: case_id.to_string(), officer_id, unit }))
            }
            _ => Err(Status::internal("unexpected reply from the routing writer")),
        }
    }

    #[instrument(name = "routing.grpc.complete_task", skip_all)]
    async fn complete_task(&self, req: Request<pb::CompleteTaskRequest>) -> Reply<pb::Task> {
        let (tenant, officer) = own(&req)?;
        let id = task_id(&req.get_ref().task_id)?;
        let key = command_id(&req, "complete", &req.get_ref().idempotency_key);
        let audit = Entry::change(
            &auth::caller(&req)?,
            "TaskService/CompleteTask",
            vec![id.to_string()],
            json!({ "status": "completed" }),
        );
        self.task_command(&tenant, Command::Complete { officer, task_id: id }, key, audit).await
    }

    #[instrument(name = "routing.grpc.get_meeting", skip_all)]
    async fn get_meeting(&self, req: Request<pb::GetMeetingRequest>) -> Reply<pb::Meeting> {
        let caller = auth::caller(&req)?;
        let pool = &self.routing.pool;
        let parse = |field: &'static str, v: &str| {
            Uuid::parse_str(v.trim()).map_err(|_| Error::Invalid { field, message: "must be a UUID".into() })
        };
        let meeting = match &req.get_ref().lookup {
            Some(pb::get_meeting_request::Lookup::MeetingId(id)) => {
                store::meeting(pool, parse("meeting_id", id)?).await
            }
            Some(pb::get_meeting_request::Lookup::CaseId(id)) => store::live_meeting(pool, parse("case_id", id)?).await,
            None => {
                return Err(Error::Invalid { field: "lookup", message: "give meeting_id or case_id".into() }.into());
            }
        }
        .map_err(Error::from)?
        .filter(|m| m.tenant == caller.tenant)
        .ok_or_else(|| Error::NotFound("no such meeting".into()))?;
        let tasks = store::meeting_tasks(pool, meeting.id).await.map_err(Error::from)?;
        // A handläggare sees meetings they sit at, an enhetschef those of their unit's officers.
        let seated = tasks.iter().filter(|t| matches!(t.status.as_str(), "offered" | "accepted" | "completed"));
        if caller.units().is_some() && !seated.clone().any(|t| caller.may_act_for(&t.officer_id, false)) {
            return Err(Error::NotFound("no such meeting".into()).into());
        }
        let case: store::CaseRow = sqlx::query_as("SELECT * FROM cases WHERE id = $1")
            .bind(meeting.case_id)
            .fetch_one(pool)
            .await
            .map_err(Error::from)?;
        let tenant =
            self.routing.tenants.get(&meeting.tenant).cloned().ok_or_else(|| Error::Config("tenant gone".into()))?;
        let mut attendees = Vec::new();
        let mut invitees = Vec::new();
        for t in tasks.iter().filter(|t| matches!(t.status.as_str(), "offered" | "accepted" | "completed")) {
            let (name, email) = tenant
                .officer(&t.officer_id)
                .map(|o| (o.name.clone(), o.email.clone()))
                .unwrap_or_else(|| (t.officer_id.clone(), String::new()));
            invitees.push(Attendee { name: name.clone(), email: email.clone(), required: !t.optional });
            attendees.push(pb::Attendee {
                name,
                email,
                officer_id: t.officer_id.clone(),
                competence: t.competence.clone(),
                task_status: status_to_pb(&t.status) as i32,
            });
        }
        invitees.push(Attendee { name: case.contact_name.clone(), email: case.contact_email.clone(), required: true });
        attendees.push(pb::Attendee {
            name: case.contact_name.clone(),
            email: case.contact_email.clone(),
            ..Default::default()
        });
        let organizer = tenant
            .officer(&tenant.naringslivschef)
            .map(|o| Attendee {
                name: format!("Företagslotsen, {}", tenant.name),
                email: o.email.clone(),
                required: true,
            })
            .unwrap_or_else(|| Attendee { name: tenant.name.clone(), email: String::new(), required: true });
        let case_type_name =
            tenant.case_type(&case.case_type).map(|c| c.name.clone()).unwrap_or_else(|| case.case_type.clone());
        audit::read(pool, &caller, "TaskService/GetMeeting", vec![meeting.id.to_string(), case.id.to_string()]).await?;
        let invite = Invite {
            uid: format!("{}@lotsen", meeting.id),
            sequence: meeting.sequence as u32,
            stamp: self.routing.clock.now(),
            start: meeting.starts_at,
            end: meeting.ends_at,
            summary: format!("Dukat bord: {} – {}", case.company_name, case_type_name),
            description: format!(
                "Ärende {} ({}). Ett gemensamt möte med alla handläggare som ärendet behöver.",
                case.reference, case_type_name
            ),
            location: meeting.location.clone(),
            organizer,
            attendees: invitees,
            cancelled: meeting.status == "cancelled",
        };
        let status = match meeting.status.as_str() {
            "proposed" => pb::MeetingStatus::Proposed,
            "booked" => pb::MeetingStatus::Booked,
            _ => pb::MeetingStatus::Cancelled,
        };
        Ok(Response::new(pb::Meeting {
            id: meeting.id.to_string(),
            case_id: meeting.case_id.to_string(),
            case_reference: case.reference.clone(),
            tenant: meeting.tenant.clone(),
            status: status as i32,
            starts_at: Some(timestamp(meeting.starts_at)),
            ends_at: Some(timestamp(meeting.ends_at)),
            location: meeting.location.clone(),
            attendees,
            ics: render_invite(&invite),
            sequence: meeting.sequence as u32,
        }))
    }
}

#[tonic::async_trait]
impl OfficerService for RoutingApi {
    #[instrument(name = "routing.grpc.set_busy_times", skip_all)]
    async fn set_busy_times(&self, req: Request<pb::SetBusyTimesRequest>) -> Reply<pb::SetBusyTimesResponse> {
        let (caller, officer) = acting(&req, &req.get_ref().officer_id, true)?;
        let key = command_id(&req, "set_busy_times", &req.get_ref().idempotency_key);
        let req = req.into_inner();
        let source = req.source.trim();
        if source.is_empty() || source == "absence" || source.starts_with("ical:") {
            return Err(Error::Invalid {
                field: "source",
                message: "is required (e.g. \"admin\"); \"absence\" and \"ical:\" are reserved".into(),
            }
            .into());
        }
        let mut ranges = Vec::with_capacity(req.busy.len());
        for r in &req.busy {
            ranges.push((from_ts("busy.start", r.start.as_ref())?, from_ts("busy.end", r.end.as_ref())?));
        }
        let changes = json!({ "source": source, "ranges": ranges.len() });
        let audit = Entry::change(&caller, "OfficerService/SetBusyTimes", vec![officer.clone()], changes);
        let command = Command::SetBusy { officer, source: source.to_owned(), ranges };
        self.stored_command(&caller.tenant, command, key, audit).await
    }

    #[instrument(name = "routing.grpc.set_absence", skip_all)]
    async fn set_absence(&self, req: Request<pb::SetAbsenceRequest>) -> Reply<pb::SetBusyTimesResponse> {
        let (caller, officer) = acting(&req, &req.get_ref().officer_id, true)?;
        let key = command_id(&req, "set_absence", &req.get_ref().idempotency_key);
        let req = req.into_inner();
        let period = req.period.as_ref();
        let s = from_ts("period.start", period.and_then(|p| p.start.as_ref()))?;
        let e = from_ts("period.end", period.and_then(|p| p.end.as_ref()))?;
        let note = Some(req.reason.trim()).filter(|r| !r.is_empty());
        let changes = json!({ "absence": [s, e] });
        let audit = Entry::change(&caller, "OfficerService/SetAbsence", vec![officer.clone()], changes);
        let command = Command::AddAbsence { officer, period: (s, e), note: note.map(String::from) };
        self.stored_command(&caller.tenant, command, key, audit).await
    }
}
