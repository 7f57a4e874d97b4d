//! iCalendar (RFC 5545): officers' busy time from exported calendars, and meeting invites.
//!
//! The parser reads what calendar systems export (VEVENT or VFREEBUSY) and turns it into
//! UTC busy intervals; the writer produces an iTIP invite (RFC 5546 REQUEST or CANCEL) with
//! the `icalendar` crate's builder. Recurrence rules are expanded by the `rrule` crate. The
//! content lines are read here, so every error names the physical line it is on, and what is
//! Lotsen's own stays here: floating times and all-day dates in Europe/Stockholm, Windows zone
//! names, RECURRENCE-ID overrides, VFREEBUSY and the expansion horizon.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Errors from reading an iCalendar text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcalError {
    /// A malformed or unsupported content line; `line` is the 1-based physical line where it starts.
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// The text has no `BEGIN:VCALENDAR` at all.
    #[error("no VCALENDAR in the file")]
    NotCalendar,
}

/// A busy stretch of an officer's time, [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Busy {
    /// First busy instant.
    pub start: DateTime<Utc>,
    /// First instant after the busy stretch.
    pub end: DateTime<Utc>,
}

/// Zone for floating times and all-day dates: the municipalities are Swedish.
const HOME: Tz = chrono_tz::Europe::Stockholm;

/// Upper bound on instances generated per recurrence rule, so a rule with a far-away horizon
/// cannot run unbounded.
const MAX_INSTANCES: u16 = u16::MAX;

/// Busy time from an iCalendar text, with recurring events expanded up to `horizon_end` (exclusive).
pub fn parse_busy(text: &str, horizon_end: DateTime<Utc>) -> Result<Vec<Busy>, IcalError> {
    let lines = unfold(text);
    if !lines.iter().any(|(_, l)| is_begin_calendar(l)) {
        return Err(IcalError::NotCalendar);
    }

    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut draft: Option<EventDraft> = None;
    let mut events: Vec<Finished> = Vec::new();
    let mut busy: Vec<Busy> = Vec::new();

    for (no, raw) in &lines {
        let no = *no;
        if stack.is_empty() {
            // Text outside a VCALENDAR (mail headers, junk) is not ours to judge.
            if is_begin_calendar(raw) {
                stack.push(("VCALENDAR".to_owned(), no));
            }
            continue;
        }
        let cl = parse_content_line(no, raw)?;
        match cl.name.as_str() {
            "BEGIN" => {
                let comp = cl.value.trim().to_ascii_uppercase();
                if comp == "VEVENT" && stack.len() == 1 {
                    draft = Some(EventDraft::new(no));
                }
                stack.push((comp, no));
            }
            "END" => {
                let comp = cl.value.trim().to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == comp => {}
                    Some((open, _)) => {
                        return Err(cl.err(format!("END:{comp} while {open} is open")));
                    }
                    None => return Err(cl.err(format!("END:{comp} without BEGIN"))),
                }
                if comp == "VEVENT"
                    && stack.len() == 1
                    && let Some(d) = draft.take()
                {
                    events.extend(d.finish()?);
                }
            }
            _ => match (stack.len(), stack.last().map(|(c, _)| c.as_str())) {
                (2, Some("VEVENT")) => {
                    if let Some(d) = draft.as_mut() {
                        d.add(&cl)?;
                    }
                }
                (2, Some("VFREEBUSY")) if cl.name == "FREEBUSY" => {
                    collect_freebusy(&cl, horizon_end, &mut busy)?;
                }
                // VTIMEZONE (we use the tz database), VTODO, VALARM and the rest are ignored.
                _ => {}
            },
        }
    }
    if let Some((open, line)) = stack.last() {
        return Err(IcalError::Syntax { line: *line, message: format!("BEGIN:{open} is never closed") });
    }

    // Occurrences moved or cancelled by a RECURRENCE-ID override leave their master series.
    let mut overridden: HashMap<String, Exclusions> = HashMap::new();
    for ev in &events {
        if let Some((uid, rid)) = &ev.override_of {
            overridden.entry(uid.clone()).or_default().add(*rid);
        }
    }
    for ev in &events {
        let Some(series) = &ev.series else { continue };
        let extra = match (&ev.override_of, &ev.uid) {
            (None, Some(uid)) => overridden.get(uid),
            _ => None,
        };
        series.expand(extra, horizon_end, &mut busy)?;
    }

    busy.sort();
    busy.dedup();
    Ok(busy)
}

// ---------------------------------------------------------------------------------------
// Content lines

/// Physical lines joined into content lines, each with the 1-based line it starts on.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push_str(rest);
            continue;
        }
        if raw.trim().is_empty() {
            continue;
        }
        out.push((i + 1, raw.to_owned()));
    }
    out
}

fn is_begin_calendar(line: &str) -> bool {
    line.trim().eq_ignore_ascii_case("BEGIN:VCALENDAR")
}

/// One unfolded `NAME;PARAM=VALUE:value` line.
struct ContentLine {
    line: usize,
    name: String,
    params: Vec<(String, Vec<String>)>,
    value: String,
}

impl ContentLine {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.first()).map(String::as_str)
    }

    fn err(&self, message: impl Into<String>) -> IcalError {
        IcalError::Syntax { line: self.line, message: message.into() }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn parse_content_line(line: usize, s: &str) -> Result<ContentLine, IcalError> {
    let err = |m: String| IcalError::Syntax { line, message: m };
    let name_end = s.find([';', ':']).ok_or_else(|| err("expected ':' in content line".to_owned()))?;
    let name = &s[..name_end];
    if !is_name(name) {
        return Err(err(format!("invalid property name {name:?}")));
    }
    let mut rest = &s[name_end..];
    let mut params = Vec::new();
    while let Some(r) = rest.strip_prefix(';') {
        let eq = r.find(['=', ';', ':']).unwrap_or(r.len());
        let pname = &r[..eq];
        if !is_name(pname) || !r[eq..].starts_with('=') {
            return Err(err(format!("invalid parameter in {name}")));
        }
        let mut r = &r[eq + 1..];
        let mut values = Vec::new();
        loop {
            if let Some(q) = r.strip_prefix('"') {
                // Quoted values may hold ; : , which must not split the line.
                let close = q.find('"').ok_or_else(|| err(format!("unterminated quoted value in {name}")))?;
                values.push(q[..close].to_owned());
                r = &q[close + 1..];
            } else {
                let end = r.find([',', ';', ':']).unwrap_or(r.len());
                values.push(r[..end].to_owned());
                r = &r[end..];
            }
            match r.strip_prefix(',') {
                Some(next) => r = next,
                None => break,
            }
        }
        params.push((pname.to_ascii_uppercase(), values));
        rest = r;
    }
    let value = rest.strip_prefix(':').ok_or_else(|| err(format!("expected ':' after {name} and its parameters")))?;
    Ok(ContentLine { line, name: name.to_ascii_uppercase(), params, value: value.to_owned() })
}

// ---------------------------------------------------------------------------------------
// Values

/// A DATE or DATE-TIME value as written; `None` zone means floating.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Date(NaiveDate),
    DateTime(NaiveDateTime, Option<Tz>),
}

impl Value {
    /// The instant; dates are local midnight and floating times use `floating`.
    fn instant(self, floating: Tz) -> Option<DateTime<Utc>> {
        match self {
            Value::Date(d) => resolve(d.and_time(NaiveTime::MIN), HOME),
            Value::DateTime(n, z) => resolve(n, z.unwrap_or(floating)),
        }
    }

    /// Wall-clock time in `tz` (dates are local midnight there).
    fn local_in(self, tz: Tz) -> Option<NaiveDateTime> {
        match self {
            Value::Date(d) => Some(d.and_time(NaiveTime::MIN)),
            Value::DateTime(n, None) => Some(n),
            Value::DateTime(n, Some(z)) if z == tz => Some(n),
            Value::DateTime(n, Some(z)) => resolve(n, z).map(|u| u.with_timezone(&tz).naive_local()),
        }
    }
}

