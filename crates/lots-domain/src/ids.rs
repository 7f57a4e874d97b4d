//! Swedish identity numbers that a company is registered under: organisationsnummer, personnummer and samordningsnummer.
//!
//! [`OrgNr`] validates the number on parsing (format, date, serial, Luhn check digit) and
//! keeps it redacted in `Debug` and `Display`; [`OrgNr::expose`] is the only way to read it.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

/// Which kind of Swedish identity number an [`OrgNr`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A legal entity's organisationsnummer (third digit 2 or more).
    Organisationsnummer,
    /// A person's personnummer.
    Personnummer,
    /// A samordningsnummer: a person number for people not registered in Sweden (day + 60).
    Samordningsnummer,
}

impl IdKind {
    /// The lowercase Swedish name of the kind.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Organisationsnummer => "organisationsnummer",
            Self::Personnummer => "personnummer",
            Self::Samordningsnummer => "samordningsnummer",
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The legal form a number implies: for an organisationsnummer its first digit, for a person's number a sole trader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalForm {
    /// 1: dödsbo (estate of a deceased person).
    Dodsbo,
    /// 2: stat, region, kommun and other public bodies.
    Offentlig,
    /// 3: foreign company registered in Sweden.
    UtlandskForetag,
    /// 5: aktiebolag.
    Aktiebolag,
    /// 6: enkla bolag.
    EnklaBolag,
    /// 7: ekonomiska föreningar and bostadsrättsföreningar.
    EkonomiskForening,
    /// 8: ideella föreningar and stiftelser.
    IdeellForening,
    /// 9: handelsbolag and kommanditbolag.
    Handelsbolag,
    /// A sole trader, registered under the owner's personnummer or samordningsnummer.
    EnskildFirma,
    /// 0 or 4: other or unknown.
    Ovrig,
}

impl LegalForm {
    /// The lowercase Swedish name of the legal form.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dodsbo => "dödsbo",
            Self::Offentlig => "offentlig",
            Self::UtlandskForetag => "utländskt företag",
            Self::Aktiebolag => "aktiebolag",
            Self::EnklaBolag => "enkla bolag",
            Self::EkonomiskForening => "ekonomisk förening",
            Self::IdeellForening => "ideell förening",
            Self::Handelsbolag => "handelsbolag",
            Self::EnskildFirma => "enskild firma",
            Self::Ovrig => "övrig",
        }
    }

    /// The legal form given by an organisationsnummer's first digit.
    fn from_group_digit(digit: u8) -> Self {
        match digit {
            1 => Self::Dodsbo,
            2 => Self::Offentlig,
            3 => Self::UtlandskForetag,
            5 => Self::Aktiebolag,
            6 => Self::EnklaBolag,
            7 => Self::EkonomiskForening,
            8 => Self::IdeellForening,
            9 => Self::Handelsbolag,
            _ => Self::Ovrig,
        }
    }
}

impl fmt::Display for LegalForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an identity number was rejected; messages never contain the number itself.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// Nothing but whitespace was given.
    #[error("identity number is empty")]
    Empty,
    /// Something other than a digit, `-` or `+` was found.
    #[error("unexpected character: only digits, '-' and '+' are allowed")]
    UnexpectedCharacter,
    /// The number of digits is neither 10 nor 12.
    #[error("identity number must be 10 or 12 digits")]
    WrongLength,
    /// A separator is not directly before the last four digits, or there are several.
    #[error("a single '-' or '+' may only stand directly before the last four digits")]
    MisplacedSeparator,
    /// `+` was used with the 12-digit form, which already states the century.
    #[error("'+' is only used in the 10-digit form")]
    PlusWithCentury,
    /// `+` (aged 100 or more) was used with an organisationsnummer.
    #[error("'+' is only valid for a personnummer or samordningsnummer")]
    PlusOnOrganisationsnummer,
    /// A 12-digit organisationsnummer did not start with 16.
    #[error("century prefix for an organisationsnummer must be 16")]
    OrganisationsnummerCentury,
    /// A 12-digit number starting with 16 is not an organisationsnummer.
    #[error("century prefix 16 is only used for an organisationsnummer")]
    CenturyOnlyForOrganisationsnummer,
    /// A 12-digit person number has a century other than 18, 19 or 20.
    #[error("century prefix for a person number must be 18, 19 or 20")]
    PersonCentury,
    /// The month of a person number is not 01–12.
    #[error("month of birth must be between 01 and 12")]
    InvalidMonth,
    /// The date of birth is not a real calendar date.
    #[error("date of birth does not exist")]
    InvalidDate,
    /// The date of birth is after the reference date.
    #[error("date of birth is in the future")]
    FutureDate,
    /// Serial number 000 is never assigned to a person.
    #[error("serial number 000 is not used")]
    SerialZero,
    /// The last digit is not the Luhn check digit of the first nine.
    #[error("check digit does not match (Luhn)")]
    CheckDigit,
}

