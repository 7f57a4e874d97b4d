//! gRPC clients for the three services, officer metadata, and how a case is named on the
//! command line (an id or a reference).

use std::time::Duration;

use anyhow::Context as _;
use lots_domain::Reference;
use lots_proto::v1 as pb;
use pb::alert_service_client::AlertServiceClient;
use pb::intake_service_client::IntakeServiceClient;
use pb::task_service_client::TaskServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::exit::{Unreachable, UsageError};

/// Metadata naming the asking officer's tenant (kommunkod).
pub const TENANT_HEADER: &str = "x-lots-tenant";
/// Metadata naming the asking officer.
pub const OFFICER_HEADER: &str = "x-lots-officer";

/// Opens a channel to `url`, failing fast (exit code 5) when nothing answers.
pub async fn channel(service: &'static str, url: &str) -> anyhow::Result<Channel> {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(UsageError(format!("--{service} {url:?} must be a URL like http://127.0.0.1:50051")).into());
    }
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| UsageError(format!("--{service} {url:?} is not a URL: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    endpoint.connect().await.map_err(|source| anyhow::Error::new(Unreachable { service, url: url.to_owned(), source }))
}

/// A client of intake's `IntakeService`.
pub async fn intake(url: &str) -> anyhow::Result<IntakeServiceClient<Channel>> {
    Ok(IntakeServiceClient::new(channel("intake", url).await?))
}

/// A client of routing's `TaskService`.
pub async fn tasks(url: &str) -> anyhow::Result<TaskServiceClient<Channel>> {
    Ok(TaskServiceClient::new(channel("routing", url).await?))
}

/// A client of the sla service's `AlertService`.
pub async fn alerts(url: &str) -> anyhow::Result<AlertServiceClient<Channel>> {
    Ok(AlertServiceClient::new(channel("sla", url).await?))
}

/// Wraps `message` in a request that names the officer, as TaskService requires.
pub fn as_officer<T>(message: T, tenant: &str, officer: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(message);
    let value = |what: &str, v: &str| {
        MetadataValue::try_from(v.trim())
            .map_err(|_| UsageError(format!("{what} {v:?} cannot be sent as gRPC metadata")))
    };
    req.metadata_mut().insert(TENANT_HEADER, value("--tenant", tenant)?);
    req.metadata_mut().insert(OFFICER_HEADER, value("--officer", officer)?);
    Ok(req)
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

/// Fetches a case by id or reference.
pub async fn get_case(intake: &mut IntakeServiceClient<Channel>, key: &CaseKey) -> anyhow::Result<pb::Case> {
    let req = pb::GetCaseRequest { lookup: Some(key.lookup()) };
    let case = intake.get_case(req).await.context("look up the case")?;
    Ok(case.into_inner())
}

/// The case id for an id or a reference (a reference is looked up with `GetCase`).
pub async fn case_id(intake_url: &str, text: &str) -> anyhow::Result<String> {
    match CaseKey::parse(text)? {
        CaseKey::Id(id) => Ok(id),
        key => {
            let mut intake = intake(intake_url).await?;
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
    fn officer_metadata_is_set() {
        let req = as_officer((), "0581", "erik.sandberg").unwrap();
        assert_eq!(req.metadata().get(TENANT_HEADER).unwrap(), "0581");
        assert_eq!(req.metadata().get(OFFICER_HEADER).unwrap(), "erik.sandberg");
        assert!(as_officer((), "0581", "bad\nname").is_err());
    }
}
