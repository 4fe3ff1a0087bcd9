//! Scanner device tokens. Every call carries `Authorization: Bearer <token>`; the Worker holds only
//! SHA-256 hashes of the allowed tokens (secret `SCANNER_TOKEN_HASHES`, lowercase hex, comma- or
//! space-separated) — the same hash the issuer stores for its device tokens, so a token list can be
//! exported from the issuer without ever exporting a token. Tokens are never logged.

use sha2::{Digest, Sha256};

/// The set of allowed token hashes.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    hashes: Vec<[u8; 32]>,
}

/// SHA-256 of a token, hex (what goes into `SCANNER_TOKEN_HASHES`).
pub fn token_hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl TokenSet {
    /// Parses the configured list. Returns the entries that are not 64 hex digits as the error, so a typo
    /// in the secret is reported instead of silently locking a device out.
    pub fn parse(list: &str) -> Result<Self, Vec<String>> {
        let mut hashes = Vec::new();
        let mut bad = Vec::new();
        for entry in crate::api::split_list(list) {
            match parse_hex32(&entry.to_ascii_lowercase()) {
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

    /// Whether an `Authorization` header value carries an allowed bearer token. Compares hashes in
    /// constant time against every entry, so timing reveals neither which entry matched nor how much.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(token) = bearer(authorization) else { return false };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.hashes
            .iter()
            .fold(false, |found, h| found | (h.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0))
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
    }

    #[test]
    fn malformed_hash_list_is_reported_without_echoing_it_whole() {
        let err = TokenSet::parse("abcd, 0123456789abcdef0123456789abcdef").unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err.iter().all(|e| e.chars().count() <= 9));
        assert!(TokenSet::parse("").unwrap().is_empty());
    }
}
