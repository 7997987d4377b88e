//! PEP 740 attestations in the publishing pipeline: which signers an upload's attestations must
//! come from, their verification (by `palisade-attest`, offline, on a blocking thread), the
//! owner's `require_attestations` policy, and the publisher objects the Integrity API serves.
//!
//! A trusted publisher's upload must be attested by that same publisher (as on PyPI). Beyond
//! PyPI, an upload with an API token may carry attestations too, accepted when one of the
//! project's registered trusted publishers signed them.

use std::sync::Arc;

use palisade_attest::{ClaimField, Expected, TrustRoot, Verifier};
use palisade_auth::PublisherSpec;
use palisade_store::{NewAttestation, Project, Publisher};
use serde_json::{Value, json};

use crate::access::{Credential, Principal};
use crate::config::AttestationsConfig;
use crate::error::{Error, Result, internal, invalid};

/// The most attestations one upload may carry: one per accepted predicate type.
const MAX_ATTESTATIONS: usize = 2;

/// The verifier built from the configured trust root, shared by every upload.
#[derive(Clone)]
pub struct Attestations {
    verifier: Arc<Verifier>,
    config: AttestationsConfig,
}

impl std::fmt::Debug for Attestations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestations").field("trust_root", &self.verifier.trust_root().name()).finish()
    }
}

/// Warns when trusted publishing uses a GitHub Enterprise or self-managed GitLab issuer while the
/// certificate issuers are still the public ones: the publishers' attestations would then be
/// checked against github.com's or gitlab.com's projects of the same name.
pub fn warn_about_issuers(config: &crate::Config) {
    let defaults = AttestationsConfig::default();
    let (oidc, att) = (&config.oidc, &config.attestations);
    let pairs = [
        ("github", &oidc.github_issuer, &att.github_certificate_issuer, &defaults.github_certificate_issuer),
        ("gitlab", &oidc.gitlab_issuer, &att.gitlab_certificate_issuer, &defaults.gitlab_certificate_issuer),
    ];
    let public = crate::config::OidcConfig::default();
    for (kind, token_issuer, certificate_issuer, default) in pairs {
        let public_token_issuer = if kind == "github" { &public.github_issuer } else { &public.gitlab_issuer };
        let local_test_issuer = token_issuer.starts_with("http://");
        if token_issuer != public_token_issuer && certificate_issuer == default && !local_test_issuer {
            tracing::warn!(
                oidc.issuer = %token_issuer,
                certificate.issuer = %certificate_issuer,
                "{kind} publishers mint tokens at another issuer than the public one, but their attestations are checked as {certificate_issuer}'s: set [attestations] {kind}_certificate_issuer to the issuer your Fulcio records"
            );
        }
    }
}

/// The trust root `attestations.trust_root` names.
pub fn trust_root(name: &str) -> std::result::Result<TrustRoot, String> {
    match name {
        "public-good" => Ok(TrustRoot::public_good()),
        "staging" => Ok(TrustRoot::staging()),
        path => {
            let json = std::fs::read_to_string(path).map_err(|e| format!("attestations.trust_root {path:?}: {e}"))?;
            TrustRoot::from_json(path, &json).map_err(|e| format!("attestations.trust_root {path:?}: {e}"))
        }
    }
}

fn refused(why: impl std::fmt::Display) -> Error {
    invalid(format!("Invalid attestations supplied during upload: {why}"))
}

impl Attestations {
    pub fn new(config: &AttestationsConfig) -> anyhow::Result<Self> {
        let root = trust_root(&config.trust_root).map_err(anyhow::Error::msg)?;
        let verifier = Verifier::new(root).map_err(anyhow::Error::msg)?;
        Ok(Self { verifier: Arc::new(verifier), config: config.clone() })
    }

