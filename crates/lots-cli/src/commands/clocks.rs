//! `lots clocks`: every servicegaranti commitment of a case, with due time and time left.

use std::fmt::Write as _;

use anyhow::Context as _;
use lots_proto::v1 as pb;
use serde::Serialize;

use crate::args::Global;
use crate::client::{self, CaseKey};
use crate::output::{Out, Table, enum_word, local, rfc3339, span};

/// Runs `lots clocks <case>`.
pub async fn run(global: &Global, case: &str) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    // A complaint's reference (NKP-K-2026-000007) names its clocks too.
    let complaint = lots_domain::SeriesReference::parse(&case.trim().to_ascii_uppercase())
        .filter(|r| r.series == lots_domain::complaint::COMPLAINTS);
    let lookup = match (complaint, CaseKey::parse(case)) {
        (Some(r), _) => pb::get_case_clocks_request::Lookup::Reference(r.to_string()),
        (None, key) => match key? {
            CaseKey::Id(id) => pb::get_case_clocks_request::Lookup::CaseId(id),
            CaseKey::Reference(r) => pb::get_case_clocks_request::Lookup::Reference(r),
        },
    };
    let mut sla = client::alerts(global).await?;
    let req = pb::GetCaseClocksRequest { lookup: Some(lookup) };
    let clocks = sla.get_case_clocks(req).await.context("get the case's clocks")?.into_inner();
    if out.json {
        return out.json_line(&ClocksView::new(&clocks));
    }
    out.text(&clocks_text(&clocks));
    Ok(())
}

/// The clock state as a word, e.g. "running".
pub fn state_word(state: i32) -> String {
    pb::ClockState::try_from(state)
        .map(|s| enum_word(s.as_str_name(), "CLOCK_STATE_"))
        .unwrap_or_else(|_| format!("unknown({state})"))
}

/// Time left as people say it: "3h 20m working", "overdue 1h working", or empty when the
/// clock is not counting.
pub fn time_left(c: &pb::Clock) -> String {
    let counting = matches!(
        pb::ClockState::try_from(c.state),
        Ok(pb::ClockState::Running | pb::ClockState::Paused | pb::ClockState::Breached)
    );
    if !counting || c.due_at.is_none() {
        return String::new();
    }
    let basis = if c.time_basis.is_empty() { "working" } else { c.time_basis.as_str() };
    let days = basis == "calendar";
    if c.minutes_left < 0 {
        format!("overdue {} {basis}", span(c.minutes_left, days))
    } else {
        format!("{} {basis}", span(c.minutes_left, days))
    }
}

/// A case's clocks for people.
pub fn clocks_text(cc: &pb::CaseClocks) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{} ({}), case {}", cc.case_reference, cc.case_type, cc.case_id);
    if cc.clocks.is_empty() {
        text.push_str("no servicegaranti commitments apply\n");
        return text;
    }
    let mut table = Table::new(&["COMMITMENT", "STATE", "DUE", "LEFT", "PAUSED", "NOTE"]);
    for c in &cc.clocks {
        let mut notes = Vec::new();
        if c.extended {
            notes.push("extended".to_owned());
        }
        if c.fee_reduction_percent > 0 {
            notes.push(format!("fee reduced {} %", c.fee_reduction_percent));
        }
        if c.stopped_at.is_some() {
            notes.push(format!("stopped {}", local(c.stopped_at.as_ref())));
        }
        let paused =
            if c.paused_minutes > 0 { span(c.paused_minutes, c.time_basis == "calendar") } else { String::new() };
        let name = if c.name.is_empty() { c.commitment.clone() } else { c.name.clone() };
        table.row(vec![name, state_word(c.state), local(c.due_at.as_ref()), time_left(c), paused, notes.join(", ")]);
    }
    text.push_str(&table.render());
    text
}

/// A case's clocks for `--json`.
#[derive(Debug, Serialize)]
pub struct ClocksView {
    pub case_id: String,
    pub case_reference: String,
    pub tenant: String,
    pub case_type: String,
    pub clocks: Vec<ClockView>,
}

/// One clock for `--json`.
#[derive(Debug, Serialize)]
pub struct ClockView {
    pub commitment: String,
    pub name: String,
    pub state: String,
    pub started_at: Option<String>,
    pub due_at: Option<String>,
    pub stopped_at: Option<String>,
    pub paused_minutes: i64,
    pub minutes_left: i64,
    pub time_basis: String,
    pub extended: bool,
    pub fee_reduction_percent: u32,
}

impl ClocksView {
    /// The JSON form of a case's clocks.
    pub fn new(cc: &pb::CaseClocks) -> ClocksView {
        ClocksView {
            case_id: cc.case_id.clone(),
            case_reference: cc.case_reference.clone(),
            tenant: cc.tenant.clone(),
            case_type: cc.case_type.clone(),
            clocks: cc
                .clocks
                .iter()
                .map(|c| ClockView {
                    commitment: c.commitment.clone(),
                    name: c.name.clone(),
                    state: state_word(c.state),
                    started_at: rfc3339(c.started_at.as_ref()),
                    due_at: rfc3339(c.due_at.as_ref()),
                    stopped_at: rfc3339(c.stopped_at.as_ref()),
                    paused_minutes: c.paused_minutes,
                    minutes_left: c.minutes_left,
                    time_basis: c.time_basis.clone(),
                    extended: c.extended,
                    fee_reduction_percent: c.fee_reduction_percent,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(state: pb::ClockState, minutes_left: i64, basis: &str) -> pb::Clock {
        pb::Clock {
            commitment: "first_contact".into(),
            name: "Första kontakt inom 1 arbetsdag".into(),
            state: state as i32,
            due_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            minutes_left,
            time_basis: basis.into(),
            ..Default::default()
        }
    }

    #[test]
    fn time_left_names_its_basis() {
        assert_eq!(time_left(&clock(pb::ClockState::Running, 200, "working")), "3h 20m working");
        assert_eq!(time_left(&clock(pb::ClockState::Breached, -65, "working")), "overdue 1h 5m working");
        assert_eq!(time_left(&clock(pb::ClockState::Running, 69 * 1440 + 120, "calendar")), "69d 2h calendar");
        assert_eq!(time_left(&clock(pb::ClockState::Met, 30, "working")), "");
    }

    #[test]
    fn the_table_shows_paused_time_and_fee_reduction() {
        let mut bygglov = clock(pb::ClockState::Breached, -8000, "calendar");
        bygglov.name = "Beslut om bygglov".into();
        bygglov.fee_reduction_percent = 20;
        let mut first = clock(pb::ClockState::Paused, 200, "working");
        first.paused_minutes = 90;
        let cc = pb::CaseClocks {
            case_id: "c-1".into(),
            case_reference: "NKP-2026-000002".into(),
            case_type: "bygglov".into(),
            clocks: vec![first, bygglov],
            ..Default::default()
        };
        let text = clocks_text(&cc);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NKP-2026-000002 (bygglov), case c-1");
        assert!(lines[2].contains("paused    2026-11-24 07:00  3h 20m working"));
        assert!(lines[2].ends_with("1h 30m"));
        assert!(lines[3].contains("overdue 5d 13h calendar"));
        assert!(lines[3].ends_with("fee reduced 20 %"));
    }
}
