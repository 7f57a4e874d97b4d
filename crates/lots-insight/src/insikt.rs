//! The SKR Insikt case list: one row per closed myndighetsärende of a measurement period, for
//! companies only, in the columns the municipality configured; CSV in UTF-8 with a byte order
//! mark and semicolons, so Excel in Swedish opens it as it is.

use chrono::{DateTime, NaiveDate, Utc};
use lots_domain::calendar::TZ;
use lots_domain::insight::{self, InsightConfig};
use lots_domain::tenant::TenantConfig;
use sqlx::{FromRow, PgExecutor};

/// Legal forms that count as companies in the survey (public bodies, estates and non-profit
/// associations do not); sole traders only where the municipality says so.
const COMPANY_FORMS: [&str; 5] =
    ["aktiebolag", "handelsbolag", "ekonomisk förening", "enkla bolag", "utländskt företag"];
const SOLE_TRADER: &str = "enskild firma";

/// A closed case as the list needs it.
#[derive(Debug, Clone, FromRow)]
pub struct ClosedCase {
    pub reference: String,
    pub case_type: String,
    pub decided_at: DateTime<Utc>,
    pub legal_form: String,
    pub org_nr: Option<String>,
    pub company_name: String,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
}

/// Cases of `tenant` decided in `[from, to)`, personal data not yet erased.
pub async fn decided_between(
    db: impl PgExecutor<'_>,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<ClosedCase>> {
    sqlx::query_as(
        "SELECT reference, case_type, decided_at, legal_form, org_nr, company_name, contact_name, contact_email,
                contact_phone
         FROM cases
         WHERE tenant = $1 AND kind = 'case' AND decided_at >= $2 AND decided_at < $3 AND NOT erased
         ORDER BY decided_at, reference",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// Whether `case` belongs in the list: a case type with an Insikt area, and a company.
pub fn belongs(tenant: &TenantConfig, case: &ClosedCase) -> bool {
    let surveyed = tenant.case_type(&case.case_type).is_some_and(|t| t.insikt_area.is_some());
    let company = COMPANY_FORMS.contains(&case.legal_form.as_str())
        || (tenant.insight.insikt_sole_traders && case.legal_form == SOLE_TRADER);
    surveyed && company
}

/// One column's value for `case`.
fn value(tenant: &TenantConfig, case: &ClosedCase, column: &str) -> String {
    let case_type = tenant.case_type(&case.case_type);
    match column {
        "omrade" => {
            case_type.and_then(|t| t.insikt_area.as_deref()).and_then(insight::area_name).unwrap_or_default().to_owned()
        }
        "arendetyp" => case_type.map(|t| t.name.clone()).unwrap_or_else(|| case.case_type.clone()),
        "arendenummer" => case.reference.clone(),
        "beslutsdatum" => decision_date(case.decided_at).to_string(),
        "organisationsnummer" => case.org_nr.clone().unwrap_or_default(),
        "foretagsnamn" => case.company_name.clone(),
        "kontaktperson" => case.contact_name.clone(),
        "e_post" => case.contact_email.clone(),
        "telefon" => case.contact_phone.clone(),
        _ => String::new(),
    }
}

/// The local date a decision was made.
pub fn decision_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&TZ).date_naive()
}

/// The list as CSV: a byte order mark, the header row, then one row per case that belongs.
pub fn to_csv(tenant: &TenantConfig, cases: &[ClosedCase]) -> Result<(Vec<u8>, u32), csv::Error> {
    let config: &InsightConfig = &tenant.insight;
    let mut out = "\u{feff}".as_bytes().to_vec();
    let mut rows = 0;
    {
        let mut w = csv::WriterBuilder::new().delimiter(b';').from_writer(&mut out);
        w.write_record(config.insikt_columns.iter().map(|c| insight::insikt_header(c)))?;
        for case in cases.iter().filter(|c| belongs(tenant, c)) {
            w.write_record(config.insikt_columns.iter().map(|c| value(tenant, case, c)))?;
            rows += 1;
        }
        w.flush()?;
    }
    Ok((out, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantConfig {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/norrkoping.toml");
        TenantConfig::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn case(reference: &str, case_type: &str, legal_form: &str, org_nr: Option<&str>) -> ClosedCase {
        ClosedCase {
            reference: reference.into(),
            case_type: case_type.into(),
            // 23:30 on 31 May in Stockholm is still 31 May.
            decided_at: DateTime::parse_from_rfc3339("2026-05-31T21:30:00Z").unwrap().with_timezone(&Utc),
            legal_form: legal_form.into(),
            org_nr: org_nr.map(String::from),
            company_name: "Bistro Hamnen AB".into(),
            contact_name: "Lina Ek".into(),
            contact_email: "lina@bistro.se".into(),
            contact_phone: "+46701234567".into(),
        }
    }

    #[test]
    fn only_surveyed_company_cases_go_into_the_list_in_the_configured_columns() {
        let mut t = tenant();
        let cases = [
            case("NKP-2026-000001", "restaurang_start", "aktiebolag", Some("556677-8899")),
            case("NKP-2026-000002", "allman_radgivning", "aktiebolag", Some("556677-8899")),
            case("NKP-2026-000003", "bygglov", "enskild firma", None),
            case("NKP-2026-000004", "bygglov", "offentlig", Some("212000-2411")),
        ];
        let (bytes, rows) = to_csv(&t, &cases).unwrap();
        assert_eq!(rows, 1);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with('\u{feff}'), "Excel needs the byte order mark");
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(
            lines[0],
            "Område;Ärendetyp;Ärendenummer;Beslutsdatum;Organisationsnummer;Företagsnamn;Kontaktperson;E-post;Telefon"
        );
        assert_eq!(
            lines[1],
            "Serveringstillstånd;Starta restaurang;NKP-2026-000001;2026-05-31;556677-8899;Bistro Hamnen AB;Lina Ek;lina@bistro.se;+46701234567"
        );
        t.insight.insikt_sole_traders = true;
        t.insight.insikt_columns = vec!["arendenummer".into(), "organisationsnummer".into()];
        let (bytes, rows) = to_csv(&t, &cases).unwrap();
        assert_eq!(rows, 2);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with("NKP-2026-000003;\n"), "a sole trader's number never reaches insight: {text}");
    }
}
