//! `lots complaint …`: register klagomål and take them through acknowledge, answer and close
//! (intake's ComplaintService).

use std::fmt::Write as _;

use anyhow::Context as _;
use lots_proto::v1 as pb;
use serde::Serialize;

use crate::args::{ComplaintAboutArgs, ComplaintCommand, Global, ListComplaintsArgs, RegisterComplaintArgs};
use crate::client::{self, CaseKey, RecordKey, Register, new_idempotency_key};
use crate::commands::case::channel_word;
use crate::exit::UsageError;
use crate::output::{Out, Table, enum_word, local, rfc3339};

type Complaints = client::Complaints;

/// Runs one `lots complaint` command.
pub async fn run(global: &Global, command: ComplaintCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    // Parse ids and references before connecting, so a typo is a usage error even offline.
    check_arguments(&command)?;
    let mut complaints = client::complaints(global).await?;
    match command {
        ComplaintCommand::Register(args) => register(&mut complaints, args, out).await,
        ComplaintCommand::List(args) => list(&mut complaints, args, out).await,
        ComplaintCommand::Show { complaint } => {
            let complaint = get(&mut complaints, &RecordKey::parse(&complaint, Register::Complaints)?).await?;
            if out.json {
                return out.json_line(&ComplaintView::new(&complaint, None));
            }
            out.text(&complaint_details(&complaint));
            Ok(())
        }
        ComplaintCommand::Acknowledge { complaint } => {
            let complaint_id = resolve(&mut complaints, &complaint).await?;
            let req = pb::AcknowledgeComplaintRequest { complaint_id, idempotency_key: new_idempotency_key() };
            let complaint = complaints.acknowledge_complaint(req).await.context("acknowledge the complaint")?;
            print_change(out, &complaint.into_inner())
        }
        ComplaintCommand::Answer { complaint, answer, action_taken } => {
            let complaint_id = resolve(&mut complaints, &complaint).await?;
            let req = pb::AnswerComplaintRequest {
                complaint_id,
                answer,
                action_taken,
                idempotency_key: new_idempotency_key(),
            };
            let complaint = complaints.answer_complaint(req).await.context("answer the complaint")?;
            print_change(out, &complaint.into_inner())
        }
        ComplaintCommand::Close { complaint } => {
            let complaint_id = resolve(&mut complaints, &complaint).await?;
            let req = pb::CloseComplaintRequest { complaint_id, idempotency_key: new_idempotency_key() };
            let complaint = complaints.close_complaint(req).await.context("close the complaint")?;
            print_change(out, &complaint.into_inner())
        }
        ComplaintCommand::Reassign { complaint, to, reason } => {
            let complaint_id = resolve(&mut complaints, &complaint).await?;
            let req = pb::ReassignComplaintRequest {
                complaint_id,
                handler: to,
                reason,
                idempotency_key: new_idempotency_key(),
            };
            let complaint = complaints.reassign_complaint(req).await.context("reassign the complaint")?;
            print_change(out, &complaint.into_inner())
        }
    }
}

fn check_arguments(command: &ComplaintCommand) -> Result<(), UsageError> {
    match command {
        ComplaintCommand::Register(args) => {
            if let Some(case) = &args.about.about_case {
                CaseKey::parse(case)?;
            }
        }
        ComplaintCommand::List(args) => {
            if let Some(case) = &args.about_case {
                CaseKey::parse(case)?;
            }
        }
        ComplaintCommand::Show { complaint }
        | ComplaintCommand::Acknowledge { complaint }
        | ComplaintCommand::Answer { complaint, .. }
        | ComplaintCommand::Close { complaint }
        | ComplaintCommand::Reassign { complaint, .. } => {
            RecordKey::parse(complaint, Register::Complaints)?;
        }
    }
    Ok(())
}

