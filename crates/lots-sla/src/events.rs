//! The sla service follows every case event that can start, pause, resume, stop or extend a
//! clock, records it, and recomputes the case's clocks in the same transaction.

use lots_domain::guarantee::{CASE_ENDED, DEADLINE_EXTENDED, State};
use lots_domain::tenant::TenantConfig;
use lots_events::{
    CaseOwnerChanged, CaseRegistered, CaseRouted, CaseUnroutable, ComplaintReassigned, ComplaintRegistered, Envelope,
    Payload, Source, VisitFollowUpAdded, VisitFollowUpDone,
};
use lots_platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::clocks::{self, CaseRow};
use crate::timer::{Fired, Sla};

impl Handler for Sla {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if event.source == Source::Sla {
            return Ok(());
        }
        if event.kind.starts_with("complaint.") || event.kind.starts_with("visit.") {
            return self.handle_commitment_item(tx, event).await;
        }
        if let Some(data) = event.decode::<CaseRegistered>() {
            let data = data?;
            sqlx::query(
                "INSERT INTO cases (id, tenant, reference, case_type) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(event.case_id)
            .bind(&event.tenant)
            .bind(&data.reference)
            .bind(&data.case_type)
            .execute(&mut *tx)
            .await?;
        }
        // The case owner (the coordinating seat's officer) gets the warnings.
        let owner = match event.kind.as_str() {
            CaseRouted::TYPE => event.decode::<CaseRouted>().transpose()?.map(|r| r.owner),
            CaseOwnerChanged::TYPE => event.decode::<CaseOwnerChanged>().transpose()?.map(|c| c.owner),
            _ => None,
        };
        if let Some(owner) = owner.filter(|o| !o.officer_id.is_empty()) {
            sqlx::query("UPDATE cases SET officer_id = $2, unit = $3 WHERE id = $1")
                .bind(event.case_id)
                .bind(&owner.officer_id)
                .bind(&owner.unit)
                .execute(&mut *tx)
                .await?;
        }
        let case: Option<CaseRow> = sqlx::query_as("SELECT * FROM cases WHERE id = $1 FOR UPDATE")
            .bind(event.case_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(case) = case else {
            // An event about a case sla has not seen registered yet (its case.registered is
            // still to come or failed): retry it later, like a version gap, never skip it.
            return Err(
                format!("case {} is not registered here yet; waiting for case.registered", event.case_id).into()
            );
        };
        let Some(tenant) = self.tenants.get(&case.tenant).cloned() else {
            return Ok(());
        };
        let Some(case_type) = tenant.case_type(&case.case_type) else {
            return Ok(());
        };
        if let Some(unroutable) = event.decode::<CaseUnroutable>().transpose()? {
            let ended: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM case_events WHERE case_id = $1 AND kind = ANY ($2))")
                    .bind(case.id)
                    .bind(CASE_ENDED.iter().map(|k| k.to_string()).collect::<Vec<_>>())
                    .fetch_one(&mut *tx)
                    .await?;
            let fired = Fired::unroutable(&tenant, case_type, &case, &unroutable.reason, ended, self.clock.now());
            self.publish(tx, fired).await?;
        }
        if CASE_ENDED.contains(&event.kind.as_str()) {
            // The case ended: its unroutable escalations need no more action.
            sqlx::query("UPDATE alerts SET open = false WHERE clock_id = $1 AND open")
                .bind(clocks::unroutable_id(case.id))
                .execute(&mut *tx)
                .await?;
        }
        let relevant = event.kind == DEADLINE_EXTENDED
            || CASE_ENDED.contains(&event.kind.as_str())
            || case_type.commitments.iter().filter_map(|k| tenant.commitments.get(k)).any(|c| {
                c.starts_on == event.kind
                    || c.stops_on.contains(&event.kind)
                    || c.pauses_on.contains(&event.kind)
                    || c.resumes_on.contains(&event.kind)
            });
        if !relevant {
            return Ok(());
        }
        self.record_and_recompute(tx, &tenant, &case, event.id, event).await
    }

    fn committed(&self, _event: &Envelope) {
        self.relay.notify_one();
        self.wake.notify_one();
    }
}

