//! Property-based fuzz tests of the parsers that read outside input: identity numbers, tenant TOML, iCalendar.
//!
//! Every test is named `fuzz_*` so `just fuzz` selects them; `LOTS_FUZZ_CASES` sets the cases per property.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Utc};
use lots_domain::ical::{self, Busy, IcalError};
use lots_domain::ids::luhn_check_digit;
use lots_domain::{IdKind, OrgNr, TenantConfig, TenantConfigError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

const EXAMPLE: &str = include_str!("../../../deploy/config/norrkoping.toml");

/// Cases per property: 256 by default, `LOTS_FUZZ_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("LOTS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// `proptest!` still applies `PROPTEST_CASES` on top. The default `SourceParallel` finds no `lib.rs`
/// above `tests/`, warns and falls back to this same file, `tests/fuzz.proptest-regressions`.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

const fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => panic!("not a date"),
    }
}

/// Reference date for century inference, so generated person numbers do not depend on the clock.
const TODAY: NaiveDate = date(2026, 3, 15);
/// `ical.rs` caps every RRULE at `u16::MAX` instances before the horizon.
const MAX_INSTANCES: usize = u16::MAX as usize;
const FREQS: &[&str] = &["DAILY", "WEEKLY", "MONTHLY", "YEARLY"];

/// Any text: short unicode, lossy bytes, or very long.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        vec(any::<u8>(), 0..2048).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        vec(any::<char>(), 0..20_000).prop_map(|cs| cs.into_iter().collect::<String>()),
    ]
}

/// The largest char boundary of `s` not above `at`.
fn floor_char(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One edit of a text's lines.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Duplicate(Index),
    /// Replaces what follows the line's separator, or the whole line if it has none.
    Value(Index, String),
    /// Replaces one character.
    Char(Index, Index, char),
}

fn edit(value: impl Strategy<Value = String>) -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Duplicate),
        (any::<Index>(), value).prop_map(|(i, v)| Edit::Value(i, v)),
        (any::<Index>(), any::<Index>(), any::<char>()).prop_map(|(i, at, c)| Edit::Char(i, at, c)),
    ]
}

