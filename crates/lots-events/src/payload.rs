//! Typed event payloads, one struct per event type.

use serde::{Deserialize, Serialize};

use crate::{Payload, Source};

macro_rules! payload {
    ($ty:ident, $name:literal, $source:ident) => {
        impl Payload for $ty {
            const TYPE: &'static str = $name;
            const SOURCE: Source = Source::$source;
        }
    };
}

/// The company's contact person.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContactInfo {
    pub name: String,
    pub phone: String,
    pub email: String,
}

/// `case.registered`: reception registered a company case.
///
/// A sole trader's organisation number is a personnummer and never travels; a legal person's
/// (a public record at Bolagsverket) does, for the SKR Insikt case list. `company_key` stands
/// for the company either way (see `lots_domain::company_key`). `Debug` is not derived: the
/// contact is personal data.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseRegistered {
    pub reference: String,
    pub case_type: String,
    /// The company's key in this municipality: a keyed hash of its organisation number.
    #[serde(default)]
    pub company_key: String,
    pub company_name: String,
    pub legal_form: String,
    /// The organisation number of a legal person; `None` for anyone whose number is personal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_nr: Option<String>,
    pub contact: ContactInfo,
    pub channel: String,
    pub description: String,
}
payload!(CaseRegistered, "case.registered", Intake);

/// `case.waiting_for_company`: the case waits for the company's komplettering; clocks pause.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseWaitingForCompany {
    pub reason: String,
    /// The status the case returns to when resumed.
    pub previous_status: String,
}
payload!(CaseWaitingForCompany, "case.waiting_for_company", Intake);

/// `case.resumed`: the company answered; clocks run again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseResumed {
    /// The status the case returned to.
    pub status: String,
}
payload!(CaseResumed, "case.resumed", Intake);

/// `case.closed`: the case is decided and closed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseClosed {
    pub outcome: String,
    pub decision: String,
}
payload!(CaseClosed, "case.closed", Intake);

/// `case.withdrawn`: the company or the municipality withdrew the case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseWithdrawn {
    pub reason: String,
}
payload!(CaseWithdrawn, "case.withdrawn", Intake);

/// One seat at the dukat bord as routing offered it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeatOffer {
    #[serde(flatten)]
    pub task: TaskRef,
    /// An optional seat; the meeting is booked without it.
    pub optional: bool,
}

/// The officer who coordinates the case for the company (företagslots / kommunkontakt).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseOwner {
    pub officer_id: String,
    pub unit: String,
}

/// `case.routed`: routing's whole decision for a case in one event: the proposed dukat bord,
/// every seat's offer and the case owner. Later changes are `task.*` and `meeting.*`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseRouted {
    pub meeting_id: uuid::Uuid,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
    pub location: String,
    pub seats: Vec<SeatOffer>,
    pub owner: CaseOwner,
}

impl CaseRouted {
    /// The officers offered a seat, in seat order.
    pub fn officers(&self) -> Vec<&str> {
        self.seats.iter().map(|s| s.task.officer_id.as_str()).collect()
    }
}
payload!(CaseRouted, "case.routed", Routing);

/// `case.owner_changed`: the case has a new coordinating officer (a decline, a re-seat or an
/// enhetschef's reassignment).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseOwnerChanged {
    pub owner: CaseOwner,
    pub reason: String,
}
payload!(CaseOwnerChanged, "case.owner_changed", Routing);

/// `case.unroutable`: no dukat bord could be set; the reason is for a person to act on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseUnroutable {
    pub reason: String,
}
payload!(CaseUnroutable, "case.unroutable", Routing);

/// `meeting.booked`: every seat accepted; the dukat bord is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MeetingBooked {
    pub meeting_id: uuid::Uuid,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
}
payload!(MeetingBooked, "meeting.booked", Routing);

/// `meeting.proposed`: a dukat bord time was chosen (again, when `sequence` > 0: it moved).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MeetingProposed {
    pub meeting_id: uuid::Uuid,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
    pub officers: Vec<String>,
    pub sequence: u32,
}
payload!(MeetingProposed, "meeting.proposed", Routing);

/// `meeting.cancelled`: the case was withdrawn, closed or became unroutable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MeetingCancelled {
    pub meeting_id: uuid::Uuid,
    pub reason: String,
}
payload!(MeetingCancelled, "meeting.cancelled", Routing);

/// The officer and seat a task event is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskRef {
    pub task_id: uuid::Uuid,
    pub meeting_id: uuid::Uuid,
    pub officer_id: String,
    pub unit: String,
    pub competence: String,
}

/// `task.offered`: an officer is offered a seat at the dukat bord.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskOffered {
    #[serde(flatten)]
    pub task: TaskRef,
}
payload!(TaskOffered, "task.offered", Routing);

/// `task.accepted`: the officer took the seat (the company has had its first contact).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskAccepted {
    #[serde(flatten)]
    pub task: TaskRef,
}
payload!(TaskAccepted, "task.accepted", Routing);

/// `task.declined`: the officer declined; the seat is offered to someone else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskDeclined {
    #[serde(flatten)]
    pub task: TaskRef,
    pub reason: String,
}
payload!(TaskDeclined, "task.declined", Routing);

/// `task.completed`: the officer finished their part of the case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskCompleted {
    #[serde(flatten)]
    pub task: TaskRef,
}
payload!(TaskCompleted, "task.completed", Routing);

/// `task.cancelled`: the case ended or moved on; the seat is no longer needed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskCancelled {
    #[serde(flatten)]
    pub task: TaskRef,
    pub reason: String,
}
payload!(TaskCancelled, "task.cancelled", Routing);

