//! Trusted publishers as users and administrators describe them, turned into the issuer and
//! claim matchers that the OIDC exchange checks. Shared by the HTTP API and the CLI.

use palisade_auth::PublisherSpec;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::OidcConfig;

/// A publisher as the API receives it: exactly one of `github`, `gitlab` or `issuer`+`claims`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherInput {
    #[serde(default)]
    pub github: Option<GithubInput>,
    #[serde(default)]
    pub gitlab: Option<GitlabInput>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubInput {
    /// `OWNER/REPO`
    pub repository: String,
    pub workflow: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub repository_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabInput {
    /// `NAMESPACE/PROJECT` (the namespace may contain slashes).
    pub project: String,
    /// The CI configuration file, such as `.gitlab-ci.yml`.
    pub ci_config_path: String,
    #[serde(default)]
    pub environment: Option<String>,
}

fn plain(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 200 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("invalid {what} {s:?}"));
    }
    Ok(())
}

/// Validates the input and returns the issuer URL and the spec to store.
pub fn resolve(input: PublisherInput, oidc: &OidcConfig) -> Result<(String, PublisherSpec), String> {
    let given = input.github.is_some() as u8 + input.gitlab.is_some() as u8 + input.issuer.is_some() as u8;
    if given != 1 {
        return Err("describe the publisher with exactly one of \"github\", \"gitlab\" or \"issuer\" (with \"claims\")".into());
    }
    if let Some(g) = input.github {
        let (owner, repo) =
            g.repository.split_once('/').ok_or_else(|| format!("github repository {:?}: expected OWNER/REPO", g.repository))?;
        plain("GitHub owner", owner)?;
        plain("GitHub repository", repo)?;
        if repo.contains('/') {
            return Err(format!("github repository {:?}: expected OWNER/REPO", g.repository));
        }
        let workflow = g.workflow.trim_start_matches(".github/workflows/").to_string();
        if !(workflow.ends_with(".yml") || workflow.ends_with(".yaml")) || workflow.contains('/') {
            return Err(format!("workflow {:?}: expected the file name of a workflow, such as release.yml", g.workflow));
        }
        if let Some(e) = &g.environment {
            plain("environment", e)?;
        }
        let spec = PublisherSpec::Github {
            owner: owner.to_string(),
            repository: repo.to_string(),
            workflow,
            environment: g.environment.filter(|e| !e.is_empty()),
            owner_id: g.owner_id,
            repository_id: g.repository_id,
        };
        return Ok((oidc.github_issuer.clone(), spec));
    }
    if let Some(g) = input.gitlab {
        let (namespace, project) =
            g.project.rsplit_once('/').ok_or_else(|| format!("gitlab project {:?}: expected NAMESPACE/PROJECT", g.project))?;
        plain("GitLab namespace", namespace)?;
        plain("GitLab project", project)?;
        plain("CI config path", &g.ci_config_path)?;
        if let Some(e) = &g.environment {
            plain("environment", e)?;
        }
        let spec = PublisherSpec::Gitlab {
            namespace: namespace.to_string(),
            project: project.to_string(),
            ci_config_path: g.ci_config_path,
            environment: g.environment.filter(|e| !e.is_empty()),
        };
        return Ok((oidc.gitlab_issuer.clone(), spec));
    }
    let issuer = input.issuer.unwrap_or_default();
    if !oidc.trusted_issuers.contains(&issuer) {
        return Err(format!(
            "issuer {issuer:?} is not trusted by this instance (the administrator lists trusted issuers in [oidc] trusted_issuers)"
        ));
    }
    if input.claims.is_empty() {
        return Err("a custom publisher needs at least one claim to match (--claim KEY=VALUE); matching only iss and aud would let anyone with a token from that issuer publish".into());
    }
    if !input.claims.contains_key("sub") && input.claims.len() < 2 {
        return Err("a custom publisher must match `sub` or at least two claims".into());
    }
    for (k, v) in &input.claims {
        plain("claim name", k)?;
        if v.is_empty() || v.len() > 500 {
            return Err(format!("claim {k:?}: the value must be 1 to 500 characters"));
        }
    }
    Ok((issuer.clone(), PublisherSpec::Custom { issuer, claims: input.claims }))
}

