//! Property-based fuzz tests of RegisterCase: decoding the protobuf body and validating the request.
//!
//! Every test is named `fuzz_*` so `just fuzz` selects them; `LOTS_FUZZ_CASES` sets the cases per property.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use lots_domain::{OrgNr, TenantConfig};
use lots_intake::error::Error;
use lots_intake::validate;
use lots_proto::v1 as pb;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;
use prost::Message;
use tonic_types::StatusExt;

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

/// The Norrköping example, loaded once for all cases.
fn tenant() -> Arc<TenantConfig> {
    static TENANT: OnceLock<Arc<TenantConfig>> = OnceLock::new();
    let load = || match TenantConfig::from_toml_str(include_str!("../../../deploy/config/norrkoping.toml")) {
        Ok(cfg) => Arc::new(cfg),
        Err(e) => panic!("the example config must load: {e}"),
    };
    TENANT.get_or_init(load).clone()
}

/// Every field `validate::register` may name.
const FIELDS: &[&str] = &[
    "idempotency_key",
    "company",
    "company.org_nr",
    "company.name",
    "company.contact.name",
    "company.contact.email",
    "company.contact.phone",
    "case_type",
    "description",
    "channel",
];
const KEYS: &[&str] = &["k-1", "0196b1c2-7a4e-7c3d-9f1e-123456789abc"];
const ORG_NRS: &[&str] = &["556036-0793", "5560360793", "16556036-0793", "19121212-1212", "811228-9874"];
const NAMES: &[&str] = &["Åkes Bageri AB", " Åke Bagare "];
const EMAILS: &[&str] = &["ake@akesbageri.se", " anna.berg@foretag.se "];
const PHONES: &[&str] = &["070-123 45 67", "+46 70 123 45 67", "0047 22 33 44 55", "011-15 00 00"];
const CASE_TYPES: &[&str] = &["bygglov", "restaurang_start", " allman_radgivning "];

/// Mostly a valid value, otherwise text near the field's rules, anything, or blank.
fn field(valid: &'static [&'static str], near: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => select(valid).prop_map(String::from),
        1 => near,
        1 => any::<String>(),
        1 => "[ \t\r\n]{0,3}",
    ]
}

fn request() -> impl Strategy<Value = pb::RegisterCaseRequest> {
    let contact =
        (field(NAMES, "[a-zåäö ]{190,210}"), field(EMAILS, "[a-z@.,; ]{0,24}"), field(PHONES, "[0-9 +().-]{0,20}"))
            .prop_map(|(name, email, phone)| pb::Contact { name, phone, email });
    let company = (
        field(ORG_NRS, "[0-9 +-]{0,14}"),
        field(NAMES, "[a-zåäö ]{190,210}"),
        proptest::option::weighted(0.9, contact),
    )
        .prop_map(|(org_nr, name, contact)| pb::Company { org_nr, name, contact });
    // Characters, not bytes, count towards the 4000 limit: "å" is two bytes.
    let description = prop_oneof![
        8 => field(&["", "Vill öppna ett café."], "\\PC{0,40}"),
        1 => (3990usize..4010).prop_map(|n| "å".repeat(n)),
    ];
    let channel = prop_oneof![8 => 1..=5i32, 1 => Just(0), 1 => any::<i32>()];
    (
        field(KEYS, "[a-z0-9-]{120,136}"),
        proptest::option::weighted(0.9, company),
        field(CASE_TYPES, "[a-z_]{0,70}"),
        description,
        channel,
    )
        .prop_map(|(idempotency_key, company, case_type, description, channel)| pb::RegisterCaseRequest {
            idempotency_key,
            company,
            case_type,
            description,
            channel,
        })
}

