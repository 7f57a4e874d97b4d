//! Swedish working-time calendar: public holidays, office hours and deadlines in Europe/Stockholm.
//!
//! Servicegaranti clocks count working time (office hours on working days), and legal
//! deadlines follow Lag (1930:173) om beräkning av lagstadgad tid. All day boundaries are
//! Stockholm local time resolved through the tz database, so daylight-saving changes move
//! the UTC instants but never the office hours.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};

/// The time zone every Swedish municipality works in.
pub const TZ: chrono_tz::Tz = chrono_tz::Europe::Stockholm;

/// Why a day is not a working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// An allmän helgdag under Lag (1989:253), första maj included.
    PublicHoliday,
    /// A day off by agreement and practice: midsommarafton, julafton, nyårsafton.
    DeFactoHoliday,
}

/// One holiday of a given year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    /// The calendar date.
    pub date: NaiveDate,
    /// Swedish name, lowercase except proper nouns, e.g. "långfredagen".
    pub name: &'static str,
    /// Public holiday or de facto holiday.
    pub kind: DayKind,
}

/// Easter Sunday of a Gregorian year (anonymous Gregorian algorithm); clamps outside chrono's date range.
pub fn easter_sunday(year: i32) -> NaiveDate {
    easter_opt(year).unwrap_or(if year < 0 { NaiveDate::MIN } else { NaiveDate::MAX })
}

/// Easter Sunday, `None` when the year is outside chrono's date range.
fn easter_opt(year: i32) -> Option<NaiveDate> {
    // Meeus/Jones/Butcher; euclidean division keeps it right for proleptic negative years too.
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let n = h + l - 7 * m + 114;
    let month = u32::try_from(n.div_euclid(31)).ok()?;
    let day = u32::try_from(n.rem_euclid(31) + 1).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The first Saturday on or after the given date.
fn saturday_from(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, day)?;
    let ahead = (Weekday::Sat.num_days_from_monday() + 7 - first.weekday().num_days_from_monday()) % 7;
    first.checked_add_days(Days::new(u64::from(ahead)))
}

fn shifted(date: Option<NaiveDate>, days: i64) -> Option<NaiveDate> {
    date.and_then(|d| d.checked_add_signed(Duration::days(days)))
}

/// All holidays of a year, public and de facto, sorted by date (a date can occur twice, e.g. 1 May 2008).
pub fn holidays(year: i32) -> Vec<Holiday> {
    use DayKind::{DeFactoHoliday as DeFacto, PublicHoliday as Public};
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    let easter = easter_opt(year);
    let midsommardagen = saturday_from(year, 6, 20);
    let entries = [
        (ymd(1, 1), "nyårsdagen", Public),
        (ymd(1, 6), "trettondedag jul", Public),
        (shifted(easter, -2), "långfredagen", Public),
        (easter, "påskdagen", Public),
        (shifted(easter, 1), "annandag påsk", Public),
        (ymd(5, 1), "första maj", Public),
        (shifted(easter, 39), "Kristi himmelsfärdsdag", Public),
        (shifted(easter, 49), "pingstdagen", Public),
        (ymd(6, 6), "nationaldagen", Public),
        (shifted(midsommardagen, -1), "midsommarafton", DeFacto),
        (midsommardagen, "midsommardagen", Public),
        (saturday_from(year, 10, 31), "alla helgons dag", Public),
        (ymd(12, 24), "julafton", DeFacto),
        (ymd(12, 25), "juldagen", Public),
        (ymd(12, 26), "annandag jul", Public),
        (ymd(12, 31), "nyårsafton", DeFacto),
    ];
    let mut list: Vec<Holiday> =
        entries.into_iter().filter_map(|(date, name, kind)| date.map(|date| Holiday { date, name, kind })).collect();
    // Stable sort: coinciding holidays keep the law's order.
    list.sort_by_key(|h| h.date);
    list
}

/// The holiday on this date, if any (the first one when two coincide).
pub fn holiday(date: NaiveDate) -> Option<Holiday> {
    holidays(date.year()).into_iter().find(|h| h.date == date)
}

/// Stockholm local time to UTC: the earlier instant when ambiguous, the end of the gap when skipped.
pub fn local_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    match TZ.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => end_of_gap(local),
    }
}

