//! The Palisade HTTP server: routes by area over `palisade_core`. `pypi` speaks PyPI's protocols
//! (simple API, files, JSON API, twine's upload, the Integrity API); `accounts`, `projects`, `review`,
//! `trusted_publishing` and `disclosure` are Palisade's own JSON API; `transparency` serves the log; `web` is the web interface
//! (server-rendered pages); `ops` has health, metrics and request logging; `http` holds what every area shares (the error type, the credential
//! extractor, body limits, the connection listener). It never prints and never exits the
//! process; the binary decides that.

mod accounts;
mod disclosure;
mod http;
mod ops;
mod projects;
mod pypi;
mod review;
mod sharing;
mod transparency;
mod trusted_publishing;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::trace::TraceLayer;

use palisade_core::Core;
pub use palisade_core::{Config, ConfigError};

/// Everything a handler needs, cheap to clone: the core (database, blobs, configuration,
/// scanner, mailer; reached through `Deref`) and what only the HTTP server has.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    cache: Arc<pypi::cache::IndexCache>,
    /// Upstream pages rendered by the mirror, kept briefly.
    mirror_pages: Arc<pypi::mirror::MirrorPages>,
    metrics: Arc<ops::metrics::Metrics>,
    limits: Arc<http::throttle::Limits>,
    oidc: Arc<trusted_publishing::OidcKeys>,
    disclosure_keys: Arc<disclosure::PartnerKeys>,
    http: reqwest::Client,
    /// The address `serve` listens on (it may differ from `config.listen`: port 0).
    bound: Arc<std::sync::OnceLock<SocketAddr>>,
    /// Requests in flight per forwarded client address, behind a proxy only (see `limits`).
    per_client: Option<Arc<http::listener::PerClient>>,
    /// The transparency log's identity (origin and signing key).
    log: palisade_core::transparency::Log,
}

impl std::ops::Deref for AppState {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl AppState {
    /// Opens the core (database and blob folder under `config.data_dir`) and the server's parts.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        // One TLS crypto provider for every client (reqwest, lettre): aws-lc-rs.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let limits = Arc::new(http::throttle::Limits::new(&config.accounts));
        let per_client = config
            .client_ip_header
            .is_some()
            .then(|| http::listener::PerClient::new(usize::try_from(config.http.max_connections_per_client).unwrap_or(usize::MAX)));
        let core = Core::open(config).await?;
        let log = core.open_log().await?;
        let cache: Arc<pypi::cache::IndexCache> = Default::default();
        let hook = cache.clone();
        core.on_change(Arc::new(move |project: &str| hook.invalidate(project)));
        let mirror_pages: Arc<pypi::mirror::MirrorPages> = Default::default();
        let hook = mirror_pages.clone();
        core.on_change(Arc::new(move |project: &str| hook.invalidate(project)));
        Ok(Self {
            core,
            cache,
            mirror_pages,
            metrics: Default::default(),
            limits,
            oidc: Arc::new(trusted_publishing::OidcKeys::new(http.clone())),
            disclosure_keys: Default::default(),
            http,
            bound: Default::default(),
            per_client,
            log,
        })
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

    /// The links of index pages: files under `public_url` when one is configured.
    fn links(&self) -> pypi::render::Links {
        pypi::render::Links::new(self.base_url(), self.config.public_url.as_deref())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pypi::routes())
        .merge(accounts::routes())
        .merge(projects::routes())
        .merge(review::routes())
        .merge(trusted_publishing::routes())
        .merge(disclosure::routes())
        .merge(transparency::routes())
        .merge(sharing::routes())
        .merge(ops::routes())
        .merge(web::routes())
        .fallback(|| async { http::error::not_found("not found") })
        .layer(middleware::from_fn_with_state(state.clone(), http::limits::bound_body))
        .layer(middleware::from_fn_with_state(state.clone(), http::limits::cap_per_client))
        .layer(CatchPanicLayer::custom(|_| http::error::internal("a handler panicked").into_response()))
        .layer(middleware::from_fn_with_state(state.clone(), ops::record_metrics))
        // Outermost first: credentials are marked sensitive before anything could log a header;
        // the request gets Palisade's own id, then the span that carries it (and the line logged
        // when the answer is ready), and the answer gets the id back. A panic above is a 500
        // that is counted and logged like any other.
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::PROXY_AUTHORIZATION,
                    header::COOKIE,
                    header::SET_COOKIE,
                ]))
                .map_request(ops::drop_client_request_id)
                .layer(SetRequestIdLayer::new(ops::REQUEST_ID, ops::RequestIds::new()))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(ops::request_span)
                        .on_request(())
                        .on_response(ops::log_response)
                        .on_failure(ops::log_failure),
                )
                .layer(PropagateRequestIdLayer::new(ops::REQUEST_ID)),
        )
        .with_state(state)
}

