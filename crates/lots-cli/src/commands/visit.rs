//! `lots visit …`: company visits (företagsbesök), their follow-ups and the yearly target of
//! lotsande besök (intake's VisitService).

use std::fmt::Write as _;

use anyhow::Context as _;
use chrono::NaiveDate;
use lots_proto::v1 as pb;
use serde::Serialize;

use crate::args::{FollowUpCommand, Global, ListVisitsArgs, RegisterVisitArgs, VisitCommand};
use crate::client::{self, RecordKey, Register, new_idempotency_key};
use crate::output::{Out, Table, enum_word, local, rfc3339};

type Visits = client::Visits;

const PARTICIPANT_FORM: &str = "write NAME:ROLE, e.g. \"Sara Holm:VD\"";
const FOLLOW_UP_FORM: &str = "write OWNER:YYYY-MM-DD:WHAT, e.g. \"erik.sandberg:2026-12-01:send the checklist\"";

/// Someone from the company at the visit, from `--company-participant "Name:Role"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyParticipant {
    pub name: String,
    pub role: String,
}

/// A follow-up to register with the visit, from `--follow-up "OWNER:YYYY-MM-DD:what to do"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpSpec {
    pub owner: String,
    pub due: NaiveDate,
    pub what: String,
}

impl FollowUpSpec {
    fn into_proto(self) -> pb::NewFollowUp {
        pb::NewFollowUp { what: self.what, owner: self.owner, due_date: self.due.to_string() }
    }
}

/// Reads a date "YYYY-MM-DD" (clap names the flag in its error).
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("{text:?} is not a date like 2026-12-01"))
}

/// Reads "Name:Role"; both parts are required.
pub fn parse_participant(text: &str) -> Result<CompanyParticipant, String> {
    let Some((name, role)) = text.split_once(':') else {
        return Err(format!("{text:?} has no role; {PARTICIPANT_FORM}"));
    };
    let (name, role) = (name.trim(), role.trim());
    if name.is_empty() {
        return Err(format!("{text:?} has no name; {PARTICIPANT_FORM}"));
    }
    if role.is_empty() {
        return Err(format!("{text:?} has no role; {PARTICIPANT_FORM}"));
    }
    Ok(CompanyParticipant { name: name.to_owned(), role: role.to_owned() })
}

/// Reads "OWNER:YYYY-MM-DD:what to do"; what is done may itself hold colons.
pub fn parse_follow_up(text: &str) -> Result<FollowUpSpec, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(owner), Some(due), Some(what)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{text:?} is not OWNER:YYYY-MM-DD:WHAT; {FOLLOW_UP_FORM}"));
    };
    let (owner, what) = (owner.trim(), what.trim());
    if owner.is_empty() {
        return Err(format!("{text:?} names no owner; {FOLLOW_UP_FORM}"));
    }
    let due = parse_date(due).map_err(|e| format!("{e}; {FOLLOW_UP_FORM}"))?;
    if what.is_empty() {
        return Err(format!("{text:?} says nothing to do; {FOLLOW_UP_FORM}"));
    }
    Ok(FollowUpSpec { owner: owner.to_owned(), due, what: what.to_owned() })
}

