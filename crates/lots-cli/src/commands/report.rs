//! `lots report …`: servicegaranti figures, the SKR Insikt case list and NKI results (insight's
//! ReportService).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{Months, NaiveDate};
use lots_platform::auth::AuthedChannel;
use lots_proto::v1 as pb;
use pb::report_service_client::ReportServiceClient;
use serde::Serialize;

use crate::args::{Global, GuaranteeArgs, GuaranteeCasesArgs, NkiCommand, ReportCommand};
use crate::client;
use crate::exit::UsageError;
use crate::output::{Out, Table, local, rfc3339};

/// insight's `ReportService`, sending the caller's token.
pub type Reports = ReportServiceClient<AuthedChannel>;

/// The header an NKI file must have (in any order, comma or semicolon separated).
const NKI_HEADER: &str = "area,period,nki,respondents";

/// Most months one chart shows.
const MAX_CHART_MONTHS: usize = 120;

/// insight's `ReportService`, as the logged-in caller.
pub async fn connect(global: &Global) -> anyhow::Result<Reports> {
    let token = crate::login::token(global)?;
    let channel = client::authed("insight", &global.insight, &token, global.ca_file.as_deref()).await?;
    Ok(ReportServiceClient::new(channel))
}

/// Runs one `lots report` command.
pub async fn run(global: &Global, command: ReportCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    match command {
        ReportCommand::Guarantee(args) => guarantee(global, args, out).await,
        ReportCommand::Cases(args) => cases(global, args, out).await,
        ReportCommand::Insikt { from, to, out: file } => insikt(global, from, to, &file, out).await,
        ReportCommand::Nki(NkiCommand::Import { file }) => import_nki(global, &file, out).await,
    }
}

/// Reads a month, "YYYY-MM"; the server checks the rest (range, order).
pub fn parse_month(text: &str) -> Result<String, String> {
    let text = text.trim();
    let valid = text.len() == 7 && NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").is_ok();
    if valid { Ok(text.to_owned()) } else { Err(format!("{text:?} is not a month like 2026-03")) }
}

async fn guarantee(global: &Global, args: GuaranteeArgs, out: Out) -> anyhow::Result<()> {
    let mut reports = connect(global).await?;
    let req = pb::GuaranteeReportRequest {
        from_month: args.from.clone(),
        to_month: args.to.clone(),
        unit: args.unit.clone().unwrap_or_default(),
        case_type: args.case_type.clone().unwrap_or_default(),
    };
    let report = reports.get_guarantee_report(req).await.context("get the guarantee report")?.into_inner();
    let mut wrote = String::new();
    if let Some(path) = &args.csv {
        std::fs::write(path, guarantee_csv(&report)?).with_context(|| format!("write {}", path.display()))?;
        let _ = writeln!(wrote, "{} rows to {}", report.rows.len(), path.display());
    }
    if let Some(path) = &args.svg {
        draw_svg(&report, &args.from, &args.to, path).with_context(|| format!("draw {}", path.display()))?;
        let units = unit_lines(&report, &months_between(&args.from, &args.to)?).len();
        let _ = writeln!(wrote, "chart of {units} units to {}", path.display());
    }
    if out.json {
        return out.json_line(&GuaranteeReportJson::new(&report));
    }
    // Written files replace the table; the file is what was asked for.
    if !wrote.is_empty() {
        out.text(&wrote);
        return Ok(());
    }
    out.text(&guarantee_text(&report, &args.from, &args.to));
    Ok(())
}

async fn cases(global: &Global, args: GuaranteeCasesArgs, out: Out) -> anyhow::Result<()> {
    let mut reports = connect(global).await?;
    let req = pb::ListGuaranteeCasesRequest {
        month: args.month,
        unit: args.unit,
        case_type: args.case_type,
        commitment: args.commitment,
        outcome: args.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
    };
    let found = reports.list_guarantee_cases(req).await.context("list the guarantee's cases")?.into_inner().cases;
    if out.json {
        for c in &found {
            out.json_line(&GuaranteeCaseJson::new(c))?;
        }
        return Ok(());
    }
    if found.is_empty() {
        out.text("no cases\n");
        return Ok(());
    }
    out.text(&cases_table(&found));
    Ok(())
}

