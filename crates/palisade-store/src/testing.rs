//! For tests, in this crate and the ones above it: which layout to test, and a fresh PostgreSQL
//! database for each test that needs one. Not for production use.
//!
//! `PALISADE_TEST_LAYOUT=cluster` asks the layout-aware tests (the store's, the in-process API
//! tests) to run on PostgreSQL and an S3-compatible bucket instead of SQLite and a folder; the
//! test script runs them once each way. `PALISADE_TEST_DATABASE_URL` names the PostgreSQL server
//! (`.ci/run` sets it), `PALISADE_TEST_S3_ENDPOINT` the S3 server (the test script starts moto).

use sqlx::Connection;

/// Whether this test run is for the cluster layout (PostgreSQL and a bucket).
pub fn cluster_layout() -> bool {
    std::env::var("PALISADE_TEST_LAYOUT").is_ok_and(|v| v == "cluster")
}

/// Creates an empty database named `palisade_test_<random>` on the server
/// `PALISADE_TEST_DATABASE_URL` names, and returns its URL. Panics, saying why, without a server:
/// a cluster-layout run that cannot reach one must fail, not pass on SQLite.
pub async fn fresh_postgres() -> String {
    let server = std::env::var("PALISADE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("PALISADE_TEST_LAYOUT=cluster needs PALISADE_TEST_DATABASE_URL (a PostgreSQL server; .ci/run sets it)");
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).expect("randomness");
    let name = format!("palisade_test_{}", hex::encode(id));
    let mut conn = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("CREATE DATABASE");
    let _ = conn.close().await;
    let (base, query) = server.split_once('?').map(|(b, q)| (b, format!("?{q}"))).unwrap_or((&server, String::new()));
    let base = base.rsplit_once('/').map(|(b, _)| b).filter(|b| b.contains("://") && !b.ends_with('/')).unwrap_or(base);
    format!("{base}/{name}{query}")
}
