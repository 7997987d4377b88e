//! Trusted publishing: PyPI's OIDC token exchange, so existing publishing workflows work when
//! pointed at Palisade.
//!
//! - `GET /_/oidc/audience` → `{"audience": "<configured audience>"}`
//! - `POST /_/oidc/mint-token` `{"token": "<OIDC ID token>"}` → `{"success": true, "token": "pal_…",
//!   "expires": <unix seconds>}`, or a 422 `{"message": "Token request failed", "errors": [{"code",
//!   "description"}]}` with PyPI's codes.
//!
//! The ID token is read unverified only to learn its issuer, which must be one this instance
//! trusts. Its signature is then checked against the issuer's JWKS (discovery document and keys
//! fetched over https and cached; fetched again when a token names an unknown key id), then
//! `iss`, `aud`, `exp`/`nbf`/`iat` with a small leeway, the risky-trigger rule, the publishers'
//! claim matchers and finally the `jti` replay cache. The minted token is an ordinary Palisade
//! token bound to every publisher that matched, whoever registered it (PyPI's semantics: one
//! user's registration never makes another's exchange fail): upload only, to the projects of
//! those publishers (and the free names of matching pending ones), at most 15 minutes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use palisade_auth::JwkSet;
use palisade_auth::PublisherSpec;
use palisade_store::now_micros;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::AppState;
use crate::http::auth::Client;
use palisade_core::events::record;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_/oidc/audience", get(audience)).route("/_/oidc/mint-token", post(mint_token))
}

const CACHE_TTL: Duration = Duration::from_secs(3600);
const REFETCH_AFTER: Duration = Duration::from_secs(30);
const MAX_DOCUMENT: usize = 1 << 20;

struct Cached {
    jwks: Arc<JwkSet>,
    fetched: Instant,
}

