//! Which revocation list the edge uses, and which it keeps in durable storage (the `TrustStore` Durable
//! Object of the shell): never one older than the newest it has verified.
//!
//! The edge sees up to three lists: the one it stored durably (the highest version it ever verified), the
//! one configured (KV `revocations` or the variable `REVOCATIONS_JSON`, pinned at deploy time and so
//! usually old) and the one just pulled from the issuer. Every one must verify against the keyring; of
//! those, the highest version wins, and only a list that extends the chain of the one held may replace it
//! (scanner-core's [`RevocationList::check_successor`]): an older list is a rollback, another list at the
//! same version a conflict, and both are refused. A fresh Worker instance that cannot reach the issuer
//! thus keeps the stored list, not the older configured one. Plain Rust, tested natively; the shell only
//! reads and writes the storage.

use scanner_core::error::{Error as CoreError, RevocationKind};
use scanner_core::{Keyring, RevocationList};
use serde::{Deserialize, Serialize};

/// What the shell asks the trust store: the keyring to verify with and the lists it has seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorRequest {
    pub keyring: String,
    pub candidates: Vec<String>,
}

/// The decision: the list to use (canonical JSON, `None` if there is no verified list at all), whether it
/// must be written to durable storage (it is newer than the stored one), and why any list was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorDecision {
    pub list: Option<String>,
    #[serde(default)]
    pub store: bool,
    #[serde(default)]
    pub refused: Vec<String>,
}

/// Chooses the revocation list: the highest verified version among the `stored` one and `candidates`,
/// each accepted only as a successor of the best so far (see the module docs).
pub fn choose(keyring: &Keyring, stored: Option<&str>, candidates: &[&str]) -> FloorDecision {
    let mut refused = Vec::new();
    let mut best: Option<RevocationList> = None;
    if let Some(json) = stored.filter(|s| !s.trim().is_empty()) {
        match RevocationList::from_json(json, keyring) {
            Ok(list) => best = Some(list),
            // Only after the keyring itself changed (a key removed): then the operator chose to.
            Err(e) => refused.push(format!("stored list: {e}")),
        }
    }
    let stored_version = best.as_ref().map(RevocationList::version);
    for json in candidates.iter().filter(|s| !s.trim().is_empty()) {
        let list = match RevocationList::from_json(json, keyring) {
            Ok(list) => list,
            Err(e) => {
                refused.push(e.to_string());
                continue;
            }
        };
        match &best {
            None => best = Some(list),
            Some(held) => match held.check_successor(&list) {
                Ok(()) if list.version() > held.version() => best = Some(list),
                Ok(()) => {}
                Err(e @ CoreError::Revocation(RevocationKind::Rollback { .. } | RevocationKind::Conflict { .. })) => {
                    refused.push(e.to_string())
                }
                Err(e) => refused.push(e.to_string()),
            },
        }
    }
    let store = match (&best, stored_version) {
        (Some(list), Some(v)) => list.version() > v,
        (Some(_), None) => true,
        (None, _) => false,
    };
    FloorDecision { list: best.map(|l| l.to_json()), store, refused }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanner_core::{IssuerKey, KeyId, RevocationHash, TicketId};

    fn setup() -> (IssuerKey, Keyring, Vec<String>) {
        let key = IssuerKey::from_seed(KeyId(1), [3; 32]);
        let mut ring = Keyring::new();
        ring.insert(key.public_entry(0, None)).unwrap();
        let mut list = RevocationList::new();
        let mut versions = Vec::new();
        for i in 1..=3u8 {
            list.publish_at(&key, 100 + u64::from(i), [RevocationHash::of(&TicketId([i; 12]))]);
            versions.push(list.to_json());
        }
        (key, ring, versions)
    }

    #[test]
    fn the_highest_verified_version_wins_and_is_stored() {
        let (_, ring, v) = setup();
        // First sight: the pulled v2 beats the configured v1 and is stored.
        let d = choose(&ring, None, &[&v[1], &v[0]]);
        assert_eq!((d.list.as_deref(), d.store), (Some(v[1].as_str()), true));
        // A fresh instance, issuer unreachable: only the configured v1 as a candidate. The stored v2 stays.
        let d = choose(&ring, Some(&v[1]), &[&v[0]]);
        assert_eq!((d.list.as_deref(), d.store), (Some(v[1].as_str()), false));
        assert!(d.refused[0].contains("older"), "{:?}", d.refused);
        // A newer pull replaces it.
        let d = choose(&ring, Some(&v[1]), &[&v[2], &v[0]]);
        assert_eq!((d.list.as_deref(), d.store), (Some(v[2].as_str()), true));
        // Nothing at all: no list (the shell then uses the empty version 0).
        assert_eq!(choose(&ring, None, &[]), FloorDecision::default());
    }

    #[test]
    fn unverified_and_conflicting_lists_are_refused() {
        let (key, ring, v) = setup();
        let stranger = IssuerKey::from_seed(KeyId(1), [4; 32]);
        let mut forged = RevocationList::new();
        forged.publish_at(&stranger, 200, []);
        for _ in 0..5 {
            forged.publish_at(&stranger, 200, []);
        }
        let d = choose(&ring, Some(&v[1]), &[&forged.to_json()]);
        assert_eq!((d.list.as_deref(), d.store), (Some(v[1].as_str()), false));
        assert_eq!(d.refused.len(), 1);
        // Another v2 (same key, different entries): a conflict, the stored v2 stays.
        let mut fork = RevocationList::from_json(&v[0], &ring).unwrap();
        fork.publish_at(&key, 300, [RevocationHash::of(&TicketId([9; 12]))]);
        let d = choose(&ring, Some(&v[1]), &[&fork.to_json()]);
        assert_eq!((d.list.as_deref(), d.store), (Some(v[1].as_str()), false));
        assert!(d.refused[0].contains("differs"), "{:?}", d.refused);
    }
}
