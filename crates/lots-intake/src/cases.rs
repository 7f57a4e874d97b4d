//! Intake's operations on cases: register, change status, and follow routing's events.
//! Each writes the case and the events it emits in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use lots_domain::{CaseStatus, Outcome, Reference};
use lots_events::{
    CaseApplicationComplete, CaseClosed, CaseDeadlineExtended, CaseRegistered, CaseResumed, CaseWaitingForCompany,
    CaseWithdrawn, ContactInfo, Envelope, Payload, Subjects, Views,
};
use lots_platform::auth::Caller;
use lots_platform::{audit, outbox};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::instrument;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{self, CaseRow, Change};
use crate::validate::NewCase;

/// The case register: intake's state and the outbox it writes to.
#[derive(Clone)]
pub struct Cases {
    pub(crate) pool: PgPool,
    pub(crate) subjects: Subjects,
    pub(crate) relay: Arc<Notify>,
    pub(crate) clock: lots_platform::Clock,
    pub(crate) tenants: Arc<lots_platform::Tenants>,
    pub(crate) metrics: lots_platform::metrics::Metrics,
    /// What events carry instead of the organisation number.
    pub(crate) company_keys: lots_domain::CompanyKeys,
}

/// A lifecycle change requested by reception or a handläggare.
#[derive(Debug)]
pub enum Op {
    AwaitCompany { reason: String },
    Resume,
    Close { outcome: Outcome, decision: String },
    Withdraw { reason: String },
    ApplicationComplete,
    ExtendDeadline { reason: String },
}

impl Cases {
    /// Registers a validated case, or returns the case first registered under its key.
    #[instrument(name = "intake.cases.register", skip_all, fields(tenant = %new.tenant.kommunkod, case_id, reference))]
    pub async fn register(&self, new: &NewCase, caller: &Caller) -> Result<CaseRow> {
        let tenant = &new.tenant.kommunkod;
        if let Some(first) = store::by_idempotency_key(&self.pool, tenant, &new.idempotency_key).await? {
            return same_request(first, new);
        }
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now();
        // The reference year is the Swedish one: 00:30 on 1 January is already the new year.
        let year = now.with_timezone(&lots_domain::calendar::TZ).year();
        let number = store::next_reference_number(&mut tx, tenant, year).await?;
        let reference = Reference { prefix: new.tenant.reference_prefix.clone(), year, number: number as u64 };
        let reference = reference.to_string();
        let id = Uuid::now_v7();
        let fingerprint = new.fingerprint();
        let insert = store::Insert {
            id,
            tenant,
            reference: &reference,
            ref_year: year,
            ref_number: number,
            org_nr: new.org_nr.expose(),
            legal_form: new.org_nr.legal_form().as_str(),
            company_name: &new.company_name,
            contact_name: &new.contact_name,
            contact_phone: &new.contact_phone,
            contact_email: &new.contact_email,
            case_type: &new.case_type,
            description: &new.description,
            channel: new.channel.as_str(),
            idempotency_key: &new.idempotency_key,
            request_fingerprint: &fingerprint,
            registered_by: &new.actor,
            at: now,
        };
        let row = match store::insert(&mut tx, &insert).await {
            Ok(row) => row,
            // A concurrent retry with the same key won the race; answer with its case.
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("cases_idempotency_key") => {
                tx.rollback().await?;
                let first = store::by_idempotency_key(&self.pool, tenant, &new.idempotency_key)
                    .await?
                    .ok_or_else(|| Error::Corrupt("idempotency key vanished".into()))?;
                return same_request(first, new);
            }
            Err(e) => return Err(e.into()),
        };
        let event = CaseRegistered {
            reference: row.reference.clone(),
            case_type: row.case_type.clone(),
            company_key: self.company_keys.key(tenant, &new.org_nr),
            company_name: row.company_name.clone(),
            legal_form: row.legal_form.clone(),
            org_nr: (!new.org_nr.is_personal()).then(|| new.org_nr.expose().to_owned()),
            contact: ContactInfo {
                name: row.contact_name.clone(),
                phone: row.contact_phone.clone(),
                email: row.contact_email.clone(),
            },
            channel: row.channel.clone(),
            description: row.description.clone(),
        };
        self.emit(&mut tx, &row, event).await?;
        let changes =
            serde_json::json!({ "status": row.status, "case_type": row.case_type, "reference": row.reference });
        let entry = audit::Entry::change(caller, "IntakeService/RegisterCase", vec![row.id.to_string()], changes);
        audit::record(&mut *tx, &entry).await?;
        tx.commit().await?;
        self.relay.notify_one();
        let span = tracing::Span::current();
        span.record("case_id", tracing::field::display(row.id));
        span.record("reference", row.reference.as_str());
        tracing::info!(case_type = %row.case_type, "case registered");
        let labels = [("tenant", row.tenant.as_str()), ("case_type", row.case_type.as_str())];
        self.metrics.count("lots_cases_registered_total", "Cases registered.", &labels, 1.0);
        Ok(row)
    }

