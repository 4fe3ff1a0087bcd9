//! Base45 (RFC 9285): the text encoding of ticket bytes inside the QR code.
//!
//! Base45 uses exactly the QR alphanumeric alphabet, which packs 5.5 bits per character against 8 bits per
//! character in QR byte mode. Two bytes become three characters, so a ticket in base45 needs a smaller QR
//! version than the same bytes in base64url (see docs/ticket-format.md for the measurement).

use thiserror::Error;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Base45Kind {
    #[error("character {0:?} is not in the base45 alphabet")]
    InvalidCharacter(char),
    #[error("base45 text has an impossible length {0} (length mod 3 must not be 1)")]
    InvalidLength(usize),
    #[error("base45 group decodes to a value out of range")]
    OutOfRange,
}

/// Encodes bytes as base45 text.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    for pair in bytes.chunks(2) {
        let (n, digits) = match *pair {
            [a, b] => (u32::from(a) * 256 + u32::from(b), 3),
            [a] => (u32::from(a), 2),
            _ => unreachable!("chunks(2) yields one or two bytes"),
        };
        let mut rest = n;
        for _ in 0..digits {
            out.push(char::from(ALPHABET[(rest % 45) as usize]));
            rest /= 45;
        }
    }
    out
}

fn value_of(c: u8) -> Result<u32, Base45Kind> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32).ok_or(Base45Kind::InvalidCharacter(char::from(c)))
}

/// Decodes base45 text. Every byte string has exactly one encoding: values out of range are rejected, so
/// two different texts never decode to the same bytes (a changed QR character can never go unnoticed).
pub fn decode(text: &str) -> crate::Result<Vec<u8>> {
    Ok(decode_kind(text)?)
}

/// [`decode`], failing with the bare kind (a ticket's text nests it in its format kind).
pub(crate) fn decode_kind(text: &str) -> Result<Vec<u8>, Base45Kind> {
    let raw = text.as_bytes();
    if raw.len() % 3 == 1 {
        return Err(Base45Kind::InvalidLength(raw.len()));
    }
    let mut out = Vec::with_capacity(raw.len() / 3 * 2 + 1);
    for group in raw.chunks(3) {
        let mut n: u32 = 0;
        let mut weight = 1;
        for &c in group {
            n += value_of(c)? * weight;
            weight *= 45;
        }
        if group.len() == 3 {
            if n > 0xFFFF {
                return Err(Base45Kind::OutOfRange);
            }
            out.push((n >> 8) as u8);
            out.push((n & 0xFF) as u8);
        } else {
            if n > 0xFF {
                return Err(Base45Kind::OutOfRange);
            }
            out.push(n as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9285_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(decode("GGW"), Err(crate::Error::Base45(Base45Kind::OutOfRange))));
        assert!(matches!(decode("A"), Err(crate::Error::Base45(Base45Kind::InvalidLength(1)))));
        assert!(matches!(decode("ab"), Err(crate::Error::Base45(Base45Kind::InvalidCharacter('a')))));
        assert!(matches!(decode("::"), Err(crate::Error::Base45(Base45Kind::OutOfRange))));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            proptest::prop_assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
    }
}
