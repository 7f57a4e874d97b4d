//! One trace per case: the `traceparent` travels in NATS headers, so intake's, routing's and
//! sla's spans for a case share one trace id. Checked with a real OTLP pipeline: the services'
//! OpenTelemetry SDK exports over gRPC to an OTLP receiver this test runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lots_platform::config::LogFormat;
use lots_testkit::TestNats;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};

use crate::helpers::*;

/// Span names by trace id, as received.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<BTreeMap<Vec<u8>, BTreeSet<String>>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut traces = self.0.lock().unwrap();
        for resource in req.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    traces.entry(span.trace_id).or_default().insert(span.name);
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_is_one_trace_across_intake_routing_and_sla() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(receiver.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    let telemetry = lots_platform::telemetry::init_with_otlp("lots-e2e", LogFormat::Human, Some(&endpoint)).unwrap();

    let options = Options { routing: true, sla: true, now: Some("2026-09-07 08:00"), ..Default::default() };
    let app = TestApp::spawn_with(TestNats::start().unwrap(), options).await;
    let case = app.register(app.restaurant("trace-1")).await.unwrap();
    app.eventually(&case.id, "routed", |c| status(c) == lots_proto::v1::CaseStatus::Routed).await;

    let wanted = ["intake.cases.register", "routing.route_case", "sla.clocks.recompute"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        telemetry.flush();
        let traces = receiver.0.lock().unwrap().clone();
        let one = traces.values().find(|names| wanted.iter().all(|w| names.contains(*w)));
        if let Some(names) = one {
            assert!(names.contains("platform.consume"), "{names:?}");
            break;
        }
        let seen: Vec<_> = traces.values().filter(|n| n.contains(wanted[0])).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "no single trace holds {wanted:?}; traces with intake: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    telemetry.shutdown();
}