    /// What `publisher` must look like in a certificate, and the publisher object served for
    /// what it signed; `None` for a custom issuer without a mapping.
    pub fn expected(&self, publisher: &Publisher) -> Option<(Expected, Value)> {
        let spec: PublisherSpec = serde_json::from_str(&publisher.spec).ok()?;
        let c = &self.config;
        match spec {
            PublisherSpec::Github { owner, repository, workflow, environment, owner_id, repository_id } => {
                let repository = format!("{owner}/{repository}");
                let object =
                    json!({"kind": "GitHub", "repository": repository, "workflow": workflow, "environment": environment, "claims": null});
                let e = Expected::Github {
                    certificate_issuer: c.github_certificate_issuer.clone(),
                    repository,
                    workflow,
                    environment,
                    owner_id,
                    repository_id,
                };
                Some((e, object))
            }
            PublisherSpec::Gitlab { namespace, project, ci_config_path, environment } => {
                let repository = format!("{namespace}/{project}");
                let object = json!({"kind": "GitLab", "repository": repository, "workflow_filepath": ci_config_path, "environment": environment, "claims": null});
                let e = Expected::Gitlab {
                    certificate_issuer: c.gitlab_certificate_issuer.clone(),
                    project: repository,
                    ci_config_path,
                    environment,
                };
                Some((e, object))
            }
            PublisherSpec::Custom { issuer, claims } => {
                let mapping = c.custom_issuers.iter().find(|m| m.token_issuer == issuer)?;
                let mut wanted = Vec::new();
                for (claim, field) in &mapping.claims {
                    wanted.push((ClaimField::parse(field)?, claims.get(claim)?.clone()));
                }
                let object = json!({"kind": issuer, "claims": claims});
                Some((Expected::Custom { certificate_issuer: mapping.certificate_issuer.clone(), claims: wanted }, object))
            }
        }
    }
}

impl Attestations {
    /// Verifies an upstream's PEP 740 provenance object for the file `filename` with `sha256`:
    /// every attestation of every bundle must verify against this instance's trust root and be
    /// signed by the publisher its bundle names (GitHub or GitLab; the certificate issuers are
    /// this instance's). Blocking: call it from a blocking thread.
    pub fn verify_provenance(&self, provenance: &Value, filename: &str, sha256: &str) -> std::result::Result<usize, String> {
        if provenance.get("version").and_then(Value::as_u64) != Some(1) {
            return Err("not a PEP 740 provenance object (version 1)".into());
        }
        let bundles = provenance.get("attestation_bundles").and_then(Value::as_array).ok_or("no attestation_bundles")?;
        if bundles.is_empty() || bundles.len() > 8 {
            return Err(format!("{} attestation bundles (expected 1 to 8)", bundles.len()));
        }
        let mut count = 0;
        for bundle in bundles {
            let publisher = bundle.get("publisher").ok_or("a bundle without a publisher")?;
            let text = |k: &str| publisher.get(k).and_then(Value::as_str).map(str::to_string);
            let expected = match publisher.get("kind").and_then(Value::as_str) {
                Some("GitHub") => Expected::Github {
                    certificate_issuer: self.config.github_certificate_issuer.clone(),
                    repository: text("repository").ok_or("a GitHub publisher without a repository")?,
                    workflow: text("workflow").ok_or("a GitHub publisher without a workflow")?,
                    environment: text("environment").filter(|e| !e.is_empty()),
                    owner_id: None,
                    repository_id: None,
                },
                Some("GitLab") => Expected::Gitlab {
                    certificate_issuer: self.config.gitlab_certificate_issuer.clone(),
                    project: text("repository").ok_or("a GitLab publisher without a repository")?,
                    ci_config_path: text("workflow_filepath").ok_or("a GitLab publisher without a workflow_filepath")?,
                    environment: text("environment").filter(|e| !e.is_empty()),
                },
                other => return Err(format!("a publisher of kind {other:?}, which this instance cannot check")),
            };
            let list = bundle.get("attestations").and_then(Value::as_array).ok_or("a bundle without attestations")?;
            if list.is_empty() || list.len() > MAX_ATTESTATIONS {
                return Err(format!("a bundle of {} attestations (expected 1 to {MAX_ATTESTATIONS})", list.len()));
            }
            let mut verified = Vec::with_capacity(list.len());
            for a in list {
                let v = self.verifier.verify(a, filename, sha256, std::slice::from_ref(&expected)).map_err(|r| r.to_string())?;
                verified.push(v);
            }
            palisade_attest::check_set(&verified).map_err(|r| r.to_string())?;
            count += verified.len();
        }
        Ok(count)
    }
}

