//! Who may publish and subscribe what on NATS: each service connects as its own user, allowed
//! to publish only the event types it emits (and routing alone its control subject). The
//! testkit, `deploy/nats` and `lots dev` build their server users from this.

use crate::Payload;
use crate::payload::*;

/// The event types each service emits.
pub const EMITS: &[(&str, &[&str])] = &[
    (
        "intake",
        &[
            CaseRegistered::TYPE,
            CaseWaitingForCompany::TYPE,
            CaseResumed::TYPE,
            CaseClosed::TYPE,
            CaseWithdrawn::TYPE,
            CaseApplicationComplete::TYPE,
            CaseDeadlineExtended::TYPE,
            ComplaintRegistered::TYPE,
            ComplaintAcknowledged::TYPE,
            ComplaintAnswered::TYPE,
            ComplaintClosed::TYPE,
            ComplaintReassigned::TYPE,
            VisitRegistered::TYPE,
            VisitFollowUpAdded::TYPE,
            VisitFollowUpDone::TYPE,
            IntakeAuditHead::TYPE,
        ],
    ),
    (
        "routing",
        &[
            CaseRouted::TYPE,
            CaseOwnerChanged::TYPE,
            CaseUnroutable::TYPE,
            MeetingBooked::TYPE,
            MeetingProposed::TYPE,
            MeetingCancelled::TYPE,
            TaskOffered::TYPE,
            TaskAccepted::TYPE,
            TaskDeclined::TYPE,
            TaskCompleted::TYPE,
            TaskCancelled::TYPE,
            RoutingAuditHead::TYPE,
        ],
    ),
    (
        "sla",
        &[
            SlaWarning::TYPE,
            SlaBreached::TYPE,
            SlaEscalated::TYPE,
            SlaMet::TYPE,
            SlaDelayNotice::TYPE,
            SlaAuditHead::TYPE,
        ],
    ),
    ("insight", &[InsightAuditHead::TYPE]),
];

/// One NATS user's allowed subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    /// Refused even where `publish` allows (NATS applies deny first).
    pub publish_deny: Vec<String>,
    pub subscribe: Vec<String>,
}

/// The inbox prefix a service's connection uses, so no service can read another's replies
/// (pull deliveries, acks of publishes, command answers).
pub fn inbox_prefix(service: &str) -> String {
    format!("_INBOX_{service}")
}

/// What `service`'s user may do. `prefix` is prepended to Lotsen's subjects: empty in
/// production, `"*"` where every test has a prefix of its own.
pub fn permissions(service: &str, prefix: &str) -> Option<Permissions> {
    let emits = EMITS.iter().find(|(name, _)| *name == service)?.1;
    let p = if prefix.is_empty() { String::new() } else { format!("{prefix}.") };
    let inbox = format!("{}.>", inbox_prefix(service));
    // JetStream's API for its stream and its own consumers, and acks of its own deliveries
    // (routing's durables are one per tenant, so routing may ack on any).
    let ack = if service == "routing" { "$JS.ACK.>".to_owned() } else { format!("$JS.ACK.*.{service}.>") };
    let mut publish: Vec<String> = vec!["$JS.API.>".into(), ack];
    publish.extend(emits.iter().map(|kind| format!("{p}lots.*.{kind}")));
    // No service may delete, purge or reshape the stream; only routing removes a consumer
    // (its pre-writer shared one).
    let mut publish_deny: Vec<String> =
        ["DELETE", "PURGE", "UPDATE", "MSG.DELETE"].iter().map(|op| format!("$JS.API.STREAM.{op}.>")).collect();
    if service != "routing" {
        publish_deny.push("$JS.API.CONSUMER.DELETE.>".into());
    }
    let mut subscribe = vec![inbox.clone()];
    if service == "routing" {
        // Only routing replicas forward and answer task and calendar commands.
        publish.push(format!("{p}lotsctl.routing.*"));
        publish.push(inbox);
        subscribe.push(format!("{p}lotsctl.routing.*"));
    }
    Some(Permissions { publish, publish_deny, subscribe })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_one_emitter() {
        let all: Vec<&str> = EMITS.iter().flat_map(|(_, kinds)| kinds.iter().copied()).collect();
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(all.len(), unique.len(), "an event type is emitted by two services");
        assert_eq!(all.len(), 35, "a new event type needs an emitter here");
    }

    #[test]
    fn only_routing_may_use_the_control_subject() {
        for service in ["intake", "sla", "insight"] {
            let p = permissions(service, "").unwrap();
            assert!(!p.publish.iter().any(|s| s.contains("lotsctl")), "{service}");
        }
        assert!(permissions("routing", "*").unwrap().subscribe.contains(&"*.lotsctl.routing.*".to_owned()));
        assert!(permissions("integrator", "").is_none());
    }
}
