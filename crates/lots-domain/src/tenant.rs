//! A municipality's setup (one tenant): units, officers, case-type catalogue and servicegaranti.
//!
//! Read from TOML; see `deploy/config/norrkoping.toml` for a complete example.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Deserializer};

/// One municipality's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Kommunkod, four digits, e.g. "0581" for Norrköping.
    pub kommunkod: String,
    pub name: String,
    /// Prefix of case references, e.g. "NKP" gives "NKP-2026-000123".
    pub reference_prefix: String,
    /// Officer id of the näringslivschef, the last step of every escalation chain.
    pub naringslivschef: String,
    /// Default office hours for officers without their own.
    pub office_hours: WorkingHours,
    /// Where dukat bord meetings take place, e.g. "Näringslivskontoret, Rådhuset".
    #[serde(default)]
    pub meeting_location: Option<String>,
    /// Days the municipality is closed beyond public holidays ("klämdagar"), "YYYY-MM-DD".
    #[serde(default)]
    pub closed_days: Vec<NaiveDate>,
    pub units: Vec<Unit>,
    pub officers: Vec<Officer>,
    /// Servicegaranti commitments by key; case types refer to them.
    pub commitments: BTreeMap<String, Commitment>,
    pub case_types: Vec<CaseType>,
    /// Who may call Lotsen for this municipality; without it nobody can.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Gallring: how long personal data of an ended case is kept.
    #[serde(default)]
    pub privacy: Privacy,
    /// Klagomål: the complaint process's own servicegaranti.
    #[serde(default)]
    pub complaints: ComplaintPolicy,
    /// Company visits: the yearly target, the topic list and how follow-ups are kept.
    #[serde(default)]
    pub visits: VisitPolicy,
    /// The read side: status wording, the guarantee target line, the Insikt case list.
    #[serde(default)]
    pub insight: crate::insight::InsightConfig,
}

/// Key of the complaint commitment "acknowledged within …".
pub const COMPLAINT_ACKNOWLEDGE: &str = "klagomal_bekraftelse";
/// Key of the complaint commitment "answered within …".
pub const COMPLAINT_ANSWER: &str = "klagomal_svar";
/// Key of a visit follow-up's commitment.
pub const FOLLOW_UP: &str = "uppfoljning";

/// The complaint process (`[complaints]`): acknowledge within 2 working days and answer within
/// 10 unless the municipality publishes other promises (Kil and Skövde publish these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintPolicy {
    #[serde(default = "two_working_days")]
    pub acknowledge: Target,
    #[serde(default = "ten_working_days")]
    pub answer: Target,
    #[serde(default = "default_warn_at")]
    pub warn_at: Vec<u8>,
    /// Who is reached after a breach: the handler (a unit manager), then the näringslivschef.
    #[serde(default = "complaint_escalation")]
    pub escalation: Vec<EscalationStep>,
}

impl Default for ComplaintPolicy {
    fn default() -> Self {
        ComplaintPolicy {
            acknowledge: two_working_days(),
            answer: ten_working_days(),
            warn_at: default_warn_at(),
            escalation: complaint_escalation(),
        }
    }
}

impl ComplaintPolicy {
    /// The commitments a complaint runs on, by key. An anonymous complaint is owed no answer.
    pub fn commitments(&self, anonymous: bool) -> Vec<(&'static str, Commitment)> {
        let commitment = |name: String, target: Target, stops_on: &[&str]| Commitment {
            name,
            starts_on: "complaint.registered".to_owned(),
            stops_on: stops_on.iter().map(|s| (*s).to_owned()).collect(),
            pauses_on: Vec::new(),
            resumes_on: Vec::new(),
            target,
            warn_at: self.warn_at.clone(),
            escalation: self.escalation.clone(),
            extension: None,
            fee_reduction_percent_per_week: None,
        };
        let mut out = vec![(
            COMPLAINT_ACKNOWLEDGE,
            commitment(
                format!("Klagomål bekräftat inom {}", self.acknowledge),
                self.acknowledge,
                &["complaint.acknowledged", "complaint.answered"],
            ),
        )];
        if !anonymous {
            let name = format!("Klagomål besvarat inom {}", self.answer);
            out.push((COMPLAINT_ANSWER, commitment(name, self.answer, &["complaint.answered"])));
        }
        out
    }
}

