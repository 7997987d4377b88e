//! The publishing pipeline: authorize, validate, scan, decide, store, publish, record, notify.
//!
//! A protocol layer (twine's form today) receives the file into a [`TempBlob`] while hashing it,
//! and hands [`Core::publish`] an [`Upload`]: the file, its parsed name, and what the client
//! claimed about it. From there every rule is here, in this order: the cheap checks (claims
//! against the filename and the digests, the project's state, permission, filename reuse) come
//! before the archive is opened; the scanner's verdict comes before anything is stored; the blob
//! is in place before the transaction that makes it visible. Any failure drops the temporary
//! blob, so a refused upload leaves nothing behind.
//!
//! What is Python's is in [`crate::pypi`] (the filename grammar and the core metadata read from
//! inside the archive); another ecosystem's registry would bring its own reader and go through
//! the same steps.

use palisade_dist::{Digests, DistFilename};
use palisade_store::{NewFile, Project, PublishOutcome, Reservation, StoreError, TempBlob};

use crate::access::{Action, Credential, Origin, Principal, authorize, check_policy, publisher_for};
use crate::config::TyposquatAction;
use crate::error::{Error, Result, forbidden, internal, invalid};
use crate::scanning::{self, Outcome};
use crate::{Core, mail};

/// A file as it arrived: on disk in a temporary blob, with its digests and size.
pub struct Received {
    /// The name the client gave it, already checked to be a bare filename.
    pub filename: String,
    pub dist: DistFilename,
    pub blob: TempBlob,
    pub digests: Digests,
    pub size: u64,
}

/// What the client said about the file. Each claim that is present must agree with the file.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub name: Option<String>,
    pub version: Option<String>,
    /// `sdist` or `bdist_wheel`.
    pub filetype: Option<String>,
    pub sha256: Option<String>,
    pub blake2_256: Option<String>,
    /// Hex, or URL-safe base64 without padding (what PyPI's form documents).
    pub md5: Option<String>,
}

/// One upload, ready for the pipeline.
pub struct Upload {
    pub file: Received,
    pub claims: Claims,
}

/// What publishing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The same file (same spelling, same bytes) is already live: nothing changed.
    Identical,
    /// The file is stored and visible to installers.
    Published,
    /// The file is stored but held for review.
    Quarantined,
}

impl Core {
    /// Whether `principal` may upload at all, before anything of the file is read: uploading
    /// takes an API token or a trusted publisher's token, under the instance's policy.
    pub fn may_upload(&self, principal: &Principal) -> Result<()> {
        // A login session is for account management: one stolen from a browser must not publish.
        if principal.is_session() {
            return Err(forbidden(
                "a login session cannot upload: use an API token (username __token__, the token as password) or a trusted publisher's token",
            ));
        }
        check_policy(self, principal, "upload")
    }

    /// Runs the pipeline on `upload`, on behalf of `principal` calling from `origin`.
    pub async fn publish(&self, principal: Principal, origin: &Origin, upload: Upload) -> Result<Published> {
        self.may_upload(&principal)?;
        let Upload { file, claims } = upload;
        check_claims(&claims, &file)?;
        let filename = file.filename.clone();
        let normalized = file.dist.normalized_name.clone();

        // Permission and reuse, before the (more expensive) archive read.
        let project = self.db.project(&normalized).await?;
        if let Some(p) = &project
            && (p.status == "archived" || p.status == "quarantined")
        {
            return Err(invalid(format!("project {normalized:?} is {} and accepts no uploads", p.status)));
        }
        authorize(self, &principal, Action::Upload, project.as_ref(), &normalized).await?;
        let principal = self.bind_publisher(principal, project.as_ref(), &normalized).await?;
        // Reuse: the same spelling, or another spelling of the same file (same project, version
        // and tags), reserved by an earlier upload, even a removed one.
        if let Some(r) = self.db.reservation(&filename).await? {
            if r.filename == filename && r.sha256 == file.digests.sha256 && r.live {
                return Ok(Published::Identical);
            }
            return Err(file_exists(&filename, &file.digests.blake2b_256, &r));
        }

        let (max_uncompressed, max_description) = (self.config.max_uncompressed_bytes, self.config.max_description_bytes);
        let metadata = crate::pypi::read_metadata(file.blob.path(), &file.dist, &filename, max_uncompressed, max_description).await?;

        // Scan before anything becomes visible.
        let (quarantined, scan) = match self.judge(&file, &normalized, project.is_none(), &principal).await? {
            Some((outcome, record)) => (outcome == Outcome::Quarantine, Some(record)),
            None => (false, None),
        };

        let new = NewFile {
            // A project created by a file held for review is listed under its normalized name,
            // not under a spelling taken from that file.
            project_name: if quarantined { normalized.clone() } else { metadata.name.clone() },
            normalized: normalized.clone(),
            version: metadata.version.clone(),
            canonical_version: metadata.canonical_version.clone(),
            metadata_json: metadata.fields_json.clone(),
            requires_python: metadata.requires_python.clone(),
            filename: filename.clone(),
            packagetype: file.dist.kind.filetype().to_string(),
            python_version: file.dist.pyversion().to_string(),
            size: file.size as i64,
            sha256: file.digests.sha256.clone(),
            blake2b_256: file.digests.blake2b_256.clone(),
            md5: file.digests.md5.clone(),
            metadata_sha256: palisade_dist::sha256_hex(&metadata.raw),
            core_metadata: metadata.raw,
            uploader_id: principal.user_id,
            publisher_id: match principal.credential {
                Credential::Publisher { publisher_id, .. } => Some(publisher_id),
                _ => None,
            },
            uploader_name: principal.user_name.clone(),
            uploader_is_admin: principal.is_admin,
            status: if quarantined { "quarantined" } else { "published" }.to_string(),
            scan,
        };
        let outcome = self.store(file, &new).await?;
        self.changed(&normalized);
        if let PublishOutcome::Published { created_project: true, .. } = outcome {
            self.scan.project_created(&normalized).await;
        }
        if let Some(token_id) = principal.token_id() {
            let db = self.db.clone();
            let ip = origin.addr.clone().unwrap_or_default();
            tokio::spawn(async move {
                if let Err(e) = db.touch_token(token_id, &ip).await {
                    tracing::warn!(error = %e, "could not record token use");
                }
            });
        }
        if outcome == PublishOutcome::Identical {
            return Ok(Published::Identical);
        }
        let project = self.db.project(&normalized).await.ok().flatten();
        let kind = if quarantined { "file_quarantined" } else { "file_uploaded" };
        let details = serde_json::json!({ "filename": new.filename, "sha256": new.sha256, "token_id": principal.token_id() });
        crate::events::record(self, kind, &principal.user_name, principal.user_id, project.as_ref().map(|p| p.id), origin, details).await;
        if quarantined && let Some(project) = &project {
            self.notify_quarantine(project, &new.filename, &principal.user_name).await;
        }
        tracing::info!(project.name = %normalized, file.filename = %new.filename, size_bytes = new.size, user.name = %principal.user_name, status = %new.status, "file stored");
        Ok(if quarantined { Published::Quarantined } else { Published::Published })
    }