/// Fetches a complaint by id or reference.
async fn get(complaints: &mut Complaints, key: &RecordKey) -> anyhow::Result<pb::Complaint> {
    let lookup = match key {
        RecordKey::Id(id) => pb::get_complaint_request::Lookup::Id(id.clone()),
        RecordKey::Reference(r) => pb::get_complaint_request::Lookup::Reference(r.clone()),
    };
    let req = pb::GetComplaintRequest { lookup: Some(lookup) };
    Ok(complaints.get_complaint(req).await.context("look up the complaint")?.into_inner())
}

/// The complaint id for an id or a reference.
async fn resolve(complaints: &mut Complaints, text: &str) -> anyhow::Result<String> {
    match RecordKey::parse(text, Register::Complaints)? {
        RecordKey::Id(id) => Ok(id),
        key => Ok(get(complaints, &key).await?.id),
    }
}

/// A case named by id or reference, as the API takes it (a UUID or an upper-case reference).
fn case_text(text: &str) -> Result<String, UsageError> {
    Ok(match CaseKey::parse(text)? {
        CaseKey::Id(id) => id,
        CaseKey::Reference(r) => r,
    })
}

/// What the complaint is about, or `None` when nothing in particular.
fn about(args: &ComplaintAboutArgs) -> Result<Option<pb::ComplaintAbout>, UsageError> {
    let sent = pb::ComplaintAbout {
        case: args.about_case.as_deref().map(case_text).transpose()?.unwrap_or_default(),
        unit: args.about_unit.clone().unwrap_or_default(),
        officer: args.about_officer.clone().unwrap_or_default(),
    };
    Ok(Some(sent).filter(|a| !(a.case.is_empty() && a.unit.is_empty() && a.officer.is_empty())))
}

/// The complainant, or `None` when no contact flag was given.
fn contact(name: Option<String>, phone: Option<String>, email: Option<String>) -> Option<pb::Contact> {
    if name.is_none() && phone.is_none() && email.is_none() {
        return None;
    }
    Some(pb::Contact {
        name: name.unwrap_or_default(),
        phone: phone.unwrap_or_default(),
        email: email.unwrap_or_default(),
    })
}

async fn register(complaints: &mut Complaints, args: RegisterComplaintArgs, out: Out) -> anyhow::Result<()> {
    let key = args.idempotency_key.unwrap_or_else(new_idempotency_key);
    let req = pb::RegisterComplaintRequest {
        idempotency_key: key.clone(),
        category: pb::ComplaintCategory::from(args.category) as i32,
        channel: pb::Channel::from(args.channel) as i32,
        about: about(&args.about)?,
        description: args.description,
        anonymous: args.anonymous,
        contact: contact(args.contact_name, args.contact_phone, args.contact_email),
        org_nr: args.org_nr.unwrap_or_default(),
        company_name: args.company_name.unwrap_or_default(),
        secrecy: args.secrecy,
    };
    let complaint = complaints.register_complaint(req).await.context("register the complaint")?.into_inner();
    if out.json {
        return out.json_line(&ComplaintView::new(&complaint, Some(key)));
    }
    out.text(&format!("registered {} (idempotency key {key}; repeat it to retry safely)\n", complaint.reference));
    out.text(&complaint_details(&complaint));
    Ok(())
}

async fn list(complaints: &mut Complaints, args: ListComplaintsArgs, out: Out) -> anyhow::Result<()> {
    let about_case = args.about_case.as_deref().map(case_text).transpose()?.unwrap_or_default();
    let limit = args.limit as usize;
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let want = (limit - found.len()).min(500) as u32;
        let req = pb::ListComplaintsRequest {
            status: args.status.map_or(0, |s| pb::ComplaintStatus::from(s) as i32),
            category: args.category.map_or(0, |c| pb::ComplaintCategory::from(c) as i32),
            handler: args.handler.clone().unwrap_or_default(),
            about_case: about_case.clone(),
            page_size: want,
            page_token,
        };
        let page = complaints.list_complaints(req).await.context("list complaints")?.into_inner();
        found.extend(page.complaints);
        if page.next_page_token.is_empty() || found.len() >= limit {
            break;
        }
        page_token = page.next_page_token;
    }
    found.truncate(limit);
    if out.json {
        for complaint in &found {
            out.json_line(&ComplaintView::new(complaint, None))?;
        }
        return Ok(());
    }
    if found.is_empty() {
        out.text("no complaints\n");
        return Ok(());
    }
    out.text(&complaint_table(&found));
    Ok(())
}

