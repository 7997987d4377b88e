//! Palisade's verdicts as OSV records: written when an administrator confirms a held file as
//! malicious or removes a file as malicious (one record per release: a second bad file of the
//! same release is added to it), withdrawn (never deleted) when a file it lists is released, and
//! served under `/osv/PyPI/` in OSV.dev's export layout or written out for
//! `ossf/malicious-packages` (`palisade osv export`).

use std::path::Path;

use palisade_osv::{Credit, FileDigests, Verdict};
use palisade_store::{FileRow, NewAdvisory, StoredAdvisory};
use serde_json::{Value, json};

use super::feeds::new_advisory;
use super::now_rfc3339;
use crate::Core;

/// Findings named in a record's details.
const MAX_FINDINGS: usize = 20;

/// Why a record is written.
#[derive(Clone, Copy, Debug)]
pub enum Reason {
    /// A held file confirmed as malicious.
    Confirmed,
    /// A file removed as malicious.
    Removed,
}

fn digests(f: &FileRow) -> FileDigests {
    FileDigests { filename: f.filename.clone(), sha256: f.sha256.clone(), blake2b_256: f.blake2b_256.clone(), md5: f.md5.clone() }
}

/// The details: what the scanner found (file, line and excerpt of each finding) and the
/// reviewer's note.
fn details(f: &FileRow, reason: Reason, report: Option<&palisade_store::ScanReportRow>, note: Option<&str>, actor: &str) -> String {
    let mut out = match reason {
        Reason::Confirmed => format!("An administrator ({actor}) confirmed `{}` as malicious after review.\n", f.filename),
        Reason::Removed => format!("An administrator ({actor}) removed `{}` as malicious.\n", f.filename),
    };
    if let Some(r) = report {
        out.push_str(&format!("\nPalisade's static scanner: verdict {}, score {:.1}.\n", r.verdict, r.score));
        let findings = serde_json::from_str::<Value>(&r.report).ok().and_then(|v| v.get("findings").cloned()).unwrap_or(Value::Null);
        let list: Vec<&Value> = findings
            .as_array()
            .map(|a| a.iter().filter(|x| x["weight"].as_f64().unwrap_or(0.0) > 0.0).take(MAX_FINDINGS).collect())
            .unwrap_or_default();
        if !list.is_empty() {
            out.push_str("\nFindings:\n");
        }
        for x in list {
            let path = x["path"].as_str().unwrap_or("");
            let at = match x["line"].as_u64() {
                Some(l) if !path.is_empty() => format!("{path}:{l}"),
                _ if !path.is_empty() => path.to_string(),
                _ => "the archive".into(),
            };
            out.push_str(&format!("- `{}` in {at}: {}\n", x["rule"].as_str().unwrap_or("?"), x["message"].as_str().unwrap_or("")));
            let excerpt: String = x["excerpt"].as_str().unwrap_or("").chars().take(300).collect();
            if !excerpt.trim().is_empty() {
                out.push_str(&format!("  ```\n  {}\n  ```\n", excerpt.replace("```", "'''").replace('\n', "\n  ")));
            }
        }
    }
    if let Some(n) = note.filter(|n| !n.trim().is_empty()) {
        out.push_str(&format!("\nReviewer's note: {n}\n"));
    }
    out
}

