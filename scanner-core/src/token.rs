//! Device tokens as servers store them: the SHA-256 of the token, lowercase hex. The issuer keeps this
//! hash in its database and the edge Worker keeps a list of them in a secret, so a token list can be
//! handed from one to the other without ever exporting a token. The hash is the one definition both use.

use sha2::{Digest, Sha256};

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
}
