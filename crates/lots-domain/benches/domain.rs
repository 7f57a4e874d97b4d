//! Criterion benchmarks of the domain's hot pure functions.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use criterion::{Criterion, criterion_group, criterion_main};
use lots_domain::slots::{Interval, SlotQuery, find_slot, free_time};
use std::hint::black_box;

fn identifiers(c: &mut Criterion) {
    c.bench_function("orgnr_parse", |b| b.iter(|| lots_domain::OrgNr::parse(std::hint::black_box("556036-0793"))));
}

/// Deterministic 64-bit LCG (Knuth's MMIX constants), so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        // The high bits of an LCG are the random-looking ones.
        self.0 >> 33
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    fn below(&mut self, n: i64) -> i64 {
        // `next` yields 31 bits, so the cast is lossless.
        self.next() as i64 % n
    }
}

const OFFICERS: usize = 6;
const BUSY_PER_OFFICER: usize = 500;
const DAYS: usize = 30;
/// Working day 08:00–16:30.
const DAY_MINUTES: i64 = 510;
/// Chance that a meeting lands one working day later than the previous candidate day.
/// Calendars fill up nearest today; this skew (geometric over days) leaves the first
/// week or so solid and later days sparse, so the search has to walk a while.
const LATER_PERCENT: i64 = 60;

struct Scenario {
    working: Vec<Interval>,
    busy: Vec<Vec<Interval>>,
    buffer: Duration,
    query: SlotQuery,
}

/// 6 officers, 30 weekdays from 2026-01-05, 500 busy intervals of 15–120 min each.
fn scenario() -> Scenario {
    let mut day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let mut starts: Vec<DateTime<Utc>> = Vec::with_capacity(DAYS);
    while starts.len() < DAYS {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            starts.push(day.and_hms_opt(8, 0, 0).unwrap().and_utc());
        }
        day = day.succ_opt().unwrap();
    }
    let working: Vec<Interval> = starts.iter().map(|&s| Interval::new(s, s + Duration::minutes(DAY_MINUTES))).collect();

    let mut rng = Lcg(0x4c6f_7473_656e);
    let busy = (0..OFFICERS)
        .map(|_| {
            (0..BUSY_PER_OFFICER)
                .map(|_| {
                    let mut d = 0;
                    while d + 1 < DAYS && rng.below(100) < LATER_PERCENT {
                        d += 1;
                    }
                    let start = starts[d] + Duration::minutes(rng.below(DAY_MINUTES));
                    let length = Duration::minutes(15 + rng.below(106));
                    Interval::new(start, start + length)
                })
                .collect()
        })
        .collect();

    let query = SlotQuery {
        length: Duration::minutes(90),
        not_before: starts[0],
        not_after: starts[DAYS - 1] + Duration::days(1),
        granularity: Duration::minutes(15),
    };
    Scenario { working, busy, buffer: Duration::minutes(10), query }
}

fn slot_search(c: &mut Criterion) {
    let s = scenario();
    let free: Vec<Vec<Interval>> = s.busy.iter().map(|busy| free_time(&s.working, busy, s.buffer)).collect();
    // Shown once so the benchmark's premise (a slot well into the period) is visible.
    eprintln!("slot_search earliest: {:?}", find_slot(&free, &s.query));

    let mut group = c.benchmark_group("slot_search");
    group.bench_function("free_time_and_search_6x500", |b| {
        b.iter(|| {
            let free: Vec<Vec<Interval>> =
                s.busy.iter().map(|busy| free_time(black_box(&s.working), black_box(busy), s.buffer)).collect();
            find_slot(&free, black_box(&s.query))
        })
    });
    group.bench_function("search_only", |b| b.iter(|| find_slot(black_box(&free), black_box(&s.query))));
    // The miss path: no common slot in the first week and a half, so find_slot goes on
    // to search for every officer alone to explain why.
    let miss = SlotQuery { not_after: s.query.not_before + Duration::days(9), ..s.query };
    eprintln!("slot_search miss: {:?}", find_slot(&free, &miss));
    group.bench_function("search_only_miss", |b| b.iter(|| find_slot(black_box(&free), black_box(&miss))));
    group.finish();
}

/// Working-time arithmetic on the Swedish calendar: a 5-working-day deadline, a 10-week legal
/// deadline, and the working time in a 10-week span (with holidays and a DST change inside).
fn working_time(c: &mut Criterion) {
    use lots_domain::calendar::WorkCalendar;
    use lots_domain::tenant::WorkingHours;
    let hours = WorkingHours {
        days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
        start: chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        end: chrono::NaiveTime::from_hms_opt(16, 30, 0).unwrap(),
    };
    let calendar = WorkCalendar::new(&hours, &[NaiveDate::from_ymd_opt(2026, 5, 15).unwrap()]);
    let start = DateTime::parse_from_rfc3339("2026-09-07T07:00:00Z").unwrap().with_timezone(&Utc);
    let end = start + Duration::weeks(10);
    let mut group = c.benchmark_group("working_time");
    group.bench_function("add_5_working_days", |b| b.iter(|| calendar.add_working_days(black_box(start), 5)));
    group.bench_function("legal_deadline_10_weeks", |b| b.iter(|| calendar.legal_deadline(black_box(start), 10)));
    group.bench_function("between_10_weeks", |b| b.iter(|| calendar.working_time_between(black_box(start), end)));
    group.finish();
}

criterion_group!(benches, identifiers, slot_search, working_time);
criterion_main!(benches);
