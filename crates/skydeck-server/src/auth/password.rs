//! Password hashes: bcrypt for the passwords Skydeck sets, and the three
//! formats `htpasswd` writes (bcrypt, Apache's MD5 "apr1", SHA-1) for files
//! imported from an existing deployment.

use base64::Engine;
use md5::{Digest, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// bcrypt's default work factor: about a quarter second per check, which is
/// why verified credentials are cached (see `credentials.rs`).
const BCRYPT_COST: u32 = bcrypt::DEFAULT_COST;

pub fn hash_password(password: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, BCRYPT_COST)
}

/// Whether `password` matches `stored`. Unknown formats never match.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        // bcrypt compares its digests in constant time itself.
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    if let Some(rest) = stored.strip_prefix(APR1_MAGIC) {
        let salt = rest.split('$').next().unwrap_or_default();
        let expected = apr1(password.as_bytes(), salt.as_bytes());
        return bool::from(expected.as_bytes().ct_eq(stored.as_bytes()));
    }
    if let Some(digest) = stored.strip_prefix(SHA_PREFIX) {
        let actual = sha1_base64(password);
        return bool::from(actual.as_bytes().ct_eq(digest.as_bytes()));
    }
    false
}

/// Whether `stored` is a hash this module can check.
pub fn is_supported_hash(stored: &str) -> bool {
    stored.starts_with("$2") && stored.parse::<bcrypt::HashParts>().is_ok()
        || stored.starts_with(APR1_MAGIC) && stored.matches('$').count() == 3
        || stored.starts_with(SHA_PREFIX)
}

/// One `name:hash` line of an htpasswd file.
#[derive(Debug, Clone, PartialEq)]
pub struct HtpasswdEntry {
    pub name: String,
    pub hash: String,
}

/// Parses an htpasswd file. Blank lines and `#` comments are skipped; an
/// entry in a format we cannot check (plain text, DES crypt) is an error
/// naming its line, since importing it would lock that user out silently.
pub fn parse_htpasswd(text: &str) -> Result<Vec<HtpasswdEntry>, String> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let number = index + 1;
        let Some((name, hash)) = line.split_once(':') else {
            return Err(format!(
                "line {number}: expected `name:hash`, as `htpasswd -nbB NAME PASSWORD` writes"
            ));
        };
        if name.is_empty() {
            return Err(format!("line {number}: the user name is empty"));
        }
        if !is_supported_hash(hash) {
            return Err(format!(
                "line {number} ({name}): the password is not a bcrypt ($2y$), apr1 ($apr1$) or \
                 SHA-1 ({{SHA}}) hash; recreate it with `htpasswd -nbB {name} PASSWORD`"
            ));
        }
        entries.push(HtpasswdEntry {
            name: name.to_owned(),
            hash: hash.to_owned(),
        });
    }
    Ok(entries)
}

const APR1_MAGIC: &str = "$apr1$";
const SHA_PREFIX: &str = "{SHA}";

fn sha1_base64(password: &str) -> String {
    let digest = Sha1::digest(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Apache's variant of MD5-crypt, as `htpasswd -m` writes it:
/// `$apr1$<salt>$<22 characters>`.
fn apr1(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut alternate = Md5::new();
    alternate.update(password);
    alternate.update(salt);
    alternate.update(password);
    let alternate = alternate.finalize();

    let mut context = Md5::new();
    context.update(password);
    context.update(APR1_MAGIC.as_bytes());
    context.update(salt);
    for chunk in password.chunks(16) {
        context.update(&alternate[..chunk.len()]);
    }
    let mut length = password.len();
    while length > 0 {
        if length & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(&password[..1]);
        }
        length >>= 1;
    }
    let mut digest = context.finalize();

    // The thousand rounds exist only to slow guessing down.
    for round in 0..1000 {
        let mut context = Md5::new();
        if round & 1 == 1 {
            context.update(password);
        } else {
            context.update(digest);
        }
        if round % 3 != 0 {
            context.update(salt);
        }
        if round % 7 != 0 {
            context.update(password);
        }
        if round & 1 == 1 {
            context.update(digest);
        } else {
            context.update(password);
        }
        digest = context.finalize();
    }

    let mut encoded = String::with_capacity(22);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        let value =
            (u32::from(digest[a]) << 16) | (u32::from(digest[b]) << 8) | u32::from(digest[c]);
        push_crypt64(&mut encoded, value, 4);
    }
    push_crypt64(&mut encoded, u32::from(digest[11]), 2);
    format!("{APR1_MAGIC}{}${encoded}", String::from_utf8_lossy(salt))
}

/// crypt(3)'s base-64 alphabet, least significant digit first.
fn push_crypt64(out: &mut String, mut value: u32, digits: usize) {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..digits {
        out.push(char::from(ALPHABET[(value & 0x3f) as usize]));
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hashes_verify_and_are_salted() {
        let first = hash_password("s3cret").unwrap();
        let second = hash_password("s3cret").unwrap();
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("s3cret", &first));
        assert!(!verify_password("S3cret", &first));
    }

    // Written by `htpasswd -nbB alice s3cret`, `-nbm bob pw`, `-nbs carol pw`
    // and `openssl passwd -apr1 -salt r31.MQ1c secret`.
    #[test]
    fn htpasswd_formats_verify() {
        let bcrypt = "$2y$05$XkT/r7IvSDhxkWjH9Sg4d.5zUhuBsZ0YVyGzyrvB7iXuix5qCb6jS";
        assert!(verify_password("s3cret", bcrypt));
        assert!(!verify_password("s3cre", bcrypt));
        let apr1 = "$apr1$wFJlD6cn$/cym6ibcUaV068IilBkbw.";
        assert!(verify_password("pw", apr1));
        assert!(!verify_password("pW", apr1));
        assert!(verify_password(
            "secret",
            "$apr1$r31.MQ1c$AJw2xW/bBeDH4RTdIsL6N0"
        ));
        let sha = "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=";
        assert!(verify_password("pw", sha));
        assert!(!verify_password("pw ", sha));
    }

    #[test]
    fn unknown_hash_formats_never_match() {
        assert!(!verify_password("pw", "pw"));
        assert!(!verify_password("", ""));
        assert!(!verify_password("pw", "$1$abc$def"));
    }

    #[test]
    fn htpasswd_files_parse_and_bad_lines_are_named() {
        let text = "# team\nalice:$2y$05$XkT/r7IvSDhxkWjH9Sg4d.5zUhuBsZ0YVyGzyrvB7iXuix5qCb6jS\n\n\
                    bob:$apr1$wFJlD6cn$/cym6ibcUaV068IilBkbw.\ncarol:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n";
        let entries = parse_htpasswd(text).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);

        let err = parse_htpasswd("alice:plaintext\n").unwrap_err();
        assert!(err.contains("line 1 (alice)"), "{err}");
        assert!(err.contains("htpasswd -nbB alice"), "{err}");
        let err = parse_htpasswd("ok:{SHA}x\nnocolon\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }
}