/// Runs one `lots visit` command.
pub async fn run(global: &Global, command: VisitCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    // Parse the visit argument before connecting, so a typo is a usage error even offline.
    if let Some(text) = visit_argument(&command) {
        RecordKey::parse(text, Register::Visits)?;
    }
    let mut visits = client::visits(global).await?;
    match command {
        VisitCommand::Register(args) => register(&mut visits, args, out).await,
        VisitCommand::List(args) => list(&mut visits, args, out).await,
        VisitCommand::Show { visit } => {
            let visit = get(&mut visits, &RecordKey::parse(&visit, Register::Visits)?).await?;
            if out.json {
                return out.json_line(&VisitView::new(&visit, None));
            }
            out.text(&visit_details(&visit, today()));
            Ok(())
        }
        VisitCommand::FollowUp(FollowUpCommand::Add { visit, owner, due, what }) => {
            let visit_id = resolve(&mut visits, &visit).await?;
            let follow_up = FollowUpSpec { owner, due, what }.into_proto();
            let req =
                pb::AddFollowUpRequest { visit_id, follow_up: Some(follow_up), idempotency_key: new_idempotency_key() };
            let visit = visits.add_follow_up(req).await.context("add the follow-up")?.into_inner();
            if out.json {
                return out.json_line(&VisitView::new(&visit, None));
            }
            out.text(&added_line(&visit));
            Ok(())
        }
        VisitCommand::FollowUp(FollowUpCommand::Done { visit, number, note }) => {
            let visit_id = resolve(&mut visits, &visit).await?;
            let req = pb::CompleteFollowUpRequest { visit_id, number, note, idempotency_key: new_idempotency_key() };
            let visit = visits.complete_follow_up(req).await.context("complete the follow-up")?.into_inner();
            if out.json {
                return out.json_line(&VisitView::new(&visit, None));
            }
            out.text(&done_line(&visit, number));
            Ok(())
        }
        VisitCommand::Progress { year } => {
            let req = pb::GetVisitProgressRequest { year: year.unwrap_or(0) };
            let progress = visits.get_visit_progress(req).await.context("get the visit progress")?.into_inner();
            if out.json {
                return out.json_line(&ProgressView::new(&progress));
            }
            out.text(&progress_text(&progress));
            Ok(())
        }
    }
}

fn visit_argument(command: &VisitCommand) -> Option<&str> {
    match command {
        VisitCommand::Register(_) | VisitCommand::List(_) | VisitCommand::Progress { .. } => None,
        VisitCommand::Show { visit }
        | VisitCommand::FollowUp(FollowUpCommand::Add { visit, .. })
        | VisitCommand::FollowUp(FollowUpCommand::Done { visit, .. }) => Some(visit),
    }
}

/// Today in Sweden, for telling overdue follow-ups.
fn today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&lots_domain::calendar::TZ).date_naive()
}

/// Fetches a visit by id or reference.
async fn get(visits: &mut Visits, key: &RecordKey) -> anyhow::Result<pb::Visit> {
    let lookup = match key {
        RecordKey::Id(id) => pb::get_visit_request::Lookup::Id(id.clone()),
        RecordKey::Reference(r) => pb::get_visit_request::Lookup::Reference(r.clone()),
    };
    let req = pb::GetVisitRequest { lookup: Some(lookup) };
    Ok(visits.get_visit(req).await.context("look up the visit")?.into_inner())
}

/// The visit id for an id or a reference.
async fn resolve(visits: &mut Visits, text: &str) -> anyhow::Result<String> {
    match RecordKey::parse(text, Register::Visits)? {
        RecordKey::Id(id) => Ok(id),
        key => Ok(get(visits, &key).await?.id),
    }
}

async fn register(visits: &mut Visits, args: RegisterVisitArgs, out: Out) -> anyhow::Result<()> {
    let key = args.idempotency_key.unwrap_or_else(new_idempotency_key);
    let consent = args.story_consent;
    let req = pb::RegisterVisitRequest {
        idempotency_key: key.clone(),
        org_nr: args.org_nr,
        company_name: args.company_name,
        date: args.date.to_string(),
        kind: pb::VisitKind::from(args.kind) as i32,
        participants: args.participants,
        company_participants: args
            .company_participants
            .into_iter()
            .map(|p| pb::Participant { name: p.name, role: p.role })
            .collect(),
        topics: args.topics,
        notes: args.notes,
        follow_ups: args.follow_ups.into_iter().map(FollowUpSpec::into_proto).collect(),
        story: args.story.map(|text| pb::CompanyStory { text, consent_to_publish: consent }),
    };
    let visit = visits.register_visit(req).await.context("register the visit")?.into_inner();
    if out.json {
        return out.json_line(&VisitView::new(&visit, Some(key)));
    }
    out.text(&format!("registered {} (idempotency key {key}; repeat it to retry safely)\n", visit.reference));
    out.text(&visit_details(&visit, today()));
    Ok(())
}