/// A validated Swedish identity number a company is registered under; redacted in `Debug` and `Display`.
///
/// Serde is deliberately not implemented: callers serialize [`OrgNr::expose`] explicitly, so
/// every place that lets the full number out is visible in the code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OrgNr {
    kind: IdKind,
    legal_form: LegalForm,
    /// Canonical form: `NNNNNN-NNNN` for organisations, `CCYYMMDD-NNNN` for persons.
    value: String,
}

/// The separator found in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Separator {
    None,
    Dash,
    Plus,
}

/// Input split into its optional century and the 10-digit form.
struct Split {
    century: Option<u8>,
    ten: [u8; 10],
    separator: Separator,
}

impl OrgNr {
    /// Parses a number, using today's local date as reference for the century of 10-digit person numbers.
    ///
    /// # Errors
    /// Returns an [`IdentityError`] if the input is not a valid number; see [`OrgNr::parse_at`].
    pub fn parse(input: &str) -> Result<Self, IdentityError> {
        Self::parse_at(input, chrono::Local::now().date_naive())
    }

    /// Parses a number with `today` as reference for century inference and future-date checks.
    ///
    /// Accepts `YYMMDDNNNC`, `YYMMDD-NNNC`, `YYMMDD+NNNC` (persons aged 100 or more),
    /// `CCYYMMDDNNNC` and `CCYYMMDD-NNNC`, with surrounding whitespace ignored.
    ///
    /// # Errors
    /// Returns an [`IdentityError`] naming the first rule the input breaks.
    pub fn parse_at(input: &str, today: NaiveDate) -> Result<Self, IdentityError> {
        let split = split(input.trim())?;
        if split.ten[2] >= 2 { Self::organisation(&split) } else { Self::person(&split, today) }
    }

    /// The kind of number: organisationsnummer, personnummer or samordningsnummer.
    #[must_use]
    pub fn kind(&self) -> IdKind {
        self.kind
    }

    /// The legal form implied by the number; [`LegalForm::EnskildFirma`] for a person's number.
    #[must_use]
    pub fn legal_form(&self) -> LegalForm {
        self.legal_form
    }

    /// Whether this is a person's number (personnummer or samordningsnummer), i.e. personal data.
    #[must_use]
    pub fn is_personal(&self) -> bool {
        matches!(self.kind, IdKind::Personnummer | IdKind::Samordningsnummer)
    }

    /// The full canonical number: `NNNNNN-NNNN` for an organisationsnummer, `CCYYMMDD-NNNN` for a person.
    ///
    /// This is the ONLY way to get the digits out of an [`OrgNr`]: `Debug` and `Display` redact
    /// them and serde is not implemented. Call it only where the full number is really needed
    /// (storage, registry look-ups), never for logging.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Builds an organisationsnummer from validated digits.
    fn organisation(split: &Split) -> Result<Self, IdentityError> {
        if split.separator == Separator::Plus {
            return Err(IdentityError::PlusOnOrganisationsnummer);
        }
        if split.century.is_some_and(|c| c != 16) {
            return Err(IdentityError::OrganisationsnummerCentury);
        }
        check_luhn(&split.ten)?;
        let ten = &split.ten;
        let value = format!("{}-{}", digits_str(&ten[..6]), digits_str(&ten[6..]));
        Ok(Self { kind: IdKind::Organisationsnummer, legal_form: LegalForm::from_group_digit(ten[0]), value })
    }