    /// A publisher's token may cover the publishers of several projects: the file is bound to
    /// the one registered for this project, which is also the actor the event log names.
    async fn bind_publisher(&self, mut principal: Principal, project: Option<&Project>, normalized: &str) -> Result<Principal> {
        if let Credential::Publisher { token_id, .. } = principal.credential
            && let Some(pb) = publisher_for(self, &principal, project, normalized).await?
        {
            principal.user_name = format!("publisher:{}", pb.id);
            principal.credential = Credential::Publisher { token_id, publisher_id: pb.id };
        }
        Ok(principal)
    }

    /// Scans the file and applies the policy. `None` when scanning is off; a refusal is recorded
    /// and returned as the error.
    async fn judge(
        &self,
        file: &Received,
        normalized: &str,
        new_project: bool,
        principal: &Principal,
    ) -> Result<Option<(Outcome, palisade_store::NewScan)>> {
        if !self.scan.enabled() {
            return Ok(None);
        }
        let mut report = self.scan.scan(file.blob.path(), &file.filename, Vec::new()).await.map_err(|e| {
            tracing::error!(error = %e, "scanner unavailable");
            Error::Unavailable("the malware scanner is unavailable, so uploads are refused; try again later".into())
        })?;
        let typosquat = |r: &palisade_scan::Report| r.findings.iter().any(|f| f.rule == "meta-typosquat");
        if new_project && !typosquat(&report) {
            report = self.scan.check_hosted(&self.db, normalized, report).await.map_err(internal)?;
        }
        let mut outcome = self.scan.decide(&report);
        if new_project && typosquat(&report) {
            match self.scan.policy().typosquat {
                TyposquatAction::Reject => outcome = Outcome::Reject,
                TyposquatAction::Quarantine if outcome == Outcome::Publish => outcome = Outcome::Quarantine,
                TyposquatAction::Quarantine | TyposquatAction::Allow => {}
            }
        }
        tracing::info!(file.filename = %file.filename, verdict = report.verdict.as_str(), score = report.score, outcome = outcome.as_str(), duration_ms = report.duration_ms, "scanned upload");
        let record = scanning::record(&report, outcome, "upload");
        if outcome == Outcome::Reject {
            self.db.record_rejection(&file.filename, normalized, &file.digests.sha256, &record, &principal.user_name).await?;
            return Err(invalid(format!(
                "upload refused by the malware scanner: {} (score {:.1}): {}",
                report.verdict.as_str(),
                report.score,
                scanning::summary(&report)
            )));
        }
        Ok(Some((outcome, record)))
    }