async fn list(visits: &mut Visits, args: ListVisitsArgs, out: Out) -> anyhow::Result<()> {
    let limit = args.limit as usize;
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let want = (limit - found.len()).min(500) as u32;
        let req = pb::ListVisitsRequest {
            year: args.year.unwrap_or(0),
            kind: args.kind.map_or(0, |k| pb::VisitKind::from(k) as i32),
            follow_up_owner: args.follow_up_owner.clone().unwrap_or_default(),
            page_size: want,
            page_token,
        };
        let page = visits.list_visits(req).await.context("list visits")?.into_inner();
        found.extend(page.visits);
        if page.next_page_token.is_empty() || found.len() >= limit {
            break;
        }
        page_token = page.next_page_token;
    }
    found.truncate(limit);
    if out.json {
        for visit in &found {
            out.json_line(&VisitView::new(visit, None))?;
        }
        return Ok(());
    }
    if found.is_empty() {
        out.text("no visits\n");
        return Ok(());
    }
    out.text(&visit_table(&found));
    Ok(())
}

/// The visit kind as a word, e.g. "lotsande".
pub fn kind_word(kind: i32) -> String {
    pb::VisitKind::try_from(kind)
        .map(|k| enum_word(k.as_str_name(), "VISIT_KIND_"))
        .unwrap_or_else(|_| format!("unknown({kind})"))
}

fn open_count(visit: &pb::Visit) -> usize {
    visit.follow_ups.iter().filter(|f| !f.done).count()
}

/// After `follow-up add`: the new item (the highest number) and how many are open.
pub fn added_line(visit: &pb::Visit) -> String {
    let open = open_count(visit);
    match visit.follow_ups.iter().max_by_key(|f| f.number) {
        Some(f) => format!(
            "{}: follow-up {} added for {}, due {} ({open} open)\n",
            visit.reference, f.number, f.owner, f.due_date
        ),
        None => format!("{}: no follow-ups\n", visit.reference),
    }
}

/// After `follow-up done`: the item and how many are still open.
pub fn done_line(visit: &pb::Visit, number: u32) -> String {
    let open = open_count(visit);
    format!("{}: follow-up {number} done ({open} open)\n", visit.reference)
}

/// Whether a follow-up is done, or overdue on `today`: "2026-11-19 14:02", "no", "overdue".
fn done_text(f: &pb::FollowUp, today: NaiveDate) -> String {
    if f.done {
        let at = local(f.done_at.as_ref());
        return if at.is_empty() { "yes".into() } else { at };
    }
    match parse_date(&f.due_date) {
        Ok(due) if due < today => "overdue".into(),
        _ => "no".into(),
    }
}

/// Every field of a visit, one per line, then its follow-ups as a table.
pub fn visit_details(v: &pb::Visit, today: NaiveDate) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("reference", v.reference.clone()),
        ("id", v.id.clone()),
        ("date", v.date.clone()),
        ("kind", kind_word(v.kind)),
        ("company", format!("{} ({})", v.company_name, v.org_nr)),
        ("participants", v.participants.join(", ")),
    ];
    if !v.company_participants.is_empty() {
        let people: Vec<String> = v
            .company_participants
            .iter()
            .map(|p| if p.role.is_empty() { p.name.clone() } else { format!("{} ({})", p.name, p.role) })
            .collect();
        rows.push(("from company", people.join(", ")));
    }
    if !v.topics.is_empty() {
        rows.push(("topics", v.topics.join(", ")));
    }
    if !v.notes.is_empty() {
        rows.push(("notes", v.notes.clone()));
    }
    if let Some(story) = v.story.as_ref().filter(|s| !s.text.is_empty()) {
        let consent = if story.consent_to_publish { "may be published" } else { "not for publication" };
        rows.push(("story", format!("{} ({consent})", story.text)));
    }
    let by = if v.registered_by.is_empty() { String::new() } else { format!(" by {}", v.registered_by) };
    rows.push(("registered", format!("{}{by}", local(v.registered_at.as_ref()))));
    let open = open_count(v);
    rows.push(("follow-ups", format!("{open} open, {} done", v.follow_ups.len() - open)));
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "  {label:<12} {value}");
    }
    if !v.follow_ups.is_empty() {
        text.push('\n');
        text.push_str(&follow_up_table(&v.follow_ups, today));
    }
    text
}

