//! Verification of one attestation against an uploaded file and its expected signer, and the
//! rules for the set of attestations sent with one upload.

use std::fmt;

use palisade_dist::DistFilename;
use serde_json::Value;
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::{Bundle, Sha256Hash};
use sigstore_verify::{Error as SigstoreError, VerificationPolicy};

use crate::identity::{Expected, Signer};
use crate::object::{self, PredicateType};
use crate::{Refusal, Stage};

/// A Sigstore trust root: the Fulcio CAs, Rekor and CT log keys that signatures must chain to.
#[derive(Clone)]
pub struct TrustRoot {
    name: String,
    root: TrustedRoot,
}

const PUBLIC_GOOD: &str = include_str!("../roots/public-good.json");
const STAGING: &str = include_str!("../roots/staging.json");

impl TrustRoot {
    /// Sigstore's public-good instance, the one PyPI's attestations chain to (bundled: the
    /// `trusted_root.json` shipped in `sigstore` 4.5.1 on PyPI).
    pub fn public_good() -> Self {
        Self::from_json("public-good", PUBLIC_GOOD).expect("the bundled public-good trust root parses")
    }

    /// Sigstore's staging instance, for testing signers; never a default.
    pub fn staging() -> Self {
        Self::from_json("staging", STAGING).expect("the bundled staging trust root parses")
    }

    /// A `trusted_root.json` the operator supplies (a private Sigstore, or a newer root).
    pub fn from_json(name: &str, json: &str) -> Result<Self, String> {
        let root = TrustedRoot::from_json(json).map_err(|e| format!("not a Sigstore trusted root: {e}"))?;
        if root.tlogs.is_empty() || root.certificate_authorities.is_empty() {
            return Err("the trusted root lists no transparency log or no certificate authority".into());
        }
        Ok(TrustRoot { name: name.to_owned(), root })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot").field("name", &self.name).finish_non_exhaustive()
    }
}

/// An attestation that passed every check.
#[derive(Clone, Debug)]
pub struct Verified {
    pub predicate_type: PredicateType,
    pub signer: Signer,
    /// Which of the expected signers it matched.
    pub matched: usize,
    /// When Rekor logged it (seconds since the epoch).
    pub integrated_time: i64,
}

/// Verifies attestations against one trust root. Build once and share: construction parses the
/// root's keys and certificates.
pub struct Verifier {
    root: TrustRoot,
    inner: sigstore_verify::Verifier,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("root", &self.root.name).finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(root: TrustRoot) -> Result<Self, String> {
        let inner = sigstore_verify::Verifier::new(&root.root).map_err(|e| format!("unusable trust root {}: {e}", root.name))?;
        Ok(Verifier { root, inner })
    }

    pub fn trust_root(&self) -> &TrustRoot {
        &self.root
    }

