//! Finding the earliest time all officers of a "dukat bord" meeting are free.
//!
//! Everything here works on UTC instants; turning municipal working hours into UTC
//! intervals is the calendar module's job. The pipeline is: [`free_time`] per officer,
//! then [`earliest_common_slot`] or [`find_slot`] over the officers' free lists
//! ([`intersect`] is available when the whole common list is wanted).

use chrono::{DateTime, Duration, Utc};

/// A half-open time interval [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// First instant inside the interval.
    pub start: DateTime<Utc>,
    /// First instant after the interval.
    pub end: DateTime<Utc>,
}

impl Interval {
    /// Creates `[start, end)`; an `end` before `start` gives the empty interval at `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Interval {
        // Empty rather than swapped: a reversed pair is a caller bug, and silently
        // inventing time someone is busy or free would be worse than dropping it.
        Interval { start, end: end.max(start) }
    }

    /// Length of the interval (zero when empty).
    pub fn len(&self) -> Duration {
        if self.is_empty() { Duration::zero() } else { self.end.signed_duration_since(self.start) }
    }

    /// True when the interval contains no instant.
    pub fn is_empty(&self) -> bool {
        // The fields are public, so a reversed interval can exist; treat it as empty.
        self.start >= self.end
    }

    /// True when both intervals share at least one instant (touching ends do not count).
    pub fn overlaps(&self, other: &Interval) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }
}

/// One officer's free time: `working` minus `busy`, where each busy interval is widened by `buffer` on both sides
/// (an officer needs free time around meetings). Inputs need not be sorted or disjoint. Output sorted, disjoint, non-empty.
///
/// A negative `buffer` counts as zero and empty busy intervals are ignored. Touching
/// working intervals are joined, so a slot may span them.
pub fn free_time(working: &[Interval], busy: &[Interval], buffer: Duration) -> Vec<Interval> {
    // Works on integer nanoseconds: sorting and widening chrono values directly costs
    // several times more (calendar arithmetic on every comparison and addition), and
    // i128 cannot overflow where widening a DateTime near its range limit could.
    let buffer = duration_nanos(buffer.max(Duration::zero()));

    let mut work: Vec<Span> =
        working.iter().filter(|iv| !iv.is_empty()).map(|iv| (nanos(iv.start), nanos(iv.end))).collect();
    // coalesce only needs start order, and comparing one key is measurably cheaper.
    work.sort_unstable_by_key(|span| span.0);
    coalesce(&mut work);

    let mut blocked: Vec<Span> =
        busy.iter().filter(|iv| !iv.is_empty()).map(|iv| (nanos(iv.start) - buffer, nanos(iv.end) + buffer)).collect();
    blocked.sort_unstable_by_key(|span| span.0);
    coalesce(&mut blocked);

    // One pass over both sorted lists. `b` only moves past blocks that end before the
    // current working interval, because a block may cover the end of one working
    // interval and the start of the next.
    let mut out = Vec::with_capacity(work.len() + blocked.len());
    let mut push = |start: i128, end: i128| {
        // Pieces lie inside a working interval, so converting back cannot fail.
        if let (Some(start), Some(end)) = (from_nanos(start), from_nanos(end)) {
            out.push(Interval { start, end });
        }
    };
    let mut b = 0;
    for (w_start, w_end) in work {
        while b < blocked.len() && blocked[b].1 <= w_start {
            b += 1;
        }
        let mut cur = w_start;
        for &(b_start, b_end) in blocked[b..].iter().take_while(|block| block.0 < w_end) {
            if b_start > cur {
                push(cur, b_start);
            }
            cur = cur.max(b_end);
        }
        if cur < w_end {
            push(cur, w_end);
        }
    }
    out
}

/// A half-open interval as nanoseconds since the Unix epoch.
type Span = (i128, i128);

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Nanoseconds since the Unix epoch; exact for every instant chrono can hold.
fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * NANOS_PER_SEC + i128::from(t.timestamp_subsec_nanos())
}

/// The instant `n` nanoseconds after the Unix epoch, if chrono can hold it.
fn from_nanos(n: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(n.div_euclid(NANOS_PER_SEC)).ok()?;
    let subsec = u32::try_from(n.rem_euclid(NANOS_PER_SEC)).ok()?;
    DateTime::from_timestamp(secs, subsec)
}

