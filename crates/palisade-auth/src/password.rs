//! Password hashing (Argon2id, PHC strings) and the strength policy for new passwords.
//!
//! Verification is deliberately boolean: a malformed stored hash and a wrong password look the
//! same to the caller, and [`verify_dummy`] makes "no such user" cost the same as a wrong
//! password so that login timing does not reveal which accounts exist.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

use crate::secret::fill_random;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes. Argon2 would take more, but nobody types this much and a
/// bound keeps request handling cheap.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Length of the random salt, in bytes (the PHC recommendation is 16).
const SALT_BYTES: usize = 16;

/// Hashing a password failed. This is an internal error, never the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Argon2 refused the input or its parameters.
    #[error("could not hash the password")]
    Hash(#[source] argon2::password_hash::Error),
}

/// A new password was refused by the strength policy. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("password is too short: use at least {min_chars} characters")]
    TooShort {
        /// The minimum length in characters.
        min_chars: usize,
    },
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("password is too long: use at most {max_bytes} bytes")]
    TooLong {
        /// The maximum length in bytes.
        max_bytes: usize,
    },
    /// zxcvbn estimates it can be guessed with fewer than 10^10 guesses.
    #[error("password is too weak: {feedback}")]
    TooGuessable {
        /// zxcvbn's warning and suggestions, as sentences.
        feedback: String,
    },
}

/// Hashes `password` with Argon2id (the `argon2` crate's default parameters) and a random salt,
/// returning a PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$...`.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt);
    let hash = Argon2::default().hash_password_with_salt(password.as_bytes(), &salt).map_err(PasswordError::Hash)?;
    Ok(hash.to_string())
}

/// Checks `password` against a PHC string made by [`hash_password`]. A malformed hash is `false`.
///
/// The parameters come from the PHC string, so hashes made with older defaults keep working.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Spends the time of one password verification without a user, so that a login for an unknown
/// account costs the same as a wrong password.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    // Hashed with the current defaults, so the cost tracks what real accounts pay. If hashing
    // ever failed, the empty string would make this call cheap (a timing leak, not a bypass).
    let phc = DUMMY.get_or_init(|| hash_password("palisade dummy password for timing").unwrap_or_default());
    std::hint::black_box(verify_password(password, phc));
}

/// Applies the password policy: 10 characters to 1024 bytes, and a zxcvbn score of at least 3.
///
/// `user_inputs` are words an attacker would try first (user name, e-mail address, the site's
/// name); zxcvbn penalises passwords built from them. zxcvbn also carries dictionaries of common
/// passwords, names and words, so known passwords are refused however long they are.
pub fn check_strength(password: &str, user_inputs: &[&str]) -> Result<(), WeakPassword> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort { min_chars: MIN_PASSWORD_CHARS });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(WeakPassword::TooLong { max_bytes: MAX_PASSWORD_BYTES });
    }
    if is_famous_example(password) {
        return Err(WeakPassword::TooGuessable {
            feedback: "This is a well-known example password. Add more words that are less common.".to_owned(),
        });
    }
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    if entropy.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    let mut sentences = Vec::new();
    if let Some(feedback) = entropy.feedback() {
        sentences.extend(feedback.warning().map(|w| w.to_string()));
        sentences.extend(feedback.suggestions().iter().map(|s| s.to_string()));
    }
    if sentences.is_empty() {
        sentences.push("Add more words or characters.".to_owned());
    }
    Err(WeakPassword::TooGuessable { feedback: sentences.join(" ") })
}

/// Passwords published as examples of strong passwords, which zxcvbn scores as strong because it
/// judges each word rather than the phrase. Compared ignoring case, spaces and punctuation.
const FAMOUS_EXAMPLES: &[&str] = &["correcthorsebatterystaple"];

fn is_famous_example(password: &str) -> bool {
    let letters: String = password.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    FAMOUS_EXAMPLES.contains(&letters.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify_round_trip() {
        let phc = hash_password("tangerine-lampshade-orbit").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify_password("tangerine-lampshade-orbit", &phc));
        assert!(!verify_password("tangerine-lampshade-orbiT", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn hashes_are_salted() {
        assert_ne!(hash_password("same password").unwrap(), hash_password("same password").unwrap());
    }

    #[test]
    fn malformed_hash_is_false() {
        assert!(!verify_password("x", ""));
        assert!(!verify_password("x", "not a phc string"));
        assert!(!verify_password("x", "$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB"));
        assert!(!verify_password("x", "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"));
    }

    #[test]
    fn dummy_verification_runs() {
        verify_dummy("anything");
        verify_dummy("");
    }

    fn check(password: &str, inputs: &[&str], expected: Result<(), &str>) {
        let got = check_strength(password, inputs).map_err(|e| e.to_string());
        assert_eq!(got.as_ref().map(|_| ()).map_err(String::as_str), expected, "password {password:?}");
        if let Err(message) = got {
            assert!(!message.contains(password), "error echoes the password: {message}");
        }
    }

    #[test]
    fn strength_policy() {
        check("short1!", &[], Err("password is too short: use at least 10 characters"));
        // Ten characters, counted as characters rather than bytes.
        check("ééééééééé", &[], Err("password is too short: use at least 10 characters"));
        check(&"x".repeat(1025), &[], Err("password is too long: use at most 1024 bytes"));
        check(
            "password123!",
            &[],
            Err("password is too weak: This is similar to a commonly used password. Add another word or two. Uncommon words are better."),
        );
        check(
            "Correct Horse Battery Staple!",
            &[],
            Err("password is too weak: This is a well-known example password. Add more words that are less common."),
        );
        check("correct horse battery staple glacier velvet", &[], Ok(()));
        check("tangerine-lampshade-orbit", &[], Ok(()));
    }

    #[test]
    fn known_passwords_are_refused() {
        for password in
            ["password123!", "qwertyuiop", "1234567890", "iloveyou12", "Password1234", "Tr0ub4dour&3", "correcthorsebatterystaple"]
        {
            let err = check_strength(password, &[]).unwrap_err();
            assert!(matches!(err, WeakPassword::TooGuessable { .. }), "{password}: {err}");
            assert!(err.to_string().starts_with("password is too weak: "), "{err}");
        }
    }

    #[test]
    fn user_inputs_weaken_passwords() {
        // Strong on its own, weak for the user it is made of.
        let password = "jdoepalisade";
        assert_eq!(check_strength(password, &[]), Ok(()));
        assert!(check_strength(password, &["palisade", "jdoe"]).is_err());
    }
}
