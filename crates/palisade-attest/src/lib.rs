//! PEP 740 attestations: what an index must check before it accepts one, offline.
//!
//! An attestation (PEP 740, version 1) is a DSSE envelope over an in-toto statement about one
//! distribution file, signed with a short-lived Sigstore (Fulcio) certificate and logged in
//! Sigstore's transparency log (Rekor). [`Verifier::verify`] takes one attestation as the client
//! sent it, the uploaded file's name and sha256, and the [`Expected`] signer, and answers a
//! [`Verified`] attestation or a [`Refusal`] naming the first check that failed, in this order:
//!
//! 1. **format**: version 1, the object's fields, the statement's shape and predicate type;
//! 2. **trust root**: the entry's log and the certificate's chain belong to the configured
//!    Sigstore trust root (never one named by the upload);
//! 3. **signature**: the DSSE signature over the statement, with the certificate's key;
//! 4. **transparency entry**: a Rekor v1 entry with its inclusion proof, checkpoint and promise,
//!    and the certificate valid at the entry's integrated time;
//! 5. **subject**: exactly one, naming the uploaded file (compared by parsing both names) with
//!    its sha256;
//! 6. **identity**: the certificate's issuer and CI claims name the expected trusted publisher.
//!
//! Steps 2 to 4 are Sigstore's own verification (`sigstore-verify`), which checks the log entry
//! before the signature: when it refuses the log entry, the check is run again without it, so that
//! a bad chain or signature is named first. This crate adds the PEP 740 rules around it.
//! [`check_set`] applies the rules that span the attestations of one upload.
//!
//! The crate is pure: no network, no clock (certificates are judged at the log's integrated
//! time), no database. Trust roots are passed in ([`TrustRoot`]).

mod identity;
mod object;
mod verify;

pub use identity::{ClaimField, Expected, Signer};
pub use object::{PredicateType, Statement};
pub use verify::{TrustRoot, Verified, Verifier, check_set};

use std::fmt;

/// The check that refused an attestation, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Format,
    TrustRoot,
    Signature,
    Transparency,
    Subject,
    Identity,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Format => "format",
            Stage::TrustRoot => "trust root",
            Stage::Transparency => "transparency entry",
            Stage::Signature => "signature",
            Stage::Subject => "subject",
            Stage::Identity => "identity",
        }
    }
}

/// Why an attestation was refused. Shown to the uploader as `<stage>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub stage: Stage,
    pub message: String,
}

impl Refusal {
    pub fn new(stage: Stage, message: impl Into<String>) -> Self {
        Refusal { stage, message: message.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage.as_str(), self.message)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests;
