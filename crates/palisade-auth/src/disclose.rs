//! Secret-scanning partner reports ("we found your token in a public repository"), in GitHub's
//! format.
//!
//! The partner signs the raw request body with ECDSA P-256/SHA-256 and sends the base64 of the
//! ASN.1 DER signature in a header; its public keys are PEM SubjectPublicKeyInfo documents that
//! the caller fetches and caches. The body is a JSON array of `{token, type, url, source}`.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::secret::Secret;

/// The most tokens accepted in one report.
pub const MAX_REPORT_TOKENS: usize = 1000;
/// The largest report body accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits, then 0x04) }.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
    0x07, 0x03, 0x42, 0x00, 0x04,
];
/// Length of that SubjectPublicKeyInfo: the prefix without the 0x04, then the 65-byte point.
const P256_SPKI_LEN: usize = 26 + 65;

/// Why a disclosure report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    /// The signature header is not base64.
    #[error("report signature is not valid base64")]
    SignatureEncoding,
    /// The partner's public key is not a PEM P-256 SubjectPublicKeyInfo.
    #[error("partner public key is unusable: {0}")]
    PublicKey(&'static str),
    /// The signature does not verify with that key.
    #[error("report signature does not verify")]
    BadSignature,
    /// The body is larger than [`MAX_REPORT_BYTES`].
    #[error("report is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The body lists more than [`MAX_REPORT_TOKENS`] tokens.
    #[error("report lists {count} tokens, more than the {max} accepted")]
    TooManyTokens {
        /// Tokens in the report.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not a JSON array of reports.
    #[error("report is not a JSON array of tokens: {0}")]
    Malformed(String),
}

/// Verifies the partner's signature over the raw request body.
pub fn verify_report_signature(body: &[u8], signature_b64: &str, public_key_pem: &str) -> Result<(), DisclosureError> {
    let signature = STANDARD.decode(signature_b64.trim()).map_err(|_| DisclosureError::SignatureEncoding)?;
    let spki = parse_p256_spki_pem(public_key_pem)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki).verify(body, &signature).map_err(|_| DisclosureError::BadSignature)
}

/// Decodes a `PUBLIC KEY` PEM block and checks that it holds an uncompressed P-256 point.
///
/// aws-lc-rs would also take a bare point, but insisting on the SPKI prefix means a key for
/// another curve or algorithm is refused here with a clear message.
fn parse_p256_spki_pem(pem: &str) -> Result<Vec<u8>, DisclosureError> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let start = pem.find(BEGIN).ok_or(DisclosureError::PublicKey("no BEGIN PUBLIC KEY line"))? + BEGIN.len();
    let len = pem[start..].find(END).ok_or(DisclosureError::PublicKey("no END PUBLIC KEY line"))?;
    let body: String = pem[start..start + len].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(body).map_err(|_| DisclosureError::PublicKey("PEM body is not base64"))?;
    if der.len() != P256_SPKI_LEN || !der.starts_with(&P256_SPKI_PREFIX) {
        return Err(DisclosureError::PublicKey("not an uncompressed ECDSA P-256 key"));
    }
    Ok(der)
}

/// One leaked token from a partner report. `Debug` shows the token as `Secret([redacted])`.
#[derive(Debug, Clone, Deserialize)]
pub struct DisclosedToken {
    /// The leaked token. Redacted in `Debug`.
    pub token: Secret,
    /// The partner's name for the token type, e.g. `pypi_api_token`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Where the token was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place that is (`content`, `commit`, ...).
    #[serde(default)]
    pub source: Option<String>,
}

