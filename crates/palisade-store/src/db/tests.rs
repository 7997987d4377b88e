use tokio::io::AsyncWriteExt;

use super::*;

/// Where a test's database lives: SQLite in `dir`, or with `PALISADE_TEST_LAYOUT=cluster` a fresh
/// PostgreSQL database (see [`crate::testing`]). A URL, so that a test can open it again.
async fn test_url(dir: &std::path::Path) -> String {
    if crate::testing::cluster_layout() { crate::testing::fresh_postgres().await } else { sqlite_url(&dir.join("palisade.db")).unwrap() }
}

async fn open_test(dir: &std::path::Path) -> (Db, String) {
    let url = test_url(dir).await;
    (Db::connect(&url, 4).await.unwrap(), url)
}

/// Publishes `f` the way an upload does: its bytes (here, its sha256 as text) persisted first.
async fn publish(db: &Db, blobs: &BlobStore, f: &NewFile) -> Result<PublishOutcome, StoreError> {
    db.publish(f, &stored(blobs, &f.sha256).await).await
}

async fn stored(blobs: &BlobStore, sha: &str) -> StoredBlob {
    let mut t = blobs.create_temp().await.unwrap();
    t.file.write_all(sha.as_bytes()).await.unwrap();
    blobs.persist(t, sha).await.unwrap()
}

/// What reserves `filename` (a Python distribution's) in `db`.
async fn reserved_by(db: &Db, filename: &str) -> Option<Reservation> {
    db.reservation(filename, &identity_of(filename).unwrap()).await.unwrap()
}

fn new_file(filename: &str, sha: &str, user: &User) -> NewFile {
    let sdist = filename.ends_with(".tar.gz");
    NewFile {
        project_name: "Demo".into(),
        normalized: "demo".into(),
        version: "1.0".into(),
        canonical_version: "1".into(),
        metadata_json: "{}".into(),
        requires_python: None,
        filename: filename.into(),
        identity: identity_of(filename).unwrap(),
        packagetype: if sdist { "sdist" } else { "bdist_wheel" }.into(),
        python_version: if sdist { "source" } else { "py3" }.into(),
        size: 3,
        sha256: sha.into(),
        blake2b_256: "b".into(),
        md5: "m".into(),
        core_metadata: b"Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\n".to_vec(),
        metadata_sha256: "x".into(),
        uploader_id: Some(user.id),
        publisher_id: None,
        uploader_name: user.name.clone(),
        uploader_is_admin: user.is_admin,
        status: "published".into(),
        scan: None,
        attestations: Vec::new(),
        log_actor: format!("user:{}", user.name),
    }
}

