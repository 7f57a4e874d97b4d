//! Firing what falls due. Postgres holds every stage and its instant; this loop only decides
//! when to look next. Due stages are claimed with SKIP LOCKED and fired in batches: the alert,
//! its event (through the outbox) and the stage's `fired_at` commit together, once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lots_domain::tenant::{EscalationLevel, TenantConfig};
use lots_events::{
    AlertData, Envelope, Payload, SlaBreached, SlaDelayNotice, SlaEscalated, SlaMet, SlaWarning, Subjects,
};
use lots_platform::{Clock, Tenants, consumer, outbox};
use sqlx::{FromRow, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::instrument;
use uuid::Uuid;

use crate::clocks::{self, CaseRow, Stopped};
use crate::error::{Error, Result};

/// The NOTIFY channel that wakes alert watchers.
pub const ALERTS_CHANNEL: &str = "lots_sla_alerts";
/// An alert fired more than this after its instant is marked late.
const LATE_AFTER_SECS: i64 = 60;
/// Stages claimed per transaction.
const BATCH: i64 = 500;
/// Transactions firing due stages at the same time.
const FIRING_CONCURRENCY: usize = 4;
/// Longest wait for the consumer to apply what was in the stream when stages fell due; past it
/// they fire anyway (a stuck consumer must not silence every alert), logged and counted.
const CATCH_UP_MAX: Duration = Duration::from_secs(30);
/// Pause after a failed look at the stages, doubling to [`ERROR_PAUSE_MAX`].
const ERROR_PAUSE: Duration = Duration::from_millis(200);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(30);

/// The sla service's shared state.
#[derive(Clone)]
pub struct Sla {
    pub pool: PgPool,
    pub subjects: Subjects,
    pub tenants: Arc<Tenants>,
    pub clock: Clock,
    pub relay: Arc<Notify>,
    /// Wakes the timer when new stages may be due sooner.
    pub wake: Arc<Notify>,
    /// Longest sleep between looks at the stages.
    pub tick: Duration,
    pub metrics: lots_platform::metrics::Metrics,
    /// The stream, and sla's durable consumer on it, for the catch-up check before firing.
    pub js: async_nats::jetstream::Context,
    pub durable: String,
}

/// Alert severities, as in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info = 1,
    Warning = 2,
    Breach = 3,
    Escalation = 4,
}

/// An alert about to be stored and announced.
pub struct Fired {
    pub id: Uuid,
    pub kind: &'static str,
    pub severity: Severity,
    pub level: i32,
    pub open: bool,
    pub message: String,
    pub case_id: Uuid,
    pub tenant: String,
    pub data: AlertData,
    pub event: Envelope,
}

fn recipient(tenant: &TenantConfig, case: &CaseRow, level: EscalationLevel) -> String {
    let manager = || tenant.unit(&case.unit).map(|u| u.manager.clone());
    match level {
        EscalationLevel::Officer => case.officer_id.clone().or_else(manager),
        // An owner who is the unit's manager escalates past themselves, to the näringslivschef.
        EscalationLevel::UnitManager => manager().filter(|m| Some(m) != case.officer_id.as_ref()),
        EscalationLevel::Naringslivschef => None,
    }
    .unwrap_or_else(|| tenant.naringslivschef.clone())
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&lots_domain::calendar::TZ).format("%Y-%m-%d %H:%M").to_string()
}

impl Fired {
    #[allow(clippy::too_many_arguments)]
    fn build<T: Payload>(
        id: Uuid,
        severity: Severity,
        level: i32,
        open: bool,
        message: String,
        case: &CaseRow,
        data: AlertData,
        payload: T,
        now: DateTime<Utc>,
    ) -> Option<Fired> {
        // Time-derived events carry version 0: unordered, deduplicated by their derived id.
        let event = match Envelope::new(&case.tenant, case.id, 0, "sla", now, payload).with_id(id).into_raw() {
            Ok(event) => event,
            Err(err) => {
                // Counted by `publish` (it receives None); the stage stays fired, the alert unsent.
                tracing::error!(kind = T::TYPE, case_id = %case.id, error = %err, "an alert's event cannot be serialised; it is not sent");
                return None;
            }
        };
        Some(Fired {
            id,
            kind: T::TYPE,
            severity,
            level,
            open,
            message,
            case_id: case.id,
            tenant: case.tenant.clone(),
            data,
            event,
        })
    }

