//! The read side's rules: what a company is told about its case, which Insikt area a case type
//! belongs to, the columns of the Insikt case list, and why a broken promise was broken.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::guarantee::ClockEvent;
use crate::tenant::Commitment;

/// The read side's settings for a municipality (`[insight]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightConfig {
    /// The wording of each company-facing status, by key (see [`STATUS_KEYS`]); keys left out keep
    /// the default Swedish wording.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
    /// The share of commitments the municipality aims to keep, in percent: the target line.
    #[serde(default = "default_target_percent")]
    pub target_percent: u8,
    /// The Insikt case list's columns, in order (see [`INSIKT_COLUMNS`]).
    #[serde(default = "default_insikt_columns")]
    pub insikt_columns: Vec<String>,
    /// Whether sole traders (enskild firma) go into the Insikt case list. Their organisation
    /// number is a personnummer and never leaves intake, so their row has it empty.
    #[serde(default)]
    pub insikt_sole_traders: bool,
}

impl Default for InsightConfig {
    fn default() -> Self {
        InsightConfig {
            statuses: BTreeMap::new(),
            target_percent: default_target_percent(),
            insikt_columns: default_insikt_columns(),
            insikt_sole_traders: false,
        }
    }
}

fn default_target_percent() -> u8 {
    90
}

fn default_insikt_columns() -> Vec<String> {
    INSIKT_COLUMNS.iter().map(|c| (*c).to_owned()).collect()
}

/// The columns the Insikt case list can hold, in SKR's default order.
pub const INSIKT_COLUMNS: [&str; 9] = [
    "omrade",
    "arendetyp",
    "arendenummer",
    "beslutsdatum",
    "organisationsnummer",
    "foretagsnamn",
    "kontaktperson",
    "e_post",
    "telefon",
];

/// The header SKR's template uses for a column key.
pub fn insikt_header(column: &str) -> &'static str {
    match column {
        "omrade" => "Område",
        "arendetyp" => "Ärendetyp",
        "arendenummer" => "Ärendenummer",
        "beslutsdatum" => "Beslutsdatum",
        "organisationsnummer" => "Organisationsnummer",
        "foretagsnamn" => "Företagsnamn",
        "kontaktperson" => "Kontaktperson",
        "e_post" => "E-post",
        "telefon" => "Telefon",
        _ => "",
    }
}

/// Insikt's myndighetsområden (and NUI for upphandling), by key: the key a case type names in
/// `insikt_area` and the name the survey uses.
pub const INSIKT_AREAS: [(&str, &str); 7] = [
    ("bygglov", "Bygglov"),
    ("miljo_halsoskydd", "Miljö- och hälsoskydd"),
    ("livsmedelskontroll", "Livsmedelskontroll"),
    ("serveringstillstand", "Serveringstillstånd"),
    ("brandskydd", "Brandskydd"),
    ("markupplatelse", "Markupplåtelse"),
    ("upphandling", "Upphandling (NUI)"),
];

/// The survey's name of an area key, if it is one.
pub fn area_name(key: &str) -> Option<&'static str> {
    INSIKT_AREAS.iter().find(|(k, _)| *k == key).map(|(_, n)| *n)
}

/// Where a case stands as the company sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompanyStatus {
    /// Registered; nobody is assigned yet.
    Registered,
    /// A coordinating officer (the företagslots) has the case.
    OfficerAssigned,
    /// The dukat bord is booked.
    MeetingBooked,
    /// The municipality waits for the company's komplettering.
    WaitingForCompany,
    /// The decision is made.
    Decided,
    /// Withdrawn; nothing more happens.
    Closed,
}

/// Every status key, in the order a case usually walks through them.
pub const STATUS_KEYS: [&str; 6] =
    ["registered", "officer_assigned", "meeting_booked", "waiting_for_company", "decided", "closed"];

impl CompanyStatus {
    /// The key stored and used in `[insight.statuses]`.
    pub fn key(self) -> &'static str {
        STATUS_KEYS[self as usize]
    }

    /// The status of a key, if it is one.
    pub fn from_key(key: &str) -> Option<CompanyStatus> {
        use CompanyStatus::*;
        [Registered, OfficerAssigned, MeetingBooked, WaitingForCompany, Decided, Closed]
            .into_iter()
            .find(|s| s.key() == key)
    }

    /// The default plain-Swedish wording.
    pub fn default_text(self) -> &'static str {
        match self {
            CompanyStatus::Registered => "Inkommit",
            CompanyStatus::OfficerAssigned => "Handläggare utsedd",
            CompanyStatus::MeetingBooked => "Möte bokat",
            CompanyStatus::WaitingForCompany => "Väntar på komplettering från er",
            CompanyStatus::Decided => "Beslut fattat",
            CompanyStatus::Closed => "Avslutat",
        }
    }

    /// The wording the municipality configured, else the default.
    pub fn text(self, config: &InsightConfig) -> String {
        config.statuses.get(self.key()).cloned().unwrap_or_else(|| self.default_text().to_owned())
    }
}

/// Why a commitment was broken, read from what had happened by its due instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreachReason {
    /// Routing found no common slot in the window: the case was unroutable.
    NoSlot,
    /// A seat was offered and not yet answered.
    SeatUnanswered,
    /// The case waited for the company, and this commitment does not pause for that.
    WaitingForCompany,
    /// A decision commitment ran out.
    DecisionLate,
    /// None of the above.
    Other,
}