/// `case.application_complete`: the company's application is complete; legal deadlines start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CaseApplicationComplete {}
payload!(CaseApplicationComplete, "case.application_complete", Intake);

/// `case.deadline_extended`: a legal deadline was extended once (PBL 9 kap. 27 §).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseDeadlineExtended {
    pub reason: String,
}
payload!(CaseDeadlineExtended, "case.deadline_extended", Intake);

/// What every sla alert carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlertData {
    pub clock_id: uuid::Uuid,
    pub commitment: String,
    pub commitment_name: String,
    pub reference: String,
    pub unit: String,
    /// Officer id of who must act.
    pub recipient: String,
    pub due_at: chrono::DateTime<chrono::Utc>,
    /// Fired after its time, e.g. after the sla service was down.
    pub late: bool,
}

/// `sla.warning`: a commitment has used `percent` of its time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlaWarning {
    #[serde(flatten)]
    pub alert: AlertData,
    pub percent: u8,
}
payload!(SlaWarning, "sla.warning", Sla);

/// `sla.breached`: a commitment was not met in time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlaBreached {
    #[serde(flatten)]
    pub alert: AlertData,
}
payload!(SlaBreached, "sla.breached", Sla);

/// `sla.escalated`: a breach goes up the chain (officer → unit manager → näringslivschef).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlaEscalated {
    #[serde(flatten)]
    pub alert: AlertData,
    pub step: u32,
    pub level: String,
}
payload!(SlaEscalated, "sla.escalated", Sla);

/// `sla.met`: a commitment was met (possibly late).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlaMet {
    #[serde(flatten)]
    pub alert: AlertData,
    pub met_at: chrono::DateTime<chrono::Utc>,
    pub fee_reduction_percent: u32,
}
payload!(SlaMet, "sla.met", Sla);

/// `sla.delay_notice`: förvaltningslagen 11 § — the company must be told the decision is delayed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlaDelayNotice {
    #[serde(flatten)]
    pub alert: AlertData,
}
payload!(SlaDelayNotice, "sla.delay_notice", Sla);

/// The head of a service's audit chain for one municipality: its last sequence number and hash
/// (hex), published periodically so a system outside Lotsen can keep them and later prove the
/// log was not rewritten.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditChainHead {
    pub seq: i64,
    pub hash: String,
}

/// `audit.intake.chain_head`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct IntakeAuditHead(pub AuditChainHead);
payload!(IntakeAuditHead, "audit.intake.chain_head", Intake);

/// `audit.routing.chain_head`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct RoutingAuditHead(pub AuditChainHead);
payload!(RoutingAuditHead, "audit.routing.chain_head", Routing);

/// `audit.sla.chain_head`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SlaAuditHead(pub AuditChainHead);
payload!(SlaAuditHead, "audit.sla.chain_head", Sla);

/// `audit.insight.chain_head`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct InsightAuditHead(pub AuditChainHead);
payload!(InsightAuditHead, "audit.insight.chain_head", Insight);

/// Who handles a complaint (a unit manager, else the näringslivschef) or owns a follow-up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handler {
    pub officer_id: String,
    pub unit: String,
}

/// What a complaint is about; all empty means nothing in particular.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintAbout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<uuid::Uuid>,
    #[serde(default)]
    pub case_reference: String,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub officer: String,
}

/// `complaint.registered`: a klagomål was registered; its guarantee starts. Neither the
/// complainant's contact nor the description travels (they stay in intake).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintRegistered {
    pub reference: String,
    pub category: String,
    pub channel: String,
    pub about: ComplaintAbout,
    /// Anonymous: no answer is owed.
    pub anonymous: bool,
    /// It holds details under secrecy.
    pub secrecy: bool,
    pub handler: Handler,
}
payload!(ComplaintRegistered, "complaint.registered", Intake);

/// `complaint.acknowledged`: the complainant was told it was received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintAcknowledged {}
payload!(ComplaintAcknowledged, "complaint.acknowledged", Intake);

/// `complaint.answered`: the complainant has the answer (its text stays in intake).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintAnswered {}
payload!(ComplaintAnswered, "complaint.answered", Intake);

/// `complaint.closed`: nothing more is done about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintClosed {}
payload!(ComplaintClosed, "complaint.closed", Intake);

/// `complaint.reassigned`: another officer handles it; sla warns them from now on (the reason
/// stays in intake).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintReassigned {
    pub handler: Handler,
}
payload!(ComplaintReassigned, "complaint.reassigned", Intake);

/// `visit.registered`: a company visit took place. The company travels as its key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VisitRegistered {
    pub reference: String,
    pub company_key: String,
    pub company_name: String,
    pub date: chrono::NaiveDate,
    /// "lotsande" or "other".
    pub kind: String,
    /// Officer ids of the municipality's participants.
    pub participants: Vec<String>,
    pub topics: Vec<String>,
    /// The company agreed to publish its story.
    pub story_consent: bool,
}
payload!(VisitRegistered, "visit.registered", Intake);

/// `visit.follow_up_added`: something promised at a visit, with its owner and due date; sla
/// keeps it like a servicegaranti commitment. The envelope's case id is the visit's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VisitFollowUpAdded {
    pub follow_up_id: uuid::Uuid,
    /// 1-based within the visit.
    pub number: u32,
    pub visit_reference: String,
    pub owner: Handler,
    pub due_date: chrono::NaiveDate,
}
payload!(VisitFollowUpAdded, "visit.follow_up_added", Intake);

/// `visit.follow_up_done`: the follow-up is done (its note stays in intake).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VisitFollowUpDone {
    pub follow_up_id: uuid::Uuid,
    pub number: u32,
}
payload!(VisitFollowUpDone, "visit.follow_up_done", Intake);