#[tokio::test]
async fn publish_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let bob = db.create_user("bob", false, None, false, None).await.unwrap();
    assert!(matches!(db.create_user("alice", false, None, false, None).await, Err(StoreError::Exists(_))));

    let out = publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap();
    assert!(matches!(out, PublishOutcome::Published { created_project: true, .. }));
    let project = db.project("demo").await.unwrap().unwrap();
    assert_eq!(db.role(project.id, alice.id).await.unwrap(), Some(Role::Owner));

    // Idempotent re-upload; a different file under the same name is refused.
    assert_eq!(publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap(), PublishOutcome::Identical);
    assert!(matches!(publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s2", &alice)).await, Err(StoreError::Reserved(_))));

    // Someone without a role cannot add to the project.
    assert!(matches!(publish(&db, &blobs, &new_file("demo-1.0-py2-none-any.whl", "s3", &bob)).await, Err(StoreError::Conflict(_))));
    db.set_role("demo", "bob", Role::Maintainer, "alice").await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0-py2-none-any.whl", "s3", &bob)).await.unwrap();

    // One sdist per release (1.0 and 1.0.0 are the same release, and the same sdist).
    publish(&db, &blobs, &new_file("demo-1.0.tar.gz", "s4", &alice)).await.unwrap();
    let mut second = new_file("demo-1.0.0.tar.gz", "s5", &alice);
    second.version = "1.0.0".into();
    let reserved = Reservation { filename: "demo-1.0.tar.gz".into(), sha256: "s4".into(), live: true };
    assert_eq!(publish(&db, &blobs, &second).await.unwrap_err().to_string(), StoreError::Reserved(reserved.clone()).to_string());
    assert_eq!(reserved_by(&db, "demo-1.0.0.tar.gz").await, Some(reserved));

    // Removal keeps the name, and every other spelling of the file, reserved forever.
    assert!(db.remove_file(&blobs, "demo-1.0.tar.gz", "admin").await.unwrap());
    assert!(db.file("demo-1.0.tar.gz").await.unwrap().is_none());
    assert!(matches!(publish(&db, &blobs, &new_file("demo-1.0.tar.gz", "s4", &alice)).await, Err(StoreError::Reserved(_))));
    let removed = Reservation { filename: "demo-1.0.tar.gz".into(), sha256: "s4".into(), live: false };
    assert_eq!(reserved_by(&db, "demo-1.0.0.tar.gz").await, Some(removed));
    match publish(&db, &blobs, &second).await {
        Err(StoreError::Reserved(r)) => assert_eq!((r.filename.as_str(), r.live), ("demo-1.0.tar.gz", false)),
        other => panic!("{other:?}"),
    }

    // Other spellings of a wheel: same identity, refused even with the same bytes; the exact
    // spelling wins the lookup. A wheel with other tags is another file.
    for other in ["Demo-1.0-py3-none-any.whl", "demo-1.0.0-py3-none-any.whl", "demo-1-PY3-none-any.whl"] {
        let r = reserved_by(&db, other).await.expect(other);
        assert_eq!((r.filename.as_str(), r.live), ("demo-1.0-py3-none-any.whl", true), "{other}");
        assert!(matches!(publish(&db, &blobs, &new_file(other, "s1", &alice)).await, Err(StoreError::Reserved(_))), "{other}");
    }
    assert_eq!(reserved_by(&db, "demo-1.0-py2.py3-none-any.whl").await, None);

    // Yank a whole release, then one file back.
    assert_eq!(db.set_yanked("demo", "1.0.0", None, true, Some("broken"), "alice").await.unwrap(), 2);
    db.set_yanked("demo", "1.0", Some("demo-1.0-py2-none-any.whl"), false, None, "alice").await.unwrap();
    let files = db.project_files(project.id).await.unwrap();
    let yanked: Vec<_> = files.iter().map(|f| (f.filename.as_str(), f.yanked, f.yanked_reason.as_deref())).collect();
    assert_eq!(yanked, vec![("demo-1.0-py2-none-any.whl", false, None), ("demo-1.0-py3-none-any.whl", true, Some("broken"))]);

    // A yank reason is plain text on one line (it is shown in index pages and terminals).
    let err = db.set_yanked("demo", "1.0", None, true, Some("fixed in 2.0\u{202E}1.0.2 ni"), "alice").await.unwrap_err();
    assert!(err.to_string().starts_with("the yank reason contains a bidirectional embedding or override (U+202E)"), "{err}");
    let err = db.set_status("demo", "deprecated", Some("see\u{2028}other"), "admin").await.unwrap_err();
    assert!(err.to_string().starts_with("the status reason contains a line separator (U+2028)"), "{err}");

    // The last owner cannot be removed.
    assert!(matches!(db.remove_role("demo", "alice", "x").await, Err(StoreError::Conflict(_))));

    let serial = db.last_serial().await.unwrap();
    assert_eq!(db.project("demo").await.unwrap().unwrap().last_serial, serial);
    let journal = db.journal_since(0, 100).await.unwrap();
    assert!(journal.iter().any(|j| j.action == "create"));
}

/// Rows reserved before migration 0004 get their identity when the database is opened; where old
/// rows already collide, the earliest keeps it and the others reserve only their own spelling.
#[tokio::test]
async fn identities_are_backfilled_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (db, url) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap();
    // What a database from before 0004 looks like: rows without an identity, two of them
    // spellings of one file (the attack the identity closes had already happened).
    let mut tx = db.begin().await.unwrap();
    for (name, at) in [("Demo-1.0.0-py3-none-any.whl", 2), ("demo-1.0.tar.gz", 3), ("not-a-dist.zip", 4)] {
        sqlx::query("INSERT INTO filenames (filename, project_id, sha256, created_at) VALUES ($1, 1, 'x', $2)")
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE filenames SET identity = NULL, created_at = 1").execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE filenames SET created_at = 2 WHERE filename = 'Demo-1.0.0-py3-none-any.whl'").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    drop(db);

    let identities = |db: Db| async move {
        sqlx::query_as::<_, (String, Option<String>)>("SELECT filename, identity FROM filenames ORDER BY filename")
            .fetch_all(&db.reader)
            .await
            .unwrap()
    };
    let db = Db::connect(&url, 4).await.unwrap();
    let expected = vec![
        ("Demo-1.0.0-py3-none-any.whl".to_string(), Some("demo 1 wheel - py3-none-any#Demo-1.0.0-py3-none-any.whl".to_string())),
        ("demo-1.0-py3-none-any.whl".to_string(), Some("demo 1 wheel - py3-none-any".to_string())),
        ("demo-1.0.tar.gz".to_string(), Some("demo 1 sdist".to_string())),
        ("not-a-dist.zip".to_string(), Some("unparsed#not-a-dist.zip".to_string())),
    ];
    assert_eq!(identities(db.clone()).await, expected);
    // Opening again changes nothing; the earliest spelling holds the reservation.
    drop(db);
    let db = Db::connect(&url, 4).await.unwrap();
    assert_eq!(identities(db.clone()).await, expected);
    let r = reserved_by(&db, "demo-1-py3-none-any.whl").await.unwrap();
    assert_eq!(r.filename, "demo-1.0-py3-none-any.whl");
    assert_eq!(reserved_by(&db, "Demo-1.0.0-py3-none-any.whl").await.unwrap().filename, "Demo-1.0.0-py3-none-any.whl");
}

