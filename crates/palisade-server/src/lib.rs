//! The Palisade HTTP server: the simple API, PyPI's JSON API, file downloads and the upload API,
//! with authentication, the index cache and metrics. It never prints and never exits the process;
//! the binary decides that.

mod accounts;
pub mod admin;
pub mod auth;
mod cache;
pub mod config;
mod disclose;
mod error;
pub mod events;
mod files;
mod json_api;
mod limits;
mod listener;
mod mail;
mod metrics;
mod negotiate;
pub mod oidc;
mod projects;
pub mod publishers;
mod render;
mod review;
pub mod scanning;
mod simple;
pub mod tokens;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use palisade_store::{BlobStore, Db};

pub use config::{Config, ConfigError};

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub blobs: BlobStore,
    pub config: Arc<Config>,
    pub scan: Arc<scanning::ScanService>,
    cache: Arc<cache::IndexCache>,
    metrics: Arc<metrics::Metrics>,
    mailer: mail::Mailer,
    limits: Arc<accounts::Limits>,
    oidc: Arc<oidc::OidcKeys>,
    disclosure_keys: Arc<disclose::PartnerKeys>,
    http: reqwest::Client,
    /// The address `serve` listens on (it may differ from `config.listen`: port 0).
    bound: Arc<std::sync::OnceLock<SocketAddr>>,
    /// Requests in flight per forwarded client address, behind a proxy only (see `limits`).
    per_client: Option<Arc<listener::PerClient>>,
}

impl AppState {
    /// Opens the database and blob folder under `config.data_dir`.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let db = Db::open(&config.data_dir).await?;
        let blobs = BlobStore::open(&config.data_dir)?;
        let scan = Arc::new(scanning::ScanService::new(config.scan.clone()));
        // One TLS crypto provider for every client (reqwest, lettre): aws-lc-rs.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let mailer = mail::Mailer::new(&config.smtp)?;
        let limits = Arc::new(accounts::Limits::new(&config.accounts));
        let per_client = config
            .client_ip_header
            .is_some()
            .then(|| listener::PerClient::new(usize::try_from(config.http.max_connections_per_client).unwrap_or(usize::MAX)));
        Ok(Self {
            db,
            blobs,
            scan,
            config: Arc::new(config),
            cache: Default::default(),
            metrics: Default::default(),
            mailer,
            limits,
            oidc: Arc::new(oidc::OidcKeys::new(http.clone())),
            disclosure_keys: Default::default(),
            http,
            bound: Default::default(),
            per_client,
        })
    }

    /// Drops the cached pages of a project after a change made outside the upload path.
    pub fn invalidate(&self, project: &str) {
        self.cache.invalidate(project);
    }

    /// The base of every absolute URL Palisade writes (the JSON API, links in mail): `public_url`,
    /// or without it the address the server listens on. Never the request's `Host` header:
    /// anyone can send `Host: evil.example`, and the answers are cached and shared.
    fn base_url(&self) -> String {
        match (&self.config.public_url, self.bound.get()) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(addr)) => format!("http://{addr}"),
            (None, None) => format!("http://{}", self.config.listen),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let upload_limit = DefaultBodyLimit::disable();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/simple", get(|| async { moved("/simple/") }))
        .route("/simple/", get(simple::root))
        .route("/simple/{project}", get(simple::project_no_slash))
        .route("/simple/{project}/", get(simple::project))
        .route("/files/{filename}", get(files::download))
        .route("/pypi/{project}/json", get(json_api::project))
        .route("/pypi/{project}/json/", get(json_api::project))
        .route("/pypi/{project}/{version}/json", get(json_api::release))
        .route("/pypi/{project}/{version}/json/", get(json_api::release))
        .route("/api/quarantine", get(review::list))
        .route("/api/quarantine/{filename}", get(review::show))
        .route("/api/quarantine/{filename}/release", post(review::release))
        .route("/api/quarantine/{filename}/confirm", post(review::confirm))
        .route("/_/oidc/audience", get(oidc::audience))
        .route("/_/oidc/mint-token", post(oidc::mint_token))
        .route("/_/secrets/disclose-token", post(disclose::disclose))
        .route("/api/register", post(accounts::register))
        .route("/api/verify-email", get(accounts::verify_email).post(accounts::verify_email))
        .route("/api/password/forgot", post(accounts::forgot_password))
        .route("/api/password/reset", post(accounts::reset_password))
        .route("/api/login", post(accounts::login))
        .route("/api/login/second-factor", post(accounts::second_factor))
        .route("/api/logout", post(accounts::logout))
        .route("/api/account", get(accounts::account))
        .route("/api/account/password", post(accounts::change_password))
        .route("/api/account/email", post(accounts::change_email))
        .route("/api/account/email/verify", post(accounts::resend_verification))
        .route("/api/account/2fa/totp", post(accounts::totp_begin))
        .route("/api/account/2fa/totp/{id}/confirm", post(accounts::totp_confirm))
        .route("/api/account/2fa/{id}", delete(accounts::remove_factor))
        .route("/api/account/recovery-codes", post(accounts::new_recovery_codes))
        .route("/api/account/sessions", get(accounts::sessions))
        .route("/api/account/sessions/{id}", delete(accounts::end_session))
        .route("/api/account/tokens", get(accounts::list_tokens).post(accounts::create_token))
        .route("/api/account/tokens/{id}", delete(accounts::revoke_token))
        .route("/api/account/events", get(accounts::events))
        .route("/api/account/pending-publishers", get(projects::list_pending).post(projects::create_pending))
        .route("/api/account/pending-publishers/{id}", delete(projects::delete_pending))
        .route("/api/projects/{project}/roles", get(projects::roles))
        .route("/api/projects/{project}/roles/{user}", axum::routing::put(projects::set_role).delete(projects::remove_role))
        .route("/api/projects/{project}/publishers", get(projects::publishers).post(projects::create_publisher))
        .route("/api/projects/{project}/publishers/{id}", delete(projects::delete_publisher))
        .route("/api/projects/{project}/releases/{version}/yank", post(projects::yank))
        .route("/api/projects/{project}/releases/{version}/unyank", post(projects::unyank))
        .route("/api/projects/{project}/files/{filename}", delete(projects::remove_file))
        .route("/api/projects/{project}/events", get(projects::events))
        .route("/legacy/", post(upload::upload).layer(upload_limit))
        .route("/legacy", post(upload::upload).layer(upload_limit))
        .route("/", get(|| async { Redirect::temporary("/simple/") }).post(upload::upload).layer(upload_limit))
        .fallback(|| async { error::not_found("not found") })
        .layer(middleware::from_fn_with_state(state.clone(), limits::bound_body))
        .layer(middleware::from_fn_with_state(state.clone(), limits::cap_per_client))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| error::internal("a handler panicked").into_response()))
        .with_state(state)
}