/// Company visits (`[visits]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitPolicy {
    /// Lotsande besök the municipality aims for in a year (Norrköping and Motala: 100); 0: none.
    #[serde(default)]
    pub yearly_target: u32,
    /// Topic keys a visit may be tagged with.
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Warnings before a follow-up falls due, in percent of the time from its creation.
    #[serde(default = "default_follow_up_warn_at")]
    pub follow_up_warn_at: Vec<u8>,
    /// Who is reached after a follow-up is late: its owner, then the owner's manager.
    #[serde(default = "follow_up_escalation")]
    pub follow_up_escalation: Vec<EscalationStep>,
}

impl Default for VisitPolicy {
    fn default() -> Self {
        VisitPolicy {
            yearly_target: 0,
            topics: default_topics(),
            follow_up_warn_at: default_follow_up_warn_at(),
            follow_up_escalation: follow_up_escalation(),
        }
    }
}

impl VisitPolicy {
    /// A follow-up's commitment: done by the end of `due` (local), which is `minutes` of working
    /// time after the follow-up was added.
    pub fn follow_up_commitment(&self, minutes: u32, due: NaiveDate) -> Commitment {
        Commitment {
            name: format!("Uppföljning efter företagsbesök klar senast {due}"),
            starts_on: "visit.follow_up_added".to_owned(),
            stops_on: vec!["visit.follow_up_done".to_owned()],
            pauses_on: Vec::new(),
            resumes_on: Vec::new(),
            target: Target::WorkingMinutes(minutes.max(1)),
            warn_at: self.follow_up_warn_at.clone(),
            escalation: self.follow_up_escalation.clone(),
            extension: None,
            fee_reduction_percent_per_week: None,
        }
    }
}

fn two_working_days() -> Target {
    Target::WorkingDays(2)
}

fn ten_working_days() -> Target {
    Target::WorkingDays(10)
}

fn default_warn_at() -> Vec<u8> {
    vec![50, 75]
}

fn default_follow_up_warn_at() -> Vec<u8> {
    vec![75]
}

fn complaint_escalation() -> Vec<EscalationStep> {
    vec![
        EscalationStep { to: EscalationLevel::Officer, after_hours: 0 },
        EscalationStep { to: EscalationLevel::Naringslivschef, after_hours: 8 },
    ]
}

fn follow_up_escalation() -> Vec<EscalationStep> {
    vec![
        EscalationStep { to: EscalationLevel::Officer, after_hours: 0 },
        EscalationStep { to: EscalationLevel::UnitManager, after_hours: 8 },
    ]
}

fn default_topics() -> Vec<String> {
    [
        "etablering",
        "expansion",
        "lokaler",
        "mark",
        "bygglov",
        "tillstand",
        "kompetensforsorjning",
        "upphandling",
        "infrastruktur",
        "ovrigt",
    ]
    .map(String::from)
    .to_vec()
}

/// Gallring of personal data (`[privacy]` in the tenant's TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    /// Days after a case closed or was withdrawn until its personal data (organisation or
    /// personnummer, contact, free text) is erased in every service.
    #[serde(default = "default_personal_data_days")]
    pub personal_data_days: u32,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy { personal_data_days: default_personal_data_days() }
    }
}

fn default_personal_data_days() -> u32 {
    365
}

/// The municipality's OpenID issuers and how their access tokens name roles and officers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Issuer URLs whose tokens belong to this municipality, e.g. its Entra ID tenant
    /// ("https://login.microsoftonline.com/<tenant-id>/v2.0"). An issuer names one municipality.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// The audience (`aud`) Lotsen's tokens are issued for.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The claim that holds the caller's role (a string or an array of strings).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The claim that holds the caller's officer id (handläggare and managers).
    #[serde(default = "default_officer_claim")]
    pub officer_claim: String,
    /// Role values as the IdP writes them, when they differ from Lotsen's role names, e.g.
    /// `"Lots.Reception" = "reception"` for Entra app roles.
    #[serde(default)]
    pub role_names: BTreeMap<String, String>,
    /// Integrator clients (OAuth2 client credentials): client id → the RPCs it may call,
    /// e.g. `"IntakeService/RegisterCase"`.
    #[serde(default)]
    pub integrators: BTreeMap<String, Vec<String>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuers: Vec::new(),
            audience: default_audience(),
            role_claim: default_role_claim(),
            officer_claim: default_officer_claim(),
            role_names: BTreeMap::new(),
            integrators: BTreeMap::new(),
        }
    }
}