#[tokio::test]
async fn tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let u = db.create_user("u", true, None, false, None).await.unwrap();
    let id =
        db.create_token(Some(u.id), None, "h1", "pal_ab", Some(&["a".to_string(), "b-c".to_string()]), None, None, None).await.unwrap();
    let t = db.token_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(t.id, id);
    assert!(t.user_is_admin);
    assert_eq!(t.project_scope(), Some(vec!["a".to_string(), "b-c".to_string()]));
    db.touch_token(id, "127.0.0.1").await.unwrap();
    db.revoke_token(id, "test").await.unwrap();
    assert!(db.revoke_token(id, "test").await.is_err());
    let t = db.token_by_hash("h1").await.unwrap().unwrap();
    assert!(t.revoked_at.is_some());
    assert_eq!(t.last_used_addr.as_deref(), Some("127.0.0.1"));
    assert!(db.token_by_hash("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn quarantine_review() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let scan = NewScan {
        verdict: "suspicious".into(),
        score: 6.0,
        report_json: "{}".into(),
        outcome: "quarantined".into(),
        trigger: "upload".into(),
    };
    let mut f = new_file("demo-1.0-py3-none-any.whl", "s1", &alice);
    f.status = "quarantined".into();
    f.scan = Some(scan.clone());
    publish(&db, &blobs, &f).await.unwrap();
    let q = db.quarantined(None).await.unwrap();
    assert_eq!(q.len(), 1);
    assert!(!q[0].is_published());
    db.release_file("demo-1.0-py3-none-any.whl", "admin", Some("false positive")).await.unwrap();
    assert!(db.quarantined(None).await.unwrap().is_empty());
    assert!(db.file("demo-1.0-py3-none-any.whl").await.unwrap().unwrap().is_published());
    let reports = db.reports("demo-1.0-py3-none-any.whl").await.unwrap();
    assert_eq!(reports[0].decision.as_deref(), Some("released"));
    assert_eq!(reports[0].decided_by.as_deref(), Some("admin"));
    // A rescan can put it back; confirming keeps it, malicious, out of the queue and unserved,
    // with its bytes; a release can undo that; a removal is for good.
    db.quarantine_file("demo-1.0-py3-none-any.whl", &scan, "rescan").await.unwrap();
    db.confirm_file("demo-1.0-py3-none-any.whl", "admin", None).await.unwrap();
    let confirmed = db.file("demo-1.0-py3-none-any.whl").await.unwrap().unwrap();
    assert_eq!(confirmed.status, "malicious");
    assert!(db.quarantined(None).await.unwrap().is_empty());
    assert!(blobs.exists("s1").await.unwrap());
    assert!(db.confirm_file("demo-1.0-py3-none-any.whl", "admin", None).await.is_err());
    db.release_file("demo-1.0-py3-none-any.whl", "admin", Some("wrong call")).await.unwrap();
    assert!(db.file("demo-1.0-py3-none-any.whl").await.unwrap().unwrap().is_published());
    db.quarantine_file("demo-1.0-py3-none-any.whl", &scan, "rescan").await.unwrap();
    db.confirm_file("demo-1.0-py3-none-any.whl", "admin", None).await.unwrap();
    assert!(db.remove_file(&blobs, "demo-1.0-py3-none-any.whl", "admin").await.unwrap());
    assert!(!blobs.exists("s1").await.unwrap());
    assert!(db.file("demo-1.0-py3-none-any.whl").await.unwrap().is_none());
    assert!(db.release_file("demo-1.0-py3-none-any.whl", "admin", None).await.is_err());
    assert_eq!(db.reports("demo-1.0-py3-none-any.whl").await.unwrap().len(), 3);
}

/// A publisher token covers several publishers (of different owners); removing one of them
/// neither breaks the token for the others nor leaves it able to upload where it was removed.
#[tokio::test]
async fn publisher_tokens_cover_several_publishers_and_survive_removals() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let mallory = db.create_user("mallory", false, None, false, None).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap();
    let mut other = new_file("other-1.0-py3-none-any.whl", "s2", &mallory);
    (other.project_name, other.normalized) = ("other".into(), "other".into());
    publish(&db, &blobs, &other).await.unwrap();
    let demo = db.project("demo").await.unwrap().unwrap();
    let theirs = db.project("other").await.unwrap().unwrap();
    let (iss, spec) = ("https://issuer.test", r#"{"kind":"custom","issuer":"https://issuer.test","claims":{"sub":"x"}}"#);
    let a = db.add_publisher(Some(demo.id), None, iss, spec, Some(alice.id), None, None).await.unwrap();
    let m = db.add_publisher(Some(theirs.id), None, iss, spec, Some(mallory.id), None, None).await.unwrap();
    // The same spec twice on one project is still refused.
    assert!(matches!(db.add_publisher(Some(demo.id), None, iss, spec, None, None, None).await, Err(StoreError::Exists(_))));

    let projects = ["demo".to_string(), "other".to_string()];
    let token = db.create_publisher_token(&[m, a], "h1", "pal_x", &projects, "test", now_micros() + 60_000_000).await.unwrap().unwrap();
    assert_eq!(db.publisher_for_token(token, "demo").await.unwrap().map(|p| p.id), Some(a));
    assert_eq!(db.publisher_for_token(token, "other").await.unwrap().map(|p| p.id), Some(m));
    assert!(db.publisher_for_token(token, "elsewhere").await.unwrap().is_none());

    // Mallory removes her publisher (the token's first one): the token keeps alice's.
    assert!(db.remove_publisher(m).await.unwrap());
    let t = db.token_by_hash("h1").await.unwrap().expect("the token survives");
    assert_eq!(t.publisher_id, Some(a));
    assert!(db.publisher_for_token(token, "other").await.unwrap().is_none());
    assert_eq!(db.publisher_for_token(token, "demo").await.unwrap().map(|p| p.id), Some(a));
    // Alice removes hers too: nothing is left for the token to do, so it goes.
    assert!(db.remove_publisher(a).await.unwrap());
    assert!(db.token_by_hash("h1").await.unwrap().is_none());
    assert!(!db.remove_publisher(a).await.unwrap());
    // Minting against publishers that vanished meanwhile stores nothing.
    assert_eq!(db.create_publisher_token(&[a, m], "h2", "pal_y", &projects, "test", now_micros()).await.unwrap(), None);
}

