//! Who signed: the Fulcio certificate's issuer and CI claims, and the trusted publisher they must
//! name. The rules follow `pypi-attestations`' `GitHubPublisher` and `GitLabPublisher` policies:
//! the source repository must be the publisher's, and the build configuration the publisher's
//! workflow (or CI file) at the ref or commit the certificate names. Other issuers are matched
//! claim by claim, through a mapping the operator configures.

use std::collections::BTreeMap;

use sigstore_verify::crypto::CertificateInfo;

/// A Fulcio certificate extension (`1.3.6.1.4.1.57264.1.*`) or the certificate's SAN, by the
/// name an operator writes in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClaimField {
    SubjectAltName,
    BuildSignerUri,
    BuildSignerDigest,
    RunnerEnvironment,
    SourceRepositoryUri,
    SourceRepositoryDigest,
    SourceRepositoryRef,
    SourceRepositoryIdentifier,
    SourceRepositoryOwnerUri,
    SourceRepositoryOwnerIdentifier,
    BuildConfigUri,
    BuildConfigDigest,
    BuildTrigger,
    RunInvocationUri,
    DeploymentEnvironment,
    TokenSubject,
}

impl ClaimField {
    pub const ALL: [ClaimField; 16] = [
        ClaimField::SubjectAltName,
        ClaimField::BuildSignerUri,
        ClaimField::BuildSignerDigest,
        ClaimField::RunnerEnvironment,
        ClaimField::SourceRepositoryUri,
        ClaimField::SourceRepositoryDigest,
        ClaimField::SourceRepositoryRef,
        ClaimField::SourceRepositoryIdentifier,
        ClaimField::SourceRepositoryOwnerUri,
        ClaimField::SourceRepositoryOwnerIdentifier,
        ClaimField::BuildConfigUri,
        ClaimField::BuildConfigDigest,
        ClaimField::BuildTrigger,
        ClaimField::RunInvocationUri,
        ClaimField::DeploymentEnvironment,
        ClaimField::TokenSubject,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClaimField::SubjectAltName => "subject_alt_name",
            ClaimField::BuildSignerUri => "build_signer_uri",
            ClaimField::BuildSignerDigest => "build_signer_digest",
            ClaimField::RunnerEnvironment => "runner_environment",
            ClaimField::SourceRepositoryUri => "source_repository_uri",
            ClaimField::SourceRepositoryDigest => "source_repository_digest",
            ClaimField::SourceRepositoryRef => "source_repository_ref",
            ClaimField::SourceRepositoryIdentifier => "source_repository_identifier",
            ClaimField::SourceRepositoryOwnerUri => "source_repository_owner_uri",
            ClaimField::SourceRepositoryOwnerIdentifier => "source_repository_owner_identifier",
            ClaimField::BuildConfigUri => "build_config_uri",
            ClaimField::BuildConfigDigest => "build_config_digest",
            ClaimField::BuildTrigger => "build_trigger",
            ClaimField::RunInvocationUri => "run_invocation_uri",
            ClaimField::DeploymentEnvironment => "deployment_environment",
            ClaimField::TokenSubject => "token_subject",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The signer a verified certificate names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signer {
    /// The OIDC issuer Fulcio recorded.
    pub issuer: Option<String>,
    /// Every claim the certificate carries, by [`ClaimField::name`].
    pub claims: BTreeMap<&'static str, String>,
}

impl Signer {
    pub(crate) fn from_certificate(cert: &CertificateInfo) -> Self {
        let c = &cert.ci_claims;
        let mut claims = BTreeMap::new();
        let mut put = |field: ClaimField, value: &Option<String>| {
            if let Some(v) = value {
                claims.insert(field.name(), v.clone());
            }
        };
        put(ClaimField::SubjectAltName, &cert.identity.as_ref().map(|s| s.as_str().to_owned()));
        put(ClaimField::BuildSignerUri, &c.build_signer_uri);
        put(ClaimField::BuildSignerDigest, &c.build_signer_digest);
        put(ClaimField::RunnerEnvironment, &c.runner_environment);
        put(ClaimField::SourceRepositoryUri, &c.source_repository_uri);
        put(ClaimField::SourceRepositoryDigest, &c.source_repository_digest);
        put(ClaimField::SourceRepositoryRef, &c.source_repository_ref);
        put(ClaimField::SourceRepositoryIdentifier, &c.source_repository_identifier);
        put(ClaimField::SourceRepositoryOwnerUri, &c.source_repository_owner_uri);
        put(ClaimField::SourceRepositoryOwnerIdentifier, &c.source_repository_owner_identifier);
        put(ClaimField::BuildConfigUri, &c.build_config_uri);
        put(ClaimField::BuildConfigDigest, &c.build_config_digest);
        put(ClaimField::BuildTrigger, &c.build_trigger);
        put(ClaimField::RunInvocationUri, &c.run_invocation_uri);
        put(ClaimField::DeploymentEnvironment, &c.deployment_environment);
        put(ClaimField::TokenSubject, &c.token_subject);
        Signer { issuer: cert.issuer.clone(), claims }
    }

    pub fn get(&self, field: ClaimField) -> Option<&str> {
        self.claims.get(field.name()).map(String::as_str)
    }

    /// One line for messages: the issuer and the claims that identify a publisher.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("issuer {:?}", self.issuer.as_deref().unwrap_or("(none)"))];
        for f in [ClaimField::SourceRepositoryUri, ClaimField::BuildConfigUri, ClaimField::SubjectAltName] {
            if let Some(v) = self.get(f) {
                parts.push(format!("{} {v:?}", f.name()));
            }
        }
        parts.join(", ")
    }
}

/// The signer an attestation must come from: a registered trusted publisher, with the OIDC issuer
/// Fulcio records for its kind (configured apart from the issuer that mints upload tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A GitHub Actions workflow: `OWNER/REPO` and the workflow file name, and the immutable
    /// owner and repository ids once the publisher has bound them (against a re-created account
    /// or repository of the same name).
    Github {
        certificate_issuer: String,
        repository: String,
        workflow: String,
        environment: Option<String>,
        owner_id: Option<String>,
        repository_id: Option<String>,
    },
    /// A GitLab CI/CD pipeline: `NAMESPACE/PROJECT` on the instance at `certificate_issuer`, and
    /// the CI configuration file's path.
    Gitlab { certificate_issuer: String, project: String, ci_config_path: String, environment: Option<String> },
    /// Another issuer: each listed certificate field must carry exactly the value given.
    Custom { certificate_issuer: String, claims: Vec<(ClaimField, String)> },
}

