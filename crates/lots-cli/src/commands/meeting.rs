//! `lots meeting show`: the dukat bord of a case, or its iCalendar invite (TaskService).

use std::fmt::Write as _;

use anyhow::Context as _;
use lots_proto::v1 as pb;
use serde::Serialize;
use tonic::Code;

use crate::args::{Global, MeetingCommand};
use crate::client::{self, CaseKey};
use crate::commands::tasks;
use crate::output::{Out, Table, enum_word, local, rfc3339};

/// Runs one `lots meeting` command.
pub async fn run(global: &Global, command: MeetingCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    let MeetingCommand::Show { target, ics } = command;
    let key = CaseKey::parse(&target)?;
    let meeting = match key {
        CaseKey::Reference(_) => {
            let case_id = client::case_id(global, &target).await?;
            get(global, pb::get_meeting_request::Lookup::CaseId(case_id)).await?
        }
        // A UUID names a meeting or a case; try the meeting first.
        CaseKey::Id(id) => match get(global, pb::get_meeting_request::Lookup::MeetingId(id.clone())).await {
            Err(e) if is_not_found(&e) => get(global, pb::get_meeting_request::Lookup::CaseId(id)).await?,
            other => other?,
        },
    };
    if ics {
        out.text(&meeting.ics);
        if !meeting.ics.ends_with('\n') {
            out.text("\n");
        }
        return Ok(());
    }
    if out.json {
        return out.json_line(&MeetingView::new(&meeting));
    }
    out.text(&meeting_details(&meeting));
    Ok(())
}

async fn get(global: &Global, lookup: pb::get_meeting_request::Lookup) -> anyhow::Result<pb::Meeting> {
    let mut tasks = client::tasks(global).await?;
    let req = pb::GetMeetingRequest { lookup: Some(lookup) };
    let meeting = tasks.get_meeting(req).await.context("get the meeting")?;
    Ok(meeting.into_inner())
}

fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|c| c.downcast_ref::<tonic::Status>()).any(|s| s.code() == Code::NotFound)
}

/// The meeting status as a word, e.g. "booked".
pub fn status_word(status: i32) -> String {
    pb::MeetingStatus::try_from(status)
        .map(|s| enum_word(s.as_str_name(), "MEETING_STATUS_"))
        .unwrap_or_else(|_| format!("unknown({status})"))
}

/// A meeting for people: when, where, and who sits at the table.
pub fn meeting_details(m: &pb::Meeting) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "dukat bord for {} ({}, invite sequence {})",
        m.case_reference,
        status_word(m.status),
        m.sequence
    );
    let end = local(m.ends_at.as_ref());
    let end_time = end.rsplit(' ').next().unwrap_or("");
    let _ = writeln!(text, "  when     {}–{end_time} (Europe/Stockholm)", local(m.starts_at.as_ref()));
    if !m.location.is_empty() {
        let _ = writeln!(text, "  where    {}", m.location);
    }
    let _ = writeln!(text, "  meeting  {}", m.id);
    let _ = writeln!(text, "  case     {}", m.case_id);
    let mut table = Table::new(&["ATTENDEE", "OFFICER", "SEAT", "TASK", "EMAIL"]);
    for a in &m.attendees {
        let task = if a.officer_id.is_empty() { "company".to_owned() } else { tasks::status_word(a.task_status) };
        table.row(vec![a.name.clone(), a.officer_id.clone(), a.competence.clone(), task, a.email.clone()]);
    }
    if !table.is_empty() {
        text.push('\n');
        text.push_str(&table.render());
    }
    text
}

/// A meeting for `--json`.
#[derive(Debug, Serialize)]
pub struct MeetingView {
    pub id: String,
    pub case_id: String,
    pub case_reference: String,
    pub tenant: String,
    pub status: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub location: String,
    pub sequence: u32,
    pub attendees: Vec<AttendeeView>,
    pub ics: String,
}

/// One attendee for `--json`.
#[derive(Debug, Serialize)]
pub struct AttendeeView {
    pub name: String,
    pub email: String,
    pub officer_id: Option<String>,
    pub competence: Option<String>,
    pub task_status: Option<String>,
}

impl MeetingView {
    /// The JSON form of a meeting.
    pub fn new(m: &pb::Meeting) -> MeetingView {
        MeetingView {
            id: m.id.clone(),
            case_id: m.case_id.clone(),
            case_reference: m.case_reference.clone(),
            tenant: m.tenant.clone(),
            status: status_word(m.status),
            starts_at: rfc3339(m.starts_at.as_ref()),
            ends_at: rfc3339(m.ends_at.as_ref()),
            location: m.location.clone(),
            sequence: m.sequence,
            attendees: m
                .attendees
                .iter()
                .map(|a| {
                    let officer = Some(a.officer_id.clone()).filter(|o| !o.is_empty());
                    AttendeeView {
                        name: a.name.clone(),
                        email: a.email.clone(),
                        task_status: officer.as_ref().map(|_| tasks::status_word(a.task_status)),
                        officer_id: officer,
                        competence: Some(a.competence.clone()).filter(|c| !c.is_empty()),
                    }
                })
                .collect(),
            ics: m.ics.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meeting() -> pb::Meeting {
        pb::Meeting {
            id: "m-1".into(),
            case_id: "c-1".into(),
            case_reference: "NKP-2026-000042".into(),
            status: pb::MeetingStatus::Booked as i32,
            starts_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            ends_at: Some(prost_types::Timestamp { seconds: 1_795_505_400, nanos: 0 }),
            location: "Rådhuset".into(),
            attendees: vec![
                pb::Attendee {
                    name: "Erik Sandberg".into(),
                    email: "erik@example.se".into(),
                    officer_id: "erik.sandberg".into(),
                    competence: "livsmedel".into(),
                    task_status: pb::TaskStatus::Accepted as i32,
                },
                pb::Attendee { name: "Sara Holm".into(), email: "sara@example.se".into(), ..Default::default() },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn details_show_time_span_and_attendees() {
        let text = meeting_details(&meeting());
        assert!(text.starts_with("dukat bord for NKP-2026-000042 (booked, invite sequence 0)\n"));
        assert!(text.contains("  when     2026-11-24 07:00–08:30 (Europe/Stockholm)\n"));
        assert!(text.contains("Erik Sandberg  erik.sandberg  livsmedel  accepted  erik@example.se"));
        assert!(text.contains("Sara Holm                                company   sara@example.se"));
    }

    #[test]
    fn json_marks_the_company_contact_without_officer() {
        let v = serde_json::to_value(MeetingView::new(&meeting())).unwrap();
        assert_eq!(v["attendees"][0]["task_status"], "accepted");
        assert!(v["attendees"][1]["officer_id"].is_null());
        assert_eq!(v["status"], "booked");
    }
}
