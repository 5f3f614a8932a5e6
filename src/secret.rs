//! Secrets: user keys and session tokens from the operating system's random
//! source, and the SHA-256 hex that the database stores instead of a key.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The 62 characters a session token is made of.
const TOKEN_ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a session token in characters.
pub const TOKEN_LEN: usize = 32;

/// Fills `buf` from the operating system's random source. A failure of the
/// OS generator is unrecoverable for a server that hands out secrets.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// 32 random bytes as 64 lowercase hex characters: a new user key.
pub fn new_user_key() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    hex(&bytes)
}

/// A new session token: 32 characters of `[A-Za-z0-9]`, each uniform.
pub fn new_session_token() -> String {
    let mut token = String::with_capacity(TOKEN_LEN);
    let mut pool = [0u8; 64];
    while token.len() < TOKEN_LEN {
        fill_random(&mut pool);
        token_from_bytes(&pool, &mut token);
    }
    token
}

/// Appends token characters made from `bytes` to `out` until it holds
/// `TOKEN_LEN`. Bytes of 248 and above are skipped (rejection sampling):
/// 248 = 4 × 62, so `b % 62` is uniform over the rest and no character is
/// likelier than another.
pub fn token_from_bytes(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if out.len() == TOKEN_LEN {
            return;
        }
        if b < 248 {
            out.push(TOKEN_ALPHABET[usize::from(b % 62)] as char);
        }
    }
}

/// SHA-256 of `text` as 64 lowercase hex characters (the original server
/// stores keys this way, so its databases import as they are).
pub fn sha256_hex(text: &str) -> String {
    hex(&sha256(text))
}

/// SHA-256 of `text`.
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Whether `s` has the shape of a session token.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == TOKEN_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_key_is_64_lowercase_hex() {
        let k = new_user_key();
        assert_eq!(k.len(), 64);
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(k, new_user_key());
    }

    #[test]
    fn token_shape() {
        let t = new_session_token();
        assert!(is_token_shaped(&t), "{t}");
        assert_ne!(t, new_session_token());
    }

    #[test]
    fn token_rejects_biased_bytes() {
        let mut out = String::new();
        token_from_bytes(&[248, 255, 0, 61, 62, 247], &mut out);
        // 248 and 255 are skipped; 0 -> 'A', 61 -> '9', 62 -> 'A', 247 -> 247 % 62 = 61 -> '9'.
        assert_eq!(out, "A9A9");
    }

    #[test]
    fn every_byte_value_maps_evenly() {
        let mut counts = [0usize; 62];
        for b in 0u8..=255 {
            let mut out = String::new();
            token_from_bytes(&[b], &mut out);
            if let Some(c) = out.bytes().next() {
                counts[TOKEN_ALPHABET.iter().position(|&x| x == c).unwrap()] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 4), "{counts:?}");
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
