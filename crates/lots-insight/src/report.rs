//! Guarantee kept: every commitment settles in a month — kept when it stopped in time (the
//! month it stopped), broken when its due instant passed first (the month it fell due) — and
//! the figures count them per unit, case type, commitment and month.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use lots_domain::calendar::TZ;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use lots_platform::api::ApiError as Error;

/// One commitment of one case, joined with what the report groups by.
#[derive(Debug, Clone, FromRow)]
pub struct ClockRow {
    pub case_id: Uuid,
    pub reference: String,
    pub unit: String,
    pub case_type: String,
    pub commitment: String,
    pub name: String,
    pub state: String,
    pub stopped_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub working_minutes: i64,
    pub reason: Option<String>,
}

/// How a commitment ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    Breached,
}

impl Outcome {
    /// The key reports use.
    pub fn key(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::Breached => "breached",
        }
    }
}

impl ClockRow {
    /// Whether the commitment is settled by `now`, how, and when.
    pub fn settled(&self, now: DateTime<Utc>) -> Option<(Outcome, DateTime<Utc>)> {
        match (self.state.as_str(), self.stopped_at, self.due_at) {
            ("met", Some(stop), _) => Some((Outcome::Kept, stop)),
            ("met_late", _, Some(due)) => Some((Outcome::Breached, due)),
            ("running" | "breached", _, Some(due)) if due <= now => Some((Outcome::Breached, due)),
            // The case ended after the promise had already been broken.
            ("cancelled", Some(stop), Some(due)) if stop > due => Some((Outcome::Breached, due)),
            _ => None,
        }
    }

    /// Working time counts for commitments that stopped; an open broken one is still counting.
    fn stopped(&self) -> bool {
        self.stopped_at.is_some() && matches!(self.state.as_str(), "met" | "met_late" | "cancelled")
    }
}

/// A month, "YYYY-MM", in Europe/Stockholm.
pub fn month_of(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&TZ);
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The first instant of month `text` ("YYYY-MM") in Stockholm, or an error naming `field`.
pub fn month_start(field: &'static str, text: &str) -> Result<DateTime<Utc>, Error> {
    let invalid = || Error::Invalid { field, message: format!("{text:?} is not a month like 2026-03") };
    let date = NaiveDate::parse_from_str(&format!("{}-01", text.trim()), "%Y-%m-%d").map_err(|_| invalid())?;
    local_midnight(date).ok_or_else(invalid)
}

