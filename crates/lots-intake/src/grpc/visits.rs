//! The `VisitService` gRPC implementation.

use chrono::Datelike;
use lots_domain::VisitKind;
use lots_platform::audit;
use lots_platform::auth;
use lots_proto::time::timestamp;
use lots_proto::v1 as pb;
use pb::visit_service_server::VisitService;
use tonic::{Request, Response, Status};
use tracing::instrument;
use uuid::Uuid;

use super::{IntakeApi, Reply, invalid, key, series_lookup};
use crate::error::{Error, Result};
use crate::validate::{Check, Violation};
use crate::visits::{self, FollowUpRow, Participant, VisitRow, not_found};

#[tonic::async_trait]
impl VisitService for IntakeApi {
    #[instrument(name = "intake.grpc.register_visit", skip_all)]
    async fn register_visit(&self, req: Request<pb::RegisterVisitRequest>) -> Reply<pb::Visit> {
        let caller = auth::caller(&req)?;
        let key = req.get_ref().idempotency_key.trim();
        if !key.is_empty() && key.chars().count() <= 128 {
            let fingerprint = visits::request_fingerprint(req.get_ref());
            if let Some((row, items)) = self.cases.visit_registered_under(&caller.tenant, key, &fingerprint).await? {
                return Ok(Response::new(to_pb(row, items)?));
            }
        }
        let new = visits::validate(req.get_ref(), &caller.config, self.cases.clock.now()).map_err(Error::from)?;
        let (row, items) = self.cases.register_visit(&new, &caller).await?;
        Ok(Response::new(to_pb(row, items)?))
    }

    #[instrument(name = "intake.grpc.get_visit", skip_all)]
    async fn get_visit(&self, req: Request<pb::GetVisitRequest>) -> Reply<pb::Visit> {
        let caller = auth::caller(&req)?;
        use pb::get_visit_request::Lookup;
        let (id, reference) = match req.into_inner().lookup {
            Some(Lookup::Id(id)) => (Some(id), None),
            Some(Lookup::Reference(r)) => (None, Some(r)),
            None => (None, None),
        };
        let (id, reference, what) =
            series_lookup(id, reference, ("visit", lots_domain::complaint::VISITS, "NKP-B-2026-000012"))?;
        let row = visits::get(&self.cases.pool, &caller.tenant, id, reference.as_deref())
            .await?
            .ok_or_else(|| not_found(&what))?;
        audit::read(&self.cases.pool, &caller, "VisitService/GetVisit", vec![row.id.to_string()]).await?;
        let items = visits::follow_ups(&self.cases.pool, row.id).await?;
        Ok(Response::new(to_pb(row, items)?))
    }

    #[instrument(name = "intake.grpc.list_visits", skip_all)]
    async fn list_visits(&self, req: Request<pb::ListVisitsRequest>) -> Reply<pb::ListVisitsResponse> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let mut bad = Vec::new();
        let kind = match pb::VisitKind::try_from(req.kind) {
            Ok(pb::VisitKind::Unspecified) => None,
            Ok(pb::VisitKind::Lotsande) => Some(VisitKind::Lotsande),
            Ok(pb::VisitKind::Other) => Some(VisitKind::Other),
            Err(_) => {
                bad.push(Violation { field: "kind", description: "is not a known visit kind".into() });
                None
            }
        };
        let (page_size, before) = super::paging(&mut bad, req.page_size, &req.page_token, "ListVisits");
        if !bad.is_empty() {
            return Err(Error::Invalid(bad).into());
        }
        let owner = Some(req.follow_up_owner.trim()).filter(|o| !o.is_empty());
        let year = (req.year != 0).then_some(req.year);
        let pool = &self.cases.pool;
        let mut rows = visits::list(pool, &caller.tenant, year, kind, owner, before, i64::from(page_size) + 1).await?;
        let next_page_token = super::next_page(&mut rows, page_size, |r| r.id);
        audit::read(pool, &caller, "VisitService/ListVisits", rows.iter().map(|r| r.id.to_string()).collect()).await?;
        // One query for the whole page's follow-ups, not one per visit.
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut items: std::collections::HashMap<Uuid, Vec<FollowUpRow>> = std::collections::HashMap::new();
        for item in visits::follow_ups_of(pool, &ids).await? {
            items.entry(item.visit_id).or_default().push(item);
        }
        let out = rows
            .into_iter()
            .map(|row| {
                let mine = items.remove(&row.id).unwrap_or_default();
                to_pb(row, mine)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Response::new(pb::ListVisitsResponse { visits: out, next_page_token }))
    }

