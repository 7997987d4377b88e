//! OpenID Connect ID-token verification and publisher matching for trusted publishing.
//!
//! The flow follows PyPI and the OpenSSF "Trusted Publishers for All Package Repositories"
//! guidance: read `iss` from the unverified token only to choose a provider ([`peek_issuer`]),
//! verify the signature against that provider's JWKS and check the registered claims
//! ([`verify_id_token`]), refuse risky triggers ([`risky_trigger`]), then match the claims against
//! a stored trust policy ([`match_publisher`]). Replay protection needs state, so the caller keeps
//! the `jti` cache; this module only insists that `jti` is there.
//!
//! Nothing here reads the clock or the network: the JWKS and the time are arguments.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest token accepted, in bytes. Real ID tokens are 1 to 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Values copied from a token into an error message are cut to this many characters.
const MAX_ECHO_CHARS: usize = 200;

/// Why an ID token was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Not a well-formed JWS compact token, or a claim has the wrong type.
    #[error("malformed ID token: {0}")]
    Malformed(String),
    /// The header names an algorithm outside the allow-list (including `none` and HMAC).
    #[error("ID token algorithm {0:?} is not allowed")]
    UnsupportedAlgorithm(String),
    /// No key in the provider's key set matches the token.
    #[error("no signing key found: {0}")]
    UnknownKey(String),
    /// The key exists but cannot verify this token (wrong type, curve, use or algorithm).
    #[error("signing key cannot verify this token: {0}")]
    UnusableKey(String),
    /// The signature does not verify.
    #[error("ID token signature is invalid")]
    BadSignature,
    /// `iss` is not the provider's issuer.
    #[error("ID token issuer is {got:?}, expected {expected:?}")]
    WrongIssuer {
        /// The provider's issuer.
        expected: String,
        /// The token's `iss`.
        got: String,
    },
    /// `aud` does not name this service.
    #[error("ID token audience does not include this service")]
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("ID token has expired")]
    Expired,
    /// `nbf` is still in the future (beyond the leeway).
    #[error("ID token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("ID token was issued in the future")]
    IssuedInFuture,
    /// A required claim is absent or empty.
    #[error("ID token is missing the {0:?} claim")]
    MissingClaim(&'static str),
}

/// The signature algorithms accepted. Never HMAC (the JWKS is public, so a "shared secret" would
/// be too) and never `none`.
const ALLOWED_ALGORITHMS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("PS256", Algorithm::PS256),
];

/// The three parts of a compact JWS, after the size check.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
}

fn split(jwt: &str) -> Result<Parts<'_>, OidcError> {
    if jwt.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::Malformed(format!("token is longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = jwt.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(_signature), None) => Ok(Parts { header, payload }),
        _ => Err(OidcError::Malformed("expected three dot-separated parts".to_owned())),
    }
}

fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| OidcError::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed(format!("{what} is not a JSON object")))
}

fn optional_str<'a>(map: &'a Map<String, Value>, name: &'static str, what: &str) -> Result<Option<&'a str>, OidcError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(OidcError::Malformed(format!("{what} {name:?} is not a string"))),
    }
}

/// Cuts a value taken from a token before it goes into an error message.
fn echo(s: &str) -> String {
    s.chars().take(MAX_ECHO_CHARS).collect()
}

/// Reads `iss` from the payload WITHOUT verifying anything, to choose the provider whose keys
/// will verify the token. Never trust the result for anything else.
pub fn peek_issuer(jwt: &str) -> Result<String, OidcError> {
    let payload = decode_json_object(split(jwt)?.payload, "payload")?;
    optional_str(&payload, "iss", "claim")?.map(str::to_owned).ok_or(OidcError::MissingClaim("iss"))
}

/// Reads `kid` from the header without verifying anything.
pub fn peek_kid(jwt: &str) -> Result<Option<String>, OidcError> {
    let header = decode_json_object(split(jwt)?.header, "header")?;
    Ok(optional_str(&header, "kid", "header")?.map(str::to_owned))
}

/// Verifies an ID token's signature with `jwks` and its registered claims at time `now_unix`,
/// and returns all of its claims.
///
/// Checks, in order: the algorithm is on the allow-list; a key with the token's `kid` exists (a
/// token without `kid` is accepted only when the set has exactly one key) and suits the
/// algorithm; the signature; `iss` equals `issuer`; `aud` is or contains `audience`; `exp` is
/// present and `now < exp + leeway`; `nbf`, if present, is at most `now + leeway`; `iat` is
/// present and at most `now + leeway`; `jti` is a non-empty string.
pub fn verify_id_token(
    jwt: &str,
    jwks: &JwkSet,
    issuer: &str,
    audience: &str,
    now_unix: u64,
    leeway_secs: u64,
) -> Result<Map<String, Value>, OidcError> {
    let parts = split(jwt)?;
    let header = decode_json_object(parts.header, "header")?;
    let alg_name = optional_str(&header, "alg", "header")?.ok_or_else(|| OidcError::Malformed("header has no \"alg\"".to_owned()))?;
    let alg = ALLOWED_ALGORITHMS
        .iter()
        .find(|(name, _)| *name == alg_name)
        .map(|(_, alg)| *alg)
        .ok_or_else(|| OidcError::UnsupportedAlgorithm(echo(alg_name)))?;
    // RFC 7515 section 4.1.11: extensions marked critical must be understood, and none are.
    if header.contains_key("crit") {
        return Err(OidcError::Malformed("header has critical extensions".to_owned()));
    }
    let jwk = find_key(jwks, optional_str(&header, "kid", "header")?)?;
    let key = decoding_key(jwk, alg)?;

    // jsonwebtoken checks the signature only: the time checks would read the system clock, so
    // they are done below against `now_unix` instead.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &validation).map_err(from_jwt_error)?.claims;

    check_claims(&claims, issuer, audience, now_unix, leeway_secs)?;
    Ok(claims)
}