impl Core {
    /// The name Palisade's records credit.
    fn credit(&self) -> Credit {
        let name = self.config.sharing.credit.clone().unwrap_or_else(|| {
            self.config
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(|h| format!("Palisade at {h}")))
                .unwrap_or_else(|| "Palisade".into())
        });
        Credit { name, contact: self.config.public_url.iter().cloned().collect() }
    }

    /// Writes (or extends) the record of `file`'s release after a malware verdict; returns the
    /// record's id. The read and the write are one store transaction, so two verdicts on one
    /// release at once make one record with both files.
    pub async fn record_verdict(&self, file: &FileRow, reason: Reason, note: Option<&str>, actor: &str) -> anyhow::Result<String> {
        let report = self.db.reports(&file.filename).await?.into_iter().next();
        let text = details(file, reason, report.as_ref(), note, actor);
        let now = now_rfc3339();
        let prefix = self.config.sharing.prefix.clone();
        let year = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year();
        let mut verdict = Verdict {
            id: String::new(),
            name: file.project.clone(),
            versions: vec![file.version.clone()],
            files: vec![digests(file)],
            summary: format!("Malicious code in {} (PyPI)", file.project),
            details: text.clone(),
            published: now.clone(),
            modified: now.clone(),
            withdrawn: None,
            credit: self.credit(),
            references: Vec::new(),
        };
        let mut failure = None;
        let written = self
            .db
            .change_local_advisories(&file.project, None, actor, |current, n| {
                // An open record of the same release takes the file.
                for stored in current.iter().filter(|s| !s.withdrawn) {
                    let Ok(mut record) = serde_json::from_str::<Value>(&stored.record) else { continue };
                    if !listed_version(&record, &file.version) {
                        continue;
                    }
                    add_file(&mut record, file, &text, &now);
                    return reread(&record).map_err(|e| failure = Some(e)).into_iter().collect();
                }
                verdict.id = palisade_osv::local_id(&prefix, year.into(), n as u64);
                match palisade_osv::record(&verdict) {
                    Ok(record) => reread(&record).map_err(|e| failure = Some(e)).into_iter().collect(),
                    Err(e) => {
                        failure = Some(e.to_string());
                        Vec::new()
                    }
                }
            })
            .await?;
        if let Some(e) = failure {
            anyhow::bail!("the OSV record of {} could not be written: {e}", file.filename);
        }
        let id = written.first().map(|a| a.osv_id.clone()).ok_or_else(|| anyhow::anyhow!("no OSV record was written"))?;
        self.after_record_change(&file.project).await;
        tracing::info!(osv.id = %id, file.filename = %file.filename, "OSV record written");
        Ok(id)
    }

    /// After `file` was released (a false positive): Palisade's records that list it no longer
    /// do. A record left with no file is withdrawn (never deleted); one that still lists other
    /// confirmed files of the release keeps blocking the release, without this file's hash.
    /// Returns the ids of the records withdrawn.
    pub async fn withdraw_verdicts(&self, file: &FileRow, actor: &str) -> anyhow::Result<Vec<String>> {
        let now = now_rfc3339();
        let mut failure = None;
        let written = self
            .db
            .change_local_advisories(&file.project, Some(&file.sha256), actor, |current, _| {
                let mut out = Vec::new();
                for stored in current.iter().filter(|s| !s.withdrawn) {
                    let Ok(mut record) = serde_json::from_str::<Value>(&stored.record) else { continue };
                    if !remove_file(&mut record, file) {
                        continue;
                    }
                    record["modified"] = json!(next_modified(&record, &now));
                    if listed_files(&record) == 0 {
                        record["withdrawn"] = json!(now);
                    }
                    match reread(&record) {
                        Ok(a) => out.push(a),
                        Err(e) => failure = Some(e),
                    }
                }
                out
            })
            .await?;
        if let Some(e) = failure {
            anyhow::bail!("an OSV record listing {} could not be changed: {e}", file.filename);
        }
        if !written.is_empty() {
            self.after_record_change(&file.project).await;
        }
        let withdrawn: Vec<String> = written.iter().filter(|a| a.withdrawn).map(|a| a.osv_id.clone()).collect();
        for id in &withdrawn {
            tracing::info!(osv.id = %id, file.filename = %file.filename, "OSV record withdrawn");
        }
        Ok(withdrawn)
    }

    async fn after_record_change(&self, project: &str) {
        if let Err(e) = self.refresh_blocks().await {
            tracing::warn!(error = %e, "could not reload the blocking records");
        }
        self.changed(project);
    }

    /// Palisade's own records, newest change first.
    pub async fn local_records(&self) -> crate::Result<Vec<StoredAdvisory>> {
        Ok(self.db.local_advisories().await?)
    }

    /// Known vulnerabilities of `version` of `project`, in the shape of PyPI's JSON API
    /// `vulnerabilities`: the feeds' records that are not malware (PYSEC, GHSA, ...) and affect
    /// it, withdrawn ones included and marked.
    pub async fn vulnerabilities(&self, project: &str, version: &str) -> crate::Result<Vec<Value>> {
        let stored = self.db.advisories_naming(project).await?;
        let parsed: Vec<palisade_osv::Advisory> =
            stored.iter().filter(|s| !s.malicious).filter_map(|s| palisade_osv::parse(s.record.as_bytes()).ok()).collect();
        Ok(palisade_osv::vulnerabilities(parsed.iter(), project, version)
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "source": "osv",
                    "link": format!("https://osv.dev/vulnerability/{}", a.id),
                    "aliases": a.aliases,
                    "summary": a.summary,
                    "details": a.details,
                    "fixed_in": a.fixed_in(project),
                    "withdrawn": a.withdrawn,
                })
            })
            .collect())
    }

    /// `all.zip` of OSV.dev's export layout: every record of Palisade's own, `<ID>.json` each.
    pub async fn osv_all_zip(&self) -> crate::Result<Vec<u8>> {
        let records: Vec<(String, Vec<u8>)> =
            self.db.local_advisories().await?.into_iter().map(|r| (r.osv_id, r.record.into_bytes())).collect();
        tokio::task::spawn_blocking(move || palisade_osv::write_zip(&records))
            .await
            .map_err(crate::error::internal)?
            .map_err(crate::error::internal)
    }

    /// `modified_id.csv` of OSV.dev's export layout: `<modified>,<id>`, newest first.
    pub async fn osv_modified_csv(&self) -> crate::Result<String> {
        let entries: Vec<(String, String)> = self.db.local_advisories().await?.into_iter().map(|r| (r.modified, r.osv_id)).collect();
        Ok(palisade_osv::modified_id_csv(&entries))
    }

    /// One of Palisade's own records, as served.
    pub async fn osv_record(&self, id: &str) -> crate::Result<Option<String>> {
        Ok(self.db.local_advisory(id).await?.map(|r| r.record))
    }

    /// Answers OSV's `POST /v1/query` from Palisade's own records: `{"vulns": [...]}`, or `{}`.
    pub async fn osv_query(&self, body: &[u8]) -> crate::Result<Value> {
        let q = palisade_osv::parse_query(body).map_err(|e| crate::error::invalid(e.to_string()))?;
        let mut out = Vec::new();
        for r in self.db.local_advisories_about(&q.name, None).await? {
            let Ok(a) = palisade_osv::parse(r.record.as_bytes()) else { continue };
            let hit = match &q.version {
                Some(v) => a.affects(&q.name, v),
                None => a.packages.iter().any(|p| p.name == q.name),
            };
            if hit && let Ok(v) = serde_json::from_str::<Value>(&r.record) {
                out.push(v);
            }
        }
        Ok(palisade_osv::query_response(&out))
    }
}

