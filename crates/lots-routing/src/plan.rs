//! Choosing officers for the seats of a dukat bord and a time they share. Pure: it decides
//! over the writer's in-memory state (or candidates and free time the caller loaded) and
//! touches no database.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use lots_domain::calendar::WorkCalendar;
use lots_domain::slots::{self, Interval, NoSlot, SlotQuery};
use lots_domain::tenant::{CaseType, Target, TenantConfig};
use lots_events::{MeetingBooked, Payload};

use crate::state::TenantState;

/// Working days searched first, with the first choice of officers only.
const NEAR_WORKING_DAYS: u32 = 3;
/// Candidates per seat whose calendars are searched, best first.
pub const CANDIDATES_PER_SEAT: usize = 12;
/// Meetings start on the quarter hour.
const GRANULARITY_MINUTES: i64 = 15;
/// Working days searched when a case type promises no dukat bord deadline.
const DEFAULT_HORIZON_DAYS: u32 = 20;

/// What the planner needs to know about a newly registered case.
#[derive(Clone)]
pub struct NewCase {
    pub case_type: String,
    pub company_key: String,
    pub registered_at: DateTime<Utc>,
}

/// A seat with the officer chosen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seated {
    pub competence: String,
    pub optional: bool,
    pub officer_id: String,
    pub unit: String,
}

/// The planner's decision for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A dukat bord at `slot` with these seats; `owner` indexes the coordinating seat.
    Routed { slot: Interval, seats: Vec<Seated>, owner: usize },
    /// No table could be set; the reason is for a person to act on.
    Unroutable { reason: String },
}

/// Decides a new case over the tenant's state: seats, officers (continuity, spare capacity,
/// fairness), the earliest common slot in the window, alternates; or why it is unroutable.
pub fn decide(state: &TenantState, case: &NewCase, now: DateTime<Utc>) -> Decision {
    let tenant = &state.config;
    let Some(case_type) = tenant.case_type(&case.case_type) else {
        return Decision::Unroutable {
            reason: format!("the case type \"{}\" is not in the catalogue", case.case_type),
        };
    };
    let query = window(tenant, case_type, case.registered_at, now);
    let seats: Vec<Seat> = case_type
        .seats
        .iter()
        .map(|seat| {
            // The best few are enough for the first choice and its alternates; reading every
            // holder's calendar would make routing scale with staff.
            let (holders, candidates) = state.ranked(&seat.competence, &case.company_key, CANDIDATES_PER_SEAT);
            Seat { competence: seat.competence.clone(), optional: seat.optional, candidates, holders }
        })
        .collect();
    let buffer = Duration::minutes(i64::from(case_type.buffer_minutes));
    match search(state, &seats, &query, buffer) {
        Ok(choice) => seated(&seats, &choice, case_type),
        Err(reason) => {
            // The first choices and their alternates share no time: look at every holder of
            // each competence before giving up.
            let everyone: Vec<Seat> = case_type
                .seats
                .iter()
                .map(|seat| {
                    let (_, candidates) = state.ranked(&seat.competence, &case.company_key, usize::MAX);
                    Seat {
                        competence: seat.competence.clone(),
                        optional: seat.optional,
                        holders: candidates.len(),
                        candidates,
                    }
                })
                .collect();
            match earliest_with_anyone(state, &everyone, &query, buffer) {
                Some(choice) => seated(&everyone, &choice, case_type),
                None => Decision::Unroutable { reason },
            }
        }
    }
}