fn default_audience() -> String {
    "lots".to_owned()
}

fn default_role_claim() -> String {
    "lots_role".to_owned()
}

fn default_officer_claim() -> String {
    "lots_officer".to_owned()
}

/// A unit (enhet) with its manager (enhetschef).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub id: String,
    pub name: String,
    /// Officer id of the unit's manager.
    pub manager: String,
}

/// A handläggare who can take seats at a dukat bord.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Officer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub unit: String,
    pub competences: Vec<String>,
    /// How many open tasks the officer can carry.
    pub capacity: u32,
    /// Own working hours; the tenant's office hours when absent.
    #[serde(default)]
    pub working_hours: Option<WorkingHours>,
    /// An iCalendar (RFC 5545) file with the officer's busy time, relative to the config file.
    #[serde(default)]
    pub calendar: Option<String>,
}

/// Weekly working hours in Europe/Stockholm local time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    #[serde(default = "weekdays", deserialize_with = "de_weekdays")]
    pub days: Vec<Weekday>,
    #[serde(deserialize_with = "de_clock")]
    pub start: NaiveTime,
    #[serde(deserialize_with = "de_clock")]
    pub end: NaiveTime,
}

/// A kind of case the municipality handles, and what it needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseType {
    /// Stable key used by clients, e.g. "restaurang_start".
    pub key: String,
    pub name: String,
    /// Seats at the dukat bord: one officer per required competence.
    pub seats: Vec<Seat>,
    pub meeting_minutes: u32,
    /// Earliest start of a meeting after registration, in hours.
    pub min_notice_hours: u32,
    /// Free time each officer needs around the meeting.
    #[serde(default)]
    pub buffer_minutes: u32,
    /// Keys of the servicegaranti commitments that apply.
    #[serde(default)]
    pub commitments: Vec<String>,
    /// The competence of the coordinating seat: its officer owns the case for the company
    /// (the företagslots / kommunkontakt) and gets its warnings. Default: the first required seat.
    #[serde(default)]
    pub coordinator: Option<String>,
    /// The Insikt area its cases are surveyed under (a key of `insight::INSIKT_AREAS`); none
    /// leaves the case type out of the Insikt case list.
    #[serde(default)]
    pub insikt_area: Option<String>,
}

impl CaseType {
    /// The competence whose seat coordinates the case.
    pub fn coordinating_competence(&self) -> Option<&str> {
        self.coordinator
            .as_deref()
            .or_else(|| self.seats.iter().find(|s| !s.optional).map(|s| s.competence.as_str()))
            .or_else(|| self.seats.first().map(|s| s.competence.as_str()))
    }
}

/// One seat at a dukat bord.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seat {
    pub competence: String,
    /// Optional seats are filled only when an officer is available.
    #[serde(default)]
    pub optional: bool,
}

/// One promise of the servicegaranti, e.g. "first contact within 1 working day".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commitment {
    pub name: String,
    /// Event type that starts the clock, e.g. "case.registered".
    pub starts_on: String,
    /// Event types that meet the commitment.
    pub stops_on: Vec<String>,
    #[serde(default)]
    pub pauses_on: Vec<String>,
    #[serde(default)]
    pub resumes_on: Vec<String>,
    pub target: Target,
    /// Warning thresholds in percent of the target, ascending, e.g. [50, 75].
    #[serde(default)]
    pub warn_at: Vec<u8>,
    #[serde(default)]
    pub escalation: Vec<EscalationStep>,
    /// A legal deadline that may be extended once (PBL 9 kap. 27 §).
    #[serde(default)]
    pub extension: Option<Target>,
    /// Fee reduction per started week of delay, in percent (PBL: one fifth).
    #[serde(default)]
    pub fee_reduction_percent_per_week: Option<u8>,
}

/// How long a commitment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    WorkingHours(u32),
    WorkingDays(u32),
    /// Calendar weeks, for legal deadlines (next weekday rule of Lag 1930:173).
    CalendarWeeks(u32),
    /// Working minutes; what a follow-up's due date comes to.
    WorkingMinutes(u32),
}