    /// Builds a personnummer or samordningsnummer, resolving the century against `today`.
    fn person(split: &Split, today: NaiveDate) -> Result<Self, IdentityError> {
        let ten = &split.ten;
        match split.century {
            Some(16) => return Err(IdentityError::CenturyOnlyForOrganisationsnummer),
            Some(c) if !(18..=20).contains(&c) => return Err(IdentityError::PersonCentury),
            _ => {}
        }
        let yy = i32::from(pair(ten[0], ten[1]));
        let month = u32::from(pair(ten[2], ten[3]));
        if !(1..=12).contains(&month) {
            return Err(IdentityError::InvalidMonth);
        }
        let raw_day = u32::from(pair(ten[4], ten[5]));
        // A samordningsnummer adds 60 to the day; real days are at most 31.
        let (kind, day) =
            if raw_day > 60 { (IdKind::Samordningsnummer, raw_day - 60) } else { (IdKind::Personnummer, raw_day) };

        let year = match split.century {
            Some(c) => {
                let year = i32::from(c) * 100 + yy;
                let born = NaiveDate::from_ymd_opt(year, month, day).ok_or(IdentityError::InvalidDate)?;
                if born > today {
                    return Err(IdentityError::FutureDate);
                }
                year
            }
            None => {
                // Compare (month, day) as a tuple so that 29 February need not exist in the
                // candidate year; the chosen year is validated afterwards.
                let mut year = today.year() - today.year().rem_euclid(100) + yy;
                if (year, month, day) > (today.year(), today.month(), today.day()) {
                    year -= 100;
                }
                if split.separator == Separator::Plus {
                    year -= 100;
                }
                NaiveDate::from_ymd_opt(year, month, day).ok_or(IdentityError::InvalidDate)?;
                year
            }
        };

        if ten[6..9].iter().all(|&d| d == 0) {
            return Err(IdentityError::SerialZero);
        }
        check_luhn(ten)?;
        let value = format!("{year:04}{month:02}{raw_day:02}-{}", digits_str(&ten[6..]));
        Ok(Self { kind, legal_form: LegalForm::EnskildFirma, value })
    }
}

impl FromStr for OrgNr {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for OrgNr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Mask the shape of the canonical form but never a digit of it.
        let mask = match self.kind {
            IdKind::Organisationsnummer => "******-****",
            IdKind::Personnummer | IdKind::Samordningsnummer => "********-****",
        };
        write!(f, "{} {mask}", self.kind.as_str())
    }
}

impl fmt::Debug for OrgNr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgNr").field("kind", &self.kind).field("value", &"<redacted>").finish()
    }
}

/// The Luhn check digit of the first nine digits of the 10-digit form (weights 2,1,2,…).
///
/// Digits are values 0..=9; larger values are taken modulo 10.
#[must_use]
pub fn luhn_check_digit(nine_digits: &[u8; 9]) -> u8 {
    let sum: u32 = nine_digits
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let weight = if i % 2 == 0 { 2 } else { 1 };
            let product = u32::from(d % 10) * weight;
            product / 10 + product % 10
        })
        .sum();
    // The result is below 10, so the narrowing cannot lose anything.
    u8::try_from((10 - sum % 10) % 10).unwrap_or(0)
}

/// Fails unless the 10th digit is the Luhn check digit of the first nine.
fn check_luhn(ten: &[u8; 10]) -> Result<(), IdentityError> {
    let mut nine = [0u8; 9];
    nine.copy_from_slice(&ten[..9]);
    if luhn_check_digit(&nine) == ten[9] { Ok(()) } else { Err(IdentityError::CheckDigit) }
}

/// Splits trimmed input into digits and separator, enforcing the accepted shapes.
fn split(input: &str) -> Result<Split, IdentityError> {
    if input.is_empty() {
        return Err(IdentityError::Empty);
    }
    let mut digits: Vec<u8> = Vec::with_capacity(12);
    let mut separator: Option<(usize, Separator)> = None;
    for byte in input.bytes() {
        match byte {
            b'0'..=b'9' => digits.push(byte - b'0'),
            b'-' | b'+' => {
                if separator.is_some() {
                    return Err(IdentityError::MisplacedSeparator);
                }
                let sep = if byte == b'+' { Separator::Plus } else { Separator::Dash };
                separator = Some((digits.len(), sep));
            }
            _ => return Err(IdentityError::UnexpectedCharacter),
        }
    }
    let (century, rest) = match digits.len() {
        10 => (None, digits.as_slice()),
        12 => (Some(pair(digits[0], digits[1])), &digits[2..]),
        _ => return Err(IdentityError::WrongLength),
    };
    let separator = match separator {
        None => Separator::None,
        Some((position, sep)) => {
            if position + 4 != digits.len() {
                return Err(IdentityError::MisplacedSeparator);
            }
            if sep == Separator::Plus && century.is_some() {
                return Err(IdentityError::PlusWithCentury);
            }
            sep
        }
    };
    let mut ten = [0u8; 10];
    ten.copy_from_slice(rest);
    Ok(Split { century, ten, separator })
}