impl Expected {
    fn certificate_issuer(&self) -> &str {
        match self {
            Expected::Github { certificate_issuer, .. }
            | Expected::Gitlab { certificate_issuer, .. }
            | Expected::Custom { certificate_issuer, .. } => certificate_issuer,
        }
    }

    /// Whether `signer` is this publisher; the error says the first thing that differed.
    pub fn check(&self, signer: &Signer) -> Result<(), String> {
        let issuer = self.certificate_issuer();
        if signer.issuer.as_deref() != Some(issuer) {
            return Err(format!(
                "the certificate was issued for {:?}, not for {issuer:?}",
                signer.issuer.as_deref().unwrap_or("(no issuer)")
            ));
        }
        let claim = |f: ClaimField| signer.get(f).ok_or_else(|| format!("the certificate carries no {}", f.name()));
        match self {
            Expected::Github { repository, workflow, environment, owner_id, repository_id, .. } => {
                let want = format!("https://github.com/{repository}");
                let got = claim(ClaimField::SourceRepositoryUri)?;
                if !got.eq_ignore_ascii_case(&want) {
                    return Err(format!("signed in repository {got:?}, not {want:?}"));
                }
                for (bound, field) in
                    [(owner_id, ClaimField::SourceRepositoryOwnerIdentifier), (repository_id, ClaimField::SourceRepositoryIdentifier)]
                {
                    if let Some(bound) = bound {
                        let got = claim(field)?;
                        if got != bound {
                            return Err(format!("{} is {got:?}, not the {bound:?} the publisher is bound to", field.name()));
                        }
                    }
                }
                let config = claim(ClaimField::BuildConfigUri)?;
                built_from(config, &want, &format!("/.github/workflows/{workflow}"), signer)?;
                check_environment(environment.as_deref(), signer)
            }
            Expected::Gitlab { certificate_issuer, project, ci_config_path, environment } => {
                let base = certificate_issuer.trim_end_matches('/');
                let want = format!("{base}/{project}");
                let got = claim(ClaimField::SourceRepositoryUri)?;
                if !got.eq_ignore_ascii_case(&want) {
                    return Err(format!("signed in project {got:?}, not {want:?}"));
                }
                let config = claim(ClaimField::BuildConfigUri)?;
                built_from(config, &want, &format!("//{ci_config_path}"), signer)?;
                check_environment(environment.as_deref(), signer)
            }
            Expected::Custom { claims, .. } => {
                if claims.is_empty() {
                    return Err("no certificate claims are mapped for this issuer, so no signer can match".into());
                }
                for (field, want) in claims {
                    let got = claim(*field)?;
                    if got != want {
                        return Err(format!("{} is {got:?}, not {want:?}", field.name()));
                    }
                }
                Ok(())
            }
        }
    }
}

/// The build configuration must be `repo` + `path` at the ref or the commit the certificate
/// names. Owner and repository (or project) names are case-insensitive; the path and the ref are
/// compared exactly, as the token exchange compares them.
fn built_from(got: &str, repo: &str, path: &str, signer: &Signer) -> Result<(), String> {
    let candidates = [ClaimField::SourceRepositoryRef, ClaimField::SourceRepositoryDigest];
    let matched = got.get(..repo.len()).is_some_and(|head| head.eq_ignore_ascii_case(repo))
        && candidates.iter().filter_map(|f| signer.get(*f)).any(|r| got[repo.len()..] == format!("{path}@{r}"));
    if matched { Ok(()) } else { Err(format!("built by {got:?}, not by \"{repo}{path}\" at the certificate's ref or commit")) }
}

/// A publisher bound to an environment needs a certificate naming that environment (compared
/// without case, as the token exchange does); a certificate naming none is refused for it.
fn check_environment(want: Option<&str>, signer: &Signer) -> Result<(), String> {
    match (want, signer.get(ClaimField::DeploymentEnvironment)) {
        (None, _) => Ok(()),
        (Some(w), Some(g)) if w.eq_ignore_ascii_case(g) => Ok(()),
        (Some(w), Some(g)) => Err(format!("signed in environment {g:?}, not {w:?}")),
        (Some(w), None) => Err(format!("the certificate names no deployment environment; the publisher requires {w:?}")),
    }
}
