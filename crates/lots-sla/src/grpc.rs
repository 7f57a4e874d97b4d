//! `AlertService`: managers watch and list alerts; reception reads a case's clocks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use lots_domain::calendar::WorkCalendar;
use lots_domain::guarantee::{self, State};
use lots_domain::tenant::Target;
use lots_platform::audit;
use lots_platform::auth::{self, Caller};
use lots_platform::streams::StreamLimits;
use lots_proto::time::timestamp;
use lots_proto::v1 as pb;
use pb::alert_service_server::AlertService;
use sqlx::FromRow;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::instrument;
use uuid::Uuid;

use crate::clocks::{self, CaseRow};
use crate::error::{Error, Result};
use crate::timer::Sla;
use crate::watch::{self, AlertHub};

/// The gRPC face of the sla service.
#[derive(Clone)]
pub struct AlertApi {
    pub(crate) sla: Sla,
    /// Ends open `WatchAlerts` streams when the service shuts down, so draining does not wait.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// The replica's one follower of new alerts, which every stream filters.
    pub(crate) hub: AlertHub,
    pub(crate) streams: StreamLimits,
}

type Reply<T> = std::result::Result<Response<T>, Status>;

#[derive(FromRow)]
pub(crate) struct AlertRow {
    pub(crate) id: Uuid,
    seq: i64,
    kind: String,
    severity: i32,
    tenant: String,
    unit: String,
    case_id: Uuid,
    reference: String,
    commitment: String,
    commitment_name: String,
    recipient: String,
    level: i32,
    due_at: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    late: bool,
    open: bool,
    message: String,
    /// The transaction that wrote the alert, for commit-order fan-out (see `watch`).
    pub(crate) txid: i64,
}

fn to_pb(a: &AlertRow) -> pb::Alert {
    let kind = match a.kind.as_str() {
        "warning" => pb::AlertKind::Warning,
        "breached" => pb::AlertKind::Breached,
        "escalated" => pb::AlertKind::Escalated,
        "met" => pb::AlertKind::Met,
        "delay_notice" => pb::AlertKind::DelayNotice,
        _ => pb::AlertKind::Unspecified,
    };
    pb::Alert {
        id: a.id.to_string(),
        kind: kind as i32,
        severity: a.severity,
        tenant: a.tenant.clone(),
        unit: a.unit.clone(),
        case_id: a.case_id.to_string(),
        case_reference: a.reference.clone(),
        commitment: a.commitment.clone(),
        commitment_name: a.commitment_name.clone(),
        recipient: a.recipient.clone(),
        level: a.level.max(0) as u32,
        due_at: Some(timestamp(a.due_at)),
        fired_at: Some(timestamp(a.fired_at)),
        late: a.late,
        open: a.open,
        message: a.message.clone(),
    }
}

/// Which alerts a manager asked for.
struct Filter {
    tenant: Option<String>,
    units: Vec<String>,
    min_severity: i32,
    open_only: bool,
    case_id: Option<Uuid>,
}

const ALERT_QUERY: &str = "SELECT *, COALESCE(xid::text::bigint, 0) AS txid FROM alerts
     WHERE ($1::text IS NULL OR tenant = $1) AND (cardinality($2::text[]) = 0 OR unit = ANY ($2))
       AND severity >= $3 AND (NOT $4 OR open) AND ($5::uuid IS NULL OR case_id = $5) AND seq > $6
     ORDER BY seq LIMIT $7";

impl Filter {
    /// Whether a broadcast alert is one this filter asks for (as the query would decide).
    fn matches(&self, a: &AlertRow) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == a.tenant)
            && (self.units.is_empty() || self.units.contains(&a.unit))
            && a.severity >= self.min_severity
            && (!self.open_only || a.open)
            && self.case_id.is_none_or(|c| c == a.case_id)
    }
}

/// Alerts read per query of a stream's snapshot.
const SNAPSHOT_PAGE: i64 = 1000;

async fn query<'c, E: sqlx::PgExecutor<'c>>(db: E, f: &Filter, after: i64, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(ALERT_QUERY))
        .bind(&f.tenant)
        .bind(&f.units)
        .bind(f.min_severity)
        .bind(f.open_only)
        .bind(f.case_id)
        .bind(after)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// The caller's tenant and the units asked for, limited to those the caller may see.