/// Local time to UTC the RFC 5545 way: a time in a DST gap uses the offset from before
/// the gap, an ambiguous time the first occurrence.
fn resolve(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let r = tz.from_local_datetime(&local);
    if let Some(d) = r.earliest() {
        return Some(d.with_timezone(&Utc));
    }
    for hours in 1..=48 {
        let before = local.checked_sub_signed(TimeDelta::try_hours(hours)?)?;
        if let Some(offset) = tz.offset_from_local_datetime(&before).earliest() {
            let secs = i64::from(offset.fix().local_minus_utc());
            let utc = local.checked_sub_signed(TimeDelta::try_seconds(secs)?)?;
            return Some(utc.and_utc());
        }
    }
    None
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.is_ascii() {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(digits(&s[0..4])?).ok()?, digits(&s[4..6])?, digits(&s[6..8])?)
}

fn parse_date_time(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 15 || !s.is_ascii() || !s[8..9].eq_ignore_ascii_case("T") {
        return None;
    }
    let time = NaiveTime::from_hms_opt(digits(&s[9..11])?, digits(&s[11..13])?, digits(&s[13..15])?)?;
    Some(parse_date(&s[0..8])?.and_time(time))
}

/// Parses a DATE or DATE-TIME; `date` forces the type, otherwise it is told by the shape.
fn parse_stamp(raw: &str, date: Option<bool>, tzid: Option<Tz>) -> Option<Value> {
    let raw = raw.trim();
    if date.unwrap_or(raw.len() == 8) {
        return parse_date(raw).map(Value::Date);
    }
    match raw.strip_suffix(['Z', 'z']) {
        Some(body) => parse_date_time(body).map(|n| Value::DateTime(n, Some(Tz::UTC))),
        None => parse_date_time(raw).map(|n| Value::DateTime(n, tzid)),
    }
}

/// DATE or DATE-TIME values of a property (comma-separated), honouring VALUE and TZID.
fn parse_times(cl: &ContentLine) -> Result<Vec<Value>, IcalError> {
    let date = match cl.param("VALUE") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("DATE") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("DATE-TIME") => Some(false),
        Some(v) => return Err(cl.err(format!("{} with VALUE={v} is not supported", cl.name))),
    };
    let tzid = match cl.param("TZID") {
        None => None,
        Some(id) => Some(lookup_tz(id).ok_or_else(|| cl.err(format!("unknown time zone TZID={id}")))?),
    };
    cl.value
        .split(',')
        .map(|v| {
            parse_stamp(v, date, tzid)
                .ok_or_else(|| cl.err(format!("invalid date or date-time {:?} in {}", v.trim(), cl.name)))
        })
        .collect()
}

fn parse_time(cl: &ContentLine) -> Result<Value, IcalError> {
    let mut values = parse_times(cl)?;
    match (values.pop(), values.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(cl.err(format!("{} must hold exactly one value", cl.name))),
    }
}

/// A TZID to a tz-database zone, tolerating the prefixes and Windows names exporters use.
fn lookup_tz(id: &str) -> Option<Tz> {
    let id = id.trim();
    // Outlook sometimes writes its display name, e.g. "(UTC+01:00) Amsterdam, ... Stockholm, Vienna".
    if id.contains("Stockholm") {
        return Some(HOME);
    }
    let mut candidate = id.trim_start_matches('/');
    loop {
        if let Ok(tz) = candidate.parse::<Tz>() {
            return Some(tz);
        }
        if let Some(tz) = windows_zone(candidate) {
            return Some(tz);
        }
        // "/mozilla.org/20050126_1/Europe/Stockholm" and similar: drop leading segments.
        let slash = candidate.find('/')?;
        candidate = &candidate[slash + 1..];
    }
}

/// The Windows zone names Exchange/Outlook use most around Sweden.
fn windows_zone(name: &str) -> Option<Tz> {
    use chrono_tz::{America, Atlantic, Europe};
    Some(match name {
        "W. Europe Standard Time" => Europe::Berlin,
        "Central Europe Standard Time" => Europe::Budapest,
        "Central European Standard Time" => Europe::Warsaw,
        "Romance Standard Time" => Europe::Paris,
        "GMT Standard Time" => Europe::London,
        "Greenwich Standard Time" => Atlantic::Reykjavik,
        "FLE Standard Time" => Europe::Helsinki,
        "GTB Standard Time" => Europe::Bucharest,
        "Eastern Standard Time" => America::New_York,
        "Central Standard Time" => America::Chicago,
        "Pacific Standard Time" => America::Los_Angeles,
        _ => return None,
    })
}

/// A DURATION: days are nominal (follow the wall clock across DST), seconds exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    days: i64,
    secs: i64,
}

fn parse_duration(s: &str) -> Option<Span> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let s = s.strip_prefix(['P', 'p'])?;
    let (mut days, mut secs) = (0i64, 0i64);
    let mut in_time = false;
    let mut any = false;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let c = c.to_ascii_uppercase();
        if c == 'T' {
            if in_time || !num.is_empty() {
                return None;
            }
            in_time = true;
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        match (in_time, c) {
            (false, 'W') => days = days.checked_add(n.checked_mul(7)?)?,
            (false, 'D') => days = days.checked_add(n)?,
            (true, 'H') => secs = secs.checked_add(n.checked_mul(3600)?)?,
            (true, 'M') => secs = secs.checked_add(n.checked_mul(60)?)?,
            (true, 'S') => secs = secs.checked_add(n)?,
            _ => return None,
        }
        any = true;
    }
    // Keep within what chrono can add without overflow (about 10 000 years).
    if !num.is_empty() || !any || days > 3_650_000 || secs > 315_360_000_000 {
        return None;
    }
    Some(if neg { Span { days: -days, secs: -secs } } else { Span { days, secs } })
}

/// A PERIOD `start/end` or `start/duration` as an interval.
fn parse_period(cl: &ContentLine, raw: &str, tzid: Option<Tz>) -> Result<Busy, IcalError> {
    let bad = || cl.err(format!("invalid period {:?} in {}", raw.trim(), cl.name));
    let (a, b) = raw.trim().split_once('/').ok_or_else(bad)?;
    let start = parse_stamp(a, Some(false), tzid).and_then(|v| v.instant(HOME)).ok_or_else(bad)?;
    let end = if b.trim_start_matches(['+', '-']).starts_with(['P', 'p']) {
        let span = parse_duration(b).ok_or_else(bad)?;
        // Periods are in UTC, where a nominal day is 24 hours.
        let secs = span.days.checked_mul(86_400).and_then(|d| d.checked_add(span.secs));
        secs.and_then(TimeDelta::try_seconds).and_then(|d| start.checked_add_signed(d)).ok_or_else(bad)?
    } else {
        parse_stamp(b, Some(false), tzid).and_then(|v| v.instant(HOME)).ok_or_else(bad)?
    };
    Ok(Busy { start, end })
}