/// The first instant whose local time is at or after `local`, which lies in a spring-forward gap.
fn end_of_gap(local: NaiveDateTime) -> DateTime<Utc> {
    // The answer is the transition instant; every real offset is within ±15 h, which brackets it.
    // Transitions fall on whole seconds, so a binary search over seconds is exact.
    let fallback = local.and_utc();
    let local_at = |secs: i64| DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&TZ).naive_local());
    let naive = fallback.timestamp();
    let (mut lo, mut hi) = (naive - 15 * 3600, naive + 15 * 3600);
    if local_at(hi).is_none_or(|l| l < local) {
        return fallback;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match local_at(mid) {
            Some(l) if l >= local => hi = mid,
            Some(_) => lo = mid,
            None => return fallback,
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(fallback)
}

/// The Stockholm calendar date of an instant.
fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&TZ).date_naive()
}

/// Holiday dates of one year, kept while a loop walks through that year.
#[derive(Default)]
struct HolidayCache {
    year: Option<i32>,
    dates: Vec<NaiveDate>,
}

impl HolidayCache {
    fn contains(&mut self, date: NaiveDate) -> bool {
        if self.year != Some(date.year()) {
            self.year = Some(date.year());
            self.dates = holidays(date.year()).into_iter().map(|h| h.date).collect();
        }
        self.dates.contains(&date)
    }
}

/// A working calendar: which days and hours count.
#[derive(Debug, Clone)]
pub struct WorkCalendar {
    /// Working weekdays, indexed by days from Monday.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
    closed: BTreeSet<NaiveDate>,
}

impl WorkCalendar {
    /// A calendar from weekly hours and extra closed days (holidays are always closed).
    pub fn new(hours: &crate::tenant::WorkingHours, closed_days: &[NaiveDate]) -> Self {
        let mut days = [false; 7];
        for d in &hours.days {
            days[d.num_days_from_monday() as usize] = true;
        }
        WorkCalendar { days, start: hours.start, end: hours.end, closed: closed_days.iter().copied().collect() }
    }

    /// The municipality's office hours and closed days.
    pub fn for_tenant(cfg: &crate::tenant::TenantConfig) -> Self {
        Self::new(&cfg.office_hours, &cfg.closed_days)
    }

    /// An officer's own working hours with the municipality's closed days.
    pub fn for_officer(cfg: &crate::tenant::TenantConfig, officer: &crate::tenant::Officer) -> Self {
        Self::new(cfg.working_hours(officer), &cfg.closed_days)
    }

