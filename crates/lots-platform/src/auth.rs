//! Who is calling, and whether they may: OIDC bearer tokens verified against the issuer a
//! municipality configured (its JWKS, found through discovery and cached), the caller's roles
//! from a configured claim, and the per-RPC role matrix — one tower layer every service puts
//! in front of its gRPC routes. Handlers read the verified [`Caller`] from the request's
//! extensions and check only what depends on the object (whose task, which unit).
//!
//! The tenant and the caller come only from the verified token: the issuer names the
//! municipality, a claim names the officer. Health and reflection stay open.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use lots_domain::TenantConfig;
use serde_json::Value;
use tokio::sync::RwLock;
use tonic::Status;

use crate::Tenants;

/// Leeway on `exp` and `nbf`, for clocks that differ a little.
const LEEWAY_SECS: u64 = 60;
/// An unknown `kid` refetches an issuer's keys at most this often (key rotation, but bounded).
const REFETCH_MIN: Duration = Duration::from_secs(5);
/// Keys are refetched after this long even when every `kid` is known (revoked keys drop out).
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long a verified token is taken on trust again (never past its `exp`): a caller's next
/// calls skip the signature check (an RSA verification). A key the issuer revoked is seen when
/// the keys are next refetched ([`KEYS_MAX_AGE`]); tokens it signed may verify this much longer.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Verified tokens remembered at most; past it, the expired ones go, or all of them.
const VERIFIED_MAX: usize = 4096;
/// Longest wait for an issuer's discovery document or JWKS.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Signature algorithms Lotsen accepts: asymmetric only, never `none` or HS*.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// What a caller may be, from the token's role claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reception / kontaktcenter: registers cases, runs their lifecycle, reads cases.
    Reception,
    /// A handläggare: own tasks, own busy time.
    Handlaggare,
    /// A unit manager: the unit's cases, tasks, alerts and officers' busy time.
    Enhetschef,
    /// The head of business relations: the whole tenant's cases, clocks and alerts.
    Naringslivschef,
    /// A system with client credentials: only the RPCs its configuration lists.
    Integrator,
    /// Configuration and operator calls.
    Admin,
}