/// A duration in nanoseconds.
fn duration_nanos(d: Duration) -> i128 {
    i128::from(d.num_seconds()) * NANOS_PER_SEC + i128::from(d.subsec_nanos())
}

/// Merges a list sorted by start in place, joining overlapping and touching spans.
fn coalesce(v: &mut Vec<Span>) {
    let mut kept = 0;
    for i in 0..v.len() {
        let span = v[i];
        if kept > 0 && span.0 <= v[kept - 1].1 {
            v[kept - 1].1 = v[kept - 1].1.max(span.1);
        } else {
            v[kept] = span;
            kept += 1;
        }
    }
    v.truncate(kept);
}

/// Intersection of several sorted disjoint lists (k-way, linear merge).
///
/// No lists gives an empty result (there is nobody to be free). Pieces that touch are
/// joined, so the output is sorted, disjoint and non-empty.
pub fn intersect(lists: &[Vec<Interval>]) -> Vec<Interval> {
    Common::new(lists, None).collect()
}

/// Lazy k-way sweep over the common part of sorted disjoint lists.
///
/// Lazy so a search can stop at the first fitting stretch instead of building the
/// whole intersection.
struct Common<'a> {
    lists: &'a [Vec<Interval>],
    /// Current position in each list.
    idx: Vec<usize>,
    /// A piece not yet handed out, held back in case the next one touches it.
    pending: Option<Interval>,
}

impl<'a> Common<'a> {
    /// Starts the sweep; with `from`, intervals ending at or before it are skipped.
    fn new(lists: &'a [Vec<Interval>], from: Option<DateTime<Utc>>) -> Self {
        let idx = lists
            .iter()
            .map(|list| match from {
                // Binary search: the window usually starts well into the lists.
                Some(t) => list.partition_point(|iv| iv.end <= t),
                None => 0,
            })
            .collect();
        Common { lists, idx, pending: None }
    }

    /// Next non-empty common piece, possibly touching the previous one.
    fn next_piece(&mut self) -> Option<Interval> {
        if self.lists.is_empty() {
            return None;
        }
        loop {
            let mut lo = DateTime::<Utc>::MIN_UTC;
            let mut hi = DateTime::<Utc>::MAX_UTC;
            for (list, &i) in self.lists.iter().zip(&self.idx) {
                let iv = list.get(i)?;
                lo = lo.max(iv.start);
                hi = hi.min(iv.end);
            }
            // Every interval ending at `hi` is used up; at least one does, so this terminates.
            for (list, i) in self.lists.iter().zip(self.idx.iter_mut()) {
                if list[*i].end == hi {
                    *i += 1;
                }
            }
            if lo < hi {
                return Some(Interval { start: lo, end: hi });
            }
        }
    }
}

impl Iterator for Common<'_> {
    type Item = Interval;

    fn next(&mut self) -> Option<Interval> {
        // Touching pieces only arise from touching intervals within one input list,
        // but joining them keeps a slot from being missed across the seam.
        loop {
            match (self.pending, self.next_piece()) {
                (None, None) => return None,
                (None, Some(piece)) => self.pending = Some(piece),
                (Some(held), None) => {
                    self.pending = None;
                    return Some(held);
                }
                (Some(held), Some(piece)) if piece.start <= held.end => {
                    self.pending = Some(Interval { start: held.start, end: held.end.max(piece.end) });
                }
                (Some(held), Some(piece)) => {
                    self.pending = Some(piece);
                    return Some(held);
                }
            }
        }
    }
}

/// What to search for.
#[derive(Debug, Clone, Copy)]
pub struct SlotQuery {
    /// Length of the meeting (negative counts as zero).
    pub length: Duration,
    /// The slot must start at or after this.
    pub not_before: DateTime<Utc>,
    /// The slot must END at or before this.
    pub not_after: DateTime<Utc>,
    /// Starts are aligned to multiples of this since the Unix epoch (e.g. 15 min); zero/negative = no alignment.
    pub granularity: Duration,
}

impl SlotQuery {
    /// The earliest allowed start within `stretch`, with how long it may run.
    ///
    /// `None` when no allowed start lies inside the stretch and the window.
    fn usable(&self, stretch: Interval) -> Option<(DateTime<Utc>, Duration)> {
        let start = align_up(stretch.start.max(self.not_before), self.granularity)?;
        let end = stretch.end.min(self.not_after);
        // Strict: the start itself must be a free instant, which matters for zero length.
        (start < end).then(|| (start, end.signed_duration_since(start)))
    }