    /// The `sla.met` alert of a clock that just stopped in time or late.
    /// An unroutable case escalates at once to the manager of the coordinating seat's unit and
    /// to the näringslivschef: nobody else will act on it. Open until the case ends.
    pub fn unroutable(
        tenant: &TenantConfig,
        case_type: &lots_domain::tenant::CaseType,
        case: &CaseRow,
        reason: &str,
        ended: bool,
        now: DateTime<Utc>,
    ) -> Vec<Option<Fired>> {
        // The owner's unit once there was one (a decline left no one), else the coordinating
        // seat's competence's unit.
        let competence = case_type.coordinating_competence().unwrap_or_default();
        let unit = Some(case.unit.clone()).filter(|u| !u.is_empty()).unwrap_or_else(|| {
            tenant
                .officers
                .iter()
                .find(|o| o.competences.iter().any(|c| c == competence))
                .map(|o| o.unit.clone())
                .unwrap_or_default()
        });
        let manager = tenant.unit(&unit).map(|u| u.manager.clone()).unwrap_or_else(|| tenant.naringslivschef.clone());
        let clock_id = clocks::unroutable_id(case.id);
        let mut recipients = vec![(1, "unit_manager", manager)];
        if recipients[0].2 != tenant.naringslivschef {
            recipients.push((2, "naringslivschef", tenant.naringslivschef.clone()));
        }
        recipients
            .into_iter()
            .map(|(step, level, recipient)| {
                let data = AlertData {
                    clock_id,
                    commitment: "unroutable".into(),
                    commitment_name: "Dukat bord kunde inte planeras".into(),
                    reference: case.reference.clone(),
                    unit: unit.clone(),
                    recipient: recipient.clone(),
                    due_at: now,
                    late: false,
                };
                let message = format!(
                    "{}: no dukat bord could be planned ({reason}); escalated to {recipient} ({level})",
                    case.reference
                );
                let payload = SlaEscalated { alert: data.clone(), step, level: level.to_owned() };
                let id = clocks::alert_id(clock_id, &format!("unroutable-{step}"), 0);
                // A case that already ended (its end arrived first) needs no action.
                Self::build(id, Severity::Escalation, step as i32, !ended, message, case, data, payload, now)
            })
            .collect()
    }

    pub fn met(tenant: &TenantConfig, case: &CaseRow, s: &Stopped, now: DateTime<Utc>) -> Option<Fired> {
        let commitment = clocks::commitment(tenant, case, &s.commitment)?;
        let met_at = s.clock.stopped_at.unwrap_or(now);
        let due_at = s.clock.due_at.unwrap_or(met_at);
        let data = AlertData {
            clock_id: s.clock_id,
            commitment: s.commitment.clone(),
            commitment_name: commitment.name.clone(),
            reference: case.reference.clone(),
            unit: case.unit.clone(),
            recipient: recipient(tenant, case, EscalationLevel::Officer),
            due_at,
            late: false,
        };
        let late = met_at > due_at;
        let message = format!(
            "{}: {} {}",
            case.reference,
            commitment.name,
            if late { format!("met late, {}", local(met_at)) } else { "met".to_owned() }
        );
        let payload = SlaMet { alert: data.clone(), met_at, fee_reduction_percent: s.clock.fee_reduction_percent };
        let id = clocks::alert_id(s.clock_id, "met", s.clock.deadline_version);
        Self::build(id, Severity::Info, 0, false, message, case, data, payload, now)
    }
}

#[derive(FromRow)]
struct DueRow {
    clock_id: Uuid,
    stage: String,
    deadline_version: i32,
    due_at: DateTime<Utc>,
    commitment: String,
    /// The clock's state now: a stage that fell due while it ran may fire after it stopped.
    clock_state: String,
    #[sqlx(flatten)]
    case: CaseRow,
}

