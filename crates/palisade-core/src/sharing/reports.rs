//! Reports about projects, through PyPI's observations API: any user may report (with a token
//! that has the `report` action, or a session); administrators mark some users as trusted
//! reporters. A malware report can quarantine at once, by PyPI's rule or stricter settings: a
//! trusted reporter's report of a project younger than `sharing.new_project_hours`, or
//! `sharing.reporters` distinct reporters of whom one is trusted. A report that names a version
//! quarantines that release's files; otherwise the whole project. What the administrator then
//! decides (confirmed or released) is recorded against each report, for reporter accuracy.

use palisade_store::{NewObservation, Project};
use serde_json::json;

use crate::Core;
use crate::access::{Action, Origin, Principal};
use crate::error::{Result, forbidden, invalid, not_found};
use crate::scanning::Outcome;

/// The kinds PyPI's observations API accepts.
pub const KINDS: [&str; 4] = ["is_malware", "is_spam", "is_dependency_confusion", "something_else"];
/// A summary's longest length, in characters.
pub const MAX_SUMMARY_CHARS: usize = 2000;
/// Reports one user may file in an hour.
pub const MAX_REPORTS_PER_HOUR: i64 = 30;

/// A report as received.
#[derive(Clone, Debug)]
pub struct Report {
    pub kind: String,
    pub summary: String,
    pub inspector_url: Option<String>,
    /// The release it is about (an extension: PyPI's API has no such field).
    pub version: Option<String>,
}

/// What a report led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quarantined {
    No,
    Project,
    Release(Vec<String>),
}