#[tokio::test]
async fn pending_publishers_expire_and_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let (iss, spec) = ("https://issuer.test", r#"{"kind":"custom","issuer":"https://issuer.test","claims":{"sub":"x"}}"#);
    let live = db.add_publisher(None, Some("fresh"), iss, spec, Some(alice.id), Some(now_micros() + 3_600_000_000), None).await.unwrap();
    let old = db.add_publisher(None, Some("stale"), iss, spec, Some(alice.id), Some(now_micros() - 1), None).await.unwrap();
    let ids = |v: Vec<Publisher>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(db.publishers_for_issuer(iss).await.unwrap()), vec![live]);
    assert_eq!(ids(db.pending_publishers_of(alice.id).await.unwrap()), vec![live]);
    assert!(db.publisher(old).await.unwrap().unwrap().expired(now_micros()));
    // An expired pending publisher cannot create its project.
    let token = db.create_publisher_token(&[old], "h", "pal_z", &["stale".into()], "t", now_micros() + 60_000_000).await.unwrap().unwrap();
    assert!(db.publisher_for_token(token, "stale").await.unwrap().is_none());
    let mut f = new_file("stale-1.0-py3-none-any.whl", "s9", &alice);
    (f.project_name, f.normalized, f.uploader_id, f.publisher_id) = ("stale".into(), "stale".into(), None, Some(old));
    assert!(matches!(publish(&db, &blobs, &f).await, Err(StoreError::Conflict(_))));
    assert!(db.project("stale").await.unwrap().is_none());
    assert_eq!(ids(db.sweep_expired_publishers().await.unwrap()), vec![old]);
    assert!(db.publisher(old).await.unwrap().is_none());
    assert!(db.token_by_hash("h").await.unwrap().is_none());
    assert!(db.sweep_expired_publishers().await.unwrap().is_empty());
    // A live one creates its project, becomes ordinary and no longer expires.
    let mut f = new_file("fresh-1.0-py3-none-any.whl", "s10", &alice);
    (f.project_name, f.normalized, f.uploader_id, f.publisher_id) = ("fresh".into(), "fresh".into(), None, Some(live));
    publish(&db, &blobs, &f).await.unwrap();
    let p = db.publisher(live).await.unwrap().unwrap();
    assert!(!p.pending && p.expires_at.is_none(), "{p:?}");
    assert_eq!(db.role(p.project_id.unwrap(), alice.id).await.unwrap(), Some(Role::Owner));
}