async fn insikt(global: &Global, from: NaiveDate, to: NaiveDate, file: &Path, out: Out) -> anyhow::Result<()> {
    let mut reports = connect(global).await?;
    let req =
        pb::ExportInsiktRequest { from: from.format("%Y-%m-%d").to_string(), to: to.format("%Y-%m-%d").to_string() };
    let export = reports.export_insikt(req).await.context("export the Insikt case list")?.into_inner();
    // The bytes already carry the BOM and Insikt's separators: write them as they are.
    std::fs::write(file, &export.csv).with_context(|| format!("write {}", file.display()))?;
    if out.json {
        return out.json_line(&serde_json::json!({
            "file": file.display().to_string(), "rows": export.rows, "columns": export.columns,
        }));
    }
    out.text(&insikt_line(&export, file));
    Ok(())
}

/// What `lots report insikt` says once the file is written.
fn insikt_line(export: &pb::InsiktExport, file: &Path) -> String {
    if export.columns.is_empty() {
        format!("{} rows to {}\n", export.rows, file.display())
    } else {
        format!("{} rows to {} (columns: {})\n", export.rows, file.display(), export.columns.join(", "))
    }
}

async fn import_nki(global: &Global, file: &Path, out: Out) -> anyhow::Result<()> {
    // Read and check the whole file before connecting, so a bad line is reported even offline.
    let bytes = std::fs::read(file).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| UsageError(format!("{}: is not UTF-8 (save it as \"CSV UTF-8\")", file.display())))?;
    let results = parse_nki(&text).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let mut reports = connect(global).await?;
    let imported =
        reports.import_nki(pb::ImportNkiRequest { results }).await.context("import NKI results")?.into_inner().imported;
    if out.json {
        return out.json_line(&serde_json::json!({ "file": file.display().to_string(), "imported": imported }));
    }
    out.text(&format!("imported {imported} NKI results from {}\n", file.display()));
    Ok(())
}

/// Reads NKI results: a header naming `area`, `period`, `nki` and `respondents`, then one result
/// per line. The separator (comma or semicolon) is taken from the header line; a leading BOM and
/// a decimal comma are accepted. Errors name the line and the column.
pub fn parse_nki(text: &str) -> Result<Vec<pb::NkiResult>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header = text.lines().next().unwrap_or("");
    let delimiter = if header.contains(';') { b';' } else { b',' };
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| format!("line 1: {e}"))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("line 1: no column {name:?} (the header must be {NKI_HEADER})"))
    };
    let (area, period, nki, respondents) = (column("area")?, column("period")?, column("nki")?, column("respondents")?);
    let mut results = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let nki_text = cell(&record, line, nki, "nki")?;
        let nki_value = nki_text
            .replace(',', ".")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("line {line}, column {} (nki): {nki_text:?} is not a number", nki + 1))?;
        let respondents_text = cell(&record, line, respondents, "respondents")?;
        let respondents_value = respondents_text.parse::<u32>().map_err(|_| {
            format!("line {line}, column {} (respondents): {respondents_text:?} is not a whole number", respondents + 1)
        })?;
        results.push(pb::NkiResult {
            area: cell(&record, line, area, "area")?.to_owned(),
            period: cell(&record, line, period, "period")?.to_owned(),
            nki: nki_value,
            respondents: respondents_value,
        });
    }
    if results.is_empty() {
        return Err("no results after the header line".into());
    }
    Ok(results)
}

/// One non-empty cell of an NKI line.
fn cell<'r>(record: &'r csv::StringRecord, line: u64, index: usize, name: &str) -> Result<&'r str, String> {
    match record.get(index) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(format!("line {line}, column {} ({name}): is empty", index + 1)),
    }
}

/// Working minutes as hours with one decimal, e.g. "7.5".
fn hours(minutes: f64) -> String {
    format!("{:.1}", minutes / 60.0)
}

/// Why commitments broke, e.g. "no_slot 2, seat_unanswered 1".
pub fn reasons_text(reasons: &[pb::ReasonCount]) -> String {
    reasons.iter().map(|r| format!("{} {}", r.reason, r.count)).collect::<Vec<_>>().join(", ")
}

fn unit_label(unit: &str, unit_name: &str) -> String {
    if unit_name.is_empty() { unit.to_owned() } else { unit_name.to_owned() }
}

