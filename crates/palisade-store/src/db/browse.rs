//! What the web pages list across projects: the recently updated ones and search results, as
//! names only (the pages describe each from its public files). Only projects with a published
//! file appear, never a quarantined project.

use sqlx::Row;

use super::Db;
use crate::{Engine, StoreError};

/// One project a list names.
#[derive(Clone, Debug)]
pub struct ProjectCard {
    pub name: String,
    pub normalized: String,
    /// When the project's newest published file was uploaded (microseconds).
    pub updated: i64,
}

/// Projects a list may show, with when their newest published file came.
const LISTABLE: &str = "SELECT p.name, p.normalized, \
       (SELECT MAX(f.upload_time) FROM files f WHERE f.project_id = p.id AND f.status = 'published') AS updated \
     FROM projects p \
     WHERE p.status <> 'quarantined' AND EXISTS (SELECT 1 FROM files f2 WHERE f2.project_id = p.id AND f2.status = 'published')";

fn card(row: &sqlx::any::AnyRow) -> ProjectCard {
    ProjectCard { name: row.get(0), normalized: row.get(1), updated: row.try_get::<i64, _>(2).unwrap_or(0) }
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
        let sql = format!("{LISTABLE} ORDER BY updated DESC, p.normalized LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(card).collect())
    }

    /// Projects whose name contains `normalized` (the query as a project name, PEP 503), or one
    /// of whose releases with a published file has a summary or keywords containing `query`
    /// (case-insensitive; SQLite lower-cases ASCII only), at most
    /// `limit`, name matches first: the caller ranks them further.
    pub async fn search_projects(&self, query: &str, normalized: &str, limit: i64) -> Result<Vec<ProjectCard>, StoreError> {
        // The summary and keywords only, not the whole metadata (its keys, its description).
        let (summary, keywords) = match self.engine() {
            Engine::Sqlite => ("json_extract(r.metadata, '$.summary')", "json_extract(r.metadata, '$.keywords')"),
            Engine::Postgres => ("(r.metadata::json ->> 'summary')", "(r.metadata::json ->> 'keywords')"),
        };
        let sql = format!(
            "{LISTABLE} AND (p.normalized LIKE $1 ESCAPE '\\' OR EXISTS (SELECT 1 FROM releases r WHERE r.project_id = p.id \
               AND EXISTS (SELECT 1 FROM files f3 WHERE f3.release_id = r.id AND f3.status = 'published') \
               AND (LOWER(COALESCE({summary}, '')) LIKE $2 ESCAPE '\\' OR LOWER(COALESCE({keywords}, '')) LIKE $3 ESCAPE '\\'))) \
             ORDER BY CASE WHEN p.normalized LIKE $4 ESCAPE '\\' THEN 0 ELSE 1 END, updated DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(contains_pattern(normalized))
            .bind(contains_pattern(query))
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