/// `301 Moved Permanently`: what PyPI answers for non-normalized names, and what every client
/// version follows (axum's `Redirect::permanent` is a 308).
pub(crate) fn moved(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, v)]).into_response(),
        Err(_) => http::error::bad_request("invalid redirect target").into_response(),
    }
}

/// The OSV feeds at start: records of feeds no longer configured are dropped (they would block
/// for good), and every configured feed's sync is kept queued (checked every five minutes, in
/// case a node without the feed in its configuration took the job).
async fn feeds_upkeep(state: &AppState) {
    match state.core.forget_unconfigured_feeds().await {
        Ok(dropped) => {
            for (feed, n) in dropped {
                tracing::warn!(feed = %feed, records = n, "dropped the records of a feed no longer configured");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not check for feeds no longer configured"),
    }
    let core = state.core.clone();
    tokio::spawn(async move {
        let mut now = true;
        loop {
            if let Err(e) = core.schedule_feeds(now).await {
                tracing::warn!(error = %e, "could not schedule the OSV feeds");
            }
            now = false;
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
    });
}

/// Serves until `shutdown` resolves. Also starts the journal watcher and the orphan sweep.
/// Connections are handled by [`http::listener::run`]: header and idle time-outs, connection caps.
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
    tokio::spawn(pypi::cache::watch_journal(state.db.clone(), state.cache.clone(), Duration::from_millis(state.config.journal_poll_ms)));
    // The orphan sweep, at start and then every few hours, from the job queue (one node runs it).
    if let Err(e) = state.core.schedule_sweep(Duration::ZERO).await {
        tracing::warn!(error = %e, "could not schedule the orphan sweep");
    }
    // A few workers, so that one slow SMTP server does not hold up every other job. Only the
    // first polls the queue every second (each poll is a write); the others wake when there is
    // work, and every half minute.
    let name = palisade_core::jobs::worker_name();
    if state.db.engine() == palisade_store::Engine::Postgres {
        http::throttle::share(state.limits.clone(), state.db.clone(), name.clone());
    }
    for i in 0..palisade_core::jobs::WORKERS {
        let (core, worker) = (state.core.clone(), format!("{name}#{i}"));
        let poll = Duration::from_secs(if i == 0 { 1 } else { 30 });
        tokio::spawn(async move { core.work(worker, poll).await });
    }
    let scan = state.scan.clone();
    tokio::spawn(async move { scan.warm_up().await });
    // The OSV records that block: reloaded on every node when any node (or the CLI) changes
    // them, and the cached pages dropped with them; the feeds' syncs, from the job queue.
    {
        let cache = state.cache.clone();
        state.core.on_blocks_reloaded(std::sync::Arc::new(move || cache.invalidate_all()));
        let mirror_pages = state.mirror_pages.clone();
        state.core.on_blocks_reloaded(std::sync::Arc::new(move || mirror_pages.invalidate_all()));
        let core = state.core.clone();
        let every = Duration::from_millis(state.config.journal_poll_ms.max(500));
        tokio::spawn(async move { core.watch_blocks(every).await });
        feeds_upkeep(&state).await;
    }
    // The transparency log's sequencer: a checkpoint for new entries every `transparency.sequence_ms`.
    tokio::spawn(state.core.clone().run_sequencer(state.log.clone()));
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    // Behind a proxy every connection comes from the proxy: the per-client cap is applied per
    // forwarded address, to requests (limits::cap_per_client), not here.
    let cap_per_peer = config.client_ip_header.is_none();
    http::listener::run(listener, router(state), &config.http, cap_per_peer, metrics, shutdown).await;
    Ok(())
}