/// Per field, whether validation must flag it (`Some(true)`), must not (`Some(false)`), or is not predicted.
fn expected(req: &pb::RegisterCaseRequest, tenant: &TenantConfig) -> Vec<(&'static str, Option<bool>)> {
    let bad = |v: &str, required: bool, max: usize| (required && v.trim().is_empty()) || v.trim().chars().count() > max;
    let listed = |valid: &[&str], v: &str| {
        if valid.contains(&v) { Some(false) } else { v.trim().is_empty().then_some(true) }
    };
    let company = req.company.clone().unwrap_or_default();
    let contact = company.contact.clone().unwrap_or_default();
    let case_type = req.case_type.trim();
    vec![
        ("idempotency_key", Some(bad(&req.idempotency_key, true, 128))),
        ("company", Some(req.company.is_none())),
        ("company.org_nr", Some(company.org_nr.trim().is_empty() || OrgNr::parse(&company.org_nr).is_err())),
        ("company.name", Some(bad(&company.name, true, 200))),
        ("company.contact.name", Some(bad(&contact.name, true, 200))),
        ("company.contact.email", listed(EMAILS, &contact.email)),
        ("company.contact.phone", listed(PHONES, &contact.phone)),
        ("case_type", Some(bad(case_type, true, 64) || tenant.case_type(case_type).is_none())),
        ("description", Some(bad(&req.description, false, 4000))),
        ("channel", Some(!(1..=5).contains(&req.channel))),
    ]
}

/// Validation flags exactly the predicted fields, and a rejection becomes invalid_argument naming them.
fn check_validation(req: &pb::RegisterCaseRequest) -> Result<(), TestCaseError> {
    let tenant = tenant();
    let result = validate::register(req, tenant.clone(), "fuzz".to_owned());
    let flagged: BTreeSet<&str> = match &result {
        Ok(new) => {
            prop_assert_eq!(new.case_type.as_str(), req.case_type.trim());
            prop_assert!(
                new.contact_phone.starts_with('+') && new.contact_phone[1..].bytes().all(|b| b.is_ascii_digit())
            );
            BTreeSet::new()
        }
        Err(violations) => {
            prop_assert!(!violations.is_empty());
            prop_assert!(violations.iter().all(|v| FIELDS.contains(&v.field) && !v.description.is_empty()));
            let status = tonic::Status::from(Error::from(violations.clone()));
            prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
            let details = status.get_error_details();
            let named: Vec<&str> = details
                .bad_request()
                .map(|b| b.field_violations.iter().map(|f| f.field.as_str()).collect())
                .unwrap_or_default();
            prop_assert_eq!(named, violations.iter().map(|v| v.field).collect::<Vec<_>>());
            violations.iter().map(|v| v.field).collect()
        }
    };
    for (field, must) in expected(req, &tenant) {
        if let Some(must) = must {
            prop_assert_eq!(flagged.contains(field), must, "{}", field);
        }
    }
    Ok(())
}

fn valid_request() -> pb::RegisterCaseRequest {
    let contact = pb::Contact { name: NAMES[1].into(), phone: PHONES[0].into(), email: EMAILS[0].into() };
    let company = pb::Company { org_nr: ORG_NRS[0].into(), name: NAMES[0].into(), contact: Some(contact) };
    pb::RegisterCaseRequest {
        idempotency_key: KEYS[0].into(),
        company: Some(company),
        case_type: CASE_TYPES[0].into(),
        description: String::new(),
        channel: pb::Channel::Phone as i32,
    }
}

#[test]
fn fuzz_register_valid_request_is_accepted() {
    assert!(validate::register(&valid_request(), tenant(), "fuzz".to_owned()).is_ok());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_register_request_bytes_never_panic(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (request(), any::<Index>(), any::<u8>()).prop_map(|(req, at, flip)| {
            let mut bytes = req.encode_to_vec();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] ^= flip;
            }
            bytes
        }),
    ]) {
        let Ok(req) = pb::RegisterCaseRequest::decode(bytes.as_slice()) else { return Ok(()) };
        prop_assert_eq!(pb::RegisterCaseRequest::decode(req.encode_to_vec().as_slice()).ok(), Some(req.clone()));
        check_validation(&req)?;
    }

    #[test]
    fn fuzz_register_any_request_names_its_bad_fields(req in request()) {
        check_validation(&req)?;
    }
}
