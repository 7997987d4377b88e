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
    /// For a search: how well the project's summary or keywords match, lower is better
    /// (`None`: they do not, only the name does).
    pub relevance: Option<f64>,
}

/// Projects a list may show, with when their newest published file came.
const LISTABLE: &str = "SELECT p.name, p.normalized, \
       (SELECT MAX(f.upload_time) FROM files f WHERE f.project_id = p.id AND f.status = 'published') AS updated \
     FROM projects p \
     WHERE p.status <> 'quarantined' AND EXISTS (SELECT 1 FROM files f2 WHERE f2.project_id = p.id AND f2.status = 'published')";

fn card(row: &sqlx::any::AnyRow) -> ProjectCard {
    ProjectCard {
        name: row.get(0),
        normalized: row.get(1),
        updated: row.try_get::<i64, _>(2).unwrap_or(0),
        relevance: row.try_get::<Option<f64>, _>(3).ok().flatten(),
    }
}

/// The words of a search, for the full-text index: letters and digits only (so no query syntax
/// gets through), lower-cased, at most eight.
fn words(query: &str) -> Vec<String> {
    query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(8).map(str::to_lowercase).collect()
}

/// The full-text query for `words`: every word, the last one also as a prefix (the user may
/// still be typing it). `None` when there are no words.
fn text_query(engine: Engine, words: &[String]) -> Option<String> {
    let (last, rest) = words.split_last()?;
    Some(match engine {
        // FTS5: quoted strings are taken literally; a trailing `*` makes a prefix.
        Engine::Sqlite => rest.iter().map(|w| format!("\"{w}\"")).chain([format!("\"{last}\"*")]).collect::<Vec<_>>().join(" "),
        // to_tsquery: `&` between words, `:*` for a prefix.
        Engine::Postgres => rest.iter().cloned().chain([format!("{last}:*")]).collect::<Vec<_>>().join(" & "),
    })
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
    /// of whose releases with a published file has a summary or keywords matching `query` in the
    /// full-text index (SQLite FTS5, PostgreSQL text search; stemmed, the last word as a prefix),
    /// at most `limit`: name matches first, then by relevance. The caller ranks the name matches
    /// further.
    pub async fn search_projects(&self, query: &str, normalized: &str, limit: i64) -> Result<Vec<ProjectCard>, StoreError> {
        // The summary and keywords only, not the whole metadata (its keys, its description).
        let hits = match self.engine() {
            Engine::Sqlite => {
                "SELECT r.project_id AS pid, MIN(m.score) AS score \
                 FROM (SELECT rowid AS rid, rank AS score FROM release_text WHERE release_text MATCH $4) m \
                 JOIN releases r ON r.id = m.rid \
                 WHERE EXISTS (SELECT 1 FROM files f3 WHERE f3.release_id = r.id AND f3.status = 'published') \
                 GROUP BY r.project_id"
            }
            Engine::Postgres => {
                "SELECT r.project_id AS pid, MIN(-ts_rank(to_tsvector('english', COALESCE(r.metadata::json ->> 'summary', '') || ' ' \
                   || COALESCE(r.metadata::json ->> 'keywords', '')), to_tsquery('english', $4))) AS score FROM releases r \
                 WHERE to_tsvector('english', COALESCE(r.metadata::json ->> 'summary', '') || ' ' || COALESCE(r.metadata::json ->> 'keywords', '')) \
                   @@ to_tsquery('english', $4) \
                   AND EXISTS (SELECT 1 FROM files f3 WHERE f3.release_id = r.id AND f3.status = 'published') \
                 GROUP BY r.project_id"
            }
        };
        // Without words (a query of punctuation), only names can match: no text hits at all.
        let text = text_query(self.engine(), &words(query));
        let hits = if text.is_some() { hits } else { "SELECT 0 AS pid, 0.0 AS score WHERE 1 = 0" };
        let sql = format!(
            "WITH hits AS ({hits}) \
             SELECT p.name, p.normalized, \
               (SELECT MAX(f.upload_time) FROM files f WHERE f.project_id = p.id AND f.status = 'published') AS updated, \
               h.score AS relevance \
             FROM projects p LEFT JOIN hits h ON h.pid = p.id \
             WHERE p.status <> 'quarantined' AND EXISTS (SELECT 1 FROM files f2 WHERE f2.project_id = p.id AND f2.status = 'published') \
               AND (p.normalized LIKE $1 ESCAPE '\\' OR h.pid IS NOT NULL) \
             ORDER BY CASE WHEN p.normalized LIKE $2 ESCAPE '\\' THEN 0 ELSE 1 END, h.score, updated DESC LIMIT $3"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(contains_pattern(normalized)).bind(contains_pattern(normalized)).bind(limit);
        // `$4`, the text query, is in the hits only.
        if let Some(text) = text {
            q = q.bind(text);
        }
        let rows = q.fetch_all(&self.reader).await?;
        Ok(rows.iter().map(card).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_queries_carry_words_only() {
        let w = words("HTTP client; DROP TABLE \"x\"*:& (fast)");
        assert_eq!(w, ["http", "client", "drop", "table", "x", "fast"]);
        assert_eq!(text_query(Engine::Sqlite, &w[..2]).unwrap(), "\"http\" \"client\"*");
        assert_eq!(text_query(Engine::Postgres, &w[..2]).unwrap(), "http & client:*");
        assert_eq!(text_query(Engine::Sqlite, &words("--- ***")), None);
    }

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(contains_pattern("Req_ue%sts\\"), "%req\\_ue\\%sts\\\\%");
    }
}
