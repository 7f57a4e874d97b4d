//! Who applies which events: each consuming service's filter, and per-case ordering within it.
//!
//! A consumer sees only the event types it applies, so a producer's per-case `version` has gaps
//! in its view. Each event therefore also carries, per consuming service, the version of the
//! previous event of the same case and source in that service's view (`Envelope::prev`): a
//! consumer applies an event only when its cursor stands exactly there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::payload::*;
use crate::{Envelope, Payload};

/// A consuming service and the event types it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The service name: the key in `Envelope::prev` and the durable consumer's base name.
    pub service: &'static str,
    /// Exactly the event types the service applies; its consumer filters on these.
    pub applies: &'static [&'static str],
}

impl View {
    /// Whether the service applies events of `kind`.
    pub fn applies_to(&self, kind: &str) -> bool {
        self.applies.contains(&kind)
    }
}

/// Intake follows routing's outcome of a case.
/// It also keeps who sits at each case (seats offered and declined), for who may read it.
pub const INTAKE: View = View {
    service: "intake",
    applies: &[CaseRouted::TYPE, CaseUnroutable::TYPE, MeetingBooked::TYPE, TaskOffered::TYPE, TaskDeclined::TYPE],
};

/// Routing routes registered cases and frees seats of ended ones.
pub const ROUTING: View =
    View { service: "routing", applies: &[CaseRegistered::TYPE, CaseClosed::TYPE, CaseWithdrawn::TYPE] };

/// Sla runs clocks from case, task and meeting events (never its own), and from complaints and
/// visit follow-ups, which carry commitments of their own.
pub const SLA: View = View {
    service: "sla",
    applies: &[
        CaseRegistered::TYPE,
        CaseWaitingForCompany::TYPE,
        CaseResumed::TYPE,
        CaseClosed::TYPE,
        CaseWithdrawn::TYPE,
        CaseApplicationComplete::TYPE,
        CaseDeadlineExtended::TYPE,
        CaseRouted::TYPE,
        CaseUnroutable::TYPE,
        CaseOwnerChanged::TYPE,
        MeetingProposed::TYPE,
        MeetingBooked::TYPE,
        MeetingCancelled::TYPE,
        TaskOffered::TYPE,
        TaskAccepted::TYPE,
        TaskDeclined::TYPE,
        TaskCompleted::TYPE,
        TaskCancelled::TYPE,
        ComplaintRegistered::TYPE,
        ComplaintAcknowledged::TYPE,
        ComplaintAnswered::TYPE,
        ComplaintClosed::TYPE,
        ComplaintReassigned::TYPE,
        VisitFollowUpAdded::TYPE,
        VisitFollowUpDone::TYPE,
    ],
};

/// The read side follows every case and complaint event of intake and routing: a company's
/// status, promised dates and the guarantee figures are computed from them. It applies every
/// event type those producers emit for a case or complaint, so its per-case order has no gaps.
pub const INSIGHT: View = View {
    service: "insight",
    applies: &[
        CaseRegistered::TYPE,
        CaseWaitingForCompany::TYPE,
        CaseResumed::TYPE,
        CaseClosed::TYPE,
        CaseWithdrawn::TYPE,
        CaseApplicationComplete::TYPE,
        CaseDeadlineExtended::TYPE,
        CaseRouted::TYPE,
        CaseOwnerChanged::TYPE,
        CaseUnroutable::TYPE,
        MeetingProposed::TYPE,
        MeetingBooked::TYPE,
        MeetingCancelled::TYPE,
        TaskOffered::TYPE,
        TaskAccepted::TYPE,
        TaskDeclined::TYPE,
        TaskCompleted::TYPE,
        TaskCancelled::TYPE,
        ComplaintRegistered::TYPE,
        ComplaintAcknowledged::TYPE,
        ComplaintAnswered::TYPE,
        ComplaintClosed::TYPE,
        ComplaintReassigned::TYPE,
    ],
};

/// Every consuming service.
pub const ALL: &[View] = &[INTAKE, ROUTING, SLA, INSIGHT];

/// A producer's record, per case, of the last version it emitted into each service's view.
/// Stored with the producer's case row (as JSON) and advanced as events are emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Views(pub BTreeMap<String, u64>);

impl Views {
    /// The record after a case's first event, of type `kind`.
    pub fn first(kind: &str) -> Views {
        Views(ALL.iter().filter(|v| v.applies_to(kind)).map(|v| (v.service.to_owned(), 1)).collect())
    }

    /// Sets `event.prev` for every service that applies it and advances the record.
    pub fn stamp<T>(&mut self, event: &mut Envelope<T>) {
        for view in ALL.iter().filter(|v| v.applies_to(&event.kind)) {
            let last = self.0.insert(view.service.to_owned(), event.version).unwrap_or(0);
            event.prev.insert(view.service.to_owned(), last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_names_the_same_event_types_its_commitments_start_and_stop_on() {
        let cfg = lots_domain::tenant::ComplaintPolicy::default();
        let named = cfg.commitments(false);
        assert_eq!(named[0].1.starts_on, ComplaintRegistered::TYPE);
        assert_eq!(named[0].1.stops_on, [ComplaintAcknowledged::TYPE, ComplaintAnswered::TYPE]);
        assert_eq!(named[1].1.stops_on, [ComplaintAnswered::TYPE]);
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
        let follow_up = lots_domain::tenant::VisitPolicy::default().follow_up_commitment(60, date);
        assert_eq!(follow_up.starts_on, VisitFollowUpAdded::TYPE);
        assert_eq!(follow_up.stops_on, [VisitFollowUpDone::TYPE]);
        for kind in [&named[0].1.starts_on, &follow_up.starts_on] {
            assert!(SLA.applies_to(kind), "{kind}");
        }
    }
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn each_view_counts_only_what_it_applies() {
        let mut views = Views::default();
        let id = Uuid::nil();
        let ev = |v: u64, kind: &str| {
            let mut e = Envelope::new("0581", id, v, "a", Utc::now(), CaseResumed { status: "x".into() });
            e.kind = kind.to_owned();
            e
        };
        let mut routed = ev(1, CaseRouted::TYPE);
        views.stamp(&mut routed);
        let mut offered = ev(2, TaskAccepted::TYPE);
        views.stamp(&mut offered);
        let mut booked = ev(3, MeetingBooked::TYPE);
        views.stamp(&mut booked);
        assert_eq!(routed.prev.get("intake"), Some(&0));
        assert_eq!(routed.prev.get("sla"), Some(&0));
        assert_eq!(offered.prev.get("intake"), None, "intake does not apply task.accepted");
        assert_eq!(offered.prev.get("sla"), Some(&1));
        // Intake's view skips version 2: meeting.booked follows case.routed directly.
        assert_eq!(booked.prev.get("intake"), Some(&1));
        assert_eq!(booked.prev.get("sla"), Some(&2));
    }
}