fn find_key<'a>(jwks: &'a JwkSet, kid: Option<&str>) -> Result<&'a Jwk, OidcError> {
    match kid {
        Some(kid) => jwks.find(kid).ok_or_else(|| OidcError::UnknownKey(format!("no key with kid {:?}", echo(kid)))),
        None => match jwks.keys.as_slice() {
            [only] => Ok(only),
            keys => Err(OidcError::UnknownKey(format!("token has no kid and the key set has {} keys", keys.len()))),
        },
    }
}

fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, OidcError> {
    if let Some(key_use) = &jwk.common.public_key_use
        && *key_use != PublicKeyUse::Signature
    {
        return Err(OidcError::UnusableKey("key is not for signatures".to_owned()));
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg != key_algorithm(alg)
    {
        return Err(OidcError::UnusableKey(format!("key is for {key_alg:?}, token uses {alg:?}")));
    }
    let suitable = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => ec.curve == EllipticCurve::P384,
        _ => false,
    };
    if !suitable {
        return Err(OidcError::UnusableKey(format!("key type does not match {alg:?}")));
    }
    DecodingKey::from_jwk(jwk).map_err(|_| OidcError::UnusableKey("key parameters are invalid".to_owned()))
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::RS384 => KeyAlgorithm::RS384,
        Algorithm::RS512 => KeyAlgorithm::RS512,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::ES384 => KeyAlgorithm::ES384,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        // Not reachable for allow-listed algorithms; a value no key carries keeps it fail-closed.
        _ => KeyAlgorithm::UNKNOWN_ALGORITHM,
    }
}

fn from_jwt_error(err: jsonwebtoken::errors::Error) -> OidcError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => OidcError::BadSignature,
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            OidcError::UnusableKey("key parameters are invalid".to_owned())
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            OidcError::UnusableKey("key does not support the token's algorithm".to_owned())
        }
        ErrorKind::Base64(_) => OidcError::Malformed("a part is not base64url".to_owned()),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => OidcError::Malformed("a part is not a JSON object".to_owned()),
        _ => OidcError::Malformed("token could not be verified".to_owned()),
    }
}

/// Reads a NumericDate claim as whole seconds. Fractions are allowed by RFC 7519 and dropped.
fn numeric_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i128>, OidcError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                Ok(Some(i128::from(u)))
            } else {
                match n.as_f64() {
                    // Saturating float-to-int conversion; the range checks below stay meaningful.
                    Some(f) if f.is_finite() => Ok(Some(f.floor() as i128)),
                    _ => Err(OidcError::Malformed(format!("claim {name:?} is not a number"))),
                }
            }
        }
        Some(_) => Err(OidcError::Malformed(format!("claim {name:?} is not a number"))),
    }
}

fn check_claims(claims: &Map<String, Value>, issuer: &str, audience: &str, now_unix: u64, leeway_secs: u64) -> Result<(), OidcError> {
    let iss = optional_str(claims, "iss", "claim")?.ok_or(OidcError::MissingClaim("iss"))?;
    if iss != issuer {
        return Err(OidcError::WrongIssuer { expected: issuer.to_owned(), got: echo(iss) });
    }

    let audience_ok = match claims.get("aud") {
        None => return Err(OidcError::MissingClaim("aud")),
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
        Some(_) => return Err(OidcError::Malformed("claim \"aud\" is not a string or an array".to_owned())),
    };
    if !audience_ok {
        return Err(OidcError::WrongAudience);
    }

    let now = i128::from(now_unix);
    let leeway = i128::from(leeway_secs);
    let exp = numeric_claim(claims, "exp")?.ok_or(OidcError::MissingClaim("exp"))?;
    if now >= exp + leeway {
        return Err(OidcError::Expired);
    }
    if let Some(nbf) = numeric_claim(claims, "nbf")?
        && now + leeway < nbf
    {
        return Err(OidcError::NotYetValid);
    }
    let iat = numeric_claim(claims, "iat")?.ok_or(OidcError::MissingClaim("iat"))?;
    if iat > now + leeway {
        return Err(OidcError::IssuedInFuture);
    }

    match optional_str(claims, "jti", "claim")? {
        Some(jti) if !jti.is_empty() => Ok(()),
        _ => Err(OidcError::MissingClaim("jti")),
    }
}

