//! One registration writer per tenant.
//!
//! Who writes what at the same time: RegisterCase requests of one tenant are queued to that
//! tenant's writer task, which takes what has queued (up to [`MAX_BATCH`]) and registers it as
//! one transaction ([`Cases::register_batch`]). So within one intake replica a tenant's
//! registrations never wait on each other's lock on the reference counter, and a commit's fsync
//! is shared by the whole batch. Different tenants' writers run side by side: they touch
//! different counter rows. Several intake replicas each have their own writer per tenant; the
//! counter row serialises their batches (gaplessly) and the idempotency-key constraint decides a
//! race between two replicas for one key. Lifecycle changes, complaints and visits do not go
//! through the writers: they lock only their own case's row.
//!
//! The writers hold no state: a request's answer is only sent after its batch committed, and a
//! writer that is gone (panicked) is replaced by the next request. The in-flight bound in front
//! of the queue (`grpc::MAX_IN_FLIGHT_REGISTRATIONS`) keeps the queues short.

use std::collections::HashMap;
use std::sync::Mutex;

use lots_platform::auth::Caller;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, instrument};

use crate::cases::{Cases, Pending};
use crate::error::{Error, Result};
use crate::store::CaseRow;
use crate::validate::NewCase;

/// Registrations one transaction holds at most.
pub const MAX_BATCH: usize = 128;

struct Job {
    pending: Pending,
    answer: oneshot::Sender<Result<CaseRow>>,
}

/// The tenants' registration writers of one intake replica. Dropping it (when gRPC stops) ends
/// the writers once their queued batches are written.
pub struct Registrar {
    cases: Cases,
    writers: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
}

impl Registrar {
    pub fn new(cases: Cases) -> Self {
        Self { cases, writers: Mutex::new(HashMap::new()) }
    }

    /// Registers a validated case through its tenant's writer, or returns the case first
    /// registered under its idempotency key.
    #[instrument(name = "intake.cases.register", skip_all, fields(tenant = %new.tenant.kommunkod, case_id, reference))]
    pub async fn register(&self, new: NewCase, caller: Caller) -> Result<CaseRow> {
        let tenant = new.tenant.kommunkod.clone();
        let (answer, answered) = oneshot::channel();
        let job = Job { pending: Pending { new, caller, span: tracing::Span::current() }, answer };
        self.writer(&tenant).send(job).map_err(|_| stopping())?;
        let row = answered.await.map_err(|_| stopping())??;
        let span = tracing::Span::current();
        span.record("case_id", tracing::field::display(row.id));
        span.record("reference", row.reference.as_str());
        tracing::info!(case_type = %row.case_type, "case registered");
        let labels = [("tenant", row.tenant.as_str()), ("case_type", row.case_type.as_str())];
        self.cases.metrics.count("lots_cases_registered_total", "Cases registered.", &labels, 1.0);
        Ok(row)
    }

    /// The tenant's writer, started on its first registration (or again after a panic).
    fn writer(&self, tenant: &str) -> mpsc::UnboundedSender<Job> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(queue) = writers.get(tenant).filter(|q| !q.is_closed()) {
            return queue.clone();
        }
        let (queue, jobs) = mpsc::unbounded_channel();
        let span = tracing::info_span!(parent: None, "intake.registrar.writer", tenant);
        // Row-level security: the writer sees and writes only its tenant's rows.
        tokio::spawn(lots_platform::db::scoped(tenant.to_owned(), write(self.cases.clone(), jobs)).instrument(span));
        writers.insert(tenant.to_owned(), queue.clone());
        queue
    }
}

/// A tenant's writer: batches what has queued and answers each request after the commit.
async fn write(cases: Cases, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (pending, answers): (Vec<Pending>, Vec<_>) = batch.drain(..).map(|j| (j.pending, j.answer)).unzip();
        let results = cases.register_batch(&pending).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A client that gave up no longer listens; its case is registered all the same and
            // a retry with the same key answers with it.
            let _ = answer.send(result);
        }
    }
}

fn stopping() -> Error {
    Error::Unavailable("intake is stopping; retry with the same idempotency_key".into())
}
