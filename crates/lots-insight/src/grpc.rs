//! `CaseStatusService` (what the company sees of its case) and `ReportService` (guarantee
//! kept, the Insikt case list, NKI) over the read models.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use lots_domain::calendar::TZ;
use lots_domain::insight::{self, CompanyStatus};
use lots_domain::tenant::TenantConfig;
use lots_platform::audit::{self, Entry};
use lots_platform::auth::{self, Caller};
use lots_platform::{Clock, Tenants};
use lots_proto::time::timestamp;
use lots_proto::v1 as pb;
use pb::case_status_service_server::CaseStatusService;
use pb::report_service_server::ReportService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::report::{self, Outcome};
use crate::store::{self, StatusRow};
use crate::{events, insikt};
use lots_platform::api::{ApiError as Error, ApiResult as Result};

/// The gRPC face of the read side.
#[derive(Clone)]
pub struct InsightApi {
    pub(crate) pool: PgPool,
    pub(crate) tenants: Arc<Tenants>,
    pub(crate) clock: Clock,
}

type Reply<T> = std::result::Result<Response<T>, Status>;

/// Longest period one report covers.
const MAX_MONTHS: u32 = 36;

impl InsightApi {
    fn tenant(&self, caller: &Caller) -> Result<Arc<TenantConfig>> {
        self.tenants.get(&caller.tenant).cloned().ok_or_else(|| Error::NotFound("unknown municipality".into()))
    }
}

/// Whether `caller` may see `case`: tenant-wide roles, a manager of a unit the case type draws
/// on, or an officer who sits at or owns the case.
async fn may_see(pool: &PgPool, caller: &Caller, case: &StatusRow) -> Result<bool> {
    if caller.units().is_none() || caller.reaches_case_type(&case.case_type) {
        return Ok(true);
    }
    let Some(officer) = caller.officer.as_deref() else { return Ok(false) };
    if case.owner_officer == officer {
        return Ok(true);
    }
    Ok(store::sits_at(pool, case.id, officer).await?)
}

/// A clock's state as the company reads it.
fn promise_state(state: &str, due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> &'static str {
    match state {
        "met" => "kept",
        "met_late" | "breached" => "late",
        "running" if due.is_some_and(|d| d <= now) => "late",
        "running" => "pending",
        "paused" => "paused",
        "cancelled" => "cancelled",
        _ => "not_started",
    }
}

/// Stockholm local time as the company reads it, e.g. "2026-12-08 kl. 09:00".
fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%Y-%m-%d kl. %H:%M").to_string()
}

