//! Intake follows routing's events: a case becomes routed, meeting_booked or unroutable, and
//! who sits at its dukat bord is recorded for who may read it.

use lots_domain::CaseStatus;
use lots_events::{CaseRouted, CaseUnroutable, Envelope, MeetingBooked, Payload};
use lots_platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::cases::Cases;

/// The consumer handler that keeps case status in step with routing.
pub struct FollowRouting {
    pub clock: lots_platform::Clock,
}

impl Handler for FollowRouting {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let target = match event.kind.as_str() {
            CaseRouted::TYPE => CaseStatus::Routed,
            CaseUnroutable::TYPE => CaseStatus::Unroutable,
            MeetingBooked::TYPE => CaseStatus::MeetingBooked,
            _ => return Ok(()),
        };
        Cases::follow(tx, event.case_id, target, self.clock.now()).await?;
        if let Some(routed) =
            event.decode::<CaseRouted>().transpose().map_err(|e| HandlerError::from(lots_platform::Error::from(e)))?
        {
            let officers: Vec<String> = routed.seats.iter().map(|s| s.task.officer_id.clone()).collect();
            let units: Vec<String> = routed.seats.iter().map(|s| s.task.unit.clone()).collect();
            sqlx::query(
                "INSERT INTO case_seats (tenant, case_id, officer_id, unit)
                 SELECT $1, $2, o, u FROM unnest($3::text[], $4::text[]) AS s(o, u)
                 ON CONFLICT (case_id, officer_id) DO NOTHING",
            )
            .bind(&event.tenant)
            .bind(event.case_id)
            .bind(&officers)
            .bind(&units)
            .execute(&mut *tx)
            .await
            .map_err(|e| HandlerError::from(crate::error::Error::from(e)))?;
        }
        Ok(())
    }
}
