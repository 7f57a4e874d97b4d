//! Servicegaranti clocks: when a commitment falls due, and what must happen when.
//!
//! A deadline is a pure function of the case's events, the commitment and the calendar, so a
//! restart or a replay recomputes exactly the same clock. Working-time targets count office
//! hours only and stand still while the case waits for the company; calendar-week targets are
//! legal deadlines (Lag 1930:173) that can be extended once and may carry a PBL fee reduction.
//!
//! Time only runs between a pause and a resume if the pause began before the target was
//! reached: pausing an overdue clock freezes how late it is, but never moves its due instant
//! back into the future. For calendar-week targets a pause shifts the start by the paused
//! calendar duration before the legal deadline is computed (legal clocks normally don't pause).

use chrono::{DateTime, Duration, Utc};

use crate::calendar::WorkCalendar;
use crate::tenant::{Commitment, EscalationLevel, Target};

/// One event of the case as the clocks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockEvent {
    /// Event type, e.g. "case.registered".
    pub kind: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// The event type that extends a legal deadline (once).
pub const DEADLINE_EXTENDED: &str = "case.deadline_extended";

/// Event types that end a case: a clock not yet met is cancelled, frozen as it stood at the end.
pub const CASE_ENDED: [&str; 2] = ["case.withdrawn", "case.closed"];

/// Where a clock is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The starting event has not happened (yet).
    NotStarted,
    /// Counting, not yet due.
    Running,
    /// Waiting for the company: the clock stands still.
    Paused,
    /// Stopped at or before the due instant.
    Met,
    /// Stopped after the due instant.
    MetLate,
    /// Still running after the due instant.
    Breached,
    /// The case ended before the commitment was met, or the stop came before the start.
    Cancelled,
}

impl State {
    /// The stored text form, e.g. "met_late".
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotStarted => "not_started",
            State::Running => "running",
            State::Paused => "paused",
            State::Met => "met",
            State::MetLate => "met_late",
            State::Breached => "breached",
            State::Cancelled => "cancelled",
        }
    }
}

/// A point in a clock's life when something must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// A share of the target has been used.
    Warning {
        /// Percent of the target.
        percent: u8,
    },
    /// The commitment falls due.
    Breach,
    /// One step of the escalation chain after the breach.
    Escalation {
        /// Position in the chain, 1-based.
        step: usize,
        /// Who is reached.
        level: EscalationLevel,
    },
}

impl Stage {
    /// Stable text for alert ids: "warn50", "breach", "esc1".
    pub fn key(&self) -> String {
        match self {
            Stage::Warning { percent } => format!("warn{percent}"),
            Stage::Breach => "breach".to_string(),
            Stage::Escalation { step, .. } => format!("esc{step}"),
        }
    }
}

/// A stage and the instant it falls on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// What must happen.
    pub stage: Stage,
    /// When it must happen.
    pub at: DateTime<Utc>,
}

/// A clock evaluated at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// Where the clock is.
    pub state: State,
    /// The starting event's instant.
    pub started_at: Option<DateTime<Utc>>,
    /// The stopping (or cancelling) event's instant.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Paused time so far: working time for working-time targets, calendar time for calendar weeks (legal clocks normally don't pause).
    pub paused: Duration,
    /// When the commitment falls due; None before start and while paused (it is frozen then).
    pub due_at: Option<DateTime<Utc>>,
    /// Working (or calendar) time left at `now`; negative when overdue; for a paused clock, the time left when it was paused.
    pub left: Duration,
    /// 0 before any extension, 1 after; part of alert ids so an extension re-arms the breach.
    pub deadline_version: u32,
    /// Whether the deadline has been extended.
    pub extended: bool,
    /// Stages with their instants, in time order, for a running clock (empty when paused, met, cancelled or not started).
    /// Include stages already in the past: the caller decides what was already fired.
    pub schedule: Vec<Due>,
    /// PBL fee reduction in percent: percent_per_week × started weeks of delay after `due_at` at the stop (else at `now`; a pause freezes it), capped at 100; 0 when not late or cancelled.
    pub fee_reduction_percent: u32,
}

