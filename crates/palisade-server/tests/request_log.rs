//! The request log, in a test binary of its own: its subscriber is thread-local, and tracing's
//! interest cache is global, so other tests running at the same time on threads with no
//! subscriber made it miss lines now and then (seen in the cluster layout's slower runs).

use std::io::Write;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use palisade_core::Config;
use palisade_server::AppState;
use tower::ServiceExt;

struct TestApp {
    state: AppState,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
}

impl TestApp {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::open(Config { data_dir: dir.path().to_path_buf(), ..Config::default() }).await.unwrap();
        Self { state, _dir: dir }
    }

    async fn send(&self, mut req: Request<Body>) -> Reply {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        let resp = palisade_server::router(self.state.clone()).oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        resp.into_body().collect().await.unwrap();
        Reply { status, headers }
    }

    async fn get(&self, uri: &str, _accept: Option<&str>) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }
}

/// A writer for a test's log subscriber: everything goes into one shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every answer carries an id of Palisade's own (a client's `X-Request-Id` is replaced), and the
/// request's log line carries the same id with the fields operators grep for; credentials are
/// never in it.
#[tokio::test]
async fn requests_are_logged_under_their_own_id() {
    let app = TestApp::new().await;
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let req = Request::get("/simple/")
        .header("x-request-id", "forged-id")
        .header(header::AUTHORIZATION, "Bearer pypi-secret-in-a-header")
        .header(header::COOKIE, "session=cookie-secret")
        .body(Body::empty())
        .unwrap();
    let first = app.send(req).await;
    assert_eq!(first.status, StatusCode::OK);
    let id = first.headers.get("x-request-id").expect("an x-request-id header").to_str().unwrap().to_string();
    assert_ne!(id, "forged-id", "a client's request id is not taken");
    let second = app.get("/simple/", None).await;
    assert_ne!(second.headers.get("x-request-id").unwrap().to_str().unwrap(), id, "every request has its own id");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains(&id)).unwrap_or_else(|| panic!("no log line with request id {id}:\n{text}"));
    for field in
        [&format!("request.id={id}"), "http.method=GET", "http.path=/simple/", "http.route=/simple/", "http.status=200", "duration_ms="]
    {
        assert!(line.contains(field), "{field} missing from the request's log line: {line}");
    }
    for secret in ["forged-id", "pypi-secret-in-a-header", "cookie-secret"] {
        assert!(!text.contains(secret), "{secret} is in the log:\n{text}");
    }
    // A handler's 404 is logged under its request too, with the matched route unknown.
    let missing = app.get("/no/such/page", None).await;
    let id = missing.headers.get("x-request-id").unwrap().to_str().unwrap().to_string();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().any(|l| l.contains(&id) && l.contains("http.route=unmatched") && l.contains("http.status=404")), "{text}");
}