/// The JWKS of each trusted issuer, fetched on demand and cached.
pub struct OidcKeys {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

impl OidcKeys {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, cache: Mutex::new(HashMap::new()) }
    }

    async fn keys(&self, issuer: &str, kid: Option<&str>, allow_loopback: bool) -> Result<Arc<JwkSet>, String> {
        if let Some(c) = self.cache.lock().get(issuer) {
            let known = kid.is_none_or(|k| c.jwks.find(k).is_some());
            let fresh = c.fetched.elapsed() < CACHE_TTL;
            // An unknown key id triggers a refresh, but not more than once per REFETCH_AFTER.
            if (known && fresh) || c.fetched.elapsed() < REFETCH_AFTER {
                return Ok(c.jwks.clone());
            }
        }
        let jwks = Arc::new(self.fetch(issuer, allow_loopback).await?);
        self.cache.lock().insert(issuer.to_string(), Cached { jwks: jwks.clone(), fetched: Instant::now() });
        Ok(jwks)
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self.http.get(url).timeout(Duration::from_secs(10)).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("fetching {url}: HTTP {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n as usize > MAX_DOCUMENT) {
            return Err(format!("fetching {url}: the document is too large"));
        }
        let body = resp.bytes().await.map_err(|e| format!("fetching {url}: {e}"))?;
        if body.len() > MAX_DOCUMENT {
            return Err(format!("fetching {url}: the document is too large"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    async fn fetch(&self, issuer: &str, allow_loopback: bool) -> Result<JwkSet, String> {
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let discovery = self.get_json(&discovery_url).await?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(format!("{discovery_url}: the discovery document names another issuer"));
        }
        let jwks_uri = discovery.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| format!("{discovery_url}: no jwks_uri"))?;
        palisade_core::config::check_issuer_url(jwks_uri, allow_loopback).map_err(|e| format!("jwks_uri {jwks_uri:?}: {e}"))?;
        let keys = self.get_json(jwks_uri).await?;
        serde_json::from_value(keys).map_err(|e| format!("{jwks_uri}: not a JWK set: {e}"))
    }
}

fn failure(code: &str, description: impl Into<String>) -> Response {
    let body = json!({ "message": "Token request failed", "errors": [{ "code": code, "description": description.into() }] });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

pub async fn audience(State(state): State<AppState>) -> Response {
    if !state.config.oidc.enabled {
        return failure("not-enabled", "trusted publishing is disabled on this instance");
    }
    Json(json!({ "audience": state.config.oidc.audience })).into_response()
}

/// The kind of publisher each trusted issuer may match.
fn issuer_kind(state: &AppState, issuer: &str) -> Option<&'static str> {
    let o = &state.config.oidc;
    if issuer == o.github_issuer {
        Some("github")
    } else if issuer == o.gitlab_issuer {
        Some("gitlab")
    } else if o.trusted_issuers.iter().any(|i| i == issuer) {
        Some("custom")
    } else {
        None
    }
}

pub async fn mint_token(State(state): State<AppState>, client: Client, body: Bytes) -> Response {
    let o = &state.config.oidc;
    if !o.enabled {
        return failure("not-enabled", "trusted publishing is disabled on this instance");
    }
    let jwt = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v.get("token").and_then(Value::as_str) {
            Some(t) if t.len() < 16 * 1024 => t.to_string(),
            _ => return failure("invalid-payload", "the body must be {\"token\": \"<OIDC ID token>\"}"),
        },
        Err(_) => return failure("invalid-payload", "the body must be JSON: {\"token\": \"<OIDC ID token>\"}"),
    };
    // A refused exchange counts against the client address; beyond the budget, refusals become
    // 429. A valid ID token is never refused for what others behind the same address sent.
    let fail = |code: &str, description: String| {
        tracing::info!(oidc.error = code, reason = %description, "trusted publishing exchange refused");
        match crate::http::throttle::count_invalid_secret(&state, &client) {
            Ok(()) => failure(code, description),
            Err(retry) => crate::http::error::too_many(retry).into_response(),
        }
    };
    let issuer = match palisade_auth::peek_issuer(&jwt) {
        Ok(i) => i,
        Err(e) => return fail("invalid-token", format!("malformed ID token: {e}")),
    };
    let Some(kind) = issuer_kind(&state, &issuer) else {
        return fail("invalid-token", format!("the issuer {issuer:?} is not trusted by this instance"));
    };
    let kid = match palisade_auth::peek_kid(&jwt) {
        Ok(k) => k,
        Err(e) => return fail("invalid-token", format!("malformed ID token: {e}")),
    };
    let jwks = match state.oidc.keys(&issuer, kid.as_deref(), o.allow_insecure_loopback).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, oidc.issuer = %issuer, "could not fetch the issuer's keys");
            return failure("invalid-token", format!("could not fetch the keys of {issuer}; try again later"));
        }
    };
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let claims = match palisade_auth::verify_id_token(&jwt, &jwks, &issuer, &o.audience, now, o.leeway_secs) {
        Ok(c) => c,
        Err(e) => return fail("invalid-token", format!("invalid ID token: {e}")),
    };
    if let Some(trigger) = palisade_auth::risky_trigger(&claims) {
        return fail(
            "invalid-publisher",
            format!("workflows triggered by {trigger} may not publish: they run with the base repository's identity on untrusted code"),
        );
    }
    let publishers = match state.db.publishers_for_issuer(&issuer).await {
        Ok(p) => p,
        Err(e) => return crate::http::error::internal(e).into_response(),
    };
    let mut reasons = Vec::new();
    let mut shown = Vec::new();
    let mut matched = Vec::new();
    for p in &publishers {
        let Ok(spec) = serde_json::from_str::<PublisherSpec>(&p.spec) else { continue };
        let spec_kind = match spec {
            PublisherSpec::Github { .. } => "github",
            PublisherSpec::Gitlab { .. } => "gitlab",
            PublisherSpec::Custom { .. } => "custom",
        };
        if spec_kind != kind {
            continue;
        }
        match palisade_auth::match_publisher(&spec, &claims) {
            Ok(()) => matched.push((p, spec)),
            // A mismatch behind a matching repository concerns the caller's own repository and
            // may be explained; any other would describe someone else's publisher.
            Err(e)
                if matches!(spec, PublisherSpec::Github { .. } | PublisherSpec::Gitlab { .. })
                    && !["repository", "repository_owner", "project_path"].contains(&e.claim.as_str()) =>
            {
                shown.push(e.to_string())
            }
            Err(e) => reasons.push(format!("publisher {}: {e}", p.id)),
        }
    }
    if matched.is_empty() {
        // The reasons name other projects' publishers: they go to the log, not to the caller.
        tracing::debug!(reasons = %reasons.join("; "), "no trusted publisher matched");
        let why = if shown.is_empty() {
            "check the repository, workflow file and environment registered for the project".to_string()
        } else {
            shown.join("; ")
        };
        return fail("invalid-publisher", format!("no trusted publisher matches this token's claims ({why})"));
    }
    // PyPI's semantics: the job proved its identity, so its token covers every project whose
    // publisher matches it, whoever registered that publisher. Nobody's registration can make
    // another's exchange fail. A pending publisher covers its name while the name is free; the
    // first upload creates the project (scanned as a new project) for the user who registered it.
    let mut chosen: Vec<(&palisade_store::Publisher, PublisherSpec)> = Vec::new();
    let mut skipped = Vec::new();
    for (p, spec) in matched {
        if p.pending {
            let taken = match state.db.project(&p.project).await {
                Ok(found) => found.is_some(),
                Err(e) => return crate::http::error::internal(e).into_response(),
            };
            if taken {
                skipped.push((p.id, p.project.clone(), "the project already exists; its owners must add this publisher to it"));
                continue;
            }
            // Two users' pending publishers for one name (registered in a race): the first
            // registered wins, as it would at the first upload.
            if chosen.iter().any(|(c, _)| c.pending && c.project == p.project && c.created_by != p.created_by) {
                skipped.push((p.id, p.project.clone(), "another user's pending publisher for this name came first"));
                continue;
            }
        }
        chosen.push((p, spec));
    }
    for (id, project, why) in &skipped {
        tracing::info!(publisher.id = id, project.name = %project, reason = why, "matching pending publisher skipped");
    }
    if chosen.is_empty() {
        let (_, project, _) = &skipped[0];
        return fail(
            "invalid-pending-publisher",
            format!("valid token, but project {project:?} already exists; its owners must add this publisher to it"),
        );
    }
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default().to_string();
    // Kept until the token could no longer be accepted anyway (exp may be a float or huge).
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0).clamp(now as f64, now as f64 + 86_400.0 * 366.0) as i64;
    let keep_until = exp.saturating_add(o.leeway_secs.min(palisade_core::config::MAX_LEEWAY_SECS) as i64 + 60);
    match state.db.use_jti(&issuer, &jti, keep_until.saturating_mul(1_000_000)).await {
        Ok(true) => {}
        Ok(false) => return fail("invalid-reuse-token", "this ID token was already exchanged (its jti was seen before)".into()),
        Err(e) => return crate::http::error::internal(e).into_response(),
    }
    // Bind GitHub publishers to the immutable owner and repository ids on first use, so a
    // deleted and re-created account or repository of the same name cannot publish.
    for (publisher, spec) in &chosen {
        if let PublisherSpec::Github { owner_id, repository_id, owner, repository, workflow, environment } = spec
            && (owner_id.is_none() || repository_id.is_none())
        {
            let (oid, rid) = palisade_auth::github_ids(&claims);
            let bound = PublisherSpec::Github {
                owner: owner.clone(),
                repository: repository.clone(),
                workflow: workflow.clone(),
                environment: environment.clone(),
                owner_id: owner_id.clone().or(oid),
                repository_id: repository_id.clone().or(rid),
            };
            if let Ok(text) = serde_json::to_string(&bound)
                && let Err(e) = state.db.update_publisher_spec(publisher.id, &text).await
            {
                return crate::http::error::internal(e).into_response();
            }
        }
    }
    let ttl = o.token_ttl_secs.min(900) as i64;
    let expires_at = now_micros() + ttl * 1_000_000;
    let t = palisade_core::tokens::generate();
    let ids: Vec<i64> = chosen.iter().map(|(p, _)| p.id).collect();
    let mut projects: Vec<String> = chosen.iter().map(|(p, _)| p.project.clone()).collect();
    projects.sort();
    projects.dedup();
    let id_list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let description = format!("trusted publisher{} {id_list} ({sub})", if ids.len() > 1 { "s" } else { "" });
    let id = match state.db.create_publisher_token(&ids, &t.hash, &t.hint, &projects, &description, expires_at).await {
        Ok(Some(id)) => id,
        // Every matched publisher was removed while this exchange ran.
        Ok(None) => return fail("invalid-publisher", "the matching trusted publishers were removed; try again".into()),
        Err(e) => return crate::http::error::internal(e).into_response(),
    };
    let pick = |k: &str| claims.get(k).cloned().unwrap_or(Value::Null);
    // One event per publisher, so that each project's (or pending name's registrant's) history
    // shows the exchange that could publish to it. Each says nothing of the others: publishers
    // of the same workflow may belong to different users, and another user's project names
    // (pending ones especially) are not theirs to read.
    for (publisher, _) in &chosen {
        let details = json!({
            "publisher_id": publisher.id, "project": publisher.project, "token_id": id,
            "issuer": issuer, "sub": pick("sub"), "repository": pick("repository"), "workflow_ref": pick("job_workflow_ref"),
            "ref": pick("ref"), "sha": pick("sha"), "jti": jti, "pending": publisher.pending,
        });
        let user = if publisher.pending { publisher.created_by } else { None };
        record(&state, "publisher_token_minted", &format!("publisher:{}", publisher.id), user, publisher.project_id, &client, details)
            .await;
    }
    tracing::info!(publisher.ids = %id_list, project.names = %projects.join(", "), "trusted publisher token minted");
    let skipped_out: Vec<Value> = skipped.iter().map(|(_, project, why)| json!({ "project": project, "reason": why })).collect();
    Json(json!({ "success": true, "token": t.secret, "expires": expires_at / 1_000_000, "projects": projects, "skipped": skipped_out }))
        .into_response()
}