fn collect_freebusy(cl: &ContentLine, horizon: DateTime<Utc>, out: &mut Vec<Busy>) -> Result<(), IcalError> {
    // FBTYPE defaults to BUSY, and unknown types count as busy (RFC 5545 3.2.9).
    if cl.param("FBTYPE").is_some_and(|t| t.eq_ignore_ascii_case("FREE")) {
        return Ok(());
    }
    for raw in cl.value.split(',').filter(|p| !p.trim().is_empty()) {
        let b = parse_period(cl, raw, None)?;
        if b.end > b.start && b.start < horizon {
            out.push(b);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Recurrence rules

/// A recurrence rule: the `rrule` crate's (RFC 5545 in full: DAILY to YEARLY, BYDAY=1MO,
/// BYMONTHDAY, BYSETPOS, WKST…), with UNTIL kept aside: calendars write it as a DATE or a
/// floating time, which the crate refuses beside a zoned DTSTART, so it is applied here.
#[derive(Debug, Clone)]
struct Rule {
    rule: rrule::RRule<rrule::Unvalidated>,
    until: Option<Value>,
    /// The RRULE's line, for errors found once DTSTART is known.
    line: usize,
}

fn parse_rule(cl: &ContentLine) -> Result<Rule, IcalError> {
    let mut until = None;
    let mut rest = Vec::new();
    let mut count = false;
    for part in cl.value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=').ok_or_else(|| cl.err(format!("RRULE part {part:?} has no '='")))?;
        if key.trim().eq_ignore_ascii_case("UNTIL") {
            let val = val.trim();
            until = Some(parse_stamp(val, None, None).ok_or_else(|| cl.err(format!("invalid RRULE UNTIL={val}")))?);
        } else {
            count |= key.trim().eq_ignore_ascii_case("COUNT");
            // RFC 5545: a positive integer (the crate takes 0 as "once").
            if key.trim().eq_ignore_ascii_case("INTERVAL") && digits(val.trim()).is_none_or(|n| n == 0) {
                return Err(cl.err(format!("invalid RRULE INTERVAL={}", val.trim())));
            }
            rest.push(part.to_ascii_uppercase());
        }
    }
    if count && until.is_some() {
        return Err(cl.err("RRULE with both COUNT and UNTIL"));
    }
    let text = rest.join(";");
    // RFC 5545 rule parts are ASCII; the rrule crate (0.14) slices BYDAY values by bytes and
    // panics on other characters (found by `just fuzz`), so refuse them first.
    if !text.is_ascii() {
        return Err(cl.err("RRULE may only hold ASCII letters, digits and punctuation"));
    }
    let rule = text.parse::<rrule::RRule<rrule::Unvalidated>>().map_err(|e| cl.err(format!("RRULE {text}: {e}")))?;
    Ok(Rule { rule, until, line: cl.line })
}

/// Where a rule stops, in the terms UNTIL was written in.
enum Until {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

/// Latest instant a rule is expanded to, whatever the horizon (the crate works in local time,
/// which must not overflow).
fn expansion_limit() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9000, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Local start times generated by `rule` after `start` (DTSTART, the first instance), before
/// `horizon`; at most [`MAX_INSTANCES`] of them.
fn rule_starts(
    start: NaiveDateTime,
    tz: Tz,
    rule: &Rule,
    horizon: DateTime<Utc>,
    out: &mut Vec<NaiveDateTime>,
) -> Result<(), IcalError> {
    let until = match rule.until {
        None => None,
        Some(Value::Date(d)) => Some(Until::Date(d)),
        // A floating UNTIL is in the event's own zone.
        Some(v) => match v.instant(tz) {
            Some(i) => Some(Until::Instant(i)),
            None => return Ok(()),
        },
    };
    let zone = rrule::Tz::Tz(tz);
    let Some(first) = resolve(start, tz) else {
        return Ok(());
    };
    let set = rule
        .rule
        .clone()
        .build(first.with_timezone(&zone))
        .map_err(|e| IcalError::Syntax { line: rule.line, message: format!("RRULE: {e}") })?;
    let horizon = horizon.min(expansion_limit());
    // DTSTART always counts as the first instance (RFC 5545 3.8.5.3); the crate counts it too
    // when it matches the rule.
    let expanded = set.before(horizon.with_timezone(&zone)).all(MAX_INSTANCES);
    if expanded.limited {
        return Err(IcalError::Syntax {
            line: rule.line,
            message: format!("RRULE makes more than {MAX_INSTANCES} instances before the horizon"),
        });
    }
    for at in expanded.dates {
        let local = at.naive_local();
        let at = at.with_timezone(&Utc);
        if local <= start {
            continue;
        }
        let past_until = match &until {
            None => false,
            Some(Until::Date(d)) => local.date() > *d,
            Some(Until::Instant(i)) => at > *i,
        };
        if past_until {
            break;
        }
        if at < horizon {
            out.push(local);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Events

/// How long each instance lasts.
#[derive(Debug, Clone, Copy)]
enum Length {
    /// DTEND in DTSTART's own frame: the wall-clock difference, so 09–10 stays 09–10 after DST.
    Wall(TimeDelta),
    /// DTEND in another zone: the exact elapsed time.
    Exact(TimeDelta),
    /// DURATION.
    Span(Span),
}

/// Instances (DATE values) or instants (DATE-TIME values) removed from a series.
#[derive(Debug, Default)]
struct Exclusions {
    dates: BTreeSet<NaiveDate>,
    instants: BTreeSet<DateTime<Utc>>,
    floating: Vec<NaiveDateTime>,
}

impl Exclusions {
    fn add(&mut self, v: Value) {
        match v {
            Value::Date(d) => {
                self.dates.insert(d);
            }
            // Floating values are resolved in the series' zone when matched.
            Value::DateTime(n, None) => self.floating.push(n),
            Value::DateTime(n, Some(z)) => {
                if let Some(i) = resolve(n, z) {
                    self.instants.insert(i);
                }
            }
        }
    }

    fn hits(&self, local: NaiveDateTime, at: DateTime<Utc>, tz: Tz) -> bool {
        self.dates.contains(&local.date())
            || self.instants.contains(&at)
            || self.floating.iter().any(|n| resolve(*n, tz) == Some(at))
    }
}

/// The busy-producing part of a VEVENT.
#[derive(Debug)]
struct Series {
    tz: Tz,
    start: NaiveDateTime,
    length: Length,
    rules: Vec<Rule>,
    rdates: Vec<Value>,
    rperiods: Vec<Busy>,
    exclusions: Exclusions,
}

impl Series {
    fn end_of(&self, local: NaiveDateTime, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.length {
            Length::Wall(d) => resolve(local.checked_add_signed(d)?, self.tz),
            Length::Exact(d) => at.checked_add_signed(d),
            Length::Span(s) => {
                let day_end = local.checked_add_signed(TimeDelta::try_days(s.days)?)?;
                resolve(day_end, self.tz)?.checked_add_signed(TimeDelta::try_seconds(s.secs)?)
            }
        }
    }

    fn expand(&self, extra: Option<&Exclusions>, horizon: DateTime<Utc>, out: &mut Vec<Busy>) -> Result<(), IcalError> {
        let mut starts = vec![self.start];
        for rule in &self.rules {
            rule_starts(self.start, self.tz, rule, horizon, &mut starts)?;
        }
        starts.extend(self.rdates.iter().filter_map(|v| v.local_in(self.tz)));
        starts.sort_unstable();
        starts.dedup();
        for local in starts {
            let Some(at) = resolve(local, self.tz) else {
                continue;
            };
            if at >= horizon
                || self.exclusions.hits(local, at, self.tz)
                || extra.is_some_and(|e| e.hits(local, at, self.tz))
            {
                continue;
            }
            if let Some(end) = self.end_of(local, at)
                && end > at
            {
                out.push(Busy { start: at, end });
            }
        }
        out.extend(self.rperiods.iter().filter(|b| b.end > b.start && b.start < horizon));
        Ok(())
    }
}

/// A parsed VEVENT: maybe busy time, maybe an override of another event's instance.
#[derive(Debug)]
struct Finished {
    uid: Option<String>,
    override_of: Option<(String, Value)>,
    series: Option<Series>,
}

/// Properties of a VEVENT as they are read.
struct EventDraft {
    begin_line: usize,
    uid: Option<String>,
    start: Option<Value>,
    end: Option<Value>,
    duration: Option<Span>,
    rules: Vec<Rule>,
    rdates: Vec<Value>,
    rperiods: Vec<Busy>,
    exdates: Vec<Value>,
    recurrence_id: Option<Value>,
    free: bool,
}

impl EventDraft {
    fn new(begin_line: usize) -> Self {
        EventDraft {
            begin_line,
            uid: None,
            start: None,
            end: None,
            duration: None,
            rules: Vec::new(),
            rdates: Vec::new(),
            rperiods: Vec::new(),
            exdates: Vec::new(),
            recurrence_id: None,
            free: false,
        }
    }

    fn add(&mut self, cl: &ContentLine) -> Result<(), IcalError> {
        match cl.name.as_str() {
            "UID" => self.uid = Some(cl.value.trim().to_owned()),
            "DTSTART" => self.start = Some(parse_time(cl)?),
            "DTEND" => self.end = Some(parse_time(cl)?),
            "DURATION" => {
                self.duration =
                    Some(parse_duration(&cl.value).ok_or_else(|| cl.err(format!("invalid DURATION {:?}", cl.value)))?);
            }
            "RRULE" => self.rules.push(parse_rule(cl)?),
            "EXDATE" => self.exdates.extend(parse_times(cl)?),
            "RDATE" => {
                if cl.param("VALUE").is_some_and(|v| v.eq_ignore_ascii_case("PERIOD")) {
                    let tzid = match cl.param("TZID") {
                        None => None,
                        Some(id) => Some(lookup_tz(id).ok_or_else(|| cl.err(format!("unknown time zone TZID={id}")))?),
                    };
                    for raw in cl.value.split(',') {
                        self.rperiods.push(parse_period(cl, raw, tzid)?);
                    }
                } else {
                    self.rdates.extend(parse_times(cl)?);
                }
            }
            "RECURRENCE-ID" => self.recurrence_id = Some(parse_time(cl)?),
            "TRANSP" => self.free |= cl.value.trim().eq_ignore_ascii_case("TRANSPARENT"),
            "STATUS" => self.free |= cl.value.trim().eq_ignore_ascii_case("CANCELLED"),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<Finished>, IcalError> {
        let override_of = match (&self.uid, self.recurrence_id) {
            (Some(uid), Some(rid)) => Some((uid.clone(), rid)),
            _ => None,
        };
        if self.free {
            // Not busy, but a cancelled override still removes its master's instance.
            return Ok(override_of.map(|o| Finished { uid: self.uid, override_of: Some(o), series: None }));
        }
        let start = self
            .start
            .ok_or_else(|| IcalError::Syntax { line: self.begin_line, message: "VEVENT without DTSTART".to_owned() })?;
        let (tz, local) = match start {
            Value::Date(d) => (HOME, d.and_time(NaiveTime::MIN)),
            Value::DateTime(n, z) => (z.unwrap_or(HOME), n),
        };
        let out_of_range =
            || IcalError::Syntax { line: self.begin_line, message: "VEVENT date out of range".to_owned() };
        let length = match (self.end, self.duration) {
            (Some(end), _) => {
                let same_frame = match (start, end) {
                    (Value::Date(_), Value::Date(_)) => true,
                    (Value::DateTime(_, a), Value::DateTime(_, b)) => a == b,
                    _ => false,
                };
                if same_frame {
                    Length::Wall(end.local_in(tz).ok_or_else(out_of_range)? - local)
                } else {
                    let a = start.instant(HOME).ok_or_else(out_of_range)?;
                    let b = end.instant(HOME).ok_or_else(out_of_range)?;
                    Length::Exact(b - a)
                }
            }
            (None, Some(span)) => Length::Span(span),
            (None, None) if matches!(start, Value::Date(_)) => Length::Span(Span { days: 1, secs: 0 }),
            // A DATE-TIME with neither DTEND nor DURATION takes no time (RFC 5545 3.6.1).
            (None, None) => Length::Exact(TimeDelta::zero()),
        };
        let mut exclusions = Exclusions::default();
        for v in self.exdates {
            exclusions.add(v);
        }
        Ok(Some(Finished {
            uid: self.uid,
            override_of,
            series: Some(Series {
                tz,
                start: local,
                length,
                rules: self.rules,
                rdates: self.rdates,
                rperiods: self.rperiods,
                exclusions,
            }),
        }))
    }
}

// ---------------------------------------------------------------------------------------
// Invites

/// One attendee of a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    /// Display name (CN).
    pub name: String,
    /// E-mail address, written as a `mailto:` URI.
    pub email: String,
    /// Required (REQ-PARTICIPANT) or optional (OPT-PARTICIPANT).
    pub required: bool,
}

/// A meeting invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Stable identity across updates, e.g. `"<meeting uuid>@lotsen"`.
    pub uid: String,
    /// Bumped whenever the meeting changes (moves or is cancelled).
    pub sequence: u32,
    /// When this version of the invite was made (DTSTAMP).
    pub stamp: DateTime<Utc>,
    /// Meeting start.
    pub start: DateTime<Utc>,
    /// Meeting end.
    pub end: DateTime<Utc>,
    /// Title.
    pub summary: String,
    /// Free text; omitted from the output when empty.
    pub description: String,
    /// Place or meeting link; omitted from the output when empty.
    pub location: String,
    /// Who sends the invite.
    pub organizer: Attendee,
    /// Who is invited.
    pub attendees: Vec<Attendee>,
    /// Render as METHOD:CANCEL with STATUS:CANCELLED.
    pub cancelled: bool,
}

/// The invite as an RFC 5545 VCALENDAR (METHOD:REQUEST, or CANCEL), written with the
/// `icalendar` crate's builder: CRLF line ends, lines folded at 75 octets, TEXT values escaped.
pub fn render_invite(invite: &Invite) -> String {
    use icalendar::{Component as _, EventLike as _};
    let mut event = icalendar::Event::new();
    event
        .uid(&plain(&invite.uid))
        .sequence(invite.sequence)
        .timestamp(invite.stamp)
        .starts(invite.start)
        .ends(invite.end)
        .summary(&plain(&invite.summary))
        .status(if invite.cancelled { icalendar::EventStatus::Cancelled } else { icalendar::EventStatus::Confirmed })
        .add_property("TRANSP", "OPAQUE");
    if !invite.description.is_empty() {
        event.description(&plain(&invite.description));
    }
    if !invite.location.is_empty() {
        event.location(&plain(&invite.location));
    }
    event.append_property(person(&invite.organizer, "ORGANIZER", None));
    for a in &invite.attendees {
        let role = if a.required { "REQ-PARTICIPANT" } else { "OPT-PARTICIPANT" };
        event.append_multi_property(person(a, "ATTENDEE", Some(role)));
    }
    let mut calendar = icalendar::Calendar::empty();
    calendar
        .append_property(("VERSION", "2.0"))
        .append_property(("PRODID", "-//Lotsen//Lotsen//SV"))
        .append_property(("CALSCALE", "GREGORIAN"))
        .append_property(("METHOD", if invite.cancelled { "CANCEL" } else { "REQUEST" }))
        .push(event.done());
    // The crate folds continuation lines at 76 octets (space + 75); RFC 5545 3.1 counts the
    // space, so the lines are folded again here.
    let mut out = String::new();
    for line in icalendar::parser::unfold(&calendar.to_string()).split("\r\n").filter(|l| !l.is_empty()) {
        push_folded(&mut out, line);
    }
    out
}

/// Appends `line` folded so no physical line exceeds 75 octets, never splitting a character.
fn push_folded(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = 75;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space of a continuation line counts towards its 75.
        limit = 74;
    }
}

/// An ORGANIZER or ATTENDEE property: `mailto:` with the display name as CN.
fn person(who: &Attendee, key: &str, role: Option<&str>) -> icalendar::Property {
    let mut p = icalendar::Property::new(key, mailto(&who.email));
    if let Some(cn) = cn_param(&who.name) {
        p.add_parameter("CN", &cn);
    }
    if let Some(role) = role {
        p.add_parameter("ROLE", role).add_parameter("PARTSTAT", "NEEDS-ACTION").add_parameter("RSVP", "TRUE");
    }
    p.done()
}

/// TEXT without control characters other than tab and line breaks (RFC 5545 3.3.11 has no
/// escape for them); a lone CR is a line break.
fn plain(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// The CN parameter value, or none for an empty name. A parameter value cannot contain DQUOTE
/// or control characters at all; the builder quotes one holding , ; or :.
fn cn_param(name: &str) -> Option<String> {
    let clean: String = name.chars().filter(|c| *c != '"' && (!c.is_control() || *c == '\t')).collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_owned())
}

fn mailto(email: &str) -> String {
    // Whitespace or control characters in an address would break the line.
    let clean: String = email.chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect();
    format!("mailto:{clean}")
}

// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn far() -> DateTime<Utc> {
        utc(2030, 1, 1, 0, 0)
    }

    fn busy(a: DateTime<Utc>, b: DateTime<Utc>) -> Busy {
        Busy { start: a, end: b }
    }

    /// A VCALENDAR around `body` (lines separated by `\n`), with CRLF line ends.
    fn cal(body: &str) -> String {
        let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
        for l in body.lines() {
            s.push_str(l);
            s.push_str("\r\n");
        }
        s.push_str("END:VCALENDAR\r\n");
        s
    }

    fn event(props: &str) -> String {
        cal(&format!("BEGIN:VEVENT\nUID:e1@test\nDTSTAMP:20260101T000000Z\n{props}\nEND:VEVENT"))
    }

    fn one(props: &str) -> Vec<Busy> {
        parse_busy(&event(props), far()).unwrap()
    }

    #[test]
    fn a_rule_with_a_non_ascii_weekday_is_an_error_not_a_panic() {
        // Found by `just fuzz`: rrule 0.14 panicked slicing "¡1" inside BYDAY.
        let e = "DTSTART:20260612T090000Z\nDTEND:20260612T100000Z\nRRULE:FREQ=WEEKLY;BYDAY=\u{a1}1;COUNT=3";
        let err = parse_busy(&event(e), far()).unwrap_err();
        assert!(err.to_string().contains("RRULE may only hold ASCII"), "{err}");
    }

    #[test]
    fn tzid_stockholm_summer_is_utc_plus_two() {
        let b = one("DTSTART;TZID=Europe/Stockholm:20260612T090000\nDTEND;TZID=Europe/Stockholm:20260612T100000");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn tzid_stockholm_winter_is_utc_plus_one() {
        let b = one("DTSTART;TZID=Europe/Stockholm:20260115T090000\nDTEND;TZID=Europe/Stockholm:20260115T100000");
        assert_eq!(b, vec![busy(utc(2026, 1, 15, 8, 0), utc(2026, 1, 15, 9, 0))]);
    }

    #[test]
    fn tzid_with_leading_slash_quotes_and_prefixes() {
        let want = vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))];
        for tzid in [
            "/Europe/Stockholm",
            "\"Europe/Stockholm\"",
            "/mozilla.org/20050126_1/Europe/Stockholm",
            "W. Europe Standard Time",
            "\"(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna\"",
        ] {
            let b = one(&format!("DTSTART;TZID={tzid}:20260612T090000\nDTEND;TZID={tzid}:20260612T100000"));
            assert_eq!(b, want, "{tzid}");
        }
    }

    #[test]
    fn other_iana_zone() {
        let b = one("DTSTART;TZID=America/New_York:20260612T090000\nDURATION:PT1H");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 13, 0), utc(2026, 6, 12, 14, 0))]);
    }

    #[test]
    fn unknown_tzid_is_a_syntax_error_on_its_line() {
        let text = event("DTSTART;TZID=Mars/Olympus:20260612T090000\nDURATION:PT1H");
        // Lines: VCALENDAR, VERSION, PRODID, VEVENT, UID, DTSTAMP, DTSTART (7).
        match parse_busy(&text, far()) {
            Err(IcalError::Syntax { line: 7, message }) => assert!(message.contains("Mars")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn utc_times() {
        let b = one("DTSTART:20260612T090000Z\nDTEND:20260612T103000Z");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 9, 0), utc(2026, 6, 12, 10, 30))]);
    }

    #[test]
    fn floating_time_is_stockholm() {
        let b = one("DTSTART:20260612T090000\nDTEND:20260612T100000");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn mixed_zones_use_exact_length() {
        let b = one("DTSTART;TZID=Europe/Stockholm:20260612T090000\nDTEND:20260612T080000Z");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn all_day_date_is_stockholm_midnight_to_midnight() {
        let want = vec![busy(utc(2026, 6, 11, 22, 0), utc(2026, 6, 12, 22, 0))];
        assert_eq!(one("DTSTART;VALUE=DATE:20260612\nDTEND;VALUE=DATE:20260613"), want);
        // No DTEND on a DATE: one day. VALUE may be left out.
        assert_eq!(one("DTSTART;VALUE=DATE:20260612"), want);
        assert_eq!(one("DTSTART:20260612"), want);
        // Winter: +01:00.
        assert_eq!(
            one("DTSTART;VALUE=DATE:20260112\nDTEND;VALUE=DATE:20260114"),
            vec![busy(utc(2026, 1, 11, 23, 0), utc(2026, 1, 13, 23, 0))]
        );
    }

    #[test]
    fn all_day_across_dst_change_ends_at_local_midnight() {
        // 2026-03-29 is the spring-forward day: 23 hours long.
        let b = one("DTSTART;VALUE=DATE:20260329\nDURATION:P1D");
        assert_eq!(b, vec![busy(utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))]);
    }

    #[test]
    fn durations() {
        assert_eq!(
            one("DTSTART:20260612T090000Z\nDURATION:PT1H30M"),
            vec![busy(utc(2026, 6, 12, 9, 0), utc(2026, 6, 12, 10, 30))]
        );
        assert_eq!(
            one("DTSTART:20260612T090000Z\nDURATION:P1DT2H"),
            vec![busy(utc(2026, 6, 12, 9, 0), utc(2026, 6, 13, 11, 0))]
        );
        assert_eq!(
            one("DTSTART:20260612T090000Z\nDURATION:P1W"),
            vec![busy(utc(2026, 6, 12, 9, 0), utc(2026, 6, 19, 9, 0))]
        );
        assert_eq!(
            one("DTSTART:20260612T090000Z\nDURATION:+PT45S"),
            vec![busy(utc(2026, 6, 12, 9, 0), utc(2026, 6, 12, 9, 0) + TimeDelta::seconds(45))]
        );
        // Negative or empty durations take no time.
        assert!(one("DTSTART:20260612T090000Z\nDURATION:-PT1H").is_empty());
        assert!(one("DTSTART:20260612T090000Z\nDURATION:PT0S").is_empty());
        assert!(matches!(
            parse_busy(&event("DTSTART:20260612T090000Z\nDURATION:1H"), far()),
            Err(IcalError::Syntax { line: 8, .. })
        ));
    }

    #[test]
    fn date_time_without_end_takes_no_time() {
        assert!(one("DTSTART:20260612T090000Z").is_empty());
    }

    #[test]
    fn transparent_and_cancelled_are_not_busy() {
        let base = "DTSTART:20260612T090000Z\nDTEND:20260612T100000Z";
        assert!(one(&format!("{base}\nTRANSP:TRANSPARENT")).is_empty());
        assert!(one(&format!("{base}\nSTATUS:CANCELLED")).is_empty());
        assert!(one(&format!("{base}\nstatus:cancelled")).is_empty());
        assert_eq!(one(&format!("{base}\nTRANSP:OPAQUE\nSTATUS:CONFIRMED")).len(), 1);
    }

    #[test]
    fn property_names_are_case_insensitive() {
        let b = one("dtstart;tzid=Europe/Stockholm:20260612T090000\nDtEnd;TzId=Europe/Stockholm:20260612T100000");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn folded_long_lines() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n\
            SUMMARY:A very long summary that goes on and on and on past the seventy-five \r\n \
            octet limit, so it has to be folded\r\n\
            DTSTART;TZID=Europe/\r\n Stock\r\n\tholm:2026061\r\n 2T090000\r\n\
            DTEND;TZID=Europe/Stockholm:20260612T1000\r\n 00\r\n\
            END:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(parse_busy(text, far()).unwrap(), vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn crlf_and_lf_files_agree() {
        let crlf =
            event("DTSTART;TZID=Europe/Stockholm:20260612T090000\nDTEND;TZID=Europe/Stockholm:20260612T1\n 00000");
        let lf = crlf.replace("\r\n", "\n");
        assert!(!lf.contains('\r'));
        let a = parse_busy(&crlf, far()).unwrap();
        assert_eq!(a, vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
        assert_eq!(parse_busy(&lf, far()).unwrap(), a);
    }

    #[test]
    fn byte_order_mark_and_text_around_the_calendar() {
        let text = format!("\u{feff}junk before\n{}trailing junk", event("DTSTART:20260612T090000Z\nDURATION:PT1H"));
        assert_eq!(parse_busy(&text, far()).unwrap().len(), 1);
    }

    #[test]
    fn vfreebusy_periods() {
        let text = cal("BEGIN:VFREEBUSY\n\
            UID:fb@test\n\
            DTSTART:20260601T000000Z\n\
            DTEND:20260701T000000Z\n\
            FREEBUSY:20260612T070000Z/20260612T080000Z,20260612T120000Z/PT30M\n\
            FREEBUSY;FBTYPE=FREE:20260612T080000Z/20260612T120000Z\n\
            FREEBUSY;FBTYPE=BUSY-TENTATIVE:20260613T090000Z/20260613T100000Z\n\
            FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20260614T090000Z/P1D\n\
            FREEBUSY;FBTYPE=BUSY:20260610T060000Z/20260610T063000Z\n\
            END:VFREEBUSY");
        assert_eq!(
            parse_busy(&text, far()).unwrap(),
            vec![
                busy(utc(2026, 6, 10, 6, 0), utc(2026, 6, 10, 6, 30)),
                busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0)),
                busy(utc(2026, 6, 12, 12, 0), utc(2026, 6, 12, 12, 30)),
                busy(utc(2026, 6, 13, 9, 0), utc(2026, 6, 13, 10, 0)),
                busy(utc(2026, 6, 14, 9, 0), utc(2026, 6, 15, 9, 0)),
            ]
        );
    }

    #[test]
    fn bad_freebusy_period_names_its_line() {
        let text = cal("BEGIN:VFREEBUSY\nFREEBUSY:20260612T070000Z\nEND:VFREEBUSY");
        assert!(matches!(parse_busy(&text, far()), Err(IcalError::Syntax { line: 5, .. })));
    }

    #[test]
    fn vtimezone_vtodo_and_valarm_are_ignored() {
        let text = cal("BEGIN:VTIMEZONE\n\
            TZID:Europe/Stockholm\n\
            BEGIN:STANDARD\n\
            DTSTART:19701025T030000\n\
            TZOFFSETFROM:+0200\n\
            TZOFFSETTO:+0100\n\
            RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\n\
            END:STANDARD\n\
            END:VTIMEZONE\n\
            BEGIN:VTODO\n\
            DTSTART:20260612T090000Z\n\
            DUE:20260613T090000Z\n\
            RRULE:FREQ=MONTHLY\n\
            END:VTODO\n\
            BEGIN:VEVENT\n\
            DTSTART;TZID=Europe/Stockholm:20260612T090000\n\
            DTEND;TZID=Europe/Stockholm:20260612T100000\n\
            BEGIN:VALARM\n\
            ACTION:DISPLAY\n\
            TRIGGER:-PT15M\n\
            DURATION:PT5H\n\
            END:VALARM\n\
            END:VEVENT");
        assert_eq!(parse_busy(&text, far()).unwrap(), vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn quoted_parameter_values_may_hold_separators() {
        let b = one("DTSTART;X-NOTE=\"a;b:c,d\";TZID=Europe/Stockholm:20260612T090000\nDURATION:PT1H");
        assert_eq!(b, vec![busy(utc(2026, 6, 12, 7, 0), utc(2026, 6, 12, 8, 0))]);
    }

    #[test]
    fn weekly_byday_count_keeps_local_time_across_dst() {
        // 2026-10-19 is a Monday; summer time ends Sunday 2026-10-25.
        let b = one("DTSTART;TZID=Europe/Stockholm:20261019T090000\n\
             DTEND;TZID=Europe/Stockholm:20261019T100000\n\
             RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4");
        assert_eq!(
            b,
            vec![
                busy(utc(2026, 10, 19, 7, 0), utc(2026, 10, 19, 8, 0)),
                busy(utc(2026, 10, 21, 7, 0), utc(2026, 10, 21, 8, 0)),
                busy(utc(2026, 10, 26, 8, 0), utc(2026, 10, 26, 9, 0)),
                busy(utc(2026, 10, 28, 8, 0), utc(2026, 10, 28, 9, 0)),
            ]
        );
    }

    #[test]
    fn weekly_without_byday_uses_dtstart_weekday_and_interval() {
        let b = one("DTSTART:20260601T090000Z\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3");
        let starts: Vec<_> = b.iter().map(|x| x.start).collect();
        assert_eq!(starts, vec![utc(2026, 6, 1, 9, 0), utc(2026, 6, 15, 9, 0), utc(2026, 6, 29, 9, 0)]);
    }

    #[test]
    fn wkst_matters_for_biweekly_byday() {
        // RFC 5545's own example: DTSTART Tue 1997-08-05, every 2nd week on TU,SU, COUNT=4.
        let rule = |wkst: &str| {
            one(&format!(
                "DTSTART:19970805T090000Z\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST={wkst}"
            ))
            .iter()
            .map(|b| b.start.day())
            .collect::<Vec<_>>()
        };
        assert_eq!(rule("MO"), vec![5, 10, 19, 24]);
        assert_eq!(rule("SU"), vec![5, 17, 19, 31]);
    }

    #[test]
    fn daily_until_date_time_and_date() {
        let starts = |rule: &str| {
            one(&format!("DTSTART;TZID=Europe/Stockholm:20260608T090000\nDURATION:PT1H\nRRULE:{rule}"))
                .iter()
                .map(|b| b.start)
                .collect::<Vec<_>>()
        };
        let want: Vec<_> = (8..=12).map(|d| utc(2026, 6, d, 7, 0)).collect();
        assert_eq!(starts("FREQ=DAILY;UNTIL=20260612T070000Z"), want);
        assert_eq!(starts("FREQ=DAILY;UNTIL=20260612"), want);
        assert_eq!(starts("FREQ=DAILY;UNTIL=20260612T065959Z"), want[..4].to_vec());
        assert_eq!(starts("FREQ=DAILY;UNTIL=20260612T090000"), want);
        // BYDAY on a daily rule filters: the 13th and 14th are a weekend.
        assert_eq!(
            starts("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=6"),
            vec![
                utc(2026, 6, 8, 7, 0),
                utc(2026, 6, 9, 7, 0),
                utc(2026, 6, 10, 7, 0),
                utc(2026, 6, 11, 7, 0),
                utc(2026, 6, 12, 7, 0),
                utc(2026, 6, 15, 7, 0),
            ]
        );
    }

    #[test]
    fn exdate_removes_occurrences() {
        let base = "DTSTART;TZID=Europe/Stockholm:20260601T090000\n\
                    DTEND;TZID=Europe/Stockholm:20260601T100000\n\
                    RRULE:FREQ=WEEKLY;COUNT=4";
        let starts = |ex: &str| one(&format!("{base}\n{ex}")).iter().map(|b| b.start).collect::<Vec<_>>();
        assert_eq!(
            starts("EXDATE;TZID=Europe/Stockholm:20260615T090000"),
            vec![utc(2026, 6, 1, 7, 0), utc(2026, 6, 8, 7, 0), utc(2026, 6, 22, 7, 0)]
        );
        assert_eq!(
            starts("EXDATE:20260608T070000Z,20260622T070000Z"),
            vec![utc(2026, 6, 1, 7, 0), utc(2026, 6, 15, 7, 0)]
        );
        assert_eq!(
            starts("EXDATE;VALUE=DATE:20260601\nEXDATE:20260615T090000"),
            vec![utc(2026, 6, 8, 7, 0), utc(2026, 6, 22, 7, 0)]
        );
    }

    #[test]
    fn horizon_cuts_an_unbounded_rule() {
        let text = event("DTSTART;TZID=Europe/Stockholm:20260601T090000\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;INTERVAL=2");
        let starts: Vec<_> = parse_busy(&text, utc(2026, 7, 1, 0, 0)).unwrap().iter().map(|b| b.start).collect();
        assert_eq!(starts, vec![utc(2026, 6, 1, 7, 0), utc(2026, 6, 15, 7, 0), utc(2026, 6, 29, 7, 0)]);
        // Exclusive: an occurrence starting exactly at the horizon is left out.
        assert_eq!(parse_busy(&text, utc(2026, 6, 29, 7, 0)).unwrap().len(), 2);
        // Single events past the horizon are left out too.
        assert!(
            parse_busy(&event("DTSTART:20260612T090000Z\nDURATION:PT1H"), utc(2026, 6, 1, 0, 0)).unwrap().is_empty()
        );
    }

    #[test]
    fn daily_with_far_horizon_is_bounded() {
        let text = event("DTSTART:20260601T090000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY");
        let b = parse_busy(&text, utc(2036, 6, 1, 0, 0)).unwrap();
        assert_eq!(b.len(), 3653);
        // Too many instances before the horizon: an error on the rule's line, never a silent cut
        // that would drop today's busy time.
        match parse_busy(&text, DateTime::<Utc>::MAX_UTC) {
            Err(IcalError::Syntax { line: 9, message }) => assert!(message.contains("instances"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn monthly_yearly_and_numbered_weekdays_expand() {
        let starts = |dtstart: &str, rule: &str| {
            one(&format!("DTSTART;TZID=Europe/Stockholm:{dtstart}\nDURATION:PT1H\nRRULE:{rule}"))
                .iter()
                .map(|b| b.start)
                .collect::<Vec<_>>()
        };
        // The first of every month at 09:00 local, across the change to winter time.
        assert_eq!(
            starts("20260901T090000", "FREQ=MONTHLY;BYMONTHDAY=1;COUNT=3"),
            vec![utc(2026, 9, 1, 7, 0), utc(2026, 10, 1, 7, 0), utc(2026, 11, 1, 8, 0)]
        );
        // The first Monday of each month (a ledningsgrupp), and the last Friday.
        assert_eq!(
            starts("20260907T090000", "FREQ=MONTHLY;BYDAY=1MO;COUNT=3"),
            vec![utc(2026, 9, 7, 7, 0), utc(2026, 10, 5, 7, 0), utc(2026, 11, 2, 8, 0)]
        );
        assert_eq!(
            starts("20260925T090000", "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;COUNT=2"),
            vec![utc(2026, 9, 25, 7, 0), utc(2026, 10, 30, 8, 0)]
        );
        // Yearly: the kick-off every second week of January, as a weekly rule inside a year.
        assert_eq!(
            starts("20260601T090000", "FREQ=YEARLY;COUNT=3"),
            vec![utc(2026, 6, 1, 7, 0), utc(2027, 6, 1, 7, 0), utc(2028, 6, 1, 7, 0)]
        );
    }

    #[test]
    fn an_invalid_rrule_names_its_line() {
        for bad in [
            "FREQ=SOMETIMES",
            "FREQ=WEEKLY;BYDAY=XX",
            "FREQ=DAILY;COUNT=2;UNTIL=20260701",
            "INTERVAL=2",
            "FREQ=WEEKLY;INTERVAL=0",
        ] {
            let text = event(&format!("DTSTART:20260601T090000Z\nDURATION:PT1H\nRRULE:{bad}"));
            match parse_busy(&text, far()) {
                Err(IcalError::Syntax { line: 9, message }) => assert!(message.contains("RRULE"), "{message}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_error_line_is_the_physical_start_of_a_folded_line() {
        let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260601T090000Z\nDURATION:PT1H\n\
                    RRULE:FREQ=WEEKLY;\n INTERVAL=1;\n FREQ=YEARLY\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(matches!(parse_busy(text, far()), Err(IcalError::Syntax { line: 5, .. })));
        let text = "BEGIN:VCALENDAR\n\nBEGIN:VEVENT\nthis line has no colon\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(matches!(parse_busy(text, far()), Err(IcalError::Syntax { line: 4, .. })));
    }

    #[test]
    fn structure_errors() {
        let unclosed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260601T090000Z\n";
        assert!(matches!(parse_busy(unclosed, far()), Err(IcalError::Syntax { line: 2, .. })));
        let crossed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VTODO\nEND:VCALENDAR\n";
        assert!(matches!(parse_busy(crossed, far()), Err(IcalError::Syntax { line: 3, .. })));
        let no_start = cal("BEGIN:VEVENT\nUID:x\nDTEND:20260601T090000Z\nEND:VEVENT");
        assert!(matches!(parse_busy(&no_start, far()), Err(IcalError::Syntax { line: 4, .. })));
    }

    #[test]
    fn garbage_is_not_a_calendar() {
        assert_eq!(parse_busy("hello world\nthis: is not ical", far()), Err(IcalError::NotCalendar));
        assert_eq!(parse_busy("", far()), Err(IcalError::NotCalendar));
        assert_eq!(
            parse_busy("BEGIN:VEVENT\nDTSTART:20260601T090000Z\nEND:VEVENT\n", far()),
            Err(IcalError::NotCalendar)
        );
    }

    #[test]
    fn recurrence_id_overrides_move_and_cancel_instances() {
        let text = cal("BEGIN:VEVENT\n\
            UID:series@test\n\
            DTSTART;TZID=Europe/Stockholm:20260601T090000\n\
            DTEND;TZID=Europe/Stockholm:20260601T100000\n\
            RRULE:FREQ=WEEKLY;COUNT=3\n\
            END:VEVENT\n\
            BEGIN:VEVENT\n\
            UID:series@test\n\
            RECURRENCE-ID;TZID=Europe/Stockholm:20260608T090000\n\
            DTSTART;TZID=Europe/Stockholm:20260609T130000\n\
            DTEND;TZID=Europe/Stockholm:20260609T140000\n\
            END:VEVENT\n\
            BEGIN:VEVENT\n\
            UID:series@test\n\
            RECURRENCE-ID:20260615T070000Z\n\
            STATUS:CANCELLED\n\
            END:VEVENT");
        assert_eq!(
            parse_busy(&text, far()).unwrap(),
            vec![
                busy(utc(2026, 6, 1, 7, 0), utc(2026, 6, 1, 8, 0)),
                busy(utc(2026, 6, 9, 11, 0), utc(2026, 6, 9, 12, 0)),
            ]
        );
    }

    #[test]
    fn rdate_adds_instances() {
        let b = one("DTSTART;TZID=Europe/Stockholm:20260601T090000\nDURATION:PT1H\n\
             RDATE;TZID=Europe/Stockholm:20261102T090000\n\
             RDATE;VALUE=PERIOD:20260701T120000Z/PT2H");
        assert_eq!(
            b,
            vec![
                busy(utc(2026, 6, 1, 7, 0), utc(2026, 6, 1, 8, 0)),
                busy(utc(2026, 7, 1, 12, 0), utc(2026, 7, 1, 14, 0)),
                busy(utc(2026, 11, 2, 8, 0), utc(2026, 11, 2, 9, 0)),
            ]
        );
    }

    #[test]
    fn dst_gap_and_overlap_follow_rfc_5545() {
        // 02:30 does not exist on 2026-03-29: read with the offset before the gap (+01:00).
        let b = one("DTSTART;TZID=Europe/Stockholm:20260329T023000\nDURATION:PT1H");
        assert_eq!(b, vec![busy(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30))]);
        // 02:30 happens twice on 2026-10-25: the first one (+02:00).
        let b = one("DTSTART;TZID=Europe/Stockholm:20261025T023000\nDURATION:PT1H");
        assert_eq!(b, vec![busy(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))]);
    }

    #[test]
    fn output_is_sorted_across_components() {
        let text = cal("BEGIN:VEVENT\nDTSTART:20260615T090000Z\nDURATION:PT1H\nEND:VEVENT\n\
            BEGIN:VFREEBUSY\nFREEBUSY:20260614T090000Z/PT1H,20260601T090000Z/PT1H\nEND:VFREEBUSY\n\
            BEGIN:VEVENT\nDTSTART:20260610T090000Z\nDURATION:PT1H\nEND:VEVENT");
        let b = parse_busy(&text, far()).unwrap();
        assert_eq!(b.len(), 4);
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
    }

    // --- invites -------------------------------------------------------------------------

    fn person(name: &str, email: &str, required: bool) -> Attendee {
        Attendee { name: name.to_owned(), email: email.to_owned(), required }
    }

    fn sample_invite() -> Invite {
        Invite {
            uid: "0196b1c2-7a4e-7c3d-9f1e-123456789abc@lotsen".to_owned(),
            sequence: 2,
            stamp: utc(2026, 5, 1, 12, 0),
            start: utc(2026, 5, 12, 8, 0),
            end: utc(2026, 5, 12, 9, 30),
            summary: "Dukat bord: Åkes Bageri AB; bygglov, alkohol & servering".to_owned(),
            description: "Välkomna till dukat bord!\nVi går igenom bygglov, serveringstillstånd, \
                livsmedelsregistrering och avfall; ta med ritningar, menyförslag och \
                öppettider. Mötet hålls på svenska, tolk kan ordnas vid behov. \
                Sökväg: C:\\delat\\ärenden, rum \"Ängen\"."
                .repeat(3),
            location: "Stadshuset, rum 3; plan 2".to_owned(),
            organizer: person("Lotsen, Näringslivskontoret", "lotsen@kommun.se", true),
            attendees: vec![
                person("Åsa Öberg", "asa.oberg@kommun.se", true),
                person("Bygg, \"Björn\" Ärlig", "bjorn@kommun.se", true),
                person("Miljö: Östen Lindqvist-Häggström med ett mycket långt namn", "osten@kommun.se", false),
                person("Åke Bagare", "ake@akesbageri.se", true),
            ],
            cancelled: false,
        }
    }

    fn assert_well_formed(text: &str) {
        assert!(text.ends_with("\r\n"));
        let body = text.strip_suffix("\r\n").unwrap();
        for line in body.split("\r\n") {
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
        }
    }

    #[test]
    fn invite_is_accepted_by_the_icalendar_crate() {
        let invite = sample_invite();
        let text = render_invite(&invite);
        assert_well_formed(&text);
        assert!(text.lines().count() > 25, "the long description must have been folded");

        let unfolded = icalendar::parser::unfold(&text);
        let parsed = icalendar::parser::read_calendar(&unfolded).unwrap();
        let method = parsed.properties.iter().find(|p| p.name == "METHOD").unwrap();
        assert_eq!(method.val.as_str(), "REQUEST");
        let events: Vec<_> = parsed.components.iter().filter(|c| c.name == "VEVENT").collect();
        assert_eq!(events.len(), 1);
        let ev = events[0];
        assert_eq!(ev.find_prop("UID").unwrap().val.as_str(), invite.uid);
        assert_eq!(ev.find_prop("SUMMARY").unwrap().val.as_str(), invite.summary);
        assert_eq!(ev.find_prop("DESCRIPTION").unwrap().val.as_str(), invite.description);
        assert_eq!(ev.find_prop("LOCATION").unwrap().val.as_str(), invite.location);
        assert_eq!(ev.find_prop("DTSTART").unwrap().val.as_str(), "20260512T080000Z");
        assert_eq!(ev.find_prop("DTEND").unwrap().val.as_str(), "20260512T093000Z");
        assert_eq!(ev.find_prop("SEQUENCE").unwrap().val.as_str(), "2");
        assert_eq!(ev.find_prop("STATUS").unwrap().val.as_str(), "CONFIRMED");
        let organizer = ev.find_prop("ORGANIZER").unwrap();
        assert_eq!(organizer.val.as_str(), "mailto:lotsen@kommun.se");

        let attendees: Vec<_> = ev.properties.iter().filter(|p| p.name == "ATTENDEE").collect();
        assert_eq!(attendees.len(), invite.attendees.len());
        for (prop, want) in attendees.iter().zip(&invite.attendees) {
            assert_eq!(prop.val.as_str(), format!("mailto:{}", want.email));
            let param = |k: &str| {
                prop.params.iter().find(|p| p.key == k).and_then(|p| p.val.as_ref()).map(|v| v.as_str().to_owned())
            };
            assert_eq!(param("CN").unwrap(), want.name.replace('"', ""));
            let role = if want.required { "REQ-PARTICIPANT" } else { "OPT-PARTICIPANT" };
            assert_eq!(param("ROLE").unwrap(), role);
            assert_eq!(param("PARTSTAT").unwrap(), "NEEDS-ACTION");
            assert_eq!(param("RSVP").unwrap(), "TRUE");
        }
        for a in &invite.attendees {
            assert!(unfolded.contains(&format!("mailto:{}", a.email)));
        }
    }

    #[test]
    fn invite_reads_back_as_its_own_busy_time() {
        let invite = sample_invite();
        let b = parse_busy(&render_invite(&invite), far()).unwrap();
        assert_eq!(b, vec![busy(invite.start, invite.end)]);
    }

    #[test]
    fn invite_exact_shape() {
        let invite = Invite {
            description: String::new(),
            location: String::new(),
            attendees: vec![person("", "a@b.se", false)],
            ..sample_invite()
        };
        let text = render_invite(&invite);
        let lines: Vec<_> = text.split("\r\n").collect();
        assert_eq!(
            lines,
            vec![
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//Lotsen//Lotsen//SV",
                "CALSCALE:GREGORIAN",
                "METHOD:REQUEST",
                "BEGIN:VEVENT",
                // The builder writes single properties in name order, then the attendees.
                "DTEND:20260512T093000Z",
                "DTSTAMP:20260501T120000Z",
                "DTSTART:20260512T080000Z",
                "ORGANIZER;CN=\"Lotsen, Näringslivskontoret\":mailto:lotsen@kommun.se",
                "SEQUENCE:2",
                "STATUS:CONFIRMED",
                "SUMMARY:Dukat bord: Åkes Bageri AB\\; bygglov\\, alkohol & servering",
                "TRANSP:OPAQUE",
                "UID:0196b1c2-7a4e-7c3d-9f1e-123456789abc@lotsen",
                "ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT;RSVP=TRUE:mailto:a@b.se",
                "END:VEVENT",
                "END:VCALENDAR",
                "",
            ]
        );
    }

    #[test]
    fn cancelled_invite() {
        let invite = Invite { cancelled: true, sequence: 3, ..sample_invite() };
        let text = render_invite(&invite);
        assert_well_formed(&text);
        assert!(text.contains("\r\nMETHOD:CANCEL\r\n"));
        assert!(text.contains("\r\nSTATUS:CANCELLED\r\n"));
        assert!(!text.contains("REQUEST"));
        let unfolded = icalendar::parser::unfold(&text);
        let parsed = icalendar::parser::read_calendar(&unfolded).unwrap();
        assert_eq!(parsed.components.len(), 1);
        assert!(parse_busy(&text, far()).unwrap().is_empty());
    }

    #[test]
    fn folding_never_splits_a_character() {
        let summary = "å".repeat(100);
        let text = render_invite(&Invite { summary: summary.clone(), ..sample_invite() });
        for l in text.strip_suffix("\r\n").unwrap().split("\r\n") {
            assert!(l.len() <= 75, "{l:?} is {} octets", l.len());
        }
        assert!(text.replace("\r\n ", "").contains(&format!("\r\nSUMMARY:{summary}\r\n")));
    }

    #[test]
    fn text_escaping() {
        let invite = Invite {
            summary: "a\\b;c,d\ne\r\nf\rg\u{7}h\ti".into(),
            organizer: person("\"Bo\" Ek\n", " a@b.se\r\n", true),
            attendees: vec![person("  ", "c@d.se", true)],
            ..sample_invite()
        };
        let text = render_invite(&invite).replace("\r\n ", "");
        assert!(text.contains("\r\nSUMMARY:a\\\\b\\;c\\,d\\ne\\nf\\ngh\ti\r\n"), "{text}");
        assert!(text.contains("\r\nORGANIZER;CN=Bo Ek:mailto:a@b.se\r\n"), "{text}");
        assert!(
            text.contains("\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:c@d.se\r\n"),
            "{text}"
        );
    }

    // --- properties ----------------------------------------------------------------------

    /// Text without the characters TEXT cannot carry (control characters other than tab and LF).
    fn text_strategy() -> impl Strategy<Value = String> {
        "[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]{0,300}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_invite_round_trips(
            summary in text_strategy(),
            description in text_strategy(),
            name in "[^\\x00-\\x1f\\x7f-\\x9f\"]{1,80}",
            start_min in 0i64..5_000_000,
            len_min in 1i64..600,
        ) {
            let start = utc(2026, 1, 1, 0, 0) + TimeDelta::minutes(start_min);
            let invite = Invite {
                summary: summary.clone(),
                description,
                start,
                end: start + TimeDelta::minutes(len_min),
                attendees: vec![person(&name, "x@kommun.se", true)],
                ..sample_invite()
            };
            let text = render_invite(&invite);
            assert_well_formed(&text);
            let unfolded = icalendar::parser::unfold(&text);
            let parsed = icalendar::parser::read_calendar(&unfolded).unwrap();
            let ev = parsed.components.iter().find(|c| c.name == "VEVENT").unwrap();
            let got = ev.find_prop("SUMMARY").unwrap().val.as_str().to_owned();
            prop_assert_eq!(&got, &summary);
            prop_assert_eq!(
                parse_busy(&text, DateTime::<Utc>::MAX_UTC).unwrap(),
                vec![busy(invite.start, invite.end)]
            );
        }

        #[test]
        fn refolding_does_not_change_the_result(cuts in proptest::collection::vec(1usize..60, 1..40)) {
            let text = event(
                "DTSTART;TZID=Europe/Stockholm:20261019T090000\n\
                 DTEND;TZID=Europe/Stockholm:20261019T100000\n\
                 RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20261201T000000Z\n\
                 EXDATE;TZID=Europe/Stockholm:20261021T090000,20261028T090000",
            );
            let want = parse_busy(&text, far()).unwrap();
            // Fold every content line at arbitrary points.
            let mut refolded = String::new();
            let mut k = 0;
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                let mut rest = line;
                loop {
                    let cut = cuts[k % cuts.len()];
                    k += 1;
                    if rest.len() <= cut {
                        break;
                    }
                    refolded.push_str(&rest[..cut]);
                    refolded.push_str(if k % 2 == 0 { "\r\n " } else { "\n\t" });
                    rest = &rest[cut..];
                }
                refolded.push_str(rest);
                refolded.push_str("\r\n");
            }
            prop_assert_eq!(parse_busy(&refolded, far()).unwrap(), want);
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(
            "(BEGIN|END|DTSTART|DTEND|DURATION|RRULE|EXDATE|FREEBUSY|RDATE|[A-Z;=\"/:,.0-9TZ-]{0,12})[;:=A-Z0-9TZ/,\"+P-]{0,40}",
            0..30,
        )) {
            let text = format!("BEGIN:VCALENDAR\n{}\nEND:VCALENDAR\n", lines.join("\n"));
            let _ = parse_busy(&text, far());
        }
    }
}
