//! `lots case …`: register a company's case and follow its lifecycle (IntakeService).

use std::fmt::Write as _;

use anyhow::Context as _;
use lots_proto::v1 as pb;
use serde::Serialize;
use uuid::Uuid;

use crate::args::{CaseCommand, Global, ListCasesArgs, RegisterArgs};
use crate::client::{self, CaseKey};
use crate::output::{Out, Table, enum_word, local, rfc3339};

type Intake = client::Intake;

/// Runs one `lots case` command.
pub async fn run(global: &Global, command: CaseCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    // Parse the case argument before connecting, so a typo is a usage error even offline.
    if let Some(text) = case_argument(&command) {
        CaseKey::parse(text)?;
    }
    let mut intake = client::intake(global).await?;
    match command {
        CaseCommand::Register(args) => register(&mut intake, args, out).await,
        CaseCommand::Show { case } => {
            let case = client::get_case(&mut intake, &CaseKey::parse(&case)?).await?;
            print_case(out, &case, None)
        }
        CaseCommand::List(args) => list(&mut intake, args, out).await,
        CaseCommand::Await { case, reason } => {
            let case_id = resolve(&mut intake, &case).await?;
            let req = pb::AwaitCompanyRequest { case_id, reason, ..Default::default() };
            let case = intake.await_company(req).await.context("wait for the company")?;
            print_change(out, &case.into_inner(), None)
        }
        CaseCommand::Resume { case } => {
            let case_id = resolve(&mut intake, &case).await?;
            let req = pb::ResumeCaseRequest { case_id, ..Default::default() };
            let case = intake.resume_case(req).await.context("resume the case")?;
            print_change(out, &case.into_inner(), None)
        }
        CaseCommand::Close { case, outcome, decision } => {
            let case_id = resolve(&mut intake, &case).await?;
            let req = pb::CloseCaseRequest {
                case_id,
                outcome: pb::Outcome::from(outcome) as i32,
                decision,
                ..Default::default()
            };
            let case = intake.close_case(req).await.context("close the case")?;
            print_change(out, &case.into_inner(), None)
        }
        CaseCommand::Reassign { case, to, reason } => {
            let case_id = resolve(&mut intake, &case).await?;
            let mut routing = client::tasks(global).await?;
            let req = pb::ReassignCaseOwnerRequest { case_id, officer_id: to, reason, ..Default::default() };
            let owner = routing.reassign_case_owner(req).await.context("reassign the case")?.into_inner();
            if out.json {
                #[derive(Serialize)]
                struct Owner<'a> {
                    case_id: &'a str,
                    owner: &'a str,
                    unit: &'a str,
                }
                out.json_line(&Owner { case_id: &owner.case_id, owner: &owner.officer_id, unit: &owner.unit })
            } else {
                out.text(&format!("{} is now owned by {} ({})\n", case, owner.officer_id, owner.unit));
                Ok(())
            }
        }
        CaseCommand::Withdraw { case, reason } => {
            let case_id = resolve(&mut intake, &case).await?;
            let req = pb::WithdrawCaseRequest { case_id, reason, ..Default::default() };
            let case = intake.withdraw_case(req).await.context("withdraw the case")?;
            print_change(out, &case.into_inner(), None)
        }
        CaseCommand::Complete { case } => {
            let case_id = resolve(&mut intake, &case).await?;
            let req = pb::MarkApplicationCompleteRequest { case_id, ..Default::default() };
            let case = intake.mark_application_complete(req).await.context("mark the application complete")?;
            let case = case.into_inner();
            let note = format!(
                "application complete {}: legal deadlines count from then",
                local(case.application_complete_at.as_ref())
            );
            print_change(out, &case, Some(&note))
        }
        CaseCommand::Extend { case, reason } => {
            let case_id = resolve(&mut intake, &case).await?;
            let req = pb::ExtendDeadlineRequest { case_id, reason, ..Default::default() };
            let case = intake.extend_deadline(req).await.context("extend the deadline")?;
            let case = case.into_inner();
            let note = format!("legal deadline extended {}", local(case.deadline_extended_at.as_ref()));
            print_change(out, &case, Some(&note))
        }
    }
}

