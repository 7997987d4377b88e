//! The publishing pipeline: authorize, validate, scan, decide, store, publish, record, notify.
//!
//! A protocol layer (twine's form today) receives the file into a temporary blob while hashing it,
//! and hands [`Core::publish`] an [`Upload`]: the file, its identity parsed from its name, and
//! what the client claimed about it. From there every rule is here, in this order: the cheap
//! checks (claims against the filename and the digests, the project's state, permission, filename
//! reuse) come before the archive is opened; the scanner's verdict comes before anything is
//! stored; the blob is in place before the transaction that makes it visible. Any failure drops
//! the temporary blob, so a refused upload leaves nothing behind.
//!
//! The pipeline is generic over the [`Ecosystem`]: what is Python's (the filename grammar, twine's
//! claims, the core metadata, which spellings name the same file) is in [`crate::pypi`]; another
//! ecosystem's registry brings its own implementation and goes through the same steps.

use palisade_store::{NewFile, Project, PublishOutcome, StoreError};

use crate::access::{Action, Credential, Origin, Principal, authorize, check_policy, publisher_for};
use crate::config::TyposquatAction;
use crate::ecosystem::Ecosystem;
pub use crate::ecosystem::Received;
use crate::error::{Error, Result, forbidden, internal, invalid};
use crate::scanning::{self, Outcome};
use crate::{Core, mail};