#[tokio::test]
async fn pending_publisher_rules_hold_under_concurrent_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let bob = db.create_user("bob", false, None, false, None).await.unwrap();
    let iss = "https://issuer.test";
    let later = Some(now_micros() + 3_600_000_000);
    // Ten registrations at once by alice with a limit of three: three succeed.
    let tries: Vec<_> = (0..10)
        .map(|i| {
            let db = db.clone();
            let spec = format!(r#"{{"kind":"custom","issuer":"{iss}","claims":{{"sub":"{i}"}}}}"#);
            tokio::spawn(async move { db.add_publisher(None, Some(&format!("name{i}")), iss, &spec, Some(alice.id), later, Some(3)).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tries {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| matches!(e, StoreError::Conflict(_))));
    // A name alice reserved cannot be taken by bob, whatever his limit.
    let spec = format!(r#"{{"kind":"custom","issuer":"{iss}","claims":{{"sub":"bob"}}}}"#);
    let reserved = db.pending_publishers_of(alice.id).await.unwrap()[0].project.clone();
    assert!(matches!(db.add_publisher(None, Some(&reserved), iss, &spec, Some(bob.id), later, None).await, Err(StoreError::Conflict(_))));
}

/// Issue 13: a removal deleted a blob once no row referenced its sha256, while an upload of the
/// same bytes had found the blob present (and so kept no copy) and went on to commit: a visible
/// file with no bytes. The steps are interleaved by hand, the remover being another connection
/// (as the CLI would be).
#[tokio::test]
async fn removal_racing_an_upload_of_the_same_bytes_keeps_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (db, url) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let cli = Db::connect(&url, 4).await.unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let sha = "5a5e5a5e";
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", sha, &alice)).await.unwrap();

    // Upload A of the same bytes under another name: persisted, not yet published.
    let a = stored(&blobs, sha).await;
    // Meanwhile the only file with those bytes is removed, and with it the blob.
    assert!(cli.remove_file(&blobs, "demo-1.0-py3-none-any.whl", "admin").await.unwrap());
    assert!(!blobs.exists(sha).await.unwrap());
    // A commits: its transaction puts the blob back from A's own link.
    publish(&db, &blobs, &new_file("demo-1.0-py2-none-any.whl", sha, &alice)).await.unwrap();
    drop(a);
    assert!(db.file("demo-1.0-py2-none-any.whl").await.unwrap().is_some());
    assert_eq!(std::fs::read(blobs.path_for(sha).unwrap()).unwrap(), sha.as_bytes());

    // The other way round, a referenced blob is never deleted (the sweep, a failed upload).
    assert!(!cli.remove_blob_if_unreferenced(&blobs, sha).await.unwrap());
    assert!(blobs.exists(sha).await.unwrap());
    // A blob nothing references is.
    drop(stored(&blobs, "0rphan").await);
    assert!(cli.remove_blob_if_unreferenced(&blobs, "0rphan").await.unwrap());
    assert!(!blobs.exists("0rphan").await.unwrap());
}

/// Issue 13: the last-owner check on a demotion ran outside the transaction (and `set_role` had
/// none): two owners demoting each other at once left the project without an owner.
#[tokio::test]
async fn concurrent_demotions_keep_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (db, url) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let other = Db::connect(&url, 4).await.unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    db.create_user("bob", false, None, false, None).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap();
    db.set_role("demo", "bob", Role::Owner, "alice").await.unwrap();
    let owners = |db: Db| async move { db.roles(Some("demo")).await.unwrap().into_iter().filter(|r| r.role == "owner").count() };
    assert_eq!(owners(db.clone()).await, 2);

    // Each sees two owners before starting; both demote the other at once, over two connections.
    let (a, b) =
        tokio::join!(db.set_role("demo", "bob", Role::Maintainer, "alice"), other.set_role("demo", "alice", Role::Maintainer, "bob"));
    assert_eq!([a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let refused = a.err().or(b.err()).unwrap();
    assert!(matches!(&refused, StoreError::Conflict(m) if m.contains("a project must keep at least one owner")), "{refused}");
    assert_eq!(owners(db.clone()).await, 1);

    // Demoting or removing the one that is left is refused too.
    let last = db.roles(Some("demo")).await.unwrap().into_iter().find(|r| r.role == "owner").unwrap().user_name;
    assert!(matches!(db.set_role("demo", &last, Role::Maintainer, "x").await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.remove_role("demo", &last, "x").await, Err(StoreError::Conflict(_))));
    assert_eq!(owners(db.clone()).await, 1);

    // A project without an owner (a trusted publisher created it for no registered user) still
    // takes other role changes.
    sqlx::query("DELETE FROM roles").execute(&db.writer).await.unwrap();
    db.set_role("demo", "bob", Role::Maintainer, "admin").await.unwrap();
    db.remove_role("demo", "bob", "admin").await.unwrap();
}

/// Issue 13: "one sdist per release" was a check followed by an insert; the database now refuses
/// a second live sdist in a release, and `publish` reports it with the check's message.
#[tokio::test]
async fn one_sdist_per_release_is_a_database_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0.tar.gz", "s1", &alice)).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s2", &alice)).await.unwrap();

    // Written past `publish`, a second sdist is refused by the database itself.
    let insert = "INSERT INTO files (release_id, project_id, filename, packagetype, python_version, size, sha256, blake2b_256, md5, upload_time, core_metadata, metadata_sha256) \
                  SELECT release_id, project_id, $1, $2, 'source', 1, 'x', 'x', 'x', 0, core_metadata, 'x' FROM files WHERE filename = 'demo-1.0.tar.gz'";
    let err = sqlx::query(insert).bind("demo-1.0.zip").bind("sdist").execute(&db.writer).await.unwrap_err();
    assert!(matches!(&err, sqlx::Error::Database(e) if e.is_unique_violation()), "{err}");
    // Wheels are not limited.
    sqlx::query(insert).bind("demo-1.0-py2-none-any.whl").bind("bdist_wheel").execute(&db.writer).await.unwrap();

    // Through `publish` the reservation of the identity answers first; without it (a database
    // from before identities, say), the constraint gives the same message the check gave.
    sqlx::query("DELETE FROM filenames WHERE filename = 'demo-1.0.tar.gz'").execute(&db.writer).await.unwrap();
    let mut second = new_file("demo-1.0.0.tar.gz", "s3", &alice);
    second.version = "1.0.0".into();
    match publish(&db, &blobs, &second).await {
        Err(StoreError::Conflict(m)) => {
            assert_eq!(m, "only one sdist may be uploaded per release; this release already has demo-1.0.tar.gz")
        }
        other => panic!("{other:?}"),
    }
    assert!(db.file("demo-1.0.0.tar.gz").await.unwrap().is_none());

    // A removed sdist no longer holds the release.
    sqlx::query("DELETE FROM files WHERE filename = 'demo-1.0.tar.gz'").execute(&db.writer).await.unwrap();
    publish(&db, &blobs, &second).await.unwrap();
}

/// A database that already holds two sdists in one release (only a hand edit can make one) is not
/// changed behind the operator's back: migration 0006 fails, naming the constraint
/// (docs/operations.md says how to resolve it).
#[tokio::test]
async fn migration_0006_refuses_a_release_with_two_sdists() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).await.unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0.tar.gz", "s1", &alice)).await.unwrap();
    // Back to before 0006, then the hand edit.
    sqlx::query("DROP INDEX files_one_sdist_per_release").execute(&db.writer).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 6").execute(&db.writer).await.unwrap();
    sqlx::query("INSERT INTO files (release_id, project_id, filename, packagetype, python_version, size, sha256, blake2b_256, md5, upload_time, core_metadata, metadata_sha256) \
                 SELECT release_id, project_id, 'demo-1.0.zip', 'sdist', 'source', 1, 'x', 'x', 'x', 0, x'', 'x' FROM files WHERE filename = 'demo-1.0.tar.gz'")
        .execute(&db.writer)
        .await
        .unwrap();
    drop(db);
    let err = Db::open(dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("UNIQUE constraint failed: files.release_id"), "{err}");
}

