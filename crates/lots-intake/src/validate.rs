//! Validation of requests: every bad field is named, and nothing is stored.

use lots_domain::{Channel, OrgNr, TenantConfig};
use lots_proto::v1 as pb;
use std::sync::Arc;

/// One bad field, named by its path in the request (e.g. `company.org_nr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: &'static str,
    pub description: String,
}

/// A registration that passed validation, in canonical form.
#[derive(Clone)]
pub struct NewCase {
    pub idempotency_key: String,
    pub tenant: std::sync::Arc<TenantConfig>,
    pub org_nr: OrgNr,
    pub company_name: String,
    pub contact_name: String,
    /// E.164, e.g. `+46701234567`.
    pub contact_phone: String,
    pub contact_email: String,
    pub case_type: String,
    pub description: String,
    pub channel: Channel,
    pub actor: String,
}

impl NewCase {
    /// What makes two requests "the same" for the idempotency key: a digest, so the stored
    /// fingerprint holds no organisation number or contact.
    pub fn fingerprint(&self) -> String {
        let request = serde_json::json!([
            self.tenant.kommunkod,
            self.org_nr.expose(),
            self.company_name,
            self.contact_name,
            self.contact_phone,
            self.contact_email,
            self.case_type,
            self.description,
            self.channel.as_str(),
        ])
        .to_string();
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, request.as_bytes()).to_string()
    }
}

/// Collects the violations of one request.
#[derive(Default)]
pub(crate) struct Check(pub(crate) Vec<Violation>);

impl Check {
    pub(crate) fn add(&mut self, field: &'static str, description: impl Into<String>) {
        self.0.push(Violation { field, description: description.into() });
    }

    /// Trimmed text that must be present and at most `max` characters long.
    pub(crate) fn text(&mut self, field: &'static str, value: &str, required: bool, max: usize) -> String {
        let value = value.trim();
        if required && value.is_empty() {
            self.add(field, "is required");
        } else if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
        value.to_owned()
    }
}

/// Validates a `RegisterCaseRequest` for the caller's tenant; `actor` names the caller.
pub fn register(
    req: &pb::RegisterCaseRequest,
    tenant: Arc<TenantConfig>,
    actor: String,
) -> Result<NewCase, Vec<Violation>> {
    let mut c = Check::default();
    let idempotency_key = c.text("idempotency_key", &req.idempotency_key, true, 128);
    let tenant = Some(tenant);
    let empty_company = pb::Company::default();
    let company = req.company.as_ref().unwrap_or_else(|| {
        c.add("company", "is required");
        &empty_company
    });
    let org_nr = if company.org_nr.trim().is_empty() {
        c.add("company.org_nr", "is required");
        None
    } else {
        match OrgNr::parse(&company.org_nr) {
            Ok(nr) => Some(nr),
            Err(e) => {
                c.add("company.org_nr", format!("is not a valid organisationsnummer or personnummer: {e}"));
                None
            }
        }
    };
    let company_name = c.text("company.name", &company.name, true, 200);
    let empty_contact = pb::Contact::default();
    let contact = company.contact.as_ref().unwrap_or(&empty_contact);
    let contact_name = c.text("company.contact.name", &contact.name, true, 200);
    let contact_email = c.text("company.contact.email", &contact.email, true, 254);
    if !contact_email.is_empty() && !is_email(&contact_email) {
        c.add("company.contact.email", "is not an e-mail address like namn@foretag.se");
    }
    let contact_phone = match phone_e164(&contact.phone) {
        Ok(p) => p,
        Err(msg) => {
            c.add("company.contact.phone", msg);
            String::new()
        }
    };
    let case_type = c.text("case_type", &req.case_type, true, 64);
    if let Some(t) = &tenant
        && !case_type.is_empty()
        && t.case_type(&case_type).is_none()
    {
        let known: Vec<_> = t.case_types.iter().map(|ct| ct.key.as_str()).collect();
        c.add("case_type", format!("{case_type:?} is not in {}'s catalogue; known: {}", t.name, known.join(", ")));
    }
    let description = c.text("description", &req.description, false, 4000);
    let channel = channel(req.channel);
    if channel.is_none() {
        c.add("channel", "is required (phone, email, e_service, visit or company_visit)");
    }
    match (c.0.is_empty(), tenant, org_nr, channel) {
        (true, Some(tenant), Some(org_nr), Some(channel)) => Ok(NewCase {
            idempotency_key,
            tenant,
            org_nr,
            company_name,
            contact_name,
            contact_phone,
            contact_email,
            case_type,
            description,
            channel,
            actor,
        }),
        _ => Err(c.0),
    }
}

/// A required free-text field of a lifecycle request.
pub fn required_text(field: &'static str, value: &str, max: usize) -> Result<String, Vec<Violation>> {
    let mut c = Check::default();
    let v = c.text(field, value, true, max);
    if c.0.is_empty() { Ok(v) } else { Err(c.0) }
}

/// A case id in a request.
pub fn case_id(value: &str) -> Result<uuid::Uuid, Vec<Violation>> {
    uuid::Uuid::parse_str(value.trim()).map_err(|_| {
        vec![Violation {
            field: "case_id",
            description: "must be a case id (a UUID); look it up by reference with GetCase".into(),
        }]
    })
}

pub(crate) fn channel(value: i32) -> Option<Channel> {
    match pb::Channel::try_from(value).ok()? {
        pb::Channel::Unspecified => None,
        pb::Channel::Phone => Some(Channel::Phone),
        pb::Channel::Email => Some(Channel::Email),
        pb::Channel::EService => Some(Channel::EService),
        pb::Channel::Visit => Some(Channel::Visit),
        pb::Channel::CompanyVisit => Some(Channel::CompanyVisit),
    }
}

pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !s.chars().any(|ch| ch.is_whitespace() || ch == ',' || ch == ';')
        && !domain.contains('@')
}

/// Normalises a Swedish or international phone number to E.164.
pub(crate) fn phone_e164(raw: &str) -> Result<String, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("is required");
    }
    let mut digits = String::new();
    for (i, ch) in raw.chars().enumerate() {
        match ch {
            '0'..='9' => digits.push(ch),
            '+' if i == 0 => {}
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return Err("may hold only digits, spaces, '-', '(' ')' and a leading '+'"),
        }
    }
    let international = if raw.starts_with('+') {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("46{rest}")
    } else {
        return Err("must start with 0 (Swedish number) or + and a country code");
    };
    if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err("is not a complete phone number");
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(phone_e164("070-123 45 67").unwrap(), "+46701234567");
        assert_eq!(phone_e164("011-15 00 00").unwrap(), "+4611150000");
        assert_eq!(phone_e164("+46 70 123 45 67").unwrap(), "+46701234567");
        assert_eq!(phone_e164("0047 22 33 44 55").unwrap(), "+4722334455");
        assert!(phone_e164("12345").is_err());
        assert!(phone_e164("070-12x").is_err());
        assert!(phone_e164("").is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert!(is_email("anna@foretag.se"));
        assert!(!is_email("anna@foretag"));
        assert!(!is_email("anna foretag.se"));
        assert!(!is_email("@foretag.se"));
        assert!(!is_email("a@b@c.se"));
    }
}