impl Sla {
    /// Records `event` (under `event_id`) among the clock events of `case` (a case, complaint or
    /// follow-up) and recomputes its clocks; a clock that just stopped closes its alerts and, if
    /// met, announces it.
    async fn record_and_recompute(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantConfig,
        case: &CaseRow,
        event_id: uuid::Uuid,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO case_events (event_id, case_id, kind, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(case.id)
        .bind(&event.kind)
        .bind(event.occurred_at)
        .execute(&mut *tx)
        .await?;
        let now = self.clock.now();
        let stopped = clocks::recompute(tx, tenant, case, now).await?;
        let mut fired = Vec::new();
        for s in stopped {
            sqlx::query("UPDATE alerts SET open = false WHERE clock_id = $1 AND open")
                .bind(s.clock_id)
                .execute(&mut *tx)
                .await?;
            if matches!(s.clock.state, State::Met | State::MetLate) {
                fired.push(Fired::met(tenant, case, &s, now));
            }
        }
        self.publish(tx, fired).await?;
        Ok(())
    }

    /// Complaints and visit follow-ups: each is a row of its own (a follow-up's id is not the
    /// visit's), with the same clocks, alerts and escalations as a case.
    async fn handle_commitment_item(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if let Some(r) = event.decode::<ComplaintRegistered>().transpose()? {
            sqlx::query(
                "INSERT INTO cases (id, tenant, reference, case_type, officer_id, unit, kind, anonymous)
                 VALUES ($1, $2, $3, '', $4, $5, 'complaint', $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(event.case_id)
            .bind(&event.tenant)
            .bind(&r.reference)
            .bind(&r.handler.officer_id)
            .bind(&r.handler.unit)
            .bind(r.anonymous)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(r) = event.decode::<ComplaintReassigned>().transpose()? {
            sqlx::query("UPDATE cases SET officer_id = $2, unit = $3 WHERE id = $1")
                .bind(event.case_id)
                .bind(&r.handler.officer_id)
                .bind(&r.handler.unit)
                .execute(&mut *tx)
                .await?;
        }
        // A tenant no longer configured: its complaint row above keeps later events in order.
        let Some(tenant) = self.tenants.get(&event.tenant).cloned() else {
            return Ok(());
        };
        let item = match event.kind.as_str() {
            VisitFollowUpAdded::TYPE => {
                let Some(added) = event.decode::<VisitFollowUpAdded>().transpose()? else { return Ok(()) };
                // The due date as working time from now: the end of that day, local time.
                let calendar = lots_domain::calendar::WorkCalendar::for_tenant(&tenant);
                let end = added
                    .due_date
                    .succ_opt()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(lots_domain::calendar::local_to_utc);
                let minutes = end.map_or(1, |end| calendar.working_time_between(event.occurred_at, end).num_minutes());
                sqlx::query(
                    "INSERT INTO cases (id, tenant, reference, case_type, officer_id, unit, kind, target_minutes, due_date)
                     VALUES ($1, $2, $3, '', $4, $5, 'follow_up', $6, $7) ON CONFLICT (id) DO NOTHING",
                )
                .bind(added.follow_up_id)
                .bind(&event.tenant)
                .bind(format!("{} uppföljning {}", added.visit_reference, added.number))
                .bind(&added.owner.officer_id)
                .bind(&added.owner.unit)
                .bind(minutes.clamp(1, i64::from(i32::MAX)) as i32)
                .bind(added.due_date)
                .execute(&mut *tx)
                .await?;
                added.follow_up_id
            }
            VisitFollowUpDone::TYPE => match event.decode::<VisitFollowUpDone>().transpose()? {
                Some(done) => done.follow_up_id,
                None => return Ok(()),
            },
            _ => event.case_id,
        };
        let case: Option<CaseRow> =
            sqlx::query_as("SELECT * FROM cases WHERE id = $1 FOR UPDATE").bind(item).fetch_optional(&mut *tx).await?;
        let Some(case) = case else {
            return Err(format!("{} {item} is not known here yet; waiting for its first event", event.kind).into());
        };
        // One event may stand for several items (never today); the item's id keeps them apart.
        let event_id = if item == event.case_id { event.id } else { uuid::Uuid::new_v5(&event.id, item.as_bytes()) };
        self.record_and_recompute(tx, &tenant, &case, event_id, event).await
    }
}