fn case_argument(command: &CaseCommand) -> Option<&str> {
    match command {
        CaseCommand::Register(_) | CaseCommand::List(_) => None,
        CaseCommand::Show { case }
        | CaseCommand::Await { case, .. }
        | CaseCommand::Resume { case }
        | CaseCommand::Close { case, .. }
        | CaseCommand::Withdraw { case, .. }
        | CaseCommand::Reassign { case, .. }
        | CaseCommand::Complete { case }
        | CaseCommand::Extend { case, .. } => Some(case),
    }
}

/// The case id for an id or a reference, on an open intake channel.
async fn resolve(intake: &mut Intake, text: &str) -> anyhow::Result<String> {
    match CaseKey::parse(text)? {
        CaseKey::Id(id) => Ok(id),
        key => Ok(client::get_case(intake, &key).await?.id),
    }
}

async fn register(intake: &mut Intake, args: RegisterArgs, out: Out) -> anyhow::Result<()> {
    let key = args.key.unwrap_or_else(|| Uuid::now_v7().to_string());
    let req = pb::RegisterCaseRequest {
        idempotency_key: key.clone(),
        company: Some(pb::Company {
            org_nr: args.org_nr,
            name: args.company,
            contact: Some(pb::Contact { name: args.contact_name, phone: args.phone, email: args.email }),
        }),
        case_type: args.case_type,
        description: args.description,
        channel: pb::Channel::from(args.channel) as i32,
    };
    let case = intake.register_case(req).await.context("register the case")?.into_inner();
    if out.json {
        return out.json_line(&CaseView::new(&case, Some(key)));
    }
    out.text(&format!("registered {} (idempotency key {key}; repeat it to retry safely)\n", case.reference));
    out.text(&case_details(&case));
    Ok(())
}

async fn list(intake: &mut Intake, args: ListCasesArgs, out: Out) -> anyhow::Result<()> {
    let limit = args.limit as usize;
    let mut cases = Vec::new();
    let mut page_token = String::new();
    loop {
        let want = (limit - cases.len()).min(500) as u32;
        let req = pb::ListCasesRequest {
            status: args.status.map_or(0, |s| pb::CaseStatus::from(s) as i32),
            org_nr: args.org_nr.clone().unwrap_or_default(),
            case_type: args.case_type.clone().unwrap_or_default(),
            page_size: want,
            page_token,
        };
        let page = intake.list_cases(req).await.context("list cases")?.into_inner();
        cases.extend(page.cases);
        if page.next_page_token.is_empty() || cases.len() >= limit {
            break;
        }
        page_token = page.next_page_token;
    }
    cases.truncate(limit);
    if out.json {
        for case in &cases {
            out.json_line(&CaseView::new(case, None))?;
        }
        return Ok(());
    }
    if cases.is_empty() {
        out.text("no cases\n");
        return Ok(());
    }
    out.text(&case_table(&cases));
    Ok(())
}

fn print_case(out: Out, case: &pb::Case, key: Option<String>) -> anyhow::Result<()> {
    if out.json {
        return out.json_line(&CaseView::new(case, key));
    }
    out.text(&case_details(case));
    Ok(())
}

fn print_change(out: Out, case: &pb::Case, note: Option<&str>) -> anyhow::Result<()> {
    if out.json {
        return out.json_line(&CaseView::new(case, None));
    }
    out.text(&change_line(case));
    if let Some(note) = note {
        out.text(&format!("  {note}\n"));
    }
    Ok(())
}

/// The case status as a word, e.g. "waiting_for_company".
pub fn status_word(status: i32) -> String {
    pb::CaseStatus::try_from(status)
        .map(|s| enum_word(s.as_str_name(), "CASE_STATUS_"))
        .unwrap_or_else(|_| format!("unknown({status})"))
}