    /// Verifies `attestation` for the uploaded file `filename` with `sha256` (lowercase hex),
    /// signed by one of `expected`. Every check runs offline.
    pub fn verify(&self, attestation: &Value, filename: &str, sha256: &str, expected: &[Expected]) -> Result<Verified, Refusal> {
        let parsed = object::parse(attestation)?;
        let bundle = Bundle::from_json(&parsed.bundle_json)
            .map_err(|e| Refusal::new(Stage::Format, format!("unreadable Sigstore material: {e}")))?;

        // The log must be one of the trust root's: a staging (or private) entry is refused here,
        // as not of this root, rather than later as an unknown key.
        for entry in &bundle.verification_material.tlog_entries {
            let known = self.root.root.tlogs.iter().any(|t| t.log_id.key_id.as_bytes() == entry.log_id.key_id.as_bytes());
            if !known {
                return Err(Refusal::new(
                    Stage::TrustRoot,
                    format!(
                        "the transparency entry was logged by a Rekor log that is not in the configured Sigstore trust root \
                         ({}); was it signed with another Sigstore instance, such as staging?",
                        self.root.name
                    ),
                ));
            }
        }

        // Chain, SCT, log entry (inclusion proof, checkpoint, promise, certificate valid at the
        // integrated time), then the DSSE signature. The artifact is the statement's own subject
        // digest, so that the subject is judged below, with a message of its own.
        // (A statement without a usable subject is checked against the uploaded file's digest:
        // its subject problem is reported once the signature and the log entry have been.)
        let subject_digest = if parsed.subject_problem.is_none() { &parsed.statement.subject_sha256 } else { sha256 };
        let digest = Sha256Hash::from_hex(subject_digest)
            .map_err(|_| Refusal::new(Stage::Subject, "the statement's subject sha256 is not a sha256"))?;
        let result = match self.inner.verify(digest, &bundle, &VerificationPolicy::any_identity()) {
            Ok(r) => r,
            Err(e) => {
                let refusal = self.refusal(e);
                // Sigstore checks the log entry before the signature; the refusal names the
                // signature first when both are wrong (the log entry's time still dates the
                // certificate: the inclusion promise is checked either way).
                if refusal.stage == Stage::Transparency
                    && let Err(e) = self.inner.verify(digest, &bundle, &VerificationPolicy::any_identity().skip_tlog_unsafe())
                {
                    let first = self.refusal(e);
                    if matches!(first.stage, Stage::TrustRoot | Stage::Signature) {
                        return Err(first);
                    }
                }
                return Err(refusal);
            }
        };
        if !result.tlog_verified() || !result.certificate_verified() {
            return Err(Refusal::new(Stage::Transparency, "the transparency entry or certificate was not verified"));
        }
        let integrated_time = result
            .integrated_time()
            .map(|t| t.as_second())
            .ok_or_else(|| Refusal::new(Stage::Transparency, "the transparency entry has no integrated time to date the certificate"))?;

        // Subject: the uploaded file, by name (parsed, so equivalent spellings match) and digest.
        if let Some(problem) = parsed.subject_problem {
            return Err(problem);
        }
        let statement = &parsed.statement;
        let same_file = match (DistFilename::parse(&statement.subject_name), DistFilename::parse(filename)) {
            (Ok(a), Ok(b)) => a.kind == b.kind && a.identity() == b.identity(),
            _ => false,
        };
        if !same_file {
            return Err(Refusal::new(
                Stage::Subject,
                format!("the statement is about {:?}, not the uploaded {filename:?}", statement.subject_name),
            ));
        }
        if statement.subject_sha256 != sha256 {
            return Err(Refusal::new(
                Stage::Subject,
                format!("the statement's subject sha256 {} is not the uploaded file's {sha256}", statement.subject_sha256),
            ));
        }

        // Identity: one of the expected publishers signed it.
        let cert = result.certificate().ok_or_else(|| Refusal::new(Stage::Identity, "the bundle has no signing certificate"))?;
        let signer = Signer::from_certificate(cert);
        if expected.is_empty() {
            return Err(Refusal::new(Stage::Identity, "the project has no trusted publisher to check the signer against"));
        }
        let mut reasons = Vec::new();
        for (i, e) in expected.iter().enumerate() {
            match e.check(&signer) {
                Ok(()) => return Ok(Verified { predicate_type: statement.predicate_type, signer, matched: i, integrated_time }),
                Err(why) => reasons.push(why),
            }
        }
        Err(Refusal::new(
            Stage::Identity,
            format!(
                "the signer ({}) is not {}: {}",
                signer.describe(),
                if expected.len() == 1 { "the trusted publisher that uploaded" } else { "one of the project's trusted publishers" },
                reasons.join("; ")
            ),
        ))
    }

    fn refusal(&self, e: SigstoreError) -> Refusal {
        use SigstoreError as E;
        let (stage, what) = match &e {
            E::Certificate(_) | E::TrustedCertificate(_) | E::InvalidTrustRoot(_) | E::TrustRoot(_) => {
                (Stage::TrustRoot, format!("the certificate does not verify against the {} Sigstore trust root", self.root.name))
            }
            E::TransparencyLog(_) | E::Timestamp(_) => (Stage::Transparency, "the transparency entry does not verify".to_owned()),
            E::SignatureInvalid(_) | E::Crypto(_) => {
                (Stage::Signature, "the DSSE signature does not verify with the certificate's key".to_owned())
            }
            E::ArtifactMismatch(_) => (Stage::Subject, "the statement does not describe the uploaded file".to_owned()),
            E::IdentityMismatch { .. } | E::IssuerMismatch { .. } => (Stage::Identity, "the signer is not accepted".to_owned()),
            _ => (Stage::Format, "the Sigstore material is malformed".to_owned()),
        };
        Refusal::new(stage, format!("{what} ({e})"))
    }
}

/// The rules over all attestations sent with one file: at least one, and at most one of each
/// predicate type.
pub fn check_set(verified: &[Verified]) -> Result<(), Refusal> {
    for p in PredicateType::ALL {
        let n = verified.iter().filter(|v| v.predicate_type == p).count();
        if n > 1 {
            return Err(Refusal::new(Stage::Format, format!("{n} attestations of predicate type {:?}; at most one is allowed", p.uri())));
        }
    }
    Ok(())
}
