//! Prometheus metrics on `prometheus-client`: every service keeps its series in one
//! [`Registry`] (with a `service` label on all of them) and serves the OpenMetrics text on
//! `GET /metrics` with hyper.
//!
//! A series is registered the first time code records it, by name: counters, gauges and
//! histograms with string labels. Counter names end in `_total` at the call site, as they
//! appear to Prometheus; the library adds that suffix itself, so it is taken off before
//! registering.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

/// A series' labels, in the order given.
type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter<f64, AtomicU64>>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

struct State {
    registry: Registry,
    counters: HashMap<&'static str, Counters>,
    gauges: HashMap<&'static str, Gauges>,
    histograms: HashMap<&'static str, Histograms>,
}

/// A service's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    state: Arc<Mutex<State>>,
}

/// `help` without its closing full stop: the library adds one.
fn bare(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl Metrics {
    /// Metrics of `service` (added as a `service` label to every series).
    pub fn new(service: &'static str) -> Metrics {
        let registry = Registry::with_labels([("service".into(), service.into())].into_iter());
        let state = State { registry, counters: HashMap::new(), gauges: HashMap::new(), histograms: HashMap::new() };
        Metrics { state: Arc::new(Mutex::new(state)) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds `by` to a counter (`name` ends in `_total`).
    pub fn count(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], by: f64) {
        self.with(|s| {
            let family = s.counters.entry(name).or_insert_with(|| {
                let family = Counters::default();
                s.registry.register(name.strip_suffix("_total").unwrap_or(name), bare(help), family.clone());
                family
            });
            family.get_or_create(&labels(pairs)).inc_by(by);
        });
    }

    /// Sets a gauge.
    pub fn gauge(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], value: f64) {
        self.with(|s| {
            let family = s.gauges.entry(name).or_insert_with(|| {
                let family = Gauges::default();
                s.registry.register(name, bare(help), family.clone());
                family
            });
            family.get_or_create(&labels(pairs)).set(value);
        });
    }

    /// Records one observation (seconds) in a histogram.
    pub fn observe(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], seconds: f64) {
        self.with(|s| {
            let family = s.histograms.entry(name).or_insert_with(|| {
                let family = Histograms::new_with_constructor(new_histogram as fn() -> Histogram);
                s.registry.register(name, bare(help), family.clone());
                family
            });
            family.get_or_create(&labels(pairs)).observe(seconds);
        });
    }

    /// The OpenMetrics text exposition of every series.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &s.registry) {
                tracing::warn!(error = %err, "metrics could not be encoded");
            }
            out
        })
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `token` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Metrics, token: CancellationToken) {
    serve_with(listener, metrics, token, READ_TIMEOUT).await
}

/// How long a scraper may take to send its request (and to read the answer) before the
/// connection is closed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scraper may take to read its answer, after its request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at the same time; more wait for a place.
const MAX_CONNECTIONS: usize = 32;

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if request.method() == hyper::Method::GET && request.uri().path() == "/metrics" {
        (StatusCode::OK, CONTENT_TYPE, metrics.render())
    } else {
        (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found: metrics are on GET /metrics\n".to_owned())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

/// [`serve`] with a given read timeout.
pub async fn serve_with(listener: TcpListener, metrics: Metrics, token: CancellationToken, read_timeout: Duration) {
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let place = tokio::select! {
            _ = token.cancelled() => return,
            place = places.clone().acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => return,
            },
        };
        let (stream, _) = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(error = %err, "metrics listener accept failed");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _place = place;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // A scraper that does not read its answer is cut off too.
            let _ = tokio::time::timeout(read_timeout + ANSWER_TIMEOUT, connection).await;
        });
    }
}

/// Binds the metrics listener early (startup order: bind before spawning work).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_scraper_that_sends_nothing_is_cut_off_and_others_are_still_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let m = Metrics::new("intake");
        m.gauge("lots_outbox_backlog", "Unsent outbox rows.", &[], 3.0);
        tokio::spawn(serve_with(listener, m, token.clone(), Duration::from_millis(200)));
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut scraper = tokio::net::TcpStream::connect(addr).await.unwrap();
        scraper.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut text = String::new();
        scraper.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("lots_outbox_backlog{service=\"intake\"} 3"), "{text}");
        let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
        other.write_all(b"GET /other HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        other.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        let mut nothing = Vec::new();
        // Cut off by the read timeout (200 ms), long before the answer timeout (10 s).
        let closed = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut nothing)).await;
        assert!(closed.is_ok(), "a silent connection was kept open");
        token.cancel();
    }

    #[test]
    fn renders_counters_gauges_and_histograms_with_the_service_label() {
        let m = Metrics::new("intake");
        m.count("lots_cases_registered_total", "Cases registered.", &[("tenant", "0581")], 1.0);
        m.count("lots_cases_registered_total", "Cases registered.", &[("tenant", "0581")], 1.0);
        m.gauge("lots_outbox_backlog", "Unsent outbox rows.", &[], 3.0);
        m.observe("lots_routing_seconds", "Routing latency.", &[("tenant", "a\"b")], 0.02);
        let text = m.render();
        assert!(text.contains("# HELP lots_cases_registered Cases registered.\n"), "{text}");
        assert!(text.contains("# TYPE lots_cases_registered counter"), "{text}");
        assert!(text.contains("lots_cases_registered_total{service=\"intake\",tenant=\"0581\"} 2"), "{text}");
        assert!(text.contains("# TYPE lots_outbox_backlog gauge"), "{text}");
        assert!(text.contains("lots_outbox_backlog{service=\"intake\"} 3"), "{text}");
        // Label values are escaped by the library.
        let series = "lots_routing_seconds_bucket{service=\"intake\"";
        assert!(text.contains(&format!("{series},le=\"0.025\",tenant=\"a\\\"b\"}} 1")), "{text}");
        assert!(text.contains(&format!("{series},le=\"0.01\",tenant=\"a\\\"b\"}} 0")), "{text}");
        assert!(text.contains("lots_routing_seconds_count{service=\"intake\",tenant=\"a\\\"b\"} 1"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