/// The channel as a word, e.g. "e_service".
pub fn channel_word(channel: i32) -> String {
    pb::Channel::try_from(channel)
        .map(|c| enum_word(c.as_str_name(), "CHANNEL_"))
        .unwrap_or_else(|_| format!("unknown({channel})"))
}

fn outcome_word(outcome: i32) -> Option<String> {
    match pb::Outcome::try_from(outcome) {
        Ok(pb::Outcome::Unspecified) => None,
        Ok(o) => Some(enum_word(o.as_str_name(), "OUTCOME_")),
        Err(_) => Some(format!("unknown({outcome})")),
    }
}

/// One line after a change: the reference and where the case is now.
pub fn change_line(case: &pb::Case) -> String {
    let mut line = format!("{} is now {}", case.reference, status_word(case.status));
    if !case.waiting_reason.is_empty() {
        let _ = write!(line, ": waiting for {}", case.waiting_reason);
    }
    if let Some(outcome) = outcome_word(case.outcome) {
        let _ = write!(line, " ({outcome})");
    }
    line.push('\n');
    line
}

/// Every field of a case, one per line.
pub fn case_details(case: &pb::Case) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("reference", case.reference.clone()),
        ("id", case.id.clone()),
        ("status", status_word(case.status)),
        ("type", case.case_type.clone()),
    ];
    if let Some(company) = &case.company {
        let form = if case.legal_form.is_empty() { String::new() } else { format!(", {}", case.legal_form) };
        rows.push(("company", format!("{} ({}{form})", company.name, company.org_nr)));
        if let Some(c) = &company.contact {
            let parts: Vec<&str> =
                [c.name.as_str(), c.phone.as_str(), c.email.as_str()].into_iter().filter(|p| !p.is_empty()).collect();
            rows.push(("contact", parts.join(", ")));
        }
    }
    rows.push(("channel", channel_word(case.channel)));
    let by = if case.registered_by.is_empty() { String::new() } else { format!(" by {}", case.registered_by) };
    rows.push(("registered", format!("{}{by}", local(case.registered_at.as_ref()))));
    rows.push(("updated", local(case.updated_at.as_ref())));
    if !case.waiting_reason.is_empty() {
        rows.push(("waiting for", case.waiting_reason.clone()));
    }
    if case.application_complete_at.is_some() {
        rows.push(("complete", local(case.application_complete_at.as_ref())));
    }
    if case.deadline_extended_at.is_some() {
        rows.push(("extended", local(case.deadline_extended_at.as_ref())));
    }
    if let Some(outcome) = outcome_word(case.outcome) {
        rows.push(("outcome", outcome));
    }
    if !case.decision.is_empty() {
        rows.push(("decision", case.decision.clone()));
    }
    if !case.description.is_empty() {
        rows.push(("description", case.description.clone()));
    }
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "  {label:<12} {value}");
    }
    text
}

/// Cases as a table.
pub fn case_table(cases: &[pb::Case]) -> String {
    let mut table = Table::new(&["REFERENCE", "STATUS", "TYPE", "COMPANY", "ORG NR", "REGISTERED"]);
    for c in cases {
        let (name, org_nr) = c.company.as_ref().map(|co| (co.name.clone(), co.org_nr.clone())).unwrap_or_default();
        table.row(vec![
            c.reference.clone(),
            status_word(c.status),
            c.case_type.clone(),
            name,
            org_nr,
            local(c.registered_at.as_ref()),
        ]);
    }
    table.render()
}

/// A case for `--json`.
#[derive(Debug, Serialize)]
pub struct CaseView {
    pub id: String,
    pub reference: String,
    pub tenant: String,
    pub status: String,
    pub case_type: String,
    pub company: Option<CompanyView>,
    pub description: String,
    pub channel: String,
    pub registered_at: Option<String>,
    pub updated_at: Option<String>,
    pub registered_by: String,
    pub waiting_reason: Option<String>,
    pub outcome: Option<String>,
    pub decision: Option<String>,
    pub application_complete_at: Option<String>,
    pub deadline_extended_at: Option<String>,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A company for `--json`.
#[derive(Debug, Serialize)]
pub struct CompanyView {
    pub org_nr: String,
    pub name: String,
    pub legal_form: String,
    pub contact_name: String,
    pub phone: String,
    pub email: String,
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.to_owned()).filter(|s| !s.is_empty())
}