/// Evaluates `commitment` over `events` (in occurrence order; ties keep input order) at `now`.
pub fn evaluate(commitment: &Commitment, calendar: &WorkCalendar, events: &[ClockEvent], now: DateTime<Utc>) -> Clock {
    let life = Life::walk(commitment, events, now);
    let Some(start) = life.start else {
        return Clock {
            state: if life.phase == Phase::Cancelled { State::Cancelled } else { State::NotStarted },
            started_at: None,
            stopped_at: life.stopped_at,
            paused: Duration::zero(),
            due_at: None,
            left: nominal(commitment.target, calendar),
            deadline_version: 0,
            extended: false,
            schedule: Vec::new(),
            fee_reduction_percent: 0,
        };
    };
    let measure = Measure::of(commitment, calendar, start, life.extended);
    // The due as the closed pauses leave it: the live due when running, the frozen one when paused.
    let due = measure.due(calendar, start, &life.pauses);
    // The last instant the clock counted: a pause or a stop freezes it.
    let last = life.open_pause.or(life.stopped_at).unwrap_or(now);
    let paused_until = life.stopped_at.unwrap_or(now);
    let (paused, left) = match measure {
        Measure::Working(target) => {
            let closed = life.closed_pauses(calendar);
            let open = life.open_pause.map_or(Duration::zero(), |p| calendar.working_time_between(p, paused_until));
            (closed + open, target - (calendar.working_time_between(start, last) - closed))
        }
        Measure::Weeks { .. } => {
            let closed = life.pauses.iter().fold(Duration::zero(), |sum, &(a, b)| sum + (b - a));
            let open = life.open_pause.map_or(Duration::zero(), |p| (paused_until - p).max(Duration::zero()));
            (closed + open, due - last)
        }
    };
    let state = match life.phase {
        Phase::Paused => State::Paused,
        Phase::Stopped if last <= due => State::Met,
        Phase::Stopped => State::MetLate,
        Phase::Cancelled => State::Cancelled,
        // A started clock is never NotStarted; the arm only keeps the match total.
        Phase::NotStarted | Phase::Running if now > due => State::Breached,
        Phase::NotStarted | Phase::Running => State::Running,
    };
    let schedule = if matches!(state, State::Running | State::Breached) {
        schedule(commitment, calendar, start, &life.pauses, measure, due)
    } else {
        Vec::new()
    };
    let fee_reduction_percent =
        if state == State::Cancelled { 0 } else { fee_reduction(commitment.fee_reduction_percent_per_week, due, last) };
    Clock {
        state,
        started_at: Some(start),
        stopped_at: life.stopped_at,
        paused,
        due_at: (state != State::Paused).then_some(due),
        left,
        deadline_version: u32::from(life.extended),
        extended: life.extended,
        schedule,
        fee_reduction_percent,
    }
}

/// Working time `commitment`'s clock counted up to its stop (or `now`), pauses left out; zero
/// before it starts. Measured in working time whatever the target, so legal (calendar-week)
/// clocks compare with the others in figures (insight's working time used).
pub fn worked(commitment: &Commitment, calendar: &WorkCalendar, events: &[ClockEvent], now: DateTime<Utc>) -> Duration {
    let life = Life::walk(commitment, events, now);
    let Some(start) = life.start else { return Duration::zero() };
    let last = life.open_pause.or(life.stopped_at).unwrap_or(now);
    calendar.working_time_between(start, last) - life.closed_pauses(calendar)
}

/// Whether a second extension must be refused (helper for intake): true if `events` already hold DEADLINE_EXTENDED.
pub fn already_extended(events: &[ClockEvent]) -> bool {
    events.iter().any(|e| e.kind == DEADLINE_EXTENDED)
}

/// Where the walk through the events left the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    Paused,
    Stopped,
    Cancelled,
}

/// What the events say about one clock, before any arithmetic.
struct Life {
    phase: Phase,
    start: Option<DateTime<Utc>>,
    stopped_at: Option<DateTime<Utc>>,
    /// Completed pauses (paused, resumed), ascending.
    pauses: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Start of the pause still open at the end (also when the clock stopped while paused).
    open_pause: Option<DateTime<Utc>>,
    extended: bool,
}

impl Life {
    /// Working time spent in completed pauses.
    fn closed_pauses(&self, calendar: &WorkCalendar) -> Duration {
        self.pauses.iter().fold(Duration::zero(), |sum, &(a, b)| sum + calendar.working_time_between(a, b))
    }

    fn walk(c: &Commitment, events: &[ClockEvent], now: DateTime<Utc>) -> Life {
        let mut seen: Vec<&ClockEvent> = events.iter().filter(|e| e.at <= now).collect();
        // Stable sort: already ordered input is untouched and ties keep their order.
        seen.sort_by_key(|e| e.at);
        let mut life = Life {
            phase: Phase::NotStarted,
            start: None,
            stopped_at: None,
            pauses: Vec::new(),
            open_pause: None,
            extended: false,
        };
        let listed = |list: &[String], kind: &str| list.iter().any(|k| k == kind);
        for e in seen {
            let kind = e.kind.as_str();
            // The commitment's own stops win over case end: "case.closed" may be how it is met.
            let stops = listed(&c.stops_on, kind);
            let ends = CASE_ENDED.contains(&kind);
            match life.phase {
                Phase::NotStarted if kind == c.starts_on => {
                    life.start = Some(e.at);
                    life.phase = Phase::Running;
                }
                Phase::NotStarted if stops || ends => {
                    life.stopped_at = Some(e.at);
                    life.phase = Phase::Cancelled;
                }
                Phase::NotStarted => {}
                Phase::Running | Phase::Paused if stops || ends => {
                    life.stopped_at = Some(e.at);
                    life.phase = if stops { Phase::Stopped } else { Phase::Cancelled };
                }
                Phase::Running if listed(&c.pauses_on, kind) => {
                    life.open_pause = Some(e.at);
                    life.phase = Phase::Paused;
                }
                Phase::Paused if listed(&c.resumes_on, kind) => {
                    if let Some(paused) = life.open_pause.take() {
                        life.pauses.push((paused, e.at));
                    }
                    life.phase = Phase::Running;
                }
                // Accepted while paused too, so the clock agrees with `already_extended`.
                Phase::Running | Phase::Paused if kind == DEADLINE_EXTENDED && c.extension.is_some() => {
                    life.extended = true;
                }
                Phase::Running | Phase::Paused => {}
                Phase::Stopped | Phase::Cancelled => break,
            }
        }
        life
    }
}