/// Two decimal digits as a number.
fn pair(tens: u8, ones: u8) -> u8 {
    tens * 10 + ones
}

/// Digit values rendered as ASCII.
fn digits_str(digits: &[u8]) -> String {
    digits.iter().map(|&d| char::from(b'0' + d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Reference date used by the example tests (the tax agency's 1912 example needs '+').
    fn reference() -> NaiveDate {
        date(2026, 3, 15)
    }

    fn parse(s: &str) -> Result<OrgNr, IdentityError> {
        OrgNr::parse_at(s, reference())
    }

    /// Digit values of an ASCII digit string.
    fn to_digits(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    /// Appends the correct check digit to nine digits given as text.
    fn with_check(nine: &str) -> String {
        let digits: [u8; 9] = to_digits(nine).try_into().unwrap();
        format!("{nine}{}", luhn_check_digit(&digits))
    }

    /// Independent Luhn validation of a 10-digit sequence.
    fn luhn_ok(ten: &[u8]) -> bool {
        let sum: u32 = ten
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let p = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
                if p > 9 { p - 9 } else { p }
            })
            .sum();
        sum.is_multiple_of(10)
    }

    #[test]
    fn aktiebolag_example() {
        let nr = parse("556036-0793").unwrap();
        assert_eq!(nr.kind(), IdKind::Organisationsnummer);
        assert_eq!(nr.legal_form(), LegalForm::Aktiebolag);
        assert_eq!(nr.legal_form().as_str(), "aktiebolag");
        assert!(!nr.is_personal());
        assert_eq!(nr.expose(), "556036-0793");
        assert_eq!(parse("5560360793").unwrap(), nr);
        assert_eq!(parse("  556036-0793\n").unwrap(), nr);
    }

    #[test]
    fn offentlig_example() {
        let nr = parse("212000-0142").unwrap();
        assert_eq!(nr.kind(), IdKind::Organisationsnummer);
        assert_eq!(nr.legal_form(), LegalForm::Offentlig);
    }

    #[test]
    fn org_twelve_digit_form() {
        let short = parse("556036-0793").unwrap();
        assert_eq!(parse("165560360793").unwrap(), short);
        assert_eq!(parse("16556036-0793").unwrap(), short);
        assert_eq!(parse("165560360793").unwrap().expose(), "556036-0793");
    }

    #[test]
    fn org_wrong_century() {
        assert_eq!(parse("195560360793"), Err(IdentityError::OrganisationsnummerCentury));
        assert_eq!(parse("205560360793"), Err(IdentityError::OrganisationsnummerCentury));
    }

    #[test]
    fn century_16_requires_org() {
        assert_eq!(parse("161212121212"), Err(IdentityError::CenturyOnlyForOrganisationsnummer));
    }

    #[test]
    fn plus_on_org_rejected() {
        assert_eq!(parse("556036+0793"), Err(IdentityError::PlusOnOrganisationsnummer));
    }

    #[test]
    fn tax_agency_test_person() {
        let twelve = parse("19121212-1212").unwrap();
        assert_eq!(twelve.kind(), IdKind::Personnummer);
        assert_eq!(twelve.legal_form(), LegalForm::EnskildFirma);
        assert!(twelve.is_personal());
        assert_eq!(twelve.expose(), "19121212-1212");
        assert_eq!(parse("191212121212").unwrap(), twelve);
        assert_eq!(parse("121212+1212").unwrap(), twelve);
        // With '-' the same digits mean someone born 2012.
        let young = parse("121212-1212").unwrap();
        assert_eq!(young.expose(), "20121212-1212");
        assert_ne!(young, twelve);
        assert_eq!(parse("1212121212").unwrap(), young);
    }

    #[test]
    fn skatteverket_example() {
        let nr = parse("811228-9874").unwrap();
        assert_eq!(nr.kind(), IdKind::Personnummer);
        assert_eq!(nr.expose(), "19811228-9874");
    }

    #[test]
    fn samordningsnummer_example() {
        let nr = parse("701063-2391").unwrap();
        assert_eq!(nr.kind(), IdKind::Samordningsnummer);
        assert_eq!(nr.legal_form(), LegalForm::EnskildFirma);
        assert!(nr.is_personal());
        assert_eq!(nr.expose(), "19701063-2391");
        assert_eq!(parse("197010632391").unwrap(), nr);
    }

    #[test]
    fn samordningsnummer_needs_real_date() {
        // 1970-02-30 + 60.
        assert_eq!(parse(&with_check("700290239")), Err(IdentityError::InvalidDate));
        // Day 92 would be day 32.
        assert_eq!(parse(&with_check("700192239")), Err(IdentityError::InvalidDate));
        // Days 32..=60 are neither kind.
        assert_eq!(parse(&with_check("700145239")), Err(IdentityError::InvalidDate));
    }

    #[test]
    fn wrong_check_digit() {
        assert_eq!(parse("556036-0794"), Err(IdentityError::CheckDigit));
        assert_eq!(parse("811228-9875"), Err(IdentityError::CheckDigit));
        assert_eq!(parse("701063-2392"), Err(IdentityError::CheckDigit));
    }

    #[test]
    fn invalid_dates() {
        assert_eq!(parse(&with_check("901301123")), Err(IdentityError::InvalidMonth));
        assert_eq!(parse(&with_check("900001123")), Err(IdentityError::InvalidMonth));
        assert_eq!(parse(&with_check("900230123")), Err(IdentityError::InvalidDate));
        assert_eq!(parse(&with_check("900100123")), Err(IdentityError::InvalidDate));
        assert_eq!(parse(&with_check("900431123")), Err(IdentityError::InvalidDate));
    }

    #[test]
    fn leap_years() {
        // 2023 is not a leap year, 2024 is.
        let bad = format!("20{}", with_check("230229123"));
        assert_eq!(parse(&bad), Err(IdentityError::InvalidDate));
        let good = format!("20{}", with_check("240229123"));
        assert_eq!(parse(&good).unwrap().expose(), format!("{}-{}", &good[..8], &good[8..]));
        // 2000 was a leap year, 1900 was not.
        let ten = with_check("000229123");
        let dash = format!("{}-{}", &ten[..6], &ten[6..]);
        let plus = format!("{}+{}", &ten[..6], &ten[6..]);
        assert!(parse(&dash).unwrap().expose().starts_with("20000229"));
        assert_eq!(parse(&plus), Err(IdentityError::InvalidDate));
    }

    #[test]
    fn serial_zero_rejected() {
        assert_eq!(parse(&with_check("900101000")), Err(IdentityError::SerialZero));
        assert_eq!(parse(&with_check("900161000")), Err(IdentityError::SerialZero));
    }

    #[test]
    fn future_and_century_rules() {
        // The 12-digit form states the century, so a later date is an error.
        let future = format!("20{}", with_check("270101123"));
        assert_eq!(parse(&future), Err(IdentityError::FutureDate));
        let twenty_first = format!("21{}", with_check("000101123"));
        assert_eq!(parse(&twenty_first), Err(IdentityError::PersonCentury));
        let eighteen = format!("18{}", with_check("990101123"));
        assert_eq!(parse(&eighteen).unwrap().expose()[..4], *"1899");
        // Born on the reference date is age 0, not 100.
        let today = with_check("260315123");
        assert!(parse(&today).unwrap().expose().starts_with("2026"));
        let tomorrow = with_check("260316123");
        assert!(parse(&tomorrow).unwrap().expose().starts_with("1926"));
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(parse("55603607931"), Err(IdentityError::WrongLength));
        assert_eq!(parse("556036-079"), Err(IdentityError::WrongLength));
        assert_eq!(parse(""), Err(IdentityError::Empty));
        assert_eq!(parse("   "), Err(IdentityError::Empty));
        assert_eq!(parse("55603A-0793"), Err(IdentityError::UnexpectedCharacter));
        assert_eq!(parse("556036 0793"), Err(IdentityError::UnexpectedCharacter));
        assert_eq!(parse("abcdefghij"), Err(IdentityError::UnexpectedCharacter));
        assert_eq!(parse("５５６０３６-0793"), Err(IdentityError::UnexpectedCharacter));
        assert_eq!(parse("55603-60793"), Err(IdentityError::MisplacedSeparator));
        assert_eq!(parse("556036--0793"), Err(IdentityError::MisplacedSeparator));
        assert_eq!(parse("556036-0793-"), Err(IdentityError::MisplacedSeparator));
        assert_eq!(parse("1912121-21212"), Err(IdentityError::MisplacedSeparator));
        assert_eq!(parse("19121212+1212"), Err(IdentityError::PlusWithCentury));
    }

    #[test]
    fn errors_do_not_echo_input() {
        for input in ["556036-0794", "19121212+1212", "901301-1230", "12345"] {
            let err = parse(input).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains(input), "{text}");
            assert!(!text.contains("0794"));
        }
    }

    #[test]
    fn legal_forms_from_first_digit() {
        let expected = [
            LegalForm::Ovrig,
            LegalForm::Dodsbo,
            LegalForm::Offentlig,
            LegalForm::UtlandskForetag,
            LegalForm::Ovrig,
            LegalForm::Aktiebolag,
            LegalForm::EnklaBolag,
            LegalForm::EkonomiskForening,
            LegalForm::IdeellForening,
            LegalForm::Handelsbolag,
        ];
        for (first, form) in expected.into_iter().enumerate() {
            let nr = parse(&with_check(&format!("{first}02000014"))).unwrap();
            assert_eq!(nr.legal_form(), form);
        }
        assert_eq!(LegalForm::Dodsbo.as_str(), "dödsbo");
        assert_eq!(LegalForm::UtlandskForetag.as_str(), "utländskt företag");
        assert_eq!(LegalForm::EkonomiskForening.as_str(), "ekonomisk förening");
        assert_eq!(LegalForm::Ovrig.to_string(), "övrig");
    }

    #[test]
    fn redacted_formatting() {
        let org = parse("556036-0793").unwrap();
        assert_eq!(org.to_string(), "organisationsnummer ******-****");
        assert_eq!(format!("{org:?}"), r#"OrgNr { kind: Organisationsnummer, value: "<redacted>" }"#);
        let person = parse("811228-9874").unwrap();
        assert_eq!(person.to_string(), "personnummer ********-****");
        assert_eq!(format!("{person:?}"), r#"OrgNr { kind: Personnummer, value: "<redacted>" }"#);
        let samordning = parse("701063-2391").unwrap();
        assert_eq!(samordning.to_string(), "samordningsnummer ********-****");
    }

    #[test]
    fn from_str_uses_today() {
        let nr: OrgNr = "556036-0793".parse().unwrap();
        assert_eq!(nr.expose(), "556036-0793");
        let person: OrgNr = "19121212-1212".parse().unwrap();
        assert_eq!(person.expose(), "19121212-1212");
        assert_eq!("x".parse::<OrgNr>(), Err(IdentityError::UnexpectedCharacter));
    }

    #[test]
    fn luhn_known_values() {
        assert_eq!(luhn_check_digit(&[5, 5, 6, 0, 3, 6, 0, 7, 9]), 3);
        assert_eq!(luhn_check_digit(&[8, 1, 1, 2, 2, 8, 9, 8, 7]), 4);
        assert_eq!(luhn_check_digit(&[0; 9]), 0);
    }

    /// A generated person: reference date, birth date, serial, and whether it is a samordningsnummer.
    #[derive(Debug, Clone)]
    struct GenPerson {
        today: NaiveDate,
        born: NaiveDate,
        serial: u16,
        samordning: bool,
    }

    impl GenPerson {
        /// The ten digits `YYMMDDNNNC` with the correct check digit.
        fn ten(&self) -> String {
            let day = self.born.day() + if self.samordning { 60 } else { 0 };
            let nine = format!("{:02}{:02}{day:02}{:03}", self.born.year() % 100, self.born.month(), self.serial);
            with_check(&nine)
        }

        fn century(&self) -> i32 {
            self.born.year() / 100
        }

        /// Aged 100 or more at the reference date.
        fn centenarian(&self) -> bool {
            let b = self.born;
            let t = self.today;
            (b.year() + 100, b.month(), b.day()) <= (t.year(), t.month(), t.day())
        }
    }

    fn person_strategy() -> impl Strategy<Value = GenPerson> {
        let first_ref = date(2000, 1, 1);
        let ref_span = (date(2099, 12, 31) - first_ref).num_days();
        // Include the real today so that `parse` itself is exercised against generated data.
        let real_today = chrono::Local::now().date_naive();
        (0..=ref_span + 1, 0i64..=73_000, 1u16..=999, any::<bool>()).prop_map(move |(r, b, serial, samordning)| {
            let today = if r > ref_span { real_today } else { first_ref + chrono::Duration::days(r) };
            let first_birth = date(1900, 1, 1);
            let span = (today - first_birth).num_days();
            let born = first_birth + chrono::Duration::days(b % (span + 1));
            GenPerson { today, born, serial, samordning }
        })
    }

    fn org_strategy() -> impl Strategy<Value = String> {
        (1u8..=9, 0u8..=9, 2u8..=9, proptest::array::uniform6(0u8..=9)).prop_map(|(a, b, c, rest)| {
            let mut nine = vec![a, b, c];
            nine.extend_from_slice(&rest);
            let text: String = nine.iter().map(|d| char::from(b'0' + d)).collect();
            with_check(&text)
        })
    }

    fn assert_redacted(nr: &OrgNr) {
        let shown = format!("{nr} {nr:?}");
        assert!(!shown.bytes().any(|b| b.is_ascii_digit()), "{shown}");
    }

    proptest! {
        #[test]
        fn luhn_digit_validates_and_detects_single_errors(
            nine in proptest::array::uniform9(0u8..=9),
            position in 0usize..10,
            delta in 1u8..=9,
        ) {
            let mut ten = nine.to_vec();
            ten.push(luhn_check_digit(&nine));
            prop_assert!(luhn_ok(&ten));
            ten[position] = (ten[position] + delta) % 10;
            prop_assert!(!luhn_ok(&ten));
        }

        #[test]
        fn person_forms_parse_equal(p in person_strategy()) {
            let ten = p.ten();
            let (head, tail) = ten.split_at(6);
            let century = p.century();
            let sep = if p.centenarian() { '+' } else { '-' };
            let forms = [
                format!("{century}{ten}"),
                format!("{century}{head}-{tail}"),
                format!("{head}{sep}{tail}"),
            ];
            let parsed: Vec<OrgNr> = forms
                .iter()
                .map(|f| OrgNr::parse_at(f, p.today))
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let expected_kind = if p.samordning { IdKind::Samordningsnummer } else { IdKind::Personnummer };
            let expected = format!("{century}{head}-{tail}");
            for nr in &parsed {
                prop_assert_eq!(nr, &parsed[0]);
                prop_assert_eq!(nr.expose(), expected.as_str());
                prop_assert_eq!(nr.kind(), expected_kind);
                prop_assert_eq!(nr.legal_form(), LegalForm::EnskildFirma);
                assert_redacted(nr);
            }
            // Without a separator the 10-digit form means "under 100".
            if !p.centenarian() {
                prop_assert_eq!(&OrgNr::parse_at(&ten, p.today).unwrap(), &parsed[0]);
            }
        }

        #[test]
        fn org_forms_parse_equal(ten in org_strategy()) {
            let (head, tail) = ten.split_at(6);
            let forms = [
                ten.clone(),
                format!("{head}-{tail}"),
                format!("16{ten}"),
                format!("16{head}-{tail}"),
            ];
            let expected = format!("{head}-{tail}");
            let first = OrgNr::parse(&forms[0]).unwrap();
            for form in &forms {
                let nr = OrgNr::parse(form).unwrap();
                prop_assert_eq!(&nr, &first);
                prop_assert_eq!(nr.expose(), expected.as_str());
                prop_assert_eq!(nr.kind(), IdKind::Organisationsnummer);
                assert_redacted(&nr);
            }
            prop_assert_eq!(
                OrgNr::parse(&format!("{head}+{tail}")),
                Err(IdentityError::PlusOnOrganisationsnummer)
            );
        }
    }
}