fn filter(
    caller: &Caller,
    units: &[String],
    min_severity: i32,
    open_only: bool,
    case_id: Option<Uuid>,
) -> Result<Filter> {
    let asked: Vec<String> = units.iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
    let units = match caller.units() {
        None => asked,
        Some(own) if own.is_empty() => return Err(Error::PermissionDenied("the caller manages no unit".into())),
        Some(own) if asked.is_empty() => own,
        Some(own) => {
            if let Some(other) = asked.iter().find(|u| !own.contains(u)) {
                return Err(Error::PermissionDenied(format!("unit {other:?} is not one the caller manages")));
            }
            asked
        }
    };
    Ok(Filter { tenant: Some(caller.tenant.clone()), units, min_severity, open_only, case_id })
}

#[tonic::async_trait]
impl AlertService for AlertApi {
    type WatchAlertsStream = std::pin::Pin<Box<dyn Stream<Item = std::result::Result<pb::Alert, Status>> + Send>>;

    #[instrument(name = "sla.grpc.watch_alerts", skip_all)]
    async fn watch_alerts(&self, req: Request<pb::WatchAlertsRequest>) -> Reply<Self::WatchAlertsStream> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let open = filter(&caller, &req.units, req.min_severity, true, None)?;
        let new = filter(&caller, &req.units, req.min_severity, false, None)?;
        let permit = self.streams.admit(&caller)?;
        if !self.hub.ready(Duration::from_secs(5)).await {
            return Err(Status::unavailable("alerts cannot be followed right now; try again shortly"));
        }
        // Subscribe first, then take the snapshot: what the snapshot does not see comes
        // through the broadcast (see `watch`).
        let mut live = self.hub.subscribe();
        let (mut tx, snapshot) = watch::snapshot_tx(&self.sla.pool).await?;
        let mut current = Vec::new();
        loop {
            let after = current.last().map_or(0, |a: &AlertRow| a.seq);
            let page = query(&mut *tx, &open, after, SNAPSHOT_PAGE).await?;
            let done = (page.len() as i64) < SNAPSHOT_PAGE;
            current.extend(page);
            if done {
                break;
            }
        }
        tx.commit().await.map_err(Error::from)?;
        let read = current.iter().map(|a| a.id.to_string()).collect();
        audit::read(&self.sla.pool, &caller, "AlertService/WatchAlerts", read).await?;
        let stopping = self.stopping.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let _permit = permit;
            for a in &current {
                if tx.send(Ok(to_pb(a))).await.is_err() {
                    return;
                }
            }
            drop(current);
            loop {
                let a = tokio::select! {
                    _ = tx.closed() => return,
                    _ = stopping.cancelled() => return,
                    a = live.recv() => a,
                };
                match a {
                    Ok(a) if !snapshot.sees(a.txid) && new.matches(&a) => {
                        if tx.send(Ok(to_pb(&a))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let status = Status::unavailable(format!(
                            "the stream fell {n} alerts behind and was ended; reconnect for a fresh snapshot"
                        ));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(auth::until_expiry(ReceiverStream::new(rx), &caller)))
    }

    #[instrument(name = "sla.grpc.list_alerts", skip_all)]
    async fn list_alerts(&self, req: Request<pb::ListAlertsRequest>) -> Reply<pb::ListAlertsResponse> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let limit = match req.limit {
            0 => 100,
            n @ 1..=1000 => i64::from(n),
            _ => {
                return Err(Error::Invalid { field: "limit", message: "must be between 1 and 1000".into() }.into());
            }
        };
        let case_id = match req.case_id.trim() {
            "" => None,
            s => Some(
                Uuid::parse_str(s)
                    .map_err(|_| Error::Invalid { field: "case_id", message: "must be a UUID".into() })?,
            ),
        };
        let f = filter(&caller, &req.units, req.min_severity, req.open_only, case_id)?;
        let alerts = query(&self.sla.pool, &f, 0, limit).await?;
        let read = alerts.iter().map(|a| a.id.to_string()).collect();
        audit::read(&self.sla.pool, &caller, "AlertService/ListAlerts", read).await?;
        Ok(Response::new(pb::ListAlertsResponse { alerts: alerts.iter().map(to_pb).collect() }))
    }

    #[instrument(name = "sla.grpc.get_case_clocks", skip_all)]
    async fn get_case_clocks(&self, req: Request<pb::GetCaseClocksRequest>) -> Reply<pb::CaseClocks> {
        let caller = auth::caller(&req)?;
        let pool = &self.sla.pool;
        // Another tenant's case is as unknown as one that does not exist.
        let case: Option<CaseRow> = match req.into_inner().lookup {
            Some(pb::get_case_clocks_request::Lookup::CaseId(id)) => {
                let id = Uuid::parse_str(id.trim())
                    .map_err(|_| Error::Invalid { field: "case_id", message: "must be a UUID".into() })?;
                sqlx::query_as("SELECT * FROM cases WHERE id = $1 AND tenant = $2")
                    .bind(id)
                    .bind(&caller.tenant)
                    .fetch_optional(pool)
                    .await
            }
            Some(pb::get_case_clocks_request::Lookup::Reference(r)) => {
                // A case's reference, or a complaint's (NKP-K-2026-000007).
                let r = lots_domain::Reference::parse(&r)
                    .map(|r| r.to_string())
                    .or_else(|| {
                        lots_domain::SeriesReference::parse(&r)
                            .filter(|r| r.series == lots_domain::complaint::COMPLAINTS)
                            .map(|r| r.to_string())
                    })
                    .ok_or_else(|| Error::Invalid {
                        field: "reference",
                        message: "must look like NKP-2026-000123 (a case) or NKP-K-2026-000007 (a complaint)".into(),
                    })?;
                sqlx::query_as("SELECT * FROM cases WHERE reference = $1 AND tenant = $2")
                    .bind(r)
                    .bind(&caller.tenant)
                    .fetch_optional(pool)
                    .await
            }
            None => {
                return Err(Error::Invalid { field: "lookup", message: "give case_id or reference".into() }.into());
            }
        }
        .map_err(Error::from)?;
        // A complaint or a follow-up is reached through the unit that handles it.
        let reaches = |c: &CaseRow| match c.kind.as_str() {
            "case" => caller.reaches_case_type(&c.case_type),
            _ => caller.units().is_none_or(|u| u.contains(&c.unit)),
        };
        let case =
            case.filter(reaches).ok_or_else(|| Error::NotFound("no such case (yet) in the sla service".into()))?;
        let tenant = self.sla.tenants.get(&case.tenant).cloned().ok_or_else(|| Error::Config("tenant gone".into()))?;
        audit::read(pool, &caller, "AlertService/GetCaseClocks", vec![case.id.to_string()]).await?;
        let events = clocks::events(pool, case.id).await.map_err(Error::from)?;
        let calendar = WorkCalendar::for_tenant(&tenant);
        let now = self.sla.clock.now();
        let mut out = Vec::new();
        {
            for (key, c) in clocks::commitments(&tenant, &case) {
                let clock = guarantee::evaluate(&c, &calendar, &events, now);
                let state = match clock.state {
                    State::NotStarted => pb::ClockState::NotStarted,
                    State::Running => pb::ClockState::Running,
                    State::Paused => pb::ClockState::Paused,
                    State::Met => pb::ClockState::Met,
                    State::MetLate => pb::ClockState::MetLate,
                    State::Breached => pb::ClockState::Breached,
                    State::Cancelled => pb::ClockState::Cancelled,
                };
                out.push(pb::Clock {
                    commitment: key,
                    name: c.name.clone(),
                    state: state as i32,
                    started_at: clock.started_at.map(timestamp),
                    due_at: clock.due_at.map(timestamp),
                    stopped_at: clock.stopped_at.map(timestamp),
                    paused_minutes: clock.paused.num_minutes(),
                    minutes_left: clock.left.num_minutes(),
                    time_basis: match c.target {
                        Target::CalendarWeeks(_) => "calendar".into(),
                        _ => "working".into(),
                    },
                    extended: clock.extended,
                    fee_reduction_percent: clock.fee_reduction_percent,
                });
            }
        }
        Ok(Response::new(pb::CaseClocks {
            case_id: case.id.to_string(),
            case_reference: case.reference,
            tenant: case.tenant,
            // A complaint or follow-up has no case type; say what it is.
            case_type: match case.kind.as_str() {
                "complaint" => "klagomål".to_owned(),
                "follow_up" => "uppföljning".to_owned(),
                _ => case.case_type,
            },
            clocks: out,
        }))
    }
}