/// How a started clock measures its target, extension included.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// Working time.
    Working(Duration),
    /// A legal deadline in calendar weeks, then `extra` working time (a working-time extension).
    Weeks { weeks: u32, extra: Duration },
}

impl Measure {
    fn of(c: &Commitment, cal: &WorkCalendar, start: DateTime<Utc>, extended: bool) -> Measure {
        let extension = if extended { c.extension } else { None };
        match (c.target, extension) {
            (Target::CalendarWeeks(w), Some(Target::CalendarWeeks(x))) => {
                Measure::Weeks { weeks: w.saturating_add(x), extra: Duration::zero() }
            }
            (Target::CalendarWeeks(w), Some(more)) => Measure::Weeks { weeks: w, extra: working_amount(more, cal) },
            (Target::CalendarWeeks(w), None) => Measure::Weeks { weeks: w, extra: Duration::zero() },
            (base, Some(Target::CalendarWeeks(x))) => {
                // Mixed units: the weeks become the working time they hold, counted from the start.
                let until = plus(start, Duration::weeks(i64::from(x)));
                let more = cal.working_time_between(start, until);
                Measure::Working(working_amount(base, cal) + more)
            }
            (base, Some(more)) => Measure::Working(working_amount(base, cal) + working_amount(more, cal)),
            (base, None) => Measure::Working(working_amount(base, cal)),
        }
    }

    /// The due instant given the completed pauses.
    fn due(self, cal: &WorkCalendar, start: DateTime<Utc>, pauses: &[(DateTime<Utc>, DateTime<Utc>)]) -> DateTime<Utc> {
        match self {
            Measure::Working(target) => reach(cal, start, pauses, target),
            Measure::Weeks { weeks, extra } => {
                let due_from = |from: DateTime<Utc>| cal.add_working_time(cal.legal_deadline(from, weeks), extra);
                let mut shift = Duration::zero();
                let mut due = due_from(start);
                for &(paused, resumed) in pauses {
                    if paused >= due {
                        break;
                    }
                    shift += resumed - paused;
                    due = due_from(plus(start, shift));
                }
                due
            }
        }
    }
}

/// The instant a working-time clock has counted `amount`, walking forward over the pauses.
fn reach(
    cal: &WorkCalendar,
    start: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    amount: Duration,
) -> DateTime<Utc> {
    let mut skipped = Duration::zero();
    let mut at = cal.add_working_time(start, amount);
    for &(paused, resumed) in pauses {
        // A pause from the reached instant on cannot undo it.
        if paused >= at {
            break;
        }
        skipped += cal.working_time_between(paused, resumed);
        at = cal.add_working_time(start, amount + skipped);
    }
    at
}

/// Working time of a working-hours or working-days target (calendar weeks: zero, never used so).
fn working_amount(t: Target, cal: &WorkCalendar) -> Duration {
    match t {
        Target::WorkingHours(h) => Duration::hours(i64::from(h)),
        // Whole seconds: a u32 count of days of at most 24 h fits easily.
        Target::WorkingDays(d) => Duration::seconds(cal.day_length().num_seconds() * i64::from(d)),
        Target::WorkingMinutes(m) => Duration::minutes(i64::from(m)),
        Target::CalendarWeeks(_) => Duration::zero(),
    }
}

/// The whole target, for a clock that has not started.
fn nominal(t: Target, cal: &WorkCalendar) -> Duration {
    match t {
        Target::CalendarWeeks(w) => Duration::weeks(i64::from(w)),
        working => working_amount(working, cal),
    }
}

/// `t + d`, or the end of time when that overflows.
fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `p` percent of `d`, in whole seconds.
fn percent_of(d: Duration, p: u8) -> Duration {
    Duration::seconds(d.num_seconds() * i64::from(p) / 100)
}

