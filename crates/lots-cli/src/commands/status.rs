//! `lots status`: a case as the company sees it in the e-service portal (insight's
//! CaseStatusService).

use std::fmt::Write as _;

use anyhow::Context as _;
use lots_platform::auth::AuthedChannel;
use lots_proto::v1 as pb;
use pb::case_status_service_client::CaseStatusServiceClient;
use serde::Serialize;

use crate::args::Global;
use crate::client::{self, CaseKey};
use crate::output::{Out, Table, local, rfc3339};

/// insight's `CaseStatusService`, sending the caller's token.
pub type CaseStatus = CaseStatusServiceClient<AuthedChannel>;

/// insight's `CaseStatusService`, as the logged-in caller.
pub async fn case_status(global: &Global) -> anyhow::Result<CaseStatus> {
    let token = crate::login::token(global)?;
    let channel = client::authed("insight", &global.insight, &token, global.ca_file.as_deref()).await?;
    Ok(CaseStatusServiceClient::new(channel))
}

/// Runs `lots status <case>`.
pub async fn run(global: &Global, case: &str) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    // Parse before connecting, so a typo is a usage error even offline.
    let case = match CaseKey::parse(case)? {
        CaseKey::Id(id) => id,
        CaseKey::Reference(r) => r,
    };
    let mut insight = case_status(global).await?;
    let view =
        insight.get_case_status(pb::GetCaseStatusRequest { case }).await.context("get the case's status")?.into_inner();
    if out.json {
        return out.json_line(&CaseStatusJson::new(&view));
    }
    out.text(&status_text(&view));
    Ok(())
}

/// A promised date's due time, or "—" while it is not set.
fn due_text(p: &pb::PromisedDate) -> String {
    let due = local(p.due_at.as_ref());
    if due.is_empty() { "—".to_owned() } else { due }
}

/// The case's status for people: what the company sees, section by section.
pub fn status_text(v: &pb::CaseStatusView) -> String {
    let mut text = String::new();
    let case_type = match (v.case_type_name.is_empty(), v.case_type.is_empty()) {
        (false, false) => format!("{} ({})", v.case_type_name, v.case_type),
        (false, true) => v.case_type_name.clone(),
        _ => v.case_type.clone(),
    };
    let _ = writeln!(text, "{}  {case_type}", v.reference);
    let status = if v.status_text.is_empty() { v.status.clone() } else { v.status_text.clone() };
    let mut rows: Vec<(&str, String)> = Vec::new();
    if !v.company_name.is_empty() {
        rows.push(("company", v.company_name.clone()));
    }
    rows.push(("status", status));
    if !v.contact_officer.is_empty() {
        rows.push(("contact", v.contact_officer.clone()));
    }
    for (label, value) in rows {
        let _ = writeln!(text, "  {label:<8} {value}");
    }
    if !v.history.is_empty() {
        text.push('\n');
        let mut table = Table::new(&["WHEN", "STATUS"]);
        for h in &v.history {
            let what = if h.text.is_empty() { h.status.clone() } else { h.text.clone() };
            table.row(vec![local(h.at.as_ref()), what]);
        }
        text.push_str(&table.render());
    }
    if !v.promised.is_empty() {
        text.push('\n');
        let mut table = Table::new(&["PROMISED", "DUE", "STATE", ""]);
        for p in &v.promised {
            let name = if p.name.is_empty() { p.commitment.clone() } else { p.name.clone() };
            let legal = if p.legal { "(lagkrav)".to_owned() } else { String::new() };
            table.row(vec![name, due_text(p), p.state.clone(), legal]);
        }
        text.push_str(&table.render());
    }
    if let Some(m) = &v.meeting {
        text.push('\n');
        let end = local(m.ends_at.as_ref());
        let end_time = end.rsplit(' ').next().unwrap_or("");
        let _ = writeln!(text, "meeting");
        let _ = writeln!(text, "  when     {}–{end_time} (Europe/Stockholm)", local(m.starts_at.as_ref()));
        if !m.location.is_empty() {
            let _ = writeln!(text, "  where    {}", m.location);
        }
        for (i, a) in m.attendees.iter().enumerate() {
            let label = if i == 0 { "with" } else { "" };
            let who = if a.role.is_empty() { a.name.clone() } else { format!("{} – {}", a.name, a.role) };
            let _ = writeln!(text, "  {label:<8} {who}");
        }
    }
    if !v.next_step.is_empty() {
        text.push('\n');
        let _ = writeln!(text, "next step: {}", v.next_step);
    }
    text
}

/// A case's status for `--json`.
#[derive(Debug, Serialize)]
pub struct CaseStatusJson {
    pub case_id: String,
    pub reference: String,
    pub case_type: String,
    pub case_type_name: String,
    pub company_name: String,
    pub status: String,
    pub status_text: String,
    pub contact_officer: String,
    pub history: Vec<StatusEntryJson>,
    pub promised: Vec<PromisedDateJson>,
    pub meeting: Option<BookedMeetingJson>,
    pub next_step: String,
}

/// One step of the history for `--json`.
#[derive(Debug, Serialize)]
pub struct StatusEntryJson {
    pub at: Option<String>,
    pub status: String,
    pub text: String,
}

/// One promised date for `--json`.
#[derive(Debug, Serialize)]
pub struct PromisedDateJson {
    pub commitment: String,
    pub name: String,
    pub due_at: Option<String>,
    pub state: String,
    pub legal: bool,
}

/// The booked meeting for `--json`.
#[derive(Debug, Serialize)]
pub struct BookedMeetingJson {
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub location: String,
    pub attendees: Vec<MeetingAttendeeJson>,
}

