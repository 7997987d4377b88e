//! The pipeline with an ecosystem that is not Python's: what [`Ecosystem`] asks of one is enough
//! for a file to be published, refused on reuse under its own wording, and refused whole when
//! its metadata is bad.

use palisade_dist::{Digests, Hasher};
use palisade_store::Reservation;
use tokio::io::AsyncWriteExt;

use super::*;
use crate::access::Credential;
use crate::admin::{Actor, users::NewAccount};
use crate::ecosystem::Description;
use crate::error::Error;

/// Files named `<project>-<version>.note` whose first line must repeat the project and version.
struct Notes;

struct Note {
    project: String,
    version: String,
}

impl Note {
    fn parse(filename: &str) -> Option<Note> {
        let stem = filename.strip_suffix(".note")?;
        let (project, version) = stem.rsplit_once('-')?;
        Some(Note { project: project.to_ascii_lowercase(), version: version.to_string() })
    }
}

impl Ecosystem for Notes {
    type File = Note;
    /// The sha256 the client sent, if any.
    type Claims = Option<String>;

    fn project(file: &Note) -> &str {
        &file.project
    }

    fn version(file: &Note) -> String {
        file.version.clone()
    }

    fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
        Some(a.parse::<u64>().ok()?.cmp(&b.parse::<u64>().ok()?))
    }

    fn reservation_key(file: &Note) -> String {
        format!("note:{}-{}", file.project, file.version)
    }

    fn check_claims(claims: &Option<String>, file: &Received<Note>) -> Result<()> {
        match claims {
            Some(sha) if *sha != file.digests.sha256 => Err(invalid("notes: the sha256 does not match")),
            _ => Ok(()),
        }
    }

    async fn describe(_core: &Core, file: &Received<Note>) -> Result<Description> {
        let text = tokio::fs::read_to_string(file.blob.path()).await.map_err(internal)?;
        let first = text.lines().next().unwrap_or_default().to_string();
        if first != format!("{} {}", file.file.project, file.file.version) {
            return Err(invalid(format!("notes: the first line {first:?} does not name this file")));
        }
        Ok(Description {
            name: file.file.project.clone(),
            version: file.file.version.clone(),
            canonical_version: file.file.version.clone(),
            kind: "note".into(),
            target: "any".into(),
            requires: None,
            fields_json: "{}".into(),
            metadata: first.into_bytes(),
        })
    }

    fn reused(filename: &str, _digests: &Digests, r: &Reservation) -> Error {
        Error::Exists(format!("notes: {filename} is taken by {}", r.filename))
    }
}

async fn upload(core: &Core, filename: &str, body: &str, claims: Option<String>) -> Upload<Notes> {
    let mut blob = core.blobs.create_temp().await.unwrap();
    blob.file.write_all(body.as_bytes()).await.unwrap();
    blob.file.flush().await.unwrap();
    let mut hasher = Hasher::new();
    hasher.update(body.as_bytes());
    let size = hasher.len();
    let file = Received { filename: filename.into(), file: Note::parse(filename).unwrap(), blob, digests: hasher.finish(), size };
    Upload { file, claims, attestations: None }
}

async fn core_and_uploader(dir: &std::path::Path) -> (Core, Principal) {
    let mut config = crate::Config { data_dir: dir.to_path_buf(), ..Default::default() };
    config.scan.enabled = false;
    let core = Core::open(config).await.unwrap();
    let user = crate::admin::create_user(&core, &Actor::cli(), NewAccount { name: "alice", ..Default::default() }).await.unwrap();
    let principal = Principal {
        user_id: Some(user.id),
        user_name: user.name,
        is_admin: false,
        has_2fa: true,
        email_verified: true,
        phishing_resistant: false,
        authenticated_at: None,
        scope: None,
        credential: Credential::Token { id: 0, actions: None },
    };
    (core, principal)
}

fn temp_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("tmp")).map_or(0, |d| d.count())
}

#[tokio::test]
async fn another_ecosystem_goes_through_the_same_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (core, alice) = core_and_uploader(dir.path()).await;
    let origin = Origin::default();

    let up = upload(&core, "demo-1.0.note", "demo 1.0\nhello\n", None).await;
    let outcome = core.publish(alice.clone(), &origin, up).await.unwrap();
    assert_eq!(outcome, Published::Published);
    let project = core.db.project("demo").await.unwrap().expect("the upload created the project");
    let files = core.db.project_files(project.id).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].packagetype.as_str(), files[0].python_version.as_str()), ("note", "any"));
    assert!(core.db.roles(Some("demo")).await.unwrap().iter().any(|r| r.user_name == "alice" && r.role == "owner"));

    // The ecosystem's key reserves the file under another spelling, and its wording is used.
    let up = upload(&core, "DEMO-1.0.note", "demo 1.0\nother\n", None).await;
    let err = core.publish(alice.clone(), &origin, up).await.unwrap_err();
    assert!(err.to_string().contains("notes: DEMO-1.0.note is taken by demo-1.0.note"), "{err}");

    // A wrong claim is refused before the metadata is read; bad metadata is refused whole.
    let up = upload(&core, "demo-2.0.note", "demo 2.0\n", Some("0".repeat(64))).await;
    let err = core.publish(alice.clone(), &origin, up).await.unwrap_err();
    assert!(err.to_string().contains("the sha256 does not match"), "{err}");
    let up = upload(&core, "demo-3.0.note", "evil 3.0\n", None).await;
    let err = core.publish(alice.clone(), &origin, up).await.unwrap_err();
    assert!(err.to_string().contains("does not name this file"), "{err}");
    assert_eq!(core.db.project_files(project.id).await.unwrap().len(), 1);
    assert_eq!(temp_files(dir.path()), 0, "a refused upload leaves no temporary file");

    // The same permission rules: another user may not upload to alice's project.
    let bob = crate::admin::create_user(&core, &Actor::cli(), NewAccount { name: "bob", ..Default::default() }).await.unwrap();
    let bob = Principal { user_id: Some(bob.id), user_name: bob.name, ..alice };
    let up = upload(&core, "demo-4.0.note", "demo 4.0\n", None).await;
    let err = core.publish(bob, &origin, up).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
}