#[tokio::test]
async fn the_instance_id_is_drawn_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, url) = open_test(dir.path()).await;
    let first = db.instance_id().await.unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(Db::connect(&url, 4).await.unwrap().instance_id().await.unwrap(), first);
    let other = tempfile::tempdir().unwrap();
    assert_ne!(open_test(other.path()).await.0.instance_id().await.unwrap(), first);
}

#[tokio::test]
async fn jobs_are_claimed_once_retried_and_failed_after_their_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let id = db.enqueue_job("mail", r#"{"secret": "link"}"#, 2).await.unwrap();
    let minute = 60_000_000;
    let first = db.claim_job("w1", minute, None).await.unwrap().expect("a due job");
    assert_eq!((first.id, first.attempts, first.locked_by.as_deref()), (id, 1, Some("w1")));
    assert!(db.claim_job("w2", minute, None).await.unwrap().is_none(), "a leased job is not claimed twice");
    // A failed attempt waits for its retry time, then runs again.
    db.fail_job(id, "w1", "smtp down", now_micros() + minute, None).await.unwrap();
    assert!(db.claim_job("w2", minute, None).await.unwrap().is_none(), "not before its retry time");
    sqlx::query("UPDATE jobs SET run_at = 0").execute(&db.writer).await.unwrap();
    // The second (last) attempt's worker dies: its lease runs out (here, at once).
    let second = db.claim_job("w2", -1, None).await.unwrap().expect("due again");
    assert_eq!(second.attempts, 2);
    assert!(db.claim_job("w3", minute, None).await.unwrap().is_none(), "no attempts left");
    let dead = db.job(id).await.unwrap().unwrap();
    assert_eq!((dead.state.as_str(), dead.payload.as_str()), ("failed", "{}"), "failed, and the payload erased");
    assert!(dead.last_error.unwrap().contains("worker stopped"));
    // An administrator queues it again; only the worker holding it can finish it.
    assert!(db.retry_job(id).await.unwrap());
    assert!(!db.retry_job(id).await.unwrap(), "only a failed job is retried");
    let third = db.claim_job("w4", minute, Some(id)).await.unwrap().expect("queued again");
    assert_eq!(third.attempts, 1);
    assert!(!db.finish_job(id, "w1").await.unwrap());
    assert!(db.finish_job(id, "w4").await.unwrap());
    assert_eq!(db.job(id).await.unwrap().unwrap().state, "done");
    // Housekeeping is queued once, however many nodes ask.
    let a = db.schedule_once("sweep_orphans", now_micros() + minute).await.unwrap();
    let b = db.schedule_once("sweep_orphans", now_micros()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(db.jobs(Some("queued"), 10).await.unwrap().len(), 1);
    assert!(db.claim_job("w5", minute, None).await.unwrap().is_some(), "moved earlier: due now");
}

/// The transparency log: each change is one entry, in order, in its own transaction; the
/// sequencer's checkpoints hash to what the entries give, and sequencers running at once (as
/// several nodes do) sign each size once, never two roots for one size.
#[tokio::test]
async fn the_log_records_changes_and_checkpoints_agree_under_concurrent_sequencers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let sign = |size: u64, root: palisade_tlog::Hash| -> Result<String, String> { Ok(format!("test\n{size}\n{}\n", root.to_base64())) };
    // A new log gets its first, empty checkpoint.
    let first = db.integrate_log(10, &sign).await.unwrap().expect("an empty checkpoint");
    assert_eq!((first.size, first.root), (0, palisade_tlog::Hash::EMPTY));

    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap();
    // The identical re-upload changes nothing, and logs nothing.
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &alice)).await.unwrap();
    db.set_yanked("demo", "1.0", None, true, Some("broken"), "alice").await.unwrap();
    db.remove_file(&blobs, "demo-1.0-py3-none-any.whl", "admin-cli (root)").await.unwrap();
    let entries = db.log_entries(0, 10).await.unwrap();
    let texts: Vec<&str> = entries.iter().map(|e| e.entry.as_str()).collect();
    assert_eq!(
        texts,
        [
            "pypi role demo set owner alice by user:alice",
            "pypi publish demo 1.0 demo-1.0-py3-none-any.whl sha256:s1 by user:alice",
            "pypi yank demo 1.0 * by user:alice",
            "pypi remove demo demo-1.0-py3-none-any.whl sha256:s1 by cli:root",
        ]
    );
    assert_eq!(db.log_entry_for_file("demo-1.0-py3-none-any.whl").await.unwrap().unwrap().idx, 1);

    for i in 0..20 {
        db.set_status("demo", if i % 2 == 0 { "deprecated" } else { "active" }, None, "alice").await.unwrap();
    }
    // Four sequencers at once, a few entries at a time.
    let runs = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut made = Vec::new();
            while let Some(c) = db.integrate_log(3, &sign).await.unwrap() {
                made.push((c.size, c.root));
            }
            made
        })
    });
    let mut signed: Vec<(u64, palisade_tlog::Hash)> = Vec::new();
    for r in runs {
        signed.extend(r.await.unwrap());
    }
    signed.sort_by_key(|(size, _)| *size);
    let sizes: Vec<u64> = signed.iter().map(|(s, _)| *s).collect();
    let mut unique = sizes.clone();
    unique.dedup();
    assert_eq!(sizes, unique, "a size was signed twice");
    assert_eq!(db.latest_checkpoint().await.unwrap().unwrap().size, 24);

    // Every checkpoint's root is the one the entries give, recomputed from scratch.
    let all = db.log_entries(0, 24).await.unwrap();
    let mut hashes = std::collections::HashMap::new();
    let mut roots = vec![palisade_tlog::Hash::EMPTY];
    for (n, e) in all.iter().enumerate() {
        let first = palisade_tlog::stored_hash_index(0, n as u64);
        for (i, h) in palisade_tlog::append(n as u64, e.entry.as_bytes(), &hashes).unwrap().into_iter().enumerate() {
            hashes.insert(first + i as u64, h);
        }
        roots.push(palisade_tlog::tree_hash(n as u64 + 1, &hashes).unwrap());
    }
    for c in db.checkpoints().await.unwrap() {
        assert_eq!(c.root, roots[c.size as usize], "checkpoint {}", c.size);
        assert_eq!(c.note, format!("test\n{}\n{}\n", c.size, c.root.to_base64()), "the note is what the signer made");
    }
    // The stored hashes are the recomputed ones, and serve a proof that checks.
    let needs = palisade_tlog::inclusion_needs(5, 24);
    let proof = palisade_tlog::inclusion_proof(5, 24, &db.log_hashes(&needs).await.unwrap()).unwrap();
    palisade_tlog::check_inclusion(&proof, 24, roots[24], 5, all[5].entry.as_bytes()).unwrap();
}

