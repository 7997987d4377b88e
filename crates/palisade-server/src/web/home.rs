//! The start page (search box, recently updated projects) and search results.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use palisade_store::ProjectCard;
use serde_json::Value as Json;

use super::templates::{self, ser};
use super::{error_page, html};
use crate::AppState;
use crate::pypi::cache::Doc;

/// Projects the start page lists.
const RECENT: i64 = 24;
/// Results a search shows.
const RESULTS: i64 = 50;
/// The longest query searched for.
const MAX_QUERY: usize = 200;

/// A project in a list: its card (`project::card`, cached per project change) and when it was
/// last updated.
async fn describe(state: &AppState, found: Vec<ProjectCard>) -> Vec<Json> {
    let mut out = Vec::with_capacity(found.len());
    for c in found {
        let Ok((page, hit)) = state.cache.document(Doc::WebCard, &c.normalized, None, || super::project::card(state, &c.normalized)).await
        else {
            // Nothing public (every file blocked, say): not listed.
            continue;
        };
        state.count_cache(hit);
        let mut card: Json = serde_json::from_slice(&page.body).unwrap_or(Json::Null);
        if c.updated > 0 {
            card["updated"] = Json::from(palisade_core::timestamp(c.updated));
        }
        out.push(card);
    }
    out
}

pub async fn home(State(state): State<AppState>) -> Response {
    let recent = match state.db.recent_projects(RECENT).await {
        Ok(r) => describe(&state, r).await,
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
        let mut ranked = rank(found, &normalized);
        ranked.truncate(RESULTS as usize);
        results = describe(&state, ranked).await;
    }
    let ctx = minijinja::context! { site => ser(templates::site(&state)), query, results => ser(results), truncated };
    page(&state, "search.html", ctx)
}

/// Name matches first (the exact name, then names that start with the query, then names that
/// contain it), the most recently updated first within each; then matches in the summary or
/// keywords, the most relevant first (the full-text index's score), then the most recent.
fn rank(found: Vec<ProjectCard>, normalized: &str) -> Vec<ProjectCard> {
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
    let relevance = |c: &ProjectCard| c.relevance.unwrap_or(f64::INFINITY);
    found.sort_by(|(a, x), (b, y)| {
        a.cmp(b)
            .then(if *a == 3 { relevance(x).total_cmp(&relevance(y)) } else { std::cmp::Ordering::Equal })
            .then(y.updated.cmp(&x.updated))
            .then(x.normalized.cmp(&y.normalized))
    });
    found.into_iter().map(|(_, c)| c).collect()
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
        ProjectCard { name: name.into(), normalized: name.into(), updated, relevance: None }
    }

    fn text(name: &str, updated: i64, relevance: f64) -> ProjectCard {
        ProjectCard { relevance: Some(relevance), ..card(name, updated) }
    }

    #[test]
    fn exact_then_prefix_then_contains_then_text() {
        let found = vec![
            text("zzz", 9, -1.0),
            card("my-requests", 5),
            text("aaa", 1, -3.0),
            card("requests-oauth", 1),
            card("requests", 0),
            card("requests-toolbelt", 3),
        ];
        let names: Vec<String> = rank(found, "requests").into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["requests", "requests-toolbelt", "requests-oauth", "my-requests", "aaa", "zzz"]);
    }
}