/// A visit's follow-ups as a table, by number.
pub fn follow_up_table(follow_ups: &[pb::FollowUp], today: NaiveDate) -> String {
    let mut sorted: Vec<&pb::FollowUp> = follow_ups.iter().collect();
    sorted.sort_by_key(|f| f.number);
    let mut table = Table::new(&["#", "OWNER", "DUE", "DONE", "WHAT", "NOTE"]);
    for f in sorted {
        table.row(vec![
            f.number.to_string(),
            f.owner.clone(),
            f.due_date.clone(),
            done_text(f, today),
            f.what.clone(),
            f.done_note.clone(),
        ]);
    }
    table.render()
}

/// Visits as a table.
pub fn visit_table(visits: &[pb::Visit]) -> String {
    let mut table = Table::new(&["REFERENCE", "DATE", "KIND", "COMPANY", "ORG NR", "FOLLOW-UPS"]);
    for v in visits {
        let follow_ups = if v.follow_ups.is_empty() {
            String::new()
        } else {
            format!("{} of {} open", open_count(v), v.follow_ups.len())
        };
        table.row(vec![
            v.reference.clone(),
            v.date.clone(),
            kind_word(v.kind),
            v.company_name.clone(),
            v.org_nr.clone(),
            follow_ups,
        ]);
    }
    table.render()
}

/// The year's progress for people.
pub fn progress_text(p: &pb::VisitProgress) -> String {
    let mut rows: Vec<(&str, String)> = vec![("year", p.year.to_string())];
    if p.target == 0 {
        rows.push(("target", "none set".into()));
        rows.push(("lotsande", p.lotsande_visits.to_string()));
    } else {
        rows.push(("target", format!("{} lotsande besök", p.target)));
        rows.push(("lotsande", format!("{} ({}% of target)", p.lotsande_visits, p.percent_of_target)));
        rows.push(("expected", format!("{} by today", p.expected_by_today)));
    }
    rows.push(("other", p.other_visits.to_string()));
    rows.push((
        "follow-ups",
        format!("{} open, {} done, {} overdue", p.follow_ups_open, p.follow_ups_done, p.follow_ups_overdue),
    ));
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "  {label:<12} {value}");
    }
    text
}

/// A visit for `--json`.
#[derive(Debug, Serialize)]
pub struct VisitView {
    pub id: String,
    pub reference: String,
    pub tenant: String,
    pub org_nr: String,
    pub company_name: String,
    pub date: String,
    pub kind: String,
    pub participants: Vec<String>,
    pub company_participants: Vec<ParticipantView>,
    pub topics: Vec<String>,
    pub notes: Option<String>,
    pub follow_ups: Vec<FollowUpView>,
    pub story: Option<StoryView>,
    pub registered_at: Option<String>,
    pub registered_by: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Someone from the company, for `--json`.
#[derive(Debug, Serialize)]
pub struct ParticipantView {
    pub name: String,
    pub role: String,
}

/// A follow-up for `--json`.
#[derive(Debug, Serialize)]
pub struct FollowUpView {
    pub id: String,
    pub number: u32,
    pub what: String,
    pub owner: String,
    pub owner_unit: Option<String>,
    pub due_date: String,
    pub done: bool,
    pub done_at: Option<String>,
    pub done_note: Option<String>,
}

/// The company's story for `--json`.
#[derive(Debug, Serialize)]
pub struct StoryView {
    pub text: String,
    pub consent_to_publish: bool,
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.to_owned()).filter(|s| !s.is_empty())
}

impl VisitView {
    /// The JSON form of `v`, with the idempotency key when this command chose it.
    pub fn new(v: &pb::Visit, idempotency_key: Option<String>) -> VisitView {
        VisitView {
            id: v.id.clone(),
            reference: v.reference.clone(),
            tenant: v.tenant.clone(),
            org_nr: v.org_nr.clone(),
            company_name: v.company_name.clone(),
            date: v.date.clone(),
            kind: kind_word(v.kind),
            participants: v.participants.clone(),
            company_participants: v
                .company_participants
                .iter()
                .map(|p| ParticipantView { name: p.name.clone(), role: p.role.clone() })
                .collect(),
            topics: v.topics.clone(),
            notes: non_empty(&v.notes),
            follow_ups: v
                .follow_ups
                .iter()
                .map(|f| FollowUpView {
                    id: f.id.clone(),
                    number: f.number,
                    what: f.what.clone(),
                    owner: f.owner.clone(),
                    owner_unit: non_empty(&f.owner_unit),
                    due_date: f.due_date.clone(),
                    done: f.done,
                    done_at: rfc3339(f.done_at.as_ref()),
                    done_note: non_empty(&f.done_note),
                })
                .collect(),
            story: v
                .story
                .as_ref()
                .filter(|s| !s.text.is_empty())
                .map(|s| StoryView { text: s.text.clone(), consent_to_publish: s.consent_to_publish }),
            registered_at: rfc3339(v.registered_at.as_ref()),
            registered_by: v.registered_by.clone(),
            version: v.version,
            idempotency_key,
        }
    }
}