/// Parses a report body: a JSON array of at most [`MAX_REPORT_TOKENS`] tokens.
///
/// Verify the signature first; this only parses.
pub fn parse_report(body: &[u8]) -> Result<Vec<DisclosedToken>, DisclosureError> {
    if body.len() > MAX_REPORT_BYTES {
        return Err(DisclosureError::TooLarge { max: MAX_REPORT_BYTES });
    }
    // Only the position goes into the error: serde_json's own message quotes the unexpected
    // value, which could be a token (for example a body that is a bare string).
    let tokens: Vec<DisclosedToken> = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Data | serde_json::error::Category::Io => "unexpected value",
        };
        DisclosureError::Malformed(format!("{what} at line {}, column {}", e.line(), e.column()))
    })?;
    if tokens.len() > MAX_REPORT_TOKENS {
        return Err(DisclosureError::TooManyTokens { count: tokens.len(), max: MAX_REPORT_TOKENS });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

    use super::*;

    const BODY: &[u8] =
        br#"[{"token":"pypi-AgEIcHlwaS5vcmc","type":"pypi_api_token","url":"https://github.com/o/r/blob/main/x","source":"content"}]"#;

    fn pem(der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    /// A fresh P-256 key: its PEM public key and a base64 signature over `body`.
    fn sign(body: &[u8]) -> (String, String) {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der: PublicKeyX509Der<'static> = key.public_key().as_der().unwrap();
        let signature = key.sign(&SystemRandom::new(), body).unwrap();
        (pem(der.as_ref()), STANDARD.encode(signature.as_ref()))
    }

    #[test]
    fn valid_signature_verifies() {
        let (key, signature) = sign(BODY);
        assert_eq!(verify_report_signature(BODY, &signature, &key), Ok(()));
        // Header values sometimes arrive with surrounding whitespace.
        assert_eq!(verify_report_signature(BODY, &format!(" {signature}\n"), &key), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        let (key, signature) = sign(BODY);
        let mut tampered = BODY.to_vec();
        tampered[12] ^= 1;
        assert_eq!(verify_report_signature(&tampered, &signature, &key), Err(DisclosureError::BadSignature));
        assert_eq!(verify_report_signature(b"", &signature, &key), Err(DisclosureError::BadSignature));
    }

    #[test]
    fn wrong_key_fails() {
        let (_, signature) = sign(BODY);
        let (other_key, _) = sign(BODY);
        assert_eq!(verify_report_signature(BODY, &signature, &other_key), Err(DisclosureError::BadSignature));
    }

    #[test]
    fn garbage_signature_fails() {
        let (key, _) = sign(BODY);
        assert_eq!(verify_report_signature(BODY, "not base64!!", &key), Err(DisclosureError::SignatureEncoding));
        assert_eq!(verify_report_signature(BODY, "", &key), Err(DisclosureError::BadSignature));
        assert_eq!(verify_report_signature(BODY, &STANDARD.encode([0u8; 70]), &key), Err(DisclosureError::BadSignature));
    }

    #[test]
    fn unusable_keys_are_refused() {
        let (_, signature) = sign(BODY);
        for (pem_text, why) in [
            ("", "no BEGIN PUBLIC KEY line"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n", "no END PUBLIC KEY line"),
            ("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----", "PEM body is not base64"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "not an uncompressed ECDSA P-256 key"),
        ] {
            assert_eq!(verify_report_signature(BODY, &signature, pem_text), Err(DisclosureError::PublicKey(why)), "{pem_text:?}");
        }
        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        let der: PublicKeyX509Der<'static> = p384.public_key().as_der().unwrap();
        assert_eq!(
            verify_report_signature(BODY, &signature, &pem(der.as_ref())),
            Err(DisclosureError::PublicKey("not an uncompressed ECDSA P-256 key"))
        );
    }

    #[test]
    fn github_documentation_key_parses() {
        // The example key from GitHub's secret-scanning partner documentation.
        let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsz9ugWDj5jK5ELBK42ynytbo38gP\nHzZFI03Exwz8Lh/tCfL3YxwMdLjB+bMznsanlhK0RwcGP3IDb34kQDIo3Q==\n-----END PUBLIC KEY-----";
        assert_eq!(parse_p256_spki_pem(key).unwrap().len(), P256_SPKI_LEN);
    }

    #[test]
    fn parse_report_reads_tokens() {
        let tokens = parse_report(BODY).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].token.expose(), "pypi-AgEIcHlwaS5vcmc");
        assert_eq!(tokens[0].r#type, "pypi_api_token");
        assert_eq!(tokens[0].url.as_deref(), Some("https://github.com/o/r/blob/main/x"));
        assert_eq!(tokens[0].source.as_deref(), Some("content"));
        let debug = format!("{tokens:?}");
        assert!(!debug.contains("AgEI"), "{debug}");
        assert!(debug.contains("Secret([redacted])"), "{debug}");
    }

    #[test]
    fn parse_report_optional_fields_and_extras() {
        let tokens = parse_report(br#"[{"token":"t","type":"x","extra":1}]"#).unwrap();
        assert_eq!(tokens[0].url, None);
        assert_eq!(tokens[0].source, None);
        assert!(parse_report(b"[]").unwrap().is_empty());
    }

    #[test]
    fn parse_report_refuses_bad_bodies() {
        for body in [&b""[..], b"{}", b"[{\"type\":\"x\"}]", b"[{\"token\":1,\"type\":\"x\"}]", b"[", b"\"pypi-secret\""] {
            let err = parse_report(body).unwrap_err();
            assert!(matches!(err, DisclosureError::Malformed(_)), "{err}");
            assert!(!err.to_string().contains("pypi-secret"), "{err}");
        }
    }

    #[test]
    fn parse_report_limits() {
        let entry = r#"{"token":"t","type":"x"}"#;
        let many = format!("[{}]", vec![entry; MAX_REPORT_TOKENS].join(","));
        assert_eq!(parse_report(many.as_bytes()).unwrap().len(), MAX_REPORT_TOKENS);
        let too_many = format!("[{}]", vec![entry; MAX_REPORT_TOKENS + 1].join(","));
        assert_eq!(
            parse_report(too_many.as_bytes()).unwrap_err(),
            DisclosureError::TooManyTokens { count: MAX_REPORT_TOKENS + 1, max: MAX_REPORT_TOKENS }
        );
        let huge = vec![b' '; MAX_REPORT_BYTES + 1];
        assert_eq!(parse_report(&huge).unwrap_err(), DisclosureError::TooLarge { max: MAX_REPORT_BYTES });
    }
}