    /// Puts the blob in place, then commits the file.
    async fn store(&self, file: Received, new: &NewFile) -> Result<PublishOutcome> {
        let sha = file.digests.sha256.clone();
        let existed = self.blobs.exists(&sha);
        // Holds this upload's own link to the bytes until the publishing transaction is over, so
        // a removal of the same bytes racing with it cannot leave the file without them.
        let stored = self.blobs.persist(file.blob, &sha).await?;
        match self.db.publish(new, &stored).await {
            Ok(o) => Ok(o),
            Err(e) => {
                // The blob is not referenced by this upload; drop it unless someone else owns it.
                if !existed {
                    let _ = self.db.remove_blob_if_unreferenced(&self.blobs, &sha).await;
                }
                Err(match e {
                    StoreError::Reserved(r) => file_exists(&new.filename, &new.blake2b_256, &r),
                    other => other.into(),
                })
            }
        }
    }

    /// Tells the project's owners (and the uploader, if not one of them) that a file was held
    /// for review, so a legitimate publisher is not left wondering why pip cannot see it.
    async fn notify_quarantine(&self, project: &Project, filename: &str, uploader: &str) {
        let mut to = match self.owners(project).await {
            Ok(owners) => owners,
            Err(_) => {
                tracing::warn!("could not list owners to notify of a quarantine");
                return;
            }
        };
        if !to.iter().any(|u| u.name == uploader)
            && let Ok(u) = self.db.user_by_name(uploader).await
        {
            to.push(u);
        }
        let normalized = &project.normalized;
        let what = format!(
            "The file {filename} uploaded to {normalized} by {uploader} was quarantined by the malware scanner: it is stored, \
             but not installable until an administrator reviews it. Project owners can read the scanner's report with \
             GET /api/quarantine; administrators release or confirm it with `palisade quarantine`."
        );
        for user in to {
            mail::notify(&self.mailer, &user, "An upload was quarantined for review", &what);
        }
    }

    /// The project's owners.
    pub async fn owners(&self, project: &Project) -> Result<Vec<palisade_store::User>> {
        let mut out = Vec::new();
        for r in self.db.roles(Some(&project.normalized)).await? {
            if r.role == "owner"
                && let Ok(u) = self.db.user_by_name(&r.user_name).await
            {
                out.push(u);
            }
        }
        Ok(out)
    }
}

/// The form must describe the same file the filename names, and carry a digest that matches.
fn check_claims(claims: &Claims, file: &Received) -> Result<()> {
    let (dist, filename) = (&file.dist, &file.filename);
    if let Some(filetype) = &claims.filetype
        && filetype != dist.kind.filetype()
    {
        return Err(invalid(format!("filetype {filetype:?} does not match {filename:?}, which is a {}", dist.kind.filetype())));
    }
    if let Some(name) = &claims.name
        && palisade_dist::normalize(name) != dist.normalized_name
    {
        return Err(invalid(format!("the form's name {name:?} does not match the filename {filename:?}")));
    }
    if let Some(version) = &claims.version {
        let same = palisade_dist::parse_version(version).is_ok_and(|v| v == dist.version);
        if !same {
            return Err(invalid(format!("the form's version {version:?} does not match the filename {filename:?}")));
        }
    }
    check_digests(claims, &file.digests, filename)
}

fn check_digests(claims: &Claims, d: &Digests, filename: &str) -> Result<()> {
    if claims.sha256.is_none() && claims.blake2_256.is_none() && claims.md5.is_none() {
        return Err(invalid("the upload carries no digest: send sha256_digest (twine does)"));
    }
    let mismatch = |what: &str, sent: &str, actual: &str| {
        invalid(format!(
            "the {what} sent ({sent}) does not match the uploaded file {filename:?} ({actual}); the file was corrupted in transit or the digest is wrong"
        ))
    };
    if let Some(s) = &claims.sha256
        && !s.eq_ignore_ascii_case(&d.sha256)
    {
        return Err(mismatch("sha256_digest", s, &d.sha256));
    }
    if let Some(b) = &claims.blake2_256
        && !b.eq_ignore_ascii_case(&d.blake2b_256)
    {
        return Err(mismatch("blake2_256_digest", b, &d.blake2b_256));
    }
    if let Some(m) = &claims.md5 {
        let b64 = d.md5_urlsafe_b64();
        if *m != b64 && !m.eq_ignore_ascii_case(&d.md5) {
            return Err(mismatch("md5_digest", m, &b64));
        }
    }
    Ok(())
}

/// The answer to a reserved filename. twine's `--skip-existing` recognises "File already exists".
fn file_exists(filename: &str, blake2: &str, r: &Reservation) -> Error {
    if r.filename == filename {
        return invalid(format!(
            "File already exists ({filename:?}, with blake2_256 hash {blake2:?}). Filenames are never reused, even after a file is removed; upload a new version instead."
        ));
    }
    let existing = &r.filename;
    let (has, what) = if r.live { ("already has", "") } else { ("had", ", since removed; its name stays reserved") };
    let same = if filename.ends_with(".whl") { "for the same tags" } else { "as its sdist" };
    invalid(format!(
        "File already exists: this release {has} {existing:?} {same}{what}, and {filename:?} is another spelling of the same file \
         (installers compare the normalized project name, the version, the build tag and the tags). A file is never replaced; \
         upload a new version (or, for a wheel, a new build tag) instead."
    ))
}
