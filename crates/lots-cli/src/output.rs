//! Output for people and for scripts: aligned tables, Stockholm local times, durations, and
//! one JSON object per line with `--json`.

use chrono::{DateTime, Utc};
use lots_domain::calendar::TZ;
use serde::Serialize;

/// Where a command writes: human text, or JSON lines with `--json`.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// Print JSON objects, one per line, instead of text.
    pub json: bool,
}

impl Out {
    /// Prints one JSON object on one line.
    pub fn json_line<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let line = serde_json::to_string(value)?;
        println!("{line}");
        Ok(())
    }

    /// Prints text as is (it carries its own newlines).
    pub fn text(&self, text: &str) {
        print!("{text}");
    }
}

/// A table with a header row; columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width of a cell: characters, which is right for Swedish text.
fn width(s: &str) -> usize {
    s.chars().count()
}

/// A protobuf timestamp as UTC.
pub use lots_proto::time::utc;

/// Europe/Stockholm local time, e.g. "2026-11-24 09:30"; empty when unset.
pub fn local(ts: Option<&prost_types::Timestamp>) -> String {
    utc(ts).map(local_time).unwrap_or_default()
}

/// Europe/Stockholm local time of an instant, e.g. "2026-11-24 09:30".
pub fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%Y-%m-%d %H:%M").to_string()
}

/// RFC 3339 in UTC for JSON; `None` when unset.
pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    utc(ts).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A span of minutes as "3h 20m", or "2d 4h" from a day on when `days` is set.
pub fn span(minutes: i64, days: bool) -> String {
    let m = minutes.unsigned_abs();
    let (d, h, min) = (m / 1440, m % 1440 / 60, m % 60);
    if days && d > 0 {
        return if h > 0 { format!("{d}d {h}h") } else { format!("{d}d") };
    }
    let h = m / 60;
    match (h, min) {
        (0, min) => format!("{min}m"),
        (h, 0) => format!("{h}h"),
        (h, min) => format!("{h}h {min}m"),
    }
}

/// A prost enum's proto name without its prefix, lowercased: `CASE_STATUS_WAITING_FOR_COMPANY`
/// with prefix `CASE_STATUS_` gives `waiting_for_company`.
pub fn enum_word(proto_name: &str, prefix: &str) -> String {
    proto_name.strip_prefix(prefix).unwrap_or(proto_name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_by_characters() {
        let mut t = Table::new(&["REFERENCE", "COMPANY", "STATUS"]);
        t.row(vec!["NKP-2026-000001".into(), "Knäppingsborgs Krog AB".into(), "registered".into()]);
        t.row(vec!["NKP-2026-000002".into(), "Åby Bygg".into(), "routed".into()]);
        assert_eq!(
            t.render(),
            "REFERENCE        COMPANY                 STATUS\n\
             NKP-2026-000001  Knäppingsborgs Krog AB  registered\n\
             NKP-2026-000002  Åby Bygg                routed\n"
        );
    }

    #[test]
    fn short_rows_leave_no_trailing_spaces() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["x".into()]);
        assert_eq!(t.render(), "A  B\nx\n");
    }

    #[test]
    fn local_times_are_in_stockholm_across_dst() {
        let winter = prost_types::Timestamp {
            seconds: 1_795_500_000, // 2026-11-24T06:00:00Z
            nanos: 0,
        };
        assert_eq!(local(Some(&winter)), "2026-11-24 07:00");
        let summer = prost_types::Timestamp {
            seconds: 1_783_000_000, // 2026-07-02T13:46:40Z
            nanos: 0,
        };
        assert_eq!(local(Some(&summer)), "2026-07-02 15:46");
        assert_eq!(local(None), "");
        assert_eq!(rfc3339(Some(&winter)).as_deref(), Some("2026-11-24T06:00:00Z"));
    }

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(200, false), "3h 20m");
        assert_eq!(span(45, false), "45m");
        assert_eq!(span(120, false), "2h");
        assert_eq!(span(-90, false), "1h 30m");
        assert_eq!(span(3000, false), "50h");
        assert_eq!(span(3000, true), "2d 2h");
        assert_eq!(span(2880, true), "2d");
    }

    #[test]
    fn enum_words_drop_the_prefix() {
        assert_eq!(enum_word("CASE_STATUS_WAITING_FOR_COMPANY", "CASE_STATUS_"), "waiting_for_company");
        assert_eq!(enum_word("OTHER", "CASE_STATUS_"), "other");
    }
}