/// Whether two specs describe the same publisher: the same repository (or project, or claims),
/// workflow and environment, with names compared as the claim matchers compare them. Ids bound
/// on first use do not make a publisher different, unless both specs name different ones:
/// otherwise re-adding a bound publisher would add an unbound twin that a re-created
/// repository of the same name could claim.
pub fn same_publisher(a: &PublisherSpec, b: &PublisherSpec) -> bool {
    let same_text = |x: &str, y: &str| x.eq_ignore_ascii_case(y);
    let same_env = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => same_text(x, y),
        (None, None) => true,
        _ => false,
    };
    let compatible = |x: &Option<String>, y: &Option<String>| x.is_none() || y.is_none() || x == y;
    match (a, b) {
        (
            PublisherSpec::Github { owner, repository, workflow, environment, owner_id, repository_id },
            PublisherSpec::Github {
                owner: owner2,
                repository: repository2,
                workflow: workflow2,
                environment: environment2,
                owner_id: owner_id2,
                repository_id: repository_id2,
            },
        ) => {
            same_text(owner, owner2)
                && same_text(repository, repository2)
                && workflow == workflow2
                && same_env(environment, environment2)
                && compatible(owner_id, owner_id2)
                && compatible(repository_id, repository_id2)
        }
        (
            PublisherSpec::Gitlab { namespace, project, ci_config_path, environment },
            PublisherSpec::Gitlab { namespace: namespace2, project: project2, ci_config_path: ci2, environment: environment2 },
        ) => {
            same_text(namespace, namespace2) && same_text(project, project2) && ci_config_path == ci2 && same_env(environment, environment2)
        }
        (a, b) => a == b,
    }
}

/// The id of the publisher among `existing` (of one project or pending name) that a new one
/// with `issuer` and `spec` would duplicate.
pub fn duplicate_of(existing: &[palisade_store::Publisher], issuer: &str, spec: &PublisherSpec) -> Option<i64> {
    existing
        .iter()
        .filter(|p| p.issuer == issuer)
        .find(|p| serde_json::from_str::<PublisherSpec>(&p.spec).is_ok_and(|s| same_publisher(&s, spec)))
        .map(|p| p.id)
}

/// When a pending publisher registered now expires (microseconds).
pub fn pending_expiry(oidc: &OidcConfig) -> i64 {
    let days = oidc.pending_publisher_days.min(3650) as i64;
    palisade_store::now_micros().saturating_add(days * 86_400 * 1_000_000)
}

pub fn to_json(p: &palisade_store::Publisher) -> Value {
    json!({
        "id": p.id,
        "project": p.project,
        "pending": p.pending,
        "expires": p.expires_at.map(crate::timestamp),
        "issuer": p.issuer,
        "spec": serde_json::from_str::<Value>(&p.spec).unwrap_or(Value::Null),
        "created_by": p.created_by_name,
        "created": crate::timestamp(p.created_at),
    })
}

/// One line for the CLI.
pub fn describe(p: &palisade_store::Publisher) -> String {
    let spec: Option<PublisherSpec> = serde_json::from_str(&p.spec).ok();
    let what = match spec {
        Some(PublisherSpec::Github { owner, repository, workflow, environment, .. }) => {
            format!(
                "github {owner}/{repository} workflow {workflow}{}",
                environment.map(|e| format!(" environment {e}")).unwrap_or_default()
            )
        }
        Some(PublisherSpec::Gitlab { namespace, project, ci_config_path, environment }) => {
            format!(
                "gitlab {namespace}/{project} config {ci_config_path}{}",
                environment.map(|e| format!(" environment {e}")).unwrap_or_default()
            )
        }
        Some(PublisherSpec::Custom { issuer, claims }) => {
            format!("issuer {issuer} claims {}", claims.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        }
        None => p.spec.clone(),
    };
    let expires = p.expires_at.map(|e| format!("\texpires {}", crate::timestamp(e))).unwrap_or_default();
    format!("{}\t{}{}\t{what}{expires}", p.id, p.project, if p.pending { " (pending)" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gh(owner: &str, workflow: &str, env: Option<&str>, repo_id: Option<&str>) -> PublisherSpec {
        PublisherSpec::Github {
            owner: owner.into(),
            repository: "widget".into(),
            workflow: workflow.into(),
            environment: env.map(Into::into),
            owner_id: None,
            repository_id: repo_id.map(Into::into),
        }
    }

    #[test]
    fn duplicates_are_judged_by_what_the_job_proves() {
        let check = |a: &PublisherSpec, b: &PublisherSpec, expected: bool| {
            assert_eq!(same_publisher(a, b), expected, "{a:?} vs {b:?}");
            assert_eq!(same_publisher(b, a), expected, "{b:?} vs {a:?}");
        };
        let plain = gh("Acme", "release.yml", None, None);
        check(&plain, &gh("acme", "release.yml", None, None), true);
        // Bound on first use: still the same publisher ...
        check(&plain, &gh("acme", "release.yml", None, Some("42")), true);
        // ... unless both name different repositories.
        check(&gh("acme", "release.yml", None, Some("41")), &gh("acme", "release.yml", None, Some("42")), false);
        check(&plain, &gh("acme", "Release.yml", None, None), false);
        check(&plain, &gh("acme", "release.yml", Some("pypi"), None), false);
        check(&gh("acme", "release.yml", Some("PyPI"), None), &gh("acme", "release.yml", Some("pypi"), None), true);
        let custom = |v: &str| PublisherSpec::Custom { issuer: "https://i".into(), claims: [("sub".to_string(), v.to_string())].into() };
        check(&custom("a"), &custom("a"), true);
        check(&custom("a"), &custom("A"), false);
        check(&custom("a"), &plain, false);
    }
}