fn advisory(id: &str, modified: &str, names: &[&str], hashes: &[&str], withdrawn: bool) -> NewAdvisory {
    NewAdvisory {
        osv_id: id.into(),
        modified: modified.into(),
        modified_at: 0,
        withdrawn,
        malicious: true,
        record: format!("{{\"id\":\"{id}\",\"modified\":\"{modified}\"}}"),
        names: names.iter().map(|n| n.to_string()).collect(),
        hashes: hashes.iter().map(|h| h.to_string()).collect(),
    }
}

/// A snapshot feed replaces what its source held (a record gone from it goes); an incremental
/// one only adds and changes; every change moves the serial every node polls, and an unchanged
/// sync does not; records are looked up by name and by file hash.
#[tokio::test]
async fn feeds_replace_or_extend_their_records_and_move_the_serial() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    assert_eq!(db.advisories_serial().await.unwrap(), 0);
    let first =
        [advisory("MAL-1", "2026-01-01T00:00:00Z", &["a"], &["aa"], false), advisory("MAL-2", "2026-01-01T00:00:00Z", &["b"], &[], false)];
    let c = db.apply_feed("ossf", &first, true).await.unwrap();
    assert_eq!((c.added, c.updated, c.removed), (2, 0, 0));
    assert_eq!(c.names, vec!["a".to_string(), "b".to_string()]);
    let serial = db.advisories_serial().await.unwrap();
    assert!(serial > 0);
    // The same again changes nothing, and the serial stays.
    let c = db.apply_feed("ossf", &first, true).await.unwrap();
    assert_eq!((c.added, c.updated, c.removed), (0, 0, 0));
    assert_eq!(db.advisories_serial().await.unwrap(), serial);
    // MAL-1 withdrawn, MAL-2 gone from the snapshot.
    let c = db.apply_feed("ossf", &[advisory("MAL-1", "2026-02-01T00:00:00Z", &["a"], &["aa"], true)], true).await.unwrap();
    assert_eq!((c.added, c.updated, c.removed), (0, 1, 1));
    assert!(db.blocking_advisories().await.unwrap().is_empty());
    assert_eq!(db.advisories_naming("a").await.unwrap().len(), 1);
    assert!(db.advisories_naming("b").await.unwrap().is_empty());
    // An incremental feed never drops what it does not mention; sources are kept apart.
    db.apply_feed("peer", &[advisory("x_A-2026-1", "2026-03-01T00:00:00Z", &["c"], &["cc"], false)], false).await.unwrap();
    db.apply_feed("peer", &[advisory("x_A-2026-2", "2026-03-02T00:00:00Z", &["d"], &[], false)], false).await.unwrap();
    assert_eq!(db.feed_modified("peer").await.unwrap().len(), 2);
    assert_eq!(db.feed_modified("ossf").await.unwrap().len(), 1);
    assert_eq!(db.blocking_advisories().await.unwrap().len(), 2);
    assert!(db.advisories_serial().await.unwrap() > serial);
}