    /// The slot of the query's length at the earliest allowed start in `stretch`, if it fits.
    fn fit(&self, stretch: Interval) -> Option<Interval> {
        let length = self.length.max(Duration::zero());
        let (start, room) = self.usable(stretch)?;
        (length <= room).then(|| Interval { start, end: start + length })
    }
}

/// Rounds `t` up to the next multiple of `granularity` since the Unix epoch.
///
/// `None` only when the rounded instant falls outside chrono's range.
fn align_up(t: DateTime<Utc>, granularity: Duration) -> Option<DateTime<Utc>> {
    if granularity <= Duration::zero() {
        return Some(t);
    }
    let g = duration_nanos(granularity);
    let ns = nanos(t);
    let rem = ns.rem_euclid(g);
    if rem == 0 {
        return Some(t);
    }
    from_nanos(ns + (g - rem))
}

/// Earliest slot of `query.length` inside every officer's free list, starting at an aligned instant >= not_before and ending <= not_after.
///
/// Each free list must be sorted and disjoint, as [`free_time`] returns it. No officers gives `None`.
pub fn earliest_common_slot(free: &[Vec<Interval>], query: &SlotQuery) -> Option<Interval> {
    Common::new(free, Some(query.not_before))
        .take_while(|stretch| stretch.start < query.not_after)
        .find_map(|stretch| query.fit(stretch))
}

/// Why no slot was found, for a person to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoSlot {
    /// These officers (indices into `free`) alone have no free stretch of the length in the window.
    Unavailable {
        /// Indices into `free`, ascending.
        officers: Vec<usize>,
    },
    /// Each officer alone has time, but never at the same time; `longest_common` is the longest common free stretch found (may be zero).
    NoCommonTime {
        /// Longest common stretch in the window, counted from its first aligned start (so always shorter than asked for).
        longest_common: Duration,
    },
}

