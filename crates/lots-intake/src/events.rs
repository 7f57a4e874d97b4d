//! Intake follows routing's events: a case becomes routed, meeting_booked or unroutable, and
//! who sits at its dukat bord is recorded for who may read it.

use lots_domain::CaseStatus;
use lots_events::{CaseRouted, CaseUnroutable, Envelope, MeetingBooked, Payload, TaskDeclined, TaskOffered};
use lots_platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::cases::Cases;

/// The consumer handler that keeps case status in step with routing.
pub struct FollowRouting {
    pub clock: lots_platform::Clock,
}

impl Handler for FollowRouting {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let db = |e: sqlx::Error| HandlerError::from(crate::error::Error::from(e));
        // A re-seat: the new officer may read the case, the one who declined no longer.
        if let Some(offered) =
            event.decode::<TaskOffered>().transpose().map_err(|e| HandlerError::from(lots_platform::Error::from(e)))?
        {
            sqlx::query(
                "INSERT INTO case_seats (tenant, case_id, officer_id, unit) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (case_id, officer_id) DO NOTHING",
            )
            .bind(&event.tenant)
            .bind(event.case_id)
            .bind(&offered.task.officer_id)
            .bind(&offered.task.unit)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            return Ok(());
        }
        if let Some(declined) =
            event.decode::<TaskDeclined>().transpose().map_err(|e| HandlerError::from(lots_platform::Error::from(e)))?
        {
            sqlx::query("DELETE FROM case_seats WHERE case_id = $1 AND officer_id = $2")
                .bind(event.case_id)
                .bind(&declined.task.officer_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            return Ok(());
        }
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
            .map_err(db)?;
        }
        Ok(())
    }
}