/// The guarantee report as a table, with the target below it.
pub fn guarantee_text(report: &pb::GuaranteeReport, from: &str, to: &str) -> String {
    if report.rows.is_empty() {
        return format!("no settled commitments from {from} to {to}\n");
    }
    let mut table = Table::new(&[
        "MONTH",
        "UNIT",
        "CASE TYPE",
        "COMMITMENT",
        "CASES",
        "KEPT",
        "BREACHED",
        "KEPT %",
        "MEDIAN H",
        "P90 H",
        "REASONS",
        "NKI",
    ]);
    for r in &report.rows {
        // Working time says nothing when no commitment was settled.
        let (median, p90) = if r.cases > 0 {
            (hours(r.median_working_minutes), hours(r.p90_working_minutes))
        } else {
            (String::new(), String::new())
        };
        table.row(vec![
            r.month.clone(),
            unit_label(&r.unit, &r.unit_name),
            r.case_type.clone(),
            r.commitment.clone(),
            r.cases.to_string(),
            r.kept.to_string(),
            r.breached.to_string(),
            format!("{:.1}", r.share_kept),
            median,
            p90,
            reasons_text(&r.reasons),
            r.nki.map(|v| v.to_string()).unwrap_or_default(),
        ]);
    }
    let mut text = table.render();
    if report.target_percent > 0 {
        let _ = writeln!(text, "target: {} % kept", report.target_percent);
    }
    text
}

/// The guarantee report's rows as CSV (UTF-8, comma-separated, header row).
pub fn guarantee_csv(report: &pb::GuaranteeReport) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "month",
        "unit",
        "unit_name",
        "case_type",
        "commitment",
        "commitment_name",
        "cases",
        "kept",
        "breached",
        "share_kept_percent",
        "median_working_hours",
        "p90_working_hours",
        "reasons",
        "insikt_area",
        "nki",
    ])?;
    for r in &report.rows {
        w.write_record([
            r.month.clone(),
            r.unit.clone(),
            r.unit_name.clone(),
            r.case_type.clone(),
            r.commitment.clone(),
            r.commitment_name.clone(),
            r.cases.to_string(),
            r.kept.to_string(),
            r.breached.to_string(),
            format!("{:.1}", r.share_kept),
            hours(r.median_working_minutes),
            hours(r.p90_working_minutes),
            reasons_text(&r.reasons),
            r.insikt_area.clone(),
            r.nki.map(|v| v.to_string()).unwrap_or_default(),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// The cases behind a report row as a table.
pub fn cases_table(cases: &[pb::GuaranteeCase]) -> String {
    let mut table = Table::new(&["REFERENCE", "OUTCOME", "DUE", "SETTLED", "REASON", "WORKING H"]);
    for c in cases {
        let reference = if c.reference.is_empty() { c.case_id.clone() } else { c.reference.clone() };
        table.row(vec![
            reference,
            c.outcome.clone(),
            local(c.due_at.as_ref()),
            local(c.settled_at.as_ref()),
            c.reason.clone(),
            hours(c.working_minutes as f64),
        ]);
    }
    table.render()
}

/// Every month from `from` to `to`, both included, as "YYYY-MM".
fn months_between(from: &str, to: &str) -> anyhow::Result<Vec<String>> {
    let first = month_start(from)?;
    let last = month_start(to)?;
    if first > last {
        return Err(UsageError(format!("--from {from} is after --to {to}")).into());
    }
    let mut months = Vec::new();
    let mut month = first;
    while month <= last {
        if months.len() == MAX_CHART_MONTHS {
            return Err(UsageError(format!("a chart shows at most {MAX_CHART_MONTHS} months")).into());
        }
        months.push(month.format("%Y-%m").to_string());
        month = month.checked_add_months(Months::new(1)).context("the month after the last")?;
    }
    Ok(months)
}

fn month_start(month: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d")
        .map_err(|_| anyhow::Error::new(UsageError(format!("{month:?} is not a month like 2026-03"))))
}

/// One unit's share kept over the months, for the chart.
#[derive(Debug, PartialEq)]
struct UnitLine {
    name: String,
    /// (month index, share kept in percent), by month; months without settled cases are left out.
    points: Vec<(f64, f64)>,
}

/// The report's units as chart lines, in the order they first appear.
fn unit_lines(report: &pb::GuaranteeReport, months: &[String]) -> Vec<UnitLine> {
    let mut lines: Vec<(String, UnitLine)> = Vec::new();
    for u in report.units.iter().filter(|u| u.cases > 0) {
        let Some(index) = months.iter().position(|m| *m == u.month) else { continue };
        let key = if u.unit.is_empty() { u.unit_name.clone() } else { u.unit.clone() };
        let at = match lines.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let name = unit_label(&u.unit, &u.unit_name);
                lines.push((key, UnitLine { name, points: Vec::new() }));
                lines.len() - 1
            }
        };
        lines[at].1.points.push((index as f64, u.share_kept.clamp(0.0, 100.0)));
    }
    lines
        .into_iter()
        .map(|(_, mut line)| {
            line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            line
        })
        .collect()
}

/// The month label of an x position: only whole indices have one.
fn month_at(months: &[String], x: f64) -> String {
    let index = x.round();
    if (x - index).abs() > 1e-6 || index < 0.0 {
        return String::new();
    }
    months.get(index as usize).cloned().unwrap_or_default()
}

/// Draws the share kept per unit and month, with the target as a dashed line, into an SVG file.
fn draw_svg(report: &pb::GuaranteeReport, from: &str, to: &str, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let months = months_between(from, to)?;
    let lines = unit_lines(report, &months);
    let n = months.len() as f64;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Servicegarantin hållen per enhet", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..100f64)?;
    let month_label = |x: &f64| month_at(&months, *x);
    let percent_label = |y: &f64| format!("{y:.0}");
    chart
        .configure_mesh()
        .x_labels(months.len().min(12))
        .x_label_formatter(&month_label)
        .y_labels(11)
        .y_label_formatter(&percent_label)
        .x_desc("Månad")
        .y_desc("Andel hållen (%)")
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let colour = Palette99::pick(i);
        let stroke = colour.stroke_width(2);
        // A month without settled cases breaks the line rather than bridging it.
        for run in line.points.chunk_by(|a, b| b.0 - a.0 < 1.5) {
            chart.draw_series(LineSeries::new(run.iter().copied(), stroke))?;
        }
        chart
            .draw_series(PointSeries::<_, _, Circle<_, _>, _>::new(line.points.iter().copied(), 4, colour.filled()))?
            .label(line.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x - 8, y), (x + 12, y)], stroke));
    }
    if report.target_percent > 0 {
        let target = f64::from(report.target_percent.min(100));
        let stroke = BLACK.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(vec![(-0.5, target), (n - 0.5, target)], 10, 6, stroke))?
            .label(format!("Mål {} %", report.target_percent))
            .legend(move |(x, y)| PathElement::new(vec![(x - 8, y), (x + 12, y)], stroke));
    }
    if !lines.is_empty() || report.target_percent > 0 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The guarantee report for `--json`.
