//! One routing decision in memory: a five-seat restaurant start among the example
//! municipality's officers copied 40 times (about 160 per competence), on calendars that
//! earlier decisions have already filled. The example's own meeting length, buffer, minimum
//! notice and promised window; only the officers are copied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use lots_domain::TenantConfig;
use lots_routing::plan::{self, Decision, NewCase};
use lots_routing::state::TenantState;

const COPIES: usize = 40;
/// Restaurant starts decided (and booked) before the measured one.
const EARLIER: usize = 1_500;

fn example() -> TenantConfig {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/norrkoping.toml");
    let mut t = TenantConfig::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let officers = t.officers.clone();
    // Copies as the load benchmark makes them; busy-time files stay with the originals.
    t.officers = (0..COPIES)
        .flat_map(|i| {
            officers.iter().map(move |o| {
                let mut o = o.clone();
                if i > 0 {
                    o.id = format!("{}~{i}", o.id);
                    o.calendar = None;
                }
                o.capacity = 1_000_000;
                o
            })
        })
        .collect();
    t
}

fn decide(c: &mut Criterion) {
    let config = Arc::new(example());
    let per_competence = config.officers.iter().filter(|o| o.competences.iter().any(|k| k == "livsmedel")).count();
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap();
    let mut state = TenantState::from_config(config.clone());
    let case = |i: usize| NewCase {
        case_type: "restaurang_start".into(),
        company_key: format!("ck_{i:032x}"),
        registered_at: now + Duration::seconds(i as i64),
    };
    let mut routed = 0;
    for i in 0..EARLIER {
        let at = now + Duration::seconds(i as i64);
        if let Decision::Routed { slot, seats, .. } = plan::decide(&state, &case(i), at) {
            routed += 1;
            for s in &seats {
                state.offered(&s.officer_id, &case(i).company_key, &s.competence, slot, at);
            }
        }
    }
    assert!(routed > EARLIER * 9 / 10, "the earlier cases found tables: {routed} of {EARLIER}");
    let next = case(EARLIER);
    let at = now + Duration::seconds(EARLIER as i64);
    assert!(matches!(plan::decide(&state, &next, at), Decision::Routed { .. }));
    let name = format!("decide_restaurang_start_5_seats_{per_competence}_officers_per_competence_{EARLIER}_booked");
    c.bench_function(&name, |b| b.iter(|| plan::decide(black_box(&state), black_box(&next), at)));
}

criterion_group!(benches, decide);
criterion_main!(benches);