impl Role {
    /// Lotsen's name for the role, as in tokens and the README's matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reception => "reception",
            Role::Handlaggare => "handlaggare",
            Role::Enhetschef => "enhetschef",
            Role::Naringslivschef => "naringslivschef",
            Role::Integrator => "integrator",
            Role::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Role> {
        [Role::Reception, Role::Handlaggare, Role::Enhetschef, Role::Naringslivschef, Role::Integrator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// Which roles may call which RPC ("Service/Method" of package `lots.v1`). Anything not listed
/// is refused; integrators are allowed what their tenant's configuration lists.
pub const MATRIX: &[(&str, &[Role])] = {
    use Role::*;
    &[
        ("IntakeService/RegisterCase", &[Reception]),
        ("IntakeService/GetCase", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("IntakeService/ListCases", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("IntakeService/AwaitCompany", &[Reception]),
        ("IntakeService/ResumeCase", &[Reception]),
        ("IntakeService/CloseCase", &[Reception]),
        ("IntakeService/WithdrawCase", &[Reception]),
        ("IntakeService/MarkApplicationComplete", &[Reception]),
        ("IntakeService/ExtendDeadline", &[Reception]),
        ("ComplaintService/RegisterComplaint", &[Reception, Handlaggare, Enhetschef, Naringslivschef]),
        ("ComplaintService/GetComplaint", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("ComplaintService/ListComplaints", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("ComplaintService/AcknowledgeComplaint", &[Handlaggare, Enhetschef, Naringslivschef]),
        ("ComplaintService/AnswerComplaint", &[Handlaggare, Enhetschef, Naringslivschef]),
        ("ComplaintService/CloseComplaint", &[Handlaggare, Enhetschef, Naringslivschef]),
        ("ComplaintService/ReassignComplaint", &[Enhetschef, Naringslivschef]),
        ("VisitService/RegisterVisit", &[Handlaggare, Enhetschef, Naringslivschef]),
        ("VisitService/GetVisit", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("VisitService/ListVisits", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("VisitService/AddFollowUp", &[Handlaggare, Enhetschef, Naringslivschef]),
        ("VisitService/CompleteFollowUp", &[Handlaggare, Enhetschef, Naringslivschef]),
        ("VisitService/GetVisitProgress", &[Reception, Handlaggare, Enhetschef, Naringslivschef, Admin]),
        ("TaskService/ListTasks", &[Handlaggare, Enhetschef]),
        ("TaskService/WatchTasks", &[Handlaggare, Enhetschef]),
        ("TaskService/AcceptTask", &[Handlaggare]),
        ("TaskService/DeclineTask", &[Handlaggare]),
        ("TaskService/CompleteTask", &[Handlaggare]),
        ("TaskService/GetMeeting", &[Reception, Handlaggare, Enhetschef, Naringslivschef]),
        ("TaskService/ReassignCaseOwner", &[Enhetschef, Naringslivschef]),
        ("OfficerService/SetBusyTimes", &[Handlaggare, Enhetschef, Admin]),
        ("OfficerService/SetAbsence", &[Handlaggare, Enhetschef, Admin]),
        ("AlertService/WatchAlerts", &[Enhetschef, Naringslivschef]),
        ("AlertService/ListAlerts", &[Enhetschef, Naringslivschef]),
        ("AlertService/GetCaseClocks", &[Reception, Enhetschef, Naringslivschef]),
        ("CaseStatusService/GetCaseStatus", &[Reception, Handlaggare, Enhetschef, Naringslivschef]),
        ("ReportService/GetGuaranteeReport", &[Enhetschef, Naringslivschef, Admin]),
        ("ReportService/ListGuaranteeCases", &[Enhetschef, Naringslivschef, Admin]),
        ("ReportService/ExportInsikt", &[Naringslivschef, Admin]),
        ("ReportService/ImportNki", &[Naringslivschef, Admin]),
        ("DeadLetterService/ListDeadLetters", &[Admin]),
        ("DeadLetterService/GetDeadLetter", &[Admin]),
        ("DeadLetterService/ReplayDeadLetter", &[Admin]),
        ("DeadLetterService/SkipDeadLetter", &[Admin]),
        ("AuditService/VerifyAuditChain", &[Admin]),
        ("AuditService/ListAuditEntries", &[Admin]),
    ]
};

/// A verified caller, put in every authenticated request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Kommunkod of the issuer's municipality.
    pub tenant: String,
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
    pub roles: Vec<Role>,
    /// The officer the caller is, from the configured claim.
    pub officer: Option<String>,
    /// The OAuth2 client the token was issued to.
    pub client_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The tenant's configuration, for object checks (units, managers).
    pub config: Arc<TenantConfig>,
}

impl Caller {
    /// Whether the caller has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// How events and logs name the caller, e.g. "reception:anna.karlsson".
    pub fn actor(&self) -> String {
        let role = self.roles.first().map_or("caller", |r| r.as_str());
        format!("{role}:{}", self.officer.as_deref().unwrap_or(&self.subject))
    }

    /// The caller's officer id, for calls only an officer can make.
    pub fn officer(&self) -> Result<&str, Status> {
        self.officer.as_deref().ok_or_else(|| Status::permission_denied("this call needs an officer's token"))
    }

    /// The units the caller may see, or `None` for the whole tenant.
    pub fn units(&self) -> Option<Vec<String>> {
        let tenant_wide = [Role::Reception, Role::Naringslivschef, Role::Admin, Role::Integrator];
        if tenant_wide.iter().any(|r| self.has(*r)) {
            return None;
        }
        Some(self.managed_units().into_iter().map(String::from).collect())
    }

    /// Whether a case of this type draws on a unit the caller may see (for a tenant-wide caller,
    /// every type does).
    pub fn reaches_case_type(&self, case_type: &str) -> bool {
        match self.units() {
            None => true,
            Some(units) => {
                let touched = self.config.units_of_case_type(case_type);
                units.iter().any(|u| touched.contains(u.as_str()))
            }
        }
    }

    /// Whether the caller may act on `officer`'s tasks, or with `calendar` their busy time: the
    /// officer themself, the manager of the officer's unit, or for calendars an admin.
    pub fn may_act_for(&self, officer: &str, calendar: bool) -> bool {
        if self.officer.as_deref() == Some(officer) || (calendar && self.has(Role::Admin)) {
            return true;
        }
        let Some(unit) = self.config.officer(officer).map(|o| o.unit.as_str()) else { return false };
        self.managed_units().contains(&unit)
    }

    /// The units the caller manages as enhetschef (none without that role).
    fn managed_units(&self) -> Vec<&str> {
        match (&self.officer, self.has(Role::Enhetschef)) {
            (Some(officer), true) => self.config.managed_units(officer),
            _ => Vec::new(),
        }
    }
}

/// The verified caller of a request that passed the auth layer.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    req.extensions().get::<Caller>().cloned().ok_or_else(|| Status::unauthenticated("no verified caller"))
}

/// Ends `stream` with UNAUTHENTICATED when the caller's token expires.
pub fn until_expiry<S, T>(stream: S, caller: &Caller) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>
where
    S: Stream<Item = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let left = (caller.expires_at - Utc::now()).to_std().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + left;
    Box::pin(futures::stream::unfold((Box::pin(stream), false), move |(mut stream, expired)| async move {
        if expired {
            return None;
        }
        tokio::select! {
            item = stream.next() => item.map(|item| (item, (stream, false))),
            _ = tokio::time::sleep_until(deadline) => {
                let status = Status::unauthenticated("the token expired; open the stream again with a fresh one");
                Some((Err(status), (stream, true)))
            }
        }
    }))
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (Authorization: Bearer …)")]
    Missing,
    #[error("malformed Authorization header or token")]
    Malformed,
    #[error("token signed with {0}; Lotsen accepts RS*, PS* and ES* only")]
    Algorithm(String),
    #[error("token issuer is not configured for any municipality")]
    UnknownIssuer,
    #[error("token signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("cannot fetch the issuer's keys: {0}")]
    Unavailable(String),
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unavailable(_) => Status::unavailable(err.to_string()),
            other => Status::unauthenticated(other.to_string()),
        }
    }
}

/// One issuer's configuration and cached keys.
struct Issuer {
    /// The issuer URL as configured; keys are fetched from it, and tokens must name it exactly.
    url: String,
    tenant: Arc<TenantConfig>,
    keys: RwLock<Keys>,
    /// Held by the one fetch in flight, so a burst of unknown `kid`s costs one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last tried, successful or not: the rate limit.
    attempted: Option<Instant>,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Verifies bearer tokens against the configured issuers.
pub struct Verifier {
    issuers: HashMap<String, Issuer>,
    http: OidcHttp,
    /// Tokens verified lately, by their SHA-256, with when they stop being trusted.
    verified: std::sync::Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

/// The HTTP(S) client for an issuer's discovery, JWKS and token endpoints (rustls with ring,
/// the system's CA certificates), shared by the verifier, `lots login` and the testkit.
#[derive(Clone)]
pub struct OidcHttp {
    client: Client<Https, Full<Bytes>>,
}

impl OidcHttp {
    /// A client; without system CA certificates only http URLs can be reached.
    pub fn new() -> crate::Result<OidcHttp> {
        let provider = || rustls::crypto::ring::default_provider();
        let https = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider()) {
            Ok(b) => b.https_or_http().enable_http1().build(),
            Err(err) => {
                tracing::warn!(error = %err, "no CA certificates found; only http issuers can be reached");
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| crate::Error::Config(e.to_string()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
        };
        Ok(OidcHttp { client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(https) })
    }

    /// GETs `url` and reads a JSON answer; anything but 2xx is an error.
    pub async fn get_json(&self, url: &str) -> Result<Value, AuthError> {
        let req = http::Request::get(url).body(Full::default());
        let (status, body) = self.send(url, req).await?;
        if !status.is_success() {
            return Err(AuthError::Unavailable(format!("{url}: {status}")));
        }
        Ok(body)
    }

    /// POSTs a form to `url` (with HTTP Basic client authentication when given) and reads the
    /// JSON answer with its status; OAuth2 endpoints answer errors as JSON too.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(http::StatusCode, Value), AuthError> {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        let mut req = http::Request::post(url).header("content-type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            let pair = format!("{}:{}", form_encode(id), form_encode(secret));
            req = req
                .header("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)));
        }
        self.send(url, req.body(Full::new(Bytes::from(body.join("&"))))).await
    }

    async fn send(
        &self,
        url: &str,
        req: http::Result<http::Request<Full<Bytes>>>,
    ) -> Result<(http::StatusCode, Value), AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(format!("{url}: {e}"));
        let req = req.map_err(|e| unavailable(&e))?;
        let fetch = async {
            let response = self.client.request(req).await.map_err(|e| unavailable(&e))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| unavailable(&e))?.to_bytes();
            let json = serde_json::from_slice(&body).map_err(|e| unavailable(&format!("{status}, not JSON: {e}")))?;
            Ok((status, json))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|e| unavailable(&e))?
    }
}

/// `application/x-www-form-urlencoded` for one key or value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Verifier {
    /// A verifier for every issuer the tenants configure; an issuer may name one tenant only.
    pub fn new(tenants: &Tenants) -> crate::Result<Verifier> {
        let mut issuers = HashMap::new();
        for tenant in tenants.iter() {
            for url in &tenant.auth.issuers {
                let issuer = Issuer {
                    url: url.trim_end_matches('/').to_owned(),
                    tenant: tenant.clone(),
                    keys: RwLock::default(),
                    fetching: tokio::sync::Mutex::default(),
                };
                if let Some(other) = issuers.insert(issuer.url.clone(), issuer) {
                    return Err(crate::Error::Config(format!(
                        "issuer {url} is configured for both {} and {}",
                        other.tenant.kommunkod, tenant.kommunkod
                    )));
                }
            }
        }
        // One crypto backend (pure Rust) for jsonwebtoken, whatever else the build enables.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        Ok(Verifier { issuers, http: OidcHttp::new()?, verified: Default::default() })
    }

    /// Verifies a bearer token and names its caller. A token verified in the last
    /// [`VERIFIED_TTL`] and not expired is answered from memory.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let digest = token_digest(token);
        let now = Instant::now();
        let remembered = {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            verified.get(&digest).filter(|(c, until)| now < *until && Utc::now() < c.expires_at).map(|(c, _)| c.clone())
        };
        if let Some(caller) = remembered {
            return Ok(caller);
        }
        let caller = self.verify_signed(token).await?;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, (c, until)| now < *until && Utc::now() < c.expires_at);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(digest, (caller.clone(), now + VERIFIED_TTL));
        Ok(caller)
    }

    /// Verifies a bearer token's signature and claims against its issuer's keys.
    async fn verify_signed(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(AuthError::Invalid("no key id (kid) in the header".into()))?;
        let iss = unverified_issuer(token).ok_or(AuthError::Malformed)?;
        let issuer = self.issuers.get(iss.trim_end_matches('/')).ok_or(AuthError::UnknownIssuer)?;
        let key = self.key(issuer, &kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&issuer.tenant.auth.audience]);
        validation.set_issuer(&[&issuer.url]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(reason(e.kind())))?
            .claims;
        Ok(caller_from(issuer, &claims))
    }

