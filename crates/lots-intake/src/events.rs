//! Intake follows routing's events: a case becomes routed, meeting_booked or unroutable.

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
        Ok(())
    }
}