fn listed_version(record: &Value, version: &str) -> bool {
    record["affected"][0]["versions"].as_array().is_some_and(|v| v.iter().any(|x| x.as_str() == Some(version)))
}

/// The row to store for one of Palisade's records, read back as any feed's would be.
fn reread(record: &Value) -> Result<NewAdvisory, String> {
    let text = record.to_string();
    palisade_osv::parse(text.as_bytes()).map(|a| new_advisory(&a, &text)).map_err(|e| e.to_string())
}

/// How many files a record lists.
fn listed_files(record: &Value) -> usize {
    record["affected"][0]["database_specific"]["indicators"]["package_integrity"].as_array().map_or(0, Vec::len)
}

/// Takes `f` out of a record's files, and its version out of the record's versions when no
/// other listed file is of that version; `false` if the record did not list it.
fn remove_file(record: &mut Value, f: &FileRow) -> bool {
    let affected = &mut record["affected"][0];
    let Some(files) = affected["database_specific"]["indicators"]["package_integrity"].as_array_mut() else { return false };
    let before = files.len();
    files.retain(|p| p["hashes"]["sha256"].as_str() != Some(f.sha256.as_str()));
    if files.len() == before {
        return false;
    }
    let same = |name: &str| {
        palisade_dist::DistFilename::parse(name).is_ok_and(|d| palisade_dist::canonical_version(&d.version) == canonical(&f.version))
    };
    let version_left = files.iter().any(|p| p["filename"].as_str().is_some_and(same));
    if !version_left
        && !files.is_empty()
        && let Some(versions) = affected["versions"].as_array_mut()
    {
        versions.retain(|v| v.as_str() != Some(f.version.as_str()));
    }
    true
}