impl crate::Core {
    /// The project's policy, for a new file: refuses one without a verified attestation when the
    /// owners require them. (An identical re-upload is a no-op and is not asked for them.)
    pub(crate) fn check_required(project: Option<&Project>, normalized: &str, attestations: &[NewAttestation]) -> Result<()> {
        if attestations.is_empty() && project.is_some_and(|p| p.require_attestations) {
            return Err(invalid(format!(
                "project {normalized:?} requires a valid PEP 740 attestation from one of its trusted publishers with every \
                 upload; upload from the publisher's workflow with attestations (twine upload --attestations)"
            )));
        }
        Ok(())
    }

    /// Checks an upload's attestations (the raw `attestations` form field, if sent) for the file
    /// `filename` with `sha256`. Returns what to store with the file.
    pub(crate) async fn check_attestations(
        &self,
        principal: &Principal,
        project: Option<&Project>,
        normalized: &str,
        filename: &str,
        sha256: &str,
        raw: Option<&str>,
    ) -> Result<Vec<NewAttestation>> {
        let Some(raw) = raw else { return Ok(Vec::new()) };
        let list: Vec<Value> = serde_json::from_str(raw).map_err(|_| refused("the field is not a JSON list of attestation objects"))?;
        if list.is_empty() {
            return Err(refused("the list is empty"));
        }
        if list.len() > MAX_ATTESTATIONS {
            return Err(refused(format!(
                "{} attestations; at most one per predicate type ({MAX_ATTESTATIONS} in all) is accepted",
                list.len()
            )));
        }
        // Who may have signed: the publisher that uploads (bound to this project, or the pending
        // one creating it), or, for a token, the publishers registered for this existing project;
        // never a pending publisher some other user registered for the name.
        let candidates: Vec<Publisher> = match principal.credential {
            Credential::Publisher { publisher_id, .. } => self.db.publisher(publisher_id).await.map_err(internal)?.into_iter().collect(),
            _ => match project {
                Some(project) => self
                    .db
                    .publishers(Some(normalized))
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .filter(|p| !p.pending && p.project_id == Some(project.id))
                    .collect(),
                None => Vec::new(),
            },
        };
        // With none, every check still runs and the refusal names the first that fails: the
        // last, identity, says that the project has no publisher to check the signer against.
        let (expected, objects): (Vec<Expected>, Vec<Value>) = candidates.iter().filter_map(|p| self.attestations.expected(p)).unzip();
        let verifier = self.attestations.verifier.clone();
        let (filename, sha256) = (filename.to_owned(), sha256.to_owned());
        let count = list.len();
        let started = std::time::Instant::now();
        let checked = tokio::task::spawn_blocking(move || -> std::result::Result<Vec<_>, palisade_attest::Refusal> {
            let mut out = Vec::with_capacity(list.len());
            for value in list {
                let v = verifier.verify(&value, &filename, &sha256, &expected)?;
                out.push((v, value));
            }
            let verified: Vec<_> = out.iter().map(|(v, _)| v.clone()).collect();
            palisade_attest::check_set(&verified)?;
            Ok(out)
        })
        .await
        .map_err(internal)?;
        // The time the checks took, for operators (and bench/provenance.py).
        let duration_us = started.elapsed().as_micros() as u64;
        let outcome = match &checked {
            Ok(_) => "verified",
            Err(r) => r.stage.as_str(),
        };
        tracing::info!(project.name = %normalized, count, duration_us, outcome, "attestations checked");
        let checked = checked.map_err(refused)?;
        Ok(checked
            .into_iter()
            .map(|(v, value)| NewAttestation {
                predicate_type: v.predicate_type.uri().to_owned(),
                publisher: objects[v.matched].to_string(),
                attestation: value.to_string(),
                integrated_time: v.integrated_time,
            })
            .collect())
    }
}