fn print_change(out: Out, complaint: &pb::Complaint) -> anyhow::Result<()> {
    if out.json {
        return out.json_line(&ComplaintView::new(complaint, None));
    }
    out.text(&change_line(complaint));
    Ok(())
}

/// The complaint status as a word, e.g. "acknowledged".
pub fn status_word(status: i32) -> String {
    pb::ComplaintStatus::try_from(status)
        .map(|s| enum_word(s.as_str_name(), "COMPLAINT_STATUS_"))
        .unwrap_or_else(|_| format!("unknown({status})"))
}

/// The complaint category as a word, e.g. "bemotande".
pub fn category_word(category: i32) -> String {
    pb::ComplaintCategory::try_from(category)
        .map(|c| enum_word(c.as_str_name(), "COMPLAINT_CATEGORY_"))
        .unwrap_or_else(|_| format!("unknown({category})"))
}

/// What the complaint is about, e.g. "case NKP-2026-000123"; empty when nothing in particular.
pub fn about_text(c: &pb::Complaint) -> String {
    if !c.about_case_reference.is_empty() {
        format!("case {}", c.about_case_reference)
    } else if !c.about_case_id.is_empty() {
        format!("case {}", c.about_case_id)
    } else if !c.about_unit.is_empty() {
        format!("unit {}", c.about_unit)
    } else if !c.about_officer.is_empty() {
        format!("officer {}", c.about_officer)
    } else {
        String::new()
    }
}

/// The handler and their unit, e.g. "anna.berg (bygglov)"; empty when nobody handles it yet.
fn handler_text(c: &pb::Complaint) -> String {
    match (c.handler.is_empty(), c.handler_unit.is_empty()) {
        (true, _) => String::new(),
        (false, true) => c.handler.clone(),
        (false, false) => format!("{} ({})", c.handler, c.handler_unit),
    }
}

/// One line after a change: the reference, where the complaint is now and who handles it.
pub fn change_line(c: &pb::Complaint) -> String {
    let mut line = format!("{} is now {}", c.reference, status_word(c.status));
    let handler = handler_text(c);
    if !handler.is_empty() {
        let _ = write!(line, ", handled by {handler}");
    }
    line.push('\n');
    line
}

/// Every field of a complaint, one per line.
pub fn complaint_details(c: &pb::Complaint) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("reference", c.reference.clone()),
        ("id", c.id.clone()),
        ("status", status_word(c.status)),
        ("category", category_word(c.category)),
        ("channel", channel_word(c.channel)),
    ];
    let about = about_text(c);
    if !about.is_empty() {
        rows.push(("about", about));
    }
    if c.anonymous {
        rows.push(("complainant", "anonymous".into()));
    } else if let Some(contact) = &c.contact {
        let parts: Vec<&str> = [contact.name.as_str(), contact.phone.as_str(), contact.email.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        rows.push(("complainant", parts.join(", ")));
    }
    if !c.company_name.is_empty() || !c.org_nr.is_empty() {
        let company = match (c.company_name.is_empty(), c.org_nr.is_empty()) {
            (false, false) => format!("{} ({})", c.company_name, c.org_nr),
            (false, true) => c.company_name.clone(),
            _ => c.org_nr.clone(),
        };
        rows.push(("company", company));
    }
    if c.secrecy {
        rows.push(("secrecy", "yes: mask a public copy (OSL)".into()));
    }
    let handler = handler_text(c);
    if !handler.is_empty() {
        rows.push(("handler", handler));
    }
    let by = if c.registered_by.is_empty() { String::new() } else { format!(" by {}", c.registered_by) };
    rows.push(("registered", format!("{}{by}", local(c.registered_at.as_ref()))));
    for (label, at) in [("acknowledged", &c.acknowledged_at), ("answered", &c.answered_at), ("closed", &c.closed_at)] {
        if at.is_some() {
            rows.push((label, local(at.as_ref())));
        }
    }
    if !c.description.is_empty() {
        rows.push(("description", c.description.clone()));
    }
    if !c.answer.is_empty() {
        rows.push(("answer", c.answer.clone()));
    }
    if !c.action_taken.is_empty() {
        rows.push(("action taken", c.action_taken.clone()));
    }
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "  {label:<12} {value}");
    }
    text
}