#[derive(Debug, Serialize)]
pub struct GuaranteeReportJson {
    pub rows: Vec<GuaranteeRowJson>,
    pub target_percent: u32,
    pub units: Vec<UnitMonthJson>,
}

/// One row of the guarantee report for `--json`.
#[derive(Debug, Serialize)]
pub struct GuaranteeRowJson {
    pub month: String,
    pub unit: String,
    pub unit_name: String,
    pub case_type: String,
    pub commitment: String,
    pub commitment_name: String,
    pub cases: u32,
    pub kept: u32,
    pub breached: u32,
    pub share_kept: f64,
    pub median_working_minutes: f64,
    pub p90_working_minutes: f64,
    pub reasons: Vec<ReasonJson>,
    pub insikt_area: String,
    pub nki: Option<f64>,
}

/// Why commitments broke, with how often, for `--json`.
#[derive(Debug, Serialize)]
pub struct ReasonJson {
    pub reason: String,
    pub count: u32,
}

/// One unit's month for `--json`.
#[derive(Debug, Serialize)]
pub struct UnitMonthJson {
    pub month: String,
    pub unit: String,
    pub unit_name: String,
    pub cases: u32,
    pub kept: u32,
    pub share_kept: f64,
}

impl GuaranteeReportJson {
    /// The JSON form of a guarantee report.
    pub fn new(report: &pb::GuaranteeReport) -> GuaranteeReportJson {
        GuaranteeReportJson {
            rows: report
                .rows
                .iter()
                .map(|r| GuaranteeRowJson {
                    month: r.month.clone(),
                    unit: r.unit.clone(),
                    unit_name: r.unit_name.clone(),
                    case_type: r.case_type.clone(),
                    commitment: r.commitment.clone(),
                    commitment_name: r.commitment_name.clone(),
                    cases: r.cases,
                    kept: r.kept,
                    breached: r.breached,
                    share_kept: r.share_kept,
                    median_working_minutes: r.median_working_minutes,
                    p90_working_minutes: r.p90_working_minutes,
                    reasons: r
                        .reasons
                        .iter()
                        .map(|x| ReasonJson { reason: x.reason.clone(), count: x.count })
                        .collect(),
                    insikt_area: r.insikt_area.clone(),
                    nki: r.nki,
                })
                .collect(),
            target_percent: report.target_percent,
            units: report
                .units
                .iter()
                .map(|u| UnitMonthJson {
                    month: u.month.clone(),
                    unit: u.unit.clone(),
                    unit_name: u.unit_name.clone(),
                    cases: u.cases,
                    kept: u.kept,
                    share_kept: u.share_kept,
                })
                .collect(),
        }
    }
}

