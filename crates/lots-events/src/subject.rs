//! Subjects, the stream and the durable consumers, each under an optional prefix.
//!
//! Production runs without a prefix; every test uses a unique one so tests share one server.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

/// Builds subject and stream names under an optional prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    prefix: Option<String>,
}

impl Subjects {
    /// Names under `prefix`; an empty prefix means none. Dots and wildcards are not allowed.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let prefix = prefix.trim();
        if prefix.is_empty() {
            return Ok(Self { prefix: None });
        }
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self { prefix: Some(prefix.to_owned()) })
    }

    /// `lots.<tenant>.<type>`, e.g. `lots.0581.case.registered`.
    pub fn event(&self, tenant: &str, kind: &str) -> String {
        self.with_prefix(&format!("lots.{tenant}.{kind}"))
    }

    /// Every Lotsen subject: `lots.>`.
    pub fn all(&self) -> String {
        self.with_prefix("lots.>")
    }

    /// Every event of one tenant of one family, e.g. `lots.0581.sla.>`.
    pub fn family(&self, tenant: &str, family: &str) -> String {
        self.with_prefix(&format!("lots.{tenant}.{family}.>"))
    }

    /// The stream's name: `LOTS`, or `LOTS_<prefix>`.
    pub fn stream_name(&self) -> String {
        match &self.prefix {
            None => "LOTS".to_owned(),
            Some(p) => format!("LOTS_{}", p.replace('-', "_")),
        }
    }

    /// The JetStream stream that holds every event.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name(),
            subjects: vec![self.all()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(30 * 24 * 3600),
            ..Default::default()
        }
    }

    /// A service's durable pull consumer over every event.
    ///
    /// Deliveries are unlimited here: the consumer loop counts them and dead-letters.
    pub fn consumer_config(&self, durable: &str) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            description: Some(format!("lotsen {durable}")),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            deliver_policy: consumer::DeliverPolicy::All,
            filter_subject: self.all(),
            max_ack_pending: 4096,
            ..Default::default()
        }
    }

    fn with_prefix(&self, subject: &str) -> String {
        match &self.prefix {
            None => subject.to_owned(),
            Some(p) => format!("{p}.{subject}"),
        }
    }
}

/// A subject prefix with characters NATS subjects or stream names cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPrefix(pub String);

impl std::fmt::Display for InvalidPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "subject prefix {:?} may hold only letters, digits, '_' and '-'", self.0)
    }
}

impl std::error::Error for InvalidPrefix {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_subjects_have_no_prefix() {
        let s = Subjects::new("").unwrap();
        assert_eq!(s.event("0581", "case.registered"), "lots.0581.case.registered");
        assert_eq!(s.all(), "lots.>");
        assert_eq!(s.stream_name(), "LOTS");
    }

    #[test]
    fn test_subjects_are_prefixed() {
        let s = Subjects::new("t-1a2b").unwrap();
        assert_eq!(s.event("0581", "case.registered"), "t-1a2b.lots.0581.case.registered");
        assert_eq!(s.family("0581", "sla"), "t-1a2b.lots.0581.sla.>");
        assert_eq!(s.stream_name(), "LOTS_t_1a2b");
        assert!(Subjects::new("a.b").is_err());
        assert!(Subjects::new("a>").is_err());
    }
}