fn apply(lines: &mut Vec<String>, edit: &Edit, separator: char) {
    let n = lines.len();
    if n == 0 {
        return;
    }
    match edit {
        Edit::Delete(i) => {
            lines.remove(i.index(n));
        }
        Edit::Duplicate(i) => {
            let at = i.index(n);
            let line = lines[at].clone();
            lines.insert(at, line);
        }
        Edit::Value(i, value) => {
            let line = &mut lines[i.index(n)];
            *line = match line.split_once(separator) {
                Some((key, _)) => format!("{key}{separator}{value}"),
                None => value.clone(),
            };
        }
        Edit::Char(i, at, c) => {
            let line = &mut lines[i.index(n)];
            let n = line.chars().count();
            if n > 0 {
                let at = at.index(n);
                *line = line.chars().enumerate().map(|(k, old)| if k == at { *c } else { old }).collect();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identity numbers

/// A valid number: the forms it may be written in and the canonical form they all parse to.
#[derive(Debug, Clone)]
struct Valid {
    forms: Vec<String>,
    canonical: String,
    kind: IdKind,
}

/// Nine ASCII digits followed by their Luhn check digit.
fn with_check(nine: &str) -> String {
    let mut digits = [0u8; 9];
    for (d, b) in digits.iter_mut().zip(nine.bytes()) {
        *d = b - b'0';
    }
    format!("{nine}{}", luhn_check_digit(&digits))
}

fn organisation() -> impl Strategy<Value = Valid> {
    proptest::array::uniform9(0u8..=9).prop_map(|mut nine| {
        // A third digit of 2 or more makes it an organisationsnummer.
        nine[2] = 2 + nine[2] % 8;
        let ten = with_check(&nine.iter().map(|d| char::from(b'0' + d)).collect::<String>());
        let (head, tail) = ten.split_at(6);
        let forms = vec![
            ten.clone(),
            format!("{head}-{tail}"),
            format!("16{ten}"),
            format!("16{head}-{tail}"),
            format!(" {head}-{tail}\n"),
        ];
        Valid { forms, canonical: format!("{head}-{tail}"), kind: IdKind::Organisationsnummer }
    })
}

fn person() -> impl Strategy<Value = Valid> {
    let first = date(1900, 1, 1);
    (0..=(TODAY - first).num_days(), 1u16..=999, any::<bool>()).prop_map(move |(offset, serial, samordning)| {
        let born = first + TimeDelta::days(offset);
        let day = born.day() + if samordning { 60 } else { 0 };
        let ten = with_check(&format!("{:02}{:02}{day:02}{serial:03}", born.year() % 100, born.month()));
        let (head, tail) = ten.split_at(6);
        let century = born.year() / 100;
        // Aged 100 or more: the 10-digit form needs '+'.
        let old = (born.year() + 100, born.month(), born.day()) <= (TODAY.year(), TODAY.month(), TODAY.day());
        let mut forms = vec![format!("{century}{ten}"), format!("{century}{head}-{tail}")];
        forms.push(format!("{head}{}{tail}", if old { '+' } else { '-' }));
        if !old {
            forms.push(ten.clone());
        }
        let kind = if samordning { IdKind::Samordningsnummer } else { IdKind::Personnummer };
        Valid { canonical: format!("{century}{head}-{tail}"), forms, kind }
    })
}

fn valid_number() -> impl Strategy<Value = Valid> {
    prop_oneof![organisation(), person()]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_orgnr_any_input_never_panics(input in prop_oneof![any_text(), "[0-9 +-]{0,16}", "[0-9]{6}[-+]?[0-9]{4}"]) {
        if let Ok(nr) = OrgNr::parse_at(&input, TODAY) {
            let trimmed = input.trim();
            prop_assert!(trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+'));
            let digits = trimmed.bytes().filter(u8::is_ascii_digit).count();
            prop_assert!(digits == 10 || digits == 12);
            let canonical = nr.expose();
            let dash = if nr.kind() == IdKind::Organisationsnummer { 6 } else { 8 };
            prop_assert!(canonical.len() == dash + 5 && canonical.as_bytes()[dash] == b'-');
            prop_assert!(canonical.ends_with(&trimmed[trimmed.len() - 4..]));
            prop_assert_eq!(OrgNr::parse_at(canonical, TODAY), Ok(nr.clone()));
        }
    }

    #[test]
    fn fuzz_orgnr_valid_forms_parse_to_one_canonical_value(v in valid_number()) {
        for form in &v.forms {
            let nr = OrgNr::parse_at(form, TODAY).map_err(|e| TestCaseError::fail(format!("{form:?}: {e}")))?;
            prop_assert_eq!(nr.expose(), v.canonical.as_str());
            prop_assert_eq!(nr.kind(), v.kind);
            prop_assert_eq!(OrgNr::parse_at(nr.expose(), TODAY), Ok(nr.clone()));
        }
    }

    #[test]
    fn fuzz_orgnr_single_digit_change_is_rejected(
        v in valid_number(),
        form in any::<Index>(),
        pos in any::<Index>(),
        delta in 1u8..=9,
    ) {
        let form = form.get(&v.forms);
        let positions: Vec<usize> = form.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
        let nth = pos.index(positions.len());
        let at = positions[nth];
        let shifted = |c: char| char::from(b'0' + (c as u8 - b'0' + delta) % 10);
        let changed: String = form.char_indices().map(|(i, c)| if i == at { shifted(c) } else { c }).collect();
        // Luhn covers the last ten digits only: a changed century can name another, valid person.
        if let Ok(nr) = OrgNr::parse_at(&changed, TODAY) {
            let in_century = positions.len() == 12 && nth < 2;
            prop_assert!(in_century && v.kind != IdKind::Organisationsnummer, "{:?} was accepted", changed);
            prop_assert_ne!(nr.expose(), v.canonical.as_str());
            prop_assert_eq!(&nr.expose()[2..], &v.canonical[2..]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tenant configuration

/// A loaded config passed its own validation; an error says what is wrong.
fn check_tenant(result: &Result<TenantConfig, TenantConfigError>) -> Result<(), TestCaseError> {
    match result {
        Ok(cfg) => {
            prop_assert!(cfg.kommunkod.len() == 4 && cfg.kommunkod.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(cfg.officer(&cfg.naringslivschef).is_some());
            for t in &cfg.case_types {
                prop_assert_eq!(cfg.case_commitments(&t.key).len(), t.commitments.len(), "case type {}", t.key);
            }
        }
        Err(TenantConfigError::Parse(message)) => {
            prop_assert!(!message.is_empty());
        }
        Err(TenantConfigError::Invalid(problems)) => {
            prop_assert!(!problems.is_empty());
            for p in problems {
                prop_assert!(!p.field.is_empty() && !p.message.is_empty(), "{}", p);
            }
        }
    }
    Ok(())
}

const TOML_VALUES: &[&str] = &["[]", "{}", "true", "\"\"", "{ working_days = 0 }"];

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "-?[0-9]{1,12}",
        "\"[a-z0-9_.@:/ -]{0,12}\"",
        "\\[[0-9, \"]{0,10}\\]",
        proptest::sample::select(TOML_VALUES).prop_map(String::from),
    ]
}

#[test]
fn fuzz_tenant_example_loads() {
    let cfg = TenantConfig::from_toml_str(EXAMPLE).unwrap();
    assert_eq!(cfg.kommunkod, "0581");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_tenant_any_text_never_panics(text in any_text()) {
        check_tenant(&TenantConfig::from_toml_str(&text))?;
    }

    #[test]
    fn fuzz_tenant_mutated_example_never_panics(
        edits in vec(edit(toml_value()), 1..4),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_owned).collect();
        for e in &edits {
            apply(&mut lines, e, '=');
        }
        let mut text = lines.join("\n");
        if let Some(cut) = cut {
            text.truncate(floor_char(&text, cut.index(text.len() + 1)));
        }
        check_tenant(&TenantConfig::from_toml_str(&text))?;
    }

    #[test]
    fn fuzz_tenant_comment_and_blank_line_edits_keep_it_valid(picks in vec((any::<Index>(), any::<bool>()), 1..6)) {
        let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_owned).collect();
        for (pick, duplicate) in &picks {
            let idle: Vec<usize> =
                (0..lines.len()).filter(|&i| lines[i].trim().is_empty() || lines[i].trim().starts_with('#')).collect();
            let at = *pick.get(&idle);
            if *duplicate {
                let line = lines[at].clone();
                lines.insert(at, line);
            } else {
                lines.remove(at);
            }
        }
        let result = TenantConfig::from_toml_str(&lines.join("\n"));
        prop_assert!(result.is_ok(), "{:?}", result.err());
    }
}

// ---------------------------------------------------------------------------------------
// iCalendar

/// A small calendar: a weekly series with an EXDATE, an RDATE period and a moved instance, plus FREEBUSY.
const CALENDAR: &[&str] = &[
    "BEGIN:VCALENDAR",
    "VERSION:2.0",
    "PRODID:-//Lotsen//fuzz//SV",
    "BEGIN:VEVENT",
    "UID:weekly@fuzz",
    "DTSTART;TZID=Europe/Stockholm:20260601T090000",
    "DTEND;TZID=Europe/Stockholm:20260601T100000",
    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10",
    "EXDATE;TZID=Europe/Stockholm:20260603T090000",
    "RDATE;VALUE=PERIOD:20260701T120000Z/PT2H",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "UID:weekly@fuzz",
    "RECURRENCE-ID;TZID=Europe/Stockholm:20260608T090000",
    "DTSTART;TZID=Europe/Stockholm:20260609T130000",
    "DURATION:PT1H",
    "END:VEVENT",
    "BEGIN:VFREEBUSY",
    "FREEBUSY:20260610T080000Z/PT1H,20260611T080000Z/20260611T093000Z",
    "END:VFREEBUSY",
    "END:VCALENDAR",
];

fn horizon() -> DateTime<Utc> {
    date(2027, 1, 1).and_time(NaiveTime::MIN).and_utc()
}

/// Content lines as RFC 5545 3.1 unfolds them, the way `ical.rs` does (blank lines dropped).
fn content_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.strip_prefix('\u{feff}').unwrap_or(text).split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(rest);
        } else if !raw.trim().is_empty() {
            out.push(raw.to_owned());
        }
    }
    out
}

/// Most intervals a text can give: [`MAX_INSTANCES`] per RRULE, else one per comma-separated value.
fn interval_bound(text: &str) -> usize {
    let per_line = |l: &String| {
        let name = &l[..l.find([';', ':']).unwrap_or(l.len())];
        if name.eq_ignore_ascii_case("RRULE") { MAX_INSTANCES } else { l.matches(',').count() + 1 }
    };
    content_lines(text).iter().map(per_line).sum()
}

/// Intervals are non-empty, start before the horizon, and come sorted without duplicates; errors name a real line.
fn check_ical(text: &str, result: &Result<Vec<Busy>, IcalError>) -> Result<(), TestCaseError> {
    match result {
        Ok(busy) => {
            let horizon = horizon();
            prop_assert!(busy.iter().all(|b| b.start < b.end && b.start < horizon), "interval outside the rules");
            prop_assert!(busy.windows(2).all(|w| w[0] < w[1]), "not sorted and deduplicated");
            prop_assert!(busy.len() <= interval_bound(text), "{} intervals", busy.len());
        }
        Err(IcalError::Syntax { line, message }) => {
            let lines = text.split('\n').count();
            prop_assert!((1..=lines).contains(line), "line {} of {}", line, lines);
            prop_assert!(!message.is_empty());
        }
        Err(IcalError::NotCalendar) => {}
    }
    Ok(())
}

/// Lines joined with CRLF, each folded at the given widths (CRLF or LF, then one space or tab).
fn fold(lines: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    let mut k = 0;
    for line in lines {
        let mut rest = line.as_str();
        while let Some(&width) = widths.get(k % widths.len().max(1)) {
            k += 1;
            let cut = floor_char(rest, width);
            if cut == 0 || cut >= rest.len() {
                break;
            }
            out.push_str(&rest[..cut]);
            out.push_str(if k % 2 == 0 { "\r\n " } else { "\n\t" });
            rest = &rest[cut..];
        }
        out.push_str(rest);
        out.push_str("\r\n");
    }
    out
}

fn calendar_lines() -> Vec<String> {
    CALENDAR.iter().map(|l| (*l).to_owned()).collect()
}

#[test]
fn fuzz_ical_example_calendar_parses() {
    // Ten weekly instances less the EXDATE and the moved one, the moved one, the RDATE period, two FREEBUSY.
    let busy = ical::parse_busy(&fold(&calendar_lines(), &[]), horizon()).unwrap();
    assert_eq!(busy.len(), 12);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_ical_any_text_never_panics(text in any_text(), wrap in any::<bool>()) {
        let text = if wrap { format!("BEGIN:VCALENDAR\n{text}\nEND:VCALENDAR\n") } else { text };
        let result = ical::parse_busy(&text, horizon());
        check_ical(&text, &result)?;
        let squeezed = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        if !squeezed.contains("BEGIN:VCALENDAR") {
            prop_assert!(matches!(result, Err(IcalError::NotCalendar)), "accepted text without a VCALENDAR");
        }
    }

    #[test]
    fn fuzz_ical_mutated_calendar_stays_within_limits(
        rule in proptest::option::of((proptest::sample::select(FREQS), prop_oneof![1u64..=500, any::<u64>()])),
        edits in vec(edit("\\PC{0,40}"), 0..4),
        widths in vec(1usize..40, 0..6),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let mut lines = calendar_lines();
        if let Some((freq, count)) = rule {
            for line in lines.iter_mut().filter(|l| l.starts_with("RRULE:")) {
                *line = format!("RRULE:FREQ={freq};COUNT={count}");
            }
        }
        for e in &edits {
            apply(&mut lines, e, ':');
        }
        let mut text = fold(&lines, &widths);
        if let Some(cut) = cut {
            text.truncate(floor_char(&text, cut.index(text.len() + 1)));
        }
        let result = ical::parse_busy(&text, horizon());
        check_ical(&text, &result)?;
        if edits.is_empty() && cut.is_none() {
            match rule {
                // Folding alone changes nothing.
                None => prop_assert_eq!(result, ical::parse_busy(&fold(&calendar_lines(), &[]), horizon())),
                // COUNT caps the series; beside it are the moved instance, the RDATE period and two FREEBUSY.
                Some((_, count)) if (1..=u64::from(u32::MAX)).contains(&count) => match result {
                    Ok(busy) => prop_assert!(busy.len() as u64 <= count + 5, "{} intervals", busy.len()),
                    Err(e) => return Err(TestCaseError::fail(format!("COUNT={count} refused: {e}"))),
                },
                Some(_) => {}
            }
        }
    }
}
