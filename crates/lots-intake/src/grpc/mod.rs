//! The `IntakeService` gRPC implementation: requests in, cases out; `ComplaintService` and
//! `VisitService` beside it.

mod complaints;
mod visits;

use std::sync::Arc;

use lots_domain::{CaseStatus, Outcome, Reference};
use lots_platform::audit;
use lots_platform::auth::{self, Caller};
use lots_proto::time::timestamp;
use lots_proto::v1 as pb;
use pb::intake_service_server::IntakeService;
use tonic::{Request, Response, Status};
use tracing::instrument;
use uuid::Uuid;

use crate::cases::{Cases, Op, not_found};
use crate::error::{Error, Result};
use crate::store::{self, CaseRow, Filter};
use crate::validate::{self, Violation};

/// The gRPC face of intake.
#[derive(Clone)]
pub struct IntakeApi {
    pub(crate) cases: Cases,
    /// Registrations in flight; past it intake answers RESOURCE_EXHAUSTED at once instead of
    /// letting requests queue until they time out.
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// The tenants' registration writers.
    pub(crate) registrar: Arc<crate::registrar::Registrar>,
}

/// Registrations one intake replica works on at once.
pub const MAX_IN_FLIGHT_REGISTRATIONS: usize = 256;

pub(crate) type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    #[instrument(name = "intake.grpc.register_case", skip_all)]
    async fn register_case(&self, req: Request<pb::RegisterCaseRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let new = validate::register(req.get_ref(), caller.config.clone(), caller.actor()).map_err(Error::from)?;
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(Status::resource_exhausted(format!(
                "intake is at capacity ({MAX_IN_FLIGHT_REGISTRATIONS} registrations in flight); \
                 retry shortly with the same idempotency_key"
            )));
        };
        let row = self.registrar.register(new, caller).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.get_case", skip_all)]
    async fn get_case(&self, req: Request<pb::GetCaseRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let tenant = caller.tenant.as_str();
        // Another tenant's case, or one outside the caller's units, is as unknown as none.
        let row = match req.into_inner().lookup {
            Some(pb::get_case_request::Lookup::Id(id)) => {
                let id = parse_id("id", &id)?;
                let row = store::get(&self.cases.pool, tenant, id).await?;
                self.visible(&caller, row).await?.ok_or_else(|| not_found(&id.to_string()))?
            }
            Some(pb::get_case_request::Lookup::Reference(r)) => {
                let Some(reference) = Reference::parse(&r) else {
                    return Err(invalid("reference", "must look like NKP-2026-000123").into());
                };
                let reference = reference.to_string();
                let row = store::by_reference(&self.cases.pool, tenant, &reference).await?;
                self.visible(&caller, row).await?.ok_or_else(|| not_found(&reference))?
            }
            None => return Err(invalid("lookup", "give either id or reference").into()),
        };
        audit::read(&self.cases.pool, &caller, "IntakeService/GetCase", vec![row.id.to_string()]).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.list_cases", skip_all)]
    async fn list_cases(&self, req: Request<pb::ListCasesRequest>) -> Reply<pb::ListCasesResponse> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let mut bad = Vec::new();
        let status = match pb::CaseStatus::try_from(req.status) {
            Ok(pb::CaseStatus::Unspecified) => None,
            Ok(s) => Some(status_from_pb(s)),
            Err(_) => {
                bad.push(Violation { field: "status", description: "is not a known case status".into() });
                None
            }
        };
        let (page_size, before) = paging(&mut bad, req.page_size, &req.page_token, "ListCases");
        let org_nr = if req.org_nr.trim().is_empty() {
            None
        } else {
            match lots_domain::OrgNr::parse(&req.org_nr) {
                Ok(nr) => Some(nr),
                Err(e) => {
                    bad.push(Violation { field: "org_nr", description: format!("is not valid: {e}") });
                    None
                }
            }
        };
        if !bad.is_empty() {
            return Err(Error::Invalid(bad).into());
        }
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let case_type = non_empty(&req.case_type);
        let reach = reach(&caller);
        let filter = Filter {
            tenant: &caller.tenant,
            reach: reach.as_ref(),
            status,
            org_nr: org_nr.as_ref().map(|o| o.expose()),
            case_type: case_type.as_deref(),
            before,
            // One extra row tells whether another page exists.
            limit: i64::from(page_size) + 1,
        };
        let mut rows = store::list(&self.cases.pool, &filter).await?;
        let next_page_token = next_page(&mut rows, page_size, |r| r.id);
        let read = rows.iter().map(|r| r.id.to_string()).collect();
        audit::read(&self.cases.pool, &caller, "IntakeService/ListCases", read).await?;
        let cases = rows.into_iter().map(to_pb).collect::<Result<Vec<_>>>()?;
        Ok(Response::new(pb::ListCasesResponse { cases, next_page_token }))
    }

    #[instrument(name = "intake.grpc.await_company", skip_all)]
    async fn await_company(&self, req: Request<pb::AwaitCompanyRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = validate::case_id(&req.case_id).map_err(Error::from)?;
        let reason = validate::required_text("reason", &req.reason, 2000).map_err(Error::from)?;
        let row = self.cases.change(&caller, id, Op::AwaitCompany { reason }, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.resume_case", skip_all)]
    async fn resume_case(&self, req: Request<pb::ResumeCaseRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = validate::case_id(&req.case_id).map_err(Error::from)?;
        let row = self.cases.change(&caller, id, Op::Resume, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.close_case", skip_all)]
    async fn close_case(&self, req: Request<pb::CloseCaseRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = validate::case_id(&req.case_id).map_err(Error::from)?;
        let outcome = match pb::Outcome::try_from(req.outcome) {
            Ok(o) if o != pb::Outcome::Unspecified => outcome_from_pb(o),
            _ => {
                return Err(invalid(
                    "outcome",
                    "is required (granted, partly_granted, denied, advice_given or referred)",
                )
                .into());
            }
        };
        let decision = validate::required_text("decision", &req.decision, 4000).map_err(Error::from)?;
        let row = self.cases.change(&caller, id, Op::Close { outcome, decision }, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.mark_application_complete", skip_all)]
    async fn mark_application_complete(&self, req: Request<pb::MarkApplicationCompleteRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = validate::case_id(&req.case_id).map_err(Error::from)?;
        let row = self.cases.change(&caller, id, Op::ApplicationComplete, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.extend_deadline", skip_all)]
    async fn extend_deadline(&self, req: Request<pb::ExtendDeadlineRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = validate::case_id(&req.case_id).map_err(Error::from)?;
        let reason = validate::required_text("reason", &req.reason, 2000).map_err(Error::from)?;
        let row = self.cases.change(&caller, id, Op::ExtendDeadline { reason }, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.withdraw_case", skip_all)]
    async fn withdraw_case(&self, req: Request<pb::WithdrawCaseRequest>) -> Reply<pb::Case> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = validate::case_id(&req.case_id).map_err(Error::from)?;
        let reason = validate::required_text("reason", &req.reason, 2000).map_err(Error::from)?;
        let row = self.cases.change(&caller, id, Op::Withdraw { reason }, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }
}

pub(crate) fn invalid(field: &'static str, description: &str) -> Error {
    Error::Invalid(vec![Violation { field, description: description.to_owned() }])
}

fn parse_id(field: &'static str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value.trim()).map_err(|_| invalid(field, "must be a case id (a UUID)"))
}

/// A lifecycle call's optional idempotency key.
pub(crate) fn key(value: &str) -> Result<Option<&str>> {
    match value.trim() {
        "" => Ok(None),
        k if k.chars().count() <= 128 => Ok(Some(k)),
        _ => Err(invalid("idempotency_key", "must be at most 128 characters")),
    }
}

/// How far a caller without tenant-wide reach sees: a handläggare the cases they sit on, an
/// enhetschef the cases with a seat in their units (before routing: the case types that draw on
/// them). `None`: the whole tenant.
fn reach(caller: &Caller) -> Option<store::Reach> {
    let units = caller.units()?;
    let case_types = caller
        .config
        .case_types
        .iter()
        .map(|t| t.key.as_str())
        .filter(|t| caller.reaches_case_type(t))
        .map(String::from)
        .collect();
    Some(store::Reach { officer: caller.officer.clone(), units, case_types })
}

impl IntakeApi {
    /// The case if the caller may see it (another unit's case is as unknown as none).
    async fn visible(&self, caller: &Caller, case: Option<CaseRow>) -> Result<Option<CaseRow>> {
        let Some(case) = case else { return Ok(None) };
        let Some(reach) = reach(caller) else { return Ok(Some(case)) };
        let within = store::within(&self.cases.pool, case.id, &case.case_type, &reach).await?;
        Ok(within.then_some(case))
    }
}

/// The proto form of a stored case.
pub fn to_pb(row: CaseRow) -> Result<pb::Case> {
    let status = status_to_pb(row.status()?);
    let channel = channel_to_pb(&row.channel)?;
    let outcome = match row.outcome.as_deref().map(str::parse::<Outcome>) {
        None => pb::Outcome::Unspecified,
        Some(Ok(o)) => outcome_to_pb(o),
        Some(Err(e)) => return Err(Error::Corrupt(e.to_string())),
    };
    Ok(pb::Case {
        id: row.id.to_string(),
        reference: row.reference,
        tenant: row.tenant,
        company: Some(pb::Company {
            org_nr: row.org_nr,
            name: row.company_name,
            contact: Some(pb::Contact { name: row.contact_name, phone: row.contact_phone, email: row.contact_email }),
        }),
        case_type: row.case_type,
        description: row.description,
        channel: channel as i32,
        status: status as i32,
        registered_at: Some(timestamp(row.registered_at)),
        updated_at: Some(timestamp(row.updated_at)),
        legal_form: row.legal_form,
        waiting_reason: row.waiting_reason.unwrap_or_default(),
        outcome: outcome as i32,
        decision: row.decision.unwrap_or_default(),
        version: row.version as u64,
        registered_by: row.registered_by,
        application_complete_at: row.application_complete_at.map(timestamp),
        deadline_extended_at: row.deadline_extended_at.map(timestamp),
    })
}

/// The proto form of a stored channel.
pub(crate) fn channel_to_pb(channel: &str) -> Result<pb::Channel> {
    Ok(match channel {
        "phone" => pb::Channel::Phone,
        "email" => pb::Channel::Email,
        "e_service" => pb::Channel::EService,
        "visit" => pb::Channel::Visit,
        "company_visit" => pb::Channel::CompanyVisit,
        other => return Err(Error::Corrupt(format!("channel {other:?}"))),
    })
}

/// A list call's page size (1..=500, default 50) and page token (the last id of the previous page
/// of `call`).
pub(crate) fn paging(bad: &mut Vec<Violation>, page_size: u32, token: &str, call: &str) -> (u32, Option<Uuid>) {
    let size = match page_size {
        0 => 50,
        n @ 1..=500 => n,
        _ => {
            bad.push(Violation { field: "page_size", description: "must be between 1 and 500".into() });
            50
        }
    };
    let before = match token {
        "" => None,
        t => match Uuid::parse_str(t) {
            Ok(id) => Some(id),
            Err(_) => {
                let description = format!("is not a token from a previous {call}");
                bad.push(Violation { field: "page_token", description });
                None
            }
        },
    };
    (size, before)
}

/// Cuts the one extra row a list read past `size` and returns the next page's token (the last
/// row's id), empty on the last page.
pub(crate) fn next_page<T>(rows: &mut Vec<T>, size: u32, id: impl Fn(&T) -> Uuid) -> String {
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    match (more, rows.last()) {
        (true, Some(last)) => id(last).to_string(),
        _ => String::new(),
    }
}

/// A `GetComplaint`/`GetVisit` lookup: an id of a `noun`, or a reference of the register's
/// `series` (its `example` is shown when it is not one). Returns the lookup and how to name it
/// in a not-found.
pub(crate) fn series_lookup(
    id: Option<String>,
    reference: Option<String>,
    (noun, series, example): (&str, char, &str),
) -> Result<(Option<Uuid>, Option<String>, String)> {
    match (id, reference) {
        (Some(id), _) => {
            let id = Uuid::parse_str(id.trim()).map_err(|_| {
                Error::Invalid(vec![Violation { field: "id", description: format!("must be a {noun} id (a UUID)") }])
            })?;
            Ok((Some(id), None, id.to_string()))
        }
        (None, Some(r)) => {
            let r = lots_domain::SeriesReference::parse(&r).filter(|r| r.series == series).ok_or_else(|| {
                Error::Invalid(vec![Violation { field: "reference", description: format!("must look like {example}") }])
            })?;
            Ok((None, Some(r.to_string()), r.to_string()))
        }
        (None, None) => Err(invalid("lookup", "give either id or reference")),
    }
}

fn status_to_pb(s: CaseStatus) -> pb::CaseStatus {
    match s {
        CaseStatus::Registered => pb::CaseStatus::Registered,
        CaseStatus::Routed => pb::CaseStatus::Routed,
        CaseStatus::MeetingBooked => pb::CaseStatus::MeetingBooked,
        CaseStatus::InProgress => pb::CaseStatus::InProgress,
        CaseStatus::Decided => pb::CaseStatus::Decided,
        CaseStatus::Closed => pb::CaseStatus::Closed,
        CaseStatus::WaitingForCompany => pb::CaseStatus::WaitingForCompany,
        CaseStatus::Withdrawn => pb::CaseStatus::Withdrawn,
        CaseStatus::Unroutable => pb::CaseStatus::Unroutable,
    }
}

fn status_from_pb(s: pb::CaseStatus) -> CaseStatus {
    CaseStatus::ALL.into_iter().find(|d| status_to_pb(*d) == s).unwrap_or(CaseStatus::Registered)
}

fn outcome_to_pb(o: Outcome) -> pb::Outcome {
    match o {
        Outcome::Granted => pb::Outcome::Granted,
        Outcome::PartlyGranted => pb::Outcome::PartlyGranted,
        Outcome::Denied => pb::Outcome::Denied,
        Outcome::AdviceGiven => pb::Outcome::AdviceGiven,
        Outcome::Referred => pb::Outcome::Referred,
    }
}

fn outcome_from_pb(o: pb::Outcome) -> Outcome {
    Outcome::ALL.into_iter().find(|d| outcome_to_pb(*d) == o).unwrap_or(Outcome::AdviceGiven)
}