/// Like earliest_common_slot, but explains a miss.
///
/// Officers who cannot make it alone are reported first: rescheduling them is what
/// a person has to do before a common time can exist. No officers gives
/// `NoCommonTime` with zero.
pub fn find_slot(free: &[Vec<Interval>], query: &SlotQuery) -> Result<Interval, NoSlot> {
    if let Some(slot) = earliest_common_slot(free, query) {
        return Ok(slot);
    }
    let officers: Vec<usize> = free
        .iter()
        .enumerate()
        .filter(|(_, list)| earliest_common_slot(std::slice::from_ref(*list), query).is_none())
        .map(|(i, _)| i)
        .collect();
    if !officers.is_empty() {
        return Err(NoSlot::Unavailable { officers });
    }
    // Measured the same way the search fits slots, so it is comparable to `length`.
    let longest_common = Common::new(free, Some(query.not_before))
        .take_while(|stretch| stretch.start < query.not_after)
        .filter_map(|stretch| query.usable(stretch).map(|(_, room)| room))
        .max()
        .unwrap_or_else(Duration::zero);
    Err(NoSlot::NoCommonTime { longest_common })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;
    use proptest::prelude::*;

    /// Parses "YYYY-MM-DD HH:MM" as UTC.
    fn t(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap().and_utc()
    }

    fn iv(a: &str, b: &str) -> Interval {
        Interval::new(t(a), t(b))
    }

    fn min(m: i64) -> Duration {
        Duration::minutes(m)
    }

    fn query(length: i64, not_before: &str, not_after: &str, granularity: i64) -> SlotQuery {
        SlotQuery {
            length: min(length),
            not_before: t(not_before),
            not_after: t(not_after),
            granularity: min(granularity),
        }
    }

    #[test]
    fn interval_basics() {
        let a = iv("2026-05-12 09:00", "2026-05-12 10:00");
        assert_eq!(a.len(), min(60));
        assert!(!a.is_empty());
        let reversed = Interval::new(t("2026-05-12 10:00"), t("2026-05-12 09:00"));
        assert!(reversed.is_empty());
        assert_eq!(reversed.start, t("2026-05-12 10:00"));
        assert_eq!(reversed.len(), Duration::zero());
        let touching = iv("2026-05-12 10:00", "2026-05-12 11:00");
        assert!(!a.overlaps(&touching));
        assert!(a.overlaps(&iv("2026-05-12 09:59", "2026-05-12 11:00")));
        let point = Interval::new(t("2026-05-12 09:30"), t("2026-05-12 09:30"));
        assert!(!a.overlaps(&point));
    }

    #[test]
    fn free_time_subtracts_buffered_busy_and_merges_overlaps() {
        let working = [iv("2026-05-12 08:00", "2026-05-12 12:00"), iv("2026-05-12 13:00", "2026-05-12 17:00")];
        // Unsorted, with two overlapping meetings and one that straddles lunch.
        let busy = [
            iv("2026-05-12 10:30", "2026-05-12 11:00"),
            iv("2026-05-12 09:00", "2026-05-12 10:00"),
            iv("2026-05-12 11:30", "2026-05-12 13:30"),
            iv("2026-05-12 09:30", "2026-05-12 10:15"),
        ];
        let free = free_time(&working, &busy, min(10));
        assert_eq!(
            free,
            vec![
                iv("2026-05-12 08:00", "2026-05-12 08:50"),
                // 09:00–10:15 and 10:30–11:00 buffered by 10 min merge into 08:50–11:10;
                // lunch's 11:30–13:30 becomes 11:20–13:40 and spans both working intervals.
                iv("2026-05-12 11:10", "2026-05-12 11:20"),
                iv("2026-05-12 13:40", "2026-05-12 17:00"),
            ]
        );
    }

    #[test]
    fn free_time_without_busy_joins_touching_working_intervals() {
        let working = [iv("2026-05-12 13:00", "2026-05-12 16:00"), iv("2026-05-12 08:00", "2026-05-12 13:00")];
        let free = free_time(&working, &[], min(10));
        assert_eq!(free, vec![iv("2026-05-12 08:00", "2026-05-12 16:00")]);
    }

    #[test]
    fn two_officers_interleaved_busy_give_exact_earliest_slot() {
        let day = [iv("2026-05-12 08:00", "2026-05-12 17:00")];
        let anna = free_time(
            &day,
            &[iv("2026-05-12 08:00", "2026-05-12 09:00"), iv("2026-05-12 10:30", "2026-05-12 11:00")],
            Duration::zero(),
        );
        let bo = free_time(
            &day,
            &[iv("2026-05-12 09:30", "2026-05-12 10:00"), iv("2026-05-12 11:45", "2026-05-12 12:00")],
            Duration::zero(),
        );
        // Common: 09:00–09:30, 10:00–10:30, 11:00–11:45, 12:00–17:00.
        assert_eq!(
            intersect(&[anna.clone(), bo.clone()]),
            vec![
                iv("2026-05-12 09:00", "2026-05-12 09:30"),
                iv("2026-05-12 10:00", "2026-05-12 10:30"),
                iv("2026-05-12 11:00", "2026-05-12 11:45"),
                iv("2026-05-12 12:00", "2026-05-12 17:00"),
            ]
        );
        let q = query(45, "2026-05-12 08:00", "2026-05-12 17:00", 15);
        assert_eq!(earliest_common_slot(&[anna, bo], &q), Some(iv("2026-05-12 11:00", "2026-05-12 11:45")));
    }

    #[test]
    fn granularity_rounds_start_up() {
        let free = vec![vec![iv("2026-05-12 09:07", "2026-05-12 12:00")]];
        let q = query(30, "2026-05-12 08:00", "2026-05-12 18:00", 15);
        assert_eq!(earliest_common_slot(&free, &q), Some(iv("2026-05-12 09:15", "2026-05-12 09:45")));
        let unaligned = SlotQuery { granularity: Duration::zero(), ..q };
        assert_eq!(earliest_common_slot(&free, &unaligned), Some(iv("2026-05-12 09:07", "2026-05-12 09:37")));
        // Rounding can push a stretch's only start out of it.
        let tight = vec![vec![iv("2026-05-12 09:07", "2026-05-12 09:40")]];
        assert_eq!(earliest_common_slot(&tight, &q), None);
    }

    #[test]
    fn not_after_is_respected() {
        let free = vec![vec![iv("2026-05-12 09:00", "2026-05-12 10:00"), iv("2026-05-12 11:00", "2026-05-12 12:00")]];
        let q = query(60, "2026-05-12 09:30", "2026-05-12 11:59", 15);
        assert_eq!(earliest_common_slot(&free, &q), None);
        let q = query(60, "2026-05-12 09:30", "2026-05-12 12:00", 15);
        assert_eq!(earliest_common_slot(&free, &q), Some(iv("2026-05-12 11:00", "2026-05-12 12:00")));
    }

    #[test]
    fn not_before_is_respected() {
        let free = vec![vec![iv("2026-05-12 09:00", "2026-05-12 12:00")]];
        let q = query(30, "2026-05-12 10:20", "2026-05-12 18:00", 15);
        assert_eq!(earliest_common_slot(&free, &q), Some(iv("2026-05-12 10:30", "2026-05-12 11:00")));
    }

    #[test]
    fn find_slot_names_the_officer_booked_solid() {
        let day = [iv("2026-05-12 08:00", "2026-05-12 17:00")];
        let free = vec![
            free_time(&day, &[], min(10)),
            free_time(&day, &[iv("2026-05-12 07:00", "2026-05-12 18:00")], min(10)),
            free_time(&day, &[iv("2026-05-12 12:00", "2026-05-12 13:00")], min(10)),
        ];
        let q = query(60, "2026-05-12 08:00", "2026-05-12 17:00", 15);
        assert_eq!(find_slot(&free, &q), Err(NoSlot::Unavailable { officers: vec![1] }));
    }

    #[test]
    fn find_slot_reports_no_common_time() {
        let free =
            vec![vec![iv("2026-05-12 08:00", "2026-05-12 10:00")], vec![iv("2026-05-12 09:30", "2026-05-12 12:00")]];
        let q = query(60, "2026-05-12 08:00", "2026-05-12 17:00", 15);
        assert_eq!(find_slot(&free, &q), Err(NoSlot::NoCommonTime { longest_common: min(30) }));
        let apart =
            vec![vec![iv("2026-05-12 08:00", "2026-05-12 10:00")], vec![iv("2026-05-12 13:00", "2026-05-12 15:00")]];
        assert_eq!(find_slot(&apart, &q), Err(NoSlot::NoCommonTime { longest_common: Duration::zero() }));
        assert_eq!(find_slot(&[], &q), Err(NoSlot::NoCommonTime { longest_common: Duration::zero() }));
        assert_eq!(earliest_common_slot(&[], &q), None);
    }

    #[test]
    fn empty_busy_gives_first_aligned_working_instant() {
        let working = [iv("2026-05-13 08:05", "2026-05-13 16:30"), iv("2026-05-12 08:10", "2026-05-12 16:30")];
        let free = vec![free_time(&working, &[], min(10)), free_time(&working, &[], min(10))];
        let q = query(90, "2026-05-12 00:00", "2026-05-20 00:00", 15);
        assert_eq!(find_slot(&free, &q), Ok(iv("2026-05-12 08:15", "2026-05-12 09:45")));
    }

    #[test]
    fn intersect_edge_cases() {
        assert!(intersect(&[]).is_empty());
        let one = vec![iv("2026-05-12 08:00", "2026-05-12 09:00")];
        assert_eq!(intersect(std::slice::from_ref(&one)), one);
        // Touching pieces in the input are joined in the output.
        let split = vec![iv("2026-05-12 08:00", "2026-05-12 08:30"), iv("2026-05-12 08:30", "2026-05-12 09:00")];
        assert_eq!(intersect(&[split, one.clone()]), one);
        assert!(intersect(&[one, vec![]]).is_empty());
    }

    // ---- Property tests: inputs on a minute grid, checked against brute force. ----

    const BASE: &str = "2026-05-12 06:00";

    fn at(m: i64) -> DateTime<Utc> {
        t(BASE) + min(m)
    }

    /// (start minute, length in minutes) pairs to intervals.
    fn to_intervals(raw: &[(i64, i64)]) -> Vec<Interval> {
        raw.iter().map(|&(s, l)| Interval::new(at(s), at(s + l))).collect()
    }

    /// Does the minute [m, m+1) lie inside some interval of `list`?
    fn covers(list: &[Interval], m: i64) -> bool {
        list.iter().any(|iv| iv.start <= at(m) && at(m + 1) <= iv.end)
    }

    fn inside(list: &[Interval], slot: &Interval) -> bool {
        list.iter().any(|iv| iv.start <= slot.start && slot.end <= iv.end)
    }

    fn well_formed(list: &[Interval]) -> bool {
        list.iter().all(|iv| !iv.is_empty()) && list.windows(2).all(|w| w[0].end < w[1].start)
    }

    #[derive(Debug, Clone)]
    struct Officer {
        working: Vec<(i64, i64)>,
        busy: Vec<(i64, i64)>,
    }

    fn officer() -> impl Strategy<Value = Officer> {
        (
            // Mostly-available officers, so all three outcomes of a search are common.
            prop::collection::vec((0i64..400, 0i64..480), 1..4),
            prop::collection::vec((0i64..800, 0i64..90), 0..6),
        )
            .prop_map(|(working, busy)| Officer { working, busy })
    }

    fn scenario() -> impl Strategy<Value = (Vec<Officer>, i64, i64, i64, i64, i64)> {
        (
            prop::collection::vec(officer(), 2..=4),
            0i64..20,                                    // buffer
            5i64..120,                                   // length
            0i64..400,                                   // not_before
            60i64..700,                                  // window width
            prop::sample::select(vec![0i64, 5, 15, 30]), // granularity
        )
    }

    proptest! {
        #[test]
        fn free_time_matches_minute_by_minute(o in officer(), buffer in 0i64..20) {
            let working = to_intervals(&o.working);
            let busy = to_intervals(&o.busy);
            let free = free_time(&working, &busy, min(buffer));
            prop_assert!(well_formed(&free));
            for m in -30..930 {
                let blocked = busy.iter().any(|b| {
                    !b.is_empty() && b.start - min(buffer) <= at(m) && at(m + 1) <= b.end + min(buffer)
                });
                let expected = covers(&working, m) && !blocked;
                prop_assert_eq!(covers(&free, m), expected, "minute {}", m);
            }
        }

        #[test]
        fn intersect_matches_minute_by_minute(officers in prop::collection::vec(officer(), 1..=4)) {
            let lists: Vec<Vec<Interval>> = officers
                .iter()
                .map(|o| free_time(&to_intervals(&o.working), &to_intervals(&o.busy), min(5)))
                .collect();
            let common = intersect(&lists);
            prop_assert!(well_formed(&common));
            for m in 0..930 {
                let expected = lists.iter().all(|l| covers(l, m));
                prop_assert_eq!(covers(&common, m), expected, "minute {}", m);
            }
        }

        #[test]
        fn found_slot_is_valid_and_earliest(
            (officers, buffer, length, nb, width, gran) in scenario()
        ) {
            let free: Vec<Vec<Interval>> = officers
                .iter()
                .map(|o| free_time(&to_intervals(&o.working), &to_intervals(&o.busy), min(buffer)))
                .collect();
            let q = SlotQuery {
                length: min(length),
                not_before: at(nb),
                not_after: at(nb + width),
                granularity: min(gran),
            };
            let fits = |s: DateTime<Utc>| {
                let slot = Interval::new(s, s + q.length);
                slot.end <= q.not_after && free.iter().all(|l| inside(l, &slot))
            };
            // Every candidate start, on the query's grid (the minute grid when unaligned).
            let step = if gran > 0 { gran } else { 1 };
            let first = (nb + step - 1).div_euclid(step) * step;
            let candidates = (first..=nb + width).step_by(usize::try_from(step).unwrap()).map(at);

            let found = earliest_common_slot(&free, &q);
            match found {
                Some(slot) => {
                    prop_assert_eq!(slot.len(), q.length);
                    prop_assert!(slot.start >= q.not_before && slot.end <= q.not_after);
                    prop_assert!(fits(slot.start));
                    for s in candidates.take_while(|&s| s < slot.start) {
                        prop_assert!(!fits(s), "earlier start {} fits", s);
                    }
                }
                None => {
                    for s in candidates {
                        prop_assert!(!fits(s), "missed start {}", s);
                    }
                }
            }

            match find_slot(&free, &q) {
                Ok(slot) => prop_assert_eq!(Some(slot), found),
                Err(NoSlot::Unavailable { officers: idle }) => {
                    prop_assert!(found.is_none());
                    prop_assert!(!idle.is_empty());
                    for (i, l) in free.iter().enumerate() {
                        let alone = earliest_common_slot(std::slice::from_ref(l), &q);
                        prop_assert_eq!(alone.is_none(), idle.contains(&i));
                    }
                }
                Err(NoSlot::NoCommonTime { longest_common }) => {
                    prop_assert!(found.is_none());
                    prop_assert!(longest_common < q.length);
                    for l in &free {
                        prop_assert!(earliest_common_slot(std::slice::from_ref(l), &q).is_some());
                    }
                }
            }
        }
    }
}