    /// Applies a lifecycle change, refusing it if the case's status does not allow it. With an
    /// idempotency `key`, a retry of the same call answers with the case and changes nothing.
    #[instrument(name = "intake.cases.change", skip_all, fields(case_id = %id))]
    pub async fn change(&self, caller: &Caller, id: Uuid, op: Op, key: Option<&str>) -> Result<CaseRow> {
        let (tenant, actor) = (caller.tenant.as_str(), caller.actor());
        let actor = actor.as_str();
        let mut tx = self.pool.begin().await?;
        let row = store::lock(&mut tx, Some(tenant), id).await?.ok_or_else(|| not_found(&id.to_string()))?;
        // The case row lock orders retries of the same call: the second sees the first's record.
        // A digest, so the table holds no reason or decision text.
        let fingerprint = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{id}:{op:?}").as_bytes()).to_string();
        if let Some(key) = key {
            match store::lifecycle_request(&mut tx, tenant, key).await? {
                Some(first) if first == fingerprint => return Ok(row),
                Some(_) => return Err(Error::KeyReused { key: key.to_owned(), reference: row.reference }),
                None => store::record_lifecycle_request(&mut tx, tenant, key, id, &fingerprint).await?,
            }
        }
        let status = row.status()?;
        let now = self.clock.now();
        let mut change = Change {
            status,
            resume_status: None,
            waiting_reason: None,
            outcome: None,
            decision: None,
            emitted: true,
            at: now,
        };
        let updated = match &op {
            Op::ApplicationComplete => {
                if status.is_terminal() {
                    return Err(Error::Transition(lots_domain::TransitionError { from: status, to: status }));
                }
                if row.application_complete_at.is_some() {
                    return Err(Error::Precondition("the application is already marked complete".into()));
                }
                let row = store::mark_legal(&mut tx, id, Some(now), None).await?;
                self.emit_as(&mut tx, &row, actor, CaseApplicationComplete {}).await?;
                row
            }
            Op::ExtendDeadline { reason } => {
                self.check_extension(&row, status)?;
                let row = store::mark_legal(&mut tx, id, None, Some((now, reason))).await?;
                self.emit_as(&mut tx, &row, actor, CaseDeadlineExtended { reason: reason.clone() }).await?;
                row
            }
            Op::AwaitCompany { reason } => {
                change.status = status.transition(CaseStatus::WaitingForCompany)?;
                change.resume_status = Some(status);
                change.waiting_reason = Some(reason);
                let row = store::update(&mut tx, id, &change).await?;
                let data = CaseWaitingForCompany { reason: reason.clone(), previous_status: status.to_string() };
                self.emit_as(&mut tx, &row, actor, data).await?;
                row
            }
            Op::Resume => {
                change.status = status.resume_to(row.resume_status()?)?;
                let row = store::update(&mut tx, id, &change).await?;
                self.emit_as(&mut tx, &row, actor, CaseResumed { status: change.status.to_string() }).await?;
                row
            }
            Op::Close { outcome, decision } => {
                change.status = status.transition(CaseStatus::Closed)?;
                change.outcome = Some(outcome.as_str());
                change.decision = Some(decision);
                let row = store::update(&mut tx, id, &change).await?;
                let data = CaseClosed { outcome: outcome.as_str().to_owned(), decision: decision.clone() };
                self.emit_as(&mut tx, &row, actor, data).await?;
                row
            }
            Op::Withdraw { reason } => {
                change.status = status.transition(CaseStatus::Withdrawn)?;
                let row = store::update(&mut tx, id, &change).await?;
                self.emit_as(&mut tx, &row, actor, CaseWithdrawn { reason: reason.clone() }).await?;
                row
            }
        };
        // What changed, in words without personal data (reasons and decisions stay in the case).
        let (rpc, what) = match &op {
            Op::AwaitCompany { .. } => ("IntakeService/AwaitCompany", "await_company"),
            Op::Resume => ("IntakeService/ResumeCase", "resume"),
            Op::Close { .. } => ("IntakeService/CloseCase", "close"),
            Op::Withdraw { .. } => ("IntakeService/WithdrawCase", "withdraw"),
            Op::ApplicationComplete => ("IntakeService/MarkApplicationComplete", "application_complete"),
            Op::ExtendDeadline { .. } => ("IntakeService/ExtendDeadline", "extend_deadline"),
        };
        let changes = serde_json::json!({ "op": what, "from": status.to_string(), "to": updated.status });
        audit::record(&mut *tx, &audit::Entry::change(caller, rpc, vec![id.to_string()], changes)).await?;
        tx.commit().await?;
        self.relay.notify_one();
        tracing::info!(from = %status, to = %updated.status, "case status changed");
        Ok(updated)
    }