impl fmt::Display for Target {
    /// In plain Swedish, e.g. "2 arbetsdagar", "1 arbetsdag", "10 veckor".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, one, many) = match *self {
            Target::WorkingHours(n) => (n, "arbetstimme", "arbetstimmar"),
            Target::WorkingDays(n) => (n, "arbetsdag", "arbetsdagar"),
            Target::CalendarWeeks(n) => (n, "vecka", "veckor"),
            Target::WorkingMinutes(n) => (n, "arbetsminut", "arbetsminuter"),
        };
        write!(f, "{n} {}", if n == 1 { one } else { many })
    }
}

/// One step of an escalation chain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    pub to: EscalationLevel,
    /// Working hours after the breach.
    pub after_hours: u32,
}

/// Who an escalation step reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationLevel {
    Officer,
    UnitManager,
    Naringslivschef,
}

/// Why a configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantConfigError {
    /// Syntax or type error; the message carries line, column and field.
    #[error("{0}")]
    Parse(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One semantic problem, with the path of the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl TenantConfig {
    /// Parses and validates one tenant's TOML.
    pub fn from_toml_str(text: &str) -> Result<TenantConfig, TenantConfigError> {
        let cfg: TenantConfig = toml::from_str(text).map_err(|e| TenantConfigError::Parse(e.to_string()))?;
        let problems = cfg.problems();
        if problems.is_empty() { Ok(cfg) } else { Err(TenantConfigError::Invalid(problems)) }
    }

    /// The commitments a case of type `key` runs on, by key (none for an unknown type).
    pub fn case_commitments(&self, key: &str) -> Vec<(&str, &Commitment)> {
        self.case_type(key)
            .map(|t| t.commitments.iter().filter_map(|k| self.commitments.get(k).map(|c| (k.as_str(), c))).collect())
            .unwrap_or_default()
    }

    /// The case type with this key.
    pub fn case_type(&self, key: &str) -> Option<&CaseType> {
        self.case_types.iter().find(|c| c.key == key)
    }

    /// The officer with this id.
    pub fn officer(&self, id: &str) -> Option<&Officer> {
        self.officers.iter().find(|o| o.id == id)
    }

    /// The unit with this id.
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// The units this officer manages (as enhetschef).
    pub fn managed_units(&self, officer: &str) -> Vec<&str> {
        self.units.iter().filter(|u| u.manager == officer).map(|u| u.id.as_str()).collect()
    }

    /// The units a case type's seats can draw officers from.
    pub fn units_of_case_type(&self, key: &str) -> HashSet<&str> {
        let Some(case_type) = self.case_type(key) else { return HashSet::new() };
        self.officers
            .iter()
            .filter(|o| case_type.seats.iter().any(|s| o.competences.contains(&s.competence)))
            .map(|o| o.unit.as_str())
            .collect()
    }

    /// An officer's working hours, falling back to the tenant's office hours.
    pub fn working_hours<'a>(&'a self, officer: &'a Officer) -> &'a WorkingHours {
        officer.working_hours.as_ref().unwrap_or(&self.office_hours)
    }

    fn problems(&self) -> Vec<Problem> {
        let mut p = Problems::default();
        if self.kommunkod.len() != 4 || !self.kommunkod.bytes().all(|b| b.is_ascii_digit()) {
            p.add("kommunkod", "must be four digits, e.g. \"0581\"");
        }
        let prefix = &self.reference_prefix;
        if !(2..=8).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_uppercase()) {
            p.add("reference_prefix", "must be 2 to 8 capital letters A-Z, e.g. \"NKP\"");
        }
        p.hours("office_hours", &self.office_hours);
        let officer_ids: HashSet<&str> = self.officers.iter().map(|o| o.id.as_str()).collect();
        if !officer_ids.contains(self.naringslivschef.as_str()) {
            p.add("naringslivschef", format!("no officer has id {:?}", self.naringslivschef));
        }
        for (i, issuer) in self.auth.issuers.iter().enumerate() {
            // Plain http only on this machine (lots dev, tests): anywhere else it could be spoofed.
            let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|l| issuer.strip_prefix(l).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/'])));
            if !(issuer.starts_with("https://") || local) {
                p.add(format!("auth.issuers[{i}]"), "must be an https URL (http only for 127.0.0.1 or localhost)");
            }
        }
        for (client, rpcs) in &self.auth.integrators {
            if rpcs.iter().any(|r| !r.contains('/')) {
                p.add(format!("auth.integrators.{client}"), "must list RPCs as \"Service/Method\"");
            }
        }
        let mut units = HashSet::new();
        for (i, u) in self.units.iter().enumerate() {
            let at = format!("units[{i}]");
            if !units.insert(u.id.as_str()) {
                p.add(format!("{at}.id"), format!("{:?} is used twice", u.id));
            }
            if !officer_ids.contains(u.manager.as_str()) {
                p.add(format!("{at}.manager"), format!("no officer has id {:?}", u.manager));
            }
        }
        let mut seen = HashSet::new();
        for (i, o) in self.officers.iter().enumerate() {
            let at = format!("officers[{i}]");
            if !seen.insert(o.id.as_str()) {
                p.add(format!("{at}.id"), format!("{:?} is used twice", o.id));
            }
            if !units.contains(o.unit.as_str()) {
                p.add(format!("{at}.unit"), format!("no unit has id {:?}", o.unit));
            }
            if o.competences.is_empty() {
                p.add(format!("{at}.competences"), "must name at least one competence");
            }
            if o.capacity == 0 {
                p.add(format!("{at}.capacity"), "must be at least 1");
            }
            if !o.email.contains('@') {
                p.add(format!("{at}.email"), "must be an e-mail address");
            }
            if let Some(h) = &o.working_hours {
                p.hours(&format!("{at}.working_hours"), h);
            }
        }
        for (key, c) in &self.commitments {
            let at = format!("commitments.{key}");
            if c.starts_on.is_empty() {
                p.add(format!("{at}.starts_on"), "must name an event type");
            }
            if c.stops_on.is_empty() {
                p.add(format!("{at}.stops_on"), "must name at least one event type");
            }
            if c.target.amount() == 0 {
                p.add(format!("{at}.target"), "must be more than zero");
            }
            p.percentages(&format!("{at}.warn_at"), &c.warn_at);
        }
        let complaints = &self.complaints;
        for (field, target) in
            [("complaints.acknowledge", complaints.acknowledge), ("complaints.answer", complaints.answer)]
        {
            if target.amount() == 0 {
                p.add(field, "must be more than zero");
            }
        }
        p.percentages("complaints.warn_at", &complaints.warn_at);
        p.percentages("visits.follow_up_warn_at", &self.visits.follow_up_warn_at);
        for (i, topic) in self.visits.topics.iter().enumerate() {
            if topic.is_empty() || !topic.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                p.add(format!("visits.topics[{i}]"), "must be lowercase letters, digits and _");
            }
        }
        let mut keys = HashSet::new();
        for (i, t) in self.case_types.iter().enumerate() {
            let at = format!("case_types[{i}]");
            let key_ok =
                !t.key.is_empty() && t.key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !key_ok {
                p.add(format!("{at}.key"), "must be lowercase letters, digits and _");
            }
            if !keys.insert(t.key.as_str()) {
                p.add(format!("{at}.key"), format!("{:?} is used twice", t.key));
            }
            if let Some(c) = &t.coordinator
                && !t.seats.iter().any(|s| &s.competence == c)
            {
                p.add(format!("{at}.coordinator"), format!("{c:?} is not one of the case type's seats"));
            }
            if let Some(area) = &t.insikt_area
                && crate::insight::area_name(area).is_none()
            {
                let keys: Vec<&str> = crate::insight::INSIKT_AREAS.iter().map(|(k, _)| *k).collect();
                p.add(format!("{at}.insikt_area"), format!("{area:?} is not one of {}", keys.join(", ")));
            }
            if !(15..=480).contains(&t.meeting_minutes) {
                p.add(format!("{at}.meeting_minutes"), "must be between 15 and 480");
            }
            for (j, name) in t.commitments.iter().enumerate() {
                if !self.commitments.contains_key(name) {
                    p.add(format!("{at}.commitments[{j}]"), format!("no commitment {name:?}"));
                }
            }
        }
        for (i, column) in self.insight.insikt_columns.iter().enumerate() {
            if !crate::insight::INSIKT_COLUMNS.contains(&column.as_str()) {
                let all = crate::insight::INSIKT_COLUMNS.join(", ");
                p.add(format!("insight.insikt_columns[{i}]"), format!("{column:?} is not one of {all}"));
            }
        }
        for key in self.insight.statuses.keys() {
            if crate::insight::CompanyStatus::from_key(key).is_none() {
                let all = crate::insight::STATUS_KEYS.join(", ");
                p.add(format!("insight.statuses.{key}"), format!("is not one of {all}"));
            }
        }
        if !(1..=100).contains(&self.insight.target_percent) {
            p.add("insight.target_percent", "must be between 1 and 100");
        }
        p.0
    }
}

