//! Klagomål and company visits as intake records them: categories, the complaint's life, and
//! the references of both ("NKP-K-2026-000007", "NKP-B-2026-000012").

use std::fmt;
use std::str::FromStr;

/// What a complaint is about: SKR Insikt's six service factors, or something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComplaintCategory {
    Bemotande,
    Information,
    Tillganglighet,
    Kompetens,
    /// Rättssäkerhet / beslut.
    Rattssakerhet,
    Handlaggningstid,
    Ovrigt,
}

impl ComplaintCategory {
    /// Every category, in Insikt's order.
    pub const ALL: [ComplaintCategory; 7] = [
        ComplaintCategory::Bemotande,
        ComplaintCategory::Information,
        ComplaintCategory::Tillganglighet,
        ComplaintCategory::Kompetens,
        ComplaintCategory::Rattssakerhet,
        ComplaintCategory::Handlaggningstid,
        ComplaintCategory::Ovrigt,
    ];

    /// The stored and event form, e.g. "bemotande".
    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintCategory::Bemotande => "bemotande",
            ComplaintCategory::Information => "information",
            ComplaintCategory::Tillganglighet => "tillganglighet",
            ComplaintCategory::Kompetens => "kompetens",
            ComplaintCategory::Rattssakerhet => "rattssakerhet",
            ComplaintCategory::Handlaggningstid => "handlaggningstid",
            ComplaintCategory::Ovrigt => "ovrigt",
        }
    }
}

impl FromStr for ComplaintCategory {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown complaint category {s:?}"))
    }
}

/// Where a complaint is in its life. Intake is the only writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComplaintStatus {
    Registered,
    /// The complainant has been told it was received.
    Acknowledged,
    /// The complainant has the answer and the action taken.
    Answered,
    Closed,
}

impl ComplaintStatus {
    /// Every status, in life order.
    pub const ALL: [ComplaintStatus; 4] = [
        ComplaintStatus::Registered,
        ComplaintStatus::Acknowledged,
        ComplaintStatus::Answered,
        ComplaintStatus::Closed,
    ];

    /// The stored form, e.g. "acknowledged".
    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintStatus::Registered => "registered",
            ComplaintStatus::Acknowledged => "acknowledged",
            ComplaintStatus::Answered => "answered",
            ComplaintStatus::Closed => "closed",
        }
    }

    /// Why the step to `to` is refused, or `None` when it is allowed. An anonymous complaint is
    /// owed no answer, so it closes once acknowledged; a named one closes once answered.
    pub fn refuses(self, to: ComplaintStatus, anonymous: bool) -> Option<String> {
        use ComplaintStatus::*;
        let allowed = match (self, to) {
            (Registered, Acknowledged) => true,
            (Registered | Acknowledged, Answered) => !anonymous,
            (Answered, Closed) => true,
            (Acknowledged, Closed) => anonymous,
            _ => false,
        };
        if allowed {
            return None;
        }
        Some(match (self, to) {
            (_, Answered) if anonymous => {
                "an anonymous complaint has nobody to answer; acknowledge and close it".into()
            }
            (Registered, Closed) => "acknowledge the complaint before closing it".into(),
            (Acknowledged, Closed) => "answer the complaint before closing it".into(),
            (from, to) if from == to => format!("the complaint is already {}", from.as_str()),
            (from, to) => format!("a complaint that is {} cannot become {}", from.as_str(), to.as_str()),
        })
    }
}

impl fmt::Display for ComplaintStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComplaintStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown complaint status {s:?}"))
    }
}

/// The kind of a company visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisitKind {
    /// Lotsande besök: the näringslivskontor guides the company to the officials it needs; these
    /// count toward the yearly target.
    Lotsande,
    Other,
}

impl VisitKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            VisitKind::Lotsande => "lotsande",
            VisitKind::Other => "other",
        }
    }
}

impl FromStr for VisitKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [VisitKind::Lotsande, VisitKind::Other]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown visit kind {s:?}"))
    }
}

/// A reference in one of the tenant's registers beside cases: `NKP-K-2026-000007` for
/// complaints (klagomål), `NKP-B-2026-000012` for company visits (besök).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesReference {
    pub prefix: String,
    /// 'K' (klagomål) or 'B' (besök).
    pub series: char,
    pub year: i32,
    pub number: u64,
}

/// The complaint register's series letter.
pub const COMPLAINTS: char = 'K';
/// The visit register's series letter.
pub const VISITS: char = 'B';

impl SeriesReference {
    /// Parses `NKP-K-2026-000007`; the prefix is 2–8 capital letters, the series one.
    pub fn parse(s: &str) -> Option<SeriesReference> {
        let mut parts = s.trim().splitn(4, '-');
        let (prefix, series, year, number) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let prefix_ok = (2..=8).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
        let mut letters = series.chars();
        let series = letters.next().filter(|c| c.is_ascii_uppercase() && letters.next().is_none())?;
        let digits =
            |t: &str, n: std::ops::RangeInclusive<usize>| n.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
        if !prefix_ok || !digits(year, 4..=4) || !digits(number, 6..=12) {
            return None;
        }
        Some(SeriesReference {
            prefix: prefix.to_owned(),
            series,
            year: year.parse().ok()?,
            number: number.parse().ok()?,
        })
    }
}

impl fmt::Display for SeriesReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}-{:06}", self.prefix, self.series, self.year, self.number)
    }
}

/// How many of a yearly `target` should be done by day `day_of_year` (1-based) of a year of
/// `days_in_year` days, if spread evenly; rounded down.
pub fn expected_by(target: u32, day_of_year: u32, days_in_year: u32) -> u32 {
    if days_in_year == 0 {
        return 0;
    }
    let day = day_of_year.min(days_in_year);
    (u64::from(target) * u64::from(day) / u64::from(days_in_year)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_differ_from_case_references() {
        let r = SeriesReference::parse("NKP-K-2026-000007").unwrap();
        assert_eq!(r.series, COMPLAINTS);
        assert_eq!(r.to_string(), "NKP-K-2026-000007");
        assert!(SeriesReference::parse("NKP-2026-000007").is_none());
        assert!(crate::Reference::parse("NKP-K-2026-000007").is_none());
        assert!(SeriesReference::parse("NKP-KK-2026-000007").is_none());
        assert!(SeriesReference::parse("nkp-K-2026-000007").is_none());
    }

    #[test]
    fn a_named_complaint_closes_only_once_answered_and_an_anonymous_one_once_acknowledged() {
        use ComplaintStatus::*;
        assert_eq!(Registered.refuses(Acknowledged, false), None);
        assert_eq!(Registered.refuses(Answered, false), None, "answering also acknowledges");
        assert!(Acknowledged.refuses(Closed, false).unwrap().contains("answer"));
        assert_eq!(Answered.refuses(Closed, false), None);
        assert_eq!(Acknowledged.refuses(Closed, true), None);
        assert!(Acknowledged.refuses(Answered, true).unwrap().contains("anonymous"));
        assert!(Closed.refuses(Acknowledged, false).is_some());
        assert!(Acknowledged.refuses(Acknowledged, false).unwrap().contains("already"));
    }

    #[test]
    fn the_yearly_target_is_spread_evenly() {
        assert_eq!(expected_by(100, 1, 365), 0);
        assert_eq!(expected_by(100, 183, 365), 50);
        assert_eq!(expected_by(100, 365, 365), 100);
        assert_eq!(expected_by(100, 400, 365), 100);
    }
}
