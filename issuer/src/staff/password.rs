//! Passwords: argon2id hashes (the `argon2` crate's default parameters: 19 MiB, 2 passes, 1 lane, as the
//! OWASP cheat sheet recommends), computed off the async threads and at most [`MAX_CONCURRENT`] at a time,
//! so a burst of sign-in attempts costs a bounded amount of memory (19 MiB each) and CPU.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; a back office that can refund money
/// deserves more).
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in bytes: bounds the work one request can ask for.
pub const MAX_BYTES: usize = 1024;
/// Hashes computed at the same time, at most.
pub const MAX_CONCURRENT: usize = 4;

static HASHING: Semaphore = Semaphore::const_new(MAX_CONCURRENT);

/// Refuses a password that is too short or too long.
pub fn validate(password: &str) -> Result<()> {
    if password.chars().count() < MIN_CHARS {
        return Err(Error::validation("password", format!("must be at least {MIN_CHARS} characters")));
    }
    if password.len() > MAX_BYTES {
        return Err(Error::validation("password", format!("must be at most {MAX_BYTES} bytes")));
    }
    Ok(())
}

fn hash_blocking(password: &[u8]) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(Error::internal)?;
    Argon2::default().hash_password(password, &salt).map(|h| h.to_string()).map_err(Error::internal)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASHING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(f).await.map_err(Error::internal)
}

/// The argon2id PHC string of a new password (validate it first).
pub async fn hash(password: String) -> Result<String> {
    blocking(move || {
        let h = hash_blocking(password.as_bytes());
        zeroize::Zeroize::zeroize(&mut password.into_bytes());
        h
    })
    .await?
}

/// A hash of a password nobody knows, verified against when the account does not exist or has no
/// password yet: the answer then takes as long as for a wrong password, so timing does not tell which
/// addresses have accounts.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        // Falls back to a fixed valid hash string only if hashing itself failed (it does not with the
        // default parameters); verifying against it still runs argon2.
        hash_blocking(&secret).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8ASN6WkN9Vj5Mh1dlMpWXBD9fO9VxWOUs2r8b5kvgUE".into()
        })
    })
}

/// Whether `password` matches `stored` (an argon2 PHC string). With `None`, verifies against a dummy hash
/// and answers false, in about the same time.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    blocking(move || {
        let matches = |phc: &str| {
            PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        };
        let ok = match &stored {
            Some(phc) => matches(phc),
            None => {
                matches(dummy_hash());
                false
            }
        };
        zeroize::Zeroize::zeroize(&mut password.into_bytes());
        ok
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("correct horse battery".into()).await.unwrap();
        let b = hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery".into(), Some(a.clone())).await.unwrap());
        assert!(!verify("correct horse batterx".into(), Some(a)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
        assert!(!verify("anything".into(), Some("not a hash".into())).await.unwrap());
    }

    #[test]
    fn length_rules() {
        assert!(validate("short").is_err());
        assert!(validate(&"x".repeat(MIN_CHARS)).is_ok());
        assert!(validate(&"x".repeat(MAX_BYTES + 1)).is_err());
    }
}