    /// The issuer's key with this `kid`. An unknown `kid` fetches the JWKS (one fetch in flight,
    /// at most every [`REFETCH_MIN`]); a known key older than [`KEYS_MAX_AGE`] is refreshed by one
    /// caller while the others go on with it. No lock on the keys is held while fetching.
    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<DecodingKey, AuthError> {
        let (known, stale) = {
            let keys = issuer.keys.read().await;
            (keys.by_kid.get(kid).cloned(), keys.fetched.is_none_or(|t| t.elapsed() >= KEYS_MAX_AGE))
        };
        let _fetching = match &known {
            Some(key) if !stale => return Ok(key.clone()),
            Some(key) => match issuer.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(key.clone()),
            },
            None => issuer.fetching.lock().await,
        };
        let recent = issuer.keys.read().await.attempted.is_some_and(|t| t.elapsed() < REFETCH_MIN);
        if !recent {
            let fetched = self.fetch_keys(issuer).await;
            let mut keys = issuer.keys.write().await;
            keys.attempted = Some(Instant::now());
            match fetched {
                Ok(by_kid) => {
                    keys.by_kid = by_kid;
                    keys.fetched = keys.attempted;
                }
                // Known keys still verify while the issuer is unreachable.
                Err(err) if !keys.by_kid.is_empty() => {
                    tracing::warn!(issuer = issuer.url, error = %err, "keeping the issuer's old keys");
                }
                Err(err) => return Err(err),
            }
        }
        let keys = issuer.keys.read().await;
        match keys.by_kid.get(kid) {
            Some(key) => Ok(key.clone()),
            None if keys.by_kid.is_empty() => Err(AuthError::Unavailable(format!("no keys from {} yet", issuer.url))),
            None => Err(AuthError::UnknownKey),
        }
    }

    async fn fetch_keys(&self, issuer: &Issuer) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let iss = issuer.url.as_str();
        let discovery = self.http.get_json(&format!("{iss}/.well-known/openid-configuration")).await?;
        // OIDC Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
        let named = discovery.get("issuer").and_then(Value::as_str).map(|i| i.trim_end_matches('/'));
        if named != Some(iss) {
            return Err(AuthError::Unavailable(format!("{iss}: the discovery document names issuer {named:?}")));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Unavailable("discovery document has no jwks_uri".into()))?;
        let jwks = self.http.get_json(jwks_uri).await?;
        let mut by_kid = HashMap::new();
        // One key of a type Lotsen cannot use must not hide the others.
        for value in jwks.get("keys").and_then(Value::as_array).into_iter().flatten() {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else { continue };
            if value.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
                continue;
            }
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(&jwk)) else { continue };
            by_kid.insert(kid, key);
        }
        tracing::info!(issuer = iss, keys = by_kid.len(), "fetched the issuer's signing keys");
        Ok(by_kid)
    }
}