/// What the company has to do next.
fn next_step(case: &StatusRow, status: CompanyStatus, now: DateTime<Utc>) -> String {
    match status {
        CompanyStatus::WaitingForCompany if case.waiting_reason.is_empty() => {
            "Skicka in det som saknas till er kontaktperson.".to_owned()
        }
        CompanyStatus::WaitingForCompany => format!("Skicka in det som saknas: {}", case.waiting_reason),
        CompanyStatus::MeetingBooked => match case.meeting_starts_at {
            Some(at) if at > now => format!("Kom till mötet {} på {}.", local(at), case.meeting_location),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl CaseStatusService for InsightApi {
    #[instrument(name = "insight.grpc.get_case_status", skip_all)]
    async fn get_case_status(&self, req: Request<pb::GetCaseStatusRequest>) -> Reply<pb::CaseStatusView> {
        let caller = auth::caller(&req)?;
        let tenant = self.tenant(&caller)?;
        let wanted = req.into_inner().case;
        let lookup = store::Lookup::parse(&wanted).ok_or_else(|| Error::Invalid {
            field: "case",
            message: "give a case id (UUID) or a reference like NKP-2026-000123".into(),
        })?;
        let not_found = || Error::NotFound(format!("no case {}", wanted.trim()));
        let case =
            store::status_row(&self.pool, &caller.tenant, &lookup).await.map_err(Error::from)?.ok_or_else(not_found)?;
        // A case the caller may not see is as unknown as one that does not exist.
        if !may_see(&self.pool, &caller, &case).await? {
            return Err(not_found().into());
        }
        audit::read(&self.pool, &caller, "CaseStatusService/GetCaseStatus", vec![case.id.to_string()]).await?;
        let now = self.clock.now();
        let status = CompanyStatus::from_key(&case.status).unwrap_or(CompanyStatus::Registered);
        let text = |s: CompanyStatus| s.text(&tenant.insight);
        let history = store::history(&self.pool, case.id)
            .await
            .map_err(Error::from)?
            .into_iter()
            .filter_map(|(at, key)| CompanyStatus::from_key(&key).map(|s| (at, s)))
            .map(|(at, s)| pb::StatusEntry { at: Some(timestamp(at)), status: s.key().to_owned(), text: text(s) })
            .collect();
        let order: Vec<String> = tenant.case_type(&case.case_type).map(|t| t.commitments.clone()).unwrap_or_default();
        let mut clocks = store::clocks(&self.pool, case.id).await.map_err(Error::from)?;
        clocks.sort_by_key(|c| order.iter().position(|k| *k == c.commitment).unwrap_or(usize::MAX));
        let promised = clocks
            .into_iter()
            .map(|c| pb::PromisedDate {
                state: promise_state(&c.state, c.due_at, now).to_owned(),
                due_at: c.due_at.filter(|_| c.state != "paused").map(timestamp),
                commitment: c.commitment,
                name: c.name,
                legal: c.legal,
            })
            .collect();
        let officer_name = |id: &str| tenant.officer(id).map(|o| o.name.clone()).unwrap_or_default();
        let meeting = match (case.meeting_booked, case.meeting_id) {
            (true, Some(meeting_id)) => {
                let attendees = store::attendees(&self.pool, case.id, meeting_id)
                    .await
                    .map_err(Error::from)?
                    .into_iter()
                    .map(|(officer, unit)| pb::MeetingAttendee {
                        name: officer_name(&officer),
                        role: tenant.unit(&unit).map(|u| u.name.clone()).unwrap_or(unit),
                    })
                    .collect();
                Some(pb::BookedMeeting {
                    starts_at: case.meeting_starts_at.map(timestamp),
                    ends_at: case.meeting_ends_at.map(timestamp),
                    location: case.meeting_location.clone(),
                    attendees,
                })
            }
            _ => None,
        };
        Ok(Response::new(pb::CaseStatusView {
            case_id: case.id.to_string(),
            reference: case.reference.clone(),
            case_type_name: tenant.case_type(&case.case_type).map(|t| t.name.clone()).unwrap_or_default(),
            case_type: case.case_type.clone(),
            company_name: case.company_name.clone(),
            status: status.key().to_owned(),
            status_text: text(status),
            history,
            promised,
            meeting,
            next_step: next_step(&case, status, now),
            contact_officer: officer_name(&case.owner_officer),
        }))
    }
}

/// The period `[from, to]` of whole months, validated.
fn months(from: &str, to: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let start = report::month_start("from_month", from)?;
    let last = report::month_start("to_month", to)?;
    if last < start {
        return Err(Error::Invalid { field: "to_month", message: "must not be before from_month".into() });
    }
    let span = {
        let (a, b) = (start.with_timezone(&TZ), last.with_timezone(&TZ));
        (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32 + 1
    };
    if span > MAX_MONTHS as i32 {
        return Err(Error::Invalid {
            field: "to_month",
            message: format!("a report covers at most {MAX_MONTHS} months"),
        });
    }
    Ok((start, report::next_month(last)))
}

/// The units `caller` may report on and the one asked for: a manager sees their own units.
fn unit_filter(caller: &Caller, unit: &str) -> Result<Option<Vec<String>>> {
    let unit = unit.trim();
    match caller.units() {
        None if unit.is_empty() => Ok(None),
        None => Ok(Some(vec![unit.to_owned()])),
        Some(own) if unit.is_empty() => Ok(Some(own)),
        Some(own) if own.iter().any(|u| u == unit) => Ok(Some(vec![unit.to_owned()])),
        Some(_) => Err(Error::PermissionDenied(format!("unit {unit:?} is not one you manage"))),
    }
}

fn unit_name(tenant: &TenantConfig, unit: &str) -> String {
    if unit.is_empty() {
        return "(ingen enhet)".to_owned();
    }
    tenant.unit(unit).map(|u| u.name.clone()).unwrap_or_else(|| unit.to_owned())
}

fn parse_date(field: &'static str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| Error::Invalid { field, message: format!("{text:?} is not a date like 2026-01-31") })
}

#[tonic::async_trait]
impl ReportService for InsightApi {
    #[instrument(name = "insight.grpc.guarantee_report", skip_all)]
    async fn get_guarantee_report(&self, req: Request<pb::GuaranteeReportRequest>) -> Reply<pb::GuaranteeReport> {
        let caller = auth::caller(&req)?;
        let tenant = self.tenant(&caller)?;
        let r = req.into_inner();
        let (from, to) = months(&r.from_month, &r.to_month)?;
        let units = unit_filter(&caller, &r.unit)?;
        let case_type = r.case_type.trim();
        if !case_type.is_empty() && case_type != events::COMPLAINTS && tenant.case_type(case_type).is_none() {
            return Err(Error::Invalid { field: "case_type", message: format!("no case type {case_type:?}") }.into());
        }
        let rows: Vec<_> = report::clocks_between(&self.pool, &caller.tenant, from, to)
            .await
            .map_err(Error::from)?
            .into_iter()
            .filter(|c| units.as_ref().is_none_or(|u| u.contains(&c.unit)))
            .filter(|c| case_type.is_empty() || c.case_type == case_type)
            .collect();
        audit::read(&self.pool, &caller, "ReportService/GetGuaranteeReport", Vec::new()).await?;
        let figures = report::aggregate(&rows, self.clock.now(), from, to);
        let nki = store::nki(&self.pool, &caller.tenant).await.map_err(Error::from)?;
        let mut totals: BTreeMap<(String, String), (u32, u32)> = BTreeMap::new();
        let mut out = Vec::with_capacity(figures.len());
        for ((month, unit, case_type, commitment), f) in &figures {
            let total = totals.entry((month.clone(), unit.clone())).or_default();
            total.0 += f.cases();
            total.1 += f.kept;
            let area = tenant.case_type(case_type).and_then(|t| t.insikt_area.clone()).unwrap_or_default();
            let year = month.split('-').next().unwrap_or_default();
            out.push(pb::GuaranteeRow {
                month: month.clone(),
                unit_name: unit_name(&tenant, unit),
                unit: unit.clone(),
                case_type: case_type.clone(),
                commitment: commitment.clone(),
                commitment_name: f.name.clone(),
                cases: f.cases(),
                kept: f.kept,
                breached: f.breached,
                share_kept: f.share_kept(),
                median_working_minutes: report::quantile(&f.minutes, 0.5),
                p90_working_minutes: report::quantile(&f.minutes, 0.9),
                reasons: f
                    .reasons
                    .iter()
                    .map(|(reason, &count)| pb::ReasonCount { reason: reason.clone(), count })
                    .collect(),
                nki: nki.get(&(area.clone(), year.to_owned())).copied(),
                insikt_area: area,
            });
        }
        let units = totals
            .into_iter()
            .map(|((month, unit), (cases, kept))| pb::UnitMonth {
                month,
                unit_name: unit_name(&tenant, &unit),
                unit,
                cases,
                kept,
                share_kept: if cases == 0 { 0.0 } else { 100.0 * f64::from(kept) / f64::from(cases) },
            })
            .collect();
        Ok(Response::new(pb::GuaranteeReport {
            rows: out,
            target_percent: u32::from(tenant.insight.target_percent),
            units,
        }))
    }

    #[instrument(name = "insight.grpc.list_guarantee_cases", skip_all)]
    async fn list_guarantee_cases(
        &self,
        req: Request<pb::ListGuaranteeCasesRequest>,
    ) -> Reply<pb::ListGuaranteeCasesResponse> {
        let caller = auth::caller(&req)?;
        let r = req.into_inner();
        let (from, to) = months(&r.month, &r.month).map_err(|_| Error::Invalid {
            field: "month",
            message: format!("{:?} is not a month like 2026-03", r.month),
        })?;
        let outcome = match r.outcome.trim() {
            "" => None,
            "kept" => Some(Outcome::Kept),
            "breached" => Some(Outcome::Breached),
            other => {
                return Err(
                    Error::Invalid { field: "outcome", message: format!("{other:?}: give kept or breached") }.into()
                );
            }
        };
        let units = unit_filter(&caller, &r.unit)?;
        let now = self.clock.now();
        let mut cases = Vec::new();
        for c in report::clocks_between(&self.pool, &caller.tenant, from, to).await.map_err(Error::from)? {
            let Some((o, at)) = c.settled(now) else { continue };
            let wanted = at >= from
                && at < to
                && units.as_ref().is_none_or(|u| u.contains(&c.unit))
                && (r.unit.trim().is_empty() || c.unit == r.unit.trim())
                && (r.case_type.trim().is_empty() || c.case_type == r.case_type.trim())
                && (r.commitment.trim().is_empty() || c.commitment == r.commitment.trim())
                && outcome.is_none_or(|w| w == o);
            if wanted {
                cases.push(pb::GuaranteeCase {
                    case_id: c.case_id.to_string(),
                    reference: c.reference,
                    outcome: o.key().to_owned(),
                    due_at: c.due_at.map(timestamp),
                    settled_at: Some(timestamp(at)),
                    reason: if o == Outcome::Breached {
                        c.reason.unwrap_or_else(|| "other".into())
                    } else {
                        String::new()
                    },
                    working_minutes: c.working_minutes,
                });
            }
        }
        let read = cases.iter().map(|c| c.case_id.clone()).collect();
        audit::read(&self.pool, &caller, "ReportService/ListGuaranteeCases", read).await?;
        Ok(Response::new(pb::ListGuaranteeCasesResponse { cases }))
    }

    #[instrument(name = "insight.grpc.export_insikt", skip_all)]
    async fn export_insikt(&self, req: Request<pb::ExportInsiktRequest>) -> Reply<pb::InsiktExport> {
        let caller = auth::caller(&req)?;
        let tenant = self.tenant(&caller)?;
        let r = req.into_inner();
        let (first, last) = (parse_date("from", &r.from)?, parse_date("to", &r.to)?);
        if last < first {
            return Err(Error::Invalid { field: "to", message: "must not be before from".into() }.into());
        }
        if (last - first).num_days() > 400 {
            return Err(
                Error::Invalid { field: "to", message: "a measurement period is at most 400 days".into() }.into()
            );
        }
        let start = report::local_midnight(first);
        let end = last.succ_opt().and_then(report::local_midnight);
        let (Some(start), Some(end)) = (start, end) else {
            return Err(Error::Invalid { field: "to", message: "is out of range".into() }.into());
        };
        let cases = insikt::decided_between(&self.pool, &caller.tenant, start, end).await.map_err(Error::from)?;
        let exported: Vec<String> =
            cases.iter().filter(|c| insikt::belongs(&tenant, c)).map(|c| c.reference.clone()).collect();
        // The list carries contacts: the read is on record before it goes out.
        audit::read(&self.pool, &caller, "ReportService/ExportInsikt", exported).await?;
        let (csv, rows) =
            insikt::to_csv(&tenant, &cases).map_err(|e| Error::Config(format!("write the case list: {e}")))?;
        Ok(Response::new(pb::InsiktExport { csv, rows, columns: tenant.insight.insikt_columns.clone() }))
    }

    #[instrument(name = "insight.grpc.import_nki", skip_all)]
    async fn import_nki(&self, req: Request<pb::ImportNkiRequest>) -> Reply<pb::ImportNkiResponse> {
        let caller = auth::caller(&req)?;
        let results = req.into_inner().results;
        if results.is_empty() {
            return Err(Error::Invalid { field: "results", message: "give at least one result".into() }.into());
        }
        for (i, n) in results.iter().enumerate() {
            let bad = |field: &'static str, message: String| {
                // The index goes in the message: the field name must be static.
                Error::Invalid { field, message: format!("results[{i}]: {message}") }
            };
            if insight::area_name(n.area.trim()).is_none() {
                let keys: Vec<&str> = insight::INSIKT_AREAS.iter().map(|(k, _)| *k).collect();
                return Err(bad("results.area", format!("{:?} is not one of {}", n.area, keys.join(", "))).into());
            }
            let period = n.period.trim();
            if period.is_empty() || period.len() > 16 {
                return Err(bad("results.period", "give the measurement period, e.g. 2026".into()).into());
            }
            if !(0.0..=100.0).contains(&n.nki) || n.nki.is_nan() {
                return Err(bad("results.nki", format!("{} is not between 0 and 100", n.nki)).into());
            }
        }
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        for n in &results {
            store::upsert_nki(&mut *tx, &caller.tenant, n).await.map_err(Error::from)?;
        }
        let objects = results.iter().map(|n| format!("nki:{}:{}", n.area.trim(), n.period.trim())).collect();
        let changes = serde_json::json!({ "imported": results.len() });
        audit::record(&mut *tx, &Entry::change(&caller, "ReportService/ImportNki", objects, changes))
            .await
            .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ImportNkiResponse { imported: results.len() as u32 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_promise_past_its_due_time_reads_late() {
        let now = Utc::now();
        let past = now - chrono::Duration::hours(1);
        assert_eq!(promise_state("running", Some(past), now), "late");
        assert_eq!(promise_state("running", Some(now + chrono::Duration::hours(1)), now), "pending");
        assert_eq!(promise_state("met", Some(past), now), "kept");
    }

    #[test]
    fn a_report_spans_whole_months_within_limits() {
        let (from, to) = months("2026-01", "2026-12").unwrap();
        assert_eq!(report::month_of(from), "2026-01");
        assert_eq!(report::month_of(to), "2027-01");
        assert!(matches!(months("2026-05", "2026-04"), Err(Error::Invalid { field: "to_month", .. })));
        assert!(matches!(months("2020-01", "2026-04"), Err(Error::Invalid { field: "to_month", .. })));
    }
}