/// A trust policy: which CI identity may publish to a project.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PublisherSpec {
    /// A GitHub Actions workflow, matched as PyPI's `GitHubPublisher` does.
    Github {
        /// Repository owner (user or organization), case-insensitive.
        owner: String,
        /// Repository name, case-insensitive.
        repository: String,
        /// Workflow file name under `.github/workflows/`, e.g. `release.yml`; exact.
        workflow: String,
        /// GitHub environment required, case-insensitive; `None` accepts any or none.
        environment: Option<String>,
        /// Immutable owner id, bound on first use to defeat account resurrection.
        owner_id: Option<String>,
        /// Immutable repository id, bound on first use.
        repository_id: Option<String>,
    },
    /// A GitLab CI/CD pipeline, matched as PyPI's `GitLabPublisher` does.
    Gitlab {
        /// Group and subgroups, e.g. `group/sub`; case-insensitive.
        namespace: String,
        /// Project name, case-insensitive.
        project: String,
        /// Path of the top-level CI file in the repository, e.g. `.gitlab-ci.yml`; exact.
        ci_config_path: String,
        /// GitLab environment required, case-insensitive; `None` accepts any or none.
        environment: Option<String>,
    },
    /// Any other issuer, matched claim by claim.
    Custom {
        /// The issuer URL (the caller checks it against `iss` when choosing the JWKS).
        issuer: String,
        /// Claims that must be present with exactly these values.
        claims: BTreeMap<String, String>,
    },
}

/// A claim that did not satisfy a trust policy. Claims are not secret, so the values are shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim {claim:?} does not match: expected {expected}, got {}", got.as_deref().map_or_else(|| "nothing".to_owned(), |g| format!("{g:?}")))]
pub struct ClaimMismatch {
    /// The claim's name.
    pub claim: String,
    /// What the policy requires, in words.
    pub expected: String,
    /// The token's value, or `None` if the claim is absent or not a scalar.
    pub got: Option<String>,
}

impl ClaimMismatch {
    fn new(claim: &str, expected: String, got: Option<&str>) -> Self {
        Self { claim: claim.to_owned(), expected, got: got.map(echo) }
    }
}

/// A claim as text: strings as they are, booleans and numbers as their JSON text; arrays,
/// objects and `null` have no text.
fn claim_text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    match claims.get(name)? {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        v @ (Value::Bool(_) | Value::Number(_)) => Some(std::borrow::Cow::Owned(v.to_string())),
        _ => None,
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Requires `claim` to equal `expected`, ignoring case when `ignore_case`.
fn require(claims: &Map<String, Value>, claim: &str, expected: &str, ignore_case: bool) -> Result<(), ClaimMismatch> {
    let got = claim_text(claims, claim);
    let ok = got.as_deref().is_some_and(|g| if ignore_case { eq_ignore_case(g, expected) } else { g == expected });
    if ok {
        return Ok(());
    }
    let description = if ignore_case { format!("{expected:?} (any case)") } else { format!("{expected:?}") };
    Err(ClaimMismatch::new(claim, description, got.as_deref()))
}

fn require_environment(claims: &Map<String, Value>, environment: Option<&str>) -> Result<(), ClaimMismatch> {
    match environment {
        Some(environment) => require(claims, "environment", environment, true),
        None => Ok(()),
    }
}

/// Strips `prefix` from the start of `s`, comparing case-insensitively.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    eq_ignore_case(head, prefix).then(|| &s[prefix.len()..])
}

/// Checks verified claims against a trust policy. Call [`risky_trigger`] as well: a
/// `pull_request_target` run matches its repository's policy but must still be refused.
pub fn match_publisher(spec: &PublisherSpec, claims: &Map<String, Value>) -> Result<(), ClaimMismatch> {
    match spec {
        PublisherSpec::Github { owner, repository, workflow, environment, owner_id, repository_id } => {
            require(claims, "repository", &format!("{owner}/{repository}"), true)?;
            require(claims, "repository_owner", owner, true)?;
            if let Some(owner_id) = owner_id {
                require(claims, "repository_owner_id", owner_id, false)?;
            }
            if let Some(repository_id) = repository_id {
                require(claims, "repository_id", repository_id, false)?;
            }
            check_job_workflow_ref(claims, owner, repository, workflow)?;
            require_environment(claims, environment.as_deref())?;
            if claim_text(claims, "event_name").is_none_or(|e| e.is_empty()) {
                return Err(ClaimMismatch::new("event_name", "a GitHub event name".to_owned(), None));
            }
            Ok(())
        }
        PublisherSpec::Gitlab { namespace, project, ci_config_path, environment } => {
            require(claims, "project_path", &format!("{namespace}/{project}"), true)?;
            check_ci_config_ref_uri(claims, namespace, project, ci_config_path)?;
            require_environment(claims, environment.as_deref())
        }
        PublisherSpec::Custom { issuer, claims: expected } => {
            // verify_id_token already checked `iss`; checking it again keeps a policy from
            // matching a token that was verified against another provider.
            require(claims, "iss", issuer, false)?;
            expected.iter().try_for_each(|(name, value)| require(claims, name, value, false))
        }
    }
}

