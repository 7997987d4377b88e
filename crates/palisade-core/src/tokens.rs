//! API tokens: `pal_` followed by 32 random base62 characters and a 6-character base62 CRC-32 of
//! them. The checksum lets secret scanners (and this server) recognise a real token without a
//! database look-up; the regular expression is `pal_[0-9A-Za-z]{38}`. Only the sha256 of a token is
//! stored, so a token can be shown once and never again.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "pal_";
pub const REGEX: &str = "pal_[0-9A-Za-z]{38}";
const RANDOM_LEN: usize = 32;
const CHECK_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly minted token: the secret (shown once), its stored hash and a display hint.
pub struct NewToken {
    pub secret: String,
    pub hash: String,
    pub hint: String,
}

pub fn generate() -> NewToken {
    let mut raw = [0u8; RANDOM_LEN];
    getrandom::fill(&mut raw).expect("the operating system's random source failed");
    // 256 values onto 62 symbols: reject the top of the range to stay unbiased.
    let mut body = String::with_capacity(RANDOM_LEN);
    let mut pool = raw.to_vec();
    while body.len() < RANDOM_LEN {
        if pool.is_empty() {
            let mut more = [0u8; RANDOM_LEN];
            getrandom::fill(&mut more).expect("the operating system's random source failed");
            pool.extend_from_slice(&more);
        }
        let b = pool.pop().unwrap_or(0);
        if b < 248 {
            body.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    let secret = format!("{PREFIX}{body}{}", checksum(&body));
    NewToken { hash: hash(&secret), hint: secret[..PREFIX.len() + 6].to_string(), secret }
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `token` has the shape and checksum of a Palisade token.
pub fn well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(PREFIX) else { return false };
    if rest.len() != RANDOM_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, check) = rest.split_at(RANDOM_LEN);
    checksum(body) == check
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(well_formed(&a.secret), "{}", a.secret);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 4 + 38);
        assert_eq!(a.hash, hash(&a.secret));
        assert!(a.secret.starts_with(&a.hint));
    }

    #[test]
    fn tampered_tokens_are_not() {
        let t = generate().secret;
        let mut chars: Vec<char> = t.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let tampered: String = chars.into_iter().collect();
        assert!(!well_formed(&tampered));
        assert!(!well_formed("pal_short"));
        assert!(!well_formed(&t.replace("pal_", "pypi")));
        assert!(!well_formed(""));
    }
}
