//! A company case: its status machine, channel, outcome and reference number.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a case is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Registered,
    Routed,
    MeetingBooked,
    InProgress,
    Decided,
    Closed,
    WaitingForCompany,
    Withdrawn,
    Unroutable,
}

/// A refused status change, worded for the person who asked for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a case that is {from} cannot become {to}")]
pub struct TransitionError {
    pub from: CaseStatus,
    pub to: CaseStatus,
}

impl CaseStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [CaseStatus; 9] = [
        Self::Registered,
        Self::Routed,
        Self::MeetingBooked,
        Self::InProgress,
        Self::Decided,
        Self::Closed,
        Self::WaitingForCompany,
        Self::Withdrawn,
        Self::Unroutable,
    ];

    /// The stable text form used in the database and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Routed => "routed",
            Self::MeetingBooked => "meeting_booked",
            Self::InProgress => "in_progress",
            Self::Decided => "decided",
            Self::Closed => "closed",
            Self::WaitingForCompany => "waiting_for_company",
            Self::Withdrawn => "withdrawn",
            Self::Unroutable => "unroutable",
        }
    }

    /// Closed and withdrawn cases never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Closed | Self::Withdrawn)
    }

    /// Statuses a case can leave to wait for the company, and return to afterwards.
    pub fn can_wait_for_company(self) -> bool {
        !self.is_terminal() && self != Self::WaitingForCompany
    }

    /// Whether the lifecycle allows `self → to`.
    ///
    /// Waiting for the company is entered from any active status and left only to the
    /// status the case came from, which the caller must check with [`CaseStatus::resume_to`].
    pub fn can_become(self, to: CaseStatus) -> bool {
        use CaseStatus::*;
        if self.is_terminal() || self == to {
            return false;
        }
        match to {
            Withdrawn => true,
            WaitingForCompany => self.can_wait_for_company(),
            // Closing records the decision; a case that waits must be resumed first.
            Closed => self != WaitingForCompany,
            Routed => matches!(self, Registered | Unroutable | MeetingBooked),
            MeetingBooked => self == Routed,
            InProgress => self == MeetingBooked,
            Decided => self == InProgress,
            Unroutable => matches!(self, Registered | Routed),
            Registered => false,
        }
    }

    /// Checks `self → to`, returning the refusal as an error.
    pub fn transition(self, to: CaseStatus) -> Result<CaseStatus, TransitionError> {
        if self.can_become(to) { Ok(to) } else { Err(TransitionError { from: self, to }) }
    }

    /// Checks leaving `waiting_for_company` back to `previous`.
    pub fn resume_to(self, previous: CaseStatus) -> Result<CaseStatus, TransitionError> {
        if self == Self::WaitingForCompany && previous.can_wait_for_company() {
            Ok(previous)
        } else {
            Err(TransitionError { from: self, to: previous })
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

/// A text value that names no known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

/// How the company reached the municipality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Email,
    EService,
    Visit,
    CompanyVisit,
}

impl Channel {
    /// All channels.
    pub const ALL: [Channel; 5] = [Self::Phone, Self::Email, Self::EService, Self::Visit, Self::CompanyVisit];

    /// The stable text form used in the database and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Email => "email",
            Self::EService => "e_service",
            Self::Visit => "visit",
            Self::CompanyVisit => "company_visit",
        }
    }
}

impl FromStr for Channel {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

/// How a closed case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Granted,
    PartlyGranted,
    Denied,
    AdviceGiven,
    Referred,
}

impl Outcome {
    /// All outcomes.
    pub const ALL: [Outcome; 5] = [Self::Granted, Self::PartlyGranted, Self::Denied, Self::AdviceGiven, Self::Referred];

    /// The stable text form used in the database and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::PartlyGranted => "partly_granted",
            Self::Denied => "denied",
            Self::AdviceGiven => "advice_given",
            Self::Referred => "referred",
        }
    }
}

impl FromStr for Outcome {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

/// A case's human reference, `<PREFIX>-<YEAR>-<NNNNNN>`, e.g. `NKP-2026-000123`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub prefix: String,
    pub year: i32,
    pub number: u64,
}

impl Reference {
    /// Parses `NKP-2026-000123`; the prefix is 2–8 capital letters.
    pub fn parse(s: &str) -> Option<Reference> {
        let mut parts = s.trim().splitn(3, '-');
        let prefix = parts.next()?;
        let year = parts.next()?;
        let number = parts.next()?;
        let prefix_ok = (2..=8).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
        let digits =
            |t: &str, n: std::ops::RangeInclusive<usize>| n.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
        if !prefix_ok || !digits(year, 4..=4) || !digits(number, 6..=12) {
            return None;
        }
        Some(Reference { prefix: prefix.to_owned(), year: year.parse().ok()?, number: number.parse().ok()? })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:06}", self.prefix, self.year, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::CaseStatus::*;
    use super::*;

    #[test]
    fn the_main_path_is_allowed_in_order_only() {
        let path = [Registered, Routed, MeetingBooked, InProgress, Decided, Closed];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!Registered.can_become(MeetingBooked));
        assert!(!Routed.can_become(Decided));
        assert!(!Decided.can_become(InProgress));
    }

    #[test]
    fn terminal_statuses_never_change() {
        for from in [Closed, Withdrawn] {
            for to in CaseStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn waiting_returns_only_to_where_the_case_was() {
        for from in [Registered, Routed, MeetingBooked, InProgress, Decided, Unroutable] {
            assert!(from.can_become(WaitingForCompany));
            assert_eq!(WaitingForCompany.resume_to(from), Ok(from));
        }
        assert!(!WaitingForCompany.can_become(WaitingForCompany));
        assert!(WaitingForCompany.resume_to(Closed).is_err());
        assert!(Routed.resume_to(Registered).is_err());
        assert!(!WaitingForCompany.can_become(Closed));
        assert!(WaitingForCompany.can_become(Withdrawn));
    }

    #[test]
    fn refusal_names_both_statuses() {
        let err = Closed.transition(Routed).unwrap_err();
        assert_eq!(err.to_string(), "a case that is closed cannot become routed");
    }

    #[test]
    fn text_forms_round_trip() {
        for s in CaseStatus::ALL {
            assert_eq!(s.as_str().parse::<CaseStatus>(), Ok(s));
        }
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("open".parse::<CaseStatus>().is_err());
    }

    #[test]
    fn reference_formats_and_parses() {
        let r = Reference { prefix: "NKP".into(), year: 2026, number: 123 };
        assert_eq!(r.to_string(), "NKP-2026-000123");
        assert_eq!(Reference::parse("NKP-2026-000123"), Some(r));
        assert_eq!(Reference::parse("nkp-2026-000123"), None);
        assert_eq!(Reference::parse("NKP-26-000123"), None);
        assert_eq!(Reference::parse("0193a1b2-..."), None);
    }
}