fn canonical(version: &str) -> String {
    palisade_dist::parse_version(version).map(|v| palisade_dist::canonical_version(&v)).unwrap_or_else(|_| version.to_string())
}

fn lists_sha256(record: &Value, sha256: &str) -> bool {
    record["affected"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["database_specific"]["indicators"]["package_integrity"].as_array().into_iter().flatten())
        .any(|p| p["hashes"]["sha256"].as_str() == Some(sha256))
}

/// Adds a file (and its findings) to an open record of its release.
fn add_file(record: &mut Value, f: &FileRow, text: &str, now: &str) {
    if lists_sha256(record, &f.sha256) {
        return;
    }
    let integrity = &mut record["affected"][0]["database_specific"]["indicators"]["package_integrity"];
    if let Some(list) = integrity.as_array_mut() {
        list.push(json!({ "filename": f.filename, "hashes": { "sha256": f.sha256, "blake2b_256": f.blake2b_256, "md5": f.md5 } }));
    }
    let details = record["details"].as_str().unwrap_or("").to_string();
    record["details"] = json!(format!("{details}\n---\n\n{text}"));
    record["modified"] = json!(next_modified(record, now));
}

/// The `modified` time of a record changed `now`: later than the one it had, by a second if
/// the change falls within the same second. Feeds find changed records by `modified` alone, so a
/// record written and withdrawn within one second must not keep its time (another instance
/// would keep blocking what was released).
fn next_modified(record: &Value, now: &str) -> String {
    let previous = record["modified"].as_str().and_then(|m| m.parse::<jiff::Timestamp>().ok());
    match (previous, now.parse::<jiff::Timestamp>()) {
        (Some(p), Ok(n)) if n <= p => {
            let bumped = p.checked_add(jiff::SignedDuration::from_secs(1)).unwrap_or(p);
            bumped.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
        }
        _ => now.to_string(),
    }
}