/// `301 Moved Permanently`: what PyPI answers for non-normalized names, and what every client
/// version follows (axum's `Redirect::permanent` is a 308).
pub(crate) fn moved(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, v)]).into_response(),
        Err(_) => error::bad_request("invalid redirect target").into_response(),
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.db.last_serial().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], state.metrics.render()).into_response()
}

static REQUEST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Records metrics and logs one line per request, under a span carrying a request id.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method());
    let path = request.uri().path().to_string();
    let id = REQUEST_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!("request", request.id = id, http.route = %route);
    let mut response = {
        let _enter = span.enter();
        drop(_enter);
        tracing::Instrument::instrument(next.run(request), span.clone()).await
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe(&route, method, status, elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(http.method = method, http.path = %path, http.status = status, duration_ms = elapsed.as_secs_f64() * 1000.0, "request");
    });
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn method_label(m: &axum::http::Method) -> &'static str {
    match *m {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Serves until `shutdown` resolves. Also starts the journal watcher and the orphan sweep.
/// Connections are handled by [`listener::run`]: header and idle time-outs, connection caps.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        let _ = state.bound.set(addr);
        if state.config.public_url.is_none() && addr.ip().is_unspecified() {
            tracing::warn!(listen = %addr, "public_url is not set and the server listens on every interface: absolute links (JSON API, mail) name {addr}; set public_url to the address clients use");
        }
    }
    // Only the server cleans tmp/, and only what no live process is writing (a CLI command must
    // not delete the uploads in flight here, nor a second server those of the first).
    let stale = state.blobs.clean_stale_tmp()?;
    if stale > 0 {
        tracing::info!(count = stale, "removed temporary files left by interrupted uploads");
    }
    let serial = state.db.last_serial().await?;
    state.cache.seen_serial.store(serial as u64, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(cache::watch_journal(state.db.clone(), state.cache.clone(), Duration::from_millis(state.config.journal_poll_ms)));
    tokio::spawn(sweep_orphans(state.clone()));
    let scan = state.scan.clone();
    tokio::spawn(async move { scan.warm_up().await });
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    // Behind a proxy every connection comes from the proxy: the per-client cap is applied per
    // forwarded address, to requests (limits::cap_per_client), not here.
    let cap_per_peer = config.client_ip_header.is_none();
    listener::run(listener, router(state), &config.http, cap_per_peer, metrics, shutdown).await;
    Ok(())
}

/// Removes blobs that no file references: what a crash between "blob stored" and "transaction
/// committed" leaves. Runs once, after start-up, off the request path; blobs younger than a
/// minute are left alone because an upload may be about to commit them.
async fn sweep_orphans(state: AppState) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let blobs = state.blobs.clone();
    let Ok(Ok(list)) = tokio::task::spawn_blocking(move || blobs.list()).await else { return };
    let mut removed = 0;
    for sha in list {
        let path = state.blobs.path_for(&sha);
        let young = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(60))
            .unwrap_or(true);
        if young && !state.config.sweep_young_blobs {
            continue;
        }
        if let Ok(false) = state.db.blob_referenced(&sha).await
            && let Ok(true) = state.db.remove_blob_if_unreferenced(&state.blobs, &sha).await
        {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::warn!(count = removed, "removed unreferenced blobs left by an interrupted upload");
    }
}