impl Core {
    /// Files `report` about `project` on behalf of `principal`; quarantines when the rule says so.
    pub async fn report_project(&self, principal: &Principal, origin: &Origin, project: &str, report: Report) -> Result<Quarantined> {
        let Some(reporter_id) = principal.user_id else { return Err(forbidden("reports are filed by users, not by trusted publishers")) };
        if !principal.allows(Action::Report) {
            return Err(forbidden("this token may not report projects: create one with the 'report' action"));
        }
        let normalized = palisade_dist::normalize(project);
        if !principal.may_touch(&normalized) {
            return Err(forbidden(format!("this token is limited to other projects than {normalized:?}")));
        }
        let Some(p) = self.db.project(&normalized).await? else { return Err(not_found(format!("no project named {normalized:?}"))) };
        if !KINDS.contains(&report.kind.as_str()) {
            return Err(invalid(format!("unknown kind {:?}: expected one of {}", report.kind, KINDS.join(", "))));
        }
        let summary = report.summary.trim();
        if summary.is_empty() || summary.chars().count() > MAX_SUMMARY_CHARS {
            return Err(invalid(format!("a summary is required, at most {MAX_SUMMARY_CHARS} characters")));
        }
        // Shown in terminals and mail: no control characters but line breaks and tabs.
        if summary.chars().any(|c| c != '\n' && c != '\t' && palisade_dist::display_hazard(c).is_some()) {
            return Err(invalid("the summary holds control or invisible formatting characters"));
        }
        if self.db.reports_since(reporter_id, palisade_store::now_micros() - 3_600_000_000).await? >= MAX_REPORTS_PER_HOUR {
            return Err(crate::Error::TooMany(format!("at most {MAX_REPORTS_PER_HOUR} reports an hour; try again later")));
        }
        let inspector = report.inspector_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        if let Some(u) = inspector {
            self.check_inspector_url(u)?;
        } else if report.kind == "is_malware" {
            return Err(invalid("inspector_url is required for is_malware: link to the code (an https URL, or the file on this server)"));
        }
        let version = match report.version.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => {
                let files = self.db.project_files(p.id).await?;
                let canonical = palisade_dist::parse_version(v)
                    .map(|v| palisade_dist::canonical_version(&v))
                    .map_err(|e| invalid(format!("version {v:?}: {e}")))?;
                // Kept as the release spells it, so decisions on its files find the report.
                let known = files
                    .iter()
                    .find(|f| palisade_dist::parse_version(&f.version).is_ok_and(|x| palisade_dist::canonical_version(&x) == canonical));
                let Some(f) = known else { return Err(not_found(format!("{normalized:?} has no release {v:?}"))) };
                Some(f.version.clone())
            }
            None => None,
        };
        let o = NewObservation {
            project_id: p.id,
            version: version.clone(),
            kind: report.kind.clone(),
            summary: summary.to_string(),
            inspector_url: inspector.map(str::to_string),
            reporter_id,
        };
        let id = self.db.add_observation(&o).await?;
        let details = json!({ "report": id, "kind": o.kind, "summary": o.summary, "inspector_url": o.inspector_url, "version": version, "reporter": principal.user_name });
        crate::events::record(self, "project_reported", &principal.user_name, Some(reporter_id), Some(p.id), origin, details.clone()).await;
        let mut hook = details;
        hook["project"] = json!(normalized);
        self.announce("report", hook).await;
        if o.kind != "is_malware" || !self.config.sharing.auto_quarantine {
            return Ok(Quarantined::No);
        }
        // Already held whole: nothing more to do (and nobody to mail again).
        if p.status == "quarantined" || !self.quarantine_rule_met(&p).await? {
            return Ok(Quarantined::No);
        }
        self.auto_quarantine(&p, version.as_deref()).await
    }

    fn check_inspector_url(&self, u: &str) -> Result<()> {
        let bad = || invalid(format!("inspector_url {u:?}: expected an https:// URL (or a link to the file on this server)"));
        let parsed = url::Url::parse(u).map_err(|_| bad())?;
        // This server's own links, compared by origin (scheme, host, port), not by text.
        let own = self.config.public_url.as_deref().and_then(|b| url::Url::parse(b).ok()).is_some_and(|b| b.origin() == parsed.origin());
        if (parsed.scheme() != "https" && !own) || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad());
        }
        if u.len() > 2000 {
            return Err(invalid("inspector_url: at most 2000 characters"));
        }
        Ok(())
    }

    /// Whether the malware reports of `p` meet the auto-quarantine rule.
    async fn quarantine_rule_met(&self, p: &Project) -> Result<bool> {
        let reports = self.db.observations(Some(&p.normalized)).await?;
        let mut reporters = std::collections::HashMap::new();
        // Open reports only: those already decided, or already acted on (a quarantine an
        // administrator has since lifted), do not count again.
        for r in reports.iter().filter(|r| r.kind == "is_malware" && r.outcome.is_none() && r.action.is_none()) {
            reporters.insert(r.reporter_id, r.trusted);
        }
        let trusted = reporters.values().any(|t| *t);
        let age_hours = (palisade_store::now_micros() - p.created_at) / 3_600_000_000;
        let young = age_hours < i64::try_from(self.config.sharing.new_project_hours).unwrap_or(i64::MAX);
        Ok(trusted && (young || reporters.len() as u64 >= self.config.sharing.reporters))
    }

    /// Quarantines the release `version` of `p` (its published files) or the whole project.
    async fn auto_quarantine(&self, p: &Project, version: Option<&str>) -> Result<Quarantined> {
        let actor = "auto-quarantine";
        let outcome = match version {
            Some(v) => {
                let canonical = palisade_dist::parse_version(v).map(|v| palisade_dist::canonical_version(&v)).unwrap_or_default();
                let files = self.db.project_files(p.id).await?;
                let mut held = Vec::new();
                for f in files.iter().filter(|f| f.is_published()) {
                    if palisade_dist::parse_version(&f.version).is_ok_and(|x| palisade_dist::canonical_version(&x) == canonical) {
                        let scan = palisade_store::NewScan {
                            // Held on users' reports, not on the scanner's word: no findings.
                            verdict: "suspicious".into(),
                            score: 0.0,
                            report_json: json!({ "verdict": "suspicious", "held_on": "malware reports met the auto-quarantine rule", "findings": [] }).to_string(),
                            outcome: Outcome::Quarantine.as_str().into(),
                            trigger: "report".into(),
                        };
                        self.db.quarantine_file(&f.filename, &scan, actor).await?;
                        held.push(f.filename.clone());
                    }
                }
                self.db.set_observations_action(p.id, "quarantined-release").await?;
                Quarantined::Release(held)
            }
            None => {
                self.db.set_status(&p.normalized, "quarantined", Some("reported as malware; under review"), actor).await?;
                self.db.set_observations_action(p.id, "quarantined-project").await?;
                Quarantined::Project
            }
        };
        self.changed(&p.normalized);
        let details = json!({ "project": p.normalized, "version": version, "files": match &outcome { Quarantined::Release(f) => f.clone(), _ => Vec::new() }, "trigger": "report" });
        crate::events::record(self, "project_auto_quarantined", actor, None, Some(p.id), &Origin::default(), details.clone()).await;
        self.announce("quarantine", details).await;
        let what = format!(
            "Malware reports about {} met this instance's auto-quarantine rule: {} is held for review and not installable \
             until an administrator decides.",
            p.normalized,
            match version {
                Some(v) => format!("release {v}"),
                None => "the project".to_string(),
            }
        );
        self.tell_owners(p, &format!("{} was quarantined after malware reports", p.normalized), &what).await;
        tracing::warn!(project = %p.normalized, version = ?version, "auto-quarantined on malware reports");
        Ok(outcome)
    }
}