/// One case behind a report row for `--json`.
#[derive(Debug, Serialize)]
pub struct GuaranteeCaseJson {
    pub case_id: String,
    pub reference: String,
    pub outcome: String,
    pub due_at: Option<String>,
    pub settled_at: Option<String>,
    pub reason: String,
    pub working_minutes: i64,
}

impl GuaranteeCaseJson {
    /// The JSON form of one case behind a report row.
    pub fn new(c: &pb::GuaranteeCase) -> GuaranteeCaseJson {
        GuaranteeCaseJson {
            case_id: c.case_id.clone(),
            reference: c.reference.clone(),
            outcome: c.outcome.clone(),
            due_at: rfc3339(c.due_at.as_ref()),
            settled_at: rfc3339(c.settled_at.as_ref()),
            reason: c.reason.clone(),
            working_minutes: c.working_minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(month: &str, unit: &str, cases: u32, kept: u32) -> pb::GuaranteeRow {
        pb::GuaranteeRow {
            month: month.into(),
            unit: unit.into(),
            unit_name: format!("{unit}enheten"),
            case_type: "bygglov_nybyggnad".into(),
            commitment: "first_contact".into(),
            commitment_name: "Första kontakt inom 1 arbetsdag".into(),
            cases,
            kept,
            breached: cases - kept,
            share_kept: f64::from(kept) * 100.0 / f64::from(cases),
            median_working_minutes: 270.0,
            p90_working_minutes: 455.0,
            reasons: vec![
                pb::ReasonCount { reason: "no_slot".into(), count: 2 },
                pb::ReasonCount { reason: "seat_unanswered".into(), count: 1 },
            ],
            insikt_area: "bygglov".into(),
            nki: Some(71.5),
        }
    }

    fn unit_month(month: &str, unit: &str, name: &str, cases: u32, share_kept: f64) -> pb::UnitMonth {
        pb::UnitMonth { month: month.into(), unit: unit.into(), unit_name: name.into(), cases, kept: 0, share_kept }
    }

    fn sample() -> pb::GuaranteeReport {
        pb::GuaranteeReport {
            rows: vec![row("2026-01", "bygglov", 10, 7)],
            target_percent: 90,
            units: vec![
                unit_month("2026-01", "bygglov", "Bygglovsenheten", 10, 70.0),
                unit_month("2026-02", "bygglov", "Bygglovsenheten", 8, 87.5),
                unit_month("2026-03", "bygglov", "Bygglovsenheten", 0, 0.0),
                unit_month("2026-04", "bygglov", "Bygglovsenheten", 5, 100.0),
                unit_month("2026-02", "miljo", "Miljöenheten", 4, 95.0),
                unit_month("2027-01", "miljo", "Miljöenheten", 4, 50.0),
            ],
        }
    }

    #[test]
    fn months_are_checked_lightly() {
        assert_eq!(parse_month(" 2026-03 ").unwrap(), "2026-03");
        assert!(parse_month("2026-3").is_err());
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("2026-03-01").is_err());
        assert_eq!(months_between("2025-11", "2026-02").unwrap(), ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert!(months_between("2026-02", "2026-01").is_err());
    }

    #[test]
    fn the_table_shows_hours_reasons_and_nki() {
        let text = guarantee_text(&sample(), "2026-01", "2026-12");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("MONTH    UNIT"), "{text}");
        let cells: Vec<&str> = lines[1].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(
            cells,
            [
                "2026-01",
                "bygglovenheten",
                "bygglov_nybyggnad",
                "first_contact",
                "10",
                "7",
                "3",
                "70.0",
                "4.5",
                "7.6",
                "no_slot 2, seat_unanswered 1",
                "71.5"
            ]
        );
        assert_eq!(lines[2], "target: 90 % kept");
        let empty = pb::GuaranteeReport::default();
        assert_eq!(guarantee_text(&empty, "2026-01", "2026-12"), "no settled commitments from 2026-01 to 2026-12\n");
    }

    #[test]
    fn csv_has_a_header_and_quotes_the_reasons() {
        let csv = String::from_utf8(guarantee_csv(&sample()).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("month,unit,unit_name,case_type,commitment,"), "{csv}");
        assert!(lines[1].contains(",10,7,3,70.0,4.5,7.6,\"no_slot 2, seat_unanswered 1\",bygglov,71.5"), "{csv}");
    }

    #[test]
    fn cases_show_working_hours() {
        let c = pb::GuaranteeCase {
            case_id: "c-1".into(),
            reference: "NKP-2026-000123".into(),
            outcome: "breached".into(),
            due_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            settled_at: None,
            reason: "no_slot".into(),
            working_minutes: 612,
        };
        let text = cases_table(&[c]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REFERENCE        OUTCOME"), "{text}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["NKP-2026-000123", "breached", "2026-11-24", "07:00", "no_slot", "10.2"]
        );
    }

    #[test]
    fn insikt_names_rows_file_and_columns() {
        let export = pb::InsiktExport {
            csv: b"\xef\xbb\xbf".to_vec(),
            rows: 42,
            columns: vec!["Ärendenr".into(), "Beslut".into()],
        };
        assert_eq!(
            insikt_line(&export, Path::new("insikt.csv")),
            "42 rows to insikt.csv (columns: Ärendenr, Beslut)\n"
        );
    }

    #[test]
    fn nki_files_may_use_commas_or_semicolons_and_a_bom() {
        let comma =
            parse_nki("\u{feff}area,period,nki,respondents\nbygglov,2026,71.5,120\n\nmiljo,2026,68,40\n").unwrap();
        assert_eq!(comma.len(), 2);
        assert_eq!((comma[0].area.as_str(), comma[0].period.as_str()), ("bygglov", "2026"));
        assert_eq!((comma[0].nki, comma[0].respondents), (71.5, 120));
        assert_eq!((comma[1].area.as_str(), comma[1].nki), ("miljo", 68.0));
        let semicolon = parse_nki("Area; Period; NKI; Respondents\r\nbygglov;2026;71,5;120\r\n").unwrap();
        assert_eq!(semicolon, comma[..1]);
    }

    #[test]
    fn a_bad_nki_line_is_named_with_its_column() {
        let err = parse_nki("area,period,nki,respondents\nbygglov,2026,71.5,120\nmiljo,2026,hög,40\n").unwrap_err();
        assert_eq!(err, "line 3, column 3 (nki): \"hög\" is not a number");
        let err = parse_nki("area;period;nki;respondents\nbygglov;2026;71\n").unwrap_err();
        assert_eq!(err, "line 2, column 4 (respondents): is empty");
        let err = parse_nki("area,period,nki,respondents\nbygglov,2026,71,many\n").unwrap_err();
        assert!(err.starts_with("line 2, column 4 (respondents)"), "{err}");
        let err = parse_nki("area,period,score\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("\"nki\""), "{err}");
        assert_eq!(parse_nki("area,period,nki,respondents\n").unwrap_err(), "no results after the header line");
    }

    #[test]
    fn chart_lines_skip_empty_months_and_months_outside_the_range() {
        let months = months_between("2026-01", "2026-12").unwrap();
        let lines = unit_lines(&sample(), &months);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].name, "Bygglovsenheten");
        assert_eq!(lines[0].points, [(0.0, 70.0), (1.0, 87.5), (3.0, 100.0)]);
        assert_eq!(lines[1].points, [(1.0, 95.0)]);
        assert_eq!(month_at(&months, 2.0), "2026-03");
        assert_eq!(month_at(&months, 2.5), "");
        assert_eq!(month_at(&months, 12.0), "");
    }

    #[test]
    fn the_svg_has_a_line_per_unit_and_the_target() {
        let path = std::env::temp_dir().join(format!("lots-guarantee-{}.svg", uuid::Uuid::now_v7()));
        draw_svg(&sample(), "2026-01", "2026-12", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("Servicegarantin hållen per enhet"));
        assert!(svg.contains("Bygglovsenheten") && svg.contains("Miljöenheten"));
        assert!(svg.contains("Mål 90 %"));
        assert!(svg.contains("2026-06") && svg.contains("Andel hållen (%)"));
    }
}
