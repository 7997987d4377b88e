//! Rows as the rest of Palisade sees them.

use sqlx::FromRow;

#[derive(Clone, Debug, FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub user_is_admin: bool,
    pub hint: String,
    /// JSON array of normalized project names; `None` means every project the user may touch.
    pub projects: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_addr: Option<String>,
}

impl Token {
    pub fn project_scope(&self) -> Option<Vec<String>> {
        self.projects.as_deref().map(serde_json_lite::parse_string_array)
    }
}

/// A tiny parser for the JSON string arrays stored in `tokens.projects`; the store does not need
/// a JSON library for anything else. Names are PEP 503 normalized, so they never need escapes.
mod serde_json_lite {
    pub fn parse_string_array(s: &str) -> Vec<String> {
        s.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| p.trim().trim_matches('"').to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }

    pub fn to_string_array(items: &[String]) -> String {
        let inner: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
        format!("[{}]", inner.join(","))
    }
}
pub(crate) use serde_json_lite::to_string_array;

#[derive(Clone, Debug, FromRow)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub normalized: String,
    pub created_at: i64,
    pub last_serial: i64,
    pub status: String,
    pub status_reason: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct Release {
    pub id: i64,
    pub project_id: i64,
    pub version: String,
    pub canonical_version: String,
    pub created_at: i64,
    pub metadata: String,
    pub requires_python: Option<String>,
}

/// A file with the version of its release. `core_metadata` is not loaded here; see
/// [`crate::Db::core_metadata`].
#[derive(Clone, Debug, FromRow)]
pub struct FileRow {
    pub id: i64,
    pub release_id: i64,
    pub project_id: i64,
    pub version: String,
    pub filename: String,
    pub packagetype: String,
    pub python_version: String,
    pub size: i64,
    pub sha256: String,
    pub blake2b_256: String,
    pub md5: String,
    pub upload_time: i64,
    pub requires_python: Option<String>,
    pub metadata_sha256: String,
    pub yanked: bool,
    pub yanked_reason: Option<String>,
    /// The PEP 792 status of the file's project.
    pub project_status: String,
    /// `published` or `quarantined`.
    pub status: String,
    /// The normalized name of the file's project.
    pub project: String,
}

impl FileRow {
    pub fn is_published(&self) -> bool {
        self.status == "published"
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct ScanReportRow {
    pub id: i64,
    pub filename: String,
    pub project: String,
    pub sha256: String,
    pub verdict: String,
    pub score: f64,
    pub report: String,
    pub outcome: String,
    pub trigger: String,
    pub actor: Option<String>,
    pub created_at: i64,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct RoleRow {
    pub project: String,
    pub user_name: String,
    pub role: String,
}

#[derive(Clone, Debug, FromRow)]
pub struct JournalEntry {
    pub serial: i64,
    pub project: String,
    pub action: String,
    pub actor: Option<String>,
    pub at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Maintainer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Maintainer => "maintainer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "maintainer" => Some(Role::Maintainer),
            _ => None,
        }
    }
}

/// PEP 792 project status markers.
pub const PROJECT_STATUSES: &[&str] = &["active", "archived", "quarantined", "deprecated"];

#[cfg(test)]
mod tests {
    use super::serde_json_lite::*;

    #[test]
    fn string_arrays_round_trip() {
        let v = vec!["a".to_string(), "b-c".to_string()];
        assert_eq!(parse_string_array(&to_string_array(&v)), v);
        assert!(parse_string_array("[]").is_empty());
    }
}
