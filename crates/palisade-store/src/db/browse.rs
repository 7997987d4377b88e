//! What the web pages list across projects: the recently updated ones and search results. Only
//! projects with a published file appear, never a quarantined project; each comes with its
//! newest release that has a published file, described by that release's metadata.

use sqlx::Row;

use super::Db;
use crate::StoreError;

/// One project as a list shows it.
#[derive(Clone, Debug)]
pub struct ProjectCard {
    pub name: String,
    pub normalized: String,
    /// The newest release (by creation) with a published file.
    pub version: String,
    /// The core metadata fields of that release (JSON), as recorded when it was created.
    pub metadata: String,
    /// When the project's newest published file was uploaded (microseconds).
    pub updated: i64,
}

/// Projects a list may show, with their newest release that has a published file.
const CARDS: &str = "SELECT p.name, p.normalized, r.version, r.metadata, \
       (SELECT MAX(f.upload_time) FROM files f WHERE f.project_id = p.id AND f.status = 'published') AS updated \
     FROM projects p JOIN releases r ON r.id = ( \
       SELECT r2.id FROM releases r2 WHERE r2.project_id = p.id \
         AND EXISTS (SELECT 1 FROM files f2 WHERE f2.release_id = r2.id AND f2.status = 'published') \
       ORDER BY r2.created_at DESC, r2.id DESC LIMIT 1) \
     WHERE p.status <> 'quarantined'";

fn card(row: &sqlx::any::AnyRow) -> ProjectCard {
    ProjectCard {
        name: row.get(0),
        normalized: row.get(1),
        version: row.get(2),
        metadata: row.get(3),
        updated: row.try_get::<i64, _>(4).unwrap_or(0),
    }
}

/// `s` as a LIKE pattern that matches it literally anywhere (with `ESCAPE '\'`), lower-cased.
fn contains_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Db {
    /// The `limit` projects whose newest published file is the most recent.
    pub async fn recent_projects(&self, limit: i64) -> Result<Vec<ProjectCard>, StoreError> {
        let sql = format!("{CARDS} ORDER BY updated DESC, p.normalized LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(card).collect())
    }

    /// Projects whose name, or whose newest listed release's metadata (summary, keywords,
    /// description), contains `query` (case-insensitive), at most `limit`, unranked: the caller
    /// ranks them. `normalized` is the query as a project name (PEP 503).
    pub async fn search_projects(&self, query: &str, normalized: &str, limit: i64) -> Result<Vec<ProjectCard>, StoreError> {
        let sql = format!(
            "{CARDS} AND (p.normalized LIKE $1 ESCAPE '\\' OR LOWER(r.metadata) LIKE $2 ESCAPE '\\') \
             ORDER BY CASE WHEN p.normalized LIKE $3 ESCAPE '\\' THEN 0 ELSE 1 END, updated DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(contains_pattern(normalized))
            .bind(contains_pattern(query))
            .bind(contains_pattern(normalized))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(card).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(contains_pattern("Req_ue%sts\\"), "%req\\_ue\\%sts\\\\%");
    }
}
