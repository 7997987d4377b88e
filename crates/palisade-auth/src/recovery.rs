//! Recovery codes: single-use fallbacks for a lost second factor.
//!
//! A code is 12 characters from a 31-letter alphabet without look-alikes (no `0`, `o`, `1`, `l`,
//! `i`), about 59 bits, shown as `xxxx-xxxx-xxxx`. Callers store
//! `hash_secret(&normalize_recovery_code(code))` and compare normalized input the same way, so a
//! code typed in capitals, without dashes or with spaces still matches.

use crate::secret::fill_random;

/// The characters a recovery code is made of.
pub const RECOVERY_ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Characters per code, not counting the dashes.
const CODE_CHARS: usize = 12;
/// Characters between dashes.
const GROUP_CHARS: usize = 4;

/// Generates `n` fresh recovery codes, formatted `xxxx-xxxx-xxxx`.
///
/// # Panics
///
/// If the operating system's random number generator fails.
pub fn new_recovery_codes(n: usize) -> Vec<String> {
    (0..n).map(|_| new_recovery_code()).collect()
}

fn new_recovery_code() -> String {
    // Rejection sampling keeps every character equally likely: 248 is the largest multiple of 31
    // that fits in a byte, so bytes at or above it are redrawn instead of folded onto `a`..`h`.
    const LIMIT: u8 = (256 / RECOVERY_ALPHABET.len() * RECOVERY_ALPHABET.len()) as u8;
    let mut chars = Vec::with_capacity(CODE_CHARS);
    let mut pool = [0u8; 32];
    while chars.len() < CODE_CHARS {
        fill_random(&mut pool);
        for &b in pool.iter().filter(|&&b| b < LIMIT) {
            if chars.len() == CODE_CHARS {
                break;
            }
            chars.push(char::from(RECOVERY_ALPHABET[usize::from(b) % RECOVERY_ALPHABET.len()]));
        }
    }
    let groups: Vec<String> = chars.chunks(GROUP_CHARS).map(|group| group.iter().collect()).collect();
    groups.join("-")
}

/// Normalizes a recovery code as typed: lowercase, without spaces or dashes.
pub fn normalize_recovery_code(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_have_the_documented_shape() {
        let codes = new_recovery_codes(10);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3, "{code}");
            for group in groups {
                assert_eq!(group.len(), 4, "{code}");
                assert!(group.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)), "{code}");
            }
            assert_eq!(normalize_recovery_code(code).len(), 12);
        }
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 10);
        assert!(new_recovery_codes(0).is_empty());
    }

    #[test]
    fn alphabet_has_no_look_alikes() {
        for c in b"0o1li" {
            assert!(!RECOVERY_ALPHABET.contains(c), "{}", char::from(*c));
        }
        assert_eq!(RECOVERY_ALPHABET.iter().collect::<HashSet<_>>().len(), 31);
    }

    #[test]
    fn every_character_is_used() {
        let seen: HashSet<u8> = new_recovery_codes(200).iter().flat_map(|c| c.bytes()).filter(|&b| b != b'-').collect();
        assert_eq!(seen.len(), 31);
    }

    #[test]
    fn normalize() {
        for (input, expected) in [
            ("abcd-efgh-jkmn", "abcdefghjkmn"),
            ("ABCD-EFGH-JKMN", "abcdefghjkmn"),
            (" abcd efgh\tjkmn ", "abcdefghjkmn"),
            ("abcdefghjkmn", "abcdefghjkmn"),
            ("", ""),
        ] {
            assert_eq!(normalize_recovery_code(input), expected, "{input:?}");
        }
    }
}
