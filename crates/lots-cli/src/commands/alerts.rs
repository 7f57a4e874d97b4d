//! `lots alerts …`: servicegaranti warnings, breaches and escalations (AlertService).

use anyhow::Context as _;
use futures::StreamExt as _;
use lots_proto::v1 as pb;
use serde::Serialize;

use crate::args::{AlertFilter, AlertsCommand, Global};
use crate::client;
use crate::output::{Out, Table, enum_word, local, rfc3339};

/// Runs one `lots alerts` command.
pub async fn run(global: &Global, command: AlertsCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    match command {
        AlertsCommand::List { filter, open, case, limit } => {
            let case_id = match case {
                Some(c) => client::case_id(global, &c).await?,
                None => String::new(),
            };
            let mut sla = client::alerts(global).await?;
            let req = pb::ListAlertsRequest {
                units: filter.units.clone(),
                min_severity: min_severity(&filter),
                open_only: open,
                limit,
                case_id,
            };
            let alerts = sla.list_alerts(req).await.context("list alerts")?.into_inner();
            if out.json {
                for a in &alerts.alerts {
                    out.json_line(&AlertView::new(a))?;
                }
            } else if alerts.alerts.is_empty() {
                out.text("no alerts\n");
            } else {
                out.text(&alert_table(&alerts.alerts));
            }
            Ok(())
        }
        AlertsCommand::Watch { filter } => {
            let mut sla = client::alerts(global).await?;
            let req = pb::WatchAlertsRequest { units: filter.units.clone(), min_severity: min_severity(&filter) };
            let mut stream = sla.watch_alerts(req).await.context("watch alerts")?.into_inner();
            loop {
                let next = tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    next = stream.next() => next,
                };
                let Some(alert) = next else {
                    anyhow::bail!("the sla service ended the alert stream");
                };
                let alert = alert.context("watch alerts")?;
                if out.json {
                    out.json_line(&AlertView::new(&alert))?;
                } else {
                    out.text(&alert_line(&alert));
                }
            }
        }
    }
}

fn min_severity(filter: &AlertFilter) -> i32 {
    filter.min_severity.map_or(0, |s| pb::Severity::from(s) as i32)
}

/// The severity as a word, e.g. "breach".
pub fn severity_word(severity: i32) -> String {
    pb::Severity::try_from(severity)
        .map(|s| enum_word(s.as_str_name(), "SEVERITY_"))
        .unwrap_or_else(|_| format!("unknown({severity})"))
}

/// The alert kind as a word, e.g. "breached".
pub fn kind_word(kind: i32) -> String {
    pb::AlertKind::try_from(kind)
        .map(|k| enum_word(k.as_str_name(), "ALERT_KIND_"))
        .unwrap_or_else(|_| format!("unknown({kind})"))
}

/// The kind with its level: "warning 75%", "escalated step 2", "breached".
pub fn kind_text(a: &pb::Alert) -> String {
    let kind = kind_word(a.kind);
    match pb::AlertKind::try_from(a.kind) {
        Ok(pb::AlertKind::Warning) if a.level > 0 => format!("{kind} {}%", a.level),
        Ok(pb::AlertKind::Escalated) if a.level > 0 => format!("{kind} step {}", a.level),
        _ => kind,
    }
}

/// The message without the leading "REFERENCE: " the server puts there.
fn message_text(a: &pb::Alert) -> &str {
    a.message.strip_prefix(&format!("{}: ", a.case_reference)).unwrap_or(&a.message)
}

/// One line per alert: when, how bad, who must act, what about.
pub fn alert_line(a: &pb::Alert) -> String {
    format!(
        "{}  {:<10}  {}  {} → {} [{}]: {} (due {})\n",
        local(a.fired_at.as_ref()),
        severity_word(a.severity),
        kind_text(a),
        a.case_reference,
        a.recipient,
        a.unit,
        message_text(a),
        local(a.due_at.as_ref()),
    )
}

/// Alerts as a table.
pub fn alert_table(alerts: &[pb::Alert]) -> String {
    let mut table = Table::new(&["FIRED", "SEVERITY", "KIND", "CASE", "UNIT", "TO", "DUE", "OPEN", "MESSAGE"]);
    for a in alerts {
        table.row(vec![
            local(a.fired_at.as_ref()),
            severity_word(a.severity),
            kind_text(a),
            a.case_reference.clone(),
            a.unit.clone(),
            a.recipient.clone(),
            local(a.due_at.as_ref()),
            if a.open { "yes" } else { "no" }.to_owned(),
            message_text(a).to_owned(),
        ]);
    }
    table.render()
}

/// An alert for `--json`.
#[derive(Debug, Serialize)]
pub struct AlertView {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub level: u32,
    pub tenant: String,
    pub unit: String,
    pub case_id: String,
    pub case_reference: String,
    pub commitment: String,
    pub commitment_name: String,
    pub recipient: String,
    pub due_at: Option<String>,
    pub fired_at: Option<String>,
    pub late: bool,
    pub open: bool,
    pub message: String,
}

impl AlertView {
    /// The JSON form of an alert.
    pub fn new(a: &pb::Alert) -> AlertView {
        AlertView {
            id: a.id.clone(),
            kind: kind_word(a.kind),
            severity: severity_word(a.severity),
            level: a.level,
            tenant: a.tenant.clone(),
            unit: a.unit.clone(),
            case_id: a.case_id.clone(),
            case_reference: a.case_reference.clone(),
            commitment: a.commitment.clone(),
            commitment_name: a.commitment_name.clone(),
            recipient: a.recipient.clone(),
            due_at: rfc3339(a.due_at.as_ref()),
            fired_at: rfc3339(a.fired_at.as_ref()),
            late: a.late,
            open: a.open,
            message: a.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> pb::Alert {
        pb::Alert {
            id: "a-1".into(),
            kind: pb::AlertKind::Warning as i32,
            severity: pb::Severity::Warning as i32,
            unit: "naringsliv".into(),
            case_reference: "NKP-2026-000003".into(),
            commitment: "first_contact".into(),
            commitment_name: "Första kontakt inom 1 arbetsdag".into(),
            recipient: "johan.nystrom".into(),
            level: 50,
            due_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            fired_at: Some(prost_types::Timestamp { seconds: 1_795_484_700, nanos: 0 }),
            open: true,
            message: "NKP-2026-000003: Första kontakt inom 1 arbetsdag: 50 % of the time used".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_alert_line_says_who_must_act_and_when_it_is_due() {
        assert_eq!(
            alert_line(&alert()),
            "2026-11-24 02:45  warning     warning 50%  NKP-2026-000003 → johan.nystrom [naringsliv]: \
             Första kontakt inom 1 arbetsdag: 50 % of the time used (due 2026-11-24 07:00)\n"
        );
    }

    #[test]
    fn kinds_carry_their_level() {
        let mut a = alert();
        a.kind = pb::AlertKind::Escalated as i32;
        a.level = 2;
        assert_eq!(kind_text(&a), "escalated step 2");
        a.kind = pb::AlertKind::Breached as i32;
        a.level = 0;
        assert_eq!(kind_text(&a), "breached");
    }

    #[test]
    fn json_has_words_for_enums() {
        let v = serde_json::to_value(AlertView::new(&alert())).unwrap();
        assert_eq!(v["kind"], "warning");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["level"], 50);
        assert_eq!(v["open"], true);
    }
}