    #[instrument(name = "intake.grpc.add_follow_up", skip_all)]
    async fn add_follow_up(&self, req: Request<pb::AddFollowUpRequest>) -> Reply<pb::Visit> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = visit_id(&req.visit_id)?;
        let mut c = Check::default();
        let empty = pb::NewFollowUp::default();
        let f = req.follow_up.as_ref().unwrap_or(&empty);
        let fields = ["follow_up.what", "follow_up.owner", "follow_up.due_date"];
        let item = visits::follow_up(&mut c, &caller.config, f, fields, "", self.cases.clock.now());
        let item = match (c.0.is_empty(), item) {
            (true, Some(item)) => item,
            _ => return Err(Error::Invalid(c.0).into()),
        };
        // Adding is not guarded by a state, so only a key makes a retry safe.
        let Some(key) = key(&req.idempotency_key)? else {
            return Err(invalid("idempotency_key", "is required: a retry must not add the follow-up twice").into());
        };
        let row = self.cases.add_follow_up(&caller, id, item, Some(key)).await?;
        let items = visits::follow_ups(&self.cases.pool, row.id).await?;
        Ok(Response::new(to_pb(row, items)?))
    }

    #[instrument(name = "intake.grpc.complete_follow_up", skip_all)]
    async fn complete_follow_up(&self, req: Request<pb::CompleteFollowUpRequest>) -> Reply<pb::Visit> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let id = visit_id(&req.visit_id)?;
        let mut c = Check::default();
        if req.number == 0 {
            c.add("number", "is required (the follow-up's number, from 1)");
        }
        let note = c.text("note", &req.note, true, 4000);
        if !c.0.is_empty() {
            return Err(Error::Invalid(c.0).into());
        }
        let row = self.cases.complete_follow_up(&caller, id, req.number, note, key(&req.idempotency_key)?).await?;
        let items = visits::follow_ups(&self.cases.pool, row.id).await?;
        Ok(Response::new(to_pb(row, items)?))
    }

    #[instrument(name = "intake.grpc.get_visit_progress", skip_all)]
    async fn get_visit_progress(&self, req: Request<pb::GetVisitProgressRequest>) -> Reply<pb::VisitProgress> {
        let caller = auth::caller(&req)?;
        let now = self.cases.clock.now();
        let year = match req.get_ref().year {
            0 => now.with_timezone(&lots_domain::calendar::TZ).year(),
            y @ 2000..=2100 => y,
            _ => return Err(invalid("year", "must be between 2000 and 2100").into()),
        };
        Ok(Response::new(visits::progress(&self.cases.pool, &caller.config, year, now).await?))
    }
}

fn visit_id(value: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value.trim())
        .map_err(|_| invalid("visit_id", "must be a visit id (a UUID); look it up by reference").into())
}

/// The proto form of a stored visit and its follow-ups.
pub fn to_pb(row: VisitRow, items: Vec<FollowUpRow>) -> Result<pb::Visit> {
    let company: Vec<Participant> = serde_json::from_str(&row.company_participants)
        .map_err(|e| Error::Corrupt(format!("company_participants: {e}")))?;
    let kind = match row.kind.as_str() {
        "lotsande" => pb::VisitKind::Lotsande,
        _ => pb::VisitKind::Other,
    };
    Ok(pb::Visit {
        id: row.id.to_string(),
        reference: row.reference,
        tenant: row.tenant,
        org_nr: row.org_nr,
        company_name: row.company_name,
        date: row.visit_date.to_string(),
        kind: kind as i32,
        participants: row.participants,
        company_participants: company.into_iter().map(|p| pb::Participant { name: p.name, role: p.role }).collect(),
        topics: row.topics,
        notes: row.notes,
        follow_ups: items
            .into_iter()
            .map(|f| pb::FollowUp {
                id: f.id.to_string(),
                number: f.number as u32,
                what: f.what,
                owner: f.owner,
                owner_unit: f.owner_unit,
                due_date: f.due_date.to_string(),
                done: f.done_at.is_some(),
                done_at: f.done_at.map(timestamp),
                done_note: f.done_note.unwrap_or_default(),
            })
            .collect(),
        story: Some(pb::CompanyStory { text: row.story, consent_to_publish: row.story_consent }),
        registered_at: Some(timestamp(row.registered_at)),
        registered_by: row.registered_by,
        version: row.version as u64,
    })
}
