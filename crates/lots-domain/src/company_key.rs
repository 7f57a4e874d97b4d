//! Company keys: what events carry instead of an organisation number (a sole trader's is a
//! personnummer). A key is a keyed hash (HMAC-SHA-256) of the canonical number under a key
//! derived per tenant from one deployment secret, so the same company has the same key within
//! a municipality, different keys across municipalities, and nobody without the secret can
//! test a guessed number against a key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::OrgNr;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 32;

/// The deployment's company-key secret. `Debug` does not show it.
#[derive(Clone)]
pub struct CompanyKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for CompanyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompanyKeys(..)")
    }
}

impl CompanyKeys {
    /// Keys from `secret` (at least [`MIN_SECRET`] bytes; surrounding whitespace is dropped, so
    /// a file with a trailing newline works).
    pub fn new(secret: &[u8]) -> Result<CompanyKeys, String> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET {
            return Err(format!(
                "the company-key secret has {} bytes; it needs at least {MIN_SECRET} (e.g. `openssl rand -hex 32`)",
                secret.len()
            ));
        }
        Ok(CompanyKeys { secret: secret.to_vec() })
    }

    /// The key of `org` in `tenant`: `ck_` and 32 hex digits (128 bits).
    pub fn key(&self, tenant: &str, org: &OrgNr) -> String {
        let tenant_key = mac(&self.secret, format!("lots/company-key/{tenant}").as_bytes());
        let digest = mac(&tenant_key, org.expose().as_bytes());
        format!("ck_{}", hex::encode(&digest[..16]))
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> CompanyKeys {
        CompanyKeys::new(secret.as_bytes()).unwrap()
    }

    #[test]
    fn one_company_one_key_per_tenant_and_never_the_number() {
        let k = keys("a secret that is long enough for the test 32+");
        let sole = OrgNr::parse("19121212-1212").unwrap();
        let same = OrgNr::parse("191212121212").unwrap();
        let key = k.key("0581", &sole);
        assert_eq!(key, k.key("0581", &same), "the canonical number decides");
        assert_ne!(key, k.key("0580", &sole), "another municipality, another key");
        assert_ne!(key, keys("another secret that is long enough, 32+").key("0581", &sole));
        assert!(key.starts_with("ck_") && key.len() == 35, "{key}");
        assert!(!key.contains("121212"));
    }

    #[test]
    fn a_short_secret_is_refused_and_debug_hides_it() {
        assert!(CompanyKeys::new(b"short\n").unwrap_err().contains("at least 32"));
        let k = keys("a secret that is long enough for the test 32+\n");
        assert_eq!(format!("{k:?}"), "CompanyKeys(..)");
    }
}
