//! Device tokens as servers store them: the SHA-256 of the token, lowercase hex. The issuer keeps this
//! hash in its database and the edge Worker keeps a list of them in a secret, so a token list can be
//! handed from one to the other without ever exporting a token. The hash is the one definition both use.

use sha2::{Digest, Sha256};

use crate::redemption::DeviceId;

/// Length of [`token_hash_hex`]'s output.
pub const TOKEN_HASH_HEX_LEN: usize = 64;

/// SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// SHA-256 of a token, lowercase hex: what a server stores instead of the token.
pub fn token_hash_hex(token: &str) -> String {
    token_hash(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a stored hash (64 hex digits, either case) back into bytes.
pub fn parse_token_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != TOKEN_HASH_HEX_LEN || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The redemption-log device id bound to a token: the first 8 bytes of
/// SHA-256(`"offline-tickets/v1/device-id"` ‖ 0x00 ‖ SHA-256(token)).
///
/// Derived from the token's *hash* so that every server (the issuer's database, the edge's device list,
/// a venue hub) computes it from what it already stores, without a table of ids to keep in step; the
/// device computes it from its token. A sync server accepts from an authenticated device only changes
/// written under this id, so one device token cannot write into another device's log.
pub fn device_id_for_token_hash(hash: &[u8; 32]) -> DeviceId {
    let mut h = Sha256::new();
    h.update(b"offline-tickets/v1/device-id\0");
    h.update(hash);
    let digest = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    DeviceId(u64::from_be_bytes(id))
}

/// [`device_id_for_token_hash`] of a token.
pub fn device_id_for_token(token: &str) -> DeviceId {
    device_id_for_token_hash(&token_hash(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex_and_parses_back() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(token_hash_hex("abc"), abc);
        assert_eq!(parse_token_hash(abc), Some(token_hash("abc")));
        assert_eq!(parse_token_hash(&abc.to_ascii_uppercase()), Some(token_hash("abc")));
        assert_eq!(parse_token_hash(&abc[1..]), None);
        assert_eq!(parse_token_hash(&format!("{}zz", &abc[2..])), None);
        assert_eq!(parse_token_hash(&"é".repeat(32)), None);
    }

    #[test]
    fn device_id_is_the_domain_separated_hash_of_the_token_hash() {
        // Computed independently: sha256(b"offline-tickets/v1/device-id\0" + sha256(b"abc"))[:8]
        // with Python's hashlib.
        let expected = DeviceId(0x1c63_38f2_3c99_09ae);
        assert_eq!(device_id_for_token("abc"), expected);
        assert_eq!(device_id_for_token_hash(&token_hash("abc")), expected);
        assert_ne!(device_id_for_token("abd"), expected);
    }
}
