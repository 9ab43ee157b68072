//! Service-account tokens: `sky_` and 43 characters of randomness. The
//! secret is shown once; only its SHA-256 is stored, so a leaked database
//! holds nothing that authenticates.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The official client refuses tokens without it.
pub const TOKEN_PREFIX: &str = "sky_";

/// A new token's secret: 256 random bits.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source works");
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored and looked up: the token's SHA-256, hex.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A short random id to name a token by (in listings and to revoke it).
pub fn new_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source works");
    hex(&bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed_stably() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
        assert!(
            !hash(&a).contains(&a[4..]),
            "the hash does not embed the secret"
        );
    }
}
