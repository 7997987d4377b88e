//! Operations: the health check, Prometheus metrics, and what every request is logged with (an
//! id, a span, one line when it is answered).

pub mod metrics;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::request_id::RequestId;
use tracing::Span;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics_text))
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
    let mut text = state.metrics.render();
    if state.config.mirror.enabled() {
        text.push_str(&mirror_metrics(&state).await);
    }
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text).into_response()
}

/// The mirror's counters, and what its tables hold: how stale the kept pages are.
async fn mirror_metrics(state: &AppState) -> String {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let c = &state.core.mirror.counters;
    let mut out = String::new();
    let counters = [
        ("palisade_mirror_upstream_requests_total", "Requests sent to upstream indexes.", "kind=\"page\"", c.page_requests.load(Relaxed)),
        ("palisade_mirror_upstream_requests_total", "", "kind=\"file\"", c.file_requests.load(Relaxed)),
        ("palisade_mirror_upstream_requests_total", "", "kind=\"other\"", c.other_requests.load(Relaxed)),
        (
            "palisade_mirror_upstream_errors_total",
            "Upstream requests that failed or answered wrongly.",
            "",
            c.upstream_errors.load(Relaxed),
        ),
        (
            "palisade_mirror_stale_served_total",
            "Pages served from the kept copy because upstream failed.",
            "",
            c.stale_served.load(Relaxed),
        ),
        ("palisade_mirror_files_fetched_total", "Upstream files fetched, checked and scanned.", "", c.files_fetched.load(Relaxed)),
        ("palisade_mirror_files_refused_total", "Upstream files the scanner held or blocked.", "", c.files_refused.load(Relaxed)),
        (
            "palisade_mirror_read_ahead_total",
            "Upstream files chosen to be fetched ahead of the clients (fetched unless already kept).",
            "",
            c.read_ahead.load(Relaxed),
        ),
        ("palisade_mirror_upstream_bytes_total", "Bytes received from upstream indexes.", "", c.upstream_bytes.load(Relaxed)),
    ];
    for (name, help, labels, n) in counters {
        if !help.is_empty() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        }
        let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}{labels} {n}");
    }
    let scan = c.scan_micros.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP palisade_mirror_scan_seconds_total Time spent scanning upstream files.\n# TYPE palisade_mirror_scan_seconds_total counter\npalisade_mirror_scan_seconds_total {scan:.3}"
    );
    if let Ok(stats) = state.db.mirror_stats().await {
        let age = if stats.oldest_fetch > 0 { (palisade_store::now_micros() - stats.oldest_fetch).max(0) as f64 / 1e6 } else { 0.0 };
        let _ = writeln!(
            out,
            "# HELP palisade_mirror_pages Upstream pages kept.\n# TYPE palisade_mirror_pages gauge\npalisade_mirror_pages {}",
            stats.pages
        );
        let _ = writeln!(
            out,
            "# HELP palisade_mirror_page_bytes Bytes of upstream pages kept.\n# TYPE palisade_mirror_page_bytes gauge\npalisade_mirror_page_bytes {}",
            stats.page_bytes
        );
        let _ = writeln!(
            out,
            "# HELP palisade_mirror_stale_pages Kept pages whose last refresh failed (served stale).\n# TYPE palisade_mirror_stale_pages gauge\npalisade_mirror_stale_pages {}",
            stats.stale
        );
        let _ = writeln!(
            out,
            "# HELP palisade_mirror_oldest_page_age_seconds Age of the least recently fetched kept page.\n# TYPE palisade_mirror_oldest_page_age_seconds gauge\npalisade_mirror_oldest_page_age_seconds {age:.0}"
        );
        let _ = writeln!(out, "# HELP palisade_mirror_files Upstream files kept, by status.\n# TYPE palisade_mirror_files gauge");
        for (status, n, _) in &stats.files {
            let _ = writeln!(out, "palisade_mirror_files{{status=\"{status}\"}} {n}");
        }
    }
    out
}

/// Records the request in the metrics (route, method, status, latency). Logging and the request id
/// are tower-http's layers, applied in [`crate::router`]; this stays a middleware because
/// `TraceLayer`'s response hook does not see the request's route.
pub async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method());
    let response = next.run(request).await;
    state.metrics.observe(&route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// Drops a request id the client sent, so that `SetRequestIdLayer` always makes one. A client's
/// id would be written into the log as the request's (a forged id could point an operator at
/// someone else's request), and the id in a 5xx answer must name exactly one request. Behind a
/// proxy, correlate through the response: the proxy can log the `X-Request-Id` Palisade answers.
pub fn drop_client_request_id(mut request: Request) -> Request {
    request.headers_mut().remove(REQUEST_ID);
    request
}

/// The header carrying the request id, set on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: a random prefix drawn once per process and a counter, so that ids are unique
/// across the nodes and restarts of one installation without a random draw per request (a
/// UUID per request cost a system call on every page served).
#[derive(Clone)]
pub struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    pub fn new() -> Self {
        Self { prefix: palisade_auth::random_token("", 9).into(), next: Default::default() }
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix)).ok().map(tower_http::request_id::RequestId::new)
    }
}

/// The span every request runs in: its id, method, path and matched route. Every line logged while
/// handling the request carries them. The query string is left out (it is the client's, and
/// nothing Palisade serves needs it to find a request in the log).
pub fn request_span(request: &Request) -> Span {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!(
        "request",
        request.id = %id,
        http.method = %request.method(),
        http.path = %request.uri().path(),
        http.route = %route,
    )
}

/// The one line per request, in its span: status and latency.
pub fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::info!(http.status = response.status().as_u16(), duration_ms = latency.as_secs_f64() * 1000.0, "request");
}

/// A response body that failed while streaming (a 5xx status is not a failure here: the handler
/// logged its cause already, and the request's line has the status).
pub fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
    if let ServerErrorsFailureClass::Error(error) = failure {
        tracing::warn!(error = %error, duration_ms = latency.as_secs_f64() * 1000.0, "response failed");
    }
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