/// Complaints as a table.
pub fn complaint_table(complaints: &[pb::Complaint]) -> String {
    let mut table = Table::new(&["REFERENCE", "STATUS", "CATEGORY", "ABOUT", "HANDLER", "REGISTERED"]);
    for c in complaints {
        table.row(vec![
            c.reference.clone(),
            status_word(c.status),
            category_word(c.category),
            about_text(c),
            c.handler.clone(),
            local(c.registered_at.as_ref()),
        ]);
    }
    table.render()
}

/// A complaint for `--json`.
#[derive(Debug, Serialize)]
pub struct ComplaintView {
    pub id: String,
    pub reference: String,
    pub tenant: String,
    pub status: String,
    pub category: String,
    pub channel: String,
    pub about_case_id: Option<String>,
    pub about_case_reference: Option<String>,
    pub about_unit: Option<String>,
    pub about_officer: Option<String>,
    pub description: String,
    pub anonymous: bool,
    pub contact: Option<ContactView>,
    pub org_nr: Option<String>,
    pub company_name: Option<String>,
    pub secrecy: bool,
    pub handler: Option<String>,
    pub handler_unit: Option<String>,
    pub answer: Option<String>,
    pub action_taken: Option<String>,
    pub registered_at: Option<String>,
    pub acknowledged_at: Option<String>,
    pub answered_at: Option<String>,
    pub closed_at: Option<String>,
    pub registered_by: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A complainant for `--json`.
#[derive(Debug, Serialize)]
pub struct ContactView {
    pub name: String,
    pub phone: String,
    pub email: String,
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.to_owned()).filter(|s| !s.is_empty())
}