/// `job_workflow_ref` is `{owner}/{repo}/.github/workflows/{file}@{ref}`: owner and repository in
/// any case, the workflow file exactly, and some ref.
fn check_job_workflow_ref(claims: &Map<String, Value>, owner: &str, repository: &str, workflow: &str) -> Result<(), ClaimMismatch> {
    let repo_prefix = format!("{owner}/{repository}/");
    let workflow_part = format!(".github/workflows/{workflow}@");
    let got = claim_text(claims, "job_workflow_ref");
    let ok = got
        .as_deref()
        .and_then(|g| strip_prefix_ignore_case(g, &repo_prefix))
        .and_then(|rest| rest.strip_prefix(&workflow_part))
        .is_some_and(|git_ref| !git_ref.is_empty());
    if ok {
        return Ok(());
    }
    Err(ClaimMismatch::new("job_workflow_ref", format!("\"{repo_prefix}{workflow_part}<ref>\""), got.as_deref()))
}

/// `ci_config_ref_uri` is `{host}/{namespace}/{project}//{path}@{ref}`: any host, namespace and
/// project in any case, the CI file path exactly, and some ref.
fn check_ci_config_ref_uri(claims: &Map<String, Value>, namespace: &str, project: &str, ci_config_path: &str) -> Result<(), ClaimMismatch> {
    let project_part = format!("{namespace}/{project}//");
    let path_part = format!("{ci_config_path}@");
    let got = claim_text(claims, "ci_config_ref_uri");
    let ok = got
        .as_deref()
        .and_then(|g| g.split_once('/'))
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, rest)| strip_prefix_ignore_case(rest, &project_part))
        .and_then(|rest| rest.strip_prefix(&path_part))
        .is_some_and(|git_ref| !git_ref.is_empty());
    if ok {
        return Ok(());
    }
    Err(ClaimMismatch::new("ci_config_ref_uri", format!("\"<host>/{project_part}{path_part}<ref>\""), got.as_deref()))
}

/// The trigger PyPI refuses to publish from, if the claims show it: `pull_request_target` runs
/// with the target repository's identity on code a pull request can influence.
pub fn risky_trigger(claims: &Map<String, Value>) -> Option<String> {
    (claims.get("event_name")?.as_str()? == "pull_request_target").then(|| "pull_request_target".to_owned())
}