/// The `iss` claim, read before verification only to choose the issuer's keys.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(String::from)
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "expired".into(),
        K::ImmatureSignature => "not yet valid (nbf)".into(),
        K::InvalidAudience => "wrong audience".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidSignature => "bad signature".into(),
        K::InvalidAlgorithm => "algorithm does not match the key".into(),
        K::MissingRequiredClaim(c) => format!("missing claim {c}"),
        _ => "malformed".into(),
    }
}

fn caller_from(issuer: &Issuer, claims: &Value) -> Caller {
    let auth = &issuer.tenant.auth;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(String::from);
    let raw_roles: Vec<&str> = match claims.get(&auth.role_claim) {
        Some(Value::String(r)) => vec![r.as_str()],
        Some(Value::Array(rs)) => rs.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    // With a mapping configured, only mapped values count: an IdP role that happens to be
    // called "admin" in another application grants nothing here.
    let roles = raw_roles
        .into_iter()
        .filter_map(|r| match auth.role_names.is_empty() {
            true => Role::parse(r),
            false => auth.role_names.get(r).and_then(|name| Role::parse(name)),
        })
        .collect();
    let expires_at =
        claims.get("exp").and_then(Value::as_i64).and_then(|s| DateTime::from_timestamp(s, 0)).unwrap_or_else(Utc::now);
    Caller {
        tenant: issuer.tenant.kommunkod.clone(),
        issuer: issuer.url.clone(),
        subject: text("sub").unwrap_or_default(),
        name: text("name"),
        roles,
        officer: text(&auth.officer_claim),
        client_id: text("client_id").or_else(|| text("azp")),
        expires_at,
        config: issuer.tenant.clone(),
    }
}

/// Whether the caller's roles allow `rpc` ("Service/Method").
pub fn permits(caller: &Caller, rpc: &str) -> bool {
    let by_role =
        MATRIX.iter().find(|(name, _)| *name == rpc).is_some_and(|(_, roles)| roles.iter().any(|r| caller.has(*r)));
    let as_integrator = caller.has(Role::Integrator)
        && caller
            .client_id
            .as_ref()
            .and_then(|c| caller.config.auth.integrators.get(c))
            .is_some_and(|rpcs| rpcs.iter().any(|r| r == rpc));
    by_role || as_integrator
}

/// The tower layer that verifies every call but health and reflection.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    /// Where refused calls are recorded (the service's audit log).
    audit: Option<sqlx::PgPool>,
}

