//! Routing reacts to intake's events: a registered case is routed, an ended one frees its seats.

use lots_events::{CaseClosed, CaseRegistered, CaseWithdrawn, Envelope, Payload};
use lots_platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::route::Routing;

impl Handler for Routing {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match event.kind.as_str() {
            CaseRegistered::TYPE => {
                if let Some(data) = event.decode::<CaseRegistered>() {
                    self.on_registered(tx, event, data?).await?;
                }
            }
            CaseWithdrawn::TYPE => self.on_ended(tx, event.case_id, "the case was withdrawn").await?,
            CaseClosed::TYPE => self.on_ended(tx, event.case_id, "the case was closed").await?,
            _ => {}
        }
        Ok(())
    }

    fn committed(&self, _event: &Envelope) {
        self.relay.notify_one();
    }
}