impl ComplaintView {
    /// The JSON form of `c`, with the idempotency key when this command chose it.
    pub fn new(c: &pb::Complaint, idempotency_key: Option<String>) -> ComplaintView {
        ComplaintView {
            id: c.id.clone(),
            reference: c.reference.clone(),
            tenant: c.tenant.clone(),
            status: status_word(c.status),
            category: category_word(c.category),
            channel: channel_word(c.channel),
            about_case_id: non_empty(&c.about_case_id),
            about_case_reference: non_empty(&c.about_case_reference),
            about_unit: non_empty(&c.about_unit),
            about_officer: non_empty(&c.about_officer),
            description: c.description.clone(),
            anonymous: c.anonymous,
            contact: c.contact.as_ref().map(|p| ContactView {
                name: p.name.clone(),
                phone: p.phone.clone(),
                email: p.email.clone(),
            }),
            org_nr: non_empty(&c.org_nr),
            company_name: non_empty(&c.company_name),
            secrecy: c.secrecy,
            handler: non_empty(&c.handler),
            handler_unit: non_empty(&c.handler_unit),
            answer: non_empty(&c.answer),
            action_taken: non_empty(&c.action_taken),
            registered_at: rfc3339(c.registered_at.as_ref()),
            acknowledged_at: rfc3339(c.acknowledged_at.as_ref()),
            answered_at: rfc3339(c.answered_at.as_ref()),
            closed_at: rfc3339(c.closed_at.as_ref()),
            registered_by: c.registered_by.clone(),
            version: c.version,
            idempotency_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_complaint() -> pb::Complaint {
        pb::Complaint {
            id: "0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d".into(),
            reference: "NKP-K-2026-000007".into(),
            tenant: "0581".into(),
            category: pb::ComplaintCategory::Bemotande as i32,
            channel: pb::Channel::Phone as i32,
            status: pb::ComplaintStatus::Acknowledged as i32,
            about_case_id: "0193a9c4-0000-7c3a-9d2b-5e6f7a8b9c0d".into(),
            about_case_reference: "NKP-2026-000042".into(),
            description: "Otrevligt bemött i telefon".into(),
            contact: Some(pb::Contact {
                name: "Sara Holm".into(),
                phone: "070-123 45 67".into(),
                email: String::new(),
            }),
            org_nr: "556036-0793".into(),
            company_name: "Knäppingsborgs Krog AB".into(),
            handler: "anna.berg".into(),
            handler_unit: "bygglov".into(),
            registered_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            acknowledged_at: Some(prost_types::Timestamp { seconds: 1_795_503_600, nanos: 0 }),
            registered_by: "reception".into(),
            version: 2,
            ..Default::default()
        }
    }

    #[test]
    fn a_change_says_where_the_complaint_is_and_who_handles_it() {
        assert_eq!(
            change_line(&sample_complaint()),
            "NKP-K-2026-000007 is now acknowledged, handled by anna.berg (bygglov)\n"
        );
    }

    #[test]
    fn details_show_what_it_is_about_and_who_complains() {
        let text = complaint_details(&sample_complaint());
        assert!(text.contains("  category     bemotande\n"), "{text}");
        assert!(text.contains("  about        case NKP-2026-000042\n"), "{text}");
        assert!(text.contains("  complainant  Sara Holm, 070-123 45 67\n"), "{text}");
        assert!(text.contains("  company      Knäppingsborgs Krog AB (556036-0793)\n"), "{text}");
        assert!(text.contains("  acknowledged 2026-11-24 08:00\n"), "{text}");
        assert!(!text.contains("answered"), "{text}");
        let anonymous = pb::Complaint { anonymous: true, contact: None, ..sample_complaint() };
        assert!(complaint_details(&anonymous).contains("  complainant  anonymous\n"));
    }

    #[test]
    fn the_table_has_one_row_per_complaint() {
        let text = complaint_table(&[sample_complaint()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("REFERENCE          STATUS"), "{text}");
        assert!(lines[1].starts_with("NKP-K-2026-000007  acknowledged  bemotande  case NKP-2026-000042  anna.berg"));
    }

    #[test]
    fn json_uses_words_and_rfc3339() {
        let v = serde_json::to_value(ComplaintView::new(&sample_complaint(), Some("k1".into()))).unwrap();
        assert_eq!(v["status"], "acknowledged");
        assert_eq!(v["category"], "bemotande");
        assert_eq!(v["channel"], "phone");
        assert_eq!(v["registered_at"], "2026-11-24T06:00:00Z");
        assert_eq!(v["contact"]["name"], "Sara Holm");
        assert_eq!(v["idempotency_key"], "k1");
        assert!(v["answer"].is_null() && v["about_unit"].is_null());
        let v = serde_json::to_value(ComplaintView::new(&sample_complaint(), None)).unwrap();
        assert!(v.get("idempotency_key").is_none());
    }

    #[test]
    fn about_sends_at_most_one_target_and_normalises_a_case_reference() {
        assert_eq!(about(&ComplaintAboutArgs::default()).unwrap(), None);
        let args = ComplaintAboutArgs { about_case: Some(" nkp-2026-000042 ".into()), ..Default::default() };
        let sent = about(&args).unwrap().unwrap();
        assert_eq!((sent.case.as_str(), sent.unit.as_str()), ("NKP-2026-000042", ""));
        let args = ComplaintAboutArgs { about_unit: Some("bygglov".into()), ..Default::default() };
        assert_eq!(about(&args).unwrap().unwrap().unit, "bygglov");
        let args = ComplaintAboutArgs { about_case: Some("case-1".into()), ..Default::default() };
        assert!(about(&args).is_err());
    }

    #[test]
    fn a_contact_is_sent_only_when_a_contact_flag_is_given() {
        assert_eq!(contact(None, None, None), None);
        let c = contact(Some("Sara Holm".into()), None, Some("sara@example.se".into())).unwrap();
        assert_eq!((c.name.as_str(), c.phone.as_str(), c.email.as_str()), ("Sara Holm", "", "sara@example.se"));
    }
}
