//! Lotsen's event contract: the envelope, typed payloads, subjects, and stream/consumer definitions.
//!
//! Every service publishes and consumes through these types; none hard-codes a subject.

pub mod access;
pub mod payload;
pub mod subject;
pub mod views;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use payload::*;
pub use subject::Subjects;
pub use views::{View, Views};

/// Header carrying the event id, used by JetStream's duplicate window.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// Header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The service that produced an event; per-case versions count per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Intake,
    Routing,
    Sla,
    Insight,
}

impl Source {
    /// The stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Intake => "intake",
            Source::Routing => "routing",
            Source::Sla => "sla",
            Source::Insight => "insight",
        }
    }
}

/// The envelope every event travels in (DESIGN.md, "Events").
///
/// `Debug` is deliberately not derived: `data` may hold a personnummer.
#[derive(Clone, Serialize, Deserialize)]
pub struct Envelope<T = serde_json::Value> {
    /// UUIDv7; also the `Nats-Msg-Id` header.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    /// Kommunkod.
    pub tenant: String,
    pub case_id: Uuid,
    pub source: Source,
    /// Per-case, per-source sequence number, starting at 1 and without gaps; 0 for events
    /// derived from time (sla alerts), which have deterministic ids instead.
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    /// Per consuming service, the version of this case's previous event from this source in
    /// that service's view (see [`views`]); empty in events from before filtered consumers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prev: BTreeMap<String, u64>,
    pub data: T,
}

/// A typed event payload with its type name and producing service.
pub trait Payload: Serialize + DeserializeOwned {
    /// The event type, e.g. `case.registered`.
    const TYPE: &'static str;
    /// The only service that emits it.
    const SOURCE: Source;
}

impl<T: Payload> Envelope<T> {
    /// A new event with a fresh UUIDv7 id.
    pub fn new(
        tenant: impl Into<String>,
        case_id: Uuid,
        version: u64,
        actor: impl Into<String>,
        occurred_at: DateTime<Utc>,
        data: T,
    ) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            kind: T::TYPE.to_owned(),
            tenant: tenant.into(),
            case_id,
            source: T::SOURCE,
            version,
            occurred_at,
            actor: actor.into(),
            prev: BTreeMap::new(),
            data,
        }
    }

    /// The same event under `id`, for events whose id is derived from what they are about.
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// The same event with `prev` stamped from the producer's `views` of the case.
    pub fn stamped(mut self, views: &mut Views) -> Self {
        views.stamp(&mut self);
        self
    }

    /// The same event with an untyped payload, as stored and sent.
    pub fn into_raw(self) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope {
            id: self.id,
            kind: self.kind,
            tenant: self.tenant,
            case_id: self.case_id,
            source: self.source,
            version: self.version,
            occurred_at: self.occurred_at,
            actor: self.actor,
            prev: self.prev,
            data: serde_json::to_value(self.data)?,
        })
    }
}

impl Envelope {
    /// Parses the payload as `T`, if this event is of `T`'s type.
    pub fn decode<T: Payload>(&self) -> Option<Result<T, serde_json::Error>> {
        (self.kind == T::TYPE).then(|| serde_json::from_value(self.data.clone()))
    }
}

/// A short, log-safe description of an event.
impl<T> std::fmt::Debug for Envelope<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("type", &self.kind)
            .field("tenant", &self.tenant)
            .field("case_id", &self.case_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_designed_json_shape() {
        let data = CaseResumed { status: "routed".into() };
        let at = DateTime::parse_from_rfc3339("2026-11-23T09:14:03.120Z").unwrap().to_utc();
        let env = Envelope::new("0581", Uuid::nil(), 3, "reception:anna.k", at, data);
        let json = serde_json::to_value(env.clone().into_raw().unwrap()).unwrap();
        assert_eq!(json["type"], "case.resumed");
        assert_eq!(json["tenant"], "0581");
        assert_eq!(json["source"], "intake");
        assert_eq!(json["version"], 3);
        assert_eq!(json["occurred_at"], "2026-11-23T09:14:03.120Z");
        assert_eq!(json["data"]["status"], "routed");
        assert_eq!(env.id.get_version_num(), 7);
    }

    #[test]
    fn decode_checks_the_type() {
        let raw = Envelope::new("0581", Uuid::nil(), 1, "a", Utc::now(), CaseResumed { status: "x".into() })
            .into_raw()
            .unwrap();
        assert!(raw.decode::<CaseWithdrawn>().is_none());
        assert_eq!(raw.decode::<CaseResumed>().unwrap().unwrap().status, "x");
    }

    #[test]
    fn debug_never_shows_the_payload() {
        let reg = CaseRegistered {
            reference: "NKP-2026-000001".into(),
            case_type: "bygglov".into(),
            company_key: "ck_0123456789abcdef0123456789abcdef".into(),
            company_name: "Tolvan Bygg".into(),
            legal_form: "enskild firma".into(),
            org_nr: None,
            contact: ContactInfo { name: "T".into(), phone: "+46701234567".into(), email: "t@e.se".into() },
            channel: "phone".into(),
            description: "d".into(),
        };
        let env = Envelope::new("0581", Uuid::nil(), 1, "a", Utc::now(), reg);
        let shown = format!("{env:?}");
        assert!(!shown.contains("1212"), "{shown}");
    }
}