/// One attendee of the booked meeting for `--json`.
#[derive(Debug, Serialize)]
pub struct MeetingAttendeeJson {
    pub name: String,
    pub role: String,
}

impl CaseStatusJson {
    /// The JSON form of a case's status.
    pub fn new(v: &pb::CaseStatusView) -> CaseStatusJson {
        CaseStatusJson {
            case_id: v.case_id.clone(),
            reference: v.reference.clone(),
            case_type: v.case_type.clone(),
            case_type_name: v.case_type_name.clone(),
            company_name: v.company_name.clone(),
            status: v.status.clone(),
            status_text: v.status_text.clone(),
            contact_officer: v.contact_officer.clone(),
            history: v
                .history
                .iter()
                .map(|h| StatusEntryJson { at: rfc3339(h.at.as_ref()), status: h.status.clone(), text: h.text.clone() })
                .collect(),
            promised: v
                .promised
                .iter()
                .map(|p| PromisedDateJson {
                    commitment: p.commitment.clone(),
                    name: p.name.clone(),
                    due_at: rfc3339(p.due_at.as_ref()),
                    state: p.state.clone(),
                    legal: p.legal,
                })
                .collect(),
            meeting: v.meeting.as_ref().map(|m| BookedMeetingJson {
                starts_at: rfc3339(m.starts_at.as_ref()),
                ends_at: rfc3339(m.ends_at.as_ref()),
                location: m.location.clone(),
                attendees: m
                    .attendees
                    .iter()
                    .map(|a| MeetingAttendeeJson { name: a.name.clone(), role: a.role.clone() })
                    .collect(),
            }),
            next_step: v.next_step.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn sample() -> pb::CaseStatusView {
        pb::CaseStatusView {
            case_id: "0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d".into(),
            reference: "NKP-2026-000123".into(),
            case_type: "restaurang_start".into(),
            case_type_name: "Starta restaurang".into(),
            company_name: "Knäppingsborgs Krog AB".into(),
            status: "meeting_booked".into(),
            status_text: "Möte bokat".into(),
            history: vec![
                pb::StatusEntry { at: at(1_795_500_000), status: "registered".into(), text: "Registrerat".into() },
                pb::StatusEntry { at: at(1_795_503_600), status: "meeting_booked".into(), text: "Möte bokat".into() },
            ],
            promised: vec![
                pb::PromisedDate {
                    commitment: "meeting_booked".into(),
                    name: "Dukat bord bokat inom 5 arbetsdagar".into(),
                    due_at: at(1_795_968_000),
                    state: "kept".into(),
                    legal: false,
                },
                pb::PromisedDate {
                    commitment: "bygglov_decision".into(),
                    name: "Beslut om bygglov".into(),
                    due_at: None,
                    state: "not_started".into(),
                    legal: true,
                },
            ],
            meeting: Some(pb::BookedMeeting {
                starts_at: at(1_795_860_000),
                ends_at: at(1_795_863_600),
                location: "Rådhuset, rum 3".into(),
                attendees: vec![
                    pb::MeetingAttendee { name: "Erik Sandberg".into(), role: "Företagslots".into() },
                    pb::MeetingAttendee { name: "Anna Berg".into(), role: "Bygglovsenheten".into() },
                ],
            }),
            next_step: "Skicka in ritningarna före mötet.".into(),
            contact_officer: "Erik Sandberg".into(),
        }
    }

    #[test]
    fn the_status_reads_like_the_portal() {
        let text = status_text(&sample());
        assert!(text.starts_with("NKP-2026-000123  Starta restaurang (restaurang_start)\n"), "{text}");
        assert!(text.contains("  company  Knäppingsborgs Krog AB\n"), "{text}");
        assert!(text.contains("  status   Möte bokat\n"), "{text}");
        assert!(text.contains("  contact  Erik Sandberg\n"), "{text}");
        assert!(text.contains("2026-11-24 07:00  Registrerat\n"), "{text}");
        let legal = text.lines().find(|l| l.starts_with("Beslut om bygglov")).unwrap();
        assert_eq!(legal.split_whitespace().skip(3).collect::<Vec<_>>(), ["—", "not_started", "(lagkrav)"]);
        let kept = text.lines().find(|l| l.starts_with("Dukat bord")).unwrap();
        assert!(kept.ends_with("kept"), "{text}");
        assert!(text.contains("  where    Rådhuset, rum 3\n"), "{text}");
        assert!(text.contains("  with     Erik Sandberg – Företagslots\n"), "{text}");
        assert!(text.contains("           Anna Berg – Bygglovsenheten\n"), "{text}");
        assert!(text.ends_with("next step: Skicka in ritningarna före mötet.\n"), "{text}");
    }

    #[test]
    fn a_case_without_meeting_or_next_step_leaves_them_out() {
        let v = pb::CaseStatusView { meeting: None, next_step: String::new(), ..sample() };
        let text = status_text(&v);
        assert!(!text.contains("meeting") && !text.contains("next step"), "{text}");
    }

    #[test]
    fn json_uses_rfc3339_and_keeps_unset_dates_null() {
        let v = serde_json::to_value(CaseStatusJson::new(&sample())).unwrap();
        assert_eq!(v["status_text"], "Möte bokat");
        assert_eq!(v["history"][0]["at"], "2026-11-24T06:00:00Z");
        assert!(v["promised"][1]["due_at"].is_null());
        assert_eq!(v["promised"][1]["legal"], true);
        assert_eq!(v["meeting"]["attendees"][1]["role"], "Bygglovsenheten");
    }
}