/// The earliest start at which every required seat has a distinct officer free for the whole
/// meeting, taking for each seat the best-ranked officer free then; optional seats join if
/// someone is free. The last resort of [`decide`] when calendars are nearly full.
fn earliest_with_anyone(state: &TenantState, seats: &[Seat], query: &SlotQuery, buffer: Duration) -> Option<Choice> {
    let officers: Vec<String> = seats.iter().flat_map(|s| s.candidates.iter().map(|c| c.officer_id.clone())).collect();
    let free = state.free(&officers, query, buffer);
    let fits = |id: &str, slot: Interval| {
        free.get(id).is_some_and(|f| {
            let at = f.partition_point(|iv| iv.end < slot.end);
            f.get(at).is_some_and(|iv| iv.start <= slot.start && slot.end <= iv.end)
        })
    };
    let step = query.granularity.max(Duration::minutes(1));
    let g = step.num_seconds();
    let first =
        query.not_before.timestamp().div_euclid(g) * g + if query.not_before.timestamp() % g == 0 { 0 } else { g };
    let mut start = DateTime::<Utc>::from_timestamp(first, 0)?;
    while start + query.length <= query.not_after {
        let slot = Interval::new(start, start + query.length);
        let mut taken: Vec<&str> = Vec::new();
        let mut officers: Vec<Option<String>> = Vec::with_capacity(seats.len());
        let mut complete = true;
        for seat in seats.iter().filter(|s| !s.optional) {
            match seat.candidates.iter().find(|c| !taken.contains(&c.officer_id.as_str()) && fits(&c.officer_id, slot))
            {
                Some(c) => taken.push(&c.officer_id),
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            let mut required = taken.clone().into_iter();
            for seat in seats {
                if !seat.optional {
                    officers.push(required.next().map(String::from));
                    continue;
                }
                let pick = seat
                    .candidates
                    .iter()
                    .find(|c| !taken.contains(&c.officer_id.as_str()) && fits(&c.officer_id, slot));
                if let Some(c) = pick {
                    taken.push(&c.officer_id);
                }
                officers.push(pick.map(|c| c.officer_id.clone()));
            }
            return Some(Choice { officers, slot });
        }
        start += step;
    }
    None
}

/// First the best officers within the next few working days (little calendar to read), then
/// the whole window with alternates. The first step only accepts the first choice of
/// officers, so it finds exactly what the whole search would.
pub fn search(state: &TenantState, seats: &[Seat], query: &SlotQuery, buffer: Duration) -> Result<Choice, String> {
    let near = state.calendar().add_working_days(query.not_before, NEAR_WORKING_DAYS);
    if near < query.not_after {
        let first: Vec<String> = seats
            .iter()
            .flat_map(|s| s.candidates.iter().take(if s.optional { usize::MAX } else { 1 }))
            .map(|c| c.officer_id.clone())
            .collect();
        let short = SlotQuery { not_after: near, ..*query };
        let free = state.free(&first, &short, buffer);
        if let Ok(choice) = choose(seats, &free, &short, "", false) {
            return Ok(choice);
        }
    }
    let officers: Vec<String> = seats.iter().flat_map(|s| s.candidates.iter().map(|c| c.officer_id.clone())).collect();
    let free = state.free(&officers, query, buffer);
    choose(seats, &free, query, &window_text(query), true)
}

fn seated(seats: &[Seat], choice: &Choice, case_type: &CaseType) -> Decision {
    let mut out = Vec::new();
    for (seat, officer) in seats.iter().zip(&choice.officers) {
        let Some(officer) = officer else { continue };
        let unit =
            seat.candidates.iter().find(|c| &c.officer_id == officer).map(|c| c.unit.clone()).unwrap_or_default();
        out.push(Seated {
            competence: seat.competence.clone(),
            optional: seat.optional,
            officer_id: officer.clone(),
            unit,
        });
    }
    let owner = owner_seat(&out, case_type.coordinating_competence());
    Decision::Routed { slot: choice.slot, seats: out, owner }
}

/// The seat whose officer owns the case: the coordinating competence's, else the first
/// required seat's.
pub fn owner_seat(seats: &[Seated], coordinating: Option<&str>) -> usize {
    coordinating
        .and_then(|c| seats.iter().position(|s| s.competence == c))
        .or_else(|| seats.iter().position(|s| !s.optional))
        .unwrap_or(0)
}

/// The search window: after the minimum notice, before the dukat bord promise.
pub fn window(tenant: &TenantConfig, case_type: &CaseType, registered: DateTime<Utc>, now: DateTime<Utc>) -> SlotQuery {
    let calendar = WorkCalendar::for_tenant(tenant);
    let not_before = now.max(registered) + Duration::hours(i64::from(case_type.min_notice_hours));
    let promise = case_type
        .commitments
        .iter()
        .filter_map(|k| tenant.commitments.get(k))
        .find(|c| c.stops_on.iter().any(|e| e == MeetingBooked::TYPE));
    let mut not_after = match promise.map(|c| c.target) {
        Some(Target::WorkingDays(n)) => calendar.add_working_days(registered, n),
        Some(Target::WorkingHours(n)) => calendar.add_working_hours(registered, n),
        Some(Target::CalendarWeeks(w)) => calendar.legal_deadline(registered, w),
        Some(Target::WorkingMinutes(m)) => {
            calendar.add_working_time(registered, chrono::Duration::minutes(i64::from(m)))
        }
        None => calendar.add_working_days(registered, DEFAULT_HORIZON_DAYS),
    };
    if not_after <= not_before {
        // The promise can no longer be kept; still find the earliest time rather than none.
        not_after = calendar.add_working_days(not_before, DEFAULT_HORIZON_DAYS);
    }
    SlotQuery {
        length: Duration::minutes(i64::from(case_type.meeting_minutes)),
        not_before,
        not_after,
        granularity: Duration::minutes(GRANULARITY_MINUTES),
    }
}

/// "between 2026-11-25 08:00 and 2026-12-01 16:30", in Swedish local time.
pub fn window_text(q: &SlotQuery) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&lots_domain::calendar::TZ).format("%Y-%m-%d %H:%M");
    format!("between {} and {}", local(q.not_before), local(q.not_after))
}

