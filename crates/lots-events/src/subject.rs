//! Subjects, the stream and the durable consumers, each under an optional prefix.
//!
//! Production runs without a prefix; every test uses a unique one so tests share one server.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

/// Builds subject and stream names under an optional prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    prefix: Option<String>,
    /// Copies of the stream a JetStream cluster keeps (0 and 1 both mean one).
    replicas: usize,
}

impl Subjects {
    /// Names under `prefix`; an empty prefix means none. Dots and wildcards are not allowed.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let prefix = prefix.trim();
        if prefix.is_empty() {
            return Ok(Self::default());
        }
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self { prefix: Some(prefix.to_owned()), ..Self::default() })
    }

    /// The same names, with the stream kept in `replicas` copies (3 on a three-node cluster:
    /// one node may fail without losing or stopping anything).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Copies of the stream this configuration asks for.
    pub fn replicas(&self) -> usize {
        self.replicas.max(1)
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
            num_replicas: self.replicas(),
            ..Default::default()
        }
    }

    /// A service's durable pull consumer over the event types `kinds` of every tenant, or over
    /// every event when `kinds` is empty. Several filters need nats-server 2.10.
    ///
    /// Deliveries are unlimited here: the consumer loop counts them and dead-letters.
    pub fn consumer_config(&self, durable: &str, kinds: &[&str]) -> consumer::pull::Config {
        let (filter_subject, filter_subjects) = if kinds.is_empty() {
            (self.all(), Vec::new())
        } else {
            let mut subjects: Vec<String> = Vec::with_capacity(kinds.len());
            for subject in kinds.iter().map(|kind| self.event("*", kind)) {
                // The server refuses overlapping filters, and a repeated kind would be one.
                if !subjects.contains(&subject) {
                    subjects.push(subject);
                }
            }
            (String::new(), subjects)
        };
        consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            description: Some(format!("lotsen {durable}")),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            deliver_policy: consumer::DeliverPolicy::All,
            filter_subject,
            filter_subjects,
            max_ack_pending: 4096,
            ..Default::default()
        }
    }

    /// A service's control subject for one tenant, outside the stream: `lotsctl.<service>.<tenant>`.
    /// Routing forwards commands to the tenant's writer on it (NATS request/reply).
    pub fn control(&self, service: &str, tenant: &str) -> String {
        self.with_prefix(&format!("lotsctl.{service}.{tenant}"))
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

    #[test]
    fn a_consumer_filters_on_the_kinds_it_applies() {
        let s = Subjects::new("t-1").unwrap();
        let config = s.consumer_config("routing", &["case.registered", "case.closed", "case.registered"]);
        assert_eq!(config.durable_name.as_deref(), Some("routing"));
        assert_eq!(config.filter_subjects, ["t-1.lots.*.case.registered", "t-1.lots.*.case.closed"]);
        assert_eq!(config.filter_subject, "");
    }

    #[test]
    fn a_consumer_without_kinds_takes_every_event() {
        let config = Subjects::new("").unwrap().consumer_config("audit", &[]);
        assert_eq!(config.filter_subject, "lots.>");
        assert!(config.filter_subjects.is_empty());
    }
}