/// Stockholm midnight at the start of `date`, as UTC.
pub fn local_midnight(date: NaiveDate) -> Option<DateTime<Utc>> {
    TZ.from_local_datetime(&date.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
}

/// The first instant after month `start`.
pub fn next_month(start: DateTime<Utc>) -> DateTime<Utc> {
    let local = start.with_timezone(&TZ).date_naive();
    let (y, m) = if local.month() == 12 { (local.year() + 1, 1) } else { (local.year(), local.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).and_then(local_midnight).unwrap_or(start)
}

/// The commitments of `tenant` that may settle in `[from, to)`.
pub async fn clocks_between(
    db: impl PgExecutor<'_>,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<ClockRow>> {
    sqlx::query_as(
        "SELECT k.case_id, c.reference, c.unit, c.case_type, k.commitment, k.name, k.state, k.stopped_at, k.due_at,
                k.working_minutes, k.reason
         FROM clocks k JOIN cases c ON c.id = k.case_id
         WHERE k.tenant = $1
           AND ((k.stopped_at >= $2 AND k.stopped_at < $3) OR (k.due_at >= $2 AND k.due_at < $3))
         ORDER BY c.reference, k.commitment",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// One group's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub name: String,
    pub kept: u32,
    pub breached: u32,
    pub minutes: Vec<i64>,
    pub reasons: BTreeMap<String, u32>,
}

impl Figures {
    /// Commitments settled.
    pub fn cases(&self) -> u32 {
        self.kept + self.breached
    }

    /// Kept in percent of settled.
    pub fn share_kept(&self) -> f64 {
        if self.cases() == 0 { 0.0 } else { 100.0 * f64::from(self.kept) / f64::from(self.cases()) }
    }
}

/// Groups by (month, unit, case type, commitment).
pub type Key = (String, String, String, String);

/// The figures of `rows` settled in `[from, to)` as of `now`.
pub fn aggregate(
    rows: &[ClockRow],
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeMap<Key, Figures> {
    let mut out: BTreeMap<Key, Figures> = BTreeMap::new();
    for row in rows {
        let Some((outcome, at)) = row.settled(now) else { continue };
        if at < from || at >= to {
            continue;
        }
        let key = (month_of(at), row.unit.clone(), row.case_type.clone(), row.commitment.clone());
        let f = out.entry(key).or_default();
        f.name.clone_from(&row.name);
        match outcome {
            Outcome::Kept => f.kept += 1,
            Outcome::Breached => {
                f.breached += 1;
                *f.reasons.entry(row.reason.clone().unwrap_or_else(|| "other".into())).or_default() += 1;
            }
        }
        if row.stopped() {
            f.minutes.push(row.working_minutes);
        }
    }
    for f in out.values_mut() {
        f.minutes.sort_unstable();
    }
    out
}

/// The `q`-quantile (0..=1) of sorted `values`, interpolated linearly (as Postgres'
/// `percentile_cont`); 0 for none.
pub fn quantile(values: &[i64], q: f64) -> f64 {
    match values {
        [] => 0.0,
        [one] => *one as f64,
        _ => {
            let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let frac = pos - lo as f64;
            values[lo] as f64 + (values[hi] - values[lo]) as f64 * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn row(state: &str, stopped: Option<&str>, due: &str, minutes: i64, reason: Option<&str>) -> ClockRow {
        ClockRow {
            case_id: Uuid::nil(),
            reference: "NKP-2026-000001".into(),
            unit: "bygglov".into(),
            case_type: "bygglov".into(),
            commitment: "first_contact".into(),
            name: "Första kontakt".into(),
            state: state.into(),
            stopped_at: stopped.map(t),
            due_at: Some(t(due)),
            working_minutes: minutes,
            reason: reason.map(String::from),
        }
    }

    #[test]
    fn a_commitment_settles_in_the_month_it_stopped_or_fell_due() {
        let now = t("2026-04-10T12:00:00Z");
        let rows = [
            row("met", Some("2026-03-31T21:30:00Z"), "2026-04-02T15:00:00Z", 100, None),
            row("met_late", Some("2026-04-03T09:00:00Z"), "2026-03-31T14:00:00Z", 600, Some("seat_unanswered")),
            row("running", None, "2026-04-01T14:00:00Z", 300, Some("no_slot")),
            row("running", None, "2026-04-20T14:00:00Z", 10, None),
            row("cancelled", Some("2026-03-20T10:00:00Z"), "2026-03-25T10:00:00Z", 50, None),
        ];
        let (from, to) = (month_start("from", "2026-03").unwrap(), month_start("to", "2026-05").unwrap());
        let figures = aggregate(&rows, now, from, to);
        let march = &figures[&("2026-03".into(), "bygglov".into(), "bygglov".into(), "first_contact".into())];
        let april = &figures[&("2026-04".into(), "bygglov".into(), "bygglov".into(), "first_contact".into())];
        // 22:30 Stockholm time on 31 March (summer time) is still March; the late one fell due in March.
        assert_eq!((march.kept, march.breached), (1, 1));
        assert_eq!(march.minutes, vec![100, 600]);
        assert_eq!(march.reasons.get("seat_unanswered"), Some(&1));
        // The open one broke in April; the one due on 20 April is not settled; the cancelled one was in time.
        assert_eq!((april.kept, april.breached), (0, 1));
        assert!(april.minutes.is_empty(), "an open commitment still counts its time");
        assert_eq!(march.share_kept(), 50.0);
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7], 0.9), 7.0);
        assert_eq!(quantile(&[10, 20, 30, 40], 0.5), 25.0);
        assert!((quantile(&[10, 20, 30, 40], 0.9) - 37.0).abs() < 1e-9);
    }

    #[test]
    fn months_are_validated_and_named() {
        assert!(matches!(month_start("from_month", "2026-13"), Err(Error::Invalid { field: "from_month", .. })));
        let start = month_start("m", "2026-12").unwrap();
        assert_eq!(month_of(next_month(start)), "2027-01");
    }
}
