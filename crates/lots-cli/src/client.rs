//! gRPC clients for the three services (each call carries the caller's bearer token), and how
//! a case, a complaint or a visit is named on the command line (an id or a reference).

use std::time::Duration;

use anyhow::Context as _;
use lots_domain::Reference;
use lots_domain::complaint::{COMPLAINTS, SeriesReference, VISITS};
use lots_platform::auth::{AuthedChannel, Bearer};
use lots_proto::v1 as pb;
use pb::alert_service_client::AlertServiceClient;
use pb::complaint_service_client::ComplaintServiceClient;
use pb::intake_service_client::IntakeServiceClient;
use pb::task_service_client::TaskServiceClient;
use pb::visit_service_client::VisitServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::args::Global;
use crate::exit::{Unreachable, UsageError};

/// Clients that send the caller's token.
pub type Intake = IntakeServiceClient<AuthedChannel>;
pub type Tasks = TaskServiceClient<AuthedChannel>;
pub type Alerts = AlertServiceClient<AuthedChannel>;
pub type Complaints = ComplaintServiceClient<AuthedChannel>;
pub type Visits = VisitServiceClient<AuthedChannel>;

/// Opens a channel to `url`, failing fast (exit code 5) when nothing answers. An `https://` URL
/// is verified against the system's CA certificates and `ca` (a PEM file), if given.
pub async fn channel(service: &'static str, url: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Channel> {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(UsageError(format!("--{service} {url:?} must be a URL like http://127.0.0.1:50051")).into());
    }
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| UsageError(format!("--{service} {url:?} is not a URL: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    let endpoint = if url.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| UsageError(format!("--ca-file {}: {e}", ca.display())))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        endpoint.tls_config(tls).map_err(|e| UsageError(format!("TLS for {url}: {e}")))?
    } else {
        endpoint
    };
    endpoint.connect().await.map_err(|source| anyhow::Error::new(Unreachable { service, url: url.to_owned(), source }))
}