/// Where `palisade osv export` writes a record: the `ossf/malicious-packages` layout
/// (`osv/malicious/pypi/<name>/<ID>.json`, withdrawn ones under `osv/withdrawn/`), or with
/// `contribute` a `MAL-0000-<ID>.json` without `id` and `summary`, as that repository asks new
/// reports to be. Returns the files written.
pub fn export(records: &[StoredAdvisory], dir: &Path, contribute: bool) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for r in records {
        let record: Value = serde_json::from_str(&r.record)?;
        let name = record["affected"][0]["package"]["name"].as_str().unwrap_or("unknown").to_string();
        if palisade_dist::normalize(&name) != name || name.contains(['/', '\\']) || name.starts_with('.') {
            anyhow::bail!("record {} names {name:?}, not a normalized project name", r.osv_id);
        }
        let (path, body) = if contribute {
            if r.withdrawn {
                continue;
            }
            (dir.join("osv/malicious/pypi").join(&name).join(format!("MAL-0000-{}.json", r.osv_id)), palisade_osv::contribution(&record))
        } else {
            let status = if r.withdrawn { "withdrawn" } else { "malicious" };
            (dir.join("osv").join(status).join("pypi").join(&name).join(format!("{}.json", r.osv_id)), record)
        };
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        let mut bytes = serde_json::to_vec_pretty(&body)?;
        bytes.push(b'\n');
        std::fs::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(filename: &str, version: &str, sha256: &str) -> FileRow {
        FileRow {
            id: 1,
            release_id: 1,
            project_id: 1,
            version: version.into(),
            filename: filename.into(),
            packagetype: "bdist_wheel".into(),
            python_version: "py3".into(),
            size: 1,
            sha256: sha256.into(),
            blake2b_256: "b".into(),
            md5: "m".into(),
            upload_time: 0,
            requires_python: None,
            metadata_sha256: "x".into(),
            yanked: false,
            yanked_reason: None,
            project_status: "active".into(),
            status: "malicious".into(),
            project: "demo".into(),
            has_provenance: false,
        }
    }

    fn record(files: &[(&str, &str)], versions: &[&str]) -> Value {
        let integrity: Vec<Value> = files.iter().map(|(f, h)| json!({ "filename": f, "hashes": { "sha256": h } })).collect();
        json!({ "affected": [{ "package": { "ecosystem": "PyPI", "name": "demo" }, "versions": versions,
            "database_specific": { "indicators": { "package_integrity": integrity } } }] })
    }

    /// Releasing one of two confirmed files of a release leaves the record blocking the release
    /// without that file; releasing the last empties it (the caller then withdraws it).
    #[test]
    fn a_release_takes_one_file_out_of_its_record() {
        let wheel = row("demo-1.0-py3-none-any.whl", "1.0", "aa");
        let sdist = row("demo-1.0.tar.gz", "1.0", "bb");
        let mut r = record(&[(&wheel.filename, "aa"), (&sdist.filename, "bb")], &["1.0"]);
        assert!(remove_file(&mut r, &wheel));
        assert_eq!((listed_files(&r), r["affected"][0]["versions"].clone()), (1, json!(["1.0"])));
        assert!(!lists_sha256(&r, "aa") && lists_sha256(&r, "bb"));
        assert!(!remove_file(&mut r, &wheel), "not listed any more");
        assert!(remove_file(&mut r, &sdist));
        assert_eq!(listed_files(&r), 0);
        // A version goes with its last file, while other files remain.
        let two = row("demo-2.0-py3-none-any.whl", "2.0", "cc");
        let mut r = record(&[(&wheel.filename, "aa"), (&two.filename, "cc")], &["1.0", "2.0"]);
        assert!(remove_file(&mut r, &two));
        assert_eq!(r["affected"][0]["versions"], json!(["1.0"]));
    }

    /// Feeds find changes by `modified`: a change within the record's second still moves it on.
    #[test]
    fn a_change_always_moves_modified_on() {
        let r = json!({ "modified": "2026-01-02T00:00:00Z" });
        assert_eq!(next_modified(&r, "2026-01-02T00:00:05Z"), "2026-01-02T00:00:05Z");
        assert_eq!(next_modified(&r, "2026-01-02T00:00:00Z"), "2026-01-02T00:00:01Z");
        assert_eq!(next_modified(&r, "2026-01-01T23:59:59Z"), "2026-01-02T00:00:01Z", "a clock that went back");
        assert_eq!(next_modified(&json!({}), "2026-01-02T00:00:00Z"), "2026-01-02T00:00:00Z");
    }

    #[test]
    fn a_second_file_joins_its_release_record_once() {
        let wheel = row("demo-1.0-py3-none-any.whl", "1.0", "aa");
        let sdist = row("demo-1.0.tar.gz", "1.0", "bb");
        let mut r = record(&[(&wheel.filename, "aa")], &["1.0"]);
        r["details"] = json!("first");
        add_file(&mut r, &sdist, "second", "2026-01-02T00:00:00Z");
        add_file(&mut r, &sdist, "again", "2026-01-03T00:00:00Z");
        assert_eq!(listed_files(&r), 2);
        assert!(r["details"].as_str().unwrap().contains("second") && !r["details"].as_str().unwrap().contains("again"));
        assert_eq!(r["modified"], json!("2026-01-02T00:00:00Z"));
        assert!(listed_version(&r, "1.0") && !listed_version(&r, "2.0"));
    }
}