impl BreachReason {
    /// The key reports use.
    pub fn key(self) -> &'static str {
        match self {
            BreachReason::NoSlot => "no_slot",
            BreachReason::SeatUnanswered => "seat_unanswered",
            BreachReason::WaitingForCompany => "waiting_for_company",
            BreachReason::DecisionLate => "decision_late",
            BreachReason::Other => "other",
        }
    }
}

/// One event of a case as the read side keeps it: its type, time and the seats it is about
/// (a task event's one; a routing decision's required ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFact {
    pub kind: String,
    pub at: DateTime<Utc>,
    pub tasks: Vec<String>,
}

impl CaseFact {
    /// The event as a clock sees it.
    pub fn clock_event(&self) -> ClockEvent {
        ClockEvent { kind: self.kind.clone(), at: self.at }
    }
}

/// Why `commitment`, due at `due`, was broken, from the case's facts (in occurrence order).
/// The first reason that holds wins, in the order of [`BreachReason`].
pub fn breach_reason(commitment: &Commitment, facts: &[CaseFact], due: DateTime<Utc>) -> BreachReason {
    let before: Vec<&CaseFact> = facts.iter().filter(|f| f.at <= due).collect();
    let last_routing = before.iter().rev().find(|f| f.kind == "case.routed" || f.kind == "case.unroutable");
    if last_routing.is_some_and(|f| f.kind == "case.unroutable") {
        return BreachReason::NoSlot;
    }
    let answered = ["task.accepted", "task.declined", "task.cancelled", "task.completed"];
    // Seats are offered by the routing decision itself, and again one by one after a decline.
    let offered = before.iter().filter(|f| f.kind == "task.offered" || f.kind == "case.routed");
    let open_seat = offered
        .flat_map(|f| f.tasks.iter())
        .any(|task| !before.iter().any(|f| answered.contains(&f.kind.as_str()) && f.tasks.contains(task)));
    if open_seat {
        return BreachReason::SeatUnanswered;
    }
    let waits = "case.waiting_for_company";
    if !commitment.pauses_on.iter().any(|p| p == waits) && before.iter().any(|f| f.kind == waits) {
        return BreachReason::WaitingForCompany;
    }
    if commitment.stops_on.iter().any(|s| s == "case.closed") {
        return BreachReason::DecisionLate;
    }
    BreachReason::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Target;

    fn at(h: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 11, 2, h, 0, 0).unwrap()
    }

    fn fact(kind: &str, h: u32, task: Option<u128>) -> CaseFact {
        CaseFact { kind: kind.to_owned(), at: at(h), tasks: task.map(|n| n.to_string()).into_iter().collect() }
    }

    fn commitment(stops_on: &str, pauses: bool) -> Commitment {
        Commitment {
            name: "x".into(),
            starts_on: "case.registered".into(),
            stops_on: vec![stops_on.into()],
            pauses_on: if pauses { vec!["case.waiting_for_company".into()] } else { Vec::new() },
            resumes_on: Vec::new(),
            target: Target::WorkingDays(1),
            warn_at: Vec::new(),
            escalation: Vec::new(),
            extension: None,
            fee_reduction_percent_per_week: None,
        }
    }

    #[test]
    fn the_reason_is_what_stood_at_the_due_instant() {
        let first_contact = commitment("task.accepted", false);
        let unroutable = [fact("case.registered", 8, None), fact("case.unroutable", 9, None)];
        assert_eq!(breach_reason(&first_contact, &unroutable, at(12)), BreachReason::NoSlot);
        // Routed later than the due instant: still no slot at the time.
        let late = [&unroutable[..], &[fact("case.routed", 13, None), fact("task.offered", 13, Some(1))]].concat();
        assert_eq!(breach_reason(&first_contact, &late, at(12)), BreachReason::NoSlot);
        let offered = [fact("case.registered", 8, None), fact("case.routed", 9, Some(1))];
        assert_eq!(breach_reason(&first_contact, &offered, at(12)), BreachReason::SeatUnanswered);
        let answered = [&offered[..], &[fact("task.accepted", 10, Some(1))]].concat();
        assert_eq!(breach_reason(&first_contact, &answered, at(12)), BreachReason::Other);
        let waited = [&answered[..], &[fact("case.waiting_for_company", 11, None)]].concat();
        assert_eq!(breach_reason(&first_contact, &waited, at(12)), BreachReason::WaitingForCompany);
        let decision = commitment("case.closed", true);
        assert_eq!(breach_reason(&decision, &waited, at(12)), BreachReason::DecisionLate, "it paused while waiting");
    }

    #[test]
    fn statuses_take_the_municipalitys_wording() {
        let mut config = InsightConfig::default();
        assert_eq!(CompanyStatus::WaitingForCompany.text(&config), "Väntar på komplettering från er");
        config.statuses.insert("meeting_booked".into(), "Ni är inbokade på dukat bord".into());
        assert_eq!(CompanyStatus::MeetingBooked.text(&config), "Ni är inbokade på dukat bord");
        for key in STATUS_KEYS {
            assert_eq!(CompanyStatus::from_key(key).map(|s| s.key()), Some(key));
        }
    }
}
