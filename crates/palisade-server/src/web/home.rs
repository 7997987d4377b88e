//! The start page (search box, recently updated projects) and search results.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use palisade_store::ProjectCard;
use serde::Serialize;

use super::templates::{self, ser};
use super::{error_page, html};
use crate::AppState;

/// Projects the start page lists.
const RECENT: i64 = 24;
/// Results a search shows.
const RESULTS: i64 = 50;
/// The longest query searched for.
const MAX_QUERY: usize = 200;

/// A project in a list.
#[derive(Serialize)]
struct Card {
    name: String,
    normalized: String,
    version: String,
    summary: Option<String>,
    updated: Option<String>,
}

impl From<ProjectCard> for Card {
    fn from(c: ProjectCard) -> Self {
        let metadata: serde_json::Value = serde_json::from_str(&c.metadata).unwrap_or_default();
        let summary = metadata.get("summary").and_then(|s| s.as_str()).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Card {
            name: c.name,
            normalized: c.normalized,
            version: c.version,
            summary,
            updated: (c.updated > 0).then(|| palisade_core::timestamp(c.updated)),
        }
    }
}

pub async fn home(State(state): State<AppState>) -> Response {
    let recent = match state.db.recent_projects(RECENT).await {
        Ok(r) => r.into_iter().map(Card::from).collect::<Vec<_>>(),
        Err(e) => return super::from_api_error(&state, crate::http::error::internal(e)),
    };
    let ctx = minijinja::context! { site => ser(templates::site(&state)), recent => ser(recent) };
    page(&state, "home.html", ctx)
}

pub async fn search(State(state): State<AppState>, Query(params): Query<HashMap<String, String>>) -> Response {
    let query = params.get("q").map(|q| q.trim()).unwrap_or_default();
    if query.chars().count() > MAX_QUERY {
        return error_page(&state, StatusCode::BAD_REQUEST, &format!("a search is at most {MAX_QUERY} characters"));
    }
    let (mut results, mut truncated) = (Vec::new(), false);
    if !query.is_empty() {
        let normalized = palisade_dist::normalize(query);
        let found = match state.db.search_projects(query, &normalized, RESULTS + 1).await {
            Ok(found) => found,
            Err(e) => return super::from_api_error(&state, crate::http::error::internal(e)),
        };
        truncated = found.len() as i64 > RESULTS;
        results = rank(found, &normalized);
        results.truncate(RESULTS as usize);
    }
    let ctx = minijinja::context! { site => ser(templates::site(&state)), query, results => ser(results), truncated };
    page(&state, "search.html", ctx)
}

/// Name matches first (the exact name, then names that start with the query, then names that
/// contain it), then matches in the text; the most recently updated first within each.
fn rank(found: Vec<ProjectCard>, normalized: &str) -> Vec<Card> {
    let mut found: Vec<(u8, ProjectCard)> = found
        .into_iter()
        .map(|c| {
            let n = c.normalized.as_str();
            let class = if n == normalized {
                0
            } else if n.starts_with(normalized) {
                1
            } else if n.contains(normalized) {
                2
            } else {
                3
            };
            (class, c)
        })
        .collect();
    found.sort_by(|(a, x), (b, y)| a.cmp(b).then(y.updated.cmp(&x.updated)).then(x.normalized.cmp(&y.normalized)));
    found.into_iter().map(|(_, c)| Card::from(c)).collect()
}

fn page(state: &AppState, template: &str, ctx: minijinja::Value) -> Response {
    match templates::render(template, ctx) {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => super::from_api_error(state, crate::http::error::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(name: &str, updated: i64) -> ProjectCard {
        ProjectCard { name: name.into(), normalized: name.into(), version: "1".into(), metadata: "{}".into(), updated }
    }

    #[test]
    fn exact_then_prefix_then_contains_then_text() {
        let found =
            vec![card("zzz", 9), card("my-requests", 5), card("requests-oauth", 1), card("requests", 0), card("requests-toolbelt", 3)];
        let names: Vec<String> = rank(found, "requests").into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["requests", "requests-toolbelt", "requests-oauth", "my-requests", "zzz"]);
    }
}
