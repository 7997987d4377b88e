//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps.
//!
//! These are the only parameters every authenticator app supports, so they are fixed rather
//! than configurable. Verification takes the time as an argument and returns the matched time
//! step; callers store it and pass it back as `last_used_step` so a code is accepted only once.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use totp_rs::{Algorithm, Builder};

use crate::secret::{ct_eq, fill_random};

/// Length of a new TOTP secret, in bytes (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Seconds per time step.
pub const TOTP_STEP_SECS: u64 = 30;
/// Digits per code.
pub const TOTP_DIGITS: usize = 6;

/// Generates a new random TOTP secret.
///
/// # Panics
///
/// If the operating system's random number generator fails.
pub fn new_totp_secret() -> Vec<u8> {
    let mut secret = vec![0u8; TOTP_SECRET_BYTES];
    fill_random(&mut secret);
    secret
}

/// Encodes a secret in RFC 4648 base32 without padding, as authenticator apps expect it typed.
pub fn secret_base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret).to_base32()
}

/// Builds the `otpauth://totp/...` URI that authenticator apps read from a QR code.
///
/// The parameters are spelled out even where they are the defaults, because some apps ignore
/// defaults they do not expect. Issuer and account are percent-encoded, so a `:` inside either
/// becomes `%3A` and the literal `:` in the label stays the only separator (totp-rs refuses such
/// names outright, which is why this does not use its `get_url`).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
        account = percent_encode(account),
        secret = secret_base32(secret),
    )
}

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

fn generator(secret: &[u8]) -> totp_rs::Totp {
    // `build_noncompliant` because the RFC's 128-bit minimum would refuse short test secrets; the
    // parameters themselves are the compliant SHA-1/6/30 set.
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(0)
        .with_step_duration(TOTP_STEP_SECS)
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// Returns the code for the time step containing `unix` (seconds since the epoch).
pub fn totp_code(secret: &[u8], unix: u64) -> String {
    generator(secret).generate(unix).to_string()
}

/// Checks a code typed by the user at time `now_unix`.
///
/// Spaces are ignored; anything else but exactly six ASCII digits is refused. Codes from the
/// previous, current and next step are accepted to allow for clock skew. Returns the matched step
/// (`unix / 30`), or `None` when nothing matched or the matched step is not newer than
/// `last_used_step`, which refuses a replayed code and also any code older than the last one used.
pub fn verify_totp(secret: &[u8], code: &str, now_unix: u64, last_used_step: Option<i64>) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = now_unix / TOTP_STEP_SECS;
    // Every candidate is computed and compared, so the time taken does not say which one matched.
    let generator = generator(secret);
    let mut matched = None;
    for step in [now_step.checked_sub(1), Some(now_step), now_step.checked_add(1)].into_iter().flatten() {
        // A step whose first second does not fit in a u64 has no code.
        let Some(time) = step.checked_mul(TOTP_STEP_SECS) else { continue };
        if ct_eq(generator.generate(time).to_string().as_bytes(), code.as_bytes()) {
            matched = Some(step);
        }
    }
    // u64::MAX / 30 fits in an i64, so this conversion cannot fail.
    let matched = i64::try_from(matched?).ok()?;
    match last_used_step {
        Some(last) if matched <= last => None,
        _ => Some(matched),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, truncated to six digits.
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(totp_code(RFC_SECRET, t), code, "T={t}");
        }
    }

    #[test]
    fn new_secrets_are_random() {
        let a = new_totp_secret();
        assert_eq!(a.len(), 20);
        assert_ne!(a, new_totp_secret());
    }

    #[test]
    fn base32_is_rfc4648_without_padding() {
        assert_eq!(secret_base32(b""), "");
        assert_eq!(secret_base32(b"f"), "MY");
        assert_eq!(secret_base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(secret_base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn otpauth_uri_spells_out_parameters() {
        assert_eq!(
            otpauth_uri(RFC_SECRET, "Palisade", "alice"),
            "otpauth://totp/Palisade:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Palisade&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_uri_percent_encodes() {
        assert_eq!(
            otpauth_uri(b"k", "My Index", "a:b@example.com"),
            "otpauth://totp/My%20Index:a%3Ab%40example.com?secret=NM&issuer=My%20Index&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("é/&?="), "%C3%A9%2F%26%3F%3D");
    }

    #[test]
    fn verify_accepts_adjacent_steps() {
        let now = 1_111_111_111; // step 37037037
        let step = 37_037_037;
        assert_eq!(verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, now), now, None), Some(step));
        assert_eq!(verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, now - 30), now, None), Some(step - 1));
        assert_eq!(verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, now + 30), now, None), Some(step + 1));
        assert_eq!(verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, now - 60), now, None), None);
        assert_eq!(verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, now + 60), now, None), None);
    }

    #[test]
    fn verify_rfc_vector_at_step_one() {
        assert_eq!(verify_totp(RFC_SECRET, "287082", 59, None), Some(1));
        assert_eq!(verify_totp(RFC_SECRET, "287 082", 59, None), Some(1));
        assert_eq!(verify_totp(RFC_SECRET, " 287082 ", 59, None), Some(1));
        // Step 0 has no previous step; nothing underflows.
        assert_eq!(verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, 0), 0, None), Some(0));
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        for code in ["", "28708", "2870820", "28708a", "+87082", "２８７０８２", "287-082"] {
            assert_eq!(verify_totp(RFC_SECRET, code, 59, None), None, "{code:?}");
        }
        assert_eq!(verify_totp(b"another secret......", "287082", 59, None), None);
    }

    #[test]
    fn verify_refuses_replay_and_older_codes() {
        let now = 1_234_567_890;
        let step = i64::try_from(now / 30).unwrap();
        let code = totp_code(RFC_SECRET, now);
        assert_eq!(verify_totp(RFC_SECRET, &code, now, Some(step - 1)), Some(step));
        assert_eq!(verify_totp(RFC_SECRET, &code, now, Some(step)), None, "replay");
        let older = totp_code(RFC_SECRET, now - 30);
        assert_eq!(verify_totp(RFC_SECRET, &older, now, Some(step)), None, "older than the last used");
        let newer = totp_code(RFC_SECRET, now + 30);
        assert_eq!(verify_totp(RFC_SECRET, &newer, now, Some(step)), Some(step + 1));
    }

    #[test]
    fn verify_handles_extreme_times() {
        let code = totp_code(RFC_SECRET, u64::MAX);
        assert!(verify_totp(RFC_SECRET, &code, u64::MAX, None).is_some());
    }
}