/// Visit progress for `--json`.
#[derive(Debug, Serialize)]
pub struct ProgressView {
    pub year: i32,
    pub target: u32,
    pub lotsande_visits: u32,
    pub other_visits: u32,
    pub percent_of_target: u32,
    pub expected_by_today: u32,
    pub follow_ups_open: u32,
    pub follow_ups_done: u32,
    pub follow_ups_overdue: u32,
}

impl ProgressView {
    /// The JSON form of `p`.
    pub fn new(p: &pb::VisitProgress) -> ProgressView {
        ProgressView {
            year: p.year,
            target: p.target,
            lotsande_visits: p.lotsande_visits,
            other_visits: p.other_visits,
            percent_of_target: p.percent_of_target,
            expected_by_today: p.expected_by_today,
            follow_ups_open: p.follow_ups_open,
            follow_ups_done: p.follow_ups_done,
            follow_ups_overdue: p.follow_ups_overdue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn sample_visit() -> pb::Visit {
        pb::Visit {
            id: "0193a9c4-1f1e-7c3a-9d2b-5e6f7a8b9c0d".into(),
            reference: "NKP-B-2026-000012".into(),
            tenant: "0581".into(),
            org_nr: "556036-0793".into(),
            company_name: "Knäppingsborgs Krog AB".into(),
            date: "2026-11-20".into(),
            kind: pb::VisitKind::Lotsande as i32,
            participants: vec!["erik.sandberg".into(), "anna.berg".into()],
            company_participants: vec![pb::Participant { name: "Sara Holm".into(), role: "VD".into() }],
            topics: vec!["serveringstillstand".into()],
            follow_ups: vec![
                pb::FollowUp {
                    id: "f2".into(),
                    number: 2,
                    what: "Boka tillsyn".into(),
                    owner: "anna.berg".into(),
                    due_date: "2026-11-21".into(),
                    done: true,
                    done_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
                    done_note: "bokad 3/12".into(),
                    ..Default::default()
                },
                pb::FollowUp {
                    id: "f1".into(),
                    number: 1,
                    what: "Skicka checklistan".into(),
                    owner: "erik.sandberg".into(),
                    due_date: "2026-11-23".into(),
                    ..Default::default()
                },
            ],
            story: Some(pb::CompanyStory { text: "Allt gick fort".into(), consent_to_publish: true }),
            registered_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            registered_by: "erik.sandberg".into(),
            version: 3,
            ..Default::default()
        }
    }

    #[test]
    fn a_follow_up_reads_owner_date_and_what_which_may_hold_colons() {
        assert_eq!(
            parse_follow_up("erik.sandberg:2026-12-01:ring Sara kl. 10:30").unwrap(),
            FollowUpSpec { owner: "erik.sandberg".into(), due: day("2026-12-01"), what: "ring Sara kl. 10:30".into() }
        );
        assert_eq!(parse_follow_up(" anna : 2026-12-01 : boka ").unwrap().owner, "anna");
    }

    #[test]
    fn a_bad_follow_up_says_what_is_wrong_and_how_to_write_it() {
        let err = parse_follow_up("erik:2026-12-01").unwrap_err();
        assert!(err.contains("is not OWNER:YYYY-MM-DD:WHAT") && err.contains("e.g."), "{err}");
        let err = parse_follow_up(":2026-12-01:boka").unwrap_err();
        assert!(err.contains("no owner"), "{err}");
        let err = parse_follow_up("erik:1 december:boka").unwrap_err();
        assert!(err.contains("\"1 december\" is not a date"), "{err}");
        assert!(parse_follow_up("erik:2026-02-30:boka").is_err());
        let err = parse_follow_up("erik:2026-12-01:  ").unwrap_err();
        assert!(err.contains("nothing to do"), "{err}");
    }

    #[test]
    fn a_company_participant_needs_a_name_and_a_role() {
        assert_eq!(
            parse_participant("Sara Holm: VD").unwrap(),
            CompanyParticipant { name: "Sara Holm".into(), role: "VD".into() }
        );
        assert!(parse_participant("Sara Holm").unwrap_err().contains("no role"));
        assert!(parse_participant(":VD").unwrap_err().contains("no name"));
        assert!(parse_participant("Sara Holm:").unwrap_err().contains("no role"));
    }

    #[test]
    fn dates_are_iso_days() {
        assert_eq!(day(" 2026-12-01 ").to_string(), "2026-12-01");
        assert!(parse_date("2026/12/01").unwrap_err().contains("not a date like 2026-12-01"));
    }

    #[test]
    fn details_list_follow_ups_by_number_with_done_and_overdue() {
        let text = visit_details(&sample_visit(), day("2026-11-24"));
        assert!(text.contains("  kind         lotsande\n"), "{text}");
        assert!(text.contains("  participants erik.sandberg, anna.berg\n"), "{text}");
        assert!(text.contains("  from company Sara Holm (VD)\n"), "{text}");
        assert!(text.contains("  story        Allt gick fort (may be published)\n"), "{text}");
        assert!(text.contains("  follow-ups   1 open, 1 done\n"), "{text}");
        let table: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("#  OWNER")).collect();
        assert_eq!(table.len(), 3, "{text}");
        assert!(table[1].starts_with("1  erik.sandberg  2026-11-23  overdue"), "{text}");
        assert!(table[2].starts_with("2  anna.berg      2026-11-21  2026-11-24 07:00  Boka tillsyn"), "{text}");
        let early = visit_details(&sample_visit(), day("2026-11-23"));
        assert!(early.contains("1  erik.sandberg  2026-11-23  no "), "{early}");
    }

    #[test]
    fn follow_up_changes_say_which_item_and_how_many_are_open() {
        assert_eq!(
            added_line(&sample_visit()),
            "NKP-B-2026-000012: follow-up 2 added for anna.berg, due 2026-11-21 (1 open)\n"
        );
        assert_eq!(done_line(&sample_visit(), 2), "NKP-B-2026-000012: follow-up 2 done (1 open)\n");
    }

    #[test]
    fn the_table_has_one_row_per_visit() {
        let text = visit_table(&[sample_visit()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1],
            "NKP-B-2026-000012  2026-11-20  lotsande  Knäppingsborgs Krog AB  556036-0793  1 of 2 open"
        );
    }

    #[test]
    fn progress_shows_the_target_only_when_there_is_one() {
        let p = pb::VisitProgress {
            year: 2026,
            target: 40,
            lotsande_visits: 12,
            other_visits: 5,
            percent_of_target: 30,
            expected_by_today: 36,
            follow_ups_open: 4,
            follow_ups_done: 10,
            follow_ups_overdue: 1,
        };
        let text = progress_text(&p);
        assert!(text.contains("  lotsande     12 (30% of target)\n"), "{text}");
        assert!(text.contains("  expected     36 by today\n"), "{text}");
        assert!(text.contains("  follow-ups   4 open, 10 done, 1 overdue\n"), "{text}");
        let none = progress_text(&pb::VisitProgress { target: 0, ..p });
        assert!(none.contains("  target       none set\n") && !none.contains("expected"), "{none}");
        let v = serde_json::to_value(ProgressView::new(&p)).unwrap();
        assert_eq!(v["percent_of_target"], 30);
    }

    #[test]
    fn json_has_follow_ups_and_the_story() {
        let v = serde_json::to_value(VisitView::new(&sample_visit(), Some("k1".into()))).unwrap();
        assert_eq!(v["kind"], "lotsande");
        assert_eq!(v["follow_ups"][0]["number"], 2);
        assert_eq!(v["follow_ups"][0]["done_at"], "2026-11-24T06:00:00Z");
        assert!(v["follow_ups"][1]["done_at"].is_null());
        assert_eq!(v["story"]["consent_to_publish"], true);
        assert_eq!(v["company_participants"][0]["role"], "VD");
        assert_eq!(v["idempotency_key"], "k1");
        assert!(v["notes"].is_null());
    }
}