/// An officer who could take a seat, with what ordering needs.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub officer_id: String,
    pub unit: String,
    pub open_tasks: i64,
    pub capacity: i64,
    pub last_assigned_at: Option<DateTime<Utc>>,
    /// Served this company before in this competence (continuity: the company keeps its contact).
    pub served_company: bool,
}

impl Candidate {
    fn spare(&self) -> i64 {
        self.capacity - self.open_tasks
    }
}

/// One seat and its candidates, best first.
#[derive(Debug, Clone)]
pub struct Seat {
    pub competence: String,
    pub optional: bool,
    pub candidates: Vec<Candidate>,
    /// How many officers hold the competence at all (for the reason when none is free).
    pub holders: usize,
}

/// The chosen officer per seat (`None` for an optional seat left empty) and the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub officers: Vec<Option<String>>,
    pub slot: Interval,
}

/// Orders candidates: continuity first, then most spare capacity, then least recently assigned.
pub fn order(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.retain(|c| c.spare() > 0);
    candidates.sort_by(|a, b| {
        rank(a.served_company, a.spare(), a.last_assigned_at, &a.officer_id).cmp(&rank(
            b.served_company,
            b.spare(),
            b.last_assigned_at,
            &b.officer_id,
        ))
    });
    candidates
}

/// The key [`order`] sorts by, smallest first: continuity, then most spare capacity, then least
/// recently assigned (never assigned first), then the id (so the order is total).
pub type RankKey<'a> = (std::cmp::Reverse<bool>, std::cmp::Reverse<i64>, Option<DateTime<Utc>>, &'a str);

/// A candidate's [`RankKey`].
pub fn rank(
    served_company: bool,
    spare: i64,
    last_assigned_at: Option<DateTime<Utc>>,
    officer_id: &str,
) -> RankKey<'_> {
    (std::cmp::Reverse(served_company), std::cmp::Reverse(spare), last_assigned_at, officer_id)
}

/// How many alternates per seat the search tries when the first choice has no common time.
const ALTERNATES_PER_SEAT: usize = 4;

