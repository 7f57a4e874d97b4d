//! NATS and JetStream: connect with retry, ensure the stream, carry trace context in headers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Stream};
use lots_events::{Subjects, TRACEPARENT_HEADER};
use opentelemetry::propagation::{Extractor, Injector};
use tracing::instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Error, Result};

/// Connects to NATS, retrying until `timeout` while the server is unreachable.
#[instrument(name = "platform.init.connect_nats", skip_all)]
pub async fn connect(url: &str, client_name: &str, timeout: Duration) -> Result<async_nats::Client> {
    let deadline = Instant::now() + timeout;
    loop {
        let opts = async_nats::ConnectOptions::new().name(client_name);
        match opts.connect(url).await {
            Ok(client) => return Ok(client),
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
    js.get_or_create_stream(subjects.stream_config())
        .await
        .map_err(|e| Error::Nats(format!("stream {}: {e}", subjects.stream_name())))
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