/// Warnings, breach and escalations of a running clock, in time order.
fn schedule(
    c: &Commitment,
    cal: &WorkCalendar,
    start: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    measure: Measure,
    due: DateTime<Utc>,
) -> Vec<Due> {
    let mut out: Vec<Due> = c
        .warn_at
        .iter()
        .map(|&percent| Due {
            stage: Stage::Warning { percent },
            at: match measure {
                Measure::Working(target) => reach(cal, start, pauses, percent_of(target, percent)),
                Measure::Weeks { .. } => plus(start, percent_of(due - start, percent)),
            },
        })
        .collect();
    out.push(Due { stage: Stage::Breach, at: due });
    out.extend(c.escalation.iter().enumerate().map(|(i, step)| Due {
        stage: Stage::Escalation { step: i + 1, level: step.to },
        at: cal.add_working_hours(due, step.after_hours),
    }));
    // Stable: a zero-hour escalation stays after the breach it follows.
    out.sort_by_key(|d| d.at);
    out
}

/// Percent per started week of delay from `due` to `decided`, capped at 100.
fn fee_reduction(per_week: Option<u8>, due: DateTime<Utc>, decided: DateTime<Utc>) -> u32 {
    let Some(per_week) = per_week else {
        return 0;
    };
    if decided <= due {
        return 0;
    }
    let delay = decided - due;
    let whole = delay.num_weeks();
    let started = if delay > Duration::weeks(whole) { whole + 1 } else { whole };
    let percent = started.saturating_mul(i64::from(per_week)).min(100);
    u32::try_from(percent).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{TZ, holiday, local_to_utc};
    use crate::tenant::{EscalationStep, WorkingHours};
    use chrono::{Datelike, NaiveDateTime, NaiveTime, Weekday};
    use proptest::prelude::*;

    /// Mon–Fri 08:00–16:30, the usual kommun office.
    fn office() -> WorkCalendar {
        let hours = WorkingHours {
            days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(16, 30, 0).unwrap(),
        };
        WorkCalendar::new(&hours, &[])
    }

    /// Stockholm local "YYYY-MM-DD HH:MM" (or with ":SS") as UTC.
    fn at(s: &str) -> DateTime<Utc> {
        let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
            .unwrap();
        local_to_utc(local)
    }

    fn local(t: DateTime<Utc>) -> String {
        t.with_timezone(&TZ).format("%Y-%m-%d %H:%M:%S").to_string()
    }

    fn ev(kind: &str, when: &str) -> ClockEvent {
        ClockEvent { kind: kind.to_string(), at: at(when) }
    }

    fn hm(h: i64, m: i64) -> Duration {
        Duration::hours(h) + Duration::minutes(m)
    }

    /// A first-contact style commitment with pause and resume events.
    fn commitment(target: Target) -> Commitment {
        Commitment {
            name: "Första kontakt".to_string(),
            starts_on: "case.registered".to_string(),
            stops_on: vec!["task.accepted".to_string()],
            pauses_on: vec!["case.waiting_for_company".to_string()],
            resumes_on: vec!["case.resumed".to_string()],
            target,
            warn_at: Vec::new(),
            escalation: Vec::new(),
            extension: None,
            fee_reduction_percent_per_week: None,
        }
    }

    /// Bygglov under PBL: 10 weeks from a complete application, extendable once by 10.
    fn pbl() -> Commitment {
        Commitment {
            name: "Beslut om bygglov".to_string(),
            starts_on: "case.complete".to_string(),
            stops_on: vec!["case.decided".to_string()],
            pauses_on: Vec::new(),
            resumes_on: Vec::new(),
            target: Target::CalendarWeeks(10),
            warn_at: vec![50],
            escalation: Vec::new(),
            extension: Some(Target::CalendarWeeks(10)),
            fee_reduction_percent_per_week: Some(20),
        }
    }

    fn due_local(c: &Clock) -> String {
        local(c.due_at.unwrap())
    }

    #[test]
    fn one_working_day_over_easter() {
        let c = commitment(Target::WorkingDays(1));
        let events = [ev("case.registered", "2026-04-02 10:00")];
        let clock = evaluate(&c, &office(), &events, at("2026-04-03 12:00"));
        assert_eq!(clock.state, State::Running);
        assert_eq!(clock.started_at, Some(at("2026-04-02 10:00")));
        assert_eq!(due_local(&clock), "2026-04-07 10:00:00");
        // Thursday 10:00–16:30 is used up; Tuesday 08:00–10:00 is what is left.
        assert_eq!(clock.left, Duration::hours(2));
    }

    #[test]
    fn five_working_days_across_midsommar() {
        let c = commitment(Target::WorkingDays(5));
        let events = [ev("case.registered", "2026-06-17 09:00")];
        let clock = evaluate(&c, &office(), &events, at("2026-06-17 09:00"));
        assert_eq!(due_local(&clock), "2026-06-25 09:00:00");
        assert_eq!(clock.left, Duration::minutes(5 * 510));
    }

    #[test]
    fn working_hours_across_autumn_dst() {
        let c = commitment(Target::WorkingHours(8));
        let events = [ev("case.registered", "2026-10-23 15:00")];
        let clock = evaluate(&c, &office(), &events, at("2026-10-23 15:00"));
        assert_eq!(due_local(&clock), "2026-10-26 14:30:00");
        assert_eq!(clock.due_at.unwrap().to_rfc3339(), "2026-10-26T13:30:00+00:00");
    }

    #[test]
    fn pause_and_resume_to_the_minute() {
        let c = commitment(Target::WorkingDays(1));
        let cal = office();
        let events = [
            ev("case.registered", "2026-09-07 09:00"),
            ev("case.waiting_for_company", "2026-09-07 10:00"),
            ev("case.resumed", "2026-09-09 13:17"),
        ];
        let paused = evaluate(&c, &cal, &events, at("2026-09-08 12:00"));
        assert_eq!(paused.state, State::Paused);
        assert_eq!(paused.due_at, None);
        assert_eq!(paused.left, hm(7, 30));
        assert!(paused.schedule.is_empty());
        // Monday 10:00–16:30 and Tuesday 08:00–12:00.
        assert_eq!(paused.paused, hm(10, 30));

        let running = evaluate(&c, &cal, &events, at("2026-09-09 14:00"));
        assert_eq!(running.state, State::Running);
        assert_eq!(due_local(&running), "2026-09-10 12:17:00");
        // Wednesday 14:00–16:30 and Thursday 08:00–12:17.
        assert_eq!(running.left, hm(6, 47));
        // Monday 6h30, Tuesday 8h30, Wednesday 08:00–13:17.
        assert_eq!(running.paused, hm(20, 17));
        // Working time counted: Monday 09:00–10:00 and Wednesday 13:17–14:00, whatever the target.
        assert_eq!(worked(&c, &cal, &events, at("2026-09-09 14:00")), hm(1, 43));
        let weeks = commitment(Target::CalendarWeeks(10));
        assert_eq!(worked(&weeks, &cal, &events, at("2026-09-09 14:00")), hm(1, 43));
        assert_eq!(worked(&c, &cal, &events[..0], at("2026-09-09 14:00")), Duration::zero());
    }

    #[test]
    fn repeated_pauses_and_resumes_are_ignored() {
        let c = commitment(Target::WorkingDays(1));
        let events = [
            ev("case.registered", "2026-09-07 09:00"),
            ev("case.resumed", "2026-09-07 09:30"),
            ev("case.waiting_for_company", "2026-09-07 10:00"),
            ev("case.waiting_for_company", "2026-09-08 11:00"),
            ev("case.resumed", "2026-09-09 13:17"),
            ev("case.resumed", "2026-09-09 15:00"),
        ];
        let clock = evaluate(&c, &office(), &events, at("2026-09-09 16:00"));
        assert_eq!(clock.state, State::Running);
        assert_eq!(due_local(&clock), "2026-09-10 12:17:00");
    }

    #[test]
    fn a_pause_after_the_due_freezes_the_delay_but_keeps_the_due() {
        let c = commitment(Target::WorkingDays(1));
        let cal = office();
        let events = [
            ev("case.registered", "2026-09-07 09:00"),
            ev("case.waiting_for_company", "2026-09-08 10:00"),
            ev("case.resumed", "2026-09-09 10:00"),
        ];
        let paused = evaluate(&c, &cal, &events, at("2026-09-08 12:00"));
        assert_eq!(paused.state, State::Paused);
        assert_eq!(paused.left, Duration::hours(-1));
        let resumed = evaluate(&c, &cal, &events, at("2026-09-09 11:00"));
        assert_eq!(resumed.state, State::Breached);
        assert_eq!(due_local(&resumed), "2026-09-08 09:00:00");
        // One hour late before the pause, one after it; the paused day does not count.
        assert_eq!(resumed.left, Duration::hours(-2));
    }

    #[test]
    fn the_whole_schedule_in_order() {
        let mut c = commitment(Target::WorkingDays(1));
        c.warn_at = vec![50, 75];
        c.escalation = vec![
            EscalationStep { to: EscalationLevel::Officer, after_hours: 0 },
            EscalationStep { to: EscalationLevel::UnitManager, after_hours: 4 },
            EscalationStep { to: EscalationLevel::Naringslivschef, after_hours: 16 },
        ];
        let events = [ev("case.registered", "2026-09-07 09:00")];
        let cal = office();
        let expected = vec![
            Due { stage: Stage::Warning { percent: 50 }, at: at("2026-09-07 13:15") },
            Due { stage: Stage::Warning { percent: 75 }, at: at("2026-09-07 15:22:30") },
            Due { stage: Stage::Breach, at: at("2026-09-08 09:00") },
            Due { stage: Stage::Escalation { step: 1, level: EscalationLevel::Officer }, at: at("2026-09-08 09:00") },
            Due {
                stage: Stage::Escalation { step: 2, level: EscalationLevel::UnitManager },
                at: at("2026-09-08 13:00"),
            },
            Due {
                stage: Stage::Escalation { step: 3, level: EscalationLevel::Naringslivschef },
                // Tuesday 09:00–16:30 is 7h30, Wednesday's 8h30 ends at closing time.
                at: at("2026-09-09 16:30"),
            },
        ];
        let running = evaluate(&c, &cal, &events, at("2026-09-07 09:30"));
        assert_eq!(running.state, State::Running);
        assert_eq!(running.schedule, expected);
        let keys: Vec<_> = running.schedule.iter().map(|d| d.stage.key()).collect();
        assert_eq!(keys, ["warn50", "warn75", "breach", "esc1", "esc2", "esc3"]);

        // Past stages stay in the schedule once breached.
        let breached = evaluate(&c, &cal, &events, at("2026-09-08 10:00"));
        assert_eq!(breached.state, State::Breached);
        assert_eq!(breached.left, Duration::hours(-1));
        assert_eq!(breached.schedule, expected);

        // A pause before the 75 % mark moves it (and everything after), not the 50 % mark.
        let mut paused_events = events.to_vec();
        paused_events.push(ev("case.waiting_for_company", "2026-09-07 14:00"));
        paused_events.push(ev("case.resumed", "2026-09-08 14:00"));
        let shifted = evaluate(&c, &cal, &paused_events, at("2026-09-08 14:00"));
        let shown: Vec<_> = shifted.schedule.iter().map(|d| (d.stage.key(), local(d.at))).collect();
        let pair = |k: &str, t: &str| (k.to_string(), t.to_string());
        assert_eq!(
            shown,
            [
                pair("warn50", "2026-09-07 13:15:00"),
                pair("warn75", "2026-09-08 15:22:30"),
                pair("breach", "2026-09-09 09:00:00"),
                pair("esc1", "2026-09-09 09:00:00"),
                pair("esc2", "2026-09-09 13:00:00"),
                pair("esc3", "2026-09-10 16:30:00"),
            ]
        );
    }

    #[test]
    fn met_and_met_late() {
        let c = commitment(Target::WorkingDays(1));
        let cal = office();
        let start = ev("case.registered", "2026-09-07 09:00");
        let met = evaluate(&c, &cal, &[start.clone(), ev("task.accepted", "2026-09-07 15:00")], at("2026-09-10 12:00"));
        assert_eq!(met.state, State::Met);
        assert_eq!(met.stopped_at, Some(at("2026-09-07 15:00")));
        assert_eq!(met.left, hm(2, 30));
        assert!(met.schedule.is_empty());

        let on_the_dot =
            evaluate(&c, &cal, &[start.clone(), ev("task.accepted", "2026-09-08 09:00")], at("2026-09-10 12:00"));
        assert_eq!(on_the_dot.state, State::Met);
        assert_eq!(on_the_dot.left, Duration::zero());

        let late =
            evaluate(&c, &cal, &[start.clone(), ev("task.accepted", "2026-09-08 10:00")], at("2026-09-10 12:00"));
        assert_eq!(late.state, State::MetLate);
        assert_eq!(late.left, Duration::hours(-1));
        assert_eq!(late.fee_reduction_percent, 0, "no fee reduction configured");

        // Stopped while paused: judged by the time used before the pause.
        let paused_then_met = evaluate(
            &c,
            &cal,
            &[
                start.clone(),
                ev("case.waiting_for_company", "2026-09-07 10:00"),
                ev("task.accepted", "2026-09-14 10:00"),
            ],
            at("2026-09-15 12:00"),
        );
        assert_eq!(paused_then_met.state, State::Met);
        assert_eq!(paused_then_met.left, hm(7, 30));
        assert_eq!(due_local(&paused_then_met), "2026-09-08 09:00:00");

        // A later start or stop changes nothing.
        let twice = evaluate(
            &c,
            &cal,
            &[
                start,
                ev("case.registered", "2026-09-07 12:00"),
                ev("task.accepted", "2026-09-07 15:00"),
                ev("task.accepted", "2026-09-08 15:00"),
            ],
            at("2026-09-10 12:00"),
        );
        assert_eq!(twice.state, State::Met);
        assert_eq!(twice.started_at, Some(at("2026-09-07 09:00")));
        assert_eq!(twice.stopped_at, Some(at("2026-09-07 15:00")));
    }

    #[test]
    fn cancelled_clocks() {
        let c = commitment(Target::WorkingDays(1));
        let cal = office();
        let stop_first = evaluate(
            &c,
            &cal,
            &[ev("task.accepted", "2026-09-07 08:30"), ev("case.registered", "2026-09-07 09:00")],
            at("2026-09-10 12:00"),
        );
        assert_eq!(stop_first.state, State::Cancelled);
        assert_eq!(stop_first.started_at, None);
        assert_eq!(stop_first.due_at, None);

        let withdrawn = evaluate(
            &c,
            &cal,
            &[
                ev("case.registered", "2026-09-07 09:00"),
                ev("case.withdrawn", "2026-09-08 10:00"),
                ev("task.accepted", "2026-09-08 11:00"),
            ],
            at("2026-09-10 12:00"),
        );
        assert_eq!(withdrawn.state, State::Cancelled);
        assert_eq!(withdrawn.stopped_at, Some(at("2026-09-08 10:00")));
        assert!(withdrawn.schedule.is_empty());
        // Frozen as it stood: one hour overdue when the case was withdrawn.
        assert_eq!(withdrawn.left, Duration::hours(-1));
        assert_eq!(due_local(&withdrawn), "2026-09-08 09:00:00");

        let closed_while_paused = evaluate(
            &c,
            &cal,
            &[
                ev("case.registered", "2026-09-07 09:00"),
                ev("case.waiting_for_company", "2026-09-07 10:00"),
                ev("case.closed", "2026-09-08 10:00"),
            ],
            at("2026-09-10 12:00"),
        );
        assert_eq!(closed_while_paused.state, State::Cancelled);
        assert_eq!(closed_while_paused.paused, hm(8, 30));

        // When closing is how the commitment is met, it is a stop.
        let mut closes = c.clone();
        closes.stops_on.push("case.closed".to_string());
        let met = evaluate(
            &closes,
            &cal,
            &[ev("case.registered", "2026-09-07 09:00"), ev("case.closed", "2026-09-07 10:00")],
            at("2026-09-10 12:00"),
        );
        assert_eq!(met.state, State::Met);
    }

    #[test]
    fn future_events_are_ignored() {
        let c = commitment(Target::WorkingDays(1));
        let cal = office();
        let events = [ev("case.registered", "2026-09-07 09:00"), ev("task.accepted", "2026-09-08 15:00")];
        let before = evaluate(&c, &cal, &events, at("2026-09-07 08:59"));
        assert_eq!(before.state, State::NotStarted);
        assert_eq!(before.due_at, None);
        assert_eq!(before.left, Duration::minutes(510));
        let between = evaluate(&c, &cal, &events, at("2026-09-08 14:59"));
        assert_eq!(between.state, State::Breached);
        let after = evaluate(&c, &cal, &events, at("2026-09-08 15:00"));
        assert_eq!(after.state, State::MetLate);
        // Unsorted input is read in occurrence order.
        let reversed: Vec<_> = events.iter().rev().cloned().collect();
        assert_eq!(evaluate(&c, &cal, &reversed, at("2026-09-09 08:00")), after);
    }

    #[test]
    fn a_legal_deadline_its_extension_and_the_fee_reduction() {
        let c = pbl();
        let cal = office();
        let complete = ev("case.complete", "2026-09-07 10:00");
        let clock = evaluate(&c, &cal, std::slice::from_ref(&complete), at("2026-09-08 10:00"));
        assert_eq!(clock.state, State::Running);
        assert_eq!(due_local(&clock), "2026-11-16 16:30:00");
        assert_eq!(clock.deadline_version, 0);
        assert!(!clock.extended);
        // Calendar time, not working time.
        assert_eq!(clock.left, at("2026-11-16 16:30") - at("2026-09-08 10:00"));
        let half = at("2026-09-07 10:00") + (at("2026-11-16 16:30") - at("2026-09-07 10:00")) / 2;
        assert_eq!(clock.schedule[0].at, half);
        assert_eq!(clock.schedule[1].stage, Stage::Breach);

        let once = [complete.clone(), ev(DEADLINE_EXTENDED, "2026-10-01 09:00")];
        let extended = evaluate(&c, &cal, &once, at("2026-10-02 09:00"));
        let due = extended.due_at.unwrap();
        assert_eq!(due_local(&extended), "2027-01-25 16:30:00");
        let day = due.with_timezone(&TZ).date_naive();
        assert!(!matches!(day.weekday(), Weekday::Sat | Weekday::Sun));
        assert!(holiday(day).is_none());
        assert_eq!(extended.deadline_version, 1);
        assert!(extended.extended);
        assert!(already_extended(&once));
        assert!(!already_extended(std::slice::from_ref(&complete)));

        let twice =
            [complete.clone(), ev(DEADLINE_EXTENDED, "2026-10-01 09:00"), ev(DEADLINE_EXTENDED, "2026-11-01 09:00")];
        let still = evaluate(&c, &cal, &twice, at("2026-11-02 09:00"));
        assert_eq!(still.due_at, Some(due));
        assert_eq!(still.deadline_version, 1);
        assert!(already_extended(&twice));

        // Without an extension in the policy the event changes nothing.
        let mut fixed = pbl();
        fixed.extension = None;
        let unextended = evaluate(&fixed, &cal, &once, at("2026-10-02 09:00"));
        assert_eq!(due_local(&unextended), "2026-11-16 16:30:00");
        assert_eq!(unextended.deadline_version, 0);

        let decided =
            |when: &str| evaluate(&c, &cal, &[complete.clone(), ev("case.decided", when)], at("2027-06-01 12:00"));
        let on_time = decided("2026-11-16 16:30");
        assert_eq!(on_time.state, State::Met);
        assert_eq!(on_time.fee_reduction_percent, 0);
        let cases = [
            ("2026-11-16 16:31", 20),
            ("2026-11-17 16:30", 20),
            ("2026-11-30 16:30", 40),
            ("2026-12-01 16:30", 60),
            ("2026-12-28 16:30", 100),
        ];
        for (when, percent) in cases {
            let clock = decided(when);
            assert_eq!(clock.state, State::MetLate, "{when}");
            assert_eq!(clock.fee_reduction_percent, percent, "{when}");
        }
        // Not decided yet: counted at `now`.
        let waiting = evaluate(&c, &cal, &[complete], at("2026-11-17 16:30"));
        assert_eq!(waiting.state, State::Breached);
        assert_eq!(waiting.fee_reduction_percent, 20);
    }

    #[test]
    fn a_paused_legal_clock_shifts_by_the_paused_calendar_time() {
        let mut c = pbl();
        c.pauses_on = vec!["case.waiting_for_company".to_string()];
        c.resumes_on = vec!["case.resumed".to_string()];
        let events = [
            ev("case.complete", "2026-09-07 10:00"),
            ev("case.waiting_for_company", "2026-09-10 10:00"),
            ev("case.resumed", "2026-09-17 10:00"),
        ];
        let clock = evaluate(&c, &office(), &events, at("2026-09-18 10:00"));
        assert_eq!(clock.paused, Duration::weeks(1));
        assert_eq!(due_local(&clock), "2026-11-23 16:30:00");
    }

    #[test]
    fn a_working_time_extension_adds_to_the_target() {
        let mut c = commitment(Target::WorkingHours(8));
        c.extension = Some(Target::WorkingHours(4));
        let events = [ev("case.registered", "2026-09-07 09:00"), ev(DEADLINE_EXTENDED, "2026-09-07 12:00")];
        let clock = evaluate(&c, &office(), &events, at("2026-09-07 13:00"));
        // 12 working hours: Monday 09:00–16:30 and Tuesday 08:00–12:30.
        assert_eq!(due_local(&clock), "2026-09-08 12:30:00");
        assert_eq!(clock.deadline_version, 1);
        assert_eq!(clock.left, hm(8, 0));
    }

    #[test]
    fn stage_keys() {
        assert_eq!(Stage::Warning { percent: 50 }.key(), "warn50");
        assert_eq!(Stage::Breach.key(), "breach");
        let esc = Stage::Escalation { step: 2, level: EscalationLevel::UnitManager };
        assert_eq!(esc.key(), "esc2");
    }

    fn instant_2024_2030() -> impl Strategy<Value = DateTime<Utc>> {
        let lo = at("2024-01-01 00:00").timestamp();
        let hi = at("2030-12-31 00:00").timestamp();
        (lo..=hi).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    proptest! {
        #[test]
        fn paused_time_never_counts(
            start in instant_2024_2030(),
            hours in 1u32..=120,
            into in 0.0f64..1.0,
            pause_seconds in 0i64..=30 * 86_400,
        ) {
            let cal = office();
            let c = commitment(Target::WorkingHours(hours));
            let target = Duration::hours(i64::from(hours));
            // The pause begins while the clock still runs, at some share of the target.
            let worked = Duration::seconds((target.num_seconds() as f64 * into) as i64);
            let paused = cal.add_working_time(start, worked);
            let resumed = paused + Duration::seconds(pause_seconds);
            let events = [
                ClockEvent { kind: "case.registered".to_string(), at: start },
                ClockEvent { kind: "case.waiting_for_company".to_string(), at: paused },
                ClockEvent { kind: "case.resumed".to_string(), at: resumed },
            ];
            let now = resumed.max(start) + Duration::days(400);
            let clock = evaluate(&c, &cal, &events, now);
            prop_assert_eq!(clock.state, State::Breached);
            let due = clock.due_at.unwrap();
            let paused_working = cal.working_time_between(paused, resumed);
            prop_assert_eq!(clock.paused, paused_working);
            prop_assert_eq!(cal.working_time_between(start, due) - paused_working, target);
            prop_assert!(clock.schedule.windows(2).all(|w| w[0].at <= w[1].at));
            prop_assert_eq!(clock.left, -cal.working_time_between(due, now));
        }
    }
}
