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
use tracing::{Instrument, instrument};
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
    /// Registers a batch of one tenant's validated cases, in arrival order, and answers each:
    /// its new case, or the case first registered under its idempotency key (a retry, in an
    /// earlier batch or earlier in this one), or its own error. Only the tenant's registration
    /// writer calls this (see `registrar`), so batches of one tenant never wait on each other.
    ///
    /// The whole batch is one transaction: one reference-counter update, its cases, their
    /// `case.registered` events and audit entries, one commit. If that transaction fails, the
    /// cases are written one per transaction, so each request gets its own error and a bad one
    /// cannot fail the others. A key taken by another replica between the lookup and the insert
    /// aborts the batch; it is retried a bounded number of times and the retry answers from the
    /// register.
    #[instrument(name = "intake.cases.register_batch", skip_all, fields(cases = batch.len()))]
    pub async fn register_batch(&self, batch: &[Pending]) -> Vec<Result<CaseRow>> {
        const KEY_RACES: u32 = 3;
        let mut answers: Vec<Option<Result<CaseRow>>> = batch.iter().map(|_| None).collect();
        let (mut races, mut alone) = (0, false);
        loop {
            let open: Vec<usize> = (0..batch.len()).filter(|&i| answers[i].is_none()).collect();
            let Some(&first_open) = open.first() else { break };
            let tenant = &batch[first_open].new.tenant.kommunkod;
            // Retries of registered requests answer from the register and write nothing.
            let keys: Vec<&str> = open.iter().map(|&i| batch[i].new.idempotency_key.as_str()).collect();
            let earlier = match store::by_idempotency_keys(&self.pool, tenant, &keys).await {
                Ok(rows) => rows,
                Err(e) => {
                    answers[first_open] = Some(Err(e));
                    alone = true;
                    continue;
                }
            };
            let mut fresh: Vec<usize> = Vec::new();
            for &i in &open {
                let new = &batch[i].new;
                if let Some(first) = earlier.iter().find(|r| same_key(r, new)) {
                    answers[i] = Some(same_request(first.clone(), new));
                } else if !fresh.iter().any(|&f| batch[f].new.idempotency_key == new.idempotency_key) {
                    // A second request with a key earlier in the batch waits for the first's
                    // case and is answered from the register on the next pass.
                    fresh.push(i);
                }
            }
            if alone {
                fresh.truncate(1);
            }
            if fresh.is_empty() {
                continue;
            }
            let items: Vec<&Pending> = fresh.iter().map(|&i| &batch[i]).collect();
            match self.write_registrations(&items).await {
                Ok(rows) => {
                    for (&i, row) in fresh.iter().zip(rows) {
                        answers[i] = Some(Ok(row));
                    }
                }
                Err(e) if key_taken(&e) && races < KEY_RACES => races += 1,
                Err(_) if !alone => alone = true,
                Err(e) => answers[fresh[0]] = Some(Err(e)),
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(Error::Corrupt("registration not answered".into()))))
            .collect()
    }

    /// Writes new cases, all of one tenant and none registered before, in one transaction.
    async fn write_registrations(&self, items: &[&Pending]) -> Result<Vec<CaseRow>> {
        let tenant = &items[0].new.tenant.kommunkod;
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now();
        // The reference year is the Swedish one: 00:30 on 1 January is already the new year.
        let year = now.with_timezone(&lots_domain::calendar::TZ).year();
        let last = store::take_reference_numbers(&mut tx, tenant, year, items.len() as i64).await?;
        let mut rows = Vec::with_capacity(items.len());
        let mut events = Vec::with_capacity(items.len());
        for (number, p) in (last + 1 - items.len() as i64..).zip(items) {
            let new = &p.new;
            let reference = Reference { prefix: new.tenant.reference_prefix.clone(), year, number: number as u64 };
            let reference = reference.to_string();
            let fingerprint = new.fingerprint();
            let insert = store::Insert {
                id: Uuid::now_v7(),
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
            let row = store::insert(&mut tx, &insert).await?;
            let data = CaseRegistered {
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
            // The insert already stored the record after case.registered (version 1).
            let event = Envelope::new(&row.tenant, row.id, 1, &row.registered_by, row.updated_at, data)
                .stamped(&mut Views::default())
                .into_raw()
                .map_err(lots_platform::Error::from)?;
            // Each event and audit entry belongs to its own request's trace.
            events.push((event, p.span.in_scope(lots_platform::nats::current_traceparent)));
            let changes =
                serde_json::json!({ "status": row.status, "case_type": row.case_type, "reference": row.reference });
            let entry =
                audit::Entry::change(&p.caller, "IntakeService/RegisterCase", vec![row.id.to_string()], changes);
            audit::record(&mut *tx, &entry).instrument(p.span.clone()).await?;
            rows.push(row);
        }
        let traced: Vec<_> = events.iter().map(|(e, t)| (e, t.clone())).collect();
        outbox::enqueue_traced(&mut tx, &self.subjects, &traced).await?;
        tx.commit().await?;
        self.relay.notify_one();
        Ok(rows)
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

/// A registration waiting for its tenant's writer: the request, who asked, and the request's
/// span (its trace follows the case into the outbox and the audit log).
pub struct Pending {
    pub new: NewCase,
    pub caller: Caller,
    pub span: tracing::Span,
}

fn same_key(row: &CaseRow, new: &NewCase) -> bool {
    row.tenant == new.tenant.kommunkod && row.idempotency_key == new.idempotency_key
}

/// Whether a write failed because another writer registered the same idempotency key first.
fn key_taken(e: &Error) -> bool {
    matches!(e, Error::Database(sqlx::Error::Database(d)) if d.constraint() == Some("cases_idempotency_key"))
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
