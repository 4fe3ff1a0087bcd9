//! The verification material the edge checks tickets against: the issuer's public keyring and signed
//! revocation list, parsed and verified by scanner-core. Sources (KV or environment) are the shell's
//! business; this module only turns their text into a ready [`VerifyContext`].

use scanner_core::{Keyring, RevocationList, VerifyContext};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no keyring configured (KV key `keyring` or variable KEYRING_JSON)")]
    NoKeyring,
    #[error("keyring: {0}")]
    Keyring(#[from] scanner_core::keyring::KeyError),
    #[error("keyring has no keys")]
    EmptyKeyring,
    #[error("revocation list: {0}")]
    Revocations(#[from] scanner_core::revocation::RevocationError),
}

/// A parsed keyring and revocation list.
#[derive(Debug, Clone)]
pub struct Trust {
    pub keyring: Keyring,
    pub revocations: RevocationList,
}

impl Trust {
    /// Parses the keyring, then the revocation list against it (its signature is checked; a list that
    /// does not verify is an error, never silently ignored — that would un-revoke tickets).
    pub fn parse(keyring_json: Option<&str>, revocations_json: Option<&str>) -> Result<Self, ConfigError> {
        let keyring_json = keyring_json.filter(|s| !s.trim().is_empty()).ok_or(ConfigError::NoKeyring)?;
        let keyring = Keyring::from_json(keyring_json)?;
        if keyring.is_empty() {
            return Err(ConfigError::EmptyKeyring);
        }
        let revocations = match revocations_json.filter(|s| !s.trim().is_empty()) {
            Some(json) => RevocationList::from_json(json, &keyring)?,
            None => RevocationList::new(),
        };
        Ok(Self { keyring, revocations })
    }

    /// The context for one scan for `event` at `now` (Unix seconds).
    pub fn context(&self, event: u32, now: u64) -> VerifyContext<'_> {
        VerifyContext { keyring: &self.keyring, revocations: Some(&self.revocations), event_id: Some(event), now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanner_core::{IssuerKey, KeyId, RevocationHash, TicketId};

    #[test]
    fn parses_keyring_and_signed_revocations() {
        let key = IssuerKey::from_seed(KeyId(1), [1; 32]);
        let mut ring = Keyring::new();
        ring.insert(key.public_entry(0, None)).unwrap();
        let mut list = RevocationList::new();
        list.publish(&key, [RevocationHash::of(&TicketId([4; 12]))]);
        let trust = Trust::parse(Some(&ring.to_json()), Some(&list.to_json())).unwrap();
        assert!(trust.revocations.contains(&TicketId([4; 12])));
        assert!(Trust::parse(Some(&ring.to_json()), None).unwrap().revocations.is_empty());
        assert!(matches!(Trust::parse(None, None), Err(ConfigError::NoKeyring)));
        assert!(matches!(Trust::parse(Some("{}"), None), Err(ConfigError::Keyring(_))));
        // A list signed by a key the keyring does not have is refused, not ignored.
        let other = IssuerKey::from_seed(KeyId(2), [2; 32]);
        let mut forged = RevocationList::new();
        forged.publish(&other, [RevocationHash::of(&TicketId([5; 12]))]);
        assert!(matches!(
            Trust::parse(Some(&ring.to_json()), Some(&forged.to_json())),
            Err(ConfigError::Revocations(_))
        ));
    }
}