impl AuthLayer {
    /// A layer verifying against `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        AuthLayer { verifier, audit: None }
    }

    /// Records every refused call in the audit log of `pool`.
    pub fn with_audit(mut self, pool: sqlx::PgPool) -> Self {
        self.audit = Some(pool);
        self
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, verifier: self.verifier.clone(), audit: self.audit.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    audit: Option<sqlx::PgPool>,
}

/// Records a refused call; a failure to record is logged (the call is refused either way).
async fn record_refusal(pool: Option<&sqlx::PgPool>, caller: Option<&Caller>, rpc: &str, status: &Status) {
    let Some(pool) = pool else { return };
    let actor = caller.map(crate::audit::Actor::of).unwrap_or_default();
    let entry = crate::audit::Entry::refused(actor, rpc, status);
    if let Err(err) = crate::audit::record(pool, &entry).await {
        tracing::warn!(error = %err, rpc, "cannot record a refused call in the audit log");
    }
}

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone waits for readiness; the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let audit = self.audit.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
                return inner.call(req).await;
            }
            let rpc = path.strip_prefix("/lots.v1.").unwrap_or(&path).to_owned();
            match authorize(&verifier, req.headers(), &rpc).await {
                Ok(caller) => {
                    // Row-level security sees the caller's tenant only, for the whole call.
                    let tenant = caller.tenant.clone();
                    req.extensions_mut().insert(caller.clone());
                    let response = crate::db::scoped(tenant, inner.call(req)).await?;
                    // A handler's refusal (bad input, another's object, a failed precondition)
                    // comes back as a trailers-only response with its status in the headers.
                    if let Some(status) = Status::from_header_map(response.headers())
                        && status.code() != tonic::Code::Ok
                    {
                        record_refusal(audit.as_ref(), Some(&caller), &rpc, &status).await;
                    }
                    Ok(response)
                }
                Err((caller, status)) => {
                    tracing::info!(rpc, code = ?status.code(), reason = status.message(), "call refused");
                    record_refusal(audit.as_ref(), caller.as_ref(), &rpc, &status).await;
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// What the verifier remembers a token by.
fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The verified caller, or the refusal (with the caller when the token was good but the role
/// may not call `rpc`).
async fn authorize(
    verifier: &Verifier,
    headers: &http::HeaderMap,
    rpc: &str,
) -> Result<Caller, (Option<Caller>, Status)> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or((None, AuthError::Missing.into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or((None, AuthError::Malformed.into()))?;
    let caller = verifier.verify(token).await.map_err(|e| (None, Status::from(e)))?;
    if !permits(&caller, rpc) {
        let status = Status::permission_denied(format!("{rpc} is not allowed for this caller's role"));
        return Err((Some(caller), status));
    }
    Ok(caller)
}

/// A client-side interceptor that sends a bearer token with every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    /// Sends `token` (an access token, without the "Bearer " prefix).
    pub fn new(token: &str) -> Result<Bearer, AuthError> {
        format!("Bearer {}", token.trim()).parse().map(Bearer).map_err(|_| AuthError::Malformed)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A gRPC channel that sends a bearer token with every call.
pub type AuthedChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_role_mapping_only_mapped_values_count() {
        let text = include_str!("../../../deploy/config/norrkoping.toml");
        let mut cfg = TenantConfig::from_toml_str(text).unwrap();
        cfg.auth.role_names = [("Lots.Reception".to_owned(), "reception".to_owned())].into();
        let issuer = Issuer {
            url: "https://idp.example".into(),
            tenant: Arc::new(cfg),
            keys: RwLock::default(),
            fetching: tokio::sync::Mutex::default(),
        };
        let claims = serde_json::json!({ "sub": "x", "lots_role": ["Lots.Reception", "admin"] });
        assert_eq!(caller_from(&issuer, &claims).roles, [Role::Reception]);
        // Without a mapping, Lotsen's own names are read as they are.
        let unmapped = Issuer { tenant: Arc::new(TenantConfig::from_toml_str(text).unwrap()), ..issuer };
        assert_eq!(caller_from(&unmapped, &claims).roles, [Role::Admin]);
    }

    /// A remembered token answers without a signature check only until its `exp`.
    #[tokio::test]
    async fn a_remembered_token_is_not_trusted_past_its_expiry() {
        let text = include_str!("../../../deploy/config/norrkoping.toml");
        let verifier = Verifier::new(&Tenants::default()).unwrap();
        let caller = |expires_at| Caller {
            tenant: "0581".into(),
            issuer: "https://idp.example".into(),
            subject: "reception".into(),
            name: None,
            roles: vec![Role::Reception],
            officer: None,
            client_id: None,
            expires_at,
            config: Arc::new(TenantConfig::from_toml_str(text).unwrap()),
        };
        let remember = |token: &str, c: Caller| {
            verifier.verified.lock().unwrap().insert(token_digest(token), (c, Instant::now() + VERIFIED_TTL));
        };
        remember("fresh", caller(Utc::now() + chrono::Duration::minutes(5)));
        remember("expired", caller(Utc::now() - chrono::Duration::seconds(1)));
        assert_eq!(verifier.verify("fresh").await.unwrap().subject, "reception");
        // Not a JWT at all: only a real verification can answer, and it refuses.
        assert!(matches!(verifier.verify("expired").await, Err(AuthError::Malformed)));
    }

    #[test]
    fn every_rpc_in_the_matrix_names_a_service_and_method() {
        for (rpc, roles) in MATRIX {
            assert!(rpc.split_once('/').is_some_and(|(s, m)| s.ends_with("Service") && !m.is_empty()), "{rpc}");
            assert!(!roles.is_empty(), "{rpc} has no roles");
        }
    }

    #[test]
    fn the_unverified_issuer_is_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iss":"https://idp.example"}"#);
        assert_eq!(unverified_issuer(&format!("e30.{payload}.sig")).as_deref(), Some("https://idp.example"));
        assert_eq!(unverified_issuer("not-a-token"), None);
    }
}