impl CaseView {
    /// The JSON form of `case`, with the idempotency key when this command chose it.
    pub fn new(case: &pb::Case, idempotency_key: Option<String>) -> CaseView {
        CaseView {
            id: case.id.clone(),
            reference: case.reference.clone(),
            tenant: case.tenant.clone(),
            status: status_word(case.status),
            case_type: case.case_type.clone(),
            company: case.company.as_ref().map(|c| {
                let contact = c.contact.clone().unwrap_or_default();
                CompanyView {
                    org_nr: c.org_nr.clone(),
                    name: c.name.clone(),
                    legal_form: case.legal_form.clone(),
                    contact_name: contact.name,
                    phone: contact.phone,
                    email: contact.email,
                }
            }),
            description: case.description.clone(),
            channel: channel_word(case.channel),
            registered_at: rfc3339(case.registered_at.as_ref()),
            updated_at: rfc3339(case.updated_at.as_ref()),
            registered_by: case.registered_by.clone(),
            waiting_reason: non_empty(&case.waiting_reason),
            outcome: outcome_word(case.outcome),
            decision: non_empty(&case.decision),
            application_complete_at: rfc3339(case.application_complete_at.as_ref()),
            deadline_extended_at: rfc3339(case.deadline_extended_at.as_ref()),
            version: case.version,
            idempotency_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_case() -> pb::Case {
        pb::Case {
            id: "0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d".into(),
            reference: "NKP-2026-000042".into(),
            tenant: "0581".into(),
            company: Some(pb::Company {
                org_nr: "556036-0793".into(),
                name: "Knäppingsborgs Krog AB".into(),
                contact: Some(pb::Contact {
                    name: "Sara Holm".into(),
                    phone: "070-123 45 67".into(),
                    email: "sara@example.se".into(),
                }),
            }),
            case_type: "restaurang_start".into(),
            channel: pb::Channel::Phone as i32,
            status: pb::CaseStatus::WaitingForCompany as i32,
            registered_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            legal_form: "aktiebolag".into(),
            waiting_reason: "ritningar".into(),
            registered_by: "reception".into(),
            version: 2,
            ..Default::default()
        }
    }

    #[test]
    fn a_change_says_where_the_case_is_now() {
        assert_eq!(change_line(&sample_case()), "NKP-2026-000042 is now waiting_for_company: waiting for ritningar\n");
    }

    #[test]
    fn details_show_company_contact_and_local_times() {
        let text = case_details(&sample_case());
        assert!(text.contains("  company      Knäppingsborgs Krog AB (556036-0793, aktiebolag)\n"));
        assert!(text.contains("  contact      Sara Holm, 070-123 45 67, sara@example.se\n"));
        assert!(text.contains("  registered   2026-11-24 07:00 by reception\n"));
        assert!(!text.contains("outcome"));
    }

    #[test]
    fn the_table_has_one_row_per_case() {
        let text = case_table(&[sample_case()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("REFERENCE        STATUS"));
        assert!(lines[1].starts_with("NKP-2026-000042  waiting_for_company  restaurang_start"));
    }

    #[test]
    fn json_uses_words_and_rfc3339() {
        let v = serde_json::to_value(CaseView::new(&sample_case(), Some("k1".into()))).unwrap();
        assert_eq!(v["status"], "waiting_for_company");
        assert_eq!(v["channel"], "phone");
        assert_eq!(v["registered_at"], "2026-11-24T06:00:00Z");
        assert_eq!(v["company"]["org_nr"], "556036-0793");
        assert_eq!(v["idempotency_key"], "k1");
        assert!(v["outcome"].is_null());
        let v = serde_json::to_value(CaseView::new(&sample_case(), None)).unwrap();
        assert!(v.get("idempotency_key").is_none());
    }
}