impl Sla {
    /// Looks for due stages until `token` is cancelled.
    pub async fn run_timer(self, token: CancellationToken) {
        let mut last_report = std::time::Instant::now() - Duration::from_secs(60);
        let mut pause = ERROR_PAUSE;
        loop {
            if last_report.elapsed() >= Duration::from_secs(5) {
                let open: Result<i64, _> =
                    sqlx::query_scalar("SELECT count(*) FROM clocks WHERE state IN ('running', 'paused', 'breached')")
                        .fetch_one(&self.pool)
                        .await;
                if let Ok(open) = open {
                    self.metrics.gauge("lots_open_clocks", "Servicegaranti clocks not yet met.", &[], open as f64);
                }
                last_report = std::time::Instant::now();
            }
            let sleep = match self.fire_round(&token).await {
                Ok(next) => {
                    pause = ERROR_PAUSE;
                    next.map_or(self.tick, |next| (next - self.clock.now()).to_std().unwrap_or_default().min(self.tick))
                }
                Err(err) => {
                    // A persistent failure (a lost privilege, a broken row) must not spin, not
                    // even while events keep waking the timer.
                    self.metrics.count("lots_sla_timer_errors_total", "Failed looks at due stages.", &[], 1.0);
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "firing due alerts failed");
                    let wait = pause;
                    pause = (pause * 2).min(ERROR_PAUSE_MAX);
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Fires every stage due by now, once sla has applied what the stream held by then; returns
    /// when the next stage falls due.
    async fn fire_round(&self, token: &CancellationToken) -> Result<Option<DateTime<Utc>>> {
        let horizon = self.clock.now();
        let next = self.next_due().await?;
        if next.is_some_and(|next| next <= horizon) {
            // An event that stops or pauses a clock may be in the stream but not yet applied:
            // fire only once everything published by `horizon` has been applied.
            self.await_applied(token).await;
            // A burst is fired by a few claimers at once; SKIP LOCKED keeps their batches apart.
            let claimers = (0..FIRING_CONCURRENCY).map(|_| async {
                let mut fired = 0;
                loop {
                    let n = self.fire_due(horizon).await?;
                    fired += n;
                    if (n as i64) < BATCH {
                        return Ok::<_, Error>(fired);
                    }
                }
            });
            let mut fired = 0;
            let mut failed = None;
            for result in futures::future::join_all(claimers).await {
                match result {
                    Ok(n) => fired += n,
                    Err(err) => failed = Some(err),
                }
            }
            if fired > 0 {
                self.relay.notify_one();
            }
            if let Some(err) = failed {
                return Err(err);
            }
            // Firing moved the next due instant.
            return self.next_due().await;
        }
        Ok(next)
    }

    /// Waits until sla's consumer has applied every event the stream held when called (at
    /// most [`CATCH_UP_MAX`]).
    async fn await_applied(&self, token: &CancellationToken) {
        let started = std::time::Instant::now();
        let mut last = None;
        let mut wait = Duration::from_millis(10);
        loop {
            let caught_up = async {
                let seq = match last {
                    Some(seq) => seq,
                    None => *last.insert(consumer::stream_last(&self.js, &self.subjects).await?),
                };
                consumer::applied_through(&self.js, &self.subjects, &self.durable, seq).await
            }
            .await;
            match caught_up {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => tracing::debug!(error = %err, "cannot read the consumer's position"),
            }
            if started.elapsed() >= CATCH_UP_MAX {
                self.metrics.count(
                    "lots_sla_fired_before_caught_up_total",
                    "Rounds of due alerts fired although the consumer had not applied the stream.",
                    &[],
                    1.0,
                );
                tracing::warn!(
                    waited_s = CATCH_UP_MAX.as_secs(),
                    "sla's consumer has not applied the stream; firing due alerts anyway"
                );
                return;
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar("SELECT min(due_at) FROM stages WHERE fired_at IS NULL").fetch_one(&self.pool).await?)
    }

    /// Fires one batch of due stages; returns how many.
    #[instrument(name = "sla.timer.fire", skip_all, fields(fired))]
    pub async fn fire_due(&self, horizon: DateTime<Utc>) -> Result<usize> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let rows: Vec<DueRow> = sqlx::query_as(
            "SELECT s.clock_id, s.stage, s.deadline_version, s.due_at, c.commitment, c.state AS clock_state,
                    k.id, k.tenant, k.reference, k.case_type, k.officer_id, k.unit, k.kind, k.anonymous,
                    k.target_minutes, k.due_date
             FROM stages s JOIN clocks c ON c.id = s.clock_id JOIN cases k ON k.id = c.case_id
             WHERE s.fired_at IS NULL AND s.due_at <= $1
             ORDER BY s.due_at LIMIT $2 FOR UPDATE OF s SKIP LOCKED",
        )
        .bind(horizon)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut fired = Vec::with_capacity(rows.len());
        for row in &rows {
            fired.extend(self.alerts_for(row, now));
        }
        let fired = fired;
        let clock_ids: Vec<Uuid> = rows.iter().map(|r| r.clock_id).collect();
        let stages: Vec<String> = rows.iter().map(|r| r.stage.clone()).collect();
        let versions: Vec<i32> = rows.iter().map(|r| r.deadline_version).collect();
        sqlx::query(
            "UPDATE stages s SET fired_at = $4 FROM unnest($1::uuid[], $2::text[], $3::int[]) AS f(c, st, v)
             WHERE s.clock_id = f.c AND s.stage = f.st AND s.deadline_version = f.v",
        )
        .bind(&clock_ids)
        .bind(&stages)
        .bind(&versions)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let n = rows.len();
        self.publish(&mut tx, fired).await?;
        tx.commit().await?;
        tracing::Span::current().record("fired", n);
        Ok(n)
    }

    /// Why a due stage fired nothing: the configuration changed since it was planned.
    fn skipped(&self, row: &DueRow, reason: &'static str) {
        self.metrics.count(
            "lots_sla_stages_skipped_total",
            "Due stages that fired nothing because the configuration no longer has them.",
            &[("reason", reason)],
            1.0,
        );
        tracing::warn!(
            tenant = %row.case.tenant, case_id = %row.case.id, commitment = %row.commitment, stage = %row.stage,
            reason, "a due stage fires nothing: the configuration no longer has it"
        );
    }

    fn alerts_for(&self, row: &DueRow, now: DateTime<Utc>) -> Vec<Option<Fired>> {
        let Some(tenant) = self.tenants.get(&row.case.tenant) else {
            self.skipped(row, "tenant_removed");
            return Vec::new();
        };
        let Some(commitment) = clocks::commitment(tenant, &row.case, &row.commitment) else {
            self.skipped(row, "commitment_removed");
            return Vec::new();
        };
        let case = &row.case;
        let version = row.deadline_version as u32;
        let late = (now - row.due_at).num_seconds() > LATE_AFTER_SECS;
        let due = |level| AlertData {
            clock_id: row.clock_id,
            commitment: row.commitment.clone(),
            commitment_name: commitment.name.clone(),
            reference: case.reference.clone(),
            unit: case.unit.clone(),
            recipient: recipient(tenant, case, level),
            due_at: row.due_at,
            late,
        };
        let id = clocks::alert_id(row.clock_id, &row.stage, version);
        // An alert about a clock that has stopped since is history: it is never open.
        let open = matches!(row.clock_state.as_str(), "running" | "paused" | "breached");
        let late_note = if late { " (fired late)" } else { "" };
        let mut out = Vec::new();
        if let Some(percent) = row.stage.strip_prefix("warn").and_then(|p| p.parse::<u8>().ok()) {
            let data = due(EscalationLevel::Officer);
            let msg = format!("{}: {}: {percent} % of the time used{late_note}", case.reference, commitment.name);
            let payload = SlaWarning { alert: data.clone(), percent };
            out.push(Fired::build(id, Severity::Warning, i32::from(percent), open, msg, case, data, payload, now));
        } else if row.stage == "breach" {
            let data = due(EscalationLevel::Officer);
            let msg = format!("{}: {} was not met{late_note}", case.reference, commitment.name);
            let payload = SlaBreached { alert: data.clone() };
            out.push(Fired::build(id, Severity::Breach, 0, open, msg, case, data.clone(), payload, now));
            if commitment.stops_on.iter().any(|e| e == "case.closed") {
                // Förvaltningslagen 11 §: a delayed decision must be told to the company.
                let notice = clocks::alert_id(row.clock_id, "delay_notice", version);
                let msg = format!(
                    "{}: the decision is delayed; tell the company why and when to expect it (FL 11 §)",
                    case.reference
                );
                let payload = SlaDelayNotice { alert: data.clone() };
                out.push(Fired::build(notice, Severity::Breach, 0, open, msg, case, data, payload, now));
            }
        } else if let Some(step) = row.stage.strip_prefix("esc").and_then(|s| s.parse::<usize>().ok()) {
            let Some(level) = commitment.escalation.get(step.saturating_sub(1)).map(|e| e.to) else {
                self.skipped(row, "escalation_removed");
                return out;
            };
            let data = due(level);
            let level_text = match level {
                EscalationLevel::Officer => "officer",
                EscalationLevel::UnitManager => "unit_manager",
                EscalationLevel::Naringslivschef => "naringslivschef",
            };
            let msg = format!(
                "{}: {} breached; escalated to {} ({level_text}){late_note}",
                case.reference, commitment.name, data.recipient
            );
            let payload = SlaEscalated { alert: data.clone(), step: step as u32, level: level_text.to_owned() };
            out.push(Fired::build(id, Severity::Escalation, step as i32, open, msg, case, data, payload, now));
        } else {
            self.skipped(row, "unknown_stage");
        }
        out
    }

    /// Stores alerts (once: their ids are deterministic) and writes their events to the outbox.
    pub async fn publish(&self, conn: &mut PgConnection, fired: Vec<Option<Fired>>) -> Result<()> {
        let unsent = fired.iter().filter(|f| f.is_none()).count();
        if unsent > 0 {
            let help = "Alerts not sent because their event could not be serialised.";
            self.metrics.count("lots_sla_alerts_unserialisable_total", help, &[], unsent as f64);
        }
        let fired: Vec<Fired> = fired.into_iter().flatten().collect();
        if fired.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let col = |f: fn(&Fired) -> String| fired.iter().map(f).collect::<Vec<String>>();
        let ids: Vec<Uuid> = fired.iter().map(|f| f.id).collect();
        let kinds = col(|f| f.kind.trim_start_matches("sla.").to_owned());
        let severities: Vec<i32> = fired.iter().map(|f| f.severity as i32).collect();
        let tenants = col(|f| f.tenant.clone());
        let units = col(|f| f.data.unit.clone());
        let cases: Vec<Uuid> = fired.iter().map(|f| f.case_id).collect();
        let references = col(|f| f.data.reference.clone());
        let clocks_: Vec<Uuid> = fired.iter().map(|f| f.data.clock_id).collect();
        let commitments = col(|f| f.data.commitment.clone());
        let names = col(|f| f.data.commitment_name.clone());
        let recipients = col(|f| f.data.recipient.clone());
        let levels: Vec<i32> = fired.iter().map(|f| f.level).collect();
        let dues: Vec<DateTime<Utc>> = fired.iter().map(|f| f.data.due_at).collect();
        let lates: Vec<bool> = fired.iter().map(|f| f.data.late).collect();
        let opens: Vec<bool> = fired.iter().map(|f| f.open).collect();
        let messages = col(|f| f.message.clone());
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO alerts (id, kind, severity, tenant, unit, case_id, reference, clock_id, commitment,
                commitment_name, recipient, level, due_at, fired_at, late, open, message)
             SELECT id, kind, sev, tenant, unit, case_id, reference, clock_id, commitment, name, recipient,
                level, due_at, $17, late, open, message
             FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::uuid[], $7::text[],
                $8::uuid[], $9::text[], $10::text[], $11::text[], $12::int[], $13::timestamptz[],
                $14::bool[], $15::bool[], $16::text[])
                AS a(id, kind, sev, tenant, unit, case_id, reference, clock_id, commitment, name, recipient,
                     level, due_at, late, open, message)
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&severities)
        .bind(&tenants)
        .bind(&units)
        .bind(&cases)
        .bind(&references)
        .bind(&clocks_)
        .bind(&commitments)
        .bind(&names)
        .bind(&recipients)
        .bind(&levels)
        .bind(&dues)
        .bind(&lates)
        .bind(&opens)
        .bind(&messages)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        // A clock may have stopped after this transaction read it: an alert about it is closed
        // (this statement sees what committed since; the stop's own closing may have run first).
        sqlx::query(
            "UPDATE alerts SET open = false WHERE id = ANY ($1) AND open
               AND clock_id IN (SELECT id FROM clocks WHERE state NOT IN ('running', 'paused', 'breached'))",
        )
        .bind(&ids)
        // Planned per call, like every batch write by a key array (see lots_platform::consumer).
        .persistent(false)
        .execute(&mut *conn)
        .await?;
        let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        for f in fired.iter().filter(|f| inserted.contains(&f.id)) {
            self.metrics.count("lots_alerts_fired_total", "Alerts fired, by kind.", &[("kind", f.kind)], 1.0);
            let lateness = (now - f.data.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            let help = "How long after its due instant an alert fired.";
            self.metrics.observe("lots_alert_lateness_seconds", help, &[("kind", f.kind)], lateness);
        }
        let events: Vec<Envelope> = fired.into_iter().filter(|f| inserted.contains(&f.id)).map(|f| f.event).collect();
        outbox::enqueue_many(conn, &self.subjects, &events).await.map_err(Error::from)?;
        sqlx::query("SELECT pg_notify($1, '')").bind(ALERTS_CHANNEL).execute(&mut *conn).await?;
        Ok(())
    }
}
