//! Prometheus metrics: counters, gauges and histograms kept in memory and served as text on
//! `GET /metrics`. Small on purpose: a handful of series per service, no dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Series {
    help: BTreeMap<&'static str, (&'static str, &'static str)>,
    counters: BTreeMap<(&'static str, String), f64>,
    gauges: BTreeMap<(&'static str, String), f64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

/// A service's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    service: &'static str,
    series: Arc<Mutex<Series>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    /// Metrics of `service` (added as a `service` label to every series).
    pub fn new(service: &'static str) -> Metrics {
        Metrics { service, series: Arc::new(Mutex::new(Series::default())) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Series) -> R) -> R {
        f(&mut self.series.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds `by` to a counter.
    pub fn count(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], by: f64) {
        self.with(|s| {
            s.help.entry(name).or_insert(("counter", help));
            *s.counters.entry((name, labels(pairs))).or_default() += by;
        });
    }

    /// Sets a gauge.
    pub fn gauge(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], value: f64) {
        self.with(|s| {
            s.help.entry(name).or_insert(("gauge", help));
            s.gauges.insert((name, labels(pairs)), value);
        });
    }

    /// Records one observation (seconds) in a histogram.
    pub fn observe(&self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], seconds: f64) {
        self.with(|s| {
            s.help.entry(name).or_insert(("histogram", help));
            let h = s.histograms.entry((name, labels(pairs))).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        });
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let service = self.service;
        self.with(|s| {
            let mut out = String::new();
            let with_service = |l: &str| {
                if l.is_empty() { format!("service=\"{service}\"") } else { format!("service=\"{service}\",{l}") }
            };
            for (name, (kind, help)) in &s.help {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for ((n, l), v) in s.counters.iter().chain(s.gauges.iter()) {
                    if n == name {
                        let _ = writeln!(out, "{name}{{{}}} {v}", with_service(l));
                    }
                }
                for ((n, l), h) in &s.histograms {
                    if n != name {
                        continue;
                    }
                    let l = with_service(l);
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(out, "{name}_bucket{{{l},le=\"{bound}\"}} {}", h.counts[i]);
                    }
                    let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(out, "{name}_sum{{{l}}} {}\n{name}_count{{{l}}} {}", h.sum, h.count);
                }
            }
            out
        })
    }
}

/// Serves `GET /metrics` on `listener` until `token` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Metrics, token: CancellationToken) {
    serve_with(listener, metrics, token, READ_TIMEOUT).await
}

/// How long a scraper may take to send its request before the connection is closed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at the same time; more wait for a place.
const MAX_CONNECTIONS: usize = 32;

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
        let (mut stream, _) = tokio::select! {
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
            let mut buf = [0u8; 1024];
            let Ok(read) = tokio::time::timeout(read_timeout, stream.read(&mut buf)).await else {
                let _ = stream
                    .write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            };
            let n = read.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
            };
            // A scraper that does not read its answer is cut off too.
            let _ = tokio::time::timeout(read_timeout, stream.write_all(response.as_bytes())).await;
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
        scraper.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut text = String::new();
        scraper.read_to_string(&mut text).await.unwrap();
        assert!(text.contains("lots_outbox_backlog{service=\"intake\"} 3"), "{text}");
        let mut answer = String::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), silent.read_to_string(&mut answer)).await;
        assert!(closed.is_ok(), "a silent connection was kept open");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        token.cancel();
    }

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::new("intake");
        m.count("lots_cases_registered_total", "Cases registered.", &[("tenant", "0581")], 1.0);
        m.count("lots_cases_registered_total", "Cases registered.", &[("tenant", "0581")], 1.0);
        m.gauge("lots_outbox_backlog", "Unsent outbox rows.", &[], 3.0);
        m.observe("lots_routing_seconds", "Routing latency.", &[], 0.02);
        let text = m.render();
        assert!(text.contains("lots_cases_registered_total{service=\"intake\",tenant=\"0581\"} 2"), "{text}");
        assert!(text.contains("# TYPE lots_outbox_backlog gauge"), "{text}");
        assert!(text.contains("lots_outbox_backlog{service=\"intake\"} 3"), "{text}");
        assert!(text.contains("lots_routing_seconds_bucket{service=\"intake\",le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("lots_routing_seconds_bucket{service=\"intake\",le=\"0.01\"} 0"), "{text}");
        assert!(text.contains("lots_routing_seconds_count{service=\"intake\"} 1"), "{text}");
    }
}