/// Picks an officer per seat and the earliest common slot, trying alternates seat by seat.
/// `free` holds each candidate's free time in the window; `pinned` fixes seats (by index) to
/// officers who keep them (used when one seat is re-routed).
pub fn choose(
    seats: &[Seat],
    free: &HashMap<String, Vec<Interval>>,
    query: &SlotQuery,
    window_text: &str,
    alternates: bool,
) -> Result<Choice, String> {
    let fits_alone =
        |id: &str| free.get(id).is_some_and(|f| slots::earliest_common_slot(std::slice::from_ref(f), query).is_some());
    // Usable candidates per required seat, never the same officer on two seats.
    let mut usable: Vec<Vec<&Candidate>> = Vec::new();
    for seat in seats.iter().filter(|s| !s.optional) {
        let list: Vec<&Candidate> = seat.candidates.iter().filter(|c| fits_alone(&c.officer_id)).collect();
        if list.is_empty() {
            return Err(nobody_reason(seat, window_text, query.length));
        }
        usable.push(list);
    }
    let required: Vec<&Seat> = seats.iter().filter(|s| !s.optional).collect();
    let mut first: Vec<&Candidate> = Vec::new();
    for list in &usable {
        match list.iter().find(|c| !first.iter().any(|f| f.officer_id == c.officer_id)) {
            Some(c) => first.push(c),
            None => return Err("too few distinct officers for the seats".into()),
        }
    }
    let try_set = |set: &[&Candidate]| -> Result<Interval, NoSlot> {
        let lists: Vec<Vec<Interval>> =
            set.iter().map(|c| free.get(&c.officer_id).cloned().unwrap_or_default()).collect();
        slots::find_slot(&lists, query)
    };
    let (set, slot) = match try_set(&first) {
        Ok(slot) => (first, slot),
        Err(first_miss) if !alternates => {
            return Err(no_slot_reason(&first, &required, first_miss, window_text, query.length));
        }
        Err(first_miss) => {
            // Alternates seat by seat: replace one officer at a time, keep the earliest result.
            let mut best: Option<(Vec<&Candidate>, Interval)> = None;
            for (i, list) in usable.iter().enumerate() {
                let others: Vec<&str> =
                    first.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| c.officer_id.as_str()).collect();
                for alt in
                    list.iter().filter(|c| !others.contains(&c.officer_id.as_str())).skip(1).take(ALTERNATES_PER_SEAT)
                {
                    let mut set = first.clone();
                    set[i] = alt;
                    if let Ok(slot) = try_set(&set)
                        && best.as_ref().is_none_or(|(_, b)| slot.start < b.start)
                    {
                        best = Some((set, slot));
                    }
                }
            }
            match best {
                Some(found) => found,
                None => {
                    return Err(no_slot_reason(&first, &required, first_miss, window_text, query.length));
                }
            }
        }
    };
    let mut officers: Vec<Option<String>> = Vec::with_capacity(seats.len());
    let mut required_iter = set.iter();
    let mut taken: Vec<String> = set.iter().map(|c| c.officer_id.clone()).collect();
    for seat in seats {
        if !seat.optional {
            officers.push(required_iter.next().map(|c| c.officer_id.clone()));
            continue;
        }
        // Optional seats join only if someone is free at the chosen time.
        let pick = seat.candidates.iter().find(|c| {
            !taken.contains(&c.officer_id)
                && free
                    .get(&c.officer_id)
                    .is_some_and(|f| f.iter().any(|iv| iv.start <= slot.start && slot.end <= iv.end))
        });
        if let Some(c) = pick {
            taken.push(c.officer_id.clone());
        }
        officers.push(pick.map(|c| c.officer_id.clone()));
    }
    Ok(Choice { officers, slot })
}

fn minutes(d: Duration) -> i64 {
    d.num_minutes()
}

fn nobody_reason(seat: &Seat, window: &str, length: Duration) -> String {
    if seat.holders == 0 {
        format!("no officer has the competence \"{}\"", seat.competence)
    } else if seat.candidates.is_empty() {
        format!("every officer with the competence \"{}\" ({}) is at full capacity", seat.competence, seat.holders)
    } else {
        let ids: Vec<&str> = seat.candidates.iter().map(|c| c.officer_id.as_str()).collect();
        format!(
            "no officer with the competence \"{}\" has {} free minutes {window} ({} are absent or booked)",
            seat.competence,
            minutes(length),
            ids.join(", ")
        )
    }
}

fn no_slot_reason(set: &[&Candidate], seats: &[&Seat], miss: NoSlot, window: &str, length: Duration) -> String {
    match miss {
        NoSlot::Unavailable { officers } => {
            let who: Vec<String> = officers
                .iter()
                .filter_map(|&i| Some(format!("{} ({})", set.get(i)?.officer_id, seats.get(i)?.competence)))
                .collect();
            format!("{} has no free {} minutes {window}", who.join(", "), minutes(length))
        }
        NoSlot::NoCommonTime { longest_common } => {
            let who: Vec<&str> = set.iter().map(|c| c.officer_id.as_str()).collect();
            format!(
                "{} have no common free {} minutes {window}, also with alternates; the longest common stretch is {} minutes",
                who.join(", "),
                minutes(length),
                minutes(longest_common)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, open: i64, cap: i64, served: bool) -> Candidate {
        Candidate {
            officer_id: id.into(),
            unit: "u".into(),
            open_tasks: open,
            capacity: cap,
            last_assigned_at: None,
            served_company: served,
        }
    }

    #[test]
    fn continuity_beats_capacity_and_full_officers_are_dropped() {
        let ordered = order(vec![cand("a", 0, 10, false), cand("b", 5, 6, true), cand("c", 4, 4, true)]);
        let ids: Vec<_> = ordered.iter().map(|c| c.officer_id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[test]
    fn ties_go_to_who_was_assigned_least_recently() {
        let mut a = cand("a", 1, 5, false);
        a.last_assigned_at = Some(Utc::now());
        let b = cand("b", 1, 5, false);
        let ordered = order(vec![a, b]);
        assert_eq!(ordered[0].officer_id, "b");
    }
}