    /// Whether the date is a working weekday that is neither a holiday nor a closed day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.is_working_day_with(date, &mut HolidayCache::default())
    }

    fn is_working_day_with(&self, date: NaiveDate, cache: &mut HolidayCache) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
            && !self.closed.contains(&date)
            && !cache.contains(date)
    }

    /// Length of one working day (zero if the hours are inverted).
    pub fn day_length(&self) -> Duration {
        (self.end - self.start).max(Duration::zero())
    }

    /// A calendar without any working time would make searches forward never end.
    fn has_no_working_time(&self) -> bool {
        !self.days.contains(&true) || self.start >= self.end
    }

    /// Office hours of a date in UTC, if it is a working day.
    fn interval_on(&self, date: NaiveDate, cache: &mut HolidayCache) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day_with(date, cache) {
            return None;
        }
        let start = local_to_utc(date.and_time(self.start));
        let end = local_to_utc(date.and_time(self.end));
        (start < end).then_some((start, end))
    }

    /// Office-hours intervals of working days from `first` up to `last` (or unbounded), ascending.
    fn intervals(
        &self,
        first: NaiveDate,
        last: Option<NaiveDate>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let mut cache = HolidayCache::default();
        first
            .iter_days()
            .take_while(move |d| last.is_none_or(|l| *d <= l))
            .filter_map(move |d| self.interval_on(d, &mut cache))
    }

    /// Office-hours intervals (UTC) of working days intersecting [from, to), clipped to it, ascending.
    pub fn working_intervals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if to <= from {
            return Vec::new();
        }
        self.intervals(local_date(from), Some(local_date(to)))
            .map(|(s, e)| (s.max(from), e.min(to)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    /// `t` if it is inside office hours of a working day, else the start of the next one.
    ///
    /// Office hours are half-open, so the closing minute already belongs to the next working day.
    pub fn next_working_instant(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.has_no_working_time() {
            return DateTime::<Utc>::MAX_UTC;
        }
        self.intervals(local_date(t), None).find(|&(_, e)| t < e).map_or(DateTime::<Utc>::MAX_UTC, |(s, _)| s.max(t))
    }

    /// Adds `d` of working time to `t`; zero or negative `d` returns `t` unchanged.
    ///
    /// A result exactly at the end of a working day stays there (not the next morning).
    /// Without any working time in the calendar the result is `DateTime::<Utc>::MAX_UTC` (never).
    pub fn add_working_time(&self, t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
        if d <= Duration::zero() {
            return t;
        }
        if self.has_no_working_time() {
            return DateTime::<Utc>::MAX_UTC;
        }
        let mut remaining = d;
        for (s, e) in self.intervals(local_date(t), None) {
            if e <= t {
                continue;
            }
            let from = s.max(t);
            let available = e - from;
            if remaining <= available {
                return from + remaining;
            }
            remaining -= available;
        }
        DateTime::<Utc>::MAX_UTC
    }

    /// Adds whole hours of working time.
    pub fn add_working_hours(&self, t: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
        self.add_working_time(t, Duration::hours(i64::from(hours)))
    }

    /// N working days = N × day_length of working time (so Thursday 10:00 + 1 day = next working day 10:00).
    pub fn add_working_days(&self, t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        match i32::try_from(days).ok().and_then(|n| self.day_length().checked_mul(n)) {
            Some(d) => self.add_working_time(t, d),
            None => DateTime::<Utc>::MAX_UTC,
        }
    }

    /// Working time within [a, b); zero when b <= a.
    pub fn working_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        self.intervals(local_date(a), Some(local_date(b)))
            .map(|(s, e)| (s.max(a), e.min(b)))
            .filter(|(s, e)| s < e)
            .fold(Duration::zero(), |sum, (s, e)| sum + (e - s))
    }

    /// Deadline of `weeks` calendar weeks from `start` (Lag 1930:173 om beräkning av lagstadgad tid).
    ///
    /// The same weekday `weeks` weeks later in Stockholm; a Saturday, Sunday, public holiday,
    /// midsommarafton, julafton or nyårsafton moves it to the next day that is none of those.
    /// Returns the end of that day's office hours as UTC. Closed days do not count: the law ignores them.
    pub fn legal_deadline(&self, start: DateTime<Utc>, weeks: u32) -> DateTime<Utc> {
        let Some(date) = local_date(start).checked_add_days(Days::new(7 * u64::from(weeks))) else {
            return DateTime::<Utc>::MAX_UTC;
        };
        local_to_utc(Self::next_legal_weekday(date).and_time(self.end))
    }

    /// `date` itself, or the next day, that is not a weekend, holiday, midsommarafton, julafton or nyårsafton.
    pub fn next_legal_weekday(date: NaiveDate) -> NaiveDate {
        let mut cache = HolidayCache::default();
        let mut day = date;
        // Every holiday kind counts here: the de facto ones are exactly the eves Lag 1930:173 names.
        while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) || cache.contains(day) {
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        day
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{TenantConfig, WorkingHours};
    use chrono::FixedOffset;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Stockholm local "YYYY-MM-DD HH:MM" as UTC.
    fn at(s: &str) -> DateTime<Utc> {
        local_to_utc(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
    }

    fn local(t: DateTime<Utc>) -> String {
        t.with_timezone(&TZ).format("%Y-%m-%d %H:%M").to_string()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hours(days: &[Weekday], start: &str, end: &str) -> WorkingHours {
        WorkingHours {
            days: days.to_vec(),
            start: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
            end: NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
        }
    }

    const MON_FRI: [Weekday; 5] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];

    /// Mon–Fri 08:00–16:30, the usual kommun office.
    fn office() -> WorkCalendar {
        WorkCalendar::new(&hours(&MON_FRI, "08:00", "16:30"), &[])
    }

    fn office_closed(closed: &[&str]) -> WorkCalendar {
        let closed: Vec<NaiveDate> = closed.iter().map(|s| date(s)).collect();
        WorkCalendar::new(&hours(&MON_FRI, "08:00", "16:30"), &closed)
    }

    #[test]
    fn easter_sundays() {
        let expected = [
            (2024, "2024-03-31"),
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2028, "2028-04-16"),
            (2029, "2029-04-01"),
            (2030, "2030-04-21"),
            (2008, "2008-03-23"),
            (2038, "2038-04-25"),
            (2285, "2285-03-22"),
        ];
        for (year, easter) in expected {
            assert_eq!(easter_sunday(year), date(easter), "{year}");
        }
    }

    #[test]
    fn holidays_2024_to_2030() {
        // Per year: långfredagen, påskdagen, annandag påsk, Kristi himmelsfärdsdag, pingstdagen,
        // midsommarafton, midsommardagen, alla helgons dag (month-day). June 6 sorts before pingst when later.
        let movable = [
            (2024, ["03-29", "03-31", "04-01", "05-09", "05-19", "06-21", "06-22", "11-02"]),
            (2025, ["04-18", "04-20", "04-21", "05-29", "06-08", "06-20", "06-21", "11-01"]),
            (2026, ["04-03", "04-05", "04-06", "05-14", "05-24", "06-19", "06-20", "10-31"]),
            (2027, ["03-26", "03-28", "03-29", "05-06", "05-16", "06-25", "06-26", "11-06"]),
            (2028, ["04-14", "04-16", "04-17", "05-25", "06-04", "06-23", "06-24", "11-04"]),
            (2029, ["03-30", "04-01", "04-02", "05-10", "05-20", "06-22", "06-23", "11-03"]),
            (2030, ["04-19", "04-21", "04-22", "05-30", "06-09", "06-21", "06-22", "11-02"]),
        ];
        use DayKind::{DeFactoHoliday as F, PublicHoliday as P};
        for (year, m) in movable {
            let mut expected = vec![
                ("01-01", "nyårsdagen", P),
                ("01-06", "trettondedag jul", P),
                (m[0], "långfredagen", P),
                (m[1], "påskdagen", P),
                (m[2], "annandag påsk", P),
                ("05-01", "första maj", P),
                (m[3], "Kristi himmelsfärdsdag", P),
            ];
            // Pingst falls after nationaldagen in 2025 and 2030.
            if m[4] > "06-06" {
                expected.push(("06-06", "nationaldagen", P));
                expected.push((m[4], "pingstdagen", P));
            } else {
                expected.push((m[4], "pingstdagen", P));
                expected.push(("06-06", "nationaldagen", P));
            }
            expected.extend([
                (m[5], "midsommarafton", F),
                (m[6], "midsommardagen", P),
                (m[7], "alla helgons dag", P),
                ("12-24", "julafton", F),
                ("12-25", "juldagen", P),
                ("12-26", "annandag jul", P),
                ("12-31", "nyårsafton", F),
            ]);
            let expected: Vec<Holiday> = expected
                .into_iter()
                .map(|(md, name, kind)| Holiday { date: date(&format!("{year}-{md}")), name, kind })
                .collect();
            assert_eq!(holidays(year), expected, "{year}");
        }
    }

    #[test]
    fn holiday_weekdays_follow_the_law() {
        for year in 1990..2100 {
            for h in holidays(year) {
                let wd = h.date.weekday();
                match h.name {
                    "långfredagen" | "midsommarafton" => assert_eq!(wd, Weekday::Fri, "{h:?}"),
                    "påskdagen" | "pingstdagen" => assert_eq!(wd, Weekday::Sun, "{h:?}"),
                    "annandag påsk" => assert_eq!(wd, Weekday::Mon, "{h:?}"),
                    "Kristi himmelsfärdsdag" => assert_eq!(wd, Weekday::Thu, "{h:?}"),
                    "midsommardagen" | "alla helgons dag" => assert_eq!(wd, Weekday::Sat, "{h:?}"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn coinciding_holidays_are_both_listed() {
        // 2008: Kristi himmelsfärdsdag fell on första maj.
        let may1: Vec<_> =
            holidays(2008).into_iter().filter(|h| h.date == date("2008-05-01")).map(|h| h.name).collect();
        assert_eq!(may1, ["första maj", "Kristi himmelsfärdsdag"]);
        assert_eq!(holiday(date("2008-05-01")).map(|h| h.name), Some("första maj"));
    }

    #[test]
    fn holiday_lookup() {
        assert_eq!(
            holiday(date("2026-06-19")),
            Some(Holiday { date: date("2026-06-19"), name: "midsommarafton", kind: DayKind::DeFactoHoliday })
        );
        assert_eq!(holiday(date("2026-06-18")), None);
        assert_eq!(holiday(date("2026-06-06")).map(|h| h.kind), Some(DayKind::PublicHoliday));
    }

    #[test]
    fn extreme_years_do_not_panic() {
        for year in [i32::MIN, -262_144, -262_143, 0, 262_142, 262_143, i32::MAX] {
            let _ = easter_sunday(year);
            let _ = holidays(year);
        }
        assert_eq!(WorkCalendar::next_legal_weekday(NaiveDate::MAX), NaiveDate::MAX);
        let cal = office();
        let far = DateTime::<Utc>::MAX_UTC - Duration::days(3);
        let _ = cal.add_working_time(far, Duration::days(30));
        let _ = cal.legal_deadline(far, 10);
        let _ = cal.add_working_days(far, u32::MAX);
    }

    #[test]
    fn is_working_day_cases() {
        let cal = office_closed(&["2026-05-15"]);
        assert!(!cal.is_working_day(date("2026-05-15")), "closed klämdag");
        assert!(!cal.is_working_day(date("2026-06-06")), "nationaldagen");
        assert!(!cal.is_working_day(date("2026-06-19")), "midsommarafton");
        assert!(!cal.is_working_day(date("2026-05-16")), "Saturday");
        assert!(cal.is_working_day(date("2026-05-12")), "ordinary Tuesday");
        assert_eq!(cal.day_length(), Duration::minutes(510));
    }

    #[test]
    fn one_working_day_from_skartorsdagen_skips_easter() {
        let t = office().add_working_days(at("2026-04-02 10:00"), 1);
        assert_eq!(local(t), "2026-04-07 10:00");
    }

    #[test]
    fn five_working_days_across_midsommar() {
        let cal = office();
        let start = at("2026-06-17 09:00");
        let expected =
            ["2026-06-18 09:00", "2026-06-22 09:00", "2026-06-23 09:00", "2026-06-24 09:00", "2026-06-25 09:00"];
        for (n, want) in (1..).zip(expected) {
            assert_eq!(local(cal.add_working_days(start, n)), want, "{n} days");
        }
    }

    #[test]
    fn working_hours_across_autumn_dst() {
        let start = at("2026-10-23 15:00");
        assert_eq!(start, utc("2026-10-23T13:00:00Z"));
        let end = office().add_working_hours(start, 8);
        assert_eq!(local(end), "2026-10-26 14:30");
        assert_eq!(end, utc("2026-10-26T13:30:00Z"));
        let offset = |t: DateTime<Utc>| t.with_timezone(&TZ).fixed_offset().offset().local_minus_utc();
        assert_eq!(offset(start), 2 * 3600);
        assert_eq!(offset(end), 3600);
        // Wall-clock elapsed is one hour longer than the naive local difference.
        assert_eq!(office().working_time_between(start, end), Duration::hours(8));
    }

    #[test]
    fn working_hours_across_spring_dst() {
        let start = at("2026-03-27 15:00");
        assert_eq!(start, utc("2026-03-27T14:00:00Z"));
        let end = office().add_working_hours(start, 8);
        assert_eq!(local(end), "2026-03-30 14:30");
        assert_eq!(end, utc("2026-03-30T12:30:00Z"));
    }

    #[test]
    fn local_times_in_dst_transitions_resolve() {
        // Spring gap 02:00–03:00 on 2026-03-29: shift to 03:00 CEST = 01:00 UTC.
        let gap = NaiveDateTime::parse_from_str("2026-03-29 02:30", "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(local_to_utc(gap), utc("2026-03-29T01:00:00Z"));
        // Autumn overlap 02:00–03:00 on 2026-10-25: the earlier (CEST) instant.
        let twice = NaiveDateTime::parse_from_str("2026-10-25 02:30", "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(local_to_utc(twice), utc("2026-10-25T00:30:00Z"));
        // A calendar working through the night still counts real elapsed time.
        let night = WorkCalendar::new(&hours(&[Weekday::Sun], "00:00", "06:00"), &[]);
        let sunday = at("2026-03-29 00:00");
        assert_eq!(night.working_intervals(sunday, sunday + Duration::days(1)).len(), 1);
        assert_eq!(night.working_time_between(sunday, sunday + Duration::days(1)), Duration::hours(5));
        let autumn = at("2026-10-25 00:00");
        assert_eq!(night.working_time_between(autumn, autumn + Duration::days(1)), Duration::hours(7));
    }

    #[test]
    fn zero_and_end_of_day() {
        let cal = office();
        let saturday = at("2026-05-16 12:00");
        assert_eq!(cal.add_working_time(saturday, Duration::zero()), saturday);
        assert_eq!(cal.add_working_time(saturday, Duration::hours(-3)), saturday);
        // Exactly a full day from the opening lands at closing, not the next morning.
        let monday = at("2026-05-11 08:00");
        assert_eq!(local(cal.add_working_hours(monday, 0)), "2026-05-11 08:00");
        assert_eq!(local(cal.add_working_time(monday, cal.day_length())), "2026-05-11 16:30");
        assert_eq!(local(cal.add_working_days(at("2026-05-08 16:30"), 1)), "2026-05-11 16:30");
        // Outside hours the clock starts at the next opening.
        assert_eq!(local(cal.add_working_hours(saturday, 1)), "2026-05-18 09:00");
    }

    #[test]
    fn next_working_instant_cases() {
        let cal = office();
        let inside = at("2026-05-12 10:00");
        assert_eq!(cal.next_working_instant(inside), inside);
        assert_eq!(local(cal.next_working_instant(at("2026-05-12 07:00"))), "2026-05-12 08:00");
        assert_eq!(local(cal.next_working_instant(at("2026-05-12 16:30"))), "2026-05-13 08:00");
        assert_eq!(local(cal.next_working_instant(at("2026-06-18 17:00"))), "2026-06-22 08:00");
        assert_eq!(local(cal.next_working_instant(at("2026-12-23 18:00"))), "2026-12-28 08:00");
    }

    #[test]
    fn a_calendar_without_working_time_never_arrives() {
        let none = WorkCalendar::new(&hours(&[], "08:00", "16:30"), &[]);
        let t = at("2026-05-12 10:00");
        assert_eq!(none.next_working_instant(t), DateTime::<Utc>::MAX_UTC);
        assert_eq!(none.add_working_hours(t, 1), DateTime::<Utc>::MAX_UTC);
        assert_eq!(none.working_time_between(t, t + Duration::days(400)), Duration::zero());
        let inverted = WorkCalendar::new(&hours(&MON_FRI, "16:00", "08:00"), &[]);
        assert_eq!(inverted.day_length(), Duration::zero());
        assert_eq!(inverted.add_working_hours(t, 1), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn pause_arithmetic() {
        let cal = office_closed(&["2026-05-15"]);
        assert_eq!(cal.working_time_between(at("2026-05-11 09:00"), at("2026-05-11 11:00")), Duration::hours(2));
        assert_eq!(cal.working_time_between(at("2026-05-11 11:00"), at("2026-05-11 09:00")), Duration::zero());
        // Friday 15:00 → Monday 09:00: 1.5 h + 1 h.
        assert_eq!(cal.working_time_between(at("2026-05-08 15:00"), at("2026-05-11 09:00")), Duration::minutes(150));
        // Thursday 14 May is Kristi himmelsfärdsdag and Friday 15 is closed: Wed 16:00 → Mon 09:00.
        assert_eq!(cal.working_time_between(at("2026-05-13 16:00"), at("2026-05-18 09:00")), Duration::minutes(90));
        assert_eq!(
            office().working_time_between(at("2026-05-13 16:00"), at("2026-05-18 09:00")),
            Duration::minutes(90 + 510)
        );
        // A clock paused for half a year is still counted exactly.
        let half_year = cal.working_time_between(at("2026-01-01 00:00"), at("2026-07-01 00:00"));
        assert_eq!(half_year.num_minutes() % 510, 0);
    }

    #[test]
    fn legal_deadlines() {
        let cal = office_closed(&["2026-12-28"]);
        // Monday 12 Jan + 10 weeks = Monday 23 March, closing time (CET).
        let d = cal.legal_deadline(at("2026-01-12 10:00"), 10);
        assert_eq!(local(d), "2026-03-23 16:30");
        assert_eq!(d, utc("2026-03-23T15:30:00Z"));
        // Thursday 15 Oct + 10 weeks = julafton → juldagen, annandag jul (Sat), Sunday → Monday 28,
        // even though the municipality has closed that day.
        assert_eq!(local(cal.legal_deadline(at("2026-10-15 09:00"), 10)), "2026-12-28 16:30");
        // Saturday → Monday.
        assert_eq!(local(cal.legal_deadline(at("2026-01-10 12:00"), 10)), "2026-03-23 16:30");
        // Midsommarafton → midsommardagen, Sunday → Monday.
        assert_eq!(local(cal.legal_deadline(at("2026-04-10 12:00"), 10)), "2026-06-22 16:30");
        // Nyårsafton (Thursday) → nyårsdagen → weekend → Monday 4 Jan 2027.
        assert_eq!(local(cal.legal_deadline(at("2026-10-22 12:00"), 10)), "2027-01-04 16:30");
        // The start counts by its Stockholm date: 23:30 UTC Sunday is already Monday in Sweden.
        assert_eq!(local(cal.legal_deadline(utc("2026-01-11T23:30:00Z"), 10)), "2026-03-23 16:30");
        assert_eq!(WorkCalendar::next_legal_weekday(date("2026-03-24")), date("2026-03-24"));
        assert_eq!(WorkCalendar::next_legal_weekday(date("2026-04-03")), date("2026-04-07"));
    }

    #[test]
    fn working_intervals_over_a_week_with_a_holiday() {
        let cal = office();
        // Mon 11 – Sun 17 May 2026; Thursday 14 is Kristi himmelsfärdsdag.
        let from = at("2026-05-11 12:00");
        let to = at("2026-05-15 10:00");
        let iv = cal.working_intervals(from, to);
        let shown: Vec<_> = iv.iter().map(|&(s, e)| (local(s), local(e))).collect();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            shown,
            [
                pair("2026-05-11 12:00", "2026-05-11 16:30"),
                pair("2026-05-12 08:00", "2026-05-12 16:30"),
                pair("2026-05-13 08:00", "2026-05-13 16:30"),
                pair("2026-05-15 08:00", "2026-05-15 10:00"),
            ]
        );
        let week = cal.working_intervals(at("2026-05-11 00:00"), at("2026-05-18 00:00"));
        assert_eq!(week.len(), 4);
        assert!(cal.working_intervals(to, from).is_empty());
        // Starting at a closing time yields nothing for that day.
        let late = cal.working_intervals(at("2026-05-11 16:30"), at("2026-05-12 09:00"));
        assert_eq!(late.len(), 1);
    }

    const TENANT: &str = r#"
kommunkod = "0581"
name = "Testkommun"
reference_prefix = "TST"
naringslivschef = "chef"
office_hours = { start = "08:00", end = "16:30" }
closed_days = ["2026-05-15"]

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

[[officers]]
id = "deltid"
name = "Del Tidsson"
email = "deltid@example.se"
unit = "naringsliv"
competences = ["radgivning"]
capacity = 3
working_hours = { days = ["mon", "tue", "wed", "thu"], start = "08:00", end = "15:00" }

[commitments.first_contact]
name = "Första kontakt inom 1 arbetsdag"
starts_on = "case.registered"
stops_on = ["task.accepted"]
target = { working_days = 1 }

[[case_types]]
key = "radgivning"
name = "Allmän rådgivning"
seats = [{ competence = "radgivning" }]
meeting_minutes = 30
min_notice_hours = 4
commitments = ["first_contact"]
"#;

    #[test]
    fn tenant_and_officer_calendars() {
        let cfg = TenantConfig::from_toml_str(TENANT).unwrap();
        let tenant = WorkCalendar::for_tenant(&cfg);
        assert!(!tenant.is_working_day(date("2026-05-15")));
        assert_eq!(tenant.day_length(), Duration::minutes(510));

        let part_time = WorkCalendar::for_officer(&cfg, cfg.officer("deltid").unwrap());
        assert_eq!(part_time.day_length(), Duration::hours(7));
        // Week of 18 May 2026 (no holidays): Mon–Thu only, no Friday.
        let week = part_time.working_intervals(at("2026-05-18 00:00"), at("2026-05-25 00:00"));
        let days: Vec<_> = week.iter().map(|&(s, _)| local(s)).collect();
        assert_eq!(days, ["2026-05-18 08:00", "2026-05-19 08:00", "2026-05-20 08:00", "2026-05-21 08:00"]);
        assert!(week.iter().all(|&(s, e)| e - s == Duration::hours(7)));
        // The officer inherits the tenant's closed days.
        assert!(!part_time.is_working_day(date("2026-05-15")));
        let chef = WorkCalendar::for_officer(&cfg, cfg.officer("chef").unwrap());
        assert_eq!(chef.day_length(), Duration::minutes(510));
    }

    #[test]
    fn a_long_pause_is_fast() {
        let cal = office();
        let a = at("2024-01-01 00:00");
        let b = at("2030-12-31 23:00");
        let total = cal.working_time_between(a, b);
        assert_eq!(cal.working_time_between(a, cal.add_working_time(a, total)), total);
    }

    fn instant_2024_2030() -> impl Strategy<Value = DateTime<Utc>> {
        let lo = utc("2024-01-01T00:00:00Z").timestamp();
        let hi = utc("2030-12-31T23:59:59Z").timestamp();
        (lo..=hi).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    fn up_to_400_hours() -> impl Strategy<Value = Duration> {
        (0i64..=400 * 3600).prop_map(Duration::seconds)
    }

    proptest! {
        #[test]
        fn between_inverts_add(t in instant_2024_2030(), d in up_to_400_hours()) {
            let cal = office_closed(&["2026-05-15", "2027-01-05"]);
            let inside = cal.next_working_instant(t);
            prop_assert_eq!(cal.working_time_between(inside, cal.add_working_time(inside, d)), d);
            // Time outside office hours never counts, so it holds from any start.
            prop_assert_eq!(cal.working_time_between(t, cal.add_working_time(t, d)), d);
        }

        #[test]
        fn add_is_monotonic(t in instant_2024_2030(), d1 in up_to_400_hours(), d2 in up_to_400_hours(), lag in 0i64..=30 * 86_400) {
            let cal = office();
            let (short, long) = (d1.min(d2), d1.max(d2));
            prop_assert!(cal.add_working_time(t, short) <= cal.add_working_time(t, long));
            let later = t + Duration::seconds(lag);
            prop_assert!(cal.add_working_time(t, d1) <= cal.add_working_time(later, d1));
            prop_assert!(cal.add_working_time(t, d1) >= t);
        }

        #[test]
        fn intervals_are_ascending_inside_and_sum_to_between(t in instant_2024_2030(), span in 0i64..=60 * 86_400) {
            let cal = office();
            let to = t + Duration::seconds(span);
            let iv = cal.working_intervals(t, to);
            prop_assert!(iv.windows(2).all(|w| w[0].1 < w[1].0));
            prop_assert!(iv.iter().all(|&(s, e)| t <= s && s < e && e <= to));
            let sum = iv.iter().fold(Duration::zero(), |acc, &(s, e)| acc + (e - s));
            prop_assert_eq!(sum, cal.working_time_between(t, to));
            for &(s, _) in &iv {
                prop_assert_eq!(cal.next_working_instant(s), s);
            }
        }

        #[test]
        fn legal_deadline_lands_on_a_legal_weekday(t in instant_2024_2030(), weeks in 0u32..=52) {
            let d = office().legal_deadline(t, weeks);
            let day = local_date(d);
            prop_assert!(!matches!(day.weekday(), Weekday::Sat | Weekday::Sun));
            prop_assert!(holiday(day).is_none());
            prop_assert!(day >= local_date(t) + Days::new(7 * u64::from(weeks)));
            prop_assert!(day <= local_date(t) + Days::new(7 * u64::from(weeks) + 5));
            prop_assert_eq!(d.with_timezone(&TZ).time(), NaiveTime::from_hms_opt(16, 30, 0).unwrap());
        }
    }

    #[test]
    fn a_deadline_carries_the_winter_offset() {
        let d = office().legal_deadline(at("2026-01-12 10:00"), 10);
        let fixed: DateTime<FixedOffset> = d.with_timezone(&TZ).fixed_offset();
        assert_eq!(fixed.to_rfc3339(), "2026-03-23T16:30:00+01:00");
    }
}