/// Palisade's own records get increasing numbers that are never reused, are found by name and
/// by hash, and are updated (withdrawn) in place; waivers are per project and audited in the
/// journal and the transparency log.
#[tokio::test]
async fn local_records_and_waivers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let user = db.create_user("alice", false, None, false, None).await.unwrap();
    publish(&db, &blobs, &new_file("demo-1.0-py3-none-any.whl", "s1", &user)).await.unwrap();
    let new = |id: &str| advisory(id, "2026-01-01T00:00:00Z", &["demo"], &["s1"], false);
    let one = db.change_local_advisories("demo", None, "admin", |current, n| {
        assert!(current.is_empty());
        vec![new(&format!("x_P-2026-{n}"))]
    });
    let one = one.await.unwrap().remove(0);
    let two = db
        .change_local_advisories("other", None, "admin", |_, n| {
            vec![advisory(&format!("x_P-2026-{n}"), "2026-01-02T00:00:00Z", &["other"], &[], false)]
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!((one.osv_id.as_str(), two.osv_id.as_str()), ("x_P-2026-1", "x_P-2026-2"));
    // The change sees the records about the project or the file, under the lock.
    let seen = std::sync::Mutex::new(Vec::new());
    db.change_local_advisories("nothing", Some("s1"), "admin", |current, n| {
        assert_eq!(n, 3);
        seen.lock().unwrap().extend(current.into_iter().map(|a| a.osv_id));
        Vec::new()
    })
    .await
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["x_P-2026-1".to_string()]);
    let mut withdrawn = one.clone();
    (withdrawn.withdrawn, withdrawn.modified) = (true, "2026-01-03T00:00:00Z".into());
    db.change_local_advisories("demo", None, "admin", |_, _| vec![withdrawn.clone()]).await.unwrap();
    let local = db.local_advisories().await.unwrap();
    assert_eq!(local.len(), 2);
    assert!(db.local_advisory("x_P-2026-1").await.unwrap().unwrap().withdrawn);
    let three = db.change_local_advisories("demo", None, "admin", |_, n| vec![new(&format!("x_P-2026-{n}"))]).await.unwrap().remove(0);
    assert_eq!(three.osv_id, "x_P-2026-3");
    // A feed no longer configured is forgotten whole.
    db.apply_feed("gone", &[advisory("MAL-7", "2026-01-01T00:00:00Z", &["demo"], &[], false)], true).await.unwrap();
    assert_eq!(db.feed_sources().await.unwrap(), vec![("gone".to_string(), 1)]);
    assert_eq!(db.forget_feed("gone").await.unwrap(), 1);
    assert!(db.feed_sources().await.unwrap().is_empty());
    assert_eq!(db.projects_with_files(&["s1".to_string(), "zz".to_string()]).await.unwrap(), vec!["demo".to_string()]);

    let before = db.advisories_serial().await.unwrap();
    assert!(db.set_waiver("demo", "MAL-9", Some("ours"), "admin").await.unwrap());
    assert_eq!(db.waivers().await.unwrap()[0].reason, "ours");
    assert!(db.advisories_serial().await.unwrap() > before);
    assert!(db.set_waiver("demo", "MAL-9", None, "admin").await.unwrap());
    assert!(!db.set_waiver("demo", "MAL-9", None, "admin").await.unwrap());
    assert!(db.waivers().await.unwrap().is_empty());
    assert!(db.set_waiver("nope", "MAL-9", Some("x"), "admin").await.is_err());
    let entries: Vec<String> = db.log_entries(0, 1000).await.unwrap().into_iter().map(|e| e.entry).collect();
    assert!(entries.iter().any(|e| e == "pypi waive demo MAL-9 by user:admin"), "{entries:?}");
    assert!(entries.iter().any(|e| e == "pypi unwaive demo MAL-9 by user:admin"), "{entries:?}");
    // Notices are once per project and record.
    let demo = db.project("demo").await.unwrap().unwrap();
    assert!(db.note_advisory_notice(demo.id, "MAL-9").await.unwrap());
    assert!(!db.note_advisory_notice(demo.id, "MAL-9").await.unwrap());
}

/// Search: names first, then the full-text index of summaries and keywords (stemmed, the last
/// word a prefix), over published files only; query syntax in the input is only text.
#[tokio::test]
async fn search_ranks_names_then_text() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open_test(dir.path()).await;
    let blobs = BlobStore::open(dir.path()).unwrap();
    let alice = db.create_user("alice", false, None, false, None).await.unwrap();
    let file = |name: &str, summary: &str, keywords: &str, sha: &str, status: &str| {
        let normalized = palisade_dist::normalize(name);
        let mut f = new_file(&format!("{}-1.0-py3-none-any.whl", normalized.replace('-', "_")), sha, &alice);
        f.project_name = name.into();
        f.normalized = normalized;
        f.metadata_json = format!(r#"{{"summary": "{summary}", "keywords": "{keywords}"}}"#);
        f.status = status.into();
        f
    };
    for f in [
        file("httpx", "The next generation HTTP client.", "http,async", "h1", "published"),
        file("fetchlib", "Fetch pages with connection pooling", "http,clients", "h2", "published"),
        file("clientele", "Unrelated tools", "", "h3", "published"),
        file("held-back", "An HTTP client held for review", "", "h4", "quarantined"),
        file("colours", "Terminal colours", "ansi", "h5", "published"),
    ] {
        publish(&db, &blobs, &f).await.unwrap();
    }
    let names = |v: Vec<ProjectCard>| v.into_iter().map(|c| c.normalized).collect::<Vec<_>>();
    // A name match comes first; "clients" in fetchlib's keywords stems to "client"; the held
    // release is not found.
    let found = names(db.search_projects("client", "client", 10).await.unwrap());
    assert_eq!(found[0], "clientele", "{found:?}");
    assert!(found.contains(&"httpx".to_string()) && found.contains(&"fetchlib".to_string()), "{found:?}");
    assert!(!found.contains(&"held-back".to_string()) && !found.contains(&"colours".to_string()), "{found:?}");
    // The last word is a prefix: "conn" finds "connection".
    assert_eq!(names(db.search_projects("pooling conn", "pooling-conn", 10).await.unwrap()), ["fetchlib"]);
    // FTS and tsquery syntax are words here, never an error.
    for hostile in ["\"", "*", "http AND", "a:* & !b", "NEAR(x y)", "'; DROP TABLE releases; --", "---"] {
        db.search_projects(hostile, &palisade_dist::normalize(hostile), 10).await.unwrap();
    }
    assert_eq!(names(db.search_projects("ansi", "ansi", 10).await.unwrap()), ["colours"]);
}