    /// Moves a case to the status a routing event implies, if its lifecycle allows it.
    /// A waiting case keeps waiting and returns to the new status when resumed.
    #[instrument(name = "intake.cases.follow", skip_all, fields(case_id = %id, target = %target))]
    pub async fn follow(conn: &mut PgConnection, id: Uuid, target: CaseStatus, now: DateTime<Utc>) -> Result<()> {
        let Some(row) = store::lock(conn, None, id).await? else {
            tracing::warn!("routing event for a case intake does not know; ignored");
            return Ok(());
        };
        let status = row.status()?;
        let mut change = Change {
            status,
            resume_status: None,
            waiting_reason: None,
            outcome: None,
            decision: None,
            emitted: false,
            at: now,
        };
        if status == CaseStatus::WaitingForCompany {
            let resume = row.resume_status()?;
            if !resume.can_become(target) {
                return Ok(());
            }
            change.resume_status = Some(target);
            change.waiting_reason = row.waiting_reason.as_deref();
        } else if status.can_become(target) {
            change.status = target;
        } else {
            tracing::debug!(%status, "status change from routing does not apply; ignored");
            return Ok(());
        }
        store::update(conn, id, &change).await?;
        Ok(())
    }

    /// A legal deadline may be extended once, after the application is complete, for case
    /// types whose servicegaranti has an extendable commitment.
    fn check_extension(&self, row: &CaseRow, status: CaseStatus) -> Result<()> {
        if status.is_terminal() {
            return Err(Error::Precondition(format!("a {status} case has no deadline to extend")));
        }
        let extendable = self
            .tenants
            .get(&row.tenant)
            .and_then(|t| {
                let case_type = t.case_type(&row.case_type)?;
                case_type
                    .commitments
                    .iter()
                    .filter_map(|k| t.commitments.get(k))
                    .find(|c| c.extension.is_some())
                    .cloned()
            })
            .ok_or_else(|| Error::Precondition(format!("case type {} has no extendable deadline", row.case_type)))?;
        if row.deadline_extended_at.is_some() {
            return Err(Error::Precondition(
                "the deadline has already been extended once; the law allows one extension".into(),
            ));
        }
        if extendable.starts_on == CaseApplicationComplete::TYPE && row.application_complete_at.is_none() {
            return Err(Error::Precondition(
                "the deadline runs from a complete application; mark it complete first".into(),
            ));
        }
        Ok(())
    }

    async fn emit<T: Payload>(&self, tx: &mut PgConnection, row: &CaseRow, data: T) -> Result<()> {
        self.emit_as(tx, row, &row.registered_by.clone(), data).await
    }

    async fn emit_as<T: Payload>(&self, tx: &mut PgConnection, row: &CaseRow, actor: &str, data: T) -> Result<()> {
        // The insert already stored the record after case.registered (version 1).
        let mut views: Views = if row.version == 1 {
            Views::default()
        } else {
            serde_json::from_str(&row.views).map_err(lots_platform::Error::from)?
        };
        let event = Envelope::new(&row.tenant, row.id, row.version as u64, actor, row.updated_at, data)
            .stamped(&mut views)
            .into_raw()
            .map_err(lots_platform::Error::from)?;
        if row.version > 1 {
            let views = serde_json::to_string(&views).map_err(lots_platform::Error::from)?;
            sqlx::query("UPDATE cases SET views = $2 WHERE id = $1").bind(row.id).bind(views).execute(&mut *tx).await?;
        }
        outbox::enqueue(tx, &self.subjects, &event).await?;
        Ok(())
    }
}

fn same_request(first: CaseRow, new: &NewCase) -> Result<CaseRow> {
    if first.request_fingerprint == new.fingerprint() {
        Ok(first)
    } else {
        Err(Error::KeyReused { key: new.idempotency_key.clone(), reference: first.reference })
    }
}

/// The error for a case that does not exist.
pub fn not_found(what: &str) -> Error {
    Error::NotFound(format!("no case {what}"))
}