/// One upload, ready for the pipeline.
pub struct Upload<E: Ecosystem> {
    pub file: Received<E::File>,
    pub claims: E::Claims,
    /// PEP 740 attestations as the client sent them (a JSON list), if any.
    pub attestations: Option<String>,
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
    pub async fn publish<E: Ecosystem>(&self, principal: Principal, origin: &Origin, upload: Upload<E>) -> Result<Published> {
        self.may_upload(&principal)?;
        let Upload { file, claims, attestations } = upload;
        E::check_claims(&claims, &file)?;
        let filename = file.filename.clone();
        let normalized = E::project(&file.file).to_string();
        let identity = E::reservation_key(&file.file);

        // Permission and reuse, before the (more expensive) archive read.
        let project = self.db.project(&normalized).await?;
        if let Some(p) = &project
            && (p.status == "archived" || p.status == "quarantined")
        {
            return Err(invalid(format!("project {normalized:?} is {} and accepts no uploads", p.status)));
        }
        authorize(self, &principal, Action::Upload, project.as_ref(), &normalized).await?;
        // Shared intelligence first: a release or file an OSV record lists as malicious is
        // refused before anything else looks at it (the scanner, the name checks, reuse).
        if let Some(block) = self.blocks().decide(&normalized, &E::version(&file.file), &file.digests.sha256) {
            let details =
                serde_json::json!({ "filename": filename, "sha256": file.digests.sha256, "record": block.id, "feed": block.source });
            crate::events::record(
                self,
                "upload_blocked",
                &principal.user_name,
                principal.user_id,
                project.as_ref().map(|p| p.id),
                origin,
                details.clone(),
            )
            .await;
            self.announce("feed_block", details).await;
            return Err(forbidden(format!("Upload refused: {} is {}", filename, block.message())));
        }
        // A new project whose name exists upstream, when the mirror refuses those.
        if project.is_none() {
            self.check_new_name(&normalized).await?;
        }
        let principal = self.bind_publisher(principal, project.as_ref(), &normalized).await?;
        // Provenance, checked offline before the archive is read (a refusal costs a millisecond),
        // and before reuse: an identical re-upload with attestations that do not verify is
        // refused too, not answered 200.
        let attestations = self
            .check_attestations(&principal, project.as_ref(), &normalized, &filename, &file.digests.sha256, attestations.as_deref())
            .await?;
        // Reuse: the same spelling, or another spelling of the same file (same project, version
        // and tags), reserved by an earlier upload, even a removed one.
        if let Some(r) = self.db.reservation(&filename, &identity).await? {
            if r.filename == filename && r.sha256 == file.digests.sha256 && r.live {
                return Ok(Published::Identical);
            }
            return Err(E::reused(&filename, &file.digests, &r));
        }

        Self::check_required(project.as_ref(), &normalized, &attestations)?;

        let described = E::describe(self, &file).await?;

        // Scan before anything becomes visible.
        let (quarantined, scan) = match self.judge::<E>(&file, &normalized, project.as_ref(), &principal).await? {
            Some((outcome, record)) => (outcome == Outcome::Quarantine, Some(record)),
            None => (false, None),
        };

        let new = NewFile {
            // A project created by a file held for review is listed under its normalized name,
            // not under a spelling taken from that file.
            project_name: if quarantined { normalized.clone() } else { described.name },
            normalized: normalized.clone(),
            version: described.version,
            canonical_version: described.canonical_version,
            metadata_json: described.fields_json,
            requires_python: described.requires,
            filename: filename.clone(),
            identity,
            packagetype: described.kind,
            python_version: described.target,
            size: file.size as i64,
            sha256: file.digests.sha256.clone(),
            blake2b_256: file.digests.blake2b_256.clone(),
            md5: file.digests.md5.clone(),
            metadata_sha256: palisade_dist::sha256_hex(&described.metadata),
            core_metadata: described.metadata,
            uploader_id: principal.user_id,
            publisher_id: match principal.credential {
                Credential::Publisher { publisher_id, .. } => Some(publisher_id),
                _ => None,
            },
            uploader_name: principal.user_name.clone(),
            uploader_is_admin: principal.is_admin,
            status: if quarantined { "quarantined" } else { "published" }.to_string(),
            scan,
            attestations,
            log_actor: self.log_actor(&principal).await,
        };
        let outcome = self.store::<E>(file, &new).await?;
        self.changed(&normalized);
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
        if project.is_none() && self.config.mirror.enabled() {
            let core = self.clone();
            let name = normalized.clone();
            tokio::spawn(async move { core.note_shadow(&name).await });
        }
        let project = self.db.project(&normalized).await.ok().flatten();
        let kind = if quarantined { "file_quarantined" } else { "file_uploaded" };
        let details = serde_json::json!({ "filename": new.filename, "sha256": new.sha256, "token_id": principal.token_id() });
        crate::events::record(self, kind, &principal.user_name, principal.user_id, project.as_ref().map(|p| p.id), origin, details).await;
        if quarantined && let Some(project) = &project {
            self.notify_quarantine(project, &new.filename, &principal.user_name).await;
            let hook = serde_json::json!({ "project": normalized, "filename": new.filename, "sha256": new.sha256, "trigger": "upload" });
            self.announce("quarantine", hook).await;
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

    /// Who published, as the transparency log names them: a user, or the trusted publisher by
    /// its kind and identity (`github:OWNER/REPO/WORKFLOW`, `gitlab:PROJECT//CI_FILE`, or
    /// `oidc:ISSUER` for a custom one), with its id.
    async fn log_actor(&self, principal: &Principal) -> String {
        let Credential::Publisher { publisher_id, .. } = principal.credential else {
            return format!("user:{}", principal.user_name);
        };
        let spec = self.db.publisher(publisher_id).await.ok().flatten().and_then(|p| serde_json::from_str(&p.spec).ok());
        match spec {
            Some(palisade_auth::PublisherSpec::Github { owner, repository, workflow, .. }) => {
                format!("github:{owner}/{repository}/{workflow}#{publisher_id}")
            }
            Some(palisade_auth::PublisherSpec::Gitlab { namespace, project, ci_config_path, .. }) => {
                format!("gitlab:{namespace}/{project}//{ci_config_path}#{publisher_id}")
            }
            Some(palisade_auth::PublisherSpec::Custom { issuer, .. }) => format!("oidc:{issuer}#{publisher_id}"),
            None => format!("publisher:{publisher_id}"),
        }
    }

    /// Scans the file and applies the policy. `None` when scanning is off; a refusal is recorded
    /// and returned as the error.
    async fn judge<E: Ecosystem>(
        &self,
        file: &Received<E::File>,
        normalized: &str,
        project: Option<&palisade_store::Project>,
        principal: &Principal,
    ) -> Result<Option<(Outcome, palisade_store::NewScan)>> {
        let new_project = project.is_none();
        if !self.scan.enabled() {
            return Ok(None);
        }
        let mut report = self.scan.scan(file.blob.path(), &file.filename, Vec::new()).await.map_err(|e| {
            tracing::error!(error = %e, "scanner unavailable");
            Error::Unavailable("the malware scanner is unavailable, so uploads are refused; try again later".into())
        })?;
        // What this release can do that the project's last releases could not.
        if let Some(p) = project {
            report = self
                .scan
                .compare_with_history(&self.db, &self.blobs, p.id, &E::version(&file.file), E::compare_versions, report)
                .await
                .map_err(internal)?;
        }
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
    async fn store<E: Ecosystem>(&self, file: Received<E::File>, new: &NewFile) -> Result<PublishOutcome> {
        let (sha, digests) = (file.digests.sha256.clone(), file.digests.clone());
        let existed = self.blobs.exists(&sha).await?;
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
                    StoreError::Reserved(r) => E::reused(&new.filename, &digests, &r),
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
            mail::notify(&self.mailer, &user, "An upload was quarantined for review", &what).await;
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

#[cfg(test)]
mod tests;
