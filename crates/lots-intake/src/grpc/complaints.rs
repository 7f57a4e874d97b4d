//! The `ComplaintService` gRPC implementation.

use lots_domain::{ComplaintCategory, ComplaintStatus};
use lots_platform::audit;
use lots_platform::auth;
use lots_proto::time::timestamp;
use lots_proto::v1 as pb;
use pb::complaint_service_server::ComplaintService;
use tonic::{Request, Response, Status};
use tracing::instrument;
use uuid::Uuid;

use super::{IntakeApi, Reply, invalid, key, series_lookup};
use crate::complaints::{self, ComplaintRow, Filter, Step, may_see, not_found};
use crate::error::{Error, Result};
use crate::validate::{self, Violation};

#[tonic::async_trait]
impl ComplaintService for IntakeApi {
    #[instrument(name = "intake.grpc.register_complaint", skip_all)]
    async fn register_complaint(&self, req: Request<pb::RegisterComplaintRequest>) -> Reply<pb::Complaint> {
        let caller = auth::caller(&req)?;
        let new = complaints::validate(req.get_ref(), &caller.config).map_err(Error::from)?;
        let row = self.cases.register_complaint(&new, &caller).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.get_complaint", skip_all)]
    async fn get_complaint(&self, req: Request<pb::GetComplaintRequest>) -> Reply<pb::Complaint> {
        let caller = auth::caller(&req)?;
        use pb::get_complaint_request::Lookup;
        let (id, reference) = match req.into_inner().lookup {
            Some(Lookup::Id(id)) => (Some(id), None),
            Some(Lookup::Reference(r)) => (None, Some(r)),
            None => (None, None),
        };
        let (id, reference, what) =
            series_lookup(id, reference, ("complaint", lots_domain::complaint::COMPLAINTS, "NKP-K-2026-000007"))?;
        let row = complaints::get(&self.cases.pool, &caller.tenant, id, reference.as_deref())
            .await?
            .filter(|r| may_see(&caller, r))
            .ok_or_else(|| not_found(&what))?;
        audit::read(&self.cases.pool, &caller, "ComplaintService/GetComplaint", vec![row.id.to_string()]).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.list_complaints", skip_all)]
    async fn list_complaints(&self, req: Request<pb::ListComplaintsRequest>) -> Reply<pb::ListComplaintsResponse> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let mut bad = Vec::new();
        let status = match pb::ComplaintStatus::try_from(req.status) {
            Ok(pb::ComplaintStatus::Unspecified) => None,
            Ok(s) => Some(status_from_pb(s)),
            Err(_) => {
                bad.push(Violation { field: "status", description: "is not a known complaint status".into() });
                None
            }
        };
        let category = match req.category {
            0 => None,
            n => {
                let c = complaints::category(n);
                if c.is_none() {
                    bad.push(Violation { field: "category", description: "is not a known category".into() });
                }
                c
            }
        };
        let (page_size, before) = super::paging(&mut bad, req.page_size, &req.page_token, "ListComplaints");
        if !bad.is_empty() {
            return Err(Error::Invalid(bad).into());
        }
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let filter = Filter {
            status,
            category,
            handler: non_empty(&req.handler),
            about_case: non_empty(&req.about_case),
            before,
            limit: i64::from(page_size) + 1,
        };
        let mut rows: Vec<ComplaintRow> = complaints::list(&self.cases.pool, &caller.tenant, &filter).await?;
        let next_page_token = super::next_page(&mut rows, page_size, |r| r.id);
        rows.retain(|r| may_see(&caller, r));
        let read = rows.iter().map(|r| r.id.to_string()).collect();
        audit::read(&self.cases.pool, &caller, "ComplaintService/ListComplaints", read).await?;
        let complaints = rows.into_iter().map(to_pb).collect::<Result<Vec<_>>>()?;
        Ok(Response::new(pb::ListComplaintsResponse { complaints, next_page_token }))
    }

    #[instrument(name = "intake.grpc.acknowledge_complaint", skip_all)]
    async fn acknowledge_complaint(&self, req: Request<pb::AcknowledgeComplaintRequest>) -> Reply<pb::Complaint> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = complaint_id(&req.complaint_id)?;
        let row = self.cases.complaint_step(&caller, id, Step::Acknowledge, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.answer_complaint", skip_all)]
    async fn answer_complaint(&self, req: Request<pb::AnswerComplaintRequest>) -> Reply<pb::Complaint> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = complaint_id(&req.complaint_id)?;
        let mut c = validate::Check::default();
        let answer = c.text("answer", &req.answer, true, 8000);
        let action_taken = c.text("action_taken", &req.action_taken, true, 4000);
        if !c.0.is_empty() {
            return Err(Error::Invalid(c.0).into());
        }
        let step = Step::Answer { answer, action_taken };
        let row = self.cases.complaint_step(&caller, id, step, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.close_complaint", skip_all)]
    async fn close_complaint(&self, req: Request<pb::CloseComplaintRequest>) -> Reply<pb::Complaint> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = complaint_id(&req.complaint_id)?;
        let row = self.cases.complaint_step(&caller, id, Step::Close, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }

    #[instrument(name = "intake.grpc.reassign_complaint", skip_all)]
    async fn reassign_complaint(&self, req: Request<pb::ReassignComplaintRequest>) -> Reply<pb::Complaint> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = complaint_id(&req.complaint_id)?;
        let mut c = validate::Check::default();
        let handler = c.text("handler", &req.handler, true, 64);
        let reason = c.text("reason", &req.reason, true, 2000);
        if !c.0.is_empty() {
            return Err(Error::Invalid(c.0).into());
        }
        let step = Step::Reassign { handler, reason };
        let row = self.cases.complaint_step(&caller, id, step, key(&req.idempotency_key)?).await?;
        Ok(Response::new(to_pb(row)?))
    }
}

fn complaint_id(value: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value.trim())
        .map_err(|_| invalid("complaint_id", "must be a complaint id (a UUID); look it up by reference").into())
}

fn status_to_pb(s: ComplaintStatus) -> pb::ComplaintStatus {
    match s {
        ComplaintStatus::Registered => pb::ComplaintStatus::Registered,
        ComplaintStatus::Acknowledged => pb::ComplaintStatus::Acknowledged,
        ComplaintStatus::Answered => pb::ComplaintStatus::Answered,
        ComplaintStatus::Closed => pb::ComplaintStatus::Closed,
    }
}

fn status_from_pb(s: pb::ComplaintStatus) -> ComplaintStatus {
    ComplaintStatus::ALL.into_iter().find(|d| status_to_pb(*d) == s).unwrap_or(ComplaintStatus::Registered)
}

/// The proto form of a stored complaint.
pub fn to_pb(row: ComplaintRow) -> Result<pb::Complaint> {
    let category: ComplaintCategory = row.category.parse().map_err(Error::Corrupt)?;
    let channel = super::channel_to_pb(&row.channel)?;
    Ok(pb::Complaint {
        id: row.id.to_string(),
        reference: row.reference.clone(),
        tenant: row.tenant.clone(),
        category: complaints::category_to_pb(category) as i32,
        channel: channel as i32,
        status: status_to_pb(row.status()?) as i32,
        about_case_id: row.about_case_id.map(|c| c.to_string()).unwrap_or_default(),
        about_case_reference: row.about_case_reference,
        about_unit: row.about_unit,
        about_officer: row.about_officer,
        description: row.description,
        anonymous: row.anonymous,
        contact: (!row.anonymous).then_some(pb::Contact {
            name: row.contact_name,
            phone: row.contact_phone,
            email: row.contact_email,
        }),
        org_nr: row.org_nr,
        company_name: row.company_name,
        secrecy: row.secrecy,
        handler: row.handler,
        handler_unit: row.handler_unit,
        answer: row.answer.unwrap_or_default(),
        action_taken: row.action_taken.unwrap_or_default(),
        registered_at: Some(timestamp(row.registered_at)),
        acknowledged_at: row.acknowledged_at.map(timestamp),
        answered_at: row.answered_at.map(timestamp),
        closed_at: row.closed_at.map(timestamp),
        registered_by: row.registered_by,
        version: row.version as u64,
    })
}