/// An authenticated channel to `url`, sending `token`.
pub async fn authed(
    service: &'static str,
    url: &str,
    token: &str,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<AuthedChannel> {
    let bearer =
        Bearer::new(token).map_err(|_| UsageError("the access token holds characters a header cannot".into()))?;
    Ok(InterceptedService::new(channel(service, url, ca).await?, bearer))
}

/// Intake's `IntakeService` at `url`, as the holder of `token`.
pub async fn intake_at(url: &str, token: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Intake> {
    Ok(IntakeServiceClient::new(authed("intake", url, token, ca).await?))
}

/// Routing's `TaskService` at `url`, as the holder of `token`.
pub async fn tasks_at(url: &str, token: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Tasks> {
    Ok(TaskServiceClient::new(authed("routing", url, token, ca).await?))
}

/// The sla service's `AlertService` at `url`, as the holder of `token`.
pub async fn alerts_at(url: &str, token: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Alerts> {
    Ok(AlertServiceClient::new(authed("sla", url, token, ca).await?))
}

/// Intake's `ComplaintService` at `url` (intake's address), as the holder of `token`.
pub async fn complaints_at(url: &str, token: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Complaints> {
    Ok(ComplaintServiceClient::new(authed("intake", url, token, ca).await?))
}

/// Intake's `VisitService` at `url` (intake's address), as the holder of `token`.
pub async fn visits_at(url: &str, token: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Visits> {
    Ok(VisitServiceClient::new(authed("intake", url, token, ca).await?))
}

/// Intake, as the logged-in caller.
pub async fn intake(global: &Global) -> anyhow::Result<Intake> {
    intake_at(&global.intake, &crate::login::token(global)?, global.ca_file.as_deref()).await
}

/// Routing's `TaskService`, as the logged-in caller.
pub async fn tasks(global: &Global) -> anyhow::Result<Tasks> {
    tasks_at(&global.routing, &crate::login::token(global)?, global.ca_file.as_deref()).await
}

/// The sla service's `AlertService`, as the logged-in caller.
pub async fn alerts(global: &Global) -> anyhow::Result<Alerts> {
    alerts_at(&global.sla, &crate::login::token(global)?, global.ca_file.as_deref()).await
}

/// A fresh idempotency key (UUIDv7), for a change the caller named no key for.
pub fn new_idempotency_key() -> String {
    Uuid::now_v7().to_string()
}

/// Intake's `ComplaintService`, as the logged-in caller.
pub async fn complaints(global: &Global) -> anyhow::Result<Complaints> {
    complaints_at(&global.intake, &crate::login::token(global)?, global.ca_file.as_deref()).await
}

/// Intake's `VisitService`, as the logged-in caller.
pub async fn visits(global: &Global) -> anyhow::Result<Visits> {
    visits_at(&global.intake, &crate::login::token(global)?, global.ca_file.as_deref()).await
}

/// How a case is named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseKey {
    /// The case id (a UUID).
    Id(String),
    /// The human reference, e.g. "NKP-2026-000123".
    Reference(String),
}

impl CaseKey {
    /// Reads an id or a reference; anything else is a usage error.
    pub fn parse(text: &str) -> Result<CaseKey, UsageError> {
        let text = text.trim();
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(CaseKey::Id(id.to_string()));
        }
        match Reference::parse(&text.to_ascii_uppercase()) {
            Some(r) => Ok(CaseKey::Reference(r.to_string())),
            None => {
                Err(UsageError(format!("{text:?} is neither a case id (a UUID) nor a reference like NKP-2026-000123")))
            }
        }
    }

    /// The `GetCase` lookup for this key.
    pub fn lookup(&self) -> pb::get_case_request::Lookup {
        match self {
            CaseKey::Id(id) => pb::get_case_request::Lookup::Id(id.clone()),
            CaseKey::Reference(r) => pb::get_case_request::Lookup::Reference(r.clone()),
        }
    }
}

/// A register beside cases, whose records carry series references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    /// Klagomål: `NKP-K-2026-000007`.
    Complaints,
    /// Company visits: `NKP-B-2026-000012`.
    Visits,
}

impl Register {
    fn series(self) -> char {
        match self {
            Register::Complaints => COMPLAINTS,
            Register::Visits => VISITS,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Register::Complaints => "complaint",
            Register::Visits => "visit",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Register::Complaints => "NKP-K-2026-000007",
            Register::Visits => "NKP-B-2026-000012",
        }
    }
}

/// How a complaint or a visit is named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// The record's id (a UUID).
    Id(String),
    /// The human reference, e.g. "NKP-K-2026-000007".
    Reference(String),
}

impl RecordKey {
    /// Reads an id or a reference of `register`; anything else is a usage error.
    pub fn parse(text: &str, register: Register) -> Result<RecordKey, UsageError> {
        let text = text.trim();
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(RecordKey::Id(id.to_string()));
        }
        match SeriesReference::parse(&text.to_ascii_uppercase()) {
            Some(r) if r.series == register.series() => Ok(RecordKey::Reference(r.to_string())),
            _ => Err(UsageError(format!(
                "{text:?} is neither a {} id (a UUID) nor a reference like {}",
                register.noun(),
                register.example()
            ))),
        }
    }
}

/// Fetches a case by id or reference.
pub async fn get_case(intake: &mut Intake, key: &CaseKey) -> anyhow::Result<pb::Case> {
    let req = pb::GetCaseRequest { lookup: Some(key.lookup()) };
    let case = intake.get_case(req).await.context("look up the case")?;
    Ok(case.into_inner())
}

/// The case id for an id or a reference (a reference is looked up with `GetCase`).
pub async fn case_id(global: &Global, text: &str) -> anyhow::Result<String> {
    match CaseKey::parse(text)? {
        CaseKey::Id(id) => Ok(id),
        key => {
            let mut intake = intake(global).await?;
            Ok(get_case(&mut intake, &key).await?.id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_references_are_told_apart() {
        assert_eq!(
            CaseKey::parse(" 0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d ").unwrap(),
            CaseKey::Id("0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d".into())
        );
        assert_eq!(CaseKey::parse("nkp-2026-000123").unwrap(), CaseKey::Reference("NKP-2026-000123".into()));
        let err = CaseKey::parse("case-1").unwrap_err();
        assert!(err.0.contains("NKP-2026-000123"), "{err}");
    }

    #[test]
    fn complaint_and_visit_references_belong_to_their_register() {
        assert_eq!(
            RecordKey::parse("nkp-k-2026-000007", Register::Complaints).unwrap(),
            RecordKey::Reference("NKP-K-2026-000007".into())
        );
        assert_eq!(
            RecordKey::parse("0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d", Register::Visits).unwrap(),
            RecordKey::Id("0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d".into())
        );
        let err = RecordKey::parse("NKP-K-2026-000007", Register::Visits).unwrap_err();
        assert!(err.0.contains("visit id") && err.0.contains("NKP-B-2026-000012"), "{err}");
        assert!(RecordKey::parse("NKP-2026-000007", Register::Complaints).is_err());
    }
}
