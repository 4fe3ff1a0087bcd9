//! Small helpers: time, random tokens, hashing and input validation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rand::RngCore;

use crate::error::Error;

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `n` random bytes from the OS CSPRNG, base64url.
pub fn random_token(n: usize) -> String {
    loop {
        let mut bytes = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = B64.encode(bytes);
        // A token that starts with '-' reads as an option when pasted into a command line
        // (`scanner init --token -9Px...`): draw again (1 in 64), at no cost to its entropy that matters.
        if !token.starts_with('-') {
            return token;
        }
    }
}

/// A random identifier with a readable prefix, e.g. `ord_3f9a...` (80 random bits).
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// SHA-256 hex of a secret: what the database stores instead of tokens. scanner-core defines it, so the
/// edge Worker's list of allowed device-token hashes is the same hash.
pub fn hash_secret(secret: &str) -> String {
    scanner_core::token::token_hash_hex(secret)
}

/// Validates a human-entered text field: trimmed, non-empty, at most `max` characters, no control
/// characters. Returns the trimmed value.
pub fn clean_text(field: &'static str, value: &str, max: usize) -> Result<String, Error> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(Error::validation(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(|c| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }) {
        return Err(Error::validation(field, "must not contain control or bidirectional-override characters"));
    }
    Ok(v.to_owned())
}

/// Validates an email address: the pragmatic subset that SMTP servers and lettre accept.
pub fn clean_email(value: &str) -> Result<String, Error> {
    let v = clean_text("email", value, 254)?;
    let ok = match v.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && v.chars().all(|c| c.is_ascii_graphic())
                && !v.contains(['<', '>', '"', ',', ';', '\\', '(', ')', '[', ']'])
                && v.parse::<lettre::Address>().is_ok()
        }
        None => false,
    };
    if !ok {
        return Err(Error::validation("email", "is not a valid email address"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_text_and_email() {
        assert_eq!(clean_text("name", "  Ada ", 10).unwrap(), "Ada");
        assert!(clean_text("name", "", 10).is_err());
        assert!(clean_text("name", "a\u{0}b", 10).is_err());
        assert!(clean_text("name", "a\nb", 10).is_err());
        assert!(clean_text("name", &"x".repeat(11), 10).is_err());
        assert!(clean_email("ada@example.org").is_ok());
        for bad in ["ada", "ada@", "@x.org", "a b@x.org", "<a@x.org>", "a@x", "a@x.org\r\nBcc: b@y.org"] {
            assert!(clean_email(bad).is_err(), "{bad}");
        }
    }
}
