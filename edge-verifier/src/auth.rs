//! Scanner device tokens. Every call carries `Authorization: Bearer <token>`; the Worker holds only
//! SHA-256 hashes of the allowed tokens (secret `SCANNER_TOKEN_HASHES`, lowercase hex, comma- or
//! space-separated) — the same hash the issuer stores for its device tokens, so a token list can be
//! exported from the issuer without ever exporting a token (both use [`scanner_core::token`]). Tokens are
//! never logged.

pub use scanner_core::token::token_hash_hex;
use scanner_core::token::{parse_token_hash, token_hash};

/// The set of allowed token hashes.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    hashes: Vec<[u8; 32]>,
}

impl TokenSet {
    /// Parses the configured list. Returns the entries that are not 64 hex digits as the error, so a typo
    /// in the secret is reported instead of silently locking a device out.
    pub fn parse(list: &str) -> Result<Self, Vec<String>> {
        let mut hashes = Vec::new();
        let mut bad = Vec::new();
        for entry in crate::api::split_list(list) {
            match parse_token_hash(&entry) {
                Some(h) => hashes.push(h),
                None => bad.push(format!("{}…", entry.chars().take(8).collect::<String>())),
            }
        }
        if bad.is_empty() {
            Ok(Self { hashes })
        } else {
            Err(bad)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether an `Authorization` header value carries an allowed bearer token.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        self.device_of(authorization).is_some()
    }

    /// The allowed token's hash if an `Authorization` header value carries an allowed bearer token: the
    /// device's identity for per-device state (sync), never the token itself. Compares hashes in constant
    /// time against every entry, so timing reveals neither which entry matched nor how much.
    pub fn device_of(&self, authorization: Option<&str>) -> Option<[u8; 32]> {
        let digest = token_hash(bearer(authorization)?);
        let found = self
            .hashes
            .iter()
            .fold(false, |found, h| found | (h.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0));
        found.then_some(digest)
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_hash() {
        let set = TokenSet::parse(&format!("{}, {}", token_hash_hex("alpha"), token_hash_hex("beta"))).unwrap();
        assert!(set.allows(Some("Bearer alpha")));
        assert!(set.allows(Some("bearer beta")));
        assert!(!set.allows(Some("Bearer gamma")));
        assert!(!set.allows(Some("Basic alpha")));
        assert!(!set.allows(Some("Bearer ")));
        assert!(!set.allows(None));
        assert!(!TokenSet::default().allows(Some("Bearer alpha")));
        assert_eq!(set.device_of(Some("Bearer alpha")), Some(scanner_core::token::token_hash("alpha")));
        assert_eq!(set.device_of(Some("Bearer gamma")), None);
    }

    #[test]
    fn malformed_hash_list_is_reported_without_echoing_it_whole() {
        let err = TokenSet::parse("abcd, 0123456789abcdef0123456789abcdef").unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err.iter().all(|e| e.chars().count() <= 9));
        assert!(TokenSet::parse("").unwrap().is_empty());
    }
}