impl Target {
    /// The number in the target, whatever its unit.
    pub fn amount(self) -> u32 {
        match self {
            Target::WorkingHours(n) | Target::WorkingDays(n) | Target::CalendarWeeks(n) | Target::WorkingMinutes(n) => {
                n
            }
        }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { field: field.into(), message: message.into() });
    }

    fn percentages(&mut self, at: &str, warn_at: &[u8]) {
        let ascending = warn_at.windows(2).all(|w| w[0] < w[1]);
        if !ascending || warn_at.iter().any(|&w| w == 0 || w >= 100) {
            self.add(at, "must be ascending percentages between 1 and 99");
        }
    }

    fn hours(&mut self, at: &str, h: &WorkingHours) {
        if h.start >= h.end {
            self.add(format!("{at}.end"), "must be after start");
        }
        if h.days.is_empty() {
            self.add(format!("{at}.days"), "must name at least one day");
        }
    }
}

fn weekdays() -> Vec<Weekday> {
    vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
}

fn de_clock<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    NaiveTime::parse_from_str(&s, "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("expected a time like \"08:00\", got {s:?}")))
}

fn de_weekdays<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| {
            n.parse::<Weekday>()
                .map_err(|_| serde::de::Error::custom(format!("expected a weekday like \"mon\", got {n:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaints_default_to_two_and_ten_working_days_and_anonymous_ones_owe_no_answer() {
        let cfg = TenantConfig::from_toml_str(MINIMAL).unwrap();
        let named = cfg.complaints.commitments(false);
        let keys: Vec<&str> = named.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [COMPLAINT_ACKNOWLEDGE, COMPLAINT_ANSWER]);
        assert_eq!(named[0].1.target, Target::WorkingDays(2));
        assert_eq!(named[0].1.name, "Klagomål bekräftat inom 2 arbetsdagar");
        assert_eq!(named[1].1.target, Target::WorkingDays(10));
        assert!(named[0].1.stops_on.contains(&"complaint.answered".to_owned()), "an answer also acknowledges");
        let anonymous = cfg.complaints.commitments(true);
        assert_eq!(anonymous.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [COMPLAINT_ACKNOWLEDGE]);
    }

    #[test]
    fn a_tenant_sets_its_own_complaint_promises_and_visit_target() {
        let text = format!(
            "{MINIMAL}\n[complaints]\nacknowledge = {{ working_days = 1 }}\nanswer = {{ working_days = 15 }}\n\n[visits]\nyearly_target = 100\n"
        );
        let cfg = TenantConfig::from_toml_str(&text).unwrap();
        assert_eq!(cfg.complaints.acknowledge, Target::WorkingDays(1));
        assert_eq!(cfg.complaints.commitments(false)[1].1.name, "Klagomål besvarat inom 15 arbetsdagar");
        assert_eq!(cfg.visits.yearly_target, 100);
        assert!(cfg.visits.topics.contains(&"etablering".to_owned()));
        let bad = format!("{MINIMAL}\n[complaints]\nanswer = {{ working_days = 0 }}\nwarn_at = [80, 40]\n");
        let Err(TenantConfigError::Invalid(problems)) = TenantConfig::from_toml_str(&bad) else { panic!("accepted") };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["complaints.answer", "complaints.warn_at"]);
    }

    const MINIMAL: &str = r#"
kommunkod = "0581"
name = "Testkommun"
reference_prefix = "TST"
naringslivschef = "chef"
office_hours = { start = "08:00", end = "16:30" }
closed_days = ["2026-12-28"]

[[units]]
id = "naringsliv"
name = "Näringsliv"
manager = "chef"

[[officers]]
id = "chef"
name = "Chef Chefsson"
email = "chef@example.se"
unit = "naringsliv"
competences = ["radgivning"]
capacity = 5

[commitments.first_contact]
name = "Första kontakt inom 1 arbetsdag"
starts_on = "case.registered"
stops_on = ["task.accepted"]
target = { working_days = 1 }
warn_at = [50, 75]
escalation = [{ to = "unit_manager", after_hours = 0 }]

[[case_types]]
key = "radgivning"
name = "Allmän rådgivning"
seats = [{ competence = "radgivning" }]
meeting_minutes = 30
min_notice_hours = 4
commitments = ["first_contact"]
"#;

    #[test]
    fn an_issuer_must_be_https_unless_it_is_this_machine() {
        let base = include_str!("../../../deploy/config/norrkoping.toml");
        let with = |url: &str| {
            TenantConfig::from_toml_str(
                &base.replace(r#"issuers = ["http://127.0.0.1:8088/0581"]"#, &format!(r#"issuers = ["{url}"]"#)),
            )
        };
        assert!(with("https://login.microsoftonline.com/x/v2.0").is_ok());
        assert!(with("http://localhost:8088/0581").is_ok());
        let err = with("http://idp.example.se").unwrap_err().to_string();
        assert!(err.contains("auth.issuers[0]"), "{err}");
        assert!(with("http://127.0.0.1.example.se").is_err());
    }

    #[test]
    fn the_norrkoping_example_is_valid_and_covers_every_seat() {
        let cfg = TenantConfig::from_toml_str(include_str!("../../../deploy/config/norrkoping.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.kommunkod, "0581");
        assert!(cfg.officers.len() >= 20 && cfg.units.len() >= 6);
        let restaurant = cfg.case_type("restaurang_start").unwrap();
        let required: Vec<_> = restaurant.seats.iter().filter(|s| !s.optional).map(|s| s.competence.as_str()).collect();
        assert_eq!(required, ["serveringstillstand", "livsmedel", "bygglov", "brandskydd"]);
        for t in &cfg.case_types {
            for seat in &t.seats {
                let holders = cfg.officers.iter().filter(|o| o.competences.contains(&seat.competence)).count();
                assert!(holders >= 2, "{}: only {holders} officers hold {}", t.key, seat.competence);
            }
        }
    }

    #[test]
    fn a_minimal_file_parses() {
        let cfg = TenantConfig::from_toml_str(MINIMAL).unwrap();
        assert_eq!(cfg.kommunkod, "0581");
        assert_eq!(cfg.office_hours.days.len(), 5);
        assert_eq!(cfg.commitments["first_contact"].target, Target::WorkingDays(1));
        assert!(cfg.case_type("radgivning").is_some());
        assert!(cfg.case_type("bygglov").is_none());
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let broken = MINIMAL.replace("capacity = 5", "capacity = five");
        let err = TenantConfig::from_toml_str(&broken).unwrap_err().to_string();
        assert!(err.contains("line 20"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let broken = MINIMAL.replace("capacity = 5", "capacity = \"5\"");
        let err = TenantConfig::from_toml_str(&broken).unwrap_err().to_string();
        assert!(err.contains("capacity"), "{err}");
        assert!(err.contains("line 20"), "{err}");
    }

    #[test]
    fn semantic_problems_name_each_field() {
        let broken = MINIMAL
            .replace("unit = \"naringsliv\"", "unit = \"bygg\"")
            .replace("commitments = [\"first_contact\"]", "commitments = [\"nope\"]")
            .replace("reference_prefix = \"TST\"", "reference_prefix = \"tst\"");
        let TenantConfigError::Invalid(problems) = TenantConfig::from_toml_str(&broken).unwrap_err() else {
            panic!("expected semantic problems");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["reference_prefix", "officers[0].unit", "case_types[0].commitments[0]"]);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let broken = MINIMAL.replace("capacity = 5", "capacity = 5\ncapacty = 6");
        let err = TenantConfig::from_toml_str(&broken).unwrap_err().to_string();
        assert!(err.contains("capacty"), "{err}");
    }
}