/// The immutable GitHub ids (`repository_owner_id`, `repository_id`) from verified claims, to
/// bind a publisher to them on first use.
pub fn github_ids(claims: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let id = |name| claim_text(claims, name).map(|s| s.into_owned()).filter(|s| !s.is_empty());
    (id("repository_owner_id"), id("repository_id"))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    const AUDIENCE: &str = "pypi";
    const NOW: u64 = 1_750_000_000;
    const LEEWAY: u64 = 60;

    struct TestKey {
        kid: String,
        alg: Algorithm,
        pkcs8: Vec<u8>,
        jwk: Jwk,
    }

    impl TestKey {
        fn p256(kid: &str) -> Self {
            Self::generate(kid, Algorithm::ES256)
        }

        fn generate(kid: &str, alg: Algorithm) -> Self {
            let (signing, curve, coordinate) = match alg {
                Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
                _ => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
            };
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).unwrap().as_ref().to_vec();
            let pair = EcdsaKeyPair::from_pkcs8(signing, &pkcs8).unwrap();
            // An uncompressed point: 0x04, then x, then y.
            let point = pair.public_key().as_ref();
            let jwk = serde_json::from_value(json!({
                "kty": "EC",
                "crv": curve,
                "x": URL_SAFE_NO_PAD.encode(&point[1..=coordinate]),
                "y": URL_SAFE_NO_PAD.encode(&point[1 + coordinate..]),
                "kid": kid,
                "use": "sig",
                "alg": format!("{alg:?}"),
            }))
            .unwrap();
            Self { kid: kid.to_owned(), alg, pkcs8, jwk }
        }

        fn sign(&self, claims: &Value) -> String {
            let mut header = Header::new(self.alg);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
        }

        fn set(&self) -> JwkSet {
            JwkSet { keys: vec![self.jwk.clone()] }
        }
    }

    fn github_claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": NOW - 10,
            "nbf": NOW - 10,
            "exp": NOW + 300,
            "jti": "6f1c6e6a-0b8f-4a53-9b4a-2b3c4d5e6f70",
            "sub": "repo:Octo-Org/Hello-World:environment:release",
            "repository": "Octo-Org/Hello-World",
            "repository_owner": "Octo-Org",
            "repository_owner_id": "1234",
            "repository_id": "5678",
            "job_workflow_ref": "Octo-Org/Hello-World/.github/workflows/release.yml@refs/tags/v1.0",
            "ref": "refs/tags/v1.0",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "environment": "release",
            "event_name": "push",
        })
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn verify(jwt: &str, jwks: &JwkSet) -> Result<Map<String, Value>, OidcError> {
        verify_id_token(jwt, jwks, ISSUER, AUDIENCE, NOW, LEEWAY)
    }

    /// A token with this header and payload and a junk signature.
    fn unsigned(header: Value, payload: &Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.{}", part(&header), part(payload), URL_SAFE_NO_PAD.encode(b"sig"))
    }

    #[test]
    fn valid_token_returns_all_claims() {
        let key = TestKey::p256("k1");
        let claims = verify(&key.sign(&github_claims()), &key.set()).unwrap();
        assert_eq!(Value::Object(claims), github_claims());
    }

    #[test]
    fn es384_and_audience_arrays_are_accepted() {
        let key = TestKey::generate("k384", Algorithm::ES384);
        let token = key.sign(&with(github_claims(), json!({"aud": ["other", AUDIENCE]})));
        assert!(verify(&token, &key.set()).is_ok());
    }

    #[test]
    fn key_is_chosen_by_kid() {
        let k1 = TestKey::p256("k1");
        let k2 = TestKey::p256("k2");
        let jwks = JwkSet { keys: vec![k1.jwk.clone(), k2.jwk.clone()] };
        assert!(verify(&k2.sign(&github_claims()), &jwks).is_ok());
        assert!(verify(&k1.sign(&github_claims()), &jwks).is_ok());
    }

    #[test]
    fn unknown_kid_is_refused() {
        let key = TestKey::p256("k1");
        let other = TestKey::p256("k2");
        let err = verify(&other.sign(&github_claims()), &key.set()).unwrap_err();
        assert_eq!(err, OidcError::UnknownKey("no key with kid \"k2\"".to_owned()));
        assert_eq!(err.to_string(), "no signing key found: no key with kid \"k2\"");
        assert!(matches!(verify(&key.sign(&github_claims()), &JwkSet { keys: vec![] }), Err(OidcError::UnknownKey(_))));
    }

    #[test]
    fn missing_kid_uses_the_only_key() {
        let key = TestKey::p256("k1");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &github_claims(), &EncodingKey::from_ec_der(&key.pkcs8)).unwrap();
        assert!(verify(&token, &key.set()).is_ok());
        let two = JwkSet { keys: vec![key.jwk.clone(), TestKey::p256("k2").jwk] };
        assert_eq!(verify(&token, &two).unwrap_err(), OidcError::UnknownKey("token has no kid and the key set has 2 keys".to_owned()));
    }

    #[test]
    fn signature_by_another_key_with_the_same_kid_is_refused() {
        let real = TestKey::p256("k1");
        let forger = TestKey::p256("k1");
        assert_eq!(verify(&forger.sign(&github_claims()), &real.set()).unwrap_err(), OidcError::BadSignature);
    }

    #[test]
    fn tampered_payload_is_refused() {
        let key = TestKey::p256("k1");
        let token = key.sign(&github_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(github_claims(), json!({"repository": "evil/repo"}))).unwrap());
        let forged = format!("{}.{}.{}", parts[0], evil, parts[2]);
        assert_eq!(verify(&forged, &key.set()).unwrap_err(), OidcError::BadSignature);
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let key = TestKey::p256("k1");
        let token = key.sign(&with(github_claims(), json!({"iss": "https://evil.example"})));
        let err = verify(&token, &key.set()).unwrap_err();
        assert_eq!(err, OidcError::WrongIssuer { expected: ISSUER.to_owned(), got: "https://evil.example".to_owned() });
        // Exact comparison: no trailing slash, no case folding.
        let token = key.sign(&with(github_claims(), json!({"iss": format!("{ISSUER}/")})));
        assert!(matches!(verify(&token, &key.set()), Err(OidcError::WrongIssuer { .. })));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let key = TestKey::p256("k1");
        for aud in [json!("testpypi"), json!(["a", "b"]), json!([]), json!("PyPI")] {
            let token = key.sign(&with(github_claims(), json!({ "aud": aud })));
            assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::WrongAudience, "{aud}");
        }
        let token = key.sign(&with(github_claims(), json!({"aud": null})));
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::MissingClaim("aud"));
        let token = key.sign(&with(github_claims(), json!({"aud": 7})));
        assert!(matches!(verify(&token, &key.set()), Err(OidcError::Malformed(_))));
    }

    #[test]
    fn expiry_is_checked_against_the_given_time() {
        let key = TestKey::p256("k1");
        let token = key.sign(&with(github_claims(), json!({"exp": NOW - LEEWAY})));
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::Expired);
        // Within the leeway.
        let token = key.sign(&with(github_claims(), json!({"exp": NOW - LEEWAY + 1})));
        assert!(verify(&token, &key.set()).is_ok());
        // A valid token is refused at a later time.
        let token = key.sign(&github_claims());
        assert_eq!(verify_id_token(&token, &key.set(), ISSUER, AUDIENCE, NOW + 360, LEEWAY).unwrap_err(), OidcError::Expired);
        let token = key.sign(&with(github_claims(), json!({"exp": null})));
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::MissingClaim("exp"));
        let token = key.sign(&with(github_claims(), json!({"exp": "tomorrow"})));
        assert!(matches!(verify(&token, &key.set()), Err(OidcError::Malformed(_))));
    }

    #[test]
    fn not_before_is_checked() {
        let key = TestKey::p256("k1");
        let token = key.sign(&with(github_claims(), json!({"nbf": NOW + LEEWAY + 1})));
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::NotYetValid);
        let token = key.sign(&with(github_claims(), json!({"nbf": NOW + LEEWAY})));
        assert!(verify(&token, &key.set()).is_ok());
        // nbf is optional.
        let token = key.sign(&with(github_claims(), json!({"nbf": null})));
        assert!(verify(&token, &key.set()).is_ok());
    }

    #[test]
    fn issued_in_the_future_is_refused() {
        let key = TestKey::p256("k1");
        let token = key.sign(&with(github_claims(), json!({"iat": NOW + LEEWAY + 1, "nbf": null})));
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::IssuedInFuture);
        let token = key.sign(&with(github_claims(), json!({"iat": null})));
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::MissingClaim("iat"));
        // Fractional NumericDates are allowed.
        let token = key.sign(&with(github_claims(), json!({"iat": (NOW as f64) - 0.5})));
        assert!(verify(&token, &key.set()).is_ok());
    }

    #[test]
    fn jti_is_required() {
        let key = TestKey::p256("k1");
        for jti in [json!(null), json!("")] {
            let token = key.sign(&with(github_claims(), json!({ "jti": jti })));
            assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::MissingClaim("jti"), "{jti}");
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let key = TestKey::p256("k1");
        let token = unsigned(json!({"alg": "none", "kid": "k1"}), &github_claims());
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::UnsupportedAlgorithm("none".to_owned()));
        let bare = format!("{}.", &token[..token.rfind('.').unwrap()]);
        assert_eq!(verify(&bare, &key.set()).unwrap_err(), OidcError::UnsupportedAlgorithm("none".to_owned()));
    }

    #[test]
    fn hmac_is_refused_even_with_the_public_key_as_secret() {
        let key = TestKey::p256("k1");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        let secret = serde_json::to_vec(&key.jwk).unwrap();
        let token = jsonwebtoken::encode(&header, &github_claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::UnsupportedAlgorithm("HS256".to_owned()));
        // An `oct` key in the set does not help either.
        let oct: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "k1"})).unwrap();
        assert!(matches!(verify(&token, &JwkSet { keys: vec![oct] }), Err(OidcError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let key = TestKey::p256("k1");
        for alg in ["PS384", "PS512", "EdDSA", "HS512", "", "RS1"] {
            let token = unsigned(json!({"alg": alg, "kid": "k1"}), &github_claims());
            assert_eq!(verify(&token, &key.set()).unwrap_err(), OidcError::UnsupportedAlgorithm(alg.to_owned()), "{alg}");
        }
    }

    #[test]
    fn key_must_suit_the_algorithm() {
        let key = TestKey::p256("k1");
        let token = key.sign(&github_claims());
        // An RSA key under the token's kid.
        let rsa: Jwk = serde_json::from_value(json!({"kty": "RSA", "n": "sXch", "e": "AQAB", "kid": "k1"})).unwrap();
        assert!(matches!(verify(&token, &JwkSet { keys: vec![rsa] }), Err(OidcError::UnusableKey(_))));
        // A P-384 key for an ES256 token.
        let mut p384 = TestKey::generate("k1", Algorithm::ES384).jwk;
        p384.common.key_algorithm = None;
        assert!(matches!(verify(&token, &JwkSet { keys: vec![p384] }), Err(OidcError::UnusableKey(_))));
        // A key declared for another algorithm or for encryption.
        let mut declared = key.jwk.clone();
        declared.common.key_algorithm = Some(KeyAlgorithm::ES384);
        assert!(matches!(verify(&token, &JwkSet { keys: vec![declared] }), Err(OidcError::UnusableKey(_))));
        let mut encryption = key.jwk.clone();
        encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(matches!(verify(&token, &JwkSet { keys: vec![encryption] }), Err(OidcError::UnusableKey(_))));
        // Undeclared `alg` and `use` are fine.
        let mut bare = key.jwk.clone();
        bare.common.key_algorithm = None;
        bare.common.public_key_use = None;
        assert!(verify(&token, &JwkSet { keys: vec![bare] }).is_ok());
    }

    #[test]
    fn critical_headers_are_refused() {
        let key = TestKey::p256("k1");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".to_owned());
        header.crit = Some(vec!["exp".to_owned()]);
        let token = jsonwebtoken::encode(&header, &github_claims(), &EncodingKey::from_ec_der(&key.pkcs8)).unwrap();
        assert!(matches!(verify(&token, &key.set()), Err(OidcError::Malformed(_))));
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_them() {
        let key = TestKey::p256("k1");
        let secretish = "eyJzZWNyZXQiOiJkb250LWxlYWstbWUifQ";
        for token in [
            String::new(),
            secretish.to_owned(),
            format!("{secretish}.{secretish}"),
            format!("{secretish}.{secretish}.{secretish}.x"),
            format!("!!!.{secretish}.x"),
            format!("{}.{secretish}.x", URL_SAFE_NO_PAD.encode("[1]")),
            "a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            let err = verify(&token, &key.set()).unwrap_err();
            assert!(matches!(err, OidcError::Malformed(_)), "{err}");
            assert!(!err.to_string().contains(secretish), "{err}");
        }
    }

    #[test]
    fn errors_never_contain_the_token() {
        let key = TestKey::p256("k1");
        let forger = TestKey::p256("k1");
        let token = forger.sign(&github_claims());
        for err in [verify(&token, &key.set()).unwrap_err(), verify_id_token(&token, &forger.set(), "x", AUDIENCE, NOW, 0).unwrap_err()] {
            let message = err.to_string();
            for part in token.split('.') {
                assert!(!message.contains(part), "{message}");
            }
        }
    }

    #[test]
    fn peek_reads_unverified_values() {
        let key = TestKey::p256("k1");
        let token = key.sign(&github_claims());
        assert_eq!(peek_issuer(&token).unwrap(), ISSUER);
        assert_eq!(peek_kid(&token).unwrap().as_deref(), Some("k1"));
        let no_kid = unsigned(json!({"alg": "ES256"}), &json!({}));
        assert_eq!(peek_kid(&no_kid).unwrap(), None);
        assert_eq!(peek_issuer(&no_kid).unwrap_err(), OidcError::MissingClaim("iss"));
        let odd = unsigned(json!({"alg": "ES256", "kid": 5}), &json!({"iss": 5}));
        assert!(matches!(peek_kid(&odd), Err(OidcError::Malformed(_))));
        assert!(matches!(peek_issuer(&odd), Err(OidcError::Malformed(_))));
        assert!(matches!(peek_issuer("not a token"), Err(OidcError::Malformed(_))));
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn github_spec() -> PublisherSpec {
        PublisherSpec::Github {
            owner: "octo-org".to_owned(),
            repository: "hello-world".to_owned(),
            workflow: "release.yml".to_owned(),
            environment: None,
            owner_id: Some("1234".to_owned()),
            repository_id: None,
        }
    }

    fn mismatch(spec: &PublisherSpec, value: Value) -> String {
        match_publisher(spec, &claims(value)).unwrap_err().claim
    }

    #[test]
    fn github_publisher_matches_case_insensitively() {
        assert_eq!(match_publisher(&github_spec(), &claims(github_claims())), Ok(()));
        let PublisherSpec::Github { owner, repository, workflow, owner_id, .. } = github_spec() else { unreachable!() };
        let exact = PublisherSpec::Github {
            owner,
            repository,
            workflow,
            environment: Some("RELEASE".to_owned()),
            owner_id,
            repository_id: Some("5678".to_owned()),
        };
        assert_eq!(match_publisher(&exact, &claims(github_claims())), Ok(()));
    }

    #[test]
    fn github_publisher_mismatches() {
        let spec = github_spec();
        for (changes, claim) in [
            (json!({"repository": "octo-org/other"}), "repository"),
            (json!({"repository": null}), "repository"),
            (json!({"repository_owner": "someone"}), "repository_owner"),
            (json!({"repository_owner_id": "9999"}), "repository_owner_id"),
            (json!({"repository_owner_id": null}), "repository_owner_id"),
            (json!({"job_workflow_ref": "Octo-Org/Hello-World/.github/workflows/other.yml@refs/heads/main"}), "job_workflow_ref"),
            (json!({"job_workflow_ref": "Octo-Org/Hello-World/.github/workflows/Release.yml@refs/heads/main"}), "job_workflow_ref"),
            (json!({"job_workflow_ref": "Octo-Org/Hello-World/.github/workflows/release.yml@"}), "job_workflow_ref"),
            (json!({"job_workflow_ref": "Octo-Org/Hello-World/.github/workflows/release.yml"}), "job_workflow_ref"),
            (json!({"job_workflow_ref": "evil/repo/.github/workflows/release.yml@refs/heads/main"}), "job_workflow_ref"),
            (json!({"job_workflow_ref": "Octo-Org/Hello-World/.github/workflows/release.yml.evil@x"}), "job_workflow_ref"),
            (json!({"event_name": null}), "event_name"),
            (json!({"event_name": ""}), "event_name"),
        ] {
            assert_eq!(mismatch(&spec, with(github_claims(), changes.clone())), claim, "{changes}");
        }
    }

    #[test]
    fn github_environment_rules() {
        let PublisherSpec::Github { owner, repository, workflow, .. } = github_spec() else { unreachable!() };
        let spec = PublisherSpec::Github {
            owner,
            repository,
            workflow,
            environment: Some("release".to_owned()),
            owner_id: None,
            repository_id: None,
        };
        assert_eq!(mismatch(&spec, with(github_claims(), json!({"environment": "staging"}))), "environment");
        assert_eq!(mismatch(&spec, with(github_claims(), json!({"environment": null}))), "environment");
        // Without an environment in the policy, any environment or none is accepted.
        assert!(match_publisher(&github_spec(), &claims(with(github_claims(), json!({"environment": null})))).is_ok());
        assert!(match_publisher(&github_spec(), &claims(with(github_claims(), json!({"environment": "anything"})))).is_ok());
    }

    #[test]
    fn github_ids_bind_when_set() {
        let PublisherSpec::Github { owner, repository, workflow, .. } = github_spec() else { unreachable!() };
        let spec = PublisherSpec::Github {
            owner,
            repository,
            workflow,
            environment: None,
            owner_id: None,
            repository_id: Some("5678".to_owned()),
        };
        assert!(match_publisher(&spec, &claims(github_claims())).is_ok());
        assert_eq!(mismatch(&spec, with(github_claims(), json!({"repository_id": "5679"}))), "repository_id");
        // Numbers compare by their JSON text.
        assert!(match_publisher(&spec, &claims(with(github_claims(), json!({"repository_id": 5678})))).is_ok());
        assert_eq!(github_ids(&claims(github_claims())), (Some("1234".to_owned()), Some("5678".to_owned())));
        assert_eq!(github_ids(&claims(json!({"repository_id": 42}))), (None, Some("42".to_owned())));
    }

    #[test]
    fn mismatch_message_names_the_claim_and_values() {
        let err = match_publisher(&github_spec(), &claims(with(github_claims(), json!({"repository_owner_id": "9999"})))).unwrap_err();
        assert_eq!(err.to_string(), "claim \"repository_owner_id\" does not match: expected \"1234\", got \"9999\"");
        let err = match_publisher(&github_spec(), &claims(with(github_claims(), json!({"event_name": null})))).unwrap_err();
        assert_eq!(err.to_string(), "claim \"event_name\" does not match: expected a GitHub event name, got nothing");
    }

    #[test]
    fn risky_trigger_flags_pull_request_target() {
        assert_eq!(
            risky_trigger(&claims(with(github_claims(), json!({"event_name": "pull_request_target"})))).as_deref(),
            Some("pull_request_target")
        );
        for event in ["push", "release", "workflow_dispatch", "workflow_run", "pull_request"] {
            assert_eq!(risky_trigger(&claims(with(github_claims(), json!({ "event_name": event })))), None, "{event}");
        }
        assert_eq!(risky_trigger(&Map::new()), None);
    }

    fn gitlab_claims() -> Value {
        json!({
            "iss": "https://gitlab.com",
            "aud": AUDIENCE,
            "project_path": "Group/Sub/Project",
            "ci_config_ref_uri": "gitlab.com/Group/Sub/Project//ci/release.yml@refs/tags/v1",
            "environment": "pypi",
            "sub": "project_path:Group/Sub/Project:ref_type:tag:ref:v1",
        })
    }

    fn gitlab_spec(environment: Option<&str>) -> PublisherSpec {
        PublisherSpec::Gitlab {
            namespace: "group/sub".to_owned(),
            project: "project".to_owned(),
            ci_config_path: "ci/release.yml".to_owned(),
            environment: environment.map(str::to_owned),
        }
    }

    #[test]
    fn gitlab_publisher() {
        assert_eq!(match_publisher(&gitlab_spec(None), &claims(gitlab_claims())), Ok(()));
        assert_eq!(match_publisher(&gitlab_spec(Some("PyPI")), &claims(gitlab_claims())), Ok(()));
        // Self-managed GitLab has another host.
        let self_managed = with(gitlab_claims(), json!({"ci_config_ref_uri": "git.example.com/group/sub/project//ci/release.yml@main"}));
        assert!(match_publisher(&gitlab_spec(None), &claims(self_managed)).is_ok());
        for (changes, claim) in [
            (json!({"project_path": "group/sub/other"}), "project_path"),
            (json!({"project_path": "group/project"}), "project_path"),
            (json!({"ci_config_ref_uri": "gitlab.com/group/sub/project//ci/other.yml@main"}), "ci_config_ref_uri"),
            (json!({"ci_config_ref_uri": "gitlab.com/group/sub/project//CI/release.yml@main"}), "ci_config_ref_uri"),
            (json!({"ci_config_ref_uri": "gitlab.com/evil/group/sub/project//ci/release.yml@main"}), "ci_config_ref_uri"),
            (json!({"ci_config_ref_uri": "/group/sub/project//ci/release.yml@main"}), "ci_config_ref_uri"),
            (json!({"ci_config_ref_uri": "gitlab.com/group/sub/project//ci/release.yml@"}), "ci_config_ref_uri"),
            (json!({"ci_config_ref_uri": null}), "ci_config_ref_uri"),
        ] {
            assert_eq!(mismatch(&gitlab_spec(None), with(gitlab_claims(), changes.clone())), claim, "{changes}");
        }
        assert_eq!(mismatch(&gitlab_spec(Some("prod")), gitlab_claims()), "environment");
    }

    #[test]
    fn custom_publisher() {
        let spec = PublisherSpec::Custom {
            issuer: "https://ci.example.com".to_owned(),
            claims: BTreeMap::from([
                ("project".to_owned(), "demo".to_owned()),
                ("protected".to_owned(), "true".to_owned()),
                ("run_number".to_owned(), "7".to_owned()),
            ]),
        };
        let good = json!({"iss": "https://ci.example.com", "project": "demo", "protected": true, "run_number": 7, "extra": [1]});
        assert_eq!(match_publisher(&spec, &claims(good.clone())), Ok(()));
        for (changes, claim) in [
            (json!({"project": "Demo"}), "project"),
            (json!({"project": null}), "project"),
            (json!({"project": ["demo"]}), "project"),
            (json!({"project": {"name": "demo"}}), "project"),
            (json!({"protected": false}), "protected"),
            (json!({"protected": "True"}), "protected"),
            (json!({"run_number": 7.0}), "run_number"),
            (json!({"iss": "https://other.example.com"}), "iss"),
        ] {
            assert_eq!(mismatch(&spec, with(good.clone(), changes.clone())), claim, "{changes}");
        }
    }

    #[test]
    fn publisher_spec_serde_shape() {
        let spec = gitlab_spec(None);
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            value,
            json!({"kind": "gitlab", "namespace": "group/sub", "project": "project", "ci_config_path": "ci/release.yml", "environment": null})
        );
        assert_eq!(serde_json::from_value::<PublisherSpec>(value).unwrap(), spec);
        assert_eq!(serde_json::to_value(github_spec()).unwrap()["kind"], "github");
    }
}
